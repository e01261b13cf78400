#!/usr/bin/env bash
# Worker mode (pg_ecom in shared_preload_libraries): one inference worker
# serves every backend. On a cluster of its own this checks that
#  - pg_ecom.inference defaults to 'worker' and the backends never load
#    ONNX Runtime (their /proc/PID/maps), the worker does;
#  - worker and backend mode give the same embeddings;
#  - the worker serves another installed encoder (pg_ecom.encoder) too,
#    without backends loading it, beside the default at the same time;
#  - requests of concurrent backends are batched together;
#  - the shared embedding cache serves a text one connection encoded to
#    another connection, without the worker;
#  - cancelling a backend that waits on the worker ends with 57014;
#  - a hung worker (SIGSTOP) makes a waiting backend ERROR (55000) after
#    pg_ecom.worker_timeout, or encode locally with inference_fallback;
#    it is then restarted by itself, the cluster is not;
#  - a worker that exits (SIGTERM) is restarted and requests meanwhile wait;
#    one stopped in the middle of a run requeues the request, which its
#    successor answers;
#  - an ONNX Runtime error inside the worker is an ERROR for that request
#    only: same worker pid, next request fine, no cluster restart;
#  - a model directory the worker cannot load gives the backend-mode ERROR;
#  - model files replaced on disk: sessions stop using the worker's old model;
#  - with pg_ecom.workers = 2 both workers serve concurrent sessions, and
#    while one restarts the other answers.
# usage: test/t/006_worker.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
NAME=worker_test
stop() { scripts/cluster stop $NAME "$PORT"; }
trap stop EXIT
stop
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
as_pg rm -rf .ecom/clusters/$NAME/data
PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=pg_ecom" scripts/cluster start $NAME "$PORT"
q() { scripts/cluster psql $NAME "$PORT" -d postgres -qAt "$@"; }
fail() { echo "worker: $*"; exit 1; }
stat() { q -c "SELECT ecom_worker_stats()$1"; }
q -c "CREATE EXTENSION pg_ecom" >/dev/null
POSTMASTER=$(as_pg head -1 .ecom/clusters/$NAME/data/postmaster.pid)

