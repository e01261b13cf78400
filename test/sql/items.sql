-- Item effects (core/src/items.rs): what sells beyond the text. The global
-- head learns them across tenants, each tenant its own deviation from
-- them; ecom_predict, ecom_explain, ecom_serve and ecom_learn use them,
-- pg_ecom.max_item_effects bounds them, ecom_forget removes them.
-- 12 stores x 100 items: each item sells at its own rate everywhere (what
-- the text of "sku 1042" cannot say), and even stores prefer even items.
CREATE TABLE it_events AS
WITH g AS (SELECT s, i, r FROM generate_series(0, 11) s, generate_series(0, 99) i, generate_series(0, 5) r)
SELECT 'it_store' || s AS tenant,
       'shopper ' || ((s * 7 + r) % 5) || ' looking for a gift' AS context,
       'sku ' || (1000 + i) AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || i || '/' || r)) % 100) < (abs(hashtext('pop' || i)) % 60 + 5
          + CASE WHEN (s % 2 = 0) = (i % 2 = 0) THEN 30 ELSE 0 END) AS label
  FROM g;

-- 1. meta-training keeps the effects only because they lift held-out stores
SELECT (r->'items'->>'items')::int AS items,
       r->'items'->>'precision' IS NOT NULL AS shrunk,
       (r->'items'->>'val_auc_after')::float8 > (r->'items'->>'val_auc_before')::float8 + 0.05 AS lifts_held_out_stores,
       r->'items'->>'tenant_precision' IS NOT NULL AS stores_differ,
       (r->'prior'->>'item')::float8 < 1e6 AS tenants_learn
  FROM ecom_meta_train('it_events', meta_steps => 20) r;
SELECT cardinality(item_keys) AS keys, cardinality(item_effects) AS effects, item_precision IS NULL AS platform
  FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT behaviour, count(*) AS items, bool_and(effect = 0) AS all_zero, bool_and(effect_precision IS NULL) AS platform
  FROM ecom_item_effects() GROUP BY behaviour ORDER BY behaviour;
-- items that sell more have larger effects
SELECT corr(rate, e.effect) > 0.8 AS follows_sales
  FROM (SELECT item, avg(label::int) AS rate FROM it_events GROUP BY item) s
  JOIN ecom_item_effects() e ON e.item_key = ecom_item_key(s.item) AND e.behaviour = 'click';

-- 2. scoring: the item term is the stored effect, terms add up to the
-- logit, the score is ecom_predict's; an unknown item has none, and
-- ecom_predict_emb (no item text) scores without it
SELECT item, abs((x->'terms'->>'item')::float8 - coalesce(e.effect, 0)) < 1e-6 AS item_term_is_effect,
       coalesce(e.effect, 0) <> 0 AS has_effect,
       abs((x->'terms'->>'text')::float8 + (x->'terms'->>'taste')::float8 + (x->'terms'->>'bias')::float8
           + (x->'terms'->>'item')::float8 - (x->>'logit')::float8) < 1e-6 AS terms_add_up,
       (x->>'score')::float8 = ecom_predict(NULL, 'shopper 1 looking for a gift', item, 'click') AS score_is_predict,
       abs(ecom_predict_emb(NULL, ecom_embed('shopper 1 looking for a gift'), ecom_embed(item), 'click')
           - 1 / (1 + exp(-((x->>'logit')::float8 - (x->'terms'->>'item')::float8)))) < 1e-6 AS emb_has_no_item_term
  FROM (VALUES ('sku 1001'), ('sku 1042'), ('sku 9999')) v(item)
  CROSS JOIN LATERAL ecom_explain(NULL, 'shopper 1 looking for a gift', v.item, 'click') x
  LEFT JOIN ecom_item_effects() e ON e.item_key = ecom_item_key(v.item) AND e.behaviour = 'click'
 ORDER BY item;
SELECT ecom_item_key('sku 1001') = ecom_item_key('sku 1001') AS stable,
       ecom_item_key('sku 1001') <> ecom_item_key('sku 1002') AS distinct_items,
       ecom_item_key(NULL) IS NULL AS strict,
       ecom_item_key('') AS empty_text_key;

-- 3. a new store adapts its own deviations from the platform's: this one
-- sells even items better, like the even stores
CREATE TABLE it_support AS SELECT context, item, behaviour, label FROM it_events WHERE tenant = 'it_store0';
SELECT (ecom_adapt('it_new', 'it_support')->>'version')::int AS version;
SELECT count(*) AS items, bool_and(effect_precision > (SELECT (hyper->'prior'->>'item')::real FROM ecom.heads WHERE tenant IS NULL AND active)) AS surer
  FROM ecom_item_effects('it_new') WHERE behaviour = 'click';
