-- Closing the loop: exploration in ecom_rank, ecom_serve's impressions,
-- ecom_feedback, the BI views, ecom_evaluate and ecom_learn, with their
-- bad input. Every result printed is a count, a flag or an exact value.
CREATE TABLE lp_events AS
SELECT 'lp_' || (ARRAY['tea', 'bikes', 'books'])[1 + g % 3] AS tenant,
       'viewed: ' || (ARRAY['green tea', 'road bike', 'crime novel', 'oolong'])[1 + (g / 3) % 4] AS context,
       (ARRAY['green tea tin', 'road bike helmet', 'detective story', 'teapot', 'bike lights'])[1 + (g / 2 + g / 7) % 5] AS item,
       (ARRAY['click', 'purchase'])[1 + g % 2] AS behaviour,
       (g / 3) % 4 = (g / 2 + g / 7) % 5 OR g % 5 = 0 AS label
  FROM generate_series(1, 300) g;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('lp_events', meta_steps => 20) r;
-- a prior that lets Thompson sampling explore, whatever this small
-- meta-training chose (documented: the prior lives in the head's hyper)
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}', '{"gain": 1.0, "side": 1.0, "bias": 1.0, "taste": 2.0}')
 WHERE tenant IS NULL AND active;
CREATE TEMP TABLE lp_items AS
SELECT ARRAY['green tea tin', 'road bike helmet', NULL, 'detective story', 'teapot', 'bike lights'] AS items;

-- 1. ecom_rank: explore 'none' is the plain ranking, propensity 1
SELECT item_index, item, rank, propensity FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click');
-- the same seed, the same ranking and propensities; every policy's
-- propensities lie in (0, 1]
SELECT e AS explore,
       (SELECT array_agg(item_index ORDER BY rank) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, e, 7))
     = (SELECT array_agg(item_index ORDER BY rank) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, e, 7)) AS same_order,
       (SELECT array_agg(propensity ORDER BY rank) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, e, 7))
     = (SELECT array_agg(propensity ORDER BY rank) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, e, 7)) AS same_propensities,
       (SELECT bool_and(propensity > 0 AND propensity <= 1) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, e, 7)) AS in_range
  FROM unnest(ARRAY['none', 'thompson', 'softmax', 'epsilon']) e;
-- how exact each propensity is: exact (0) for 'none' and 'epsilon' and for
-- softmax's first place; a Monte Carlo estimate's standard error otherwise,
-- which is never 0 and at most 0.5/sqrt(256)
SELECT e AS explore,
       array_agg(propensity_se = 0 ORDER BY rank) AS exact,
       bool_and(propensity_se <= 0.5 / sqrt(256)) AS within_bound
  FROM unnest(ARRAY['none', 'thompson', 'softmax', 'epsilon']) e,
       LATERAL ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, e, 7)
 GROUP BY e ORDER BY e;
-- every policy but 'none' explores: some seed of the first 20 changes the
-- order (Thompson with its whole taste drawn from the prior: a tenant with
-- no events draws only its gain and bias under the default 'informed',
-- test/sql/taste.sql)
SET pg_ecom.thompson_taste = 'all';
SET pg_ecom.thompson_draw = 'posterior';
SELECT e AS explore, count(DISTINCT o) > 1 AS explores
  FROM unnest(ARRAY['none', 'thompson', 'softmax', 'epsilon']) e,
       LATERAL (SELECT s, (SELECT array_agg(item_index ORDER BY rank)
                             FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, e, s)) AS o
                  FROM generate_series(1, 20) s) x
 GROUP BY e ORDER BY e;
RESET pg_ecom.thompson_taste;
RESET pg_ecom.thompson_draw;
-- under the defaults (thompson_draw 'evidence'; and under 'posterior',
-- thompson_taste 'informed', which draws only its gain and bias) the same
-- tenant, with no events of its own, hardly explores: how many orders 20
-- seeds give
SELECT count(DISTINCT o) AS informed_orders
  FROM (SELECT (SELECT array_agg(item_index ORDER BY rank) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, 'thompson', s)) AS o
          FROM generate_series(1, 20) s) x;
