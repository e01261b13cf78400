-- pg_ecom 0.1.0 -> 0.1.1: ALTER EXTENSION pg_ecom UPDATE
-- Heads stay as they are (versions, weights, active flags); tested by
-- pgrx-tests/upgrade.sh, which also checks that the result has exactly the
-- objects of a fresh 0.1.1 install.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.1.1'" to load this file. \quit

-- Cached decoded heads are keyed on this id: no other row version ever
-- gets it (unlike (tenant, version, xmin) after ecom_forget and a new
-- ecom_adapt in one transaction). Existing heads are numbered here.
ALTER TABLE ecom.heads
  ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT heads_id_key UNIQUE;
SELECT pg_catalog.pg_extension_config_dump('ecom.heads_id_seq', '');

-- A global head made by 0.1.0 lists the tenants it was trained and
-- validated on; every tenant can read the global head. Keep the counts.
UPDATE ecom.heads
   SET metrics = (metrics OPERATOR(pg_catalog.-) 'train_tenants'::text OPERATOR(pg_catalog.-) 'val_tenants'::text)
                 OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
                   'train_tenants', pg_catalog.jsonb_array_length(metrics OPERATOR(pg_catalog.->) 'train_tenants'::text),
                   'val_tenants', pg_catalog.jsonb_array_length(metrics OPERATOR(pg_catalog.->) 'val_tenants'::text))
 WHERE pg_catalog.jsonb_typeof(metrics OPERATOR(pg_catalog.->) 'train_tenants'::text) OPERATOR(pg_catalog.=) 'array'
   AND pg_catalog.jsonb_typeof(metrics OPERATOR(pg_catalog.->) 'val_tenants'::text) OPERATOR(pg_catalog.=) 'array';

-- What each function costs the planner (in cpu_operator_cost units), so
-- that encoder calls run after a Sort/Limit, not for every row before it;
-- rows the set-returning functions return.
ALTER FUNCTION @extschema@.ecom_embed(text) COST 10000;
ALTER FUNCTION @extschema@.ecom_embed_batch(text[]) COST 100000 ROWS 100;
ALTER FUNCTION @extschema@.ecom_predict(text, text, text, text, real[]) COST 10000;
ALTER FUNCTION @extschema@.ecom_predict_all(text, text, text, real[]) COST 10000;
ALTER FUNCTION @extschema@.ecom_predict_emb(text, real[], real[], text, real[]) COST 20;
ALTER FUNCTION @extschema@.ecom_rank(text, text, text[], integer, text, real[]) COST 100000 ROWS 10;
ALTER FUNCTION @extschema@.ecom_adapt(text, regclass, integer, double precision, text, text, bigint) COST 1000000;
ALTER FUNCTION @extschema@.ecom_meta_train(regclass, integer, integer, integer, double precision, integer, double precision, bigint, double precision) COST 10000000;
ALTER FUNCTION @extschema@.ecom_rollback(text, integer) COST 1000;
ALTER FUNCTION @extschema@.ecom_forget(text) COST 1000;
ALTER FUNCTION @extschema@.ecom_similarity(real[], real[]) COST 10;
ALTER FUNCTION @extschema@.ecom_tokenize(text, integer) COST 200;
ALTER FUNCTION @extschema@.ecom_tokens(text) COST 200;
ALTER FUNCTION @extschema@.ecom_model_info() COST 10000;

-- New in 0.1.1: one score of ecom_predict, term by term.
CREATE FUNCTION @extschema@.ecom_explain(
	"tenant" TEXT,
	"context" TEXT,
	"item" TEXT,
	"behaviour" TEXT DEFAULT 'purchase',
	"features" real[] DEFAULT NULL
) RETURNS jsonb
STABLE PARALLEL SAFE COST 10000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_explain_wrapper';
