-- Vectorizers without a background worker: ecom_vectorizer_run embeds what
-- the triggers queued (in worker mode the worker may take part; the end
-- state is the same). The worker itself, crashes and concurrency:
-- test/t/012_vectorizer.sh.
SET client_min_messages = warning;  -- attach's NOTICE where no worker runs
CREATE FUNCTION vz_wrong(e real[], t text) RETURNS boolean LANGUAGE sql AS $$
  SELECT CASE WHEN t IS NULL THEN e IS NOT NULL WHEN e IS NULL THEN true
              ELSE (SELECT max(abs(a - b)) > 1e-5 FROM unnest(e, ecom_embed(t)) u(a, b)) END $$;
-- runs the queue dry (a worker may hold a batch for a moment)
CREATE FUNCTION vz_settle() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..600 LOOP
    PERFORM ecom_vectorizer_run();
    IF NOT EXISTS (SELECT FROM ecom.vectorizer_queue WHERE attempts < 3) THEN RETURN true; END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN false;
END $$;
CREATE TABLE vz_items (sku text PRIMARY KEY, title varchar(100), emb real[], price numeric);
INSERT INTO vz_items VALUES ('a1', 'wool socks', NULL, 4), ('a2', 'green tea', NULL, 7), ('a3', NULL, '{1,2}', 1);
-- (inside one transaction, so that a worker cannot take them before we look)
BEGIN;
SELECT ecom_vectorizer_attach('vz_items', 'title', 'emb', role => 'item', batch_size => 2) > 0 AS attached;
SELECT count(*) AS queued FROM ecom.vectorizer_queue q JOIN ecom.vectorizers z ON z.id = q.vectorizer WHERE z.source = 'vz_items'::regclass;
COMMIT;
SELECT vz_settle();
SELECT sku, emb IS NULL AS no_embedding, vz_wrong(emb, title) AS wrong FROM vz_items ORDER BY sku;
-- inserts, text updates, an update that keeps the text, a price change
BEGIN;
INSERT INTO vz_items VALUES ('b1', 'leather boots'), ('b2', 'steel kettle');
UPDATE vz_items SET title = 'merino wool socks' WHERE sku = 'a1';
UPDATE vz_items SET title = 'black tea' WHERE sku = 'a3';
UPDATE vz_items SET title = title, price = price + 1 WHERE sku = 'a2';
SELECT q.key FROM ecom.vectorizer_queue q JOIN ecom.vectorizers z ON z.id = q.vectorizer
 WHERE z.source = 'vz_items'::regclass ORDER BY q.seq;
COMMIT;
SELECT vz_settle();
SELECT sku, vz_wrong(emb, title) AS wrong FROM vz_items ORDER BY sku;
-- a row changed twice ends with its latest text (whether or not the worker
-- embedded the first change in between)
UPDATE vz_items SET title = 'green tea tin' WHERE sku = 'a2';
UPDATE vz_items SET title = 'green tea tin, 200 g' WHERE sku = 'a2';
SELECT vz_settle();
SELECT vz_wrong(emb, 'green tea tin, 200 g') AS wrong_latest, vz_wrong(emb, 'green tea tin') AS wrong_older FROM vz_items WHERE sku = 'a2';
-- a rolled-back change queues nothing
BEGIN;
INSERT INTO vz_items VALUES ('c1', 'never here');
UPDATE vz_items SET title = 'never this' WHERE sku = 'b1';
ROLLBACK;
SELECT count(*) AS queued_after_rollback FROM ecom.vectorizer_queue;
SELECT pending, failed, rows_embedded >= 8 AS embedded_all, rows_failed, last_error FROM ecom.vectorizer_status WHERE source = 'vz_items'::regclass;
-- what it reads cannot go while attached
ALTER TABLE vz_items DROP COLUMN title;
ALTER TABLE vz_items RENAME COLUMN emb TO embedding;
ALTER TABLE vz_items RENAME COLUMN sku TO code;
ALTER TABLE vz_items DROP COLUMN price;  -- a column it does not read
-- detach: triggers and queue go, the embeddings stay
SELECT ecom_vectorizer_detach(id) FROM ecom.vectorizers WHERE source = 'vz_items'::regclass;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'vz_items'::regclass;
INSERT INTO vz_items VALUES ('d1', 'after detach');
SELECT count(*) AS queued FROM ecom.vectorizer_queue;
SELECT count(*) FILTER (WHERE emb IS NOT NULL) AS embedded FROM vz_items;
-- a dropped table takes its vectorizer along
CREATE TABLE vz_gone (id int PRIMARY KEY, title text, emb real[]);
SELECT ecom_vectorizer_attach('vz_gone', 'title', 'emb') > 0 AS attached;
DROP TABLE vz_gone;
SELECT count(*) AS vectorizers_left FROM ecom.vectorizers;
-- the event triggers fire on every role's DDL: a role that cannot read
-- ecom's tables still alters and drops its own
CREATE ROLE vz_plain;
GRANT CREATE ON SCHEMA public TO vz_plain;
GRANT USAGE ON SCHEMA ecom TO vz_plain;
SET ROLE vz_plain;
CREATE TABLE vz_own (id int PRIMARY KEY, note text);
-- nor hang the vectorizer's trigger functions on it (they run as the
-- extension's owner), nor call its internal functions
CREATE TRIGGER vz_own_queue AFTER INSERT ON vz_own REFERENCING NEW TABLE AS ecom_new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ecom.vectorizer_inserted('1', 'id');
SELECT ecom.vectorizer_batch(1, 10);
SELECT ecom_vectorizer_write('vz_own'::regclass, 'SELECT 1', '{}', 'item');
SELECT ecom_vectorizer_wake();
ALTER TABLE vz_own ADD COLUMN more text;
ALTER TABLE vz_own RENAME COLUMN note TO remark;
DROP TABLE vz_own;
RESET ROLE;
REVOKE USAGE ON SCHEMA ecom FROM vz_plain;
REVOKE CREATE ON SCHEMA public FROM vz_plain;
DROP ROLE vz_plain;
DROP TABLE vz_items;
DROP FUNCTION vz_wrong(real[], text), vz_settle();
RESET client_min_messages;
