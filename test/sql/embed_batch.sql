-- ecom_embed_batch: one ONNX Runtime run per internal batch, same numbers as ecom_embed
SELECT b.ord, ecom_similarity(b.embedding, ecom_embed(t.x)) > 0.99999 AS same_as_single
  FROM ecom_embed_batch(ARRAY['wool socks', 'a much longer title about waterproof trail running shoes', '', 'mug']) b
  JOIN unnest(ARRAY['wool socks', 'a much longer title about waterproof trail running shoes', '', 'mug'])
       WITH ORDINALITY AS t(x, ord) USING (ord)
 ORDER BY b.ord;
-- NULL elements give a NULL embedding at their position; ords stay aligned
SELECT ord, embedding IS NULL AS is_null, array_length(embedding, 1) AS dims
  FROM ecom_embed_batch(ARRAY[NULL, 'socks', NULL, 'shoes']) ORDER BY ord;
SELECT count(*) FROM ecom_embed_batch(ARRAY[NULL, NULL]::text[]) WHERE embedding IS NULL;
-- empty array: no rows; NULL array: no rows (strict)
SELECT count(*) AS empty_array FROM ecom_embed_batch('{}'::text[]);
SELECT count(*) AS null_array FROM ecom_embed_batch(NULL);
-- more texts than one internal batch (32), in shuffled lengths
SELECT count(*) AS n, count(DISTINCT embedding) AS distinct_embeddings, min(ord), max(ord)
  FROM ecom_embed_batch(ARRAY(SELECT 'product ' || g || repeat(' extra', g % 7) FROM generate_series(1, 100) g));
SELECT bool_and(ecom_similarity(b.embedding, ecom_embed('product ' || b.ord || repeat(' extra', b.ord % 7))) > 0.99999) AS order_kept
  FROM ecom_embed_batch(ARRAY(SELECT 'product ' || g || repeat(' extra', g % 7) FROM generate_series(1, 100) g)) b;
-- multidimensional input is flattened in storage order
SELECT count(*) FROM ecom_embed_batch(ARRAY[['a', 'b'], ['c', 'd']]);
