-- SQL that pg_ecom issues runs with the caller's search_path. A schema
-- first on that path with look-alike functions and operators (better
-- matches for the argument types pg_ecom passes) must never see a call:
-- each look-alike raises, so any use would fail the statement.
CREATE SCHEMA evil;
CREATE FUNCTION evil.caught() RETURNS void LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'a look-alike in schema evil ran'; END $$;
CREATE FUNCTION evil.hashtextextended(text, integer) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN 0; END $$;
CREATE FUNCTION evil.hashtextextended(text, bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN 0; END $$;
CREATE FUNCTION evil.pg_advisory_xact_lock(bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); END $$;
CREATE FUNCTION evil.format_type(oid, integer) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN ''; END $$;
CREATE FUNCTION evil.format(text, name, name) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN ''; END $$;
CREATE FUNCTION evil.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN ''; END $$;
CREATE FUNCTION evil.max_step(integer, integer) RETURNS integer LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN 0; END $$;
CREATE AGGREGATE evil.max(integer) (sfunc = evil.max_step, stype = integer);
CREATE FUNCTION evil.count_step(bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN 0; END $$;
CREATE AGGREGATE evil.count(*) (sfunc = evil.count_step, stype = bigint, initcond = '0');
CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN true; END $$;
CREATE OPERATOR evil.= (function = evil.text_eq, leftarg = text, rightarg = text);
CREATE FUNCTION evil.int_eq(integer, integer) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN true; END $$;
CREATE OPERATOR evil.= (function = evil.int_eq, leftarg = integer, rightarg = integer);
CREATE OPERATOR evil.<> (function = evil.int_eq, leftarg = integer, rightarg = integer);
CREATE FUNCTION evil.big_eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN true; END $$;
CREATE OPERATOR evil.= (function = evil.big_eq, leftarg = bigint, rightarg = bigint);
CREATE FUNCTION evil.oid_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN true; END $$;
CREATE OPERATOR evil.= (function = evil.oid_eq, leftarg = oid, rightarg = oid);
CREATE FUNCTION evil.int_plus(integer, integer) RETURNS integer LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN 0; END $$;
CREATE OPERATOR evil.+ (function = evil.int_plus, leftarg = integer, rightarg = integer);
CREATE FUNCTION evil.small_gt(smallint, integer) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN true; END $$;
CREATE OPERATOR evil.> (function = evil.small_gt, leftarg = smallint, rightarg = integer);
CREATE FUNCTION evil.jsonb_minus(jsonb, text) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN PERFORM evil.caught(); RETURN '{}'; END $$;
CREATE OPERATOR evil.- (function = evil.jsonb_minus, leftarg = jsonb, rightarg = text);
CREATE OPERATOR evil.-> (function = evil.jsonb_minus, leftarg = jsonb, rightarg = text);
CREATE TABLE sp_events AS
SELECT 'sp_shop' || (g % 3) AS tenant, 'viewed: item ' || (g % 7) AS context,
       'item ' || (g % 5) AS item, 'purchase'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 120) g;
CREATE TABLE sp_support AS SELECT context, item, behaviour, label, g::int AS ts
  FROM sp_events, generate_series(1, 1) g WHERE tenant = 'sp_shop1';
SELECT max(version) AS global_before FROM ecom.heads WHERE tenant IS NULL \gset
-- the look-alikes work where they are asked for
SET search_path = evil, pg_catalog, public;
SELECT 'a'::text = 'b'::text AS lookalike_ran;
-- every function that issues SQL, as a superuser, with evil first
SELECT ecom_meta_train('sp_events', meta_steps => 10) IS NOT NULL AS meta_trained;
SELECT ecom_adapt('sp_shop1', 'sp_support') IS NOT NULL AS adapted;
SELECT ecom_adapt('sp_shop1', 'sp_support', start => 'active', method => 'full') IS NOT NULL AS adapted_again;
SELECT ecom_predict('sp_shop1', 'viewed: item 1', 'item 2') IS NOT NULL AS predicted;
SELECT ecom_predict_all('sp_shop1', 'viewed: item 1', 'item 2') IS NOT NULL AS predicted_all;
SELECT ecom_predict_emb('sp_shop1', ecom_embed('viewed: item 1'), ecom_embed('item 2')) IS NOT NULL AS predicted_emb;
SELECT item IS NOT NULL AS ranked FROM ecom_rank('sp_shop1', 'viewed: item 1', ARRAY['item 2', 'item 3'], 1);
SELECT ecom_rollback('sp_shop1', 1) IS NOT NULL AS rolled_back;
SELECT ecom_forget('sp_shop1') AS forgotten;
SELECT ecom_rollback(NULL, :global_before) IS NOT NULL AS global_rolled_back;
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA evil CASCADE;
RESET client_min_messages;
DROP TABLE sp_events, sp_support;
