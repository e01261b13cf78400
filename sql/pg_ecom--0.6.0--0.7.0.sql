-- pg_ecom 0.6.0 -> 0.7.0: ALTER EXTENSION pg_ecom UPDATE
-- ecom_predict_interval: ecom_predict with the credible interval of its
-- probability under the serving head's posterior (docs/functions.md). No
-- table changes: heads and logs are untouched. Tested by
-- test/t/009_upgrade.sh, which also checks that the result has exactly the
-- objects of a fresh install.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.7.0'" to load this file. \quit

CREATE FUNCTION @extschema@."ecom_predict_interval"(
	"tenant" TEXT,
	"context" TEXT,
	"item" TEXT,
	"behaviour" TEXT DEFAULT 'purchase',
	"level" double precision DEFAULT 0.9,
	"features" real[] DEFAULT NULL
) RETURNS TABLE (
	"probability" double precision,
	"lower" double precision,
	"upper" double precision
)
STABLE PARALLEL SAFE COST 10000 ROWS 1
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_predict_interval_wrapper';
