-- The loop's defects found by a hostile probe of 0.3.0, one block each:
-- every block failed on 0.3.0. (Overlapping transactions, which need two
-- sessions, are in test/t/002_overlap.sh.)
CREATE TABLE ld_events AS
SELECT 'ld_' || (ARRAY['tea', 'bikes', 'books'])[1 + g % 3] AS tenant,
       'viewed: ' || (ARRAY['green tea', 'road bike', 'crime novel', 'oolong'])[1 + (g / 3) % 4] AS context,
       (ARRAY['green tea tin', 'road bike helmet', 'detective story', 'teapot', 'bike lights'])[1 + (g / 2 + g / 7) % 5] AS item,
       (ARRAY['click', 'purchase'])[1 + g % 2] AS behaviour,
       (g / 3) % 4 = (g / 2 + g / 7) % 5 OR g % 5 = 0 AS label
  FROM generate_series(1, 300) g;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('ld_events', meta_steps => 20) r;
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}', '{"gain": 1.0, "side": 1.0, "bias": 1.0, "taste": 2.0}')
 WHERE tenant IS NULL AND active;
CREATE TEMP TABLE ld_items AS
SELECT ARRAY['green tea tin', 'road bike helmet', 'detective story', 'teapot', 'bike lights'] AS items;
CREATE TABLE ld_support AS SELECT context, item, behaviour, label FROM ld_events WHERE tenant = 'ld_tea';
SET pg_ecom.feedback_window = 0;

-- 1. A version that served is never deleted, and no number is handed out twice
SELECT (ecom_adapt('ld_k', 'ld_support')->>'version')::int AS v1;
SELECT count(*) FROM generate_series(1, 2) g, ecom_serve('ld_k', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => g);
SELECT ecom_feedback(max(id), 'click') FROM ecom.impressions WHERE tenant = 'ld_k';
SELECT (r->>'version')::int AS v2, r->>'activated' AS activated FROM ecom_learn('ld_k', NULL, 'always') r;
SELECT count(*) FROM generate_series(3, 4) g, ecom_serve('ld_k', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => g);
SELECT ecom_rollback('ld_k', 1);
SELECT count(*) FROM ecom_serve('ld_k', 'viewed: green tea', (SELECT items FROM ld_items), 2, seed => 5);
SELECT (r->>'version')::int AS version, r->'replaced_versions' AS replaced FROM ecom_learn('ld_k', NULL, 'never') r;
-- version 2 is still there, and every request names a row that exists
SELECT version, active, ever_active, hyper->>'kind' AS kind FROM ecom.heads WHERE tenant = 'ld_k' ORDER BY version;
SELECT r.head_version, count(*) AS requests, bool_and(h.version = r.head_version) AS names_its_head
  FROM ecom.requests r LEFT JOIN ecom.heads h ON h.id = r.head_id
 WHERE r.tenant = 'ld_k' GROUP BY r.head_version ORDER BY 1;
-- a candidate that never served is still replaced, and its number is not reused
SELECT count(*) FROM ecom_serve('ld_k', 'viewed: green tea', (SELECT items FROM ld_items), 2, seed => 6);
SELECT (r->>'version')::int AS version, r->'replaced_versions' AS replaced FROM ecom_learn('ld_k', NULL, 'never') r;
SELECT count(*) FROM ecom_serve('ld_k', 'viewed: green tea', (SELECT items FROM ld_items), 2, seed => 7);
SELECT (r->>'version')::int AS version, r->'replaced_versions' AS replaced FROM ecom_learn('ld_k', NULL, 'never') r;
SELECT array_agg(version ORDER BY version) AS versions FROM ecom.heads WHERE tenant = 'ld_k';
-- a version a request names cannot be deleted, by anyone
\set VERBOSITY terse
DELETE FROM ecom.heads WHERE tenant = 'ld_k' AND version = 2;
\set VERBOSITY default
-- a version that was active once is kept even if nothing names it
SELECT ecom_rollback('ld_k', 5);
SELECT ecom_rollback('ld_k', 1);
SELECT count(*) FROM ecom_serve('ld_k', 'viewed: green tea', (SELECT items FROM ld_items), 2, seed => 8);
SELECT (r->>'version')::int AS version, r->'replaced_versions' AS replaced FROM ecom_learn('ld_k', NULL, 'never') r;
SELECT array_agg(version ORDER BY version) AS versions FROM ecom.heads WHERE tenant = 'ld_k';

