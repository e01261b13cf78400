-- pg_ecom main job, part 2: meta-learned scoring on MovieLens-100K tenants.
-- Run by scripts/demo with :events (CSV from benches/eval/prepare.py).
\set ON_ERROR_STOP on
\pset footer off
SET pg_ecom.embedding_cache_mb = 256;
DROP TABLE IF EXISTS ml_events;
CREATE TABLE ml_events (tenant text, usr int, ts bigint, trank int, context text, item text, label boolean,
                        features real[], early boolean, sampled boolean);
\set copy_cmd '\\copy ml_events FROM ' :'events' ' WITH (FORMAT csv, HEADER true)'
:copy_cmd
\echo '== tenants (first genre of each movie) and their events'
SELECT tenant, count(*) AS events, round(avg(label::int), 2) AS positive_rate FROM ml_events GROUP BY 1 ORDER BY 2 DESC;

\echo '== meta-training the global head on every tenant but Crime (held out)'
DELETE FROM ecom.heads;
CREATE OR REPLACE VIEW meta_src AS
  SELECT tenant, context, item, 'purchase'::text AS behaviour, label, features, ts FROM ml_events WHERE sampled AND tenant <> 'Crime';
\timing on
SELECT jsonb_pretty(ecom_meta_train('meta_src') - 'val_tenants') AS meta_train;
\timing off

\echo '== adapting the new tenant Crime with its 16 earliest events'
CREATE OR REPLACE VIEW crime_support AS
  SELECT context, item, 'purchase'::text AS behaviour, label, features FROM ml_events WHERE tenant = 'Crime' AND early AND trank <= 16;
CREATE OR REPLACE VIEW crime_query AS
  SELECT * FROM ml_events WHERE tenant = 'Crime' AND early AND trank > 64;
CREATE OR REPLACE FUNCTION pg_temp.auc(t text) RETURNS numeric LANGUAGE sql AS $$
  WITH s AS (SELECT label, ecom_predict(t, context, item, 'purchase', features) AS score FROM crime_query),
       r AS (SELECT label, rank() OVER (ORDER BY score) + (count(*) OVER (PARTITION BY score) - 1) / 2.0 AS r FROM s)
  SELECT round(((sum(r) FILTER (WHERE label)) - count(*) FILTER (WHERE label) * (count(*) FILTER (WHERE label) + 1) / 2.0)
         / (count(*) FILTER (WHERE label) * count(*) FILTER (WHERE NOT label)), 4) FROM r $$;
SELECT pg_temp.auc('Crime') AS query_auc_before_adaptation;
\timing on
SELECT ecom_adapt('Crime', 'crime_support') AS adapt;
\timing off
SELECT pg_temp.auc('Crime') AS query_auc_after_adaptation;
SELECT tenant, active_version, versions, kind, training_rows, source FROM ecom.tenant_summary ORDER BY is_global DESC, tenant;

\echo '== top 10 Crime movies for one user, before (global head) and after adaptation'
CREATE TEMP TABLE one_user AS
  SELECT context, features FROM crime_query ORDER BY ts LIMIT 1;
SELECT context AS user_context FROM one_user;
CREATE TEMP TABLE crime_items AS
  SELECT DISTINCT ON (item) item, features FROM ml_events WHERE tenant = 'Crime' ORDER BY item, ts DESC;
\timing on
SELECT b.rank, b.item AS before_adaptation, a.item AS after_adaptation
  FROM (SELECT rank() OVER (ORDER BY ecom_predict('not-adapted', u.context, i.item, 'purchase', i.features[1:2] || u.features[3:4]) DESC, i.item) AS rank, i.item
          FROM crime_items i, one_user u) b
  JOIN (SELECT rank() OVER (ORDER BY ecom_predict('Crime', u.context, i.item, 'purchase', i.features[1:2] || u.features[3:4]) DESC, i.item) AS rank, i.item
          FROM crime_items i, one_user u) a USING (rank)
 WHERE b.rank <= 10 ORDER BY b.rank;
\timing off

\echo '== why: the top movie for that user, term by term (ecom_explain)'
SELECT jsonb_pretty(ecom_explain('Crime', u.context, i.item, 'purchase', i.features[1:2] || u.features[3:4]) - 'tenant') AS explanation
  FROM crime_items i, one_user u
 ORDER BY ecom_predict('Crime', u.context, i.item, 'purchase', i.features[1:2] || u.features[3:4]) DESC, i.item
 LIMIT 1;
