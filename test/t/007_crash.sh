#!/usr/bin/env bash
# Crash safety: kill -9 a backend in the middle of ecom_adapt and of
# ecom_meta_train, CYCLES times each way, on a throwaway cluster. After each
# kill the postmaster resets every backend and replays WAL; then:
#   * no partial version: every stored head has complete weights, versions
#     of each tenant run 1..n with no gap (a version exists only if its
#     transaction committed),
#   * exactly one active head per tenant,
#   * the tenant can be scored and adapted again.
# usage: test/t/007_crash.sh PORT [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1 CYCLES=${2:-3}
scripts/cluster start crash "$PORT"
trap 'scripts/cluster stop crash "$PORT"' EXIT
DB=pg_ecom_crash
psql() { scripts/cluster psql crash "$PORT" "$@"; }
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
psql -d postgres -q -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d $DB -q -f test/fixture.sql >/dev/null
psql -d $DB -q >/dev/null <<'SQL'
-- a support relation that takes seconds to read, so the kill lands inside ecom_adapt
CREATE FUNCTION slowly(t text) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT t FROM pg_sleep(0.05) $$;
CREATE VIEW slow_support AS SELECT slowly(context) AS context, item, behaviour, label FROM support, generate_series(1, 4);
SELECT ecom_adapt('crashy', 'support') IS NOT NULL AS first_version;
SQL

wait_ready() {
  for _ in $(seq 1 120); do
    psql -d $DB -qAt -c "SELECT 1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "crash: server did not come back"; exit 1
}
victim_pid() {  # the backend running the victim's statement
  for _ in $(seq 1 100); do
    pid=$(psql -d postgres -qAt -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'crash_victim' AND state = 'active'" 2>/dev/null | head -1)
    [ -n "$pid" ] && { echo "$pid"; return 0; }
    sleep 0.1
  done
  echo "crash: victim never started" >&2; exit 1
}
SQLFILE=$(mktemp); trap 'rm -f "$SQLFILE"; scripts/cluster stop crash "$PORT"' EXIT
kill_during() {  # run SQL ($1, statements in autocommit) in the background, kill -9 its backend after $2 s
  printf '%s\n' "$1" > "$SQLFILE"
  PGAPPNAME=crash_victim psql -d $DB -qAt -f "$SQLFILE" >/dev/null 2>&1 &
  local client=$!
  local pid; pid=$(victim_pid)
  sleep "$2"
  as_pg kill -9 "$pid"
  wait $client || true
  wait_ready
}
check() {
  local bad
  bad=$(psql -d $DB -qAt <<'SQL'
SELECT 'tenant ' || coalesce(tenant, 'global') || ': ' || count(*) || ' versions, max ' || max(version)
       || ', ' || count(*) FILTER (WHERE active) || ' active'
  FROM ecom.heads GROUP BY tenant
HAVING count(*) <> max(version) OR count(*) FILTER (WHERE active) <> 1
UNION ALL
SELECT 'incomplete weights: ' || coalesce(tenant, 'global') || ' v' || version
  FROM ecom.heads WHERE array_length(weights, 1) NOT IN (4 * (2 * dims + 1) + 4 * (n_features + 2),           -- 0.1.x
                                                       4 * (2 * dims + 1) + 4 * (n_features + 2) + 4 * dims); -- with a taste
SQL
)
  [ -z "$bad" ] || { echo "crash: after $1: $bad"; exit 1; }
  psql -d $DB -qAt -c "SELECT ecom_predict('crashy', 'viewed: item 1', 'item 2') BETWEEN 0 AND 1" | grep -qx t \
    || { echo "crash: after $1: scoring failed"; exit 1; }
}
LOG=.ecom/clusters/crash/server.log
resets_before=$(grep -c "terminated by signal 9" "$LOG" || true)
kills=0
for c in $(seq 1 "$CYCLES"); do
  kill_during "SELECT ecom_adapt('crashy', 'slow_support')" 0.$((3 + c * 2)); check "kill inside ecom_adapt (reading support)"
  kill_during "BEGIN; SELECT ecom_adapt('crashy', 'support'); SELECT pg_sleep(60);" 1; check "kill after ecom_adapt wrote, before commit"
  kill_during "SELECT ecom_meta_train('events', meta_steps => 10000000)" 1.$c; check "kill inside ecom_meta_train"
  # a stream of committed adaptations (seconds long, whatever the machine),
  # killed at an arbitrary point
  kill_during "$(for _ in $(seq 1 4000); do echo "SELECT ecom_adapt('crashy', 'support', steps => 1);"; done)" 0.$((2 + c * 3))
  check "kill during a stream of adaptations"
  kills=$((kills + 4))
done
# each kill made the postmaster reset every backend (crash recovery)
resets=$(( $(grep -c "terminated by signal 9" "$LOG" || true) - resets_before ))
[ "$resets" -ge "$kills" ] || { echo "crash: expected $kills crash resets in the server log, found $resets"; exit 1; }
summary=$(psql -d $DB -qAt -c "SELECT max(version) FROM ecom.heads WHERE tenant = 'crashy'")
psql -d $DB -qAt -c "SELECT ecom_adapt('crashy', 'support') IS NOT NULL" | grep -qx t
psql -d postgres -q -c "DROP DATABASE $DB"
echo "crash: $kills kill -9 cycles survived (adapt mid-read, adapt before commit, meta-train, adapt stream); crashy reached version $summary with no gap, one active head per tenant"
