#!/usr/bin/env bash
# Cancellation: statement_timeout and pg_cancel_backend stop long calls of
# ecom_embed_batch (batches of 32 texts of 256 tokens: seconds per ONNX
# Runtime run, so only terminating the run in flight is fast), ecom_rank,
# ecom_meta_train, ecom_adapt (both methods, 20,000 support rows, 10,000
# steps) and per-row ecom_predict over a table of unseen texts. Each must end
# with SQLSTATE 57014 (query_canceled) long before its work would be done
# (minutes); pg_terminate_backend ends a backend inside ecom_adapt. The
# latency from the deadline or the request to the ERROR is measured and
# printed. The error a client sees carries no Rust backtrace or source path.
# usage: test/t/005_cancel.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
DB=pg_ecom_cancel
psql() { scripts/cluster psql regress "$PORT" "$@"; }
psql -d postgres -q -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d $DB -q -f test/fixture.sql >/dev/null
psql -d $DB -q >/dev/null <<'SQL'
CREATE TABLE long_texts AS
SELECT 'item ' || g || ' ' || repeat('waterproof breathable hiking boot with padded collar ', 40) AS t
  FROM generate_series(1, 3000) g;
CREATE TABLE big_support AS
SELECT 'viewed: item ' || (g % 7) AS context, 'item ' || (g % 5) AS item,
       'purchase'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 20000) g;
SQL
LONG_EMBED="PERFORM count(*) FROM ecom_embed_batch(ARRAY(SELECT t FROM long_texts))"
LONG_RANK="PERFORM count(*) FROM ecom_rank('store1', 'viewed: item 1', ARRAY(SELECT t FROM long_texts), 5)"
LONG_TRAIN="PERFORM ecom_meta_train('events', meta_steps => 10000000)"
LONG_ADAPT_META="PERFORM ecom_adapt('big', 'big_support', steps => 10000)"
LONG_ADAPT_FULL="PERFORM ecom_adapt('big', 'big_support', steps => 10000, lr => 0.1, method => 'full')"
LONG_PREDICT="PERFORM count(ecom_predict('store1', 'viewed: item 1', t)) FROM long_texts"
# The victim catches its own cancel (plpgsql can name query_canceled) and
# reports the server clock at that moment, so latencies are server-side.
victim() {  # $1 = statement; prints "<epoch at the ERROR> <sqlstate>"
  cat <<SQL
SELECT ecom_embed('warm up the model');
DO \$\$
BEGIN
  $1;
  RAISE NOTICE 'victim: finished';
EXCEPTION WHEN query_canceled THEN
  RAISE NOTICE 'victim: % % %', extract(epoch FROM clock_timestamp()), SQLSTATE, extract(epoch FROM statement_timestamp());
END \$\$;
SQL
}

# the pid of the backend of application $1 once it runs a query LIKE $2
# (waits up to 10 s; exits the script if it never starts)
victim_pid() {
  local pid=""
  for _ in $(seq 1 100); do
    pid=$(psql -d postgres -qAt -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$1' AND query LIKE '$2'" | head -1)
    [ -n "$pid" ] && { echo "$pid"; return; }
    sleep 0.1
  done
  echo "cancel: $1 did not start" >&2; exit 1
}
worst=0 report=""
record() {
  report+="$(printf '  %-40s %5d ms' "$1" "$2")"$'\n'
  [ "$2" -gt "$worst" ] && worst=$2
  # not a speed test: "honoured" means minutes of work stopped within seconds
  [ "$2" -lt 5000 ] || { echo "cancel: $1 took $2 ms after the request"; exit 1; }
}
caught() {  # epoch seconds of the victim's cancel ERROR, from its output ($1)
  echo "$1" | grep -q "victim: .* 57014" || { echo "cancel: expected a query_canceled ERROR, got: $1"; exit 1; }
  echo "$1" | sed -n 's/.*victim: \([0-9.]*\) 57014.*/\1/p'
}
ms() { echo "($1 - $2) * 1000 / 1" | bc; }
for what in EMBED RANK TRAIN ADAPT_META ADAPT_FULL PREDICT; do
  sql=LONG_$what
  # statement_timeout 1 s: latency = time of the ERROR - (statement start + 1 s)
  out=$(psql -d $DB -qAt -c "SELECT ecom_embed('warm up the model')" \
        -c "SET statement_timeout = '1s'" \
        -c "$(victim "${!sql}" | sed 1d)" 2>&1)
  start=$(echo "$out" | sed -n 's/.*victim: [0-9.]* 57014 \([0-9.]*\).*/\1/p')
  record "statement_timeout 1 s, ${what,,}" "$(ms "$(caught "$out")" "($start + 1)")"
  # pg_cancel_backend from another session, 1.5 s into the call
  outf=$(mktemp)
  victim "${!sql}" > "$outf.sql"
  PGAPPNAME=cancel_victim psql -d $DB -qAt -f "$outf.sql" >"$outf" 2>&1 &
  client=$!
  pid=$(victim_pid cancel_victim 'DO%')
  sleep 1.5
  asked=$(psql -d postgres -qAt -c "SELECT extract(epoch FROM clock_timestamp()) FROM pg_cancel_backend($pid)")
  wait $client
  record "pg_cancel_backend, ${what,,}" "$(ms "$(caught "$(cat "$outf")")" "$asked")"
  rm -f "$outf" "$outf.sql"
done

# what the client sees of a cancel inside ecom_adapt: SQLSTATE and message,
# nothing of Rust (here with the server as users run it; the regression
# suite checks the same with Rust backtraces on, see scripts/test)
seen=$(psql -d $DB -v VERBOSITY=verbose -v ON_ERROR_STOP=0 -qAt -c "SET statement_timeout = '1s'" \
       -c "SELECT ecom_adapt('big', 'big_support', steps => 10000, lr => 0.1, method => 'full')" 2>&1 || true)
grep -q "ERROR:  57014: canceling statement due to statement timeout" <<< "$seen" \
  || { echo "cancel: expected the timeout ERROR, got: $seen"; exit 1; }
if grep -Eq '\.rs:[0-9]|[0-9]+: [a-z_]+::|pgrx|panicking|backtrace' <<< "$seen"; then
  echo "cancel: the client saw Rust internals: $seen"; exit 1
fi

# pg_terminate_backend inside ecom_adapt: the backend is gone within seconds
PGAPPNAME=terminate_victim psql -d $DB -qAt -c "SELECT ecom_adapt('big', 'big_support', steps => 10000, lr => 0.1, method => 'full')" >/dev/null 2>&1 &
client=$!
pid=$(victim_pid terminate_victim 'SELECT ecom_adapt%')
sleep 1.5
asked=$(psql -d postgres -qAt -c "SELECT extract(epoch FROM clock_timestamp()) FROM pg_terminate_backend($pid)")
gone=""
for _ in $(seq 1 500); do
  gone=$(psql -d postgres -qAt -c "SELECT extract(epoch FROM clock_timestamp()) WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)")
  [ -n "$gone" ] && break; sleep 0.01
done
wait $client || true
[ -n "$gone" ] || { echo "cancel: backend $pid still there after pg_terminate_backend"; exit 1; }
record "pg_terminate_backend, adapt (gone)" "$(ms "$gone" "$asked")"

psql -d postgres -q -c "DROP DATABASE $DB"
printf 'cancel: 12 long calls cancelled (SQLSTATE 57014), 1 backend terminated; latency from deadline or request to ERROR:\n%s' "$report"
echo "cancel: worst ${worst} ms"
