-- pg_ecom 0.6.0 -> 0.7.0: ALTER EXTENSION pg_ecom UPDATE
-- ecom_predict_interval: ecom_predict with the credible interval of its
-- probability under the serving head's posterior (docs/functions.md), and
-- ecom_rank and ecom_serve return how exact each propensity is. No
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

-- ecom_rank and ecom_serve say how exact each propensity is: a new last
-- column, propensity_se (0 where exact, else the standard error of the
-- Monte Carlo estimate). A new result type: drop and create.
DROP FUNCTION @extschema@.ecom_rank(text, text, text[], integer, text, real[], text, bigint);
CREATE FUNCTION @extschema@."ecom_rank"(
	"tenant" TEXT,
	"context" TEXT,
	"items" TEXT[],
	"k" INT DEFAULT 10,
	"behaviour" TEXT DEFAULT 'purchase',
	"features" real[] DEFAULT NULL,
	"explore" TEXT DEFAULT 'none',
	"seed" bigint DEFAULT NULL
) RETURNS TABLE (
	"item_index" INT,
	"item" TEXT,
	"score" double precision,
	"rank" INT,
	"propensity" double precision,
	"propensity_se" double precision
)
VOLATILE PARALLEL SAFE COST 100000 ROWS 10
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_rank_wrapper';

DROP FUNCTION @extschema@.ecom_serve(text, text, text[], integer, text, real[], text, bigint);
CREATE FUNCTION @extschema@."ecom_serve"(
	"tenant" TEXT,
	"context" TEXT,
	"items" TEXT[],
	"k" INT DEFAULT 10,
	"behaviour" TEXT DEFAULT 'click',
	"features" real[] DEFAULT NULL,
	"explore" TEXT DEFAULT 'thompson',
	"seed" bigint DEFAULT NULL
) RETURNS TABLE (
	"impression_id" bigint,
	"item_index" INT,
	"item" TEXT,
	"score" double precision,
	"rank" INT,
	"propensity" double precision,
	"propensity_se" double precision
)
VOLATILE PARALLEL UNSAFE COST 100000 ROWS 10
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_serve_wrapper';
