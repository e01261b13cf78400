-- ecom_embed: 384-d mean-pooled, L2-normalised sentence embedding
-- sentence-transformers' reference for "hello world": -0.0345 0.0310 0.0067 0.0261 -0.0394
SELECT array_agg(round(x::numeric, 4) ORDER BY i) AS first5
  FROM unnest((ecom_embed('hello world'))[1:5]) WITH ORDINALITY AS t(x, i);
SELECT array_length(ecom_embed('hello world'), 1) AS dims;
SELECT round(sqrt(sum(x::float8 * x))::numeric, 5) AS norm FROM unnest(ecom_embed('trail running shoes')) x;
-- deterministic
SELECT ecom_embed('wool socks') = ecom_embed('wool socks') AS deterministic;
-- related products are closer than unrelated ones
SELECT ecom_similarity(ecom_embed('running shoes'), ecom_embed('jogging sneakers'))
     > ecom_similarity(ecom_embed('running shoes'), ecom_embed('cast iron skillet')) AS related_closer;
-- empty, whitespace-only (same tokens, same embedding), NULL
SELECT array_length(ecom_embed(''), 1) AS empty_dims,
       ecom_embed('') = ecom_embed(E'  \t ') AS whitespace_same_as_empty,
       ecom_embed(NULL) IS NULL AS null_in_null_out;
-- 1 MB and 10 MB texts are truncated to pg_ecom.max_seq_len tokens, no error
SELECT array_length(ecom_embed(repeat('wool socks ', 100000)), 1) AS one_mb,
       array_length(ecom_embed(repeat('x', 10000000)), 1) AS ten_mb_one_word;
SELECT ecom_similarity(ecom_embed(repeat('wool socks ', 100000)), ecom_embed(repeat('wool socks ', 200))) > 0.99999 AS truncation_is_exact;
-- Chinese titles and emoji
SELECT array_length(ecom_embed('不锈钢保温杯 500ml'), 1) AS chinese,
       array_length(ecom_embed('🎉🎈🎁'), 1) AS emoji_only;
-- max_seq_len changes what the encoder sees
SET pg_ecom.max_seq_len = 3;
SELECT ecom_similarity(ecom_embed('socks and a very long description'), ecom_embed('socks')) > 0.99999 AS truncated_to_one_word;
RESET pg_ecom.max_seq_len;
-- works in a query over a table
CREATE TEMP TABLE products(id int, title text);
INSERT INTO products VALUES (1, 'merino wool socks'), (2, 'wool hiking socks'), (3, 'stainless steel saucepan');
SELECT b.id, round(ecom_similarity(ecom_embed(a.title), ecom_embed(b.title))::numeric, 2) > 0.5 AS similar
  FROM products a, products b WHERE a.id = 1 AND b.id <> 1 ORDER BY b.id;
