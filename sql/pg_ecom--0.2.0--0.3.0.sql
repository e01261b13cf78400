-- pg_ecom 0.2.0 -> 0.3.0: ALTER EXTENSION pg_ecom UPDATE
-- One model per server: the shared inference worker (worker mode, with
-- pg_ecom in shared_preload_libraries) and its statistics. Nothing stored
-- changes: heads, impressions and feedback stay as they are. Tested by
-- pgrx-tests/upgrade.sh (0.1.0 -> 0.1.1 -> 0.2.0 -> 0.3.0), which also
-- checks that the result has exactly the objects of a fresh install.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.3.0'" to load this file. \quit

CREATE FUNCTION @extschema@.ecom_worker_stats() RETURNS jsonb
STRICT VOLATILE PARALLEL SAFE COST 100
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_worker_stats_wrapper';