-- epsilon: exact marginals. epsilon = 1 is a uniformly random ranking: 1/5
-- for each of the 5 items at each place; epsilon = 0 is the greedy one
SET pg_ecom.explore_epsilon = 1;
SELECT DISTINCT propensity FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, 'epsilon', 3);
SET pg_ecom.explore_epsilon = 0;
SELECT array_agg(item_index ORDER BY rank) = (SELECT array_agg(item_index ORDER BY rank) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click')) AS greedy,
       bool_and(propensity = 1) AS certain
  FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, 'epsilon', 3);
RESET pg_ecom.explore_epsilon;
-- softmax: the first place's propensity is exactly the softmax of the
-- logits at pg_ecom.explore_temperature
SET pg_ecom.explore_temperature = 0.5;
WITH s AS (SELECT item_index, ln(score / (1 - score)) AS z FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 10, 'click')),
     f AS (SELECT item_index, propensity FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, 'softmax', 11) WHERE rank = 1)
SELECT abs(f.propensity - exp(s.z / 0.5) / (SELECT sum(exp(z / 0.5)) FROM s)) < 1e-6 AS exact_first_place
  FROM f JOIN s USING (item_index);
RESET pg_ecom.explore_temperature;
-- a frozen prior (a head made before 0.2.0 without a taste, say) makes
-- Thompson sampling greedy: nothing in the adapted part may move
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}', '{"gain": 1e6, "side": 1e6, "bias": 1e6, "taste": 1e6}')
 WHERE tenant IS NULL AND active;
SELECT count(DISTINCT o) AS orders_under_a_frozen_prior
  FROM (SELECT (SELECT array_agg(item_index ORDER BY rank) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, 'thompson', s)) AS o
          FROM generate_series(1, 10) s) x;
UPDATE ecom.heads SET hyper = jsonb_set(hyper, '{prior}', '{"gain": 1.0, "side": 1.0, "bias": 1.0, "taste": 2.0}')
 WHERE tenant IS NULL AND active;
-- bad input
SELECT * FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, 'greedy');
SELECT count(*) FROM ecom_rank('lp_new', 'viewed: green tea', (SELECT items FROM lp_items), 3, 'click', NULL, NULL);
SET pg_ecom.explore_temperature = 0;
SET pg_ecom.explore_epsilon = 1.5;
SET pg_ecom.propensity_samples = 1;

-- 2. ecom_serve logs what it shows, in the caller's transaction
SELECT impression_id > 0 AS has_id, item_index, item, rank, propensity
  FROM ecom_serve('lp_tea', 'viewed: green tea', (SELECT items FROM lp_items), 2, explore => 'none');
SELECT r.tenant, r.k, r.behaviour, r.explore, r.head_tenant, array_length(r.items, 1) AS candidates,
       count(i.*) AS impressions, bool_and(i.context = r.context) AS same_context
  FROM ecom.requests r JOIN ecom.impressions i ON i.request_id = r.id
 GROUP BY r.id, r.tenant ORDER BY r.id;
-- rolled back with the transaction
BEGIN;
SELECT count(*) FROM ecom_serve('lp_tea', 'viewed: green tea', (SELECT items FROM lp_items), 3);
ROLLBACK;
SELECT count(*) AS impressions FROM ecom.impressions;
-- the seed is kept: replaying it with ecom_rank gives the same slate
SELECT (SELECT array_agg(item_index ORDER BY rank) FROM ecom_serve('lp_tea', 'viewed: oolong', (SELECT items FROM lp_items), 3, 'click', NULL, 'thompson', 99))
     = (SELECT array_agg(item_index ORDER BY rank) FROM ecom_rank('lp_tea', 'viewed: oolong', (SELECT items FROM lp_items), 3, 'click', NULL, 'thompson', 99)) AS replayed;
