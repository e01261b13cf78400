#!/usr/bin/env bash
# What one ecom_serve costs per explore policy, texts cached, in one warm
# session: 20 candidates, 10 shown, `pg_ecom.propensity_samples` (default
# 256) Monte Carlo rankings for the sampled policies' propensities.
# Prints the median and 95th percentile of N calls per policy, each call
# committed on its own; then, for 'none' and 'thompson', the same once the
# store has a head learned from feedback on what it was shown.
# usage: benches/loop/serve_cost.sh [N]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-300}
scripts/setup >/dev/null
PORT=${PG_ECOM_BENCH_PORT:-$(scripts/cluster free-port 26390)}
scripts/cluster start servecost "$PORT"
trap 'scripts/cluster stop servecost "$PORT"' EXIT
P="scripts/cluster psql servecost $PORT -d postgres -qAt"
$P -f benches/loop/serving_fixture.sql >/dev/null
$P <<'SQL' >/dev/null
-- a log that is not empty, with statistics: a session that first serves
-- into empty, never-analyzed tables keeps foreign-key check plans made for
-- them until autovacuum analyzes (within a minute), and each call then
-- costs more than the last
SELECT count(*) FROM bench_items, generate_series(1, 300) i,
       ecom_serve('store' || (i % 4), 'viewed: product ' || (i % 20), items, 10, 'click', NULL, 'none');
ANALYZE ecom.requests, ecom.impressions;
SQL
# What both databases below time with: N calls per policy, each its own
# transaction (as a shop serves: a call's cost grows with what the same
# transaction logged before it), and the report of them.
TIMING=$(cat <<'SQL'
CREATE TEMP TABLE t (policy text, ms float8);
-- (the candidates come from a one-row table's items column: CALL takes no subquery)
CREATE PROCEDURE pg_temp.time_serve(tenant text, context text, contexts int, candidates regclass,
                                    policies text[], label text DEFAULT '')
LANGUAGE plpgsql AS $$
DECLARE p text; t0 timestamptz; items text[];
BEGIN
  EXECUTE format('SELECT items FROM %s', candidates) INTO items;
  FOREACH p IN ARRAY policies LOOP
    FOR i IN 1..current_setting('sc.n')::int LOOP
      t0 := clock_timestamp();
      PERFORM * FROM ecom_serve(tenant, context || (i % contexts), items, 10, 'click', NULL, p, i);
      INSERT INTO t VALUES (p || label, 1000 * extract(epoch FROM clock_timestamp() - t0));
      COMMIT;
    END LOOP;
  END LOOP;
END $$;
SQL
)
REPORT="SELECT format('ecom_serve, 10 of 20 candidates, explore => %-9s median %s ms, p95 %s ms (%s calls)',
              quote_literal(policy) || ':',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2), count(*))
  FROM t GROUP BY policy ORDER BY policy;"
PGOPTIONS="-c sc.n=$N" $P <<SQL
$TIMING
DO \$\$
BEGIN
  FOR i IN 1..20 LOOP  -- warm: model loaded, texts cached
    PERFORM * FROM ecom_serve('store1', 'viewed: product ' || (i % 20), (SELECT items FROM bench_items), 10, 'click', NULL, 'none');
  END LOOP;
END \$\$;
CALL pg_temp.time_serve('store1', 'viewed: product ', 20, 'bench_items', ARRAY['none', 'epsilon', 'softmax', 'thompson']);
-- the same store with a head learned from what it was shown: its
-- shoppers click tea and bikes. Its posterior is informed along the
-- directions its events span, which a Thompson draw then samples
SELECT count(ecom_feedback(im.id, 'click', im.item LIKE '%tea%' OR im.item LIKE '%bike%'))
  FROM ecom.impressions im WHERE im.tenant = 'store1' \\g /dev/null
SET pg_ecom.feedback_window = 0;  -- learn from all of it now
SELECT ecom_learn('store1', activate => 'always') \\g /dev/null
RESET pg_ecom.feedback_window;
CALL pg_temp.time_serve('store1', 'viewed: product ', 20, 'bench_items', ARRAY['none', 'thompson'], ', learned head');
SELECT 'store1''s learned head: version ' || version || ', a posterior of ' || coalesce(cardinality(posterior), 0) || ' numbers'
  FROM ecom.heads WHERE tenant = 'store1' AND active
UNION ALL SELECT 'store1 has no learned head: the second part measured the global head'
 WHERE NOT EXISTS (SELECT 1 FROM ecom.heads WHERE tenant = 'store1' AND active);
$REPORT
SQL

# A posterior with a dense block: a global head that keeps taste directions
# (test/sql/taste.sql's 40 stores, each liking two of four categories) and
# a store adapted along them on 24 events. Its Thompson draws solve the
# block (gain, bias, the basis's directions, the directions its events
# informed) per ranking.
T="scripts/cluster psql servecost $PORT -qAt"
$T -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS servecost_taste" -c "CREATE DATABASE servecost_taste" >/dev/null
PGOPTIONS="-c sc.n=$N" $T -d servecost_taste <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pg_ecom;
CREATE TABLE ts_events AS
WITH cats(c, name) AS (VALUES (0, 'trail running shoes'), (1, 'leather dress shoes'),
                              (2, 'crime mystery novel'), (3, 'vegan cookbook')),
     likes(p, a, b) AS (VALUES (0, 0, 1), (1, 2, 3), (2, 0, 2), (3, 1, 3))
SELECT 'ts_store' || s AS tenant, 'shopper ' || (s * 5 % 7) AS context,
       name || ' no. ' || i AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || c || '/' || i || '/0')) % 100) < CASE WHEN c IN (l.a, l.b) THEN 75 ELSE 20 END AS label
  FROM generate_series(0, 39) s, cats, generate_series(0, 9) i, likes l
 WHERE l.p = s % 4;
SELECT ecom_meta_train('ts_events', meta_steps => 20) \g /dev/null
CREATE TABLE ts_support AS
SELECT context, item, behaviour, label FROM ts_events WHERE tenant = 'ts_store4' ORDER BY md5(item) LIMIT 24;
SELECT ecom_adapt('ts_new', 'ts_support') \g /dev/null
CREATE TABLE ts_items AS SELECT ARRAY(SELECT DISTINCT item FROM ts_events ORDER BY 1 LIMIT 20) AS items;
SELECT count(*) FROM ts_items, generate_series(1, 300) i,
       ecom_serve('ts_new', 'shopper ' || (i % 7), items, 10, 'click', NULL, 'none') \g /dev/null
ANALYZE ecom.requests, ecom.impressions;
SQL
PGOPTIONS="-c sc.n=$N" $T -d servecost_taste <<SQL
$TIMING
CALL pg_temp.time_serve('ts_new', 'shopper ', 7, 'ts_items', ARRAY['none', 'thompson'], ', dense block');
SELECT format('a store adapted along %s taste directions of the global head; its click block covers %s informed directions',
              (g.metrics->'taste'->'rank'->>1), t.posterior[3082])
  FROM ecom.heads t, ecom.heads g WHERE t.tenant = 'ts_new' AND t.active AND g.tenant IS NULL AND g.active;
$REPORT
SQL
