-- pg_ecom 0.12.0 -> 0.13.0: ALTER EXTENSION pg_ecom UPDATE
-- No SQL object changes. What changes is the library:
--  * ecom_worker_stats() gains "stages_us": where a request's time goes
--    in worker mode (submit, wait, tokenize, copy_in, run, copy_out,
--    hand_back), with counts, totals, means and percentiles.
-- The update path is tested by test/t/009_upgrade.sh.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.13.0'" to load this file. \quit
