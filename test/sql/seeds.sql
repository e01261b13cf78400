-- A seed is stored as given, so the stored value can be passed back and
-- reproduces the head; negative and extreme seeds never overflow.
CREATE TABLE sd_events AS
SELECT 'sd_shop' || (g % 3) AS tenant, 'viewed: item ' || (g % 7) AS context,
       'item ' || (g % 5) AS item, 'purchase'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 120) g;
CREATE TABLE sd_support AS SELECT context, item, behaviour, label FROM sd_events WHERE tenant = 'sd_shop1';
SELECT seed, (r->>'version')::int > 0 AS trained
  FROM unnest(ARRAY[-1, 9223372036854775807, -9223372036854775808]::bigint[]) seed,
       LATERAL ecom_meta_train('sd_events', meta_steps => 10, seed => seed) r;
SELECT hyper->'config'->>'seed' AS stored_seed FROM ecom.heads WHERE tenant IS NULL ORDER BY version DESC LIMIT 3;
SELECT seed, (r->>'version')::int AS version
  FROM unnest(ARRAY[-1, 9223372036854775807, -9223372036854775808]::bigint[]) seed,
       LATERAL ecom_adapt('sd_seeded', 'sd_support', seed => seed) r;
SELECT version, hyper->>'seed' AS stored_seed FROM ecom.heads WHERE tenant = 'sd_seeded' ORDER BY version;
-- pass each stored seed back: the same head again
SELECT v.version AS original, (ecom_adapt('sd_seeded', 'sd_support', seed => (v.hyper->>'seed')::bigint)->>'version')::int AS again
  FROM ecom.heads v WHERE v.tenant = 'sd_seeded' ORDER BY v.version;
SELECT a.version, b.version AS again, a.weights = b.weights AS same_weights
  FROM ecom.heads a JOIN ecom.heads b ON b.tenant = a.tenant AND b.version = a.version + 3
 WHERE a.tenant = 'sd_seeded' ORDER BY a.version;
SELECT ecom_forget('sd_seeded') AS deleted;
SELECT ecom_rollback(NULL, (SELECT max(version) - 3 FROM ecom.heads WHERE tenant IS NULL)) IS NOT NULL AS global_restored;
DROP TABLE sd_events, sd_support;
