-- The structured taste prior (core/src/taste.rs, docs/modelling.md "The
-- taste prior"): ecom_meta_train learns the directions along which its
-- tenants' tastes lie and stores them with the global head; tenants adapt
-- along them, carry a posterior with a dense block forward through
-- ecom_learn, and Thompson sampling draws from it.
-- 40 stores x 4 categories x 10 items, one event each: each store likes two of the four
-- categories (which two varies), so tastes differ along a few directions.
CREATE TABLE ts_events AS
WITH cats(c, name) AS (VALUES (0, 'trail running shoes'), (1, 'leather dress shoes'),
                              (2, 'crime mystery novel'), (3, 'vegan cookbook')),
     likes(p, a, b) AS (VALUES (0, 0, 1), (1, 2, 3), (2, 0, 2), (3, 1, 3))
SELECT 'ts_store' || s AS tenant,
       'shopper ' || ((s * 5 + r) % 7) AS context,
       name || ' no. ' || i AS item, 'click'::text AS behaviour,
       (abs(hashtext(s || '/' || c || '/' || i || '/' || r)) % 100)
         < CASE WHEN c IN (l.a, l.b) THEN 75 ELSE 20 END AS label
  FROM generate_series(0, 39) s, cats, generate_series(0, 9) i, generate_series(0, 0) r, likes l
 WHERE l.p = s % 4;

-- 1. meta-training keeps directions for clicks because they lift held-out
-- stores (directions need 8 held out: 40 stores, 8 held out), and stores
-- them with the global head
SELECT (r->'taste'->'rank'->>1)::int > 0 AS click_directions,
       (r->'taste'->'rank'->>0)::int AS browse_directions,
       (r->'taste'->>'val_auc_after')::float8 > (r->'taste'->>'val_auc_before')::float8 AS lifts_held_out_stores
  FROM ecom_meta_train('ts_events', meta_steps => 20) r;
SELECT cardinality(taste_basis) = 4 + (metrics->'taste'->'rank'->>1)::int * (384 + 1) AS basis_stored,
       taste_basis[1:4] = ARRAY[0, (metrics->'taste'->'rank'->>1)::real, 0, 0] AS ranks_first
  FROM ecom.heads WHERE tenant IS NULL AND active;

-- 2. a new store (likes running and dress shoes) adapts on 24 events; its
-- version names the global row and stores only its posterior, whose
-- click block covers gain, bias, the basis's r directions and the q
-- directions of the isotropic part its events informed (posterior: per
-- behaviour 2 + 384 precisions, then 384 centres, then each behaviour's q
-- (click's at 3082), then the blocks, click's (2 + r + q)², then click's q
-- directions of 384)
CREATE TABLE ts_support AS
SELECT context, item, behaviour, label FROM ts_events WHERE tenant = 'ts_store4' ORDER BY md5(item) LIMIT 24;
SELECT (ecom_adapt('ts_new', 'ts_support')->>'version')::int AS version;
SELECT t.taste_basis IS NULL AS none_of_its_own,
       (t.hyper->>'taste_base')::bigint = g.id AS names_the_global_row,
       t.posterior[3082] > 0 AS informed_directions,
       cardinality(t.posterior) = 4 * (2 + 2 * 384) + 4 + 3 * 4
         + power(2 + (g.metrics->'taste'->'rank'->>1)::int + t.posterior[3082], 2) + 384 * t.posterior[3082] AS posterior_has_the_block
  FROM ecom.heads t, ecom.heads g
 WHERE t.tenant = 'ts_new' AND t.active AND g.tenant IS NULL AND g.active;
-- pg_ecom.posterior_directions caps the directions a version keeps
SET pg_ecom.posterior_directions = 3;
SELECT (ecom_adapt('ts_capped', 'ts_support')->>'version')::int AS version;
SELECT posterior[3082] AS click_directions FROM ecom.heads WHERE tenant = 'ts_capped' AND active;
SET pg_ecom.posterior_directions = 0;
SELECT (ecom_adapt('ts_capped', 'ts_support')->>'version')::int AS version;
SELECT posterior[3082] AS click_directions FROM ecom.heads WHERE tenant = 'ts_capped' AND active;
RESET pg_ecom.posterior_directions;
SELECT ecom_forget('ts_capped') IS NOT NULL AS forgotten;
-- it ranks the shoes above the books, the global head much less so
SELECT who, avg(p) FILTER (WHERE item LIKE '%shoes%') - avg(p) FILTER (WHERE item NOT LIKE '%shoes%') > 0.1 AS prefers_shoes
  FROM (VALUES ('ts_new'), (NULL)) w(who),
       LATERAL (SELECT item, ecom_predict(w.who, 'shopper 3', item, 'click') AS p
                  FROM (SELECT DISTINCT item FROM ts_events WHERE item LIKE '% no. 3' OR item LIKE '% no. 5') i) s
 GROUP BY who ORDER BY who NULLS LAST;

-- the six candidates that sections 3 and 5 rank
\set shop6 'ARRAY[''trail running shoes no. 7'', ''crime mystery novel no. 7'', ''vegan cookbook no. 7'', ''leather dress shoes no. 7'', ''vegan cookbook no. 8'', ''trail running shoes no. 8'']'
-- 3. the loop: Thompson draws from the block, ecom_learn carries it forward
-- (posterior[387]: the click gain's precision, after browse's 386). The
-- draws here and in 5 are the posterior's, plain, as before 0.17.0: under
-- the default 'evidence' (5b), or with optimistic draws (5c), this store
-- shows its three shoes (nearly) every time, all clicked, which tells the
-- frozen gain too little to show in float4
SET pg_ecom.feedback_window = 0;
SET pg_ecom.thompson_draw = 'posterior';
SET pg_ecom.thompson_optimistic = off;
SELECT count(*) AS shown, bool_and(propensity > 0 AND propensity <= 1) AS propensities
  FROM generate_series(1, 10) r,
       LATERAL ecom_serve('ts_new', 'shopper 2',
                          :shop6,
                          3, 'click', NULL, 'thompson', r);
SELECT count(*) > 0 AS clicked FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'click')
 WHERE i.tenant = 'ts_new' AND i.item LIKE '%shoes%';
SELECT r->>'version' AS version, (r->>'n')::int > 0 AS learned FROM ecom_learn('ts_new', activate => 'always') r;
SELECT version, cardinality(posterior) = 4 * (2 + 2 * 384) + 4 + 3 * 4
         + power(2 + (g.metrics->'taste'->'rank'->>1)::int + posterior[3082], 2) + 384 * posterior[3082] AS same_form,
       posterior[3082] >= (SELECT posterior[3082] FROM ecom.heads WHERE tenant = 'ts_new' AND version = 1) AS as_many_directions,
       hyper->'taste_base' = (SELECT hyper->'taste_base' FROM ecom.heads WHERE tenant = 'ts_new' AND version = 1) AS same_global,
       posterior[387] > (SELECT posterior[387] FROM ecom.heads WHERE tenant = 'ts_new' AND version = 1) AS click_gain_surer
  FROM ecom.heads t, LATERAL (SELECT metrics FROM ecom.heads WHERE tenant IS NULL AND active) g
 WHERE tenant = 'ts_new' AND active;

-- 4. a damaged basis is an ERROR, never a wrong score, and loses nothing
BEGIN;
UPDATE ecom.heads SET taste_basis = '{0,1.5,0,0}' WHERE tenant IS NULL AND active;
SELECT ecom_predict(NULL, 'shopper 1', 'vegan cookbook no. 1', 'click');
ROLLBACK;
BEGIN;
UPDATE ecom.heads SET taste_basis = taste_basis[1:100] WHERE tenant IS NULL AND active;
SELECT ecom_predict('ts_new', 'shopper 1', 'vegan cookbook no. 1', 'click');
ROLLBACK;
SELECT ecom_predict('ts_new', 'shopper 1', 'vegan cookbook no. 1', 'click') > 0 AS scores_again;

-- 5. pg_ecom.thompson_taste: 'informed' (the default) holds the taste no
-- event informed at its mean, so a store with no events of its own (the
-- global head's prior) draws far fewer different rankings from 40 seeds
-- than 'all', which draws that taste from the prior; credible intervals
-- stay exact either way
SHOW pg_ecom.thompson_taste;
CREATE TEMP TABLE ts_rankings (setting text, r int, ranking text);
PREPARE ts_draw AS
INSERT INTO ts_rankings
SELECT current_setting('pg_ecom.thompson_taste'), r, string_agg(x.item, ',' ORDER BY x.rank)
  FROM generate_series(1, 40) r,
       LATERAL ecom_serve('ts_fresh', 'shopper 2',
                          :shop6,
                          3, 'click', NULL, 'thompson', r) x
 GROUP BY r;
EXECUTE ts_draw;
SET pg_ecom.thompson_taste = 'all';
EXECUTE ts_draw;
SELECT count(DISTINCT ranking) FILTER (WHERE setting = 'informed')
         < count(DISTINCT ranking) FILTER (WHERE setting = 'all') AS informed_explores_less
  FROM ts_rankings;
CREATE TEMP TABLE ts_all AS SELECT * FROM ecom_predict_interval('ts_fresh', 'shopper 2', 'vegan cookbook no. 7', 'click');
RESET pg_ecom.thompson_taste;
SELECT a.lower = i.lower AND a.upper = i.upper AS same_interval
  FROM ts_all a, ecom_predict_interval('ts_fresh', 'shopper 2', 'vegan cookbook no. 7', 'click') i;
-- a value it does not know is an ERROR that lists the two it knows
SET pg_ecom.thompson_taste = 'none';
-- 5b. pg_ecom.thompson_draw = 'evidence' draws only what a tenant's events
-- said: a store with none draws one ranking from 40 seeds, even with the
-- taste and the item effects set to be drawn from the prior ('all'); the
-- interval is the posterior's either way; a store that adapted and learned
-- (ts_new) still explores under 'evidence', but draws no more rankings
-- than the posterior gives it
RESET pg_ecom.thompson_draw;
RESET pg_ecom.thompson_optimistic;
SHOW pg_ecom.thompson_draw;
CREATE TEMP TABLE td_rankings (setting text, tenant text, r int, ranking text);
PREPARE td_draw(text) AS
INSERT INTO td_rankings
SELECT current_setting('pg_ecom.thompson_draw'), $1, r, string_agg(x.item, ',' ORDER BY x.rank)
  FROM generate_series(1, 40) r,
       LATERAL ecom_rank($1, 'shopper 2',
                         :shop6,
                         3, 'click', NULL, 'thompson', r) x
 GROUP BY r;
SET pg_ecom.thompson_taste = 'all';
SET pg_ecom.thompson_items = 'all';
SET pg_ecom.thompson_draw = 'posterior';
EXECUTE td_draw('ts_fresh');
EXECUTE td_draw('ts_new');
SET pg_ecom.thompson_draw = 'evidence';
EXECUTE td_draw('ts_fresh');
EXECUTE td_draw('ts_new');
SELECT setting, tenant, count(DISTINCT ranking) = 1 AS one_ranking FROM td_rankings
 WHERE tenant = 'ts_fresh' GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(DISTINCT ranking) FILTER (WHERE setting = 'evidence') > 1 AS evidence_explores,
       count(DISTINCT ranking) FILTER (WHERE setting = 'evidence')
         <= count(DISTINCT ranking) FILTER (WHERE setting = 'posterior') AS evidence_explores_no_more
  FROM td_rankings WHERE tenant = 'ts_new';
SELECT a.lower = i.lower AND a.upper = i.upper AS same_interval
  FROM ts_all a, ecom_predict_interval('ts_fresh', 'shopper 2', 'vegan cookbook no. 7', 'click') i;
RESET pg_ecom.thompson_taste;
RESET pg_ecom.thompson_items;
RESET pg_ecom.thompson_draw;
-- a value it does not know is an ERROR that lists the two it knows
SET pg_ecom.thompson_draw = 'prior';
-- 5c. pg_ecom.thompson_optimistic: a draw never lowers an item below its
-- mean, so from the same seed the item the head ranks first is shown at
-- a place no lower than the plain draw shows it (another item can pass
-- it only by a draw above its mean, which the plain draw also made), and
-- higher for some seeds: exploration only lifts
SHOW pg_ecom.thompson_optimistic;
CREATE TEMP TABLE to_places (optimistic bool, r int, place int);
PREPARE to_draw AS
INSERT INTO to_places
SELECT current_setting('pg_ecom.thompson_optimistic')::bool, r,
       coalesce(min(x.rank) FILTER (WHERE x.item = g.item), 99)
  FROM (SELECT item FROM ecom_rank('ts_new', 'shopper 2',
                     :shop6,
                     1, 'click', NULL, 'none')) g,
       generate_series(1, 40) r,
       LATERAL ecom_rank('ts_new', 'shopper 2',
                         :shop6,
                         3, 'click', NULL, 'thompson', r) x
 GROUP BY r;
SET pg_ecom.thompson_optimistic = off;
EXECUTE to_draw;
SET pg_ecom.thompson_optimistic = on;
EXECUTE to_draw;
SELECT bool_and(o.place <= p.place) AS never_lower,
       count(*) FILTER (WHERE o.place < p.place) > 0 AS sometimes_higher,
       count(*) FILTER (WHERE p.place > 1) > 0 AS plain_explores
  FROM to_places o JOIN to_places p USING (r)
 WHERE o.optimistic AND NOT p.optimistic;
RESET pg_ecom.thompson_optimistic;
SELECT ecom_forget('ts_fresh')->'impressions' AS forgotten_impressions;

-- 6. a global head with an empty basis (four zero ranks: what
-- ecom_meta_train stores when it learns no directions but leaves the
-- taste free): a tenant's posterior still keeps the directions of β its
-- events informed, in a block of 2 + q, and serves and gives intervals
BEGIN;
UPDATE ecom.heads SET taste_basis = '{0,0,0,0}' WHERE tenant IS NULL AND active;
SELECT (ecom_adapt('ts_flat', 'ts_support')->>'version')::int AS version;
SELECT t.taste_basis IS NULL AS none_of_its_own,
       (t.hyper->>'taste_base')::bigint = g.id AS names_the_global_row,
       t.posterior[3082] > 0 AS informed_directions,
       cardinality(t.posterior) = 4 * (2 + 2 * 384) + 4 + 3 * 4
         + power(2 + t.posterior[3082], 2) + 384 * t.posterior[3082] AS posterior_has_the_block
  FROM ecom.heads t, ecom.heads g
 WHERE t.tenant = 'ts_flat' AND t.active AND g.tenant IS NULL AND g.active;
SELECT count(*) AS shown, bool_and(propensity > 0 AND propensity <= 1) AS propensities
  FROM generate_series(1, 5) r,
       LATERAL ecom_serve('ts_flat', 'shopper 2', ARRAY['trail running shoes no. 7', 'vegan cookbook no. 7', 'crime mystery novel no. 7'],
                          2, 'click', NULL, 'thompson', r);
SELECT lower < probability AND probability < upper AS interval_around_the_score
  FROM ecom_predict_interval('ts_flat', 'shopper 2', 'vegan cookbook no. 7', 'click');
ROLLBACK;

-- 7. forgetting a store leaves the global directions alone
SELECT ecom_forget('ts_new')->'heads' AS heads;
SELECT taste_basis IS NOT NULL AS global_keeps_its_basis FROM ecom.heads WHERE tenant IS NULL AND active;
RESET pg_ecom.feedback_window;
DROP TABLE ts_events, ts_support;