-- 2. 'if_better' activates nothing without evidence: 6 tenants, 12
-- Thompson requests each, no feedback at all
SELECT count(*) FROM generate_series(1, 6) t, generate_series(1, 12) g,
       ecom_serve('ld_quiet' || t, 'viewed: road bike', (SELECT items FROM ld_items), 2, seed => g);
SELECT count(*) FILTER (WHERE (r->>'activated')::boolean) AS activated,
       count(*) FILTER (WHERE r->>'reason' LIKE 'no positive label among the % held-out impression(s)%') AS no_evidence
  FROM generate_series(1, 6) t, ecom_learn('ld_quiet' || t) r;
-- with evidence it does activate: logged uniformly at random (epsilon 1),
-- shoppers click only the item the global head ranks last. (These
-- scenarios judge the activation rules as 0.18.0 learned: under
-- pg_ecom.item_prior = 'tenant', version 1 learns that one item's effect
-- so strongly that, once shoppers turn to another, its DR estimate on the
-- 15 held-out requests is too wide to be a rate and nothing is judged until
-- more impressions come; item_prior.sql tests that setting.)
SET pg_ecom.item_prior = 'global';
SET pg_ecom.explore_epsilon = 1;
SELECT count(*) FROM generate_series(1, 100) g, ecom_serve('ld_judged', 'viewed: crime novel', (SELECT items FROM ld_items), 2, 'click', NULL, 'epsilon', g);
RESET pg_ecom.explore_epsilon;
SELECT item AS ranked_last FROM ecom_rank('ld_judged', 'viewed: crime novel', (SELECT items FROM ld_items), 5, 'click') ORDER BY rank DESC LIMIT 1 \gset
SELECT count(*) > 0 AND bool_and(ecom_feedback(id, 'click')) AS recorded FROM ecom.impressions WHERE tenant = 'ld_judged' AND item = :'ranked_last';
-- the rule is the paired difference: activated exactly when the lower end
-- of its interval is above 0 and both estimates' intervals meet [0, 1]
SELECT r->>'activated' AS activated, r->>'reason' LIKE '%, above 0' AS says_why,
       (r->>'activated')::boolean = ((r->'evaluation'->'difference'->'ci'->>0)::float8 > 0
                                     AND (r->'evaluation'->'candidate'->'dr'->'ci'->>1)::float8 >= 0 AND (r->'evaluation'->'candidate'->'dr'->'ci'->>0)::float8 <= 1
                                     AND (r->'evaluation'->'active'->'dr'->'ci'->>1)::float8 >= 0 AND (r->'evaluation'->'active'->'dr'->'ci'->>0)::float8 <= 1) AS rule_applied,
       r->'evaluation'->>'evidence' AS evidence
  FROM ecom_learn('ld_judged') r;
-- a successor to the tenant's own version needs what
-- pg_ecom.own_version_evidence asks: by default ('estimate') its estimate
-- above the serving version's, under 'interval' the interval's lower end.
-- Shoppers now click what the tenant's version ranks next to last, 16
-- requests: the estimate is above 0, the interval's lower end is not. The same learn
-- is judged under each setting (the first inside a transaction rolled back)
SELECT coalesce(max(id), 0) AS before_successor FROM ecom.impressions WHERE tenant = 'ld_judged' \gset
SET pg_ecom.explore_epsilon = 1;
SELECT count(*) FROM generate_series(101, 116) g, ecom_serve('ld_judged', 'viewed: crime novel', (SELECT items FROM ld_items), 2, 'click', NULL, 'epsilon', g);
RESET pg_ecom.explore_epsilon;
SELECT item AS own_ranked_next_to_last FROM ecom_rank('ld_judged', 'viewed: crime novel', (SELECT items FROM ld_items), 5, 'click') ORDER BY rank DESC OFFSET 1 LIMIT 1 \gset
SELECT bool_and(ecom_feedback(id, 'click')) AS recorded FROM ecom.impressions
 WHERE tenant = 'ld_judged' AND id > :before_successor AND item = :'own_ranked_next_to_last';
