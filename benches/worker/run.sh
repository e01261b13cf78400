#!/usr/bin/env bash
# Worker mode against backend mode, side by side, one command: two
# throwaway clusters (pg_ecom preloaded or not), the same model, settings
# and fixture; first call, memory with 16 connections, pgbench of per-row
# ecom_predict on unseen texts at 1/4/8/16 clients and of per-row
# ecom_embed at 8, ecom_embed_batch.
# Writes .ecom/worker-bench.md (benches/RESULTS.md quotes it).
# usage: benches/worker/run.sh [SECONDS per pgbench point, default 20]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-20}
scripts/setup >/dev/null
VENV=$PWD/.ecom/venv
"$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r benches/requirements.lock
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
for c in bench_backend bench_worker; do   # fresh clusters: the same state for both modes
  scripts/cluster stop $c 0; as_pg rm -rf ".ecom/clusters/$c/data"
done
BPORT=$(scripts/cluster free-port 26390)
scripts/cluster start bench_backend "$BPORT"
WPORT=$(scripts/cluster free-port $((BPORT + 1)))
PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=pg_ecom" scripts/cluster start bench_worker "$WPORT"
trap 'scripts/cluster stop bench_backend "$BPORT"; scripts/cluster stop bench_worker "$WPORT"' EXIT
for port in "$BPORT" "$WPORT"; do
  scripts/cluster psql x "$port" -d postgres -q -f test/fixture.sql >/dev/null
done
"$VENV/bin/python" benches/worker/bench.py --backend-port "$BPORT" --worker-port "$WPORT" --secs "$SECS" \
  --pgbench "$(${PG_CONFIG:-pg_config} --bindir)/pgbench" --out .ecom/worker-bench.md \
  --command "benches/worker/run.sh${1:+ $1}"