# -- the default, and where the model lives
[ "$(q -c 'SHOW pg_ecom.inference')" = worker ] || fail "pg_ecom.inference is not 'worker' when preloaded"
for _ in $(seq 1 100); do [ "$(stat "->'worker'->>'state'")" = ready ] && break; sleep 0.1; done
[ "$(stat "->'worker'->>'state'")" = ready ] || fail "the worker is not ready: $(stat "")"
WPID=$(stat "->'worker'->>'pid'")
out=$(q -c "SELECT array_length(ecom_embed('wool socks'), 1)")
[ "$out" = 384 ] || fail "embedding through the worker: $out"
grep -q libonnxruntime "/proc/$WPID/maps" || fail "the worker has not loaded ONNX Runtime"
# a backend that used the worker never loads ONNX Runtime (checked while it lives)
q -c "SELECT ecom_embed('backend maps check') IS NOT NULL, pg_sleep(3)" >/dev/null &
sleep 1.5
BPID=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%backend maps check%' AND pid <> pg_backend_pid()")
[ -n "$BPID" ] || fail "no backend to check"
if grep -q libonnxruntime "/proc/$BPID/maps"; then fail "a backend in worker mode loaded ONNX Runtime"; fi
wait
[ "$(stat "->'requests'")" -ge 2 ] || fail "the worker served no requests: $(stat "")"
# every thread of the worker but its own (ONNX Runtime's pool, the run
# watcher) blocks the signals Postgres handles: a SIGTERM must never run
# Postgres code on another thread (it aborted the worker once, in CI)
for t in /proc/"$WPID"/task/*; do
  [ "${t##*/}" = "$WPID" ] && continue
  blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$t/status")
  (( (16#$blk & 16#4203) == 16#4203 )) || fail "worker thread ${t##*/} does not block SIGHUP/SIGINT/SIGUSR1/SIGTERM (SigBlk $blk)"
done

# -- the same embeddings in both modes
T="'waterproof hiking boots size 42'"
w=$(q -c "SELECT ecom_embed($T)")
b=$(q -c "SET pg_ecom.inference = 'backend'" -c "SELECT ecom_embed($T)")
diff=$(python3 -c "import sys; a, b = (list(map(float, x.strip('{}').split(','))) for x in sys.argv[1:]); print(max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) == 384 else 'length')" "$w" "$b")
awk -v d="$diff" 'BEGIN { exit !(d != "" && d < 1e-5) }' || fail "worker and backend embeddings differ by $diff"

# -- another installed encoder (pg_ecom.encoder): the same worker serves it,
# loading it on the first request; backends still load no ONNX Runtime
E5="SET pg_ecom.encoder = 'multilingual-e5-small'"
before_req=$(stat "->'requests'")
[ "$(q -c "$E5" -c "SELECT ecom_model_info()->>'inference' || ' ' || (ecom_model_info()->>'model')")" = "worker intfloat/multilingual-e5-small" ] \
  || fail "multilingual-e5-small is not served by the worker: $(q -c "$E5" -c "SELECT ecom_model_info()")"
T="'降噪耳机 noise cancelling headphones'"
w=$(q -c "$E5" -c "SELECT ecom_embed($T, 'context')")
b=$(q -c "$E5" -c "SET pg_ecom.inference = 'backend'" -c "SELECT ecom_embed($T, 'context')")
diff=$(python3 -c "import sys; a, b = (list(map(float, x.strip('{}').split(','))) for x in sys.argv[1:]); print(max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) == 384 else 'length')" "$w" "$b")
awk -v d="$diff" 'BEGIN { exit !(d != "" && d < 1e-5) }' || fail "multilingual-e5-small: worker and backend embeddings differ by $diff"
[ "$(stat "->'requests'")" -gt "$before_req" ] || fail "the worker served no multilingual-e5-small request"
q -c "$E5" -c "SELECT ecom_embed('e5 maps check') IS NOT NULL, pg_sleep(3)" >/dev/null &
sleep 1.5
BPID=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%e5 maps check%' AND pid <> pg_backend_pid()")
[ -n "$BPID" ] || fail "no backend to check"
if grep -q libonnxruntime "/proc/$BPID/maps"; then fail "a backend using multilingual-e5-small in worker mode loaded ONNX Runtime"; fi
wait
# both encoders at once, from concurrent sessions: each gets its own model's embeddings
q -c "SELECT ecom_embed('wool socks')" > /tmp/pg_ecom_w_mini.$$ &
q -c "$E5" -c "SELECT ecom_embed('wool socks')" > /tmp/pg_ecom_w_e5.$$ &
wait
cmp -s /tmp/pg_ecom_w_mini.$$ /tmp/pg_ecom_w_e5.$$ && fail "both encoders gave the same embedding"
[ "$(q -c "SELECT ecom_embed('wool socks') = '$(cat /tmp/pg_ecom_w_mini.$$)'::real[]")" = t ] || fail "MiniLM beside e5 changed"
rm -f /tmp/pg_ecom_w_mini.$$ /tmp/pg_ecom_w_e5.$$

# -- cross-backend batching: 8 sessions encoding unseen texts row by row
# (and where the time went: every stage counted once per request or batch)
STAGES="submit wait tokenize copy_in run copy_out hand_back"
stage_counts() { for s in $STAGES; do printf '%s ' "$(stat "->'stages_us'->'$s'->>'count'")"; done; }
read -r -a sc0 <<< "$(stage_counts)"
before_req=$(stat "->'requests'"); before_bat=$(stat "->'batches'")
for s in $(seq 1 8); do
  q -c "SELECT count(ecom_embed('batching ' || $s || ' item ' || g)) FROM generate_series(1, 40) g" >/dev/null &
done
wait
req=$(( $(stat "->'requests'") - before_req )); bat=$(( $(stat "->'batches'") - before_bat ))
[ "$req" -ge 320 ] || fail "320 texts row by row took $req requests"
[ "$bat" -lt "$req" ] || fail "no batching across backends: $req requests in $bat batches"
BATCHING="$req requests from 8 sessions in $bat runs"
read -r -a sc1 <<< "$(stage_counts)"
i=0
for s in $STAGES; do
  d=$(( sc1[i] - sc0[i] )); i=$((i + 1))
  case $s in
    submit|wait|hand_back) want=$req ;;
    *) want=$bat ;;
  esac
  [ "$d" = "$want" ] || fail "stage $s counted $d times for $req requests in $bat runs: $(stat "->'stages_us'")"
done
[ "$(stat "->'stages_us'->'run'->>'total'")" -gt 0 ] || fail "no time in the run stage: $(stat "->'stages_us'")"
[ "$(stat "->'stages_us'->'run'->>'per'")" = batch ] || fail "the run stage is not counted per batch"

# -- the shared cache: a text encoded by one connection is a hit for another
q -c "SELECT count(ecom_embed('shared cache ' || g)) FROM generate_series(1, 20) g" >/dev/null
h0=$(stat "->'cache'->>'hits'"); r0=$(stat "->'requests'")
q -c "SELECT count(ecom_embed('shared cache ' || g)) FROM generate_series(1, 20) g" >/dev/null
h1=$(stat "->'cache'->>'hits'"); r1=$(stat "->'requests'")
[ $((h1 - h0)) -ge 20 ] || fail "a new connection missed the shared cache ($h0 -> $h1 hits)"
[ "$r1" = "$r0" ] || fail "texts in the shared cache went to the worker again ($r0 -> $r1 requests)"

# -- cancel while waiting on the worker
q -c "CREATE TABLE long_texts AS SELECT 'item ' || g || ' ' || repeat('waterproof breathable hiking boot with padded collar ', 40) AS t FROM generate_series(1, 2000) g" >/dev/null
t0=$(date +%s.%N)
err=$(q -c "SET statement_timeout = '1s'" -c "SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT t FROM long_texts))" 2>&1 || true)
t1=$(date +%s.%N)
case $err in *"statement timeout"*) ;; *) fail "statement_timeout while waiting on the worker: $err";; esac
CANCEL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a - 1) * 1000 }')
awk -v c="$CANCEL" 'BEGIN { exit !(c < 1000) }' || fail "cancel took $CANCEL ms after the deadline"
# the worker is free again: a request right after is answered
[ "$(q -c "SELECT array_length(ecom_embed('after the cancel'), 1)")" = 384 ] || fail "no answer after a cancel"

