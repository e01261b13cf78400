-- Which head serves a row: remembered within one statement, never stale
-- after a write, a rollback to a savepoint, or in a PL/pgSQL loop.
CREATE TABLE sv_events AS
SELECT 'shop' || (g % 4) AS tenant,
       'viewed: ' || (ARRAY['tea', 'bikes', 'paint', 'tents'])[1 + g % 4] AS context,
       (ARRAY['green tea tin', 'road bike helmet', 'acrylic paint set', 'dome tent'])[1 + (g / 4 + (g % 3)) % 4] AS item,
       'purchase' AS behaviour,
       (g / 4 + (g % 3)) % 4 = g % 4 AS label
  FROM generate_series(1, 160) g;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('sv_events', meta_steps => 20) r;
CREATE TABLE sv_items AS SELECT i, ecom_embed(t) AS emb
  FROM unnest(ARRAY['green tea tin', 'road bike helmet', 'acrylic paint set', 'dome tent']) WITH ORDINALITY u(t, i);
CREATE TABLE sv_support AS SELECT context, item, behaviour, NOT label AS label FROM sv_events WHERE tenant = 'shop1';
-- a whole table scored in one statement agrees with row-at-a-time calls
SELECT bool_and(abs(s - ecom_predict_emb('shop1', ecom_embed('viewed: bikes'), emb)) < 1e-12) AS same_per_row
  FROM (SELECT emb, ecom_predict_emb('shop1', ecom_embed('viewed: bikes'), emb) AS s FROM sv_items) t;
-- a savepoint: the adapted head serves inside it, the global head after ROLLBACK TO
BEGIN;
SELECT ecom_predict_emb('shop1', ecom_embed('viewed: bikes'), emb) AS before FROM sv_items WHERE i = 2 \gset
SAVEPOINT s;
SELECT r->'version' AS version FROM ecom_adapt('shop1', 'sv_support', start => 'global') r;
SELECT ecom_predict_emb('shop1', ecom_embed('viewed: bikes'), emb) AS adapted FROM sv_items WHERE i = 2 \gset
ROLLBACK TO SAVEPOINT s;
SELECT ecom_predict_emb('shop1', ecom_embed('viewed: bikes'), emb) AS rolled_back FROM sv_items WHERE i = 2 \gset
COMMIT;
SELECT :adapted <> :before AS adapted_differs, :rolled_back = :before AS rollback_restores;
-- a PL/pgSQL loop evaluates the same expression again and again: each
-- iteration must see the head the previous iteration wrote
DO $$
DECLARE prev float8; cur float8; changed int := 0;
BEGIN
  FOR k IN 1..3 LOOP
    cur := ecom_predict_emb('shop2', ecom_embed('viewed: paint'), (SELECT emb FROM sv_items WHERE i = 3));
    IF prev IS NOT NULL AND cur <> prev THEN changed := changed + 1; END IF;
    prev := cur;
    PERFORM ecom_adapt('shop2', 'sv_support', start => 'active', steps => 20);
  END LOOP;
  RAISE NOTICE 'iterations that saw a new head: %', changed;
END $$;
-- a tenant forgotten mid-transaction is served by the global head at once
BEGIN;
SELECT ecom_predict_emb('shop2', ecom_embed('viewed: paint'), emb) = ecom_predict_emb('nobody', ecom_embed('viewed: paint'), emb) AS before_forget_global
  FROM sv_items WHERE i = 3;
SELECT ecom_forget('shop2') AS deleted;
SELECT ecom_predict_emb('shop2', ecom_embed('viewed: paint'), emb) = ecom_predict_emb('nobody', ecom_embed('viewed: paint'), emb) AS after_forget_global
  FROM sv_items WHERE i = 3;
COMMIT;
-- scoring only reads: no transaction id is assigned (so it also runs on a
-- hot standby, see test/t/008_replica.sh), even when a new head's weights are decoded
SELECT (r->>'version')::int > 0 AS adapted FROM ecom_adapt('shop1', 'sv_support', seed => 7) r;
BEGIN;
SELECT ecom_predict_emb('shop1', ecom_embed('viewed: bikes'), emb) BETWEEN 0 AND 1 AS scored FROM sv_items WHERE i = 1;
SELECT ecom_predict('shop1', 'viewed: tea', 'green tea tin') BETWEEN 0 AND 1 AS scored_text;
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid_assigned;
COMMIT;
-- a read-only transaction scores, and refuses to write heads
BEGIN READ ONLY;
SELECT ecom_predict('shop1', 'viewed: tea', 'green tea tin') BETWEEN 0 AND 1 AS scored_read_only;
SELECT ecom_adapt('shop1', 'sv_support');
ROLLBACK;
SELECT ecom_forget('shop1');
SELECT ecom_rollback(NULL, (SELECT min(version) FROM ecom.heads WHERE tenant IS NULL));
DROP TABLE sv_events, sv_items, sv_support;
