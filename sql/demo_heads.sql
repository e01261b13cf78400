-- pg_ecom main job, part 2: meta-learned scoring with MovieLens-100K genres
-- as tenants (a new store with a few dozen labelled events of its own),
-- from text alone: the head gets no side features, so what a store learns
-- from its events is its taste. Run by scripts/demo with :events (CSV from
-- benches/eval/prepare.py --text-only).
\set ON_ERROR_STOP on
\pset footer off
SET pg_ecom.embedding_cache_mb = 256;
DROP TABLE IF EXISTS ml_events CASCADE;
CREATE TABLE ml_events (tenant text, usr int, ts bigint, trank int, context text, item text, label boolean,
                        features real[], pop real, early boolean, sampled boolean);
\set copy_cmd '\\copy ml_events FROM ' :'events' ' WITH (FORMAT csv, HEADER true)'
:copy_cmd
-- four stores held out (a fixed, arbitrary choice: by the hash of the name)
CREATE OR REPLACE VIEW held_out AS
  SELECT tenant FROM (SELECT DISTINCT tenant FROM ml_events) t ORDER BY md5(tenant) LIMIT 4;
\echo '== tenants: one store per genre; the held-out stores learn from their 32 earliest ratings'
SELECT count(DISTINCT tenant) AS tenants, count(*) AS events,
       count(DISTINCT tenant) FILTER (WHERE tenant IN (SELECT tenant FROM held_out)) AS held_out
  FROM ml_events;

\echo '== meta-training the global head on every other store'
DELETE FROM ecom.heads;
CREATE OR REPLACE VIEW meta_src AS
  SELECT tenant, context, item, 'purchase'::text AS behaviour, label, features, ts
    FROM ml_events WHERE sampled AND tenant NOT IN (SELECT tenant FROM held_out);
\timing on
SELECT jsonb_pretty(ecom_meta_train('meta_src') - 'val_tenants') AS meta_train;
\timing off

\echo '== adapting each held-out store on its 32 earliest ratings; AUC on its next 300'
CREATE OR REPLACE FUNCTION pg_temp.auc(head text, t text) RETURNS numeric LANGUAGE sql AS $$
  WITH s AS (SELECT label, ecom_predict(head, context, item, 'purchase', features) AS score
               FROM ml_events WHERE tenant = t AND early AND trank > 64 AND trank <= 364),
       r AS (SELECT label, rank() OVER (ORDER BY score) + (count(*) OVER (PARTITION BY score) - 1) / 2.0 AS r FROM s)
  SELECT round(((sum(r) FILTER (WHERE label)) - count(*) FILTER (WHERE label) * (count(*) FILTER (WHERE label) + 1) / 2.0)
         / nullif(count(*) FILTER (WHERE label) * count(*) FILTER (WHERE NOT label), 0), 4) FROM r $$;
CREATE TEMP TABLE results (tenant text, auc_global numeric, auc_adapted numeric, adapt jsonb);
DO $$
DECLARE t text;
BEGIN
  FOR t IN SELECT tenant FROM held_out ORDER BY tenant LOOP
    EXECUTE format('CREATE OR REPLACE TEMP VIEW support AS SELECT context, item, %L::text AS behaviour, label, features
                      FROM ml_events WHERE tenant = %L AND early AND trank <= 32', 'purchase', t);
    INSERT INTO results SELECT t, pg_temp.auc('nobody', t), NULL, ecom_adapt(t, 'support');
    UPDATE results SET auc_adapted = pg_temp.auc(t, t) WHERE tenant = t;
  END LOOP;
END $$;
SELECT tenant AS store, auc_global AS global_head, auc_adapted AS adapted, auc_adapted - auc_global AS change,
       adapt->'moved' AS moved, (adapt->>'ms')::numeric AS adapt_ms
  FROM results ORDER BY tenant;

\echo '== the held-out store with the most ratings: its catalogue for one customer, before and after adaptation'
CREATE TEMP TABLE one_store AS
  SELECT tenant FROM ml_events WHERE tenant IN (SELECT tenant FROM held_out) GROUP BY tenant ORDER BY count(*) DESC, tenant LIMIT 1;
-- one customer's moment (the context of the store's 65th event); every
-- movie the store sold later is a candidate
CREATE TEMP TABLE moment AS
  SELECT context FROM ml_events JOIN one_store USING (tenant) WHERE early AND trank > 64 ORDER BY trank LIMIT 1;
CREATE TEMP TABLE slate AS
  SELECT DISTINCT m.context, e.item, e.features
    FROM moment m, ml_events e JOIN one_store USING (tenant)
   WHERE e.early AND e.trank > 64;
SELECT tenant AS store, (SELECT context FROM moment) AS customer_context, (SELECT count(*) FROM slate) AS candidates FROM one_store;
\timing on
SELECT b.rank, b.item AS global_head, a.item AS adapted
  FROM (SELECT rank() OVER (ORDER BY ecom_predict('nobody', context, item, 'purchase', features) DESC, item) AS rank, item FROM slate) b
  JOIN (SELECT rank() OVER (ORDER BY ecom_predict((SELECT tenant FROM one_store), context, item, 'purchase', features) DESC, item) AS rank, item FROM slate) a
 USING (rank)
 WHERE b.rank <= 10 ORDER BY b.rank;
\timing off

\echo '== why: the adapted top movie, term by term (ecom_explain; the terms add up to the logit)'
SELECT jsonb_pretty(ecom_explain((SELECT tenant FROM one_store), context, item, 'purchase', features) - 'tenant') AS explanation
  FROM slate
 ORDER BY ecom_predict((SELECT tenant FROM one_store), context, item, 'purchase', features) DESC, item
 LIMIT 1;
