#!/usr/bin/env bash
# Reading the loop's log stays linear when the planner's statistics are
# stale. A tenant that grew after the last ANALYZE (autovacuum has not
# caught up, as on a busy platform) is estimated at one row; a nested loop
# planned for one row re-read the tenant's whole log for every row it
# joined, and a learn of 20 new requests over 200 took minutes. The work
# is counted in rows fetched (pg_stat_user_tables), not in time.
# usage: test/t/016_stale_statistics.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
DB=pg_ecom_stale
psql() { scripts/cluster psql regress "$PORT" "$@"; }
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d "$DB" -q -f test/fixture.sql >/dev/null
Q() { psql -d "$DB" -qAt -c "SET pg_ecom.feedback_window = 0" "$@"; }
serve() { # tenant first last
  Q -c "SELECT count(*) FROM generate_series($2, $3) g, LATERAL ecom_serve('$1', 'viewed: item ' || (g % 7), ARRAY['item 0','item 1','item 2','item 3','item 4'], 3, 'purchase', NULL, 'thompson', g)" >/dev/null
  Q -c "SELECT count(*) FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'purchase') WHERE i.tenant = '$1' AND i.id % 3 = 0 AND NOT EXISTS (SELECT FROM ecom.feedback f WHERE f.impression_id = i.id)" >/dev/null
}
for t in requests impressions feedback; do Q -c "ALTER TABLE ecom.$t SET (autovacuum_enabled = false)"; done
serve small 1 20
Q -c "ANALYZE ecom.requests, ecom.impressions, ecom.feedback"
# 1. the statistics do not know the tenant
serve big 1 200
est=$(Q -c "EXPLAIN (FORMAT JSON) SELECT * FROM ecom.requests WHERE tenant = 'big'" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Plan"]["Plan Rows"])')
[ "$est" -le 2 ] || { echo "stale statistics: the setup failed, the planner expects $est rows of 200"; exit 1; }
echo "ok 1 - the planner expects $est row(s) of the tenant's 200 requests"
Q -c "SELECT ecom_learn('big', NULL, 'always') IS NOT NULL" >/dev/null
serve big 201 220
# 2. a learn that continues from the active version reads each table at
# most about once: rows fetched, from pg_stat_user_tables (the learn's connection
# flushes its counts before it answers pg_stat_force_next_flush's call)
touched() {
  Q -c "SELECT sum(coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0)) FROM pg_stat_user_tables
         WHERE relid IN ('ecom.requests'::regclass, 'ecom.impressions'::regclass, 'ecom.feedback'::regclass)"
}
settle() { # until connections that have left have flushed theirs
  local a b; a=$(touched)
  for _ in $(seq 1 50); do sleep 0.2; b=$(touched); [ "$a" = "$b" ] && return 0; a=$b; done
}
settle; before=$(touched)
learned=$(Q -c "SET statement_timeout = '300s'" -c "SELECT (ecom_learn('big', NULL, 'if_better')->>'n')::int" \
            -c "SELECT pg_stat_force_next_flush()" | sed -n 1p)
rows=$(( $(touched) - before ))
logged=$(Q -c "SELECT (SELECT count(*) FROM ecom.requests) + (SELECT count(*) FROM ecom.impressions) + (SELECT count(*) FROM ecom.feedback)")
[ "$learned" -gt 0 ] || { echo "stale statistics: the learn read nothing new"; exit 1; }
[ "$rows" -gt 0 ] && [ "$rows" -le $((20 * logged)) ] \
  || { echo "stale statistics: one ecom_learn fetched $rows rows from a log of $logged"; exit 1; }
echo "ok 2 - ecom_learn of $learned new impressions fetched $rows rows from a log of $logged"
# 3. a learn reads what is new, not the tenant's history: with 1,000 more
# requests learned before it, a learn of 20 new ones fetches rows in
# proportion to those 20. (0.15.0's read, hash joins planned without
# nested loops, fetched the tenant's whole log again on every learn.)
serve big 221 1220
Q -c "SELECT ecom_learn('big', NULL, 'always') IS NOT NULL" >/dev/null
serve big 1221 1240
settle; before=$(touched)
learned=$(Q -c "SELECT (ecom_learn('big', NULL, 'always')->>'n')::int" -c "SELECT pg_stat_force_next_flush()" | sed -n 1p)
rows=$(( $(touched) - before ))
history=$(Q -c "SELECT (SELECT count(*) FROM ecom.requests WHERE tenant = 'big') + (SELECT count(*) FROM ecom.impressions WHERE tenant = 'big')
                       + (SELECT count(*) FROM ecom.feedback WHERE tenant = 'big')")
new=$(( 20 + 2 * learned ))  # requests, impressions, at most as much feedback
[ "$learned" -gt 0 ] || { echo "stale statistics: the learn after 1,000 requests read nothing new"; exit 1; }
[ "$rows" -le $((2 * new)) ] \
  || { echo "stale statistics: a learn of $learned new impressions fetched $rows rows (log of $new new rows, $history in all)"; exit 1; }
# and a learn that finds nothing new (a job every minute on a quiet
# tenant) fetches next to nothing: both ways a request can be new are
# looked up by index, not filtered out of the tenant's requests
settle; before=$(touched)
quiet=$(Q -c "SELECT ecom_learn('big', NULL, 'always')->>'reason'" -c "SELECT pg_stat_force_next_flush()" | sed -n 1p)
quiet_rows=$(( $(touched) - before ))
case "$quiet" in "nothing served since"*) ;; *) echo "stale statistics: a learn with nothing new said: $quiet"; exit 1 ;; esac
[ "$quiet_rows" -le 5 ] || { echo "stale statistics: a learn with nothing new fetched $quiet_rows rows ($history of the tenant's logged)"; exit 1; }
echo "ok 3 - ecom_learn of $learned new impressions fetched $rows rows, one with nothing new $quiet_rows, with $history of the tenant's rows logged"
# 4. the BI views (a dashboard's query of one tenant) read each row about
# once too: before 0.15.0, ecom.impression_outcomes joined feedback, and
# the plan for a tenant estimated at one row re-read the tenant's feedback
# for every impression
settle; before=$(touched)
seen=$(Q -c "SELECT (SELECT sum(impressions) FROM ecom.tenant_performance WHERE tenant = 'big')
                  || '/' || (SELECT count(*) FILTER (WHERE reward) FROM ecom.impression_outcomes WHERE tenant = 'big')" \
         -c "SELECT pg_stat_force_next_flush()" | sed -n 1p)
rows=$(( $(touched) - before ))
want=$(Q -c "SELECT (SELECT count(*) FROM ecom.impressions WHERE tenant = 'big')
                  || '/' || (SELECT count(*) FROM ecom.feedback f JOIN ecom.impressions i ON i.id = f.impression_id
                              WHERE i.tenant = 'big' AND f.behaviour = i.behaviour AND f.label)")
[ "$seen" = "$want" ] || { echo "stale statistics: the views count impressions/rewards $seen, the tables $want"; exit 1; }
[ "$rows" -gt 0 ] && [ "$rows" -le $((20 * logged)) ] \
  || { echo "stale statistics: reading one tenant's views fetched $rows rows from a log of $logged"; exit 1; }
echo "ok 4 - the views of the tenant's $want impressions/rewards fetched $rows rows from a log of $logged"
psql -d postgres -q -c "DROP DATABASE $DB"