BEGIN;
SET LOCAL pg_ecom.own_version_evidence = 'interval';
SELECT r->>'activated' AS interval_activated, r->'evaluation'->'difference'->>'value' AS interval_difference,
       r->'evaluation'->>'evidence' AS interval_evidence,
       ((r->'evaluation'->'difference'->'ci'->>0)::float8 > 0) AS interval_lower_above_0
  FROM ecom_learn('ld_judged') r \gset
ROLLBACK;
SHOW pg_ecom.own_version_evidence;
SELECT :'interval_evidence' AS interval_evidence, :'interval_activated' AS interval_activated,
       :'interval_activated'::boolean = :'interval_lower_above_0'::boolean AS interval_rule_applied,
       r->'evaluation'->>'evidence' AS evidence, r->>'activated' AS activated,
       r->'evaluation'->'difference'->>'value' = :'interval_difference' AS same_difference,
       (r->'evaluation'->'difference'->>'value')::float8 > 0 AS estimate_above_0, :'interval_lower_above_0' AS lower_above_0,
       (r->>'activated')::boolean = ((r->'evaluation'->'difference'->>'value')::float8 > 0
                                     AND (r->'evaluation'->'candidate'->'dr'->'ci'->>1)::float8 >= 0 AND (r->'evaluation'->'candidate'->'dr'->'ci'->>0)::float8 <= 1
                                     AND (r->'evaluation'->'active'->'dr'->'ci'->>1)::float8 >= 0 AND (r->'evaluation'->'active'->'dr'->'ci'->>0)::float8 <= 1) AS rule_applied,
       r->>'reason' LIKE '%against the tenant''s own version % the estimate decides%' AS says_why
  FROM ecom_learn('ld_judged') r;
-- a refit over a window, and a learn while a version rolled back to
-- serves, ask for the interval again (each tried in a transaction rolled
-- back)
SELECT coalesce(max(id), 0) AS before_more FROM ecom.impressions WHERE tenant = 'ld_judged' \gset
SET pg_ecom.explore_epsilon = 1;
SELECT count(*) FROM generate_series(131, 146) g, ecom_serve('ld_judged', 'viewed: crime novel', (SELECT items FROM ld_items), 2, 'click', NULL, 'epsilon', g);
RESET pg_ecom.explore_epsilon;
SELECT bool_and(ecom_feedback(id, 'click')) AS recorded FROM ecom.impressions
 WHERE tenant = 'ld_judged' AND id > :before_more AND item = :'own_ranked_next_to_last';
BEGIN;
SELECT r->'evaluation'->>'evidence' AS evidence
  FROM ecom_learn('ld_judged', now() - interval '1 hour') r;
ROLLBACK;
SELECT min(version) AS first_served FROM ecom.heads WHERE tenant = 'ld_judged' AND ever_active \gset
BEGIN;
SELECT ecom_rollback('ld_judged', :first_served)->>'active_version' = :'first_served' AS rolled_back;
SELECT r->'evaluation'->>'evidence' AS evidence, r->>'reason' LIKE '%the interval decides (a later version that served was rolled back from)%' AS says_why
  FROM ecom_learn('ld_judged') r;
ROLLBACK;
SET pg_ecom.own_version_evidence = 'sometimes';
RESET pg_ecom.item_prior;

-- 3. Rows that cannot be learned are refused by the tables, and learning
-- skips any that are there (written before the constraints existed)
\set VERBOSITY terse
INSERT INTO ecom.requests (tenant, context, items, features, k, behaviour, explore, seed, head_version, head_id)
SELECT 'ld_poison', 'c', ARRAY['a', 'b'], '{NaN,Infinity,1,2}', 1, 'click', 'none', 1, version, id
  FROM ecom.heads WHERE tenant IS NULL AND active;
