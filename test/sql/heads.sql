-- Meta-learned scoring: meta-train, predict, rank, adapt, versions, rollback, forget.
-- A small synthetic catalogue: five interests, a matching and an unrelated item
-- each; users buy what matches their interest. Deterministic.
CREATE TABLE interests (i int, interest text, good text, bad text);
INSERT INTO interests VALUES
  (0, 'running shoes', 'trail running shoes', 'cast iron pan'),
  (1, 'wool socks', 'merino hiking socks', 'phone charger'),
  (2, 'coffee', 'ceramic coffee mug', 'dog leash'),
  (3, 'yoga', 'cork yoga block', 'car wax'),
  (4, 'camping', 'two person tent', 'lipstick');
CREATE TABLE events AS
SELECT 'store' || (g % 5) AS tenant,
       'viewed: ' || c.interest AS context,
       CASE WHEN g % 3 = 0 THEN c.bad ELSE c.good END AS item,
       (ARRAY['purchase', 'click'])[1 + (g / 25) % 2] AS behaviour,
       (g % 3 <> 0) AS label
  FROM generate_series(1, 400) g JOIN interests c ON c.i = (g / 5) % 5;
-- before any training: a clear error
SELECT ecom_predict('store1', 'viewed: yoga', 'cork yoga block');
-- meta-train: one global head, stored and active
SELECT r->'version' AS version, r->'n' AS n, r->'tenants' AS tenants, r ? 'val_loss_after' AS validated
  FROM ecom_meta_train('events', meta_steps => 40) r;
SELECT tenant, is_global, active_version, versions, kind, training_rows, source, n_features FROM ecom.tenant_summary;
SELECT hyper->'config'->'seed' AS seed, hyper->'encoder'->>'variant' AS variant, length(hyper->'encoder'->>'sha256') AS sha_len
  FROM ecom.heads WHERE tenant IS NULL;
-- a global head whose taste may move stores a taste basis, empty (four
-- zero ranks) when no directions were learned, so that its tenants'
-- posteriors keep the directions their events inform; with the taste
-- frozen it stores none
SELECT (hyper->'prior'->>'taste')::float8 < 1e6 AS taste_moves, taste_basis[1:4] AS basis_ranks,
       (taste_basis IS NOT NULL) = ((hyper->'prior'->>'taste')::float8 < 1e6 OR coalesce(taste_basis[1:4] <> '{0,0,0,0}', false)) AS basis_when_the_taste_moves
  FROM ecom.heads WHERE tenant IS NULL;
-- predictions: probabilities, the matching item scores higher; unknown tenant = global head
SELECT ecom_predict('new-store', 'viewed: yoga', 'cork yoga block') > ecom_predict('new-store', 'viewed: yoga', 'car wax') AS matching_higher;
SELECT ecom_predict('new-store', 'viewed: yoga', 'cork yoga block') BETWEEN 0 AND 1 AS in_range;
SELECT ecom_predict('store1', 'viewed: yoga', 'cork yoga block') = ecom_predict('other', 'viewed: yoga', 'cork yoga block') AS cold_start_is_global;
SELECT array(SELECT jsonb_object_keys(ecom_predict_all('s', 'viewed: coffee', 'ceramic coffee mug'))) AS behaviours;
SELECT abs(ecom_predict('s', 'viewed: coffee', 'ceramic coffee mug', 'click')
         - (ecom_predict_all('s', 'viewed: coffee', 'ceramic coffee mug')->>'click')::float8) < 1e-9 AS all_agrees;
SELECT abs(ecom_predict_emb('s', ecom_embed('viewed: coffee'), ecom_embed('ceramic coffee mug'))
         - ecom_predict('s', 'viewed: coffee', 'ceramic coffee mug')) < 1e-6 AS emb_agrees;
-- ranking: batch-encoded, best first, NULL items skipped, k respected
SELECT item_index, item, rank FROM ecom_rank('s', 'viewed: camping', ARRAY['lipstick', 'two person tent', NULL, 'car wax'], 1);
SELECT count(*) FROM ecom_rank('s', 'viewed: camping', ARRAY['a', 'b', 'c']);
SELECT count(*) FROM ecom_rank('s', 'viewed: camping', '{}'::text[]);
-- bad input
SELECT ecom_predict('s', 'c', 'i', 'wishlist');
SELECT ecom_predict('s', 'c', 'i', 'purchase', '{1,2}');
SELECT ecom_predict_emb('s', '{1,2,3}', ecom_embed('x'));
SELECT ecom_predict_emb('s', ecom_embed('x'), array_fill('NaN'::real, ARRAY[384]));
SELECT ecom_rank('s', 'c', ARRAY['a'], 0);
SELECT ecom_predict(NULL, 'viewed: yoga', 'cork yoga block') IS NOT NULL AS null_tenant_is_cold_start,
       ecom_predict('s', NULL, 'x') IS NULL AS null_context, ecom_predict('s', 'x', NULL) IS NULL AS null_item;
-- adaptation: a new version per call, one active head, parent recorded in hyper
CREATE TABLE support AS SELECT context, item, behaviour, label FROM events WHERE tenant = 'store1' ORDER BY context, item LIMIT 16;
SELECT r->'tenant' AS tenant, r->'version' AS version, r->'n' AS n, r->'skipped' AS skipped,
       (r->>'loss_after')::float8 <= (r->>'loss_before')::float8 AS loss_not_worse
  FROM ecom_adapt('store1', 'support') r;