SELECT i % 2 = 0 AS even_item, avg(t.effect - g.effect) > 0 AS above_platform
  FROM generate_series(0, 99) i
  JOIN ecom_item_effects('it_new') t ON t.item_key = ecom_item_key('sku ' || (1000 + i)) AND t.behaviour = 'click'
  JOIN ecom_item_effects() g ON g.item_key = t.item_key AND g.behaviour = 'click'
 GROUP BY 1 ORDER BY 1;

-- 4. the loop: what ecom_serve shows and what follows moves the shown
-- items' effects (a Bayesian update: each gets surer), Thompson included
SET pg_ecom.feedback_window = 0;
SELECT count(*) AS shown, bool_and(propensity > 0 AND propensity <= 1) AS propensities
  FROM generate_series(1, 12) r,
       LATERAL ecom_serve('it_new', 'shopper 2 looking for a gift',
                          ARRAY['sku 1000', 'sku 1001', 'sku 1002', 'sku 1003', 'sku 1004', 'sku 1005'],
                          3, 'click', NULL, 'thompson', r);
SELECT count(*) > 0 AS clicked FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'click')
 WHERE i.tenant = 'it_new' AND i.item IN ('sku 1000', 'sku 1002');
CREATE TABLE it_before AS SELECT * FROM ecom_item_effects('it_new');
SELECT r->>'version' AS version, (r->>'n')::int > 0 AS learned FROM ecom_learn('it_new', activate => 'always') r;
-- (every shown item: which are shown depends on the Thompson draws)
SELECT a.item_key IN (ecom_item_key('sku 1000'), ecom_item_key('sku 1002')) AS clicked,
       bool_and(a.effect > b.effect) AS effect_rose, bool_and(a.effect_precision > b.effect_precision) AS surer
  FROM ecom_item_effects('it_new') a JOIN it_before b USING (item_key, behaviour)
 WHERE a.behaviour = 'click' AND a.item_key IN (SELECT ecom_item_key(item) FROM ecom.impressions WHERE tenant = 'it_new')
 GROUP BY 1 ORDER BY 1;
-- only the shown items' click effects moved
SELECT count(*) FILTER (WHERE a.effect <> b.effect OR a.effect_precision <> b.effect_precision)
         = (SELECT count(DISTINCT item) FROM ecom.impressions WHERE tenant = 'it_new') AS only_shown_moved,
       bool_and(a.behaviour = 'click') FILTER (WHERE a.effect <> b.effect) AS only_clicks
  FROM ecom_item_effects('it_new') a JOIN it_before b USING (item_key, behaviour);
RESET pg_ecom.feedback_window;

-- 5. a head whose stored effects do not fit is an ERROR, not a wrong score
BEGIN;
UPDATE ecom.heads SET item_effects = item_effects[1:3] WHERE tenant = 'it_new' AND active;
SELECT ecom_predict('it_new', 'shopper 1 looking for a gift', 'sku 1001', 'click');
ROLLBACK;

-- 5b. Thompson holds the effects of items a tenant has no evidence on at
-- their mean (pg_ecom.thompson_items = 'informed', the default); 'all'
-- draws them from the prior. Every other group frozen here, so 'informed'
-- has nothing left to draw for a tenant without a head of its own (but
-- gain and bias at sd 0.001, which moves no ranking of these items). The
-- posterior's draws (pg_ecom.thompson_draw = 'posterior'): under the
-- default 'evidence' a tenant with no events draws nothing either way.
BEGIN;
SET LOCAL pg_ecom.thompson_draw = 'posterior';
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}',
         (hyper->'prior') || '{"gain": 1e6, "side": 1e6, "bias": 1e6, "taste": 1e6}')
 WHERE tenant IS NULL AND active;
SELECT taste_basis IS NULL AS no_taste_directions_to_draw FROM ecom.heads WHERE tenant IS NULL AND active;
CREATE TEMP TABLE it_interval AS SELECT * FROM ecom_predict_interval('it_fresh', 'shopper 2', 'sku 1003', 'click');
SELECT current_setting('pg_ecom.thompson_items') AS items_drawn, min(propensity) = 1 AS deterministic
  FROM generate_series(1, 8) r,
       LATERAL ecom_serve('it_fresh', 'shopper 2 looking for a gift',
                          ARRAY['sku 1000', 'sku 1001', 'sku 1002', 'sku 1003', 'sku 1004', 'sku 1005'],
                          3, 'click', NULL, 'thompson', r);
