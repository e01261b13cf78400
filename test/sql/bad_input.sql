-- Every bad input tried against every function, and what it gets: a value,
-- NULL, no rows, or the exact ERROR (SQLSTATE and message). One row per case;
-- README "Bad input" is this table. Each call runs in its own subtransaction
-- and the session carries on after every ERROR.
CREATE FUNCTION outcome(q text, as_role text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  BEGIN
    IF as_role IS NOT NULL THEN EXECUTE format('SET LOCAL ROLE %I', as_role); END IF;
    EXECUTE q INTO r;
    r := coalesce(r, 'NULL');
  EXCEPTION WHEN others THEN
    r := 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
  END;
  RESET ROLE;
  RETURN r;
END $$;
-- fixtures: a global head with 2 side features, a tenant, support relations
CREATE TABLE bi_events AS
SELECT 'shop' || (g % 3) AS tenant, 'viewed: ' || (ARRAY['tea', 'bikes'])[1 + g % 2] AS context,
       (ARRAY['green tea tin', 'bike helmet', 'paint set'])[1 + g % 3] AS item, 'purchase'::text AS behaviour,
       g % 2 = g % 3 AS label, ARRAY[(g % 4) / 4.0, 0.5]::real[] AS features
  FROM generate_series(1, 90) g;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('bi_events', meta_steps => 10) r;
CREATE TABLE bi_support AS SELECT context, item, behaviour, label, features FROM bi_events WHERE tenant = 'shop1';
SELECT (r->>'version')::int AS v FROM ecom_adapt('bi_shop', 'bi_support') r;
CREATE TABLE bi_empty (context text, item text, behaviour text, label boolean);
CREATE TABLE bi_feedback_empty (impression_id bigint, behaviour text, label boolean);
CREATE TABLE bi_feedback_numeric (impression_id numeric, behaviour text, label boolean);
CREATE TABLE bi_missing (context text, item text, label boolean);
CREATE TABLE bi_empty_source (tenant text, context text, item text, behaviour text, label boolean);
CREATE TABLE bi_wrong_type (context text, item text, behaviour text, label int);
CREATE TABLE bi_bad_behaviour AS SELECT context, item, 'wishlist'::text AS behaviour, label FROM bi_support;
CREATE TABLE bi_null_rows AS SELECT context, item, behaviour, label FROM bi_support
  UNION ALL SELECT NULL, 'x', 'purchase', true UNION ALL SELECT 'x', 'y', 'purchase', NULL;
CREATE TABLE bi_secret AS SELECT * FROM bi_support;
CREATE TABLE bi_no_tenant AS SELECT context, item, behaviour, label FROM bi_events;
CREATE ROLE bi_nobody;
GRANT USAGE ON SCHEMA ecom TO bi_nobody;
GRANT SELECT, INSERT, UPDATE ON ecom.heads TO bi_nobody;
-- vectorizers: tables to attach to, one attached already
CREATE TABLE bi_vz (id int PRIMARY KEY, title text, emb real[], emb2 real[], n int);
CREATE VIEW bi_vz_view AS SELECT * FROM bi_vz;
CREATE TABLE bi_vz_nokey (title text, emb real[]);
CREATE TABLE bi_vz_pair (a int, b int, title text, emb real[], PRIMARY KEY (a, b));
CREATE TABLE bi_vz_charkey (code char(4) PRIMARY KEY, title text, emb real[]);
CREATE TEMP TABLE bi_vz_temp (id int PRIMARY KEY, title text, emb real[]);
CREATE TABLE bi_vz_parent (id int PRIMARY KEY, title text, emb real[]);
CREATE TABLE bi_vz_child () INHERITS (bi_vz_parent);
SET client_min_messages = warning;  -- attach's NOTICE where no worker runs
SELECT ecom_vectorizer_attach('bi_vz', 'title', 'emb') > 0 AS attached;
RESET client_min_messages;
-- side features beyond ±1e9, and a ts no ORDER BY can sort
CREATE TABLE bi_huge_support AS SELECT context, item, behaviour, label, ARRAY[1e20, 0.5]::real[] AS features FROM bi_support;
CREATE TABLE bi_huge_events AS SELECT tenant, context, item, behaviour, label, ARRAY[0.5, -1e12]::real[] AS features FROM bi_events;
CREATE TABLE bi_point_ts AS SELECT context, item, behaviour, label, features, point(1, 2) AS ts FROM bi_support;
-- a tenant whose log holds a request with a side feature of 1e20, as
-- ecom_serve accepted before 0.20.0 (written here by hand)
SET pg_ecom.feedback_window = 0;
SELECT count(*) AS shown FROM generate_series(1, 4) g,
  ecom_serve('bi_huge', 'viewed: tea', ARRAY['green tea tin', 'bike helmet'], 2, 'purchase', '{0.1,0.5,0.9,0.5}', 'none', g);
UPDATE ecom.requests SET features = '{1e20,0.5,0.9,0.5}' WHERE tenant = 'bi_huge' AND seed = 1;
UPDATE ecom.impressions i SET features = '{1e20,0.5}' FROM ecom.requests r
 WHERE r.id = i.request_id AND r.tenant = 'bi_huge' AND r.seed = 1 AND i.item_index = 1;
SELECT count(*) AS clicked FROM ecom.impressions i, LATERAL ecom_feedback(i.id, 'purchase')
 WHERE i.tenant = 'bi_huge' AND i.rank = 1;
CREATE TABLE cases (id serial, fn text, input text, q text, as_role text);
INSERT INTO cases (fn, input, q, as_role) VALUES
-- tokenizing
('ecom_tokenize', 'NULL', $$SELECT ecom_tokenize(NULL)::text$$, NULL),
('ecom_tokenize', 'empty text', $$SELECT ecom_tokenize('')::text$$, NULL),
('ecom_tokenize', 'whitespace only', $$SELECT ecom_tokenize(E' \t\n ')::text$$, NULL),
('ecom_tokenize', '1 MB text', $$SELECT array_length(ecom_tokenize(repeat('wool socks ', 95326)), 1) || ' ids (cut to max_len, default 128)'$$, NULL),
('ecom_tokenize', 'max_len 1', $$SELECT ecom_tokenize('socks', 1)::text$$, NULL),
('ecom_tokenize', 'max_len huge', $$SELECT ecom_tokenize('socks', 100000)::text$$, NULL),
('ecom_tokenize', '10 MB single word', $$SELECT array_length(ecom_tokenize(repeat('x', 10485760)), 1) || ' ids'$$, NULL),
('ecom_tokens', 'NULL', $$SELECT ecom_tokens(NULL)::text$$, NULL),
('ecom_tokens', 'empty text', $$SELECT ecom_tokens('')::text$$, NULL),
('ecom_tokens', '1 MB text', $$SELECT array_length(ecom_tokens(repeat('wool socks ', 95326)), 1) || ' tokens (cut to pg_ecom.max_seq_len)'$$, NULL),
-- embedding
('ecom_embed', 'NULL', $$SELECT ecom_embed(NULL)::text$$, NULL),
('ecom_embed', 'empty text', $$SELECT array_length(ecom_embed(''), 1) || ' dims'$$, NULL),
('ecom_embed', 'whitespace only', $$SELECT (ecom_embed(E' \t ') = ecom_embed('')) || ' (same as empty)'$$, NULL),
('ecom_embed', '1 MB text', $$SELECT array_length(ecom_embed(repeat('wool socks ', 95326)), 1) || ' dims'$$, NULL),
('ecom_embed', '10 MB single word', $$SELECT array_length(ecom_embed(repeat('x', 10485760)), 1) || ' dims'$$, NULL),
('ecom_embed_batch', 'NULL array', $$SELECT count(*) || ' rows' FROM ecom_embed_batch(NULL)$$, NULL),
('ecom_embed_batch', 'empty array', $$SELECT count(*) || ' rows' FROM ecom_embed_batch('{}'::text[])$$, NULL),
('ecom_embed_batch', 'NULL element', $$SELECT string_agg(ord || ':' || coalesce(array_length(embedding, 1)::text, 'NULL'), ' ' ORDER BY ord) FROM ecom_embed_batch(ARRAY['a', NULL, ''])$$, NULL),
-- similarity
('ecom_similarity', 'NULL argument', $$SELECT ecom_similarity(NULL, '{1,2}')::text$$, NULL),
('ecom_similarity', 'lengths differ', $$SELECT ecom_similarity('{1,2}', '{1,2,3}')::text$$, NULL),
('ecom_similarity', 'NULL element', $$SELECT ecom_similarity('{1,NULL}', '{1,2}')::text$$, NULL),
('ecom_similarity', 'zero vector', $$SELECT ecom_similarity('{0,0}', '{1,2}')::text$$, NULL),
('ecom_similarity', 'NaN element', $$SELECT ecom_similarity('{NaN,1}', '{1,2}')::text$$, NULL),
('ecom_similarity', 'empty arrays', $$SELECT ecom_similarity('{}', '{}')::text$$, NULL),
-- scoring from text
('ecom_predict', 'tenant NULL', $$SELECT (ecom_predict(NULL, 'viewed: tea', 'green tea tin', 'purchase', '{0.5,0.5}') = ecom_predict('no-such-shop', 'viewed: tea', 'green tea tin', 'purchase', '{0.5,0.5}')) || ' (global head)'$$, NULL),
('ecom_predict', 'unknown tenant', $$SELECT (ecom_predict('no-such-shop', 'viewed: tea', 'green tea tin', 'purchase', '{0.5,0.5}') BETWEEN 0 AND 1) || ' (global head)'$$, NULL),
('ecom_predict', 'context NULL', $$SELECT ecom_predict('bi_shop', NULL, 'green tea tin', 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict', 'item NULL', $$SELECT ecom_predict('bi_shop', 'viewed: tea', NULL, 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict', 'behaviour NULL', $$SELECT ecom_predict('bi_shop', 'viewed: tea', 'x', NULL, '{0.5,0.5}')::text$$, NULL),
('ecom_predict', 'empty context and item', $$SELECT (ecom_predict('bi_shop', '', '', 'purchase', '{0.5,0.5}') BETWEEN 0 AND 1)::text$$, NULL),
('ecom_predict', '1 MB context', $$SELECT (ecom_predict('bi_shop', repeat('tea ', 262144), 'green tea tin', 'purchase', '{0.5,0.5}') BETWEEN 0 AND 1)::text$$, NULL),
('ecom_predict', 'invalid behaviour', $$SELECT ecom_predict('bi_shop', 'c', 'i', 'wishlist', '{0.5,0.5}')::text$$, NULL),
('ecom_predict', 'features NULL (head has 2)', $$SELECT ecom_predict('bi_shop', 'c', 'i')::text$$, NULL),
('ecom_predict', 'features too short', $$SELECT ecom_predict('bi_shop', 'c', 'i', 'purchase', '{0.5}')::text$$, NULL),
('ecom_predict', 'features NULL element', $$SELECT ecom_predict('bi_shop', 'c', 'i', 'purchase', '{0.5,NULL}')::text$$, NULL),
('ecom_predict', 'features NaN', $$SELECT ecom_predict('bi_shop', 'c', 'i', 'purchase', '{0.5,NaN}')::text$$, NULL),
('ecom_predict', 'features Infinity', $$SELECT ecom_predict('bi_shop', 'c', 'i', 'purchase', '{0.5,Infinity}')::text$$, NULL),
('ecom_predict', 'features beyond ±1e9', $$SELECT ecom_predict('bi_shop', 'c', 'i', 'purchase', '{0.5,1e20}')::text$$, NULL),
('ecom_predict', 'behaviour of 1 MB (cut in the message)', $$SELECT ecom_predict('bi_shop', 'c', 'i', repeat('z', 1000000))::text$$, NULL),
('ecom_predict_all', 'context NULL', $$SELECT ecom_predict_all('bi_shop', NULL, 'i', '{0.5,0.5}')::text$$, NULL),
('ecom_predict_all', 'features too long', $$SELECT ecom_predict_all('bi_shop', 'c', 'i', '{1,2,3}')::text$$, NULL),
('ecom_explain', 'item NULL', $$SELECT ecom_explain('bi_shop', 'c', NULL, 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_explain', 'behaviour NULL', $$SELECT ecom_explain('bi_shop', 'c', 'i', NULL, '{0.5,0.5}')::text$$, NULL),
('ecom_explain', 'invalid behaviour', $$SELECT ecom_explain('bi_shop', 'c', 'i', 'wishlist', '{0.5,0.5}')::text$$, NULL),
('ecom_explain', 'features too short', $$SELECT ecom_explain('bi_shop', 'c', 'i', 'purchase', '{0.5}')::text$$, NULL),
('ecom_explain', 'features NaN', $$SELECT ecom_explain('bi_shop', 'c', 'i', 'purchase', '{0.5,NaN}')::text$$, NULL),
('ecom_predict_interval', 'item NULL', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', NULL, 'purchase', 0.9, '{0.5,0.5}')$$, NULL),
('ecom_predict_interval', 'level NULL', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', 'i', 'purchase', NULL, '{0.5,0.5}')$$, NULL),
('ecom_predict_interval', 'level 0', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', 'i', 'purchase', 0, '{0.5,0.5}')$$, NULL),
('ecom_predict_interval', 'level 1', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', 'i', 'purchase', 1, '{0.5,0.5}')$$, NULL),
('ecom_predict_interval', 'level -0.5', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', 'i', 'purchase', -0.5, '{0.5,0.5}')$$, NULL),
('ecom_predict_interval', 'level NaN', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', 'i', 'purchase', 'NaN', '{0.5,0.5}')$$, NULL),
('ecom_predict_interval', 'invalid behaviour', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', 'i', 'wishlist', 0.9, '{0.5,0.5}')$$, NULL),
('ecom_predict_interval', 'features too short', $$SELECT count(*) || ' rows' FROM ecom_predict_interval('bi_shop', 'c', 'i', 'purchase', 0.9, '{0.5}')$$, NULL),
('ecom_item_key', 'item NULL', $$SELECT ecom_item_key(NULL)::text$$, NULL),
('ecom_item_key', 'item empty', $$SELECT ecom_item_key('')::text$$, NULL),
('ecom_item_key', '1 MB text', $$SELECT (ecom_item_key(repeat('wool socks ', 95326)) IS NOT NULL)::text$$, NULL),
('ecom_item_effects', 'tenant unknown (the global head serves)', $$SELECT count(*) || ' rows' FROM ecom_item_effects('bi_nobody_knows')$$, NULL),
('ecom_item_effects', 'tenant name too long', $$SELECT count(*)::text FROM ecom_item_effects(repeat('t', 300))$$, NULL),
-- scoring from stored embeddings
('ecom_predict_emb', 'embedding NULL', $$SELECT ecom_predict_emb('bi_shop', NULL, ecom_embed('x'), 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict_emb', 'wrong length', $$SELECT ecom_predict_emb('bi_shop', '{1,2,3}', ecom_embed('x'), 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict_emb', 'empty array', $$SELECT ecom_predict_emb('bi_shop', ecom_embed('x'), '{}', 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict_emb', 'NaN element', $$SELECT ecom_predict_emb('bi_shop', ecom_embed('x'), array_fill('NaN'::real, ARRAY[384]), 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict_emb', 'Infinity element', $$SELECT ecom_predict_emb('bi_shop', array_fill('-Infinity'::real, ARRAY[384]), ecom_embed('x'), 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict_emb', 'NULL element', $$SELECT ecom_predict_emb('bi_shop', ecom_embed('x'), array_fill(NULL::real, ARRAY[384]), 'purchase', '{0.5,0.5}')::text$$, NULL),
('ecom_predict_emb', 'zero vectors', $$SELECT (ecom_predict_emb('bi_shop', array_fill(0::real, ARRAY[384]), array_fill(0::real, ARRAY[384]), 'purchase', '{0.5,0.5}') BETWEEN 0 AND 1)::text$$, NULL),
-- ranking
('ecom_rank', 'items NULL', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', NULL)$$, NULL),
('ecom_rank', 'items empty', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', '{}'::text[], 10, 'purchase', '{}')$$, NULL),
('ecom_rank', 'NULL items skipped', $$SELECT string_agg(item_index::text, ',' ORDER BY item_index) FROM ecom_rank('bi_shop', 'c', ARRAY['a', NULL, 'b'], 10, 'purchase', '{0,0,0,0,0,0}')$$, NULL),
('ecom_rank', 'context NULL', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', NULL, ARRAY['a'])$$, NULL),
('ecom_rank', 'k NULL', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a'], NULL)$$, NULL),
('ecom_rank', 'k = 0', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a'], 0)$$, NULL),
('ecom_rank', 'k negative', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a'], -5)$$, NULL),
('ecom_rank', 'k larger than items', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a', 'b'], 2147483647, 'purchase', '{0,0,0,0}')$$, NULL),
('ecom_rank', 'features for fewer items', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a', 'b'], 5, 'purchase', '{0,0}')$$, NULL),
('ecom_rank', 'invalid behaviour', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a'], 5, 'like', '{0,0}')$$, NULL),
('ecom_rank', 'explore invalid', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a'], 5, 'purchase', '{0,0}', 'greedy')$$, NULL),
('ecom_rank', 'explore NULL', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a'], 5, 'purchase', '{0,0}', NULL)$$, NULL),
('ecom_rank', 'seed NULL (thompson)', $$SELECT count(*) || ' rows' FROM ecom_rank('bi_shop', 'c', ARRAY['a', 'b'], 5, 'purchase', '{0,0,0,0}', 'thompson', NULL)$$, NULL),
-- the loop
('ecom_serve', 'tenant NULL', $$SELECT count(*) || ' rows' FROM ecom_serve(NULL, 'c', ARRAY['a'], 1, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'tenant empty', $$SELECT count(*) || ' rows' FROM ecom_serve('', 'c', ARRAY['a'], 1, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'tenant over 256 bytes', $$SELECT count(*) || ' rows' FROM ecom_serve(repeat('x', 300), 'c', ARRAY['a'], 1, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'context NULL', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', NULL, ARRAY['a'], 1, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'items NULL', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', NULL, 1, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'items all NULL', $$SELECT count(*) || ' rows (nothing logged)' FROM ecom_serve('bi_shop', 'c', ARRAY[NULL]::text[], 1, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'k NULL', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], NULL, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'k = 0', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], 0, 'click', '{0,0}')$$, NULL),
('ecom_serve', 'invalid behaviour', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], 1, 'like', '{0,0}')$$, NULL),
('ecom_serve', 'explore invalid', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], 1, 'click', '{0,0}', 'sometimes')$$, NULL),
('ecom_serve', 'explore NULL', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], 1, 'click', '{0,0}', NULL)$$, NULL),
('ecom_serve', 'features too short', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], 1, 'click', '{0}')$$, NULL),
('ecom_serve', 'features NaN', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], 1, 'click', '{0,NaN}')$$, NULL),
('ecom_serve', 'features beyond ±1e9', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_shop', 'c', ARRAY['a'], 1, 'click', '{-3e9,0}')$$, NULL),
('ecom_serve', 'a role that may not write impressions', $$SELECT count(*) || ' rows' FROM ecom_serve('bi_nobody', 'c', ARRAY['a'], 1, 'click', '{0,0}')$$, 'bi_nobody'),
('ecom_query_vector', 'context NULL', $$SELECT ecom_query_vector('bi_shop', NULL)::text$$, NULL),
('ecom_query_vector', 'behaviour NULL', $$SELECT ecom_query_vector('bi_shop', 'c', NULL)::text$$, NULL),
('ecom_query_vector', 'invalid behaviour', $$SELECT ecom_query_vector('bi_shop', 'c', 'wishlist')::text$$, NULL),
('ecom_query_vector', 'tenant over 256 bytes', $$SELECT ecom_query_vector(repeat('x', 300), 'c')::text$$, NULL),
('ecom_rank_emb', 'item_embeddings NULL', $$SELECT count(*) || ' rows' FROM ecom_rank_emb('bi_shop', 'c', ARRAY['a'], NULL, 1, 'purchase', '{0,0}')$$, NULL),
('ecom_rank_emb', 'context NULL', $$SELECT count(*) || ' rows' FROM ecom_rank_emb('bi_shop', NULL, ARRAY['a'], NULL, 1, 'purchase', '{0,0}')$$, NULL),
('ecom_rank_emb', 'item_embeddings for fewer items', $$SELECT count(*) || ' rows' FROM ecom_rank_emb('bi_shop', 'c', ARRAY['a', 'b'], ecom_embed('a'), 1, 'purchase', '{0,0,0,0}')$$, NULL),
('ecom_rank_emb', 'item_embeddings NaN', $$SELECT count(*) || ' rows' FROM ecom_rank_emb('bi_shop', 'c', ARRAY['a'], array_fill('NaN'::real, ARRAY[384]), 1, 'purchase', '{0,0}')$$, NULL),
('ecom_rank_emb', 'item_embeddings not unit length', $$SELECT count(*) || ' rows' FROM ecom_rank_emb('bi_shop', 'c', ARRAY['a'], (SELECT array_agg((x * 3)::real) FROM unnest(ecom_embed('a')) x), 1, 'purchase', '{0,0}')$$, NULL),
('ecom_rank_emb', 'zero row of a NULL item', $$SELECT string_agg(item, ',') FROM ecom_rank_emb('bi_shop', 'c', ARRAY[NULL, 'a'], array_fill(0::real, ARRAY[384]) || ecom_embed('a'), 2, 'purchase', '{0,0,0,0}')$$, NULL),
('ecom_serve_emb', 'tenant NULL', $$SELECT count(*) || ' rows' FROM ecom_serve_emb(NULL, 'c', ARRAY['a'], ecom_embed('a'), 1, 'click', '{0,0}')$$, NULL),
('ecom_serve_emb', 'item_embeddings NULL', $$SELECT count(*) || ' rows' FROM ecom_serve_emb('bi_shop', 'c', ARRAY['a'], NULL, 1, 'click', '{0,0}')$$, NULL),
('ecom_serve_emb', 'item_embeddings not unit length', $$SELECT count(*) || ' rows' FROM ecom_serve_emb('bi_shop', 'c', ARRAY['a'], array_fill(0::real, ARRAY[384]), 1, 'click', '{0,0}')$$, NULL),
('ecom_top_items', 'n negative', $$SELECT count(*) || ' rows' FROM ecom_top_items('bi_shop', 'purchase', -1)$$, NULL),
('ecom_top_items', 'n NULL', $$SELECT count(*) || ' rows' FROM ecom_top_items('bi_shop', 'purchase', NULL)$$, NULL),
('ecom_top_items', 'invalid behaviour', $$SELECT count(*) || ' rows' FROM ecom_top_items('bi_shop', 'wishlist')$$, NULL),
('ecom_feedback', 'impression_id NULL', $$SELECT ecom_feedback(NULL, 'click')::text$$, NULL),
('ecom_feedback', 'unknown impression', $$SELECT ecom_feedback(-1, 'click')::text$$, NULL),
('ecom_feedback', 'invalid behaviour', $$SELECT ecom_feedback(-1, 'like')::text$$, NULL),
('ecom_feedback', 'label NULL', $$SELECT ecom_feedback(-1, 'click', NULL)::text$$, NULL),
('ecom_feedback', 'relation NULL', $$SELECT ecom_feedback(NULL::regclass)::text$$, NULL),
('ecom_feedback', 'relation does not exist', $$SELECT ecom_feedback('no_such_table')::text$$, NULL),
('ecom_feedback', 'relation lacks a column', $$SELECT ecom_feedback('bi_missing')::text$$, NULL),
('ecom_feedback', 'relation OID that names no relation', $$SELECT ecom_feedback(42)::text$$, NULL),
('ecom_feedback', 'relation with a numeric impression_id', $$SELECT ecom_feedback('bi_feedback_numeric')::text$$, NULL),
('ecom_feedback', 'relation empty', $$SELECT ecom_feedback('bi_feedback_empty')::text || ' rows'$$, NULL),
('ecom_learn', 'tenant NULL', $$SELECT ecom_learn(NULL)::text$$, NULL),
('ecom_learn', 'tenant empty', $$SELECT ecom_learn('')::text$$, NULL),
('ecom_learn', 'activate invalid', $$SELECT ecom_learn('bi_shop', activate => 'maybe')::text$$, NULL),
('ecom_learn', 'no impressions', $$SELECT (r->>'version') IS NULL || ', ' || (r->>'reason' LIKE 'no impressions served%') FROM ecom_learn('bi_shop') r$$, NULL),
('ecom_learn', 'since in the future (the reason names it)', $$SELECT (r->>'version') IS NULL || ', ' || (r->>'reason' LIKE 'no impressions served since % and before %') FROM ecom_learn('bi_huge', now() + interval '1 day', 'never') r$$, NULL),
('ecom_learn', 'activate of 1 MB (cut in the message)', $$SELECT ecom_learn('bi_shop', activate => repeat('z', 1000000))::text$$, NULL),
('ecom_learn', 'a logged request with a feature beyond ±1e9 (before 0.20.0)', $$SELECT (r->>'requests') || ' learned, ' || (r->>'skipped_requests') || ' skipped, version ' || (r->>'version') FROM ecom_learn('bi_huge', activate => 'always') r$$, NULL),
('ecom_evaluate', 'tenant NULL', $$SELECT ecom_evaluate(NULL, 1)::text$$, NULL),
('ecom_evaluate', 'unknown version', $$SELECT ecom_evaluate('bi_shop', 999)::text$$, NULL),
('ecom_evaluate', 'invalid behaviour', $$SELECT ecom_evaluate('bi_shop', NULL, 'like')::text$$, NULL),
('ecom_evaluate', 'no impressions', $$SELECT (r->>'n') || ' impressions, ' || (r->'dr') FROM ecom_evaluate('bi_shop', NULL) r$$, NULL),
-- adaptation
('ecom_adapt', 'tenant NULL', $$SELECT ecom_adapt(NULL, 'bi_support')::text$$, NULL),
('ecom_adapt', 'tenant empty', $$SELECT ecom_adapt('', 'bi_support')::text$$, NULL),
('ecom_adapt', 'support NULL', $$SELECT ecom_adapt('bi_shop', NULL)::text$$, NULL),
('ecom_adapt', 'support does not exist', $$SELECT ecom_adapt('bi_shop', 'no_such_table')::text$$, NULL),
('ecom_adapt', 'support OID that names no relation', $$SELECT ecom_adapt('bi_shop', 42::regclass)::text$$, NULL),
('ecom_adapt', 'support empty', $$SELECT ecom_adapt('bi_shop', 'bi_empty')::text$$, NULL),
('ecom_adapt', 'support lacks a column', $$SELECT ecom_adapt('bi_shop', 'bi_missing')::text$$, NULL),
('ecom_adapt', 'support column of wrong type', $$SELECT ecom_adapt('bi_shop', 'bi_wrong_type')::text$$, NULL),
('ecom_adapt', 'support with invalid behaviour', $$SELECT ecom_adapt('bi_shop', 'bi_bad_behaviour')::text$$, NULL),
('ecom_adapt', 'support with features beyond ±1e9', $$SELECT ecom_adapt('bi_shop', 'bi_huge_support')::text$$, NULL),
('ecom_adapt', 'support whose ts cannot be sorted', $$SELECT ecom_adapt('bi_shop', 'bi_point_ts')::text$$, NULL),
('ecom_adapt', 'support rows with NULLs', $$SELECT r->>'n' || ' used, ' || (r->>'skipped') || ' skipped' FROM ecom_adapt('bi_null_rows', 'bi_null_rows', start => 'scratch') r$$, NULL),
('ecom_adapt', 'support the caller may not read', $$SELECT ecom_adapt('bi_nobody', 'bi_secret')::text$$, 'bi_nobody'),
('ecom_adapt', 'steps 0', $$SELECT ecom_adapt('bi_shop', 'bi_support', steps => 0)::text$$, NULL),
('ecom_adapt', 'steps negative', $$SELECT ecom_adapt('bi_shop', 'bi_support', steps => -3)::text$$, NULL),
('ecom_adapt', 'steps huge', $$SELECT ecom_adapt('bi_shop', 'bi_support', steps => 2147483647)::text$$, NULL),
('ecom_adapt', 'lr 0', $$SELECT ecom_adapt('bi_shop', 'bi_support', lr => 0)::text$$, NULL),
('ecom_adapt', 'lr negative', $$SELECT ecom_adapt('bi_shop', 'bi_support', lr => -1)::text$$, NULL),
('ecom_adapt', 'lr NaN', $$SELECT ecom_adapt('bi_shop', 'bi_support', lr => 'NaN')::text$$, NULL),
('ecom_adapt', 'lr Infinity', $$SELECT ecom_adapt('bi_shop', 'bi_support', lr => 'Infinity')::text$$, NULL),
('ecom_adapt', 'lr huge', $$SELECT ecom_adapt('bi_shop', 'bi_support', lr => 1e30)::text$$, NULL),
('ecom_adapt', 'start invalid', $$SELECT ecom_adapt('bi_shop', 'bi_support', start => 'yesterday')::text$$, NULL),
('ecom_adapt', 'method invalid', $$SELECT ecom_adapt('bi_shop', 'bi_support', method => 'magic')::text$$, NULL),
('ecom_adapt', 'steps/lr/start/method/seed NULL', $$SELECT (r ? 'version')::text || ' (defaults)' FROM ecom_adapt('bi_defaults', 'bi_support', NULL, NULL, NULL, NULL, NULL) r$$, NULL),
-- meta-training
('ecom_meta_train', 'source NULL', $$SELECT ecom_meta_train(NULL)::text$$, NULL),
('ecom_meta_train', 'source OID that names no relation', $$SELECT ecom_meta_train(42::regclass)::text$$, NULL),
('ecom_meta_train', 'source without tenant column', $$SELECT ecom_meta_train('bi_no_tenant')::text$$, NULL),
('ecom_meta_train', 'source empty', $$SELECT ecom_meta_train('bi_empty_source')::text$$, NULL),
('ecom_meta_train', 'source the caller may not read', $$SELECT ecom_meta_train('bi_events')::text$$, 'bi_nobody'),
('ecom_meta_train', 'inner_steps negative', $$SELECT ecom_meta_train('bi_events', inner_steps => -1)::text$$, NULL),
('ecom_meta_train', 'inner_steps huge', $$SELECT ecom_meta_train('bi_events', inner_steps => 1000000)::text$$, NULL),
('ecom_meta_train', 'meta_steps 0', $$SELECT ecom_meta_train('bi_events', meta_steps => 0)::text$$, NULL),
('ecom_meta_train', 'epochs 0', $$SELECT ecom_meta_train('bi_events', epochs => 0)::text$$, NULL),
('ecom_meta_train', 'lr 0', $$SELECT ecom_meta_train('bi_events', lr => 0)::text$$, NULL),
('ecom_meta_train', 'lr NaN', $$SELECT ecom_meta_train('bi_events', lr => 'NaN')::text$$, NULL),
('ecom_meta_train', 'lr huge', $$SELECT ecom_meta_train('bi_events', lr => 1e30)::text$$, NULL),
('ecom_meta_train', 'shots 0', $$SELECT ecom_meta_train('bi_events', shots => 0)::text$$, NULL),
('ecom_meta_train', 'val_fraction 1.5', $$SELECT ecom_meta_train('bi_events', val_fraction => 1.5)::text$$, NULL),
('ecom_meta_train', 'val_fraction NaN', $$SELECT ecom_meta_train('bi_events', val_fraction => 'NaN')::text$$, NULL),
('ecom_meta_train', 'l2 negative', $$SELECT ecom_meta_train('bi_events', l2 => -1)::text$$, NULL),
('ecom_meta_train', 'l2 huge', $$SELECT ecom_meta_train('bi_events', l2 => 1e39)::text$$, NULL),
('ecom_meta_train', 'source with features beyond ±1e9', $$SELECT ecom_meta_train('bi_huge_events')::text$$, NULL),
-- versions
('ecom_rollback', 'version NULL', $$SELECT ecom_rollback('bi_shop', NULL)::text$$, NULL),
('ecom_rollback', 'unknown version', $$SELECT ecom_rollback('bi_shop', 999)::text$$, NULL),
('ecom_rollback', 'unknown tenant', $$SELECT ecom_rollback('no-such-shop', 1)::text$$, NULL),
('ecom_forget', 'tenant NULL', $$SELECT ecom_forget(NULL)::text$$, NULL),
('ecom_forget', 'unknown tenant', $$SELECT ecom_forget('no-such-shop')::text$$, NULL),
-- vectorizers
('ecom_vectorizer_attach', 'source NULL', $$SELECT ecom_vectorizer_attach(NULL, 'title', 'emb2')::text$$, NULL),
('ecom_vectorizer_attach', 'unknown table', $$SELECT ecom_vectorizer_attach('no_such_table', 'title', 'emb2')::text$$, NULL),
('ecom_vectorizer_attach', 'a view', $$SELECT ecom_vectorizer_attach('bi_vz_view', 'title', 'emb2')::text$$, NULL),
('ecom_vectorizer_attach', 'unknown text column', $$SELECT ecom_vectorizer_attach('bi_vz', 'name', 'emb2')::text$$, NULL),
('ecom_vectorizer_attach', 'text column not text', $$SELECT ecom_vectorizer_attach('bi_vz', 'n', 'emb2')::text$$, NULL),
('ecom_vectorizer_attach', 'unknown embedding column', $$SELECT ecom_vectorizer_attach('bi_vz', 'title', 'embedding')::text$$, NULL),
('ecom_vectorizer_attach', 'embedding column int', $$SELECT ecom_vectorizer_attach('bi_vz', 'title', 'n')::text$$, NULL),
('ecom_vectorizer_attach', 'no primary key', $$SELECT ecom_vectorizer_attach('bi_vz_nokey', 'title', 'emb')::text$$, NULL),
('ecom_vectorizer_attach', 'two-column primary key', $$SELECT ecom_vectorizer_attach('bi_vz_pair', 'title', 'emb')::text$$, NULL),
('ecom_vectorizer_attach', 'char(4) primary key', $$SELECT ecom_vectorizer_attach('bi_vz_charkey', 'title', 'emb')::text$$, NULL),
('ecom_vectorizer_attach', 'temporary table', $$SELECT ecom_vectorizer_attach('bi_vz_temp', 'title', 'emb')::text$$, NULL),
('ecom_vectorizer_attach', 'inheritance parent', $$SELECT ecom_vectorizer_attach('bi_vz_parent', 'title', 'emb')::text$$, NULL),
('ecom_vectorizer_attach', 'unknown role', $$SELECT ecom_vectorizer_attach('bi_vz', 'title', 'emb2', role => 'shopper')::text$$, NULL),
('ecom_vectorizer_attach', 'batch_size 0', $$SELECT ecom_vectorizer_attach('bi_vz', 'title', 'emb2', batch_size => 0)::text$$, NULL),
('ecom_vectorizer_attach', 'column already attached', $$SELECT ecom_vectorizer_attach('bi_vz', 'title', 'emb')::text$$, NULL),
('ecom_vectorizer_attach', 'as a role without rights', $$SELECT ecom_vectorizer_attach('bi_vz', 'title', 'emb2')::text$$, 'bi_nobody'),
('ecom_vectorizer_detach', 'NULL', $$SELECT ecom_vectorizer_detach(NULL)::text$$, NULL),
('ecom_vectorizer_detach', 'unknown vectorizer', $$SELECT ecom_vectorizer_detach(999999)::text$$, NULL),
('ecom_vectorizer_run', 'unknown vectorizer', $$SELECT ecom_vectorizer_run(999999)::text$$, NULL),
('ecom_vectorizer_run', 'max_rows 0', $$SELECT ecom_vectorizer_run(NULL, 0)::text$$, NULL),
('ecom_vectorizer_retry', 'unknown vectorizer', $$SELECT ecom_vectorizer_retry(999999)::text$$, NULL);
SELECT fn, input, outcome(q, as_role) FROM cases ORDER BY id;
SELECT count(*) AS cases, count(DISTINCT fn) AS functions FROM cases;
-- nothing was stored by any failing call: bi_shop still has its one version
SELECT tenant, count(*) AS versions FROM ecom.heads WHERE tenant LIKE 'bi\_%' GROUP BY tenant ORDER BY tenant;
SELECT count(*) AS impressions_logged FROM ecom.impressions WHERE tenant LIKE 'bi\_%';
SELECT ecom_forget(t) FROM unnest(ARRAY['bi_shop', 'bi_null_rows', 'bi_defaults', 'bi_huge']) t;
RESET pg_ecom.feedback_window;
REVOKE ALL ON ecom.heads FROM bi_nobody; REVOKE ALL ON SCHEMA ecom FROM bi_nobody;
DROP ROLE bi_nobody;
SELECT ecom_vectorizer_detach(id) FROM ecom.vectorizers WHERE source = 'bi_vz'::regclass;
DROP VIEW bi_vz_view;
DROP TABLE bi_vz, bi_vz_nokey, bi_vz_pair, bi_vz_charkey, bi_vz_temp, bi_vz_child, bi_vz_parent;
DROP TABLE cases, bi_huge_support, bi_huge_events, bi_point_ts, bi_feedback_empty, bi_feedback_numeric, bi_empty_source, bi_events, bi_support, bi_empty, bi_missing, bi_wrong_type, bi_bad_behaviour, bi_null_rows, bi_secret, bi_no_tenant;
SELECT ecom_rollback(NULL, (SELECT min(version) FROM ecom.heads WHERE tenant IS NULL));
DROP FUNCTION outcome(text, text);
