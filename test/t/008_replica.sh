#!/usr/bin/env bash
# Replicas: a primary and a streaming hot standby on loopback ports PORT and
# PORT+1 (throwaway clusters "primary" and "standby"). Heads written on the
# primary serve ecom_predict on the standby once replayed, with the same
# score; writing functions on the standby fail with a clear read-only ERROR.
# With PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=pg_ecom" both run
# in worker mode, and the standby's own inference worker must have served.
# usage: test/t/008_replica.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
P=$1 S=$(( $1 + 1 ))
BIN=$(pg_config --bindir)
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
stop() { scripts/cluster stop standby "$S"; scripts/cluster stop primary "$P"; }
trap stop EXIT
stop
as_pg rm -rf .ecom/clusters/primary/data .ecom/clusters/standby/data
scripts/cluster start primary "$P"
pri() { scripts/cluster psql primary "$P" -d postgres -qAt "$@"; }
sby() { scripts/cluster psql standby "$S" -d postgres -qAt "$@"; }
pri -f test/fixture.sql >/dev/null
# a standby from a base backup of the primary, streaming from it
mkdir -p .ecom/clusters/standby
[ "$(id -u)" = 0 ] && chown postgres: .ecom/clusters/standby
as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$P" -U postgres -D "$PWD/.ecom/clusters/standby/data" -R -X stream
scripts/cluster start standby "$S"
[ "$(sby -c 'SELECT pg_is_in_recovery()')" = t ] || { echo "replica: standby is not in recovery"; exit 1; }
caught_up() {  # waits until the standby has replayed everything the primary wrote
  local lsn; lsn=$(pri -c "SELECT pg_current_wal_lsn()")
  for _ in $(seq 1 120); do
    [ "$(sby -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
    sleep 0.25
  done
  echo "replica: standby did not catch up"; exit 1
}
SCORE="SELECT ecom_predict('replica_shop', 'viewed: item 1', 'item 2')"
for round in 1 2; do
  v=$(pri -c "SELECT ecom_adapt('replica_shop', 'support', seed => $round)->>'version'")
  caught_up
  want=$(pri -c "$SCORE") got=$(sby -c "$SCORE")
  [ "$want" = "$got" ] || { echo "replica: round $round: primary scores $want, standby $got"; exit 1; }
  [ "$(sby -c "SELECT version FROM ecom.heads WHERE tenant = 'replica_shop' AND active")" = "$v" ] \
    || { echo "replica: standby does not serve version $v"; exit 1; }
done
# the two versions score differently, so the standby really followed the primary
[ "$(pri -c "SELECT count(DISTINCT version) FROM ecom.heads WHERE tenant = 'replica_shop'")" = 2 ]
# exploration reads only: the same seeded Thompson ranking on both
RANK="SELECT string_agg(item || ':' || propensity, ' ' ORDER BY rank) FROM ecom_rank('replica_shop', 'viewed: item 1', ARRAY['item 0', 'item 1', 'item 2', 'item 3'], 3, 'purchase', NULL, 'thompson', 5)"
[ "$(pri -c "$RANK")" = "$(sby -c "$RANK")" ] || { echo "replica: a seeded Thompson ranking differs on the standby"; exit 1; }
# the loop's writes (impressions, feedback, learning) belong to the primary
pri -c "SELECT count(*) FROM ecom_serve('replica_shop', 'viewed: item 1', ARRAY['item 0', 'item 1'], 1)" >/dev/null
caught_up
for f in "ecom_adapt('replica_shop', 'support')" "ecom_meta_train('events')" "ecom_rollback('replica_shop', 1)" "ecom_forget('replica_shop')" \
         "ecom_serve('replica_shop', 'viewed: item 1', ARRAY['item 0'])" "ecom_feedback((SELECT min(id) FROM ecom.impressions), 'click')" "ecom_learn('replica_shop')"; do
  err=$(sby -c "\\set VERBOSITY verbose" -c "SELECT $f" 2>&1 >/dev/null || true)
  echo "$err" | grep -q "25006" && echo "$err" | grep -q "hot standby" \
    || { echo "replica: $f on the standby: expected a read-only ERROR (25006), got: $err"; exit 1; }
done
MODE=backend
if [ "$(sby -c "SELECT ecom_worker_stats()->>'inference'")" = worker ]; then
  n=$(sby -c "SELECT (ecom_worker_stats()->>'texts')::int")
  [ "$n" -gt 0 ] || { echo "replica: the standby's inference worker encoded nothing"; exit 1; }
  MODE="worker (the standby's worker encoded $n texts)"
fi
echo "replica [$MODE]: heads written on the primary serve the standby (2 versions, identical scores); the same seeded Thompson ranking; 7 writing functions (adapt, meta_train, rollback, forget, serve, feedback, learn) refused there with SQLSTATE 25006"
