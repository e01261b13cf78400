-- A tenant's own bias prior (core/src/bias_prior.rs, pg_ecom.bias_prior):
-- how far its base rate may move from the head it starts from is chosen
-- by its own events. Twelve stores whose shoppers like items at the same
-- rates, so meta-training finds their base rates alike and holds the bias
-- close (a precision of 16 here: a standard deviation of 0.25 in logit).
CREATE TABLE bp_events AS
WITH g AS (SELECT s, i FROM generate_series(0, 11) s, generate_series(0, 59) i)
SELECT 'bp_store' || s AS tenant, 'shopper ' || (s % 5) || ' looking for a gift' AS context,
       'sku ' || (1000 + i) AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || i)) % 100) < (abs(hashtext('pop' || i)) % 60 + 20) AS label
  FROM g;
SELECT (r->'prior'->>'bias')::float8 AS meta_bias FROM ecom_meta_train('bp_events', meta_steps => 10) r;
CREATE FUNCTION bp_rate(t text) RETURNS float8 LANGUAGE sql AS $$
  SELECT avg(ecom_predict(t, 'shopper 2 looking for a gift', 'sku ' || (1000 + i), 'click'))
    FROM generate_series(0, 59) i
$$;
SELECT round(bp_rate(NULL)::numeric, 1) AS global_rate;

-- 1. a store whose shoppers click one item in twenty, where the head
-- predicts about half: its events choose a far weaker bias precision, and
-- its level follows them
CREATE TABLE bp_rare AS
SELECT 'shopper 2 looking for a gift' AS context, 'sku ' || (1000 + i) AS item, 'click' AS behaviour,
       i % 20 = 0 AS label
  FROM generate_series(0, 59) i;
SELECT (ecom_adapt('bp_rare', 'bp_rare')->>'version')::int AS version;
SELECT (hyper->'bias_choice'->>'meta')::float8 AS meta, (hyper->'bias_choice'->>'chosen')::float8 < 1 AS chosen_weaker,
       (hyper->'bias_choice'->>'gain_nats')::float8 >= 3 AS beat_the_start_by_3_nats,
       (hyper->'bias_choice'->>'rows')::int AS behaviours,
       (hyper->'prior'->>'bias')::float8 = (hyper->'bias_choice'->>'chosen')::float8 AS fitted_under_it,
       (hyper->'prior'->>'bias_meta')::float8 AS remembered
  FROM ecom.heads WHERE tenant = 'bp_rare' AND active;
SELECT bp_rate('bp_rare') < 0.15 AS follows_its_events;

-- 2. under 'global' the same events fit under meta-training's precision,
-- as before 0.20.0: nothing is chosen and the level barely moves
SET pg_ecom.bias_prior = 'global';
SELECT (ecom_adapt('bp_rare_global', 'bp_rare')->>'version')::int AS version;
SELECT hyper->>'bias_choice' IS NULL AS nothing_chosen, hyper->'prior'->'bias_meta' IS NULL AS no_meta,
       (hyper->'prior'->>'bias')::float8 AS bias
  FROM ecom.heads WHERE tenant = 'bp_rare_global' AND active;
SELECT bp_rate('bp_rare_global') > 0.3 AS held_near_the_start;
RESET pg_ecom.bias_prior;

-- 3. a store at the rate the head predicts keeps meta-training's: its
-- events give no reason to move (the test weighs them and records it)
CREATE TABLE bp_usual AS SELECT context, item, behaviour, label FROM bp_events WHERE tenant = 'bp_store3';
SELECT (ecom_adapt('bp_usual', 'bp_usual')->>'version')::int AS version;
SELECT (hyper->'bias_choice'->>'chosen')::float8 AS chosen, (hyper->'bias_choice'->>'gain_nats')::float8 < 3 AS below_the_guard,
       (hyper->'prior'->>'bias')::float8 AS bias
  FROM ecom.heads WHERE tenant = 'bp_usual' AND active;

-- 4. the loop: shoppers who click rarely. The first learn (a fresh fit
-- from the global head) chooses; the next continues that version, whose
-- posterior carries the choice, and chooses nothing itself
SET pg_ecom.feedback_window = 0;
CREATE FUNCTION bp_visit(t text, rounds int, first_seed int) RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM generate_series(first_seed, first_seed + rounds - 1) r,
    LATERAL ecom_serve(t, 'shopper 2 looking for a gift',
                       ARRAY['sku 1000', 'sku 1001', 'sku 1002', 'sku 1003', 'sku 1004', 'sku 1005'],
                       3, 'click', NULL, 'softmax', r)
$$;
SELECT bp_visit('bp_loop', 30, 1) AS shown;
SELECT count(*) AS clicked
  FROM (SELECT id, dense_rank() OVER (ORDER BY request_id) AS n FROM ecom.impressions
         WHERE tenant = 'bp_loop' AND rank = 1) i,
       LATERAL ecom_feedback(i.id, 'click')
 WHERE i.n % 10 = 0;
SELECT r->>'version' AS version, r->>'start' AS start FROM ecom_learn('bp_loop', activate => 'always') r;
SELECT (hyper->'bias_choice'->>'chosen')::float8 < 1 AS chosen_weaker, (hyper->'prior'->>'bias_meta')::float8 AS meta
  FROM ecom.heads WHERE tenant = 'bp_loop' AND active;
SELECT bp_visit('bp_loop', 10, 101) AS shown;
SELECT r->>'version' AS version, r->>'start' AS start FROM ecom_learn('bp_loop', activate => 'always') r;
SELECT hyper->>'bias_choice' IS NULL AS continued,
       (hyper->'prior'->>'bias')::float8 = (SELECT (hyper->'prior'->>'bias')::float8 FROM ecom.heads WHERE tenant = 'bp_loop' AND version = 1) AS carried,
       (hyper->'prior'->>'bias_meta')::float8 AS meta
  FROM ecom.heads WHERE tenant = 'bp_loop' AND active;
SELECT bp_rate('bp_loop') < 0.3 AS below_the_global_level;

-- 5. a stored version whose bias_meta is not a positive number is an
-- ERROR, not a wrong score
BEGIN;
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior,bias_meta}', '-1') WHERE tenant = 'bp_rare' AND active;
SELECT ecom_predict('bp_rare', 'shopper 2 looking for a gift', 'sku 1001', 'click');
ROLLBACK;
-- bad settings are refused with the valid values
SET pg_ecom.bias_prior = 'store';

-- 6. ecom_forget takes the choice with the tenant's heads
SELECT ecom_forget('bp_rare')->'heads' AS rare, ecom_forget('bp_rare_global')->'heads' AS rare_global,
       ecom_forget('bp_usual')->'heads' AS usual, ecom_forget('bp_loop')->'heads' AS loop;
SELECT count(*) AS left_behind FROM ecom.heads WHERE tenant LIKE 'bp\_%';
RESET pg_ecom.feedback_window;
DROP FUNCTION bp_visit(text, int, int), bp_rate(text);
DROP TABLE bp_events, bp_rare, bp_usual;
