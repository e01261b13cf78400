-- ecom_predict_interval (core/src/interval.rs): ecom_predict's probability
-- with its credible interval under the serving head's posterior, the one
-- Thompson sampling draws from. Intervals hold the probability, widen with
-- the level, and narrow as a tenant's events teach its head.
-- 40 stores x 4 categories x 10 items, one event each; each store likes
-- two of the four categories (as taste.sql).
CREATE TABLE iv_events AS
WITH cats(c, name) AS (VALUES (0, 'trail running shoes'), (1, 'leather dress shoes'),
                              (2, 'crime mystery novel'), (3, 'vegan cookbook')),
     likes(p, a, b) AS (VALUES (0, 0, 1), (1, 2, 3), (2, 0, 2), (3, 1, 3))
SELECT 'iv_store' || s AS tenant,
       'shopper ' || ((s * 5 + r) % 7) AS context,
       name || ' no. ' || i AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || c || '/' || i || '/' || r)) % 100)
         < CASE WHEN c IN (l.a, l.b) THEN 75 ELSE 20 END AS label
  FROM generate_series(0, 39) s, cats, generate_series(0, 9) i, generate_series(0, 0) r, likes l
 WHERE l.p = s % 4;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('iv_events', meta_steps => 20) r;
-- the click posterior then has a dense block (taste directions), the
-- other behaviours a diagonal: both ways of computing a width are used
SELECT (metrics->'taste'->'rank'->>1)::int > 0 AS click_directions,
       (metrics->'taste'->'rank'->>0)::int AS browse_directions
  FROM ecom.heads WHERE tenant IS NULL AND active;
CREATE TABLE iv_items AS
SELECT name || ' no. ' || i AS item
  FROM unnest(ARRAY['trail running shoes', 'leather dress shoes', 'crime mystery novel', 'vegan cookbook']) name,
       generate_series(0, 9) i;

-- 1. the probability is ecom_predict's, inside its interval, for every
-- behaviour, served by the global head for a store it has never seen
SELECT b AS behaviour, count(*) AS items,
       bool_and(iv.probability = ecom_predict('iv_new', 'shopper 1', it.item, b)) AS probability_is_predict,
       bool_and(iv.lower < iv.probability AND iv.probability < iv.upper) AS inside,
       bool_and(iv.lower > 0 AND iv.upper < 1) AS within_0_1
  FROM unnest(ARRAY['browse', 'click', 'cart', 'purchase']) b, iv_items it,
       LATERAL ecom_predict_interval('iv_new', 'shopper 1', it.item, b) iv
 GROUP BY b ORDER BY b;

-- 2. a higher level is a wider interval around the same probability
SELECT bool_and(a.lower > b.lower AND b.lower > c.lower AND a.upper < b.upper AND b.upper < c.upper) AS nested,
       bool_and(a.probability = c.probability) AS same_probability
  FROM iv_items it,
       LATERAL ecom_predict_interval('iv_new', 'shopper 1', it.item, 'click', 0.5) a,
       LATERAL ecom_predict_interval('iv_new', 'shopper 1', it.item, 'click', 0.9) b,
       LATERAL ecom_predict_interval('iv_new', 'shopper 1', it.item, 'click', 0.99) c;

-- 3. a store's own events narrow its intervals: adapted on 40 events its
-- head is surer than the global head is of a store it has never seen,
-- and learning from impressions narrows them further
CREATE TABLE iv_support AS SELECT context, item, behaviour, label FROM iv_events WHERE tenant = 'iv_store6';
SELECT (r->>'version')::int AS version FROM ecom_adapt('iv_store6', 'iv_support') r;
CREATE FUNCTION pg_temp.iv_width(t text) RETURNS float8 LANGUAGE sql AS $$
  SELECT avg(iv.upper - iv.lower) FROM iv_items it,
         LATERAL ecom_predict_interval(t, 'shopper 1', it.item, 'click') iv $$;
SELECT pg_temp.iv_width('iv_store6') < pg_temp.iv_width('iv_new') AS adapted_is_surer;
CREATE TEMP TABLE iv_before AS SELECT pg_temp.iv_width('iv_store6') AS width;
SET pg_ecom.feedback_window = 0;
SELECT count(*) AS shown
  FROM generate_series(1, 30) r,
       LATERAL ecom_serve('iv_store6', 'shopper ' || r % 7, ARRAY(SELECT item FROM iv_items), 5, 'click', NULL, 'thompson', r);
SELECT count(*) > 0 AS clicked FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'click')
 WHERE i.tenant = 'iv_store6' AND (i.item LIKE 'crime%' OR i.item LIKE 'vegan%');
SELECT (r->>'n')::int = 150 AS learned_from_every_impression FROM ecom_learn('iv_store6', activate => 'always') r;
SELECT pg_temp.iv_width('iv_store6') < width AS learning_narrows FROM iv_before;

-- 4. NULL context, item, behaviour or level: no row
SELECT count(*) AS rows FROM ecom_predict_interval('iv_new', NULL, 'vegan cookbook no. 1');
SELECT count(*) AS rows FROM ecom_predict_interval('iv_new', 'shopper 1', NULL);
SELECT count(*) AS rows FROM ecom_predict_interval('iv_new', 'shopper 1', 'vegan cookbook no. 1', NULL);
SELECT count(*) AS rows FROM ecom_predict_interval('iv_new', 'shopper 1', 'vegan cookbook no. 1', 'click', NULL);

-- 5. bad input is a clear ERROR
SELECT * FROM ecom_predict_interval('iv_new', 'shopper 1', 'vegan cookbook no. 1', 'click', 0);
SELECT * FROM ecom_predict_interval('iv_new', 'shopper 1', 'vegan cookbook no. 1', 'click', 1);
SELECT * FROM ecom_predict_interval('iv_new', 'shopper 1', 'vegan cookbook no. 1', 'click', 'NaN');
SELECT * FROM ecom_predict_interval('iv_new', 'shopper 1', 'vegan cookbook no. 1', 'like');
SELECT * FROM ecom_predict_interval('iv_store6', 'shopper 1', 'vegan cookbook no. 1', 'click', 0.9, '{1}');

SELECT ecom_forget('iv_store6')->'heads' AS heads;
RESET pg_ecom.feedback_window;
DROP TABLE iv_events, iv_items, iv_support;
