-- pg_ecom 0.4.0 -> 0.5.0: ALTER EXTENSION pg_ecom UPDATE
-- Item effects (docs/modelling.md, "Item effects"): what sells beyond the
-- text, learned by ecom_meta_train across tenants and by ecom_adapt and
-- ecom_learn per tenant. Heads made before have none (NULL columns) and
-- score exactly as before until trained again. Tested by
-- test/t/009_upgrade.sh, which also checks that the result has exactly the
-- objects of a fresh install.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.5.0'" to load this file. \quit

ALTER TABLE ecom.heads ADD COLUMN item_keys bigint[];
ALTER TABLE ecom.heads ADD COLUMN item_effects real[];
ALTER TABLE ecom.heads ADD COLUMN item_precision real[];

CREATE FUNCTION @extschema@."ecom_item_key"(
	"item" TEXT
) RETURNS bigint
IMMUTABLE STRICT PARALLEL SAFE COST 1
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_item_key_wrapper';

CREATE FUNCTION @extschema@."ecom_item_effects"(
	"tenant" TEXT DEFAULT NULL
) RETURNS TABLE (
	"item_key" bigint,
	"behaviour" TEXT,
	"effect" real,
	"effect_precision" real
)
STABLE PARALLEL SAFE COST 1000 ROWS 80000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_item_effects_wrapper';
