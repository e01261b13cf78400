-- A tenant forgotten and adapted again inside one transaction gets a new
-- version 1 with the same xmin as the deleted one: the new head must serve
-- at once, in this backend, after COMMIT and in a new connection (cached
-- heads are keyed on the row's never-reused id). Also across savepoints.
CREATE TABLE st_events AS
SELECT 'shop' || (g % 4) AS tenant,
       'viewed: ' || (ARRAY['tea', 'bikes', 'paint', 'tents'])[1 + g % 4] AS context,
       (ARRAY['green tea tin', 'road bike helmet', 'acrylic paint set', 'dome tent'])[1 + (g / 4 + (g % 3)) % 4] AS item,
       'purchase' AS behaviour,
       (g / 4 + (g % 3)) % 4 = g % 4 AS label
  FROM generate_series(1, 160) g;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('st_events', meta_steps => 20) r;
CREATE TABLE st_a AS SELECT context, item, behaviour, label FROM st_events WHERE tenant = 'shop1';
CREATE TABLE st_b AS SELECT context, item, behaviour, NOT label AS label FROM st_events WHERE tenant = 'shop1';
-- reference scores of heads adapted on A and on B (deterministic)
SELECT ecom_adapt('st_ref_a', 'st_a', method => 'full', steps => 200, lr => 1) IS NOT NULL AS ref_a;
SELECT ecom_adapt('st_ref_b', 'st_b', method => 'full', steps => 200, lr => 1) IS NOT NULL AS ref_b;
SELECT ecom_predict('st_ref_a', 'viewed: bikes', 'road bike helmet') AS ref_a,
       ecom_predict('st_ref_b', 'viewed: bikes', 'road bike helmet') AS ref_b \gset
SELECT :ref_a <> :ref_b AS references_differ;
-- the sequence of the report, in one transaction
BEGIN;
SELECT r->'version' AS version FROM ecom_adapt('st_coll', 'st_a', method => 'full', steps => 200, lr => 1) r;
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_a AS serves_a;
SELECT ecom_forget('st_coll') AS deleted;
SELECT r->'version' AS version FROM ecom_adapt('st_coll', 'st_b', method => 'full', steps => 200, lr => 1) r;
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_b AS serves_b_in_transaction;
COMMIT;
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_b AS serves_b_after_commit;
\c
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_b AS serves_b_in_new_connection;
-- with savepoints between the steps
SELECT ecom_forget('st_coll') AS deleted;
BEGIN;
SELECT r->'version' AS version FROM ecom_adapt('st_coll', 'st_a', method => 'full', steps => 200, lr => 1) r;
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_a AS serves_a;
SAVEPOINT s1;
SELECT ecom_forget('st_coll') AS deleted;
SAVEPOINT s2;
SELECT r->'version' AS version FROM ecom_adapt('st_coll', 'st_b', method => 'full', steps => 200, lr => 1) r;
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_b AS serves_b;
ROLLBACK TO SAVEPOINT s2;
-- forgotten, B rolled back: the global head serves
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = ecom_predict('nobody', 'viewed: bikes', 'road bike helmet') AS serves_global;
ROLLBACK TO SAVEPOINT s1;
-- the forget rolled back too: A again
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_a AS serves_a_again;
SELECT ecom_forget('st_coll') AS deleted;
SELECT r->'version' AS version FROM ecom_adapt('st_coll', 'st_b', method => 'full', steps => 200, lr => 1) r;
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_b AS serves_b;
COMMIT;
SELECT ecom_predict('st_coll', 'viewed: bikes', 'road bike helmet') = :ref_b AS serves_b_after_commit;
-- ids are never reused, whatever happened to the rows
SELECT count(*) = count(DISTINCT id) AS ids_unique FROM ecom.heads;
SELECT ecom_forget(t) FROM unnest(ARRAY['st_coll', 'st_ref_a', 'st_ref_b']) t;
DROP TABLE st_events, st_a, st_b;
