-- pg_ecom main job: MovieLens-100K movies as products, embedded in the database.
-- Run by scripts/demo, which passes :items (path of recbole's ml-100k.item).
\set ON_ERROR_STOP on
\pset footer off
DROP EXTENSION IF EXISTS pg_ecom CASCADE;
CREATE EXTENSION pg_ecom;

\echo '== the model this backend loaded (first call in a new connection)'
\timing on
SELECT array_length(ecom_embed('warm-up: first call loads the model'), 1) AS dims;
\timing off
SELECT jsonb_pretty(ecom_model_info() - 'source') AS model_info;

\echo '== loading MovieLens-100K items as products'
DROP TABLE IF EXISTS products;
CREATE TABLE products (
  item_id int PRIMARY KEY,
  title text NOT NULL,
  year int,
  genres text,
  item_text text GENERATED ALWAYS AS (title || coalesce(' (' || year || ')', '') || coalesce(' ' || genres, '')) STORED,
  embedding real[]
);
CREATE TEMP TABLE raw_items (item_id int, title text, year text, genres text);
\set copy_cmd '\\copy raw_items FROM PROGRAM ''tail -n +2 ' :items ''' WITH (FORMAT text)'
:copy_cmd
INSERT INTO products (item_id, title, year, genres)
SELECT item_id, title, CASE WHEN year ~ '^[0-9]{4}$' THEN year::int END, nullif(genres, '') FROM raw_items;
SELECT count(*) AS products FROM products;

\echo '== embedding every product with ecom_embed_batch (one ONNX Runtime run per 32 titles)'
\timing on
UPDATE products p SET embedding = b.embedding
  FROM (SELECT ids[ord] AS item_id, embedding
          FROM (SELECT array_agg(item_id ORDER BY item_id) AS ids,
                       array_agg(item_text ORDER BY item_id) AS texts FROM products) a,
               ecom_embed_batch(a.texts)) b
 WHERE p.item_id = b.item_id;
\timing off
SELECT count(*) FILTER (WHERE embedding IS NOT NULL) AS embedded, count(*) AS total FROM products;

\echo '== similar products: top 5 by cosine similarity of the stored embeddings'
\timing on
SELECT q.title AS for_title, s.rank, s.title AS similar_title, round(s.score::numeric, 3) AS score
  FROM products q
  CROSS JOIN LATERAL (
    SELECT p.title, ecom_similarity(q.embedding, p.embedding) AS score,
           row_number() OVER (ORDER BY ecom_similarity(q.embedding, p.embedding) DESC) AS rank
      FROM products p WHERE p.item_id <> q.item_id
     ORDER BY score DESC LIMIT 5) s
 WHERE q.title IN ('Toy Story', 'Star Wars', 'Fargo', 'Scream', 'Sense and Sensibility')
 ORDER BY q.title, s.rank;

\echo '== free-text search over the catalogue: "space adventure with aliens"'
-- the query text is embedded once (MATERIALIZED), not once per product row
WITH q AS MATERIALIZED (SELECT ecom_embed('space adventure with aliens') AS e)
SELECT p.title, p.year, round(ecom_similarity(q.e, p.embedding)::numeric, 3) AS score
  FROM products p, q ORDER BY score DESC LIMIT 5;
\timing off