INSERT INTO ecom.requests (tenant, context, items, features, k, behaviour, explore, seed, head_version, head_id)
SELECT 'ld_poison', 'c', ARRAY['a', 'b'], '{1,NULL}', 1, 'click', 'none', 1, version, id
  FROM ecom.heads WHERE tenant IS NULL AND active;
INSERT INTO ecom.requests (tenant, context, items, k, behaviour, explore, seed, head_version, head_id)
SELECT 'ld_poison', 'c', ARRAY['a', 'b'], 1, 'wishlist', 'none', 1, version, id
  FROM ecom.heads WHERE tenant IS NULL AND active;
INSERT INTO ecom.requests (tenant, context, items, k, behaviour, explore, seed, head_version, head_id)
VALUES ('ld_poison', 'c', ARRAY['a', 'b'], 1, 'click', 'none', 1, 1, -1);
INSERT INTO ecom.impressions (request_id, tenant, context, item_index, item, rank, score, propensity, behaviour, head_version, explore)
SELECT min(id), 'ld_k', 'c', 1, 'i', 1, 'NaN', 1, 'click', 1, 'none' FROM ecom.requests WHERE tenant = 'ld_k';
INSERT INTO ecom.impressions (request_id, tenant, context, item_index, item, rank, score, propensity, behaviour, head_version, explore, features)
SELECT min(id), 'ld_k', 'c', 1, 'i', 1, 0.5, 1, 'click', 1, 'none', '{-Infinity}' FROM ecom.requests WHERE tenant = 'ld_k';
\set VERBOSITY default
-- rows like those, already there: learning skips them and stores a head that scores
BEGIN;
ALTER TABLE ecom.requests DROP CONSTRAINT requests_features_finite, DROP CONSTRAINT requests_behaviour_known;
ALTER TABLE ecom.impressions DROP CONSTRAINT impressions_behaviour_known;
SELECT count(*) FROM ecom_serve('ld_poison', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => 1);
INSERT INTO ecom.requests (tenant, context, items, features, k, behaviour, explore, seed, head_version, head_id)
SELECT 'ld_poison', 'c', ARRAY['a', 'b'], '{NaN,Infinity}', 1, 'click', 'none', 1, version, id
  FROM ecom.heads WHERE tenant IS NULL AND active;
INSERT INTO ecom.requests (tenant, context, items, k, behaviour, explore, seed, head_version, head_id)
SELECT 'ld_poison', 'c', ARRAY['a', 'b'], 1, 'wishlist', 'none', 1, version, id
  FROM ecom.heads WHERE tenant IS NULL AND active;
INSERT INTO ecom.impressions (request_id, tenant, context, item_index, item, rank, score, propensity, behaviour, head_version, explore)
SELECT r.id, 'ld_poison', 'c', 1, 'a', 1, 0.5, 1, r.behaviour, 1, 'none' FROM ecom.requests r WHERE tenant = 'ld_poison' AND context = 'c';
SELECT ecom_feedback(i.id, 'click') FROM ecom.impressions i JOIN ecom.requests r ON r.id = i.request_id
 WHERE i.tenant = 'ld_poison' AND r.behaviour = 'click';
SELECT (r->>'requests')::int AS requests, (r->>'skipped_requests')::int AS skipped, r->>'activated' AS activated
  FROM ecom_learn('ld_poison', NULL, 'always') r;
SELECT ecom_predict('ld_poison', 'viewed: oolong', 'teapot', 'click') BETWEEN 0 AND 1 AS scores;
SELECT count(*) AS served FROM ecom_serve('ld_poison', 'viewed: oolong', (SELECT items FROM ld_items), 2);
ROLLBACK;

