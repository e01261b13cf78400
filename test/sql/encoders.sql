-- More than one encoder: pg_ecom.encoder picks one that setup installed
-- (docs/encoders.md). The default stays all-MiniLM-L6-v2.
SELECT e->>'name' AS name, e->>'model' AS model, e->'prefixes' AS prefixes,
       (e->>'in_use')::bool AS in_use, e->'variants' AS variants
  FROM jsonb_array_elements(ecom_model_info()->'encoders') e ORDER BY 1;
SHOW pg_ecom.encoder;
-- MiniLM's vocabulary has little Chinese: a query in Chinese finds nothing
SELECT ecom_tokens('降噪耳机 🎧');

SET pg_ecom.encoder = 'multilingual-e5-small';
SELECT ecom_model_info()->>'model' AS model, ecom_model_info()->'prefixes' AS prefixes,
       ecom_model_info()->>'encoder' AS encoder, ecom_model_info()->'dims' AS dims;
-- special tokens and padding from its tokenizer: <s> … </s>
SELECT ecom_tokens('降噪耳机 noise-cancelling 🎧');
SELECT ecom_tokenize('query: 降噪耳机');
-- a long text is cut before tokenizing, at spaces only, and keeps </s> last
SELECT array_length(t, 1) AS n, t[1] AS first, t[64] AS last
  FROM (SELECT ecom_tokenize(repeat('降噪耳机,保温杯 ', 100000), 64) AS t) s;
SELECT ecom_tokenize('降噪耳机 保温杯 鼠标', 6) = (ecom_tokenize('降噪耳机 保温杯 鼠标 键盘 显示器', 512))[1:5] || 2 AS cut_matches_full;
-- a context and an item get the prefixes the manifest names (e5: "query: "
-- for both, the card's advice for short symmetric texts); the fixture
-- test (src/pg_tests.rs) checks that the prefix is what e5 saw
SELECT ecom_similarity(ecom_embed('wool socks', 'context'), ecom_embed('wool socks')) > 0.99999 AS same_prefix,
       ecom_similarity(ecom_embed('wool socks', 'item'), ecom_embed('wool socks')) > 0.99999 AS item_is_the_default,
       ecom_similarity(ecom_embed('wool socks', ' Context '), ecom_embed('wool socks', 'context')) > 0.99999 AS role_case_free;
-- across languages: a query in one finds products in both
CREATE TEMP TABLE enc_products (id int, title text);
INSERT INTO enc_products VALUES
  (1, 'Sony WH-1000XM5 wireless noise cancelling headphones'),
  (2, '索尼 WH-1000XM5 无线降噪耳机'),
  (3, 'Stainless steel vacuum flask 500 ml'),
  (4, '不锈钢保温杯 500ml'),
  (5, 'Logitech wireless gaming mouse'),
  (6, '罗技无线游戏鼠标'),
  (7, 'Merino wool hiking socks'),
  (8, '美利奴羊毛徒步袜');
SELECT q, string_agg(id::text, ',' ORDER BY rank) AS top2
  FROM (SELECT q, p.id, rank() OVER (PARTITION BY q ORDER BY ecom_similarity(ecom_embed(q, 'context'), ecom_embed(p.title)) DESC, p.id) AS rank
          FROM enc_products p, unnest(ARRAY['降噪耳机', 'noise cancelling headphones', '保温杯', 'gaming mouse', '羊毛袜子']) q) r
 WHERE rank <= 2 GROUP BY q ORDER BY q;
SELECT count(*) AS embedded, bool_and(array_length(embedding, 1) = 384) AS all_384
  FROM ecom_embed_batch(ARRAY(SELECT title FROM enc_products ORDER BY id), 'item');

-- a head records the encoder it was trained with; another encoder is an ERROR
SELECT ecom_predict(NULL, 'viewed: item 1', 'item 2');
SELECT * FROM ecom_rank(NULL, 'viewed: item 1', ARRAY['item 2']);
SELECT * FROM ecom_serve('enc_shop9', 'viewed: item 1', ARRAY['item 2']);
CREATE TEMP TABLE enc_support AS
SELECT 'viewed: item 1' AS context, 'item ' || g AS item, 'purchase' AS behaviour, g % 2 = 0 AS label
  FROM generate_series(1, 8) g;
SELECT ecom_adapt('enc_shop9', 'enc_support');
SELECT count(*) AS nothing_logged FROM ecom.requests WHERE tenant = 'enc_shop9';
-- training and adapting with this encoder work, and record it
BEGIN;
CREATE TEMP TABLE enc_events AS
SELECT 'enc_shop' || (g % 3) AS tenant, '浏览: 商品 ' || (g % 7) AS context,
       '商品 ' || (g % 5) AS item, 'purchase'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 120) g;
