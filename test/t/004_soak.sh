#!/usr/bin/env bash
# Concurrency soak: SESSIONS sessions for SECONDS seconds, each looping over
# ecom_predict, ecom_rank and ecom_adapt, half the time on tenants shared by
# all sessions and half on its own, committing after each adaptation.
# Asserts: every session ends without an ERROR (no deadlock either: the run
# finishes), and per tenant the versions stored = the adaptations the
# sessions committed, numbered 1..n, with exactly one active head.
# usage: test/t/004_soak.sh PORT [SESSIONS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1 N=${2:-8} SECS=${3:-60}
DB=pg_ecom_soak
psql() { scripts/cluster psql regress "$PORT" "$@"; }
psql -d postgres -q -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d $DB -q -f test/fixture.sql >/dev/null
psql -d $DB -q >/dev/null <<'SQL'
-- what each session committed, in the same transaction as the adaptation
CREATE TABLE soak_log (session int, tenant text, version int, predictions int, rankings int);
CREATE TABLE soak_loop (session int, tenant text);
CREATE PROCEDURE soak(s int, seconds int) LANGUAGE plpgsql AS $$
DECLARE
  deadline timestamptz := clock_timestamp() + make_interval(secs => seconds);
  i int := 0; t text; v int; p float8; r int;
BEGIN
  WHILE clock_timestamp() < deadline LOOP
    i := i + 1;
    t := CASE WHEN i % 2 = 0 THEN 'shared' || (i % 3) ELSE 'own' || s END;
    p := ecom_predict(t, 'viewed: item ' || (i % 7), 'item ' || ((i + s) % 5));
    IF p IS NULL OR p < 0 OR p > 1 THEN RAISE EXCEPTION 'bad prediction %', p; END IF;
    SELECT count(*) INTO r FROM ecom_rank(t, 'viewed: item ' || (i % 7), ARRAY['item 1', 'item 2', 'item 3', 'item ' || s], 2);
    IF r <> 2 THEN RAISE EXCEPTION 'ranking returned % rows', r; END IF;
    v := (ecom_adapt(t, 'support', steps => 2, seed => i))->>'version';
    INSERT INTO soak_log VALUES (s, t, v, 1, 1);
    COMMIT;
    -- the loop, on a tenant shared by all sessions and on its own: serve
    -- with Thompson sampling, a click on the first shown, and now and then
    -- learn from it (impressions learnable at once) in a transaction of its
    -- own, as pg_cron does: ecom_learn waits for open feedback of its
    -- tenant, so two transactions that each labelled and then learned one
    -- tenant would deadlock (docs/loop.md, feedback conventions)
    t := CASE WHEN i % 2 = 0 THEN 'loop_shared' ELSE 'loop' || s END;
    PERFORM ecom_feedback(impression_id, 'click')
       FROM ecom_serve(t, 'viewed: item ' || (i % 7), ARRAY['item 0', 'item 1', 'item 2', 'item 3'], 2, seed => i)
      WHERE rank = 1;
    INSERT INTO soak_loop VALUES (s, t);
    COMMIT;
    IF i % 5 = 0 THEN
      PERFORM set_config('pg_ecom.feedback_window', '0', true);
      PERFORM ecom_learn(t, activate => CASE WHEN i % 10 = 0 THEN 'always' ELSE 'if_better' END);
      COMMIT;
    END IF;
  END LOOP;
END $$;
SQL
pids=()
for s in $(seq 1 "$N"); do
  psql -d $DB -qAt -c "CALL soak($s, $SECS)" > /dev/null &
  pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=$((fail + 1)); done
[ $fail = 0 ] || { echo "soak: $fail session(s) ended with an ERROR"; exit 1; }
bad=$(psql -d $DB -qAt <<'SQL'
WITH stored AS (SELECT tenant, count(*) AS n, max(version) AS top, count(DISTINCT version) AS distinct_versions,
                       count(*) FILTER (WHERE active) AS active
                  FROM ecom.heads WHERE tenant IS NOT NULL AND tenant NOT LIKE 'loop%' GROUP BY tenant),
     logged AS (SELECT tenant, count(*) AS n, count(DISTINCT version) AS distinct_versions FROM soak_log GROUP BY tenant)
SELECT coalesce(s.tenant, l.tenant) || ': stored ' || coalesce(s.n, 0) || ', committed ' || coalesce(l.n, 0)
       || ', max version ' || coalesce(s.top, 0) || ', active ' || coalesce(s.active, 0)
  FROM stored s FULL JOIN logged l USING (tenant)
 WHERE s.n IS DISTINCT FROM l.n OR s.top IS DISTINCT FROM s.n OR s.distinct_versions IS DISTINCT FROM s.n
    OR l.distinct_versions IS DISTINCT FROM l.n OR s.active IS DISTINCT FROM 1::bigint;
SQL
)
[ -z "$bad" ] || { echo "soak: versions do not add up:"; echo "$bad"; exit 1; }
# the loop: each committed round wrote one request of two impressions and
# one click; every tenant that learned has at most one active head
loop_bad=$(psql -d $DB -qAt <<'SQL'
SELECT 'rounds ' || (SELECT count(*) FROM soak_loop) || ', requests ' || (SELECT count(*) FROM ecom.requests)
       || ', impressions ' || (SELECT count(*) FROM ecom.impressions) || ', clicks ' || (SELECT count(*) FROM ecom.feedback WHERE behaviour = 'click')
 WHERE (SELECT count(*) FROM soak_loop) IS DISTINCT FROM (SELECT count(*) FROM ecom.requests)
    OR 2 * (SELECT count(*) FROM soak_loop) IS DISTINCT FROM (SELECT count(*) FROM ecom.impressions)
    OR (SELECT count(*) FROM soak_loop) IS DISTINCT FROM (SELECT count(*) FROM ecom.feedback WHERE behaviour = 'click')
UNION ALL
SELECT tenant || ': ' || count(*) FILTER (WHERE active) || ' active heads'
  FROM ecom.heads WHERE tenant LIKE 'loop%' GROUP BY tenant HAVING count(*) FILTER (WHERE active) > 1;
SQL
)
[ -z "$loop_bad" ] || { echo "soak: the loop's rows do not add up:"; echo "$loop_bad"; exit 1; }
learned=$(psql -d $DB -qAt -c "SELECT count(*) || ' learned versions (' || count(*) FILTER (WHERE active) || ' active)' FROM ecom.heads WHERE tenant LIKE 'loop%'")
loops=$(psql -d $DB -qAt -c "SELECT count(*) FROM soak_loop")
totals=$(psql -d $DB -qAt -c "SELECT count(*) || ' adaptations, ' || sum(predictions) || ' predictions, ' || sum(rankings) || ' rankings over ' || count(DISTINCT tenant) || ' tenants' FROM soak_log")
psql -d postgres -q -c "DROP DATABASE $DB"
echo "soak: $N sessions x $SECS s: $totals; the loop: $loops served rounds, $learned; no error, versions and the loop's rows add up, one active head per tenant"
