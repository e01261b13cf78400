-- GUCs, model information, faults and recovery without a restart.
-- scripts/test prepares the broken model directories under /tmp/pg_ecom_faults.
CREATE FUNCTION regress_try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN others THEN
  -- keep the stable part: our message up to the file it names (ONNX Runtime's
  -- own wording after it may change between releases)
  RETURN SQLSTATE || ' ' || coalesce(substring(SQLERRM from '^(pg_ecom: [^"]*"[^"]*")'), SQLERRM);
END $$;
-- a fresh backend: the library and the model load on first use
\c
SELECT i->>'model' AS model, i->'dims' AS dims, i->>'variant' AS variant, i->>'provider' AS provider,
       (i->>'threads')::int >= 1 AS threads, i->'max_seq_len' AS max_seq_len, i->>'onnxruntime_version' AS ort,
       length(i->>'sha256') AS sha_len, (i->>'load_ms')::float > 0 AS loaded
  FROM ecom_model_info() i;
-- the GUCs exist once the library is loaded (or always, with shared_preload_libraries);
-- pg_ecom.inference's default and the sizes of shared memory depend on that (test/t/006_worker.sh)
SELECT name, setting, context FROM pg_settings WHERE name LIKE 'pg\_ecom.%' AND name NOT IN ('pg_ecom.inference', 'pg_ecom.workers', 'pg_ecom.worker_slots', 'pg_ecom.shared_cache_mb') AND name NOT LIKE 'pg\_ecom.vectorizer\_%' ORDER BY name;
-- the same encoder in either mode: a mode-independent view of the stats
SELECT jsonb_typeof(s->'preloaded') AS preloaded, s->>'inference' IN ('backend', 'worker') AS mode
  FROM ecom_worker_stats() s;
-- the int8 variant
SET pg_ecom.model_variant = 'int8';
SELECT ecom_model_info()->>'variant' AS variant, ecom_model_info()->>'model_file' LIKE '%model_int8.onnx' AS file;
SELECT ecom_similarity(ecom_embed('hello world'), ARRAY[-0.0345,0.0310,0.0067,0.0261,-0.0394]::real[] || (SELECT array_agg(x) FROM unnest((ecom_embed('hello world'))[6:384]) x)) > 0.99 AS int8_close;
RESET pg_ecom.model_variant;
SET pg_ecom.model_variant = 'fp16';
-- threads
SET pg_ecom.intra_op_threads = 2;
SELECT ecom_model_info()->'threads' AS threads, array_length(ecom_embed('socks'), 1) AS dims;
RESET pg_ecom.intra_op_threads;
SET pg_ecom.intra_op_threads = 0;
-- cuda / auto without a usable GPU: one WARNING, CPU serves
SET pg_ecom.execution_provider = 'cuda';
SELECT ecom_model_info()->>'provider' AS provider, ecom_model_info()->>'provider_requested' AS requested;
SELECT array_length(ecom_embed('socks'), 1) AS still_works;
SET pg_ecom.execution_provider = 'auto';
SELECT ecom_model_info()->>'provider' AS provider;
RESET pg_ecom.execution_provider;
SET pg_ecom.execution_provider = 'tpu';
-- faults: each a clear ERROR naming the file and the setting; the backend survives
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/no_such_dir';
SELECT ecom_embed('x');
SELECT ecom_tokenize('x');
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/missing_model';
SELECT ecom_embed('x');
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/corrupt_model';
SELECT regress_try($$SELECT ecom_embed('x')$$);
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/truncated_model';
SELECT regress_try($$SELECT ecom_embed('x')$$);
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/missing_data';
SELECT regress_try($$SELECT ecom_embed('x')$$);
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/corrupt_tokenizer';
SELECT regress_try($$SELECT ecom_tokenize('x')$$);
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/corrupt_manifest';
SELECT regress_try($$SELECT ecom_embed('x')$$);
SET pg_ecom.model_dir = '/tmp/pg_ecom_faults/wrong_dims';
SELECT ecom_embed('x');
-- fixed: works again in the same backend
RESET pg_ecom.model_dir;
SELECT array_length(ecom_embed('x'), 1) AS recovered, ecom_tokenize('x') AS tokens;
-- a different library once one is loaded: needs a new connection (for a
-- text not in the backend's cache: a cached embedding is served as it is)
SET pg_ecom.onnxruntime_library = '/tmp/pg_ecom_faults/libonnxruntime_copy.so';
SELECT ecom_embed('x, not cached yet');
RESET pg_ecom.onnxruntime_library;
-- a bad library path in a fresh backend, then fixed without reconnecting
\c
-- (texts no backend encoded yet: a cached embedding, in this backend's or
-- the server's shared cache, is served without the library)
SET pg_ecom.onnxruntime_library = '/tmp/pg_ecom_faults/no_such_lib.so';
SELECT ecom_embed('x, with no such library');
SET pg_ecom.onnxruntime_library = '/tmp/pg_ecom_faults/corrupt_model/model.onnx';
SELECT regress_try($$SELECT ecom_embed('x, with a corrupt library')$$);
SELECT ecom_tokenize('tokenizing needs no runtime');
RESET pg_ecom.onnxruntime_library;
SELECT array_length(ecom_embed('x'), 1) AS recovered;
-- paths are superuser-only: they load code and data into the server
DROP ROLE IF EXISTS ecom_plain_user;
CREATE ROLE ecom_plain_user;
SET ROLE ecom_plain_user;
SET pg_ecom.model_dir = '/tmp';
SET pg_ecom.onnxruntime_library = '/tmp/x.so';
SET pg_ecom.model_variant = 'int8';
SELECT array_length(ecom_embed('ordinary users can embed'), 1) AS dims;
RESET ROLE;
DROP ROLE ecom_plain_user;
DROP FUNCTION regress_try(text);
