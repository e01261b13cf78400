-- A tenant's own item prior (core/src/item_prior.rs, pg_ecom.item_prior):
-- how far its item effects may move from the platform's is chosen by its
-- own events. Here meta-training cannot measure it: every store rates each
-- item once, so no item recurs within a store and λ_t is frozen.
CREATE TABLE ip_events AS
WITH g AS (SELECT s, i FROM generate_series(0, 11) s, generate_series(0, 59) i)
SELECT 'ip_store' || s AS tenant, 'shopper ' || (s % 5) || ' looking for a gift' AS context,
       'sku ' || (1000 + i) AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || i)) % 100) < (abs(hashtext('pop' || i)) % 60 + 20) AS label
  FROM g;
SELECT (r->'prior'->>'item')::float8 >= 1e6 AS frozen_by_meta_training
  FROM ecom_meta_train('ip_events', meta_steps => 10) r;

-- shoppers of three tenants see eight items, three at a time, in near
-- random order (softmax at a high temperature); what they click is
-- decided below
SET pg_ecom.feedback_window = 0;
SET pg_ecom.explore_temperature = 50;
CREATE FUNCTION ip_visit(t text, rounds int, first_seed int) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM generate_series(first_seed, first_seed + rounds - 1) r,
    LATERAL ecom_serve(t, 'shopper 2 looking for a gift',
                       ARRAY['sku 1000', 'sku 1001', 'sku 1002', 'sku 1003',
                             'sku 1004', 'sku 1005', 'sku 1006', 'sku 1007'],
                       3, 'click', NULL, 'softmax', r)
$$;
-- a fan: clicks the first four items every time, never the others
CREATE FUNCTION ip_fan_clicks(t text) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'click')
   WHERE i.tenant = t AND i.item IN ('sku 1000', 'sku 1001', 'sku 1002', 'sku 1003')
     AND NOT EXISTS (SELECT FROM ecom.feedback f WHERE f.impression_id = i.id)
$$;

-- 1. the fan's events depart from the platform's effects far beyond
-- chance: its version serves with a precision its events chose, fitted
-- under 1 (meta-training gave none), and meta-training's is remembered
SELECT ip_visit('ip_fan', 40, 1) AS shown;
SELECT ip_fan_clicks('ip_fan') > 0 AS clicked;
SELECT r->>'version' AS version, r->>'activated' AS activated FROM ecom_learn('ip_fan', activate => 'always') r;
SELECT (hyper->'prior'->>'item')::float8 AS fitted_under, (hyper->'prior'->>'item_meta')::float8 AS meta,
       (hyper->'prior'->>'item_served')::float8 < 1 AS chosen_weaker
  FROM ecom.heads WHERE tenant = 'ip_fan' AND active;
-- its effects moved toward what it clicks, each from the platform's
SELECT i.item IN ('sku 1000', 'sku 1001', 'sku 1002', 'sku 1003') AS clicked_by_the_fan,
       bool_and(t.effect > g.effect) AS above_platform, bool_and(t.effect < g.effect) AS below_platform,
       bool_and(t.effect_precision > 0) AS held
  FROM (SELECT DISTINCT item FROM ecom.impressions WHERE tenant = 'ip_fan') i
  JOIN ecom_item_effects('ip_fan') t ON t.item_key = ecom_item_key(i.item) AND t.behaviour = 'click'
  JOIN ecom_item_effects() g ON g.item_key = t.item_key AND g.behaviour = 'click'
 GROUP BY 1 ORDER BY 1;
-- and what it is served follows: ecom_predict, ecom_explain's item term
SELECT ecom_predict('ip_fan', 'shopper 2 looking for a gift', 'sku 1001', 'click')
         > ecom_predict('ip_fan', 'shopper 2 looking for a gift', 'sku 1005', 'click') + 0.2 AS fan_item_first,
       abs((x->'terms'->>'item')::float8 - e.effect) < 1e-6 AS explained
  FROM ecom_explain('ip_fan', 'shopper 2 looking for a gift', 'sku 1001', 'click') x,
       ecom_item_effects('ip_fan') e
 WHERE e.item_key = ecom_item_key('sku 1001') AND e.behaviour = 'click';

-- credible intervals (and Thompson draws, which share the variance) are
-- the chosen prior's: with the choice undone, the item's spread is gone
-- (widths on the logit scale, where the spread adds up)
BEGIN;
CREATE FUNCTION pg_temp.logit_width(l float8, u float8) RETURNS float8 LANGUAGE sql
  AS $$ SELECT ln(u / (1 - u)) - ln(l / (1 - l)) $$;
CREATE TEMP TABLE ip_interval AS
SELECT pg_temp.logit_width(lower, upper) AS width
  FROM ecom_predict_interval('ip_fan', 'shopper 2 looking for a gift', 'sku 1001', 'click');
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior,item_served}', '1e6') WHERE tenant = 'ip_fan' AND active;
SELECT pg_temp.logit_width(i.lower, i.upper) < w.width - 0.1 AS narrower_when_frozen
  FROM ecom_predict_interval('ip_fan', 'shopper 2 looking for a gift', 'sku 1001', 'click') i, ip_interval w;