# -- a hung worker: ERROR after the timeout, or the fallback; then it restarts
STARTS=$(stat "->'worker'->>'starts'")
q -c "SELECT 1" >/dev/null
# a session that stays connected through all of it (no cluster restart)
exec 5< <(q -c "SELECT pg_backend_pid(), pg_sleep(30)")
# the server's hang limit (no session can shorten it): 1 s
q -c "ALTER SYSTEM SET pg_ecom.worker_hang_timeout = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
kill -STOP "$WPID"
err=$(q -c "SET pg_ecom.worker_timeout = '2s'" -c "SELECT ecom_embed('asked while the worker hangs')" 2>&1 || true)
case $err in *"did not answer within 2000 ms"*) ;; *) kill -CONT "$WPID"; fail "a hung worker gave: $err";; esac
ok=$(q -c "SET pg_ecom.worker_timeout = '2s'" -c "SET pg_ecom.inference_fallback = on" \
      -c "SELECT array_length(ecom_embed('fallback while the worker hangs'), 1)")
[ "$ok" = 384 ] || { kill -CONT "$WPID"; fail "the fallback gave: $ok"; }
kill -CONT "$WPID"
for _ in $(seq 1 100); do
  np=$(stat "->'worker'->>'pid'"); st=$(stat "->'worker'->>'state'")
  [ -n "$np" ] && [ "$np" != "$WPID" ] && [ "$st" = ready ] && break
  sleep 0.1
done
[ "$np" != "$WPID" ] && [ "$st" = ready ] || fail "the hung worker was not replaced (pid $np, $st)"
[ "$(stat "->'worker'->>'starts'")" -gt "$STARTS" ] || fail "starts did not grow"
WPID=$np
q -c "ALTER SYSTEM RESET pg_ecom.worker_hang_timeout" -c "SELECT pg_reload_conf()" >/dev/null
# a session's short worker_timeout never gets a busy worker killed
q -c "SET pg_ecom.worker_timeout = '100ms'" -c "SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT t FROM long_texts LIMIT 64))" >/dev/null 2>&1 || true
sleep 0.5
[ "$(stat "->'worker'->>'pid'")" = "$WPID" ] || fail "a session's pg_ecom.worker_timeout got a busy worker killed"

