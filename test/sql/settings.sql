-- Settings that size a backend's memory, threads or GPU context are
-- superuser-only; the embedding cache is bounded in bytes.
-- a name of 0.1.0 set before the library loads (as from a configuration
-- file): dropped with a WARNING when it loads. (With pg_ecom in
-- shared_preload_libraries it is loaded already and the SET itself is
-- refused: expected/settings_1.out, worker mode's only difference.)
SET pg_ecom.embedding_cache_size = 100;
LOAD 'pg_ecom';
SHOW pg_ecom.embedding_cache_size;
-- (with shared_preload_libraries, pg_ecom.inference defaults to 'worker' and
-- the worker count and the two sizes of shared memory exist: test/t/006_worker.sh)
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'pg_ecom.%' AND name NOT IN ('pg_ecom.inference', 'pg_ecom.workers', 'pg_ecom.worker_slots', 'pg_ecom.shared_cache_mb') AND name NOT LIKE 'pg\_ecom.vectorizer\_%' ORDER BY name;
CREATE ROLE ecom_plain;
SET ROLE ecom_plain;
SET pg_ecom.embedding_cache_mb = 1000;
SET pg_ecom.intra_op_threads = 8;
SET pg_ecom.execution_provider = 'cuda';
SET pg_ecom.max_training_mb = 100000;
SET pg_ecom.model_dir = '/tmp';
-- where texts are encoded decides which process holds a model: superuser
SET pg_ecom.inference = 'backend';
SET pg_ecom.inference_fallback = on;
-- the worker's batching: server configuration
SET pg_ecom.worker_max_batch = 1;
SET pg_ecom.worker_threads = 64;
-- a wait's limit holds nothing: anyone may shorten it
SET pg_ecom.worker_timeout = '2s';
RESET pg_ecom.worker_timeout;
-- settings that only choose, not size, stay open
SET pg_ecom.model_variant = 'int8';
SET pg_ecom.max_seq_len = 64;
RESET pg_ecom.model_variant;
RESET pg_ecom.max_seq_len;
RESET ROLE;
-- a superuser can let a role set one (Postgres 15's GRANT SET ON PARAMETER)
GRANT SET ON PARAMETER pg_ecom.intra_op_threads TO ecom_plain;
SET ROLE ecom_plain;
SET pg_ecom.intra_op_threads = 2;
SHOW pg_ecom.intra_op_threads;
RESET pg_ecom.intra_op_threads;
RESET ROLE;
REVOKE SET ON PARAMETER pg_ecom.intra_op_threads FROM ecom_plain;
-- names under pg_ecom. that are not settings are refused (0.1.0's
-- embedding_cache_size included), not kept as silent placeholders
SET pg_ecom.embedding_cache_size = 100;
SET pg_ecom.no_such_setting = 1;
-- or a superuser sets it here
SET pg_ecom.embedding_cache_mb = '1MB';
SHOW pg_ecom.embedding_cache_mb;
-- 1 MB holds about 600 short titles (text + 384 floats + bookkeeping):
-- embedding 1,500 distinct ones keeps the cache within its budget
SELECT count(embedding) AS embedded
  FROM ecom_embed_batch(ARRAY(SELECT 'budget title ' || g FROM generate_series(1, 1500) g));
SELECT (c->>'bytes')::bigint <= 1024 * 1024 AS within_budget,
       (c->>'entries')::int BETWEEN 300 AND 624 AS entries_follow_from_bytes,
       (c->>'capacity_bytes')::bigint AS capacity_bytes
  FROM (SELECT ecom_model_info()->'embedding_cache' AS c) s;
-- 0 turns it off
SET pg_ecom.embedding_cache_mb = 0;
SELECT ecom_embed('one more title') IS NOT NULL AS embedded;
SELECT (ecom_model_info()->'embedding_cache'->>'entries')::int AS entries;
RESET pg_ecom.embedding_cache_mb;
SET pg_ecom.embedding_cache_mb = 4097;
-- what one ecom_adapt or ecom_meta_train may hold for the rows it reads is
-- bounded: a relation larger than that is an ERROR while it is being read
CREATE TABLE st_big AS
SELECT 'viewed: item ' || (g % 7) AS context, 'item ' || (g % 5) AS item,
       'purchase'::text AS behaviour, g % 2 = 0 AS label
  FROM generate_series(1, 2000) g;
SET pg_ecom.max_training_mb = 1;
SELECT ecom_adapt('st_big_shop', 'st_big', start => 'scratch');
RESET pg_ecom.max_training_mb;
SELECT (ecom_adapt('st_big_shop', 'st_big', start => 'scratch')->>'n')::int AS adapted_on;
SELECT ecom_forget('st_big_shop') AS deleted;
DROP TABLE st_big;
DROP ROLE ecom_plain;
