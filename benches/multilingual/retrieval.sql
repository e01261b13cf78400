-- Bilingual retrieval: for each query (a shopper's words, in Chinese or
-- English), rank the 105 product titles of one language by cosine
-- similarity and check where its own product lands. Run by run.sh with
-- psql -v encoder=NAME, products.tsv (without its header) on stdin.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP TABLE IF EXISTS ml_products;
CREATE TEMP TABLE ml_products (category text, en_title text, zh_title text, en_query text, zh_query text);
\copy ml_products FROM pstdin WITH (FORMAT text)
ALTER TABLE ml_products ADD COLUMN id serial;
SELECT set_config('pg_ecom.encoder', :'encoder', false) IS NOT NULL AS set;
CREATE TEMP TABLE ml_titles AS
SELECT id, l.lang, ecom_embed(l.title, 'item') AS e
  FROM ml_products, LATERAL (VALUES ('en', en_title), ('zh', zh_title)) l(lang, title);
CREATE TEMP TABLE ml_queries AS
SELECT id, l.lang, ecom_embed(l.q, 'context') AS e
  FROM ml_products, LATERAL (VALUES ('en', en_query), ('zh', zh_query)) l(lang, q);
CREATE TEMP TABLE ml_ranks AS
SELECT q.lang AS q_lang, t.lang AS t_lang, q.id,
       1 + (SELECT count(*) FROM ml_titles o
             WHERE o.lang = t.lang AND o.id <> q.id
               AND ecom_similarity(q.e, o.e) > ecom_similarity(q.e, t.e)) AS rank
  FROM ml_queries q JOIN ml_titles t ON t.id = q.id;
\pset format unaligned
\pset tuples_only on
SELECT format('| %s | %s→%s | %s | %s | %s | %s |', coalesce(nullif(:'encoder', ''), 'all-MiniLM-L6-v2'),
              q_lang, t_lang, count(*),
              round(avg((rank <= 1)::int), 3), round(avg((rank <= 5)::int), 3), round(avg(1.0 / rank), 3))
  FROM ml_ranks GROUP BY q_lang, t_lang
 ORDER BY CASE q_lang || t_lang WHEN 'zhzh' THEN 1 WHEN 'zhen' THEN 2 WHEN 'enzh' THEN 3 ELSE 4 END;