SELECT ecom_meta_train('enc_events', meta_steps => 10) IS NOT NULL AS trained;
SELECT hyper->'encoder'->>'model' AS recorded FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT (ecom_adapt('enc_shop1', 'enc_events') ->> 'version') IS NOT NULL AS adapted;
SELECT ecom_predict('enc_shop1', '浏览: 商品 1', '商品 2') BETWEEN 0 AND 1 AS scored;
RESET pg_ecom.encoder;
SELECT ecom_predict('enc_shop1', '浏览: 商品 1', '商品 2');
ROLLBACK;
RESET pg_ecom.encoder;
-- a head made with an encoder that is not installed
INSERT INTO ecom.heads (tenant, version, behaviours, n_features, dims, weights, hyper, active)
SELECT 'enc_elsewhere', 1, behaviours, n_features, dims, weights,
       jsonb_set(hyper, '{encoder,model}', '"BAAI/bge-small-zh-v1.5"'), true
  FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT ecom_predict('enc_elsewhere', 'viewed: item 1', 'item 2');
SELECT ecom_forget('enc_elsewhere');
-- the same model with other prefixes (an edited manifest) is another encoder
INSERT INTO ecom.heads (tenant, version, behaviours, n_features, dims, weights, hyper, active)
SELECT 'enc_prefixed', 1, behaviours, n_features, dims, weights,
       jsonb_set(hyper, '{encoder,prefixes}', '{"context": "query: ", "item": "passage: "}'), true
  FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT ecom_predict('enc_prefixed', 'viewed: item 1', 'item 2');
SELECT ecom_forget('enc_prefixed');
-- learning from and evaluating a tenant's loop check it too, before reading
SELECT count(*) AS shown FROM ecom_serve('enc_loop', 'viewed: item 1', ARRAY['item 2', 'item 3', 'item 4'], 2, explore => 'none');
SET pg_ecom.feedback_window = 0;
SET pg_ecom.encoder = 'multilingual-e5-small';
SELECT ecom_learn('enc_loop');
SELECT ecom_evaluate('enc_loop', NULL);
RESET pg_ecom.encoder;
RESET pg_ecom.feedback_window;
SELECT ecom_forget('enc_loop');

-- bad names and roles
SET pg_ecom.encoder = 'no-such-encoder';
SELECT ecom_embed('x');
SELECT ecom_tokens('x');
SET pg_ecom.encoder = '../../etc';
SET pg_ecom.encoder = 'a/b';
SHOW pg_ecom.encoder;
RESET pg_ecom.encoder;
-- the default also answers to its model's name
SET pg_ecom.encoder = 'all-MiniLM-L6-v2';
SELECT ecom_model_info()->>'model' AS model, ecom_model_info()->>'encoder' AS encoder, ecom_tokens('hello world') AS tokens;
RESET pg_ecom.encoder;
SELECT ecom_embed('x', 'query');
SELECT ecom_embed('x', NULL) IS NULL AS strict;
SELECT ecom_embed('hello world', 'context') = ecom_embed('hello world') AS minilm_has_no_prefixes;