SELECT seed AS stored_seed FROM ecom.requests ORDER BY id DESC LIMIT 1;
-- without a seed, one is drawn and stored
SELECT count(*) FROM ecom_serve('lp_tea', 'viewed: oolong', (SELECT items FROM lp_items), 2);
SELECT seed IS NOT NULL AND seed <> 99 AS seed_drawn, explore FROM ecom.requests ORDER BY id DESC LIMIT 1;
-- bad input: nothing is logged
SELECT * FROM ecom_serve(NULL, 'viewed: oolong', ARRAY['teapot']);
SELECT * FROM ecom_serve('', 'viewed: oolong', ARRAY['teapot']);
SELECT * FROM ecom_serve('lp_tea', NULL, ARRAY['teapot']);
SELECT * FROM ecom_serve('lp_tea', 'viewed: oolong', NULL);
SELECT * FROM ecom_serve('lp_tea', 'viewed: oolong', ARRAY['teapot'], 0);
SELECT * FROM ecom_serve('lp_tea', 'viewed: oolong', ARRAY['teapot'], 1, 'wishlist');
SELECT * FROM ecom_serve('lp_tea', 'viewed: oolong', ARRAY['teapot'], 1, 'click', '{1}');
SELECT * FROM ecom_serve('lp_tea', 'viewed: oolong', ARRAY['teapot'], 1, 'click', NULL, 'sometimes');
SELECT * FROM ecom_serve('lp_tea', 'viewed: oolong', ARRAY[NULL, NULL]::text[]);
BEGIN READ ONLY;
SELECT * FROM ecom_serve('lp_tea', 'viewed: oolong', ARRAY['teapot']);
ROLLBACK;
SELECT count(*) AS impressions FROM ecom.impressions;

-- 3. ecom_feedback: idempotent, implied funnel steps, clear errors
SELECT min(id) AS first_id FROM ecom.impressions \gset
SELECT ecom_feedback(:first_id, 'cart') AS recorded, ecom_feedback(:first_id, 'cart') AS again;
SELECT behaviour, label, implied FROM ecom.feedback WHERE impression_id = :first_id ORDER BY behaviour;
-- an explicit label replaces an implied one; an implied one never replaces an explicit one
SELECT ecom_feedback(:first_id, 'click', false) AS recorded;
SELECT ecom_feedback(:first_id, 'purchase') AS recorded;
SELECT behaviour, label, implied FROM ecom.feedback WHERE impression_id = :first_id ORDER BY behaviour;
-- with pg_ecom.feedback_implies off, only the behaviour given
SET pg_ecom.feedback_implies = off;
SELECT ecom_feedback(:first_id + 1, 'purchase');
SELECT behaviour, label, implied FROM ecom.feedback WHERE impression_id = :first_id + 1 ORDER BY behaviour;
RESET pg_ecom.feedback_implies;
SELECT ecom_feedback(-1, 'click');
SELECT ecom_feedback(:first_id, 'wishlist');
SELECT ecom_feedback(NULL, 'click');
SELECT ecom_feedback(:first_id, NULL);
SELECT ecom_feedback(:first_id, 'click', NULL);
-- the form with the tenant (what Citus routes by): the same labels, but
-- only for that tenant's impressions
SELECT tenant AS first_tenant FROM ecom.impressions WHERE id = :first_id \gset
SELECT ecom_feedback(:first_id, 'cart', true, :'first_tenant') AS again,
       ecom_feedback(:first_id, 'browse', false, :'first_tenant') AS recorded;
