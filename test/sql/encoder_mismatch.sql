-- A head serves only the encoder it was made for: other embedding widths
-- are an ERROR with a hint (they gave garbage or a panic), another encoder
-- file of the same width one WARNING per backend.
CREATE TABLE em_events AS
SELECT 'em_shop' || (g % 3) AS tenant, 'viewed: item ' || (g % 7) AS context,
       'item ' || (g % 5) AS item, 'purchase'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 120) g;
SELECT ecom_meta_train('em_events', meta_steps => 10) IS NOT NULL AS trained;
CREATE TABLE em_support AS SELECT context, item, behaviour, label FROM em_events WHERE tenant = 'em_shop1';
-- as if made with an 8-dimensional encoder (t = 2*8+1, no side features:
-- 4*17 text weights + 4 gains + 4 biases)
INSERT INTO ecom.heads (tenant, version, behaviours, n_features, dims, weights, hyper, active)
VALUES ('em_small', 1, ARRAY['browse','click','cart','purchase'], 0, 8,
        array_fill(0.1::real, ARRAY[76]), '{"t": 17, "k": 0, "kind": "adapt"}', true);
-- and with a 1024-dimensional one
INSERT INTO ecom.heads (tenant, version, behaviours, n_features, dims, weights, hyper, active)
VALUES ('em_large', 1, ARRAY['browse','click','cart','purchase'], 0, 1024,
        array_fill(0.1::real, ARRAY[4 * 2049 + 8]), '{"t": 2049, "k": 0, "kind": "adapt"}', true);
SELECT ecom_predict('em_small', 'viewed: item 1', 'item 2');
SELECT ecom_predict('em_large', 'viewed: item 1', 'item 2');
SELECT ecom_predict_all('em_large', 'viewed: item 1', 'item 2');
SELECT * FROM ecom_rank('em_small', 'viewed: item 1', ARRAY['item 2', 'item 3']);
SELECT ecom_predict_emb('em_large', ecom_embed('viewed: item 1'), ecom_embed('item 2'));
SELECT ecom_adapt('em_small', 'em_support', start => 'active');
-- the same width, another encoder (sha256 recorded in the head's hyper)
INSERT INTO ecom.heads (tenant, version, behaviours, n_features, dims, weights, hyper, active)
SELECT 'em_other', 1, behaviours, n_features, dims, weights,
       jsonb_set(hyper, '{encoder,sha256}', '"00000000deadbeef00000000deadbeef00000000deadbeef00000000deadbeef"'), true
  FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT ecom_predict('em_other', 'viewed: item 1', 'item 2') BETWEEN 0 AND 1 AS scored_with_warning;
SELECT ecom_predict('em_other', 'viewed: item 1', 'item 3') BETWEEN 0 AND 1 AS scored_no_second_warning;
-- the head made with the loaded encoder: no warning
SELECT ecom_predict('em_shop1', 'viewed: item 1', 'item 2') BETWEEN 0 AND 1 AS scored;
SELECT ecom_forget(t) FROM unnest(ARRAY['em_small', 'em_large', 'em_other']) t;
DROP TABLE em_events, em_support;