ROLLBACK;

-- 2. a few events prove nothing: one visit, one click. Meta-training's
-- choice stands and every effect serves as the platform's, exactly; the
-- rows are kept for the evidence to come
SELECT ip_visit('ip_few', 1, 1) AS shown;
SELECT count(*) AS clicked FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'click')
 WHERE i.tenant = 'ip_few' AND i.rank = 1;
SELECT r->>'version' AS version FROM ecom_learn('ip_few', activate => 'always') r;
SELECT (hyper->'prior'->>'item_served')::float8 >= 1e6 AS meta_training_s FROM ecom.heads WHERE tenant = 'ip_few' AND active;
SELECT count(*) AS own_rows, bool_and(t.effect = g.effect) AS platform_s
  FROM ecom_item_effects('ip_few') t JOIN ecom_item_effects() g USING (item_key, behaviour)
 WHERE t.effect_precision IS NOT NULL AND t.behaviour = 'click';

-- 3. the fan keeps learning: the next version continues the first, its
-- rows grow surer and its events still choose
SELECT ip_visit('ip_fan', 20, 101) AS shown;
SELECT ip_fan_clicks('ip_fan') > 0 AS clicked;
SELECT r->>'version' AS version, r->>'start' AS start FROM ecom_learn('ip_fan', activate => 'always') r;
SELECT (hyper->'prior'->>'item')::float8 AS fitted_under,
       (hyper->'prior'->>'item_served')::float8 < 1 AS chosen_weaker
  FROM ecom.heads WHERE tenant = 'ip_fan' AND active;
-- (the rows as stored, under the prior they are fitted with: served
-- precisions also move with the choice)
SELECT count(*) AS shown_items, bool_and(v2.p > v1.p) AS surer
  FROM (SELECT k.key, h.item_precision[(k.i - 1) * 4 + 2] AS p
          FROM ecom.heads h, unnest(h.item_keys) WITH ORDINALITY k(key, i)
         WHERE h.tenant = 'ip_fan' AND h.version = 1) v1
  JOIN (SELECT k.key, h.item_precision[(k.i - 1) * 4 + 2] AS p
          FROM ecom.heads h, unnest(h.item_keys) WITH ORDINALITY k(key, i)
         WHERE h.tenant = 'ip_fan' AND h.version = 2) v2 USING (key)
 WHERE key IN (SELECT ecom_item_key(item) FROM ecom.impressions WHERE tenant = 'ip_fan'
                  AND served_at > (SELECT created_at FROM ecom.heads WHERE tenant = 'ip_fan' AND version = 1));
-- why: the version says what decided it
SELECT (hyper->'item_choice'->>'gain_nats')::float8 >= 3 AS beat_meta_training_by_3_nats,
       (hyper->'item_choice'->>'chosen')::float8 = (hyper->'prior'->>'item_served')::float8 AS recorded,
       (hyper->'item_choice'->>'rows')::int > 0 AS weighed_rows
  FROM ecom.heads WHERE tenant = 'ip_fan' AND active;

-- 4. 'global' learns as before 0.19.0: meta-training froze item effects,
-- so the same fan learns none of its own and nothing is chosen
SET pg_ecom.item_prior = 'global';
SELECT ip_visit('ip_global', 40, 1) AS shown;
SELECT ip_fan_clicks('ip_global') > 0 AS clicked;
SELECT r->>'version' AS version FROM ecom_learn('ip_global', activate => 'always') r;
SELECT hyper->'prior'->'item_meta' IS NULL AS nothing_chosen, (hyper->'prior'->>'item')::float8 >= 1e6 AS frozen
  FROM ecom.heads WHERE tenant = 'ip_global' AND active;
SELECT count(*) FILTER (WHERE effect_precision IS NOT NULL) AS own_rows FROM ecom_item_effects('ip_global');
-- the same tenant under 'tenant' again: its version learned none of its
-- own (as every frozen version before 0.19.0: a copy of the platform's
-- effects), and its next learn starts choosing
RESET pg_ecom.item_prior;
SELECT cardinality(item_keys) > 8 AS holds_a_platform_copy, item_precision IS NULL AS no_rows
  FROM ecom.heads WHERE tenant = 'ip_global' AND active;