SELECT behaviour, label, implied FROM ecom.feedback WHERE impression_id = :first_id ORDER BY behaviour;
SELECT ecom_feedback(impression_id => :first_id, behaviour => 'browse', label => true, tenant => :'first_tenant');
SELECT ecom_feedback(:first_id, 'click', true, 'lp_nobody');
SELECT ecom_feedback(:first_id, 'click', true, NULL);
SELECT ecom_feedback(NULL, 'click', true, :'first_tenant');
-- three untyped parameters, as drivers send them, still mean the form
-- without the tenant
PREPARE fb3 AS SELECT ecom_feedback($1, $2, $3);
EXECUTE fb3(:first_id, 'browse', true);
DEALLOCATE fb3;
-- without Citus, the distributed layout is a clear error (its PL/pgSQL
-- line number left out of the output)
\set SHOW_CONTEXT never
SELECT ecom_distribute();
\set SHOW_CONTEXT errors
-- the bulk form: all rows or none
CREATE TABLE lp_fb AS SELECT id AS impression_id, 'click'::text AS behaviour, rank = 1 AS label FROM ecom.impressions;
SELECT ecom_feedback('lp_fb') > 0 AS recorded, ecom_feedback('lp_fb') AS again;
SELECT count(*) AS rows_before FROM ecom.feedback \gset
INSERT INTO lp_fb VALUES (-5, 'click', true);
SELECT ecom_feedback('lp_fb');
DELETE FROM lp_fb WHERE impression_id = -5;
INSERT INTO lp_fb VALUES (:first_id, 'wishlist', true);
SELECT ecom_feedback('lp_fb');
DELETE FROM lp_fb WHERE behaviour = 'wishlist';
INSERT INTO lp_fb VALUES (:first_id, 'click', NULL);
SELECT ecom_feedback('lp_fb');
DELETE FROM lp_fb WHERE label IS NULL;
INSERT INTO lp_fb VALUES (:first_id, 'cart', true), (:first_id, 'cart', false);
SELECT ecom_feedback('lp_fb');
SELECT count(*) = :rows_before AS nothing_recorded FROM ecom.feedback;
SELECT ecom_feedback(NULL::regclass);
CREATE TABLE lp_fb_bad (impression_id bigint, what text);
SELECT ecom_feedback('lp_fb_bad');

-- 4. the views
SELECT tenant, rank, explore, reward, click, purchase FROM ecom.impression_outcomes WHERE impression_id = :first_id;
SELECT tenant, impressions = (SELECT count(*) FROM ecom.impressions WHERE tenant = 'lp_tea') AS all_counted,
       clicks, click_rate = clicks::float8 / impressions AS rate_ok,
       mean_predicted BETWEEN 0 AND 1 AS predicted_ok, online_auc BETWEEN 0 AND 1 AS auc_ok
  FROM ecom.tenant_performance WHERE tenant = 'lp_tea';

-- 5. ecom_evaluate: impressions younger than pg_ecom.feedback_window are
-- not read (feedback may still come)
SELECT (ecom_evaluate('lp_tea', NULL)->>'n')::int AS n_within_window;
SET pg_ecom.feedback_window = 0;
SELECT e->'served_by' AS served_by, (e->>'n')::int = (SELECT count(*) FROM ecom.impressions WHERE tenant = 'lp_tea') AS all_read,
       e ? 'ips' AND e ? 'snips' AND e ? 'dr' AND e ? 'ess' AS has_estimates,
       (e->'logged'->>'value')::float8 = (SELECT avg(reward::int) FROM ecom.impression_outcomes WHERE tenant = 'lp_tea') AS logged_value,
       (e->'dr'->'ci'->>0)::float8 <= (e->'dr'->>'value')::float8 AND (e->'dr'->>'value')::float8 <= (e->'dr'->'ci'->>1)::float8 AS ci_brackets
  FROM ecom_evaluate('lp_tea', NULL) e;
SELECT ecom_evaluate('lp_tea', 99);
SELECT ecom_evaluate(NULL, 1);
SELECT ecom_evaluate('lp_tea', 1, 'wishlist');
SELECT (ecom_evaluate('lp_nobody', NULL)->>'n')::int AS n_without_impressions;

-- 6. ecom_learn: too few requests to judge → stored, kept inactive
SELECT r->>'activated' AS activated, (r->>'version')::int AS version, (r->>'n')::int > 0 AS learned, r->>'reason' AS reason
  FROM ecom_learn('lp_tea') r;
