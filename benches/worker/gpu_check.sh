#!/usr/bin/env bash
# Worker mode on a GPU (the issue's GPU check), run on a machine with an
# NVIDIA GPU, PostgreSQL 15 with pg_ecom installed at Debian's paths, an
# ONNX Runtime library with the CUDA execution provider (the
# onnxruntime-gpu wheel's libonnxruntime.so) and the CUDA runtime
# libraries on PG_LD_LIBRARY_PATH (set for the PostgreSQL programs only, not
# for the system's own tools). As root: it creates a user "pgu" for the
# server. Prints:
#   - the worker's provider (must be cuda) and its load time;
#   - ecom_embed_batch embeddings/s, 1,000 and 10,000 unseen titles;
#   - pgbench of per-row ecom_predict on unseen texts at 64 clients, worker
#     mode, and the same in backend mode (each connection its own session);
#   - which processes hold a CUDA session (map the CUDA provider) and the
#     GPU memory nvidia-smi reports, in each mode;
#   - the same pgbench on the CPU provider, worker against backend mode,
#     8 and 64 clients (this machine's cores);
#   - where the worker's time went (ecom_worker_stats()->'stages_us').
# usage: gpu_check.sh ORT_GPU_LIBRARY OUT_DIR [SECONDS]
set -uo pipefail
cd "$(dirname "$0")/../.."
ORT=$1 OUTD=$2 SECS=${3:-15}
mkdir -p "$OUTD"
BIN=/usr/lib/postgresql/15/bin
id pgu >/dev/null 2>&1 || useradd -m pgu
D=/tmp/pg_ecom_gpu
rm -rf "$D"; mkdir -p "$D"; chown pgu "$D"; chmod 755 "$OUTD"
PGL=${PG_LD_LIBRARY_PATH:-}
as() { runuser -u pgu -- env LD_LIBRARY_PATH="$PGL" "$@"; }
pg() { LD_LIBRARY_PATH="$PGL" "$@"; }
as "$BIN/initdb" -D "$D/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$D/data/postgresql.conf" <<EOF
shared_preload_libraries = 'pg_ecom'
pg_ecom.execution_provider = 'cuda'
pg_ecom.onnxruntime_library = '$ORT'
pg_ecom.worker_slots = 128
max_connections = 200
listen_addresses = '127.0.0.1'
port = 54399
unix_socket_directories = '/tmp'
EOF
as "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 120 start >/dev/null || { tail -30 "$D/server.log"; exit 1; }
trap 'as "$BIN/pg_ctl" -D "$D/data" -m fast -w stop >/dev/null; cp "$D/server.log" "$OUTD/server.log"' EXIT
q() { pg "$BIN/psql" -X -h 127.0.0.1 -p 54399 -U postgres -d postgres -qAt "$@"; }
q -f test/fixture.sql >/dev/null
for _ in $(seq 1 300); do [ "$(q -c "SELECT ecom_worker_stats()->'worker'->>'state'")" != loading ] && break; sleep 0.2; done
echo "worker: $(q -c "SELECT ecom_worker_stats()->'worker'")"
echo "model info: $(q -c "SELECT ecom_model_info()->>'provider', ecom_model_info()->>'onnxruntime_version'")"
cuda_holders() {  # processes that map the CUDA execution provider
  local n=0 who=""
  for m in /proc/[0-9]*/maps; do
    if grep -q libonnxruntime_providers_cuda "$m" 2>/dev/null; then
      p=${m#/proc/}; p=${p%/maps}; n=$((n + 1)); who="$who $(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-40)|"
    fi
  done
  echo "$n process(es) hold a CUDA session:$who"
}
gpu_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | head -1; }
batch() {  # $1 = n titles, $2 = PGOPTIONS
  PGOPTIONS="$2" q -c "SELECT ecom_embed('warm')" -c "\\timing on" \
    -c "SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT 'title ' || g || ' ' || random() || ' waterproof hiking boot with padded collar' FROM generate_series(1, $1) g))" \
    | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk -v n="$1" '{ printf "%.0f emb/s (%.0f ms)", n / ($1 / 1000), $1 }'
}
cat > "$D/predict.sql" <<'SQL'
\set r random(1, 2000000000)
SELECT ecom_predict('store1', 'viewed: item 1', 'unseen ' || :r || ' waterproof trail running shoe for women size ' || (:r % 13));
SQL
chmod 644 "$D/predict.sql"
bench() {  # $1 clients, $2 PGOPTIONS; prints tps and latency
  PGOPTIONS="$2" pg "$BIN/pgbench" -h 127.0.0.1 -p 54399 -U postgres -n -f "$D/predict.sql" -c "$1" -j 8 -T "$SECS" postgres 2>&1 \
    | awk '/^latency average/ { l = $4 } /^tps/ { t = $3 } END { printf "%.0f tx/s, mean latency %s ms", t, l }'
}
echo "== CUDA, worker mode"
echo "ecom_embed_batch 1,000 titles: $(batch 1000 '')"
echo "ecom_embed_batch 10,000 titles: $(batch 10000 '')"
echo "pgbench per-row ecom_predict, 64 clients, ${SECS} s: $(bench 64 '')"
echo "during it: GPU memory used $(gpu_mem); $(cuda_holders)"
echo "stats: $(q -c "SELECT jsonb_build_object('requests', s->'requests', 'texts', s->'texts', 'batches', s->'batches', 'mean_batch', s->'mean_batch', 'hist', s->'batch_size_histogram', 'wait_us', s->'wait_us', 'run_us', s->'run_us', 'stages_us', s->'stages_us') FROM ecom_worker_stats() s")"
echo "== CUDA, backend mode (each connection its own session)"
echo "ecom_embed_batch 1,000 titles: $(batch 1000 '-c pg_ecom.inference=backend')"
echo "pgbench per-row ecom_predict, 64 clients, ${SECS} s: $(bench 64 '-c pg_ecom.inference=backend')"
( sleep $((SECS / 2)); echo "  (mid-run) GPU memory used $(gpu_mem); $(cuda_holders)" ) &
echo "pgbench again for the census: $(bench 64 '-c pg_ecom.inference=backend')"
wait
echo "== CPU provider, $(nproc) cores"
q -c "ALTER SYSTEM SET pg_ecom.execution_provider = 'cpu'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do [ "$(q -c "SELECT ecom_worker_stats()->'worker'->>'provider'")" = cpu ] && break; sleep 0.2; done
echo "worker: $(q -c "SELECT ecom_worker_stats()->'worker'->>'provider', ecom_worker_stats()->'worker'->>'threads'")"
for c in 8 64; do
  echo "per-row ecom_predict, $c clients: worker $(bench "$c" '') | backend $(bench "$c" '-c pg_ecom.inference=backend')"
done
echo "stages so far (CUDA and CPU runs together): $(q -c "SELECT ecom_worker_stats()->'stages_us'")"
echo "ecom_embed_batch 1,000 titles: worker $(batch 1000 '') | backend (1 thread) $(batch 1000 '-c pg_ecom.inference=backend')"
echo "== CPU provider, 4 workers of $(( $(nproc) / 4 )) threads"
q -c "ALTER SYSTEM SET pg_ecom.workers = 4" >/dev/null
as "$BIN/pg_ctl" -D "$D/data" -l "$D/server.log" -w -t 120 restart >/dev/null
for _ in $(seq 1 300); do [ "$(q -c "SELECT ecom_worker_stats()->'worker'->>'state'")" = ready ] && break; sleep 0.2; done
echo "workers: $(q -c "SELECT ecom_worker_stats()->'worker'->>'count', ecom_worker_stats()->'worker'->>'threads'")"
for c in 8 64; do
  echo "per-row ecom_predict, $c clients: 4 workers $(bench "$c" '')"
done
echo "requests per worker: $(q -c "SELECT ecom_worker_stats()->'worker'->'requests_each'")"
echo "ecom_embed_batch 1,000 titles: 4 workers $(batch 1000 '')"