SELECT ip_visit('ip_global', 20, 101) AS shown;
SELECT ip_fan_clicks('ip_global') > 0 AS clicked;
SELECT r->>'version' AS version FROM ecom_learn('ip_global', activate => 'always') r;
-- (whether 60 impressions beat meta-training's choice is for the
-- evidence to say: its version 1 already learned the fan's taste)
SELECT cardinality(item_keys) AS own_rows, item_precision IS NOT NULL AS rows,
       (hyper->'item_choice'->>'rows')::int > 0 AS weighed_rows, (hyper->'prior'->>'item')::float8 AS fitted_under
  FROM ecom.heads WHERE tenant = 'ip_global' AND active;
SET pg_ecom.item_prior = 'store';

-- 4b. 'global' after 'tenant': meta-training froze item effects, so the
-- fan's rows serve as the platform's again and learn nothing new; they
-- are kept for 'tenant'
BEGIN;
SET LOCAL pg_ecom.item_prior = 'global';
SELECT ip_visit('ip_fan', 5, 201) AS shown;
SELECT ip_fan_clicks('ip_fan') > 0 AS clicked;
SELECT r->>'version' AS version FROM ecom_learn('ip_fan', activate => 'always') r;
SELECT (hyper->'prior'->>'item_served')::float8 >= 1e6 AS meta_training_s,
       item_precision = (SELECT item_precision FROM ecom.heads WHERE tenant = 'ip_fan' AND version = 2) AS rows_kept_unchanged
  FROM ecom.heads WHERE tenant = 'ip_fan' AND active;
SELECT bool_and(t.effect = g.effect) AS platform_s
  FROM ecom_item_effects('ip_fan') t JOIN ecom_item_effects() g USING (item_key, behaviour);
ROLLBACK;

-- 4c. ecom_adapt chooses too, and from the tenant's own version
-- ('active') it continues the rows: a support set of one item the fan
-- clicks leaves every other item where its rows had it
CREATE TABLE ip_support AS
SELECT 'shopper 2 looking for a gift' AS context, 'sku 1002' AS item, 'click' AS behaviour, true AS label
  FROM generate_series(1, 4);
CREATE TABLE ip_fan_rows AS SELECT * FROM ecom_item_effects('ip_fan');
SELECT (ecom_adapt('ip_fan', 'ip_support', start => 'active')->>'version')::int AS version;
SELECT hyper->'item_choice' IS NOT NULL AS chose, (hyper->'prior'->>'item')::float8 AS fitted_under
  FROM ecom.heads WHERE tenant = 'ip_fan' AND active;
SELECT count(*) AS other_items,
       bool_and(abs(a.effect - b.effect) < 0.25 * abs(b.effect) + 0.05) AS kept
  FROM ecom_item_effects('ip_fan') a JOIN ip_fan_rows b USING (item_key, behaviour)
 WHERE a.behaviour = 'click' AND b.effect_precision IS NOT NULL AND a.item_key <> ecom_item_key('sku 1002');
SELECT a.effect >= b.effect AS clicked_item_not_lower
  FROM ecom_item_effects('ip_fan') a JOIN ip_fan_rows b USING (item_key, behaviour)
 WHERE a.behaviour = 'click' AND a.item_key = ecom_item_key('sku 1002');

-- 5. a stored version whose chosen precision is not a positive number is
-- an ERROR, not a wrong score
BEGIN;
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior,item_served}', '-1')
 WHERE tenant = 'ip_fan' AND active;
SELECT ecom_predict('ip_fan', 'shopper 2 looking for a gift', 'sku 1001', 'click');
ROLLBACK;

-- 5b. a version learned before 0.19.0 has neither item_meta nor
-- item_served: its rows serve as stored, under the prior they were fitted
-- with (here, the fan's rows fitted under 1, read without the choice)
BEGIN;
CREATE TEMP TABLE ip_chosen AS SELECT * FROM ecom_item_effects('ip_fan');
UPDATE ecom.heads SET hyper = hyper #- '{prior,item_meta}' #- '{prior,item_served}'
 WHERE tenant = 'ip_fan' AND active;
SELECT count(*) AS own_rows,
       bool_and(e.effect = s.effect) AS as_stored,
       bool_and(e.effect_precision = s.precision) AS precision_as_stored,
       count(*) FILTER (WHERE e.effect <> c.effect) > 0 AS differs_from_the_choice
  FROM ecom.heads h,
       LATERAL unnest(h.item_keys) WITH ORDINALITY k(key, i),
       LATERAL (SELECT h.item_effects[(k.i - 1) * 4 + 2] AS effect, h.item_precision[(k.i - 1) * 4 + 2] AS precision) s,
       ecom_item_effects('ip_fan') e, ip_chosen c
 WHERE h.tenant = 'ip_fan' AND h.active AND e.item_key = k.key AND e.behaviour = 'click'
   AND c.item_key = k.key AND c.behaviour = 'click';
ROLLBACK;

-- 6. ecom_forget takes the tenant's choice with its heads
SELECT ecom_forget('ip_fan')->'heads' AS heads;
SELECT count(*) FILTER (WHERE effect_precision IS NOT NULL) AS own_rows FROM ecom_item_effects('ip_fan');
SELECT ecom_forget('ip_few')->'heads' AS few, ecom_forget('ip_global')->'heads' AS global;
RESET pg_ecom.feedback_window;
RESET pg_ecom.explore_temperature;
DROP FUNCTION ip_visit(text, int, int), ip_fan_clicks(text);
DROP TABLE ip_events, ip_support, ip_fan_rows;