SELECT version, active, hyper->>'kind' AS kind, posterior IS NOT NULL AS has_posterior FROM ecom.heads WHERE tenant = 'lp_tea';
-- nothing served since: no new version
SELECT r->>'version' AS version, r->>'reason' LIKE 'nothing served since version 1%' AS says_why FROM ecom_learn('lp_tea') r;
-- 'always' activates; the next call continues after it: nothing new
SELECT count(*) FROM ecom_serve('lp_tea', 'viewed: green tea', (SELECT items FROM lp_items), 2, explore => 'none');
SELECT r->>'activated' AS activated, (r->>'version')::int AS version FROM ecom_learn('lp_tea', activate => 'always') r;
SELECT r->>'version' AS version, (r->>'n')::int AS n FROM ecom_learn('lp_tea') r;
-- new impressions and feedback: a Bayesian update of the active version
SELECT count(*) FROM ecom_serve('lp_tea', 'viewed: oolong', (SELECT items FROM lp_items), 2, explore => 'none');
SELECT ecom_feedback(max(id), 'click') FROM ecom.impressions;
SELECT r->>'start' AS start, (r->>'parent_version')::int AS parent, (r->>'n')::int AS n, r->>'activated' AS activated
  FROM ecom_learn('lp_tea', activate => 'never') r;
-- with since: a refit from the global head over the impressions since then
SELECT r->>'start' AS start, (r->>'n')::int = (SELECT count(*) FROM ecom.impressions WHERE tenant = 'lp_tea') AS all_read
  FROM ecom_learn('lp_tea', now() - interval '1 hour', 'never') r;
-- enough requests to judge on held-out ones: a DR estimate decides; 12
-- requests of 2 impressions are too few for one fold (5 requests) to
-- judge on, so the 5 before them are held out too, by a second probe
SELECT count(*) FROM generate_series(1, 12) g, ecom_serve('lp_books', 'viewed: crime novel', (SELECT items FROM lp_items), 2, seed => g);
SELECT count(*) > 0 AND bool_and(ecom_feedback(id, 'click')) AS recorded FROM ecom.impressions WHERE tenant = 'lp_books' AND item = 'detective story';
SELECT (r->'evaluation'->>'held_out_requests')::int AS held_out, (r->'evaluation'->>'folds')::int AS folds,
       r->'evaluation'->'candidate' ? 'dr' AS judged,
       (r->>'activated')::boolean = (coalesce((r->'evaluation'->'difference'->'ci'->>0)::float8 > 0, false)
                                     AND (r->'evaluation'->>'positives')::int > 0
                                     AND (r->'evaluation'->'candidate'->'dr'->'ci'->>1)::float8 >= 0 AND (r->'evaluation'->'candidate'->'dr'->'ci'->>0)::float8 <= 1
                                     AND (r->'evaluation'->'active'->'dr'->'ci'->>1)::float8 >= 0 AND (r->'evaluation'->'active'->'dr'->'ci'->>0)::float8 <= 1) AS rule_applied
  FROM ecom_learn('lp_books') r;
-- a candidate kept inactive replaces the previous one from the same active
-- version: a job every minute keeps one waiting candidate, not one a minute
SELECT count(*) FROM ecom_serve('lp_tea', 'viewed: oolong', (SELECT items FROM lp_items), 2, explore => 'none');
SELECT (r->>'version')::int AS version, r->>'activated' AS activated FROM ecom_learn('lp_tea', activate => 'never') r;
SELECT count(*) AS waiting_candidates FROM ecom.heads
 WHERE tenant = 'lp_tea' AND NOT active AND hyper->>'kind' = 'learn'
   AND parent_version = (SELECT version FROM ecom.heads WHERE tenant = 'lp_tea' AND active);