SELECT r->'version' AS version FROM ecom_adapt('store1', 'support', steps => 3, start => 'active') r;
SELECT tenant, version, parent_version, active, hyper->>'start' AS start, hyper->>'source' AS source
  FROM ecom.heads WHERE tenant = 'store1' ORDER BY version;
SELECT count(*) FILTER (WHERE active) AS active_heads FROM ecom.heads GROUP BY tenant ORDER BY 1;
-- NULL labels are skipped and counted
CREATE TABLE support_nulls AS SELECT * FROM support UNION ALL SELECT 'viewed: yoga', 'car wax', 'purchase', NULL;
SELECT r->'n' AS n, r->'skipped' AS skipped FROM ecom_adapt('store2', 'support_nulls') r;
-- bad adaptation input
SELECT ecom_adapt('store1', 'support', steps => 0);
SELECT ecom_adapt('store1', 'support', lr => -1);
SELECT ecom_adapt('store1', 'support', lr => 'NaN');
SELECT ecom_adapt('store1', 'support', start => 'yesterday');
SELECT ecom_adapt('store1', 'support', method => 'magic');
SELECT ecom_adapt(NULL, 'support');
SELECT ecom_adapt('store1', 'no_such_table');
CREATE TABLE empty_support (context text, item text, behaviour text, label boolean);
SELECT ecom_adapt('store1', 'empty_support');
CREATE TABLE missing_col (context text, item text, label boolean);
SELECT ecom_adapt('store1', 'missing_col');
CREATE TABLE wrong_type (context text, item text, behaviour text, label int);
SELECT ecom_adapt('store1', 'wrong_type');
CREATE TABLE bad_behaviour AS SELECT context, item, 'wishlist'::text AS behaviour, label FROM support;
SELECT ecom_adapt('store1', 'bad_behaviour');
CREATE TABLE with_features AS SELECT *, ARRAY[0.5]::real[] AS features FROM support;
SELECT ecom_adapt('store1', 'with_features');
-- transactional: a rolled-back adaptation leaves no version
BEGIN;
SELECT r->'version' AS version FROM ecom_adapt('store1', 'support') r;
ROLLBACK;
SELECT max(version) AS latest FROM ecom.heads WHERE tenant = 'store1';
-- rollback to an earlier version, then forget the tenant
SELECT ecom_rollback('store1', 1);
SELECT version, active FROM ecom.heads WHERE tenant = 'store1' ORDER BY version;
SELECT ecom_rollback('store1', 99);
SELECT ecom_forget('store1') AS deleted;
SELECT count(*) AS left_behind FROM ecom.heads WHERE tenant = 'store1';
SELECT ecom_forget(NULL);
-- side features: heads remember how many they were trained with
CREATE TABLE events_f AS SELECT tenant, context, item, behaviour, label,
       ARRAY[CASE WHEN label THEN 0.9 ELSE 0.1 END, 0.5]::real[] AS features FROM events;
SELECT r->'version' AS version FROM ecom_meta_train('events_f', meta_steps => 20) r;
SELECT ecom_predict('s', 'viewed: yoga', 'cork yoga block', 'purchase', '{0.9,0.5}')
     > ecom_predict('s', 'viewed: yoga', 'cork yoga block', 'purchase', '{0.1,0.5}') AS feature_used;
SELECT ecom_predict('s', 'viewed: yoga', 'cork yoga block');
SELECT ecom_predict('s', 'viewed: yoga', 'cork yoga block', 'purchase', '{0.9,NaN}');
SELECT count(*) FROM ecom_rank('s', 'viewed: yoga', ARRAY['a', 'b'], 5, 'purchase', '{0.1,0.5,0.9,0.5}');
SELECT count(*) FROM ecom_rank('s', 'viewed: yoga', ARRAY['a', 'b'], 5, 'purchase', '{0.1,0.5}');
SELECT ecom_adapt('store3', 'support');
-- bad meta-train input
CREATE TABLE no_tenant AS SELECT context, item, behaviour, label FROM events;
SELECT ecom_meta_train('no_tenant');
SELECT ecom_meta_train('events', inner_steps => -1);
SELECT ecom_meta_train('events', lr => 0);
SELECT ecom_meta_train('events', val_fraction => 1.5);
-- meta-training is transactional too
BEGIN;
SELECT r->'version' AS version FROM ecom_meta_train('events', meta_steps => 5) r;
ROLLBACK;
SELECT max(version) AS latest_global FROM ecom.heads WHERE tenant IS NULL;
-- roll the global head back to the text-only version
SELECT ecom_rollback(NULL, 1);
SELECT active_version, n_features FROM ecom.tenant_summary WHERE is_global;
-- statement_timeout stops a long meta-training between steps; nothing is stored
SET statement_timeout = '500ms';
SELECT ecom_meta_train('events', meta_steps => 10000000);
RESET statement_timeout;
SELECT count(*) AS global_versions FROM ecom.heads WHERE tenant IS NULL;
DROP TABLE interests, events, support, support_nulls, empty_support, missing_col, wrong_type, bad_behaviour, with_features, events_f, no_tenant;
