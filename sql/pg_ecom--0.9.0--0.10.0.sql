-- pg_ecom 0.9.0 -> 0.10.0: ALTER EXTENSION pg_ecom UPDATE
-- More than one encoder (docs/encoders.md):
--  * pg_ecom.encoder (new, default '': all-MiniLM-L6-v2 as before) picks an
--    installed encoder; scripts/setup installs multilingual-e5-small;
--  * encoders that expect prefixes (e5: "query: ") get them on context and
--    item texts, as their manifest names them; MiniLM has none, so nothing
--    it embeds changes;
--  * ecom_embed(text, role) and ecom_embed_batch(text[], role) embed a text
--    as a 'context' or an 'item' (the one-argument forms embed items);
--  * a head scored with an encoder other than the one it records is an
--    ERROR with a hint (it was a WARNING when the widths matched).
-- Heads and logs are untouched: 0.9.0's heads record MiniLM and keep
-- scoring exactly as before under the default encoder. Tested by
-- test/t/009_upgrade.sh.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.10.0'" to load this file. \quit

CREATE FUNCTION @extschema@."ecom_embed"(
	"text" TEXT,
	"role" TEXT
) RETURNS real[]
STRICT STABLE PARALLEL SAFE COST 10000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_embed_as_wrapper';

CREATE FUNCTION @extschema@."ecom_embed_batch"(
	"texts" TEXT[],
	"role" TEXT
) RETURNS TABLE (
	"ord" INT,
	"embedding" real[]
)
STRICT STABLE PARALLEL SAFE COST 100000 ROWS 100
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_embed_batch_as_wrapper';