-- a backlog larger than pg_ecom.learn_max_impressions is worked off in
-- turn, oldest first, whole requests: every impression learned once
SELECT count(*) FROM generate_series(1, 6) g, ecom_serve('lp_backlog', 'viewed: oolong', (SELECT items FROM lp_items), 2, seed => g);
SET pg_ecom.learn_max_impressions = 4;
SELECT (r->>'n')::int AS n, r->>'backlog' AS backlog, r->>'start' AS start FROM ecom_learn('lp_backlog', activate => 'always') r;
SELECT (r->>'n')::int AS n, r->>'backlog' AS backlog, r->>'start' AS start FROM ecom_learn('lp_backlog', activate => 'always') r;
SELECT (r->>'n')::int AS n, r->>'backlog' AS backlog, r->>'start' AS start FROM ecom_learn('lp_backlog', activate => 'always') r;
SELECT (r->>'n')::int AS n, r->>'reason' LIKE 'nothing served since version 3%' AS done FROM ecom_learn('lp_backlog', activate => 'always') r;
RESET pg_ecom.learn_max_impressions;
SELECT sum((metrics->>'n')::int) AS learned, (SELECT count(*) FROM ecom.impressions WHERE tenant = 'lp_backlog') AS served
  FROM ecom.heads WHERE tenant = 'lp_backlog';
-- feedback cannot hang off another tenant's impression (the foreign keys
-- carry the tenant; they ignore row-level security)
INSERT INTO ecom.feedback (impression_id, tenant, behaviour, label)
SELECT min(id), 'lp_books', 'click', true FROM ecom.impressions i
 WHERE tenant = 'lp_tea' AND NOT EXISTS (SELECT 1 FROM ecom.feedback f WHERE f.impression_id = i.id);
INSERT INTO ecom.impressions (request_id, tenant, context, item_index, item, rank, score, propensity, behaviour, head_version, explore)
SELECT min(id), 'lp_books', 'c', 1, 'i', 1, 0.5, 1, 'click', 1, 'none' FROM ecom.requests WHERE tenant = 'lp_tea';
SELECT ecom_forget('lp_backlog') AS heads_deleted;
SELECT ecom_learn(NULL);
SELECT ecom_learn('');
SELECT ecom_learn('lp_tea', activate => 'maybe');
BEGIN READ ONLY;
SELECT ecom_learn('lp_tea');
ROLLBACK;
RESET pg_ecom.feedback_window;

-- 7. ecom_forget removes the tenant's requests, impressions and feedback
SELECT ecom_forget('lp_tea') AS heads_deleted;
SELECT (SELECT count(*) FROM ecom.requests WHERE tenant = 'lp_tea') AS requests,
       (SELECT count(*) FROM ecom.impressions WHERE tenant = 'lp_tea') AS impressions,
       (SELECT count(*) FROM ecom.feedback WHERE tenant = 'lp_tea') AS feedback,
       (SELECT count(*) FROM ecom.impressions WHERE tenant = 'lp_books') > 0 AS others_kept;
-- a role that may delete heads but not the loop's rows: an ERROR, nothing deleted
CREATE ROLE lp_heads_only;
GRANT USAGE ON SCHEMA ecom TO lp_heads_only;
GRANT SELECT, DELETE ON ecom.heads TO lp_heads_only;
SET ROLE lp_heads_only;
SELECT ecom_forget('lp_books');
RESET ROLE;
SELECT (SELECT count(*) FROM ecom.heads WHERE tenant = 'lp_books') AS books_heads,
       (SELECT count(*) FROM ecom.impressions WHERE tenant = 'lp_books') > 0 AS books_impressions_kept;
REVOKE ALL ON ecom.heads FROM lp_heads_only;
REVOKE ALL ON SCHEMA ecom FROM lp_heads_only;
DROP ROLE lp_heads_only;
SELECT ecom_forget('lp_books') AS heads_deleted;
DROP TABLE lp_events, lp_fb, lp_fb_bad;
SELECT ecom_rollback(NULL, (SELECT min(version) FROM ecom.heads WHERE tenant IS NULL));