-- 4. The bulk form of ecom_feedback checks its columns' types, never casts
SELECT min(id) AS some_id FROM ecom.impressions WHERE tenant = 'ld_judged' \gset
CREATE TABLE ld_fb_numeric AS SELECT :some_id + 0.7 AS impression_id, 'purchase'::text AS behaviour, true AS label;
SELECT ecom_feedback('ld_fb_numeric');
CREATE TABLE ld_fb_int_label AS SELECT :some_id::bigint AS impression_id, 'purchase'::text AS behaviour, 2 AS label;
SELECT ecom_feedback('ld_fb_int_label');
CREATE TABLE ld_fb_text_label AS SELECT :some_id::bigint AS impression_id, 'purchase'::text AS behaviour, 'yes'::text AS label;
SELECT ecom_feedback('ld_fb_text_label');
CREATE TABLE ld_fb_int_id AS SELECT :some_id::int AS impression_id, 'purchase'::varchar AS behaviour, true AS label;
SELECT ecom_feedback('ld_fb_int_id') AS recorded;
SELECT ecom_feedback(999999::regclass);
SELECT ecom_feedback(42);
SELECT count(*) AS nothing_else FROM ecom.feedback WHERE impression_id = :some_id + 1 AND behaviour = 'purchase';

-- 5. Tenant names: at most 256 bytes, everywhere, and messages quote 64 characters
SELECT * FROM ecom_serve(repeat('t', 1000000), 'viewed: oolong', ARRAY['teapot']);
SELECT ecom_adapt(repeat('t', 1000000), 'ld_support');
SELECT ecom_rollback(repeat('t', 1000000), 1);
SELECT ecom_predict(repeat('t', 257), 'viewed: oolong', 'teapot');
SELECT * FROM ecom_rank(repeat('t', 257), 'viewed: oolong', ARRAY['teapot']);
SELECT ecom_learn(repeat('t', 257));
SELECT ecom_evaluate(repeat('t', 257), NULL);
SELECT ecom_forget(repeat('t', 257));
SELECT ecom_explain(repeat('t', 257), 'viewed: oolong', 'teapot');
SELECT count(*) AS served_at_the_limit FROM ecom_serve(repeat('t', 256), 'viewed: oolong', ARRAY['teapot']);
SELECT ecom_forget(repeat('t', 256))->>'requests' AS forgotten;

-- 6. Learning follows commit order (two sessions: test/t/002_overlap.sh).
-- In one: what a transaction served before it learned is learned once
BEGIN;
SELECT count(*) FROM ecom_serve('ld_same', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => 1);
SELECT (r->>'n')::int AS learned FROM ecom_learn('ld_same', NULL, 'always') r;
COMMIT;
SELECT r->>'version' IS NULL AS nothing_new, r->>'reason' LIKE 'nothing served since version 1 %' AS says_why
  FROM ecom_learn('ld_same', NULL, 'always') r;
-- and what it serves after it learned is learned by the next call
BEGIN;
SELECT count(*) FROM ecom_serve('ld_same', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => 2);
SELECT (r->>'n')::int AS learned FROM ecom_learn('ld_same', NULL, 'always') r;
SELECT count(*) FROM ecom_serve('ld_same', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => 3);
COMMIT;
SELECT (r->>'n')::int AS learned_later FROM ecom_learn('ld_same', NULL, 'always') r;

-- 7. A label of an impression's own behaviour is final once learned; other
-- behaviours' labels stay open, and implied ones never change a learned one
SELECT count(*) FROM ecom_serve('ld_late', 'viewed: oolong', (SELECT items FROM ld_items), 3, seed => 1);
SELECT min(id) AS late_id FROM ecom.impressions WHERE tenant = 'ld_late' \gset
SELECT ecom_feedback(:late_id + 1, 'click') AS before_learning;
SELECT (r->>'n')::int AS learned FROM ecom_learn('ld_late', NULL, 'always') r;
-- (errors shown with the impression id left out: it depends on the tests before)
CREATE FUNCTION ld_try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'no error';
EXCEPTION WHEN others THEN
  RETURN 'ERROR ' || SQLSTATE || ': ' || regexp_replace(SQLERRM, 'impression [0-9]+', 'impression N', 'g');
