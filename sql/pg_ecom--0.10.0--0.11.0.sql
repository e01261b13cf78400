-- pg_ecom 0.10.0 -> 0.11.0: ALTER EXTENSION pg_ecom UPDATE
-- Retrieval for large catalogues (docs/retrieval.md):
--  * ecom_query_vector(tenant, context, behaviour): the vector whose inner
--    product with a unit item embedding is the head's logit up to terms
--    that do not depend on the item's text, for a vector index to search;
--  * ecom_top_items(tenant, behaviour, n): the items with the largest learned
--    effects, which a vector index cannot see (the best sellers);
--  * ecom_rank_emb / ecom_serve_emb: ecom_rank / ecom_serve from the items'
--    stored embeddings (no item text encoded).
-- The companion extension pg_ecom_vector (CREATE EXTENSION pg_ecom_vector
-- CASCADE, where pgvector is installed) builds on them.
-- Heads and logs are untouched; nothing that existed changes. Tested by
-- test/t/009_upgrade.sh.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.11.0'" to load this file. \quit

CREATE FUNCTION @extschema@."ecom_query_vector"(
	"tenant" TEXT,
	"context" TEXT,
	"behaviour" TEXT DEFAULT 'purchase'
) RETURNS real[]
STABLE PARALLEL SAFE COST 10000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_query_vector_wrapper';

CREATE FUNCTION @extschema@."ecom_rank_emb"(
	"tenant" TEXT,
	"context" TEXT,
	"items" TEXT[],
	"item_embeddings" real[],
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
VOLATILE PARALLEL SAFE COST 10000 ROWS 10
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_rank_emb_wrapper';

CREATE FUNCTION @extschema@."ecom_serve_emb"(
	"tenant" TEXT,
	"context" TEXT,
	"items" TEXT[],
	"item_embeddings" real[],
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
VOLATILE PARALLEL UNSAFE COST 10000 ROWS 10
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_serve_emb_wrapper';

CREATE FUNCTION @extschema@."ecom_top_items"(
	"tenant" TEXT,
	"behaviour" TEXT DEFAULT 'purchase',
	"n" INT DEFAULT 100
) RETURNS TABLE (
	"item_key" bigint,
	"effect" real
)
STABLE PARALLEL SAFE COST 1000 ROWS 100
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_top_items_wrapper';