# -- a worker that exits is started again; a request meanwhile waits for it
kill -TERM "$WPID"
[ "$(q -c "SELECT array_length(ecom_embed('asked while the worker restarts'), 1)")" = 384 ] \
  || fail "a request during a restart failed"
WPID=$(stat "->'worker'->>'pid'")
# -- a worker stopped in the middle of a run puts the request back in the
# queue, and its successor answers it: the backend never sees the restart
q -c "SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT t || ' requeue' FROM long_texts LIMIT 256))" > "$PWD/.ecom/requeue.out" 2>&1 &
BG=$!
for _ in $(seq 1 200); do [ "$(stat "->'queue_depth'")" != 0 ] || [ "$(stat "->'slots_busy'")" != 0 ] && break; sleep 0.02; done
sleep 0.3
kill -STOP "$WPID"; kill -TERM "$WPID"; kill -CONT "$WPID"
wait $BG || fail "the request in flight failed: $(cat .ecom/requeue.out)"
[ "$(cat .ecom/requeue.out)" = 256 ] || fail "the request in flight gave: $(cat .ecom/requeue.out)"
[ "$(stat "->'requeued'")" -ge 1 ] || fail "the stopped worker's request was not requeued"
WPID=$(stat "->'worker'->>'pid'")

# -- an ONNX Runtime error inside the worker: that request fails, nothing else
.ecom/venv/bin/python test/batch_fault_model.py "$("${PG_CONFIG:-pg_config}" --sharedir)/extension/pg_ecom" /tmp/pg_ecom_batch_fault
chmod -R a+rX /tmp/pg_ecom_batch_fault
q -c "ALTER SYSTEM SET pg_ecom.model_dir = '/tmp/pg_ecom_batch_fault'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do
  [ "$(stat "->'worker'->>'model_file'")" = /tmp/pg_ecom_batch_fault/model.onnx ] && [ "$(stat "->'worker'->>'state'")" = ready ] && break
  sleep 0.1
done
[ "$(stat "->'worker'->>'model_file'")" = /tmp/pg_ecom_batch_fault/model.onnx ] || fail "the worker did not reload its model on SIGHUP"
err=$(q -c "SELECT count(*) FROM ecom_embed_batch(ARRAY['two texts', 'in one run'])" 2>&1 || true)
case $err in *"ONNX Runtime run failed"*) ;; *) fail "an ONNX Runtime error in the worker gave: $err";; esac
[ "$(q -c "SELECT array_length(ecom_embed('one text runs'), 1)")" = 384 ] || fail "the worker did not serve after an ONNX Runtime error"
[ "$(stat "->'worker'->>'pid'")" = "$WPID" ] || fail "an ONNX Runtime error restarted the worker"
[ "$(stat "->'failed'")" -ge 1 ] || fail "the failed request was not counted"
# -- a model the worker cannot load: the same ERROR as in backend mode
q -c "ALTER SYSTEM SET pg_ecom.model_dir = '/tmp/pg_ecom_no_such_model'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do [ "$(stat "->'worker'->>'state'")" = failed ] && break; sleep 0.1; done
err=$(q -c "SELECT ecom_embed('x')" 2>&1 || true)
case $err in *'cannot read model manifest "/tmp/pg_ecom_no_such_model/manifest.json"'*) ;; *) fail "a model the worker cannot load gave: $err";; esac
q -c "ALTER SYSTEM RESET pg_ecom.model_dir" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do [ "$(stat "->'worker'->>'state'")" = ready ] && break; sleep 0.1; done
[ "$(q -c "SELECT array_length(ecom_embed('recovered'), 1)")" = 384 ] || fail "no recovery after fixing the model"

