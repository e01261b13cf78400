-- ecom_similarity: cosine similarity of two real[]
SELECT ecom_similarity('{1,0}', '{1,0}') AS same, ecom_similarity('{1,0}', '{-3,0}') AS opposite,
       ecom_similarity('{1,0}', '{0,2}') AS orthogonal;
SELECT round(ecom_similarity('{1,2,3}', '{2,4,6.5}')::numeric, 6) AS nearly_parallel;
-- zero vector: no direction, NaN (as pgvector)
SELECT ecom_similarity('{0,0}', '{1,0}') AS zero_vector;
SELECT ecom_similarity('{}', '{}') AS empty;
-- NULL arguments: NULL (strict); NULL elements: error
SELECT ecom_similarity(NULL, '{1}') IS NULL AS null_a, ecom_similarity('{1}', NULL) IS NULL AS null_b;
SELECT ecom_similarity('{1,NULL}', '{1,2}');
SELECT ecom_similarity('{1,2}', '{NULL,2}');
-- length mismatch
SELECT ecom_similarity('{1,2}', '{1,2,3}');
SELECT ecom_similarity(ecom_embed('socks'), '{1,2,3}');
-- NaN and infinity propagate
SELECT ecom_similarity('{NaN,1}', '{1,1}') AS with_nan, ecom_similarity('{Infinity,1}', '{1,1}') AS with_inf;
