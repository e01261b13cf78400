-- Encoder functions declare what they cost, so the planner computes them
-- after a Sort/Limit instead of for every row (ORDER BY … LIMIT 5 encodes 5).
CREATE TABLE pl_big AS SELECT g AS id, 'planner item ' || g AS t FROM generate_series(1, 2000) g;
ANALYZE pl_big;
EXPLAIN (VERBOSE, COSTS OFF) SELECT ecom_embed(t) FROM pl_big ORDER BY id LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT ecom_predict('pl', 'viewed: planner', t) FROM pl_big ORDER BY id LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT ecom_predict_all('pl', 'viewed: planner', t) FROM pl_big ORDER BY id LIMIT 5;
-- and it does encode only those: the cache saw 5 new texts
SELECT (ecom_model_info()->'embedding_cache'->>'misses')::int AS misses \gset
SELECT count(e) AS rows FROM (SELECT ecom_embed(t) AS e FROM pl_big ORDER BY id LIMIT 5) s;
SELECT (ecom_model_info()->'embedding_cache'->>'misses')::int - :misses AS texts_encoded;
-- costs and row estimates as declared
SELECT proname, procost, prorows FROM pg_proc WHERE proname LIKE 'ecom\_%' ORDER BY proname, procost;
DROP TABLE pl_big;