# -- model files replaced on disk under the same settings: the worker keeps
# its model, sessions see another one (the manifest's sha256) and encode
# in their own backend, so no cache mixes the two
SWAP=/tmp/pg_ecom_swap_model
rm -rf "$SWAP"; cp -r "$("${PG_CONFIG:-pg_config}" --sharedir)/extension/pg_ecom" "$SWAP"; chmod -R a+rX "$SWAP"
q -c "ALTER SYSTEM SET pg_ecom.model_dir = '$SWAP'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do [ "$(stat "->'worker'->>'model_file'")" = "$SWAP/model.onnx" ] && [ "$(stat "->'worker'->>'state'")" = ready ] && break; sleep 0.1; done
r0=$(stat "->'requests'")
[ "$(q -c "SELECT array_length(ecom_embed('swap: before'), 1)")" = 384 ] || fail "no embedding from the copied model"
[ "$(stat "->'requests'")" -gt "$r0" ] || fail "the copied model's first text did not go to the worker"
python3 - "$SWAP/manifest.json" <<'PY'
import json, os, sys
p = sys.argv[1]; m = json.load(open(p))
m["sha256"]["model.onnx"] = "0" * 64          # "a new model" as far as identity goes
json.dump(m, open(p + ".new", "w")); os.chmod(p + ".new", 0o644); os.replace(p + ".new", p)
PY
r1=$(stat "->'requests'")
[ "$(q -c "SELECT array_length(ecom_embed('swap: after'), 1)")" = 384 ] || fail "no embedding after the files changed"
[ "$(stat "->'requests'")" = "$r1" ] || fail "a session whose model files changed on disk still used the worker's old model"
q -c "ALTER SYSTEM RESET pg_ecom.model_dir" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do [ "$(stat "->'worker'->>'model_file'")" != "$SWAP/model.onnx" ] && [ "$(stat "->'worker'->>'state'")" = ready ] && break; sleep 0.1; done
rm -rf "$SWAP"

# -- sizes of shared memory are fixed at start
err=$(q -c "SET pg_ecom.shared_cache_mb = 1" 2>&1 || true)
case $err in *"without restarting the server"*) ;; *) fail "shared_cache_mb: $err";; esac
# still the same postmaster, and the session opened before is still there
[ "$(as_pg head -1 .ecom/clusters/$NAME/data/postmaster.pid)" = "$POSTMASTER" ] || fail "the cluster restarted"
read -r -t 40 kept <&5 || true
[ -n "$kept" ] || fail "a session connected throughout was lost"
grep -q "terminating any other active server processes" .ecom/clusters/$NAME/server.log && fail "the server log shows a crash restart"
# -- two workers: both serve, and one answers while the other restarts
stop
PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=pg_ecom -c pg_ecom.workers=2 -c pg_ecom.worker_threads=1" scripts/cluster start $NAME "$PORT"
for _ in $(seq 1 200); do [ "$(stat "->'worker'->'states_each'")" = '["ready", "ready"]' ] && break; sleep 0.1; done
[ "$(stat "->'worker'->'states_each'")" = '["ready", "ready"]' ] || fail "pg_ecom.workers = 2: $(stat "->'worker'->'states_each'")"
for s in $(seq 1 6); do
  q -c "SELECT count(ecom_embed('two workers ' || $s || ' item ' || g)) FROM generate_series(1, 40) g" >/dev/null &
done
wait
each=$(stat "->'worker'->'requests_each'")
python3 -c "import json, sys; e = json.loads(sys.argv[1]); sys.exit(not (len(e) == 2 and min(e) > 0))" "$each" \
  || fail "both workers should have served 6 concurrent sessions: $each"
first=$(stat "->'worker'->'pids'->>0")
other_before=$(stat "->'worker'->'requests_each'->>1")
kill -TERM "$first"
[ "$(q -c "SELECT array_length(ecom_embed('while one worker restarts'), 1)")" = 384 ] || fail "no answer while one of two workers restarts"
[ "$(stat "->'worker'->'requests_each'->>1")" -gt "$other_before" ] || fail "the other worker did not answer while the first restarted"
echo "worker: backends load no ONNX Runtime; same embeddings as backend mode; multilingual-e5-small served by the same worker beside MiniLM; $BATCHING; shared cache served a new connection; cancel ${CANCEL} ms after the deadline; hung worker: ERROR after 2 s or local fallback, then replaced; SIGTERM: restarted, waiting request answered, a run in flight requeued and answered; ONNX Runtime error: that request only; model files replaced on disk: sessions encode locally; no cluster restart; two workers: both served ($each requests), one answered while the other restarted"
