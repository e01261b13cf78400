-- pg_ecom demo, part 3: Chinese and English shoppers (docs/encoders.md).
-- A catalogue of 105 products, each listed with an English and a Chinese
-- title (benches/multilingual/products.tsv, on stdin), searched in both
-- languages with multilingual-e5-small, then with the default MiniLM.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP TABLE IF EXISTS bilingual_products;
CREATE TABLE bilingual_products (category text, en_title text, zh_title text, en_query text, zh_query text);
\copy bilingual_products FROM pstdin WITH (FORMAT text)
CREATE TABLE IF NOT EXISTS catalogue (id serial PRIMARY KEY, lang text, title text, e5 real[]);
TRUNCATE catalogue;
INSERT INTO catalogue (lang, title)
SELECT l.lang, l.title FROM bilingual_products, LATERAL (VALUES ('en', en_title), ('zh', zh_title)) l(lang, title);

\echo '== the installed encoders'
SELECT coalesce(nullif(e->>'name', ''), '(default)') AS encoder, e->>'model' AS model, e->'prefixes'->>'context' AS prefix
  FROM jsonb_array_elements(ecom_model_info()->'encoders') e;

\echo '== embedding 210 titles with multilingual-e5-small'
SET pg_ecom.encoder = 'multilingual-e5-small';
UPDATE catalogue c SET e5 = b.embedding
  FROM (SELECT a.ids[ord] AS id, embedding
          FROM (SELECT array_agg(id ORDER BY id) AS ids, array_agg(title ORDER BY id) AS titles FROM catalogue) a,
               ecom_embed_batch(a.titles, 'item')) b
 WHERE c.id = b.id;

-- the best three matches in each language: e5 scores a query's own language
-- a little higher across the board, so a mixed top 5 would hide the other
PREPARE best_per_language(text) AS
WITH q AS MATERIALIZED (SELECT ecom_embed($1, 'context') AS e)
SELECT lang, rank, title, score FROM (
  SELECT c.lang, c.title, round(ecom_similarity(q.e, c.e5)::numeric, 3) AS score,
         row_number() OVER (PARTITION BY c.lang ORDER BY ecom_similarity(q.e, c.e5) DESC) AS rank
    FROM catalogue c, q) r
 WHERE rank <= 3 ORDER BY lang DESC, rank;

\echo '== a shopper types 降噪耳机 ("noise-cancelling headphones"): the best matches in each language'
EXECUTE best_per_language('降噪耳机');

\echo '== and "vacuum flask that keeps tea hot"'
EXECUTE best_per_language('vacuum flask that keeps tea hot');

\echo '== the same Chinese query with the default MiniLM: its vocabulary has few Chinese characters'
RESET pg_ecom.encoder;
SELECT ecom_tokens('降噪耳机') AS minilm_sees;
WITH q AS MATERIALIZED (SELECT ecom_embed('降噪耳机', 'context') AS e)
SELECT c.lang, c.title, round(ecom_similarity(q.e, ecom_embed(c.title))::numeric, 3) AS score
  FROM catalogue c, q ORDER BY score DESC LIMIT 5;
