-- What benches/loop/throughput.sh and serve_cost.sh serve from: four
-- stores of synthetic click events, a meta-trained global head under a
-- prior that keeps Thompson sampling exploring (what a draw costs does not
-- depend on the prior; how many propensity draws a call makes does: an
-- uncertain ranking makes all of them), and 20 candidate items.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS pg_ecom CASCADE;
DROP TABLE IF EXISTS bench_events, bench_items;
CREATE EXTENSION pg_ecom;
CREATE TABLE bench_events AS
SELECT 'store' || (g % 4) AS tenant, 'viewed: product ' || (g % 20) AS context,
       'product ' || (g % 50) || ' ' || (ARRAY['tea', 'bike', 'book', 'lamp', 'shoe'])[1 + g % 5] AS item,
       'click'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 2000) g;
SELECT ecom_meta_train('bench_events', meta_steps => 20);
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}', '{"gain": 1.0, "side": 1.0, "bias": 1.0, "taste": 2.0}') WHERE tenant IS NULL AND active;
CREATE TABLE bench_items AS SELECT array_agg(DISTINCT item) AS items FROM (SELECT item FROM bench_events LIMIT 20) x;