SET LOCAL pg_ecom.thompson_items = 'all';
SELECT current_setting('pg_ecom.thompson_items') AS items_drawn, min(propensity) = 1 AS deterministic
  FROM generate_series(1, 8) r,
       LATERAL ecom_serve('it_fresh', 'shopper 2 looking for a gift',
                          ARRAY['sku 1000', 'sku 1001', 'sku 1002', 'sku 1003', 'sku 1004', 'sku 1005'],
                          3, 'click', NULL, 'thompson', r);
-- credible intervals include the unseen item's spread either way
SELECT a.lower = i.lower AND a.upper = i.upper AS same_interval, a.upper - a.lower > 0.01 AS unsure
  FROM it_interval a, ecom_predict_interval('it_fresh', 'shopper 2', 'sku 1003', 'click') i;
ROLLBACK;
SET pg_ecom.thompson_items = 'sometimes';

-- 6. ecom_forget takes a tenant's effects with its heads: the global
-- head's serve it again
SELECT ecom_forget('it_new')->'heads' AS heads;
SELECT count(*) AS items, bool_and(effect_precision IS NULL) AS platform FROM ecom_item_effects('it_new');

-- 7. bounded: pg_ecom.max_item_effects (superuser only) caps every head
SET pg_ecom.max_item_effects = 10;
SELECT (ecom_meta_train('it_events', meta_steps => 20)->'items'->>'items')::int AS items;
SELECT cardinality(item_keys) AS keys FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT (ecom_adapt('it_capped', 'it_support')->>'version')::int AS version;
-- the tenant's own capped too; the items it dropped read the platform's
SELECT count(DISTINCT item_key) FILTER (WHERE effect_precision IS NOT NULL) AS own_items,
       count(DISTINCT item_key) FILTER (WHERE effect_precision IS NULL)
         <= 10 AS platform_items_at_most_its_cap
  FROM ecom_item_effects('it_capped');
SELECT cardinality(item_keys) AS stored_keys, hyper->'items_base' IS NOT NULL AS reads_the_platform
  FROM ecom.heads WHERE tenant = 'it_capped' AND active;
SET pg_ecom.max_item_effects = 0;
SELECT ecom_meta_train('it_events', meta_steps => 20)->'items'->>'items' AS items;
SELECT item_keys IS NULL AS none_stored, hyper->'prior'->>'item' AS tenant_prior FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT count(*) AS rows FROM ecom_item_effects();
RESET pg_ecom.max_item_effects;
CREATE ROLE it_plain;
SET ROLE it_plain;
SET pg_ecom.max_item_effects = 5;
RESET ROLE;
DROP ROLE it_plain;
SELECT ecom_forget('it_capped')->'heads' AS heads;

-- 8. stores that each sell their own catalogue share no item, so the
-- platform keeps no effect; their best sellers still differ beyond what
-- the text says, so a store learns its own
CREATE TABLE it_own AS
WITH g AS (SELECT s, i, r FROM generate_series(0, 11) s, generate_series(0, 29) i, generate_series(0, 9) r)
SELECT 'it_shop' || s AS tenant, 'shopper ' || (r % 5) || ' looking for a gift' AS context,
       'shop ' || s || ' sku ' || i AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || i || '/' || r)) % 100) < (abs(hashtext('own' || s || '/' || i)) % 80 + 10) AS label
  FROM g;
SELECT (r->'items'->>'items')::int AS platform_items,
       r->'items'->>'tenant_precision' IS NOT NULL AS stores_differ,
       (r->'prior'->>'item')::float8 < 1e6 AS tenants_learn
  FROM ecom_meta_train('it_own', meta_steps => 10) r;
SELECT item_keys IS NULL AS none_stored FROM ecom.heads WHERE tenant IS NULL AND active;
CREATE TABLE it_own_support AS SELECT context, item, behaviour, label FROM it_own WHERE tenant = 'it_shop3';
SELECT (ecom_adapt('it_shop_new', 'it_own_support')->>'version')::int AS version;
-- its best sellers rose above the rest
SELECT corr(s.rate, e.effect) > 0.5 AS follows_its_sales, count(*) AS own_items
  FROM (SELECT item, avg(label::int) AS rate FROM it_own WHERE tenant = 'it_shop3' GROUP BY item) s
  JOIN ecom_item_effects('it_shop_new') e ON e.item_key = ecom_item_key(s.item) AND e.behaviour = 'click';
SELECT ecom_forget('it_shop_new')->'heads' AS heads;
DROP TABLE it_events, it_support, it_before, it_own, it_own_support;
