-- ecom_explain splits the score ecom_predict returns into terms that add
-- up to its logit; ecom_adapt says how far each group of weights moved.
CREATE TABLE ex_events AS
SELECT 'ex_shop' || (g % 3) AS tenant, 'viewed: ' || (ARRAY['tea', 'bikes'])[1 + g % 2] AS context,
       (ARRAY['green tea tin', 'bike helmet', 'paint set'])[1 + g % 3] AS item, 'purchase'::text AS behaviour,
       g % 2 = g % 3 AS label, ARRAY[(g % 4) / 4.0, (g % 5) / 5.0]::real[] AS features
  FROM generate_series(1, 150) g;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('ex_events', meta_steps => 20) r;
CREATE TABLE ex_support AS SELECT context, item, behaviour, label, features FROM ex_events WHERE tenant = 'ex_shop1';
-- method meta moves gain, side weights, bias and taste, never the text weights
SELECT (r->'moved'->>'text')::float8 AS text_moved, r->'moved' ? 'gain' AS has_gain,
       r->'moved' ? 'side' AS has_side, r->'moved' ? 'bias' AS has_bias, r->'moved' ? 'taste' AS has_taste
  FROM ecom_adapt('ex_tenant', 'ex_support') r;
SELECT (metrics->'moved') = (SELECT r->'moved' FROM ecom_adapt('ex_again', 'ex_support') r) AS stored_as_returned
  FROM ecom.heads WHERE tenant = 'ex_tenant' AND active;
-- method full moves everything
SELECT (r->'moved'->>'text')::float8 > 0 AS text_moved, (r->'moved'->>'bias')::float8 > 0 AS bias_moved
  FROM ecom_adapt('ex_full', 'ex_support', method => 'full', steps => 20, lr => 0.5) r;
-- the terms add up, and the score is ecom_predict's, for every behaviour
SELECT b AS behaviour,
       e->'served_by' AS served_by,
       jsonb_array_length(e->'terms'->'side') AS side_terms,
       (e->>'score')::float8 = ecom_predict('ex_tenant', 'viewed: tea', 'green tea tin', b, '{0.25,0.6}') AS score_is_predict,
       abs((e->'terms'->>'text')::float8 + (e->'terms'->>'taste')::float8 + (e->'terms'->'side'->>0)::float8
           + (e->'terms'->'side'->>1)::float8 + (e->'terms'->>'bias')::float8 - (e->>'logit')::float8) < 1e-6 AS terms_add_up,
       abs(1 / (1 + exp(-(e->>'logit')::float8)) - (e->>'score')::float8) < 1e-6 AS score_is_sigmoid,
       abs((e->'text'->>'score')::float8 * (e->'text'->>'gain')::float8 - (e->'terms'->>'text')::float8) < 1e-6 AS text_is_gain_times_score
  FROM unnest(ARRAY['browse', 'click', 'cart', 'purchase']) b,
       LATERAL ecom_explain('ex_tenant', 'viewed: tea', 'green tea tin', b, '{0.25,0.6}') e;
-- a side feature's term is its weight times its value: doubling the value doubles the term
SELECT abs(2 * (a->'terms'->'side'->>0)::float8 - (b->'terms'->'side'->>0)::float8) < 1e-6 AS side_term_is_linear,
       a->'terms'->'side'->1 = b->'terms'->'side'->1 AS other_term_unchanged
  FROM ecom_explain('ex_tenant', 'viewed: tea', 'green tea tin', 'purchase', '{0.25,0.6}') a,
       ecom_explain('ex_tenant', 'viewed: tea', 'green tea tin', 'purchase', '{0.5,0.6}') b;
-- a head adapted with a free taste (prior given by hand) has a taste term;
-- the global head never has one. This tenant likes what the others do not
-- (a taste needs more than one item: it ranks items against each other).
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}', '{"gain": 1.6, "side": 1.6, "bias": 1.6, "taste": 0.1}')
 WHERE tenant IS NULL AND active;
CREATE TABLE ex_contrary AS SELECT context, item, behaviour, NOT label AS label, features FROM ex_events;
SELECT (r->'moved'->>'taste')::float8 > 0.01 AS taste_moved FROM ecom_adapt('ex_taste', 'ex_contrary') r;
SELECT (a->'terms'->>'taste')::float8 <> 0 AS adapted_has_taste, (g->'terms'->>'taste')::float8 = 0 AS global_has_none,
       abs((a->'terms'->>'text')::float8 + (a->'terms'->>'taste')::float8 + (a->'terms'->'side'->>0)::float8
           + (a->'terms'->'side'->>1)::float8 + (a->'terms'->>'bias')::float8 - (a->>'logit')::float8) < 1e-6 AS terms_add_up
  FROM ecom_explain('ex_taste', 'viewed: tea', 'green tea tin', 'purchase', '{0.25,0.6}') a,
       ecom_explain('ex_nobody', 'viewed: tea', 'green tea tin', 'purchase', '{0.25,0.6}') g;
-- a tenant without a head is explained by the global head
SELECT e->'served_by'->'tenant' AS served_by_tenant, e->>'tenant' AS asked_for,
       (e->>'score')::float8 = ecom_predict('ex_nobody', 'viewed: bikes', 'paint set', 'click', '{0,0}') AS score_is_predict
  FROM ecom_explain('ex_nobody', 'viewed: bikes', 'paint set', 'click', '{0,0}') e;
SELECT ecom_forget(t) FROM unnest(ARRAY['ex_tenant', 'ex_again', 'ex_full', 'ex_taste']) t;
SELECT ecom_rollback(NULL, (SELECT max(version) - 1 FROM ecom.heads WHERE tenant IS NULL)) IS NOT NULL AS global_restored;
DROP TABLE ex_events, ex_support, ex_contrary;