END $$;
SELECT ld_try(format('SELECT ecom_feedback(%s, %L)', :late_id, 'click')) AS changes_false_to_true;
SELECT ld_try(format('SELECT ecom_feedback(%s, %L, false)', :late_id + 1, 'click')) AS changes_true_to_false;
SELECT ecom_feedback(:late_id, 'click', false) AS same_as_learned, ecom_feedback(:late_id + 1, 'click') AS again;
SELECT ecom_feedback(:late_id + 2, 'purchase') AS other_behaviour;
SELECT behaviour, label, implied FROM ecom.feedback WHERE impression_id = :late_id + 2 ORDER BY behaviour;
CREATE TABLE ld_fb_late AS SELECT :late_id::bigint AS impression_id, 'click'::text AS behaviour, true AS label;
SELECT ld_try($$SELECT ecom_feedback('ld_fb_late')$$) AS bulk;
DROP FUNCTION ld_try(text);

-- 8. Smaller ones
-- (a) a head without side features on impressions served with 2: learn
-- and evaluate say so instead of failing
CREATE TABLE ld_support_f AS SELECT context, item, behaviour, label, ARRAY[0.5, 0.5]::real[] AS features FROM ld_support;
SELECT (ecom_adapt('ld_feat', 'ld_support_f', start => 'scratch')->>'version')::int AS with_features;
SELECT count(*) FROM generate_series(1, 3) g,
       ecom_serve('ld_feat', 'viewed: oolong', ARRAY['teapot', 'green tea tin'], 2, 'click', '{0.1,0.2,0.3,0.4}', 'none', g);
SELECT (ecom_adapt('ld_feat', 'ld_support', start => 'scratch')->>'version')::int AS without_features;
SELECT r->>'version' AS version, r->>'reason' AS reason FROM ecom_learn('ld_feat') r;
SELECT (e->>'n')::int AS n, (e->>'skipped_requests')::int AS skipped FROM ecom_evaluate('ld_feat', NULL) e;
-- (b) ecom_forget says what it deleted, also for a tenant with impressions only
SELECT count(*) FROM ecom_serve('ld_only_impressions', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => 1);
SELECT ecom_feedback(min(id), 'click') FROM ecom.impressions WHERE tenant = 'ld_only_impressions';
SELECT ecom_forget('ld_only_impressions');
-- (c) a tenant without heads of its own is served by the global head:
-- ecom_evaluate names the global head's versions for it
SELECT min(version) AS first_global FROM ecom.heads WHERE tenant IS NULL \gset
SELECT count(*) FROM ecom_serve('ld_global_only', 'viewed: oolong', (SELECT items FROM ld_items), 2, seed => 1);
SELECT e->'served_by'->>'tenant' AS served_by_tenant, (e->'served_by'->>'version')::int = :first_global AS global_version,
       (e->>'n')::int AS n
  FROM ecom_evaluate('ld_global_only', :first_global) e;
SELECT ecom_evaluate('ld_k', 99);
-- (d) the same rows in another physical order train the same head
CREATE TABLE ld_ordered AS SELECT * FROM ld_events ORDER BY random();
CREATE TABLE ld_reversed AS SELECT * FROM ld_events ORDER BY tenant DESC, context DESC, item DESC;
SELECT (ecom_meta_train('ld_ordered', meta_steps => 5)->>'version')::int > 0 AS trained;
SELECT (ecom_meta_train('ld_reversed', meta_steps => 5)->>'version')::int > 0 AS trained;
SELECT count(DISTINCT md5(weights::text)) AS distinct_heads
  FROM (SELECT weights FROM ecom.heads WHERE tenant IS NULL ORDER BY version DESC LIMIT 2) h;

RESET pg_ecom.feedback_window;
SELECT ecom_forget(t)->>'heads' AS heads
  FROM unnest(ARRAY['ld_k', 'ld_judged', 'ld_late', 'ld_feat', 'ld_quiet1', 'ld_quiet2', 'ld_quiet3', 'ld_quiet4', 'ld_quiet5', 'ld_quiet6', 'ld_global_only', 'ld_same']) t;
DROP TABLE ld_events, ld_support, ld_support_f, ld_fb_numeric, ld_fb_int_label, ld_fb_text_label, ld_fb_int_id, ld_fb_late, ld_ordered, ld_reversed;
SELECT ecom_rollback(NULL, (SELECT min(version) FROM ecom.heads WHERE tenant IS NULL));
