-- Run once against a release-0.1.0 build (see test/t/009_upgrade.sh): the
-- heads and their scores that test/upgrade/heads-0.1.0.sql holds.
CREATE EXTENSION pg_ecom VERSION '0.1.0';
CREATE TABLE events AS
SELECT 'store' || (g % 3) AS tenant, 'viewed: item ' || (g % 7) AS context,
       'item ' || (g % 5) AS item, (ARRAY['click', 'purchase'])[1 + g % 2] AS behaviour,
       (g % 7) > (g % 5) AS label, ARRAY[(g % 5) / 5.0, (g % 3) / 3.0]::real[] AS features
  FROM generate_series(1, 240) g;
SELECT ecom_meta_train('events', meta_steps => 30) IS NOT NULL;
CREATE TABLE support1 AS SELECT context, item, behaviour, label, features FROM events WHERE tenant = 'store1';
CREATE TABLE support2 AS SELECT context, item, behaviour, NOT label AS label, features FROM events WHERE tenant = 'store2';
SELECT ecom_adapt('store1', 'support1') IS NOT NULL;
SELECT ecom_adapt('store1', 'support1', start => 'active', method => 'full', steps => 50) IS NOT NULL;
SELECT ecom_rollback('store1', 1) IS NOT NULL;
SELECT ecom_adapt('store2', 'support2', method => 'full', steps => 100, lr => 1) IS NOT NULL;
CREATE TABLE upgrade_expected AS
SELECT t AS tenant, c AS context, i AS item, b AS behaviour, f AS features,
       ecom_predict(t, c, i, b, f) AS p
  FROM unnest(ARRAY['store1', 'store2', 'nobody']) t,
       unnest(ARRAY['viewed: item 1', 'viewed: item 4']) c,
       unnest(ARRAY['item 0', 'item 3']) i,
       unnest(ARRAY['click', 'purchase']) b,
       (VALUES (ARRAY[0.2, 0.5]::real[])) v(f);
