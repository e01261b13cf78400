-- pg_ecom 0.13.0 -> 0.14.0: ALTER EXTENSION pg_ecom UPDATE
-- Keys that carry the tenant, so that Citus can distribute the loop's
-- tables by tenant (docs/scaling.md):
--  * ecom.requests and ecom.impressions: PRIMARY KEY (id, tenant) in place
--    of PRIMARY KEY (id) and UNIQUE (id, tenant); ecom.feedback: PRIMARY
--    KEY (impression_id, tenant, behaviour). Ids stay unique: they still
--    come from one identity sequence per table.
--  * ecom.impression_outcomes joins feedback on the tenant too.
--  * ecom_feedback(impression_id, behaviour, label, tenant): the form
--    Citus routes by tenant.
--  * ecom_distribute(): the Citus layout in one call.
-- The three primary keys and two foreign keys are built again: the update
-- holds an ACCESS EXCLUSIVE lock on the loop's tables while it reads them
-- (impressions and feedback twice: once for the key, once to check the
-- foreign key).
-- Heads and logs are kept row for row. Tested by test/t/009_upgrade.sh.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.14.0'" to load this file. \quit

-- the view depended on impressions' primary key (GROUP BY i.id): for the
-- swap it groups by every column it shows, then by the new key (CREATE OR
-- REPLACE keeps its grants and the view built on it)
CREATE OR REPLACE VIEW ecom.impression_outcomes WITH (security_invoker = true) AS
SELECT i.id AS impression_id, i.request_id, i.tenant, i.served_at, i.context,
       i.item_index, i.item, i.rank, i.score, i.propensity, i.behaviour,
       i.head_version, i.explore,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'browse')   AS browse,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'click')    AS click,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'cart')     AS cart,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'purchase') AS purchase,
       coalesce(pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = i.behaviour), false) AS reward,
       pg_catalog.max(f.recorded_at) AS last_feedback_at
  FROM ecom.impressions i
  LEFT JOIN ecom.feedback f ON f.impression_id = i.id AND f.tenant = i.tenant
 GROUP BY i.id, i.request_id, i.tenant, i.served_at, i.context, i.item_index, i.item, i.rank,
          i.score, i.propensity, i.behaviour, i.head_version, i.explore;

ALTER TABLE ecom.feedback DROP CONSTRAINT feedback_impression_id_tenant_fkey;
ALTER TABLE ecom.feedback DROP CONSTRAINT feedback_pkey;
ALTER TABLE ecom.impressions DROP CONSTRAINT impressions_request_id_tenant_fkey;
ALTER TABLE ecom.impressions DROP CONSTRAINT impressions_pkey;
ALTER TABLE ecom.impressions DROP CONSTRAINT impressions_id_tenant_key;
ALTER TABLE ecom.requests DROP CONSTRAINT requests_pkey;
ALTER TABLE ecom.requests DROP CONSTRAINT requests_id_tenant_key;

ALTER TABLE ecom.requests ADD PRIMARY KEY (id, tenant);
ALTER TABLE ecom.impressions ADD PRIMARY KEY (id, tenant);
ALTER TABLE ecom.impressions ADD CONSTRAINT impressions_request_id_tenant_fkey
  FOREIGN KEY (request_id, tenant) REFERENCES ecom.requests (id, tenant) ON DELETE CASCADE;
ALTER TABLE ecom.feedback ADD PRIMARY KEY (impression_id, tenant, behaviour);
ALTER TABLE ecom.feedback ADD CONSTRAINT feedback_impression_id_tenant_fkey
  FOREIGN KEY (impression_id, tenant) REFERENCES ecom.impressions (id, tenant) ON DELETE CASCADE;

CREATE OR REPLACE VIEW ecom.impression_outcomes WITH (security_invoker = true) AS
SELECT i.id AS impression_id, i.request_id, i.tenant, i.served_at, i.context,
       i.item_index, i.item, i.rank, i.score, i.propensity, i.behaviour,
       i.head_version, i.explore,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'browse')   AS browse,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'click')    AS click,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'cart')     AS cart,
       pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'purchase') AS purchase,
       coalesce(pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = i.behaviour), false) AS reward,
       pg_catalog.max(f.recorded_at) AS last_feedback_at
  FROM ecom.impressions i
  LEFT JOIN ecom.feedback f ON f.impression_id = i.id AND f.tenant = i.tenant
 GROUP BY i.id, i.tenant;

CREATE FUNCTION @extschema@."ecom_feedback"(
	"impression_id" bigint,
	"behaviour" TEXT,
	"label" bool,
	"tenant" TEXT
) RETURNS bool
VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_feedback_of_tenant_wrapper';

-- Citus (docs/scaling.md): one call turns a single-node install into the
-- distributed layout. The loop's tables are distributed by tenant and
-- co-located, so a tenant's requests, impressions and feedback live on one
-- node. ecom.heads becomes a reference table, so every node scores with
-- every head. The calls that take a tenant and touch only its rows are
-- delegated by Citus to the node that holds it. Each step is skipped when it is already
-- done, so a call that failed half-way can be run again.
-- Runs a command on every Citus worker: an ERROR naming the worker when it
-- fails there (run_command_on_workers only reports failures).
CREATE FUNCTION ecom.run_on_workers(command text, what text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM run_command_on_workers(command) LOOP
    IF NOT r.success THEN
      RAISE EXCEPTION 'worker %:%: cannot %: %', r.nodename, r.nodeport, what, r.result;
    END IF;
  END LOOP;
END
$fn$;
REVOKE EXECUTE ON FUNCTION ecom.run_on_workers(text, text) FROM PUBLIC;

CREATE FUNCTION @extschema@.ecom_distribute(shard_count int DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 100000
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $fn$
DECLARE
  ext_schema name;
  ext_version text;
  workers int;
  r record;
  reads_heads name[] := ARRAY['ecom_predict', 'ecom_predict_all', 'ecom_predict_emb', 'ecom_predict_interval',
    'ecom_explain', 'ecom_query_vector', 'ecom_item_effects', 'ecom_top_items', 'ecom_rank', 'ecom_rank_emb'];
  reads_relations name[] := ARRAY['ecom_meta_train', 'ecom_adapt'];
  done text[] := '{}';
  sig text;
  ranges text := $cmd$
    DO $do$
    DECLARE
      g bigint := (SELECT groupid FROM pg_catalog.pg_dist_local_group);
      t text;
    BEGIN
      -- each node's own sequence: not to be sent on to the others
      PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
      FOREACH t IN ARRAY ARRAY['heads', 'requests', 'impressions'] LOOP
        IF (SELECT s.seqmax FROM pg_catalog.pg_sequence s
             WHERE s.seqrelid = pg_catalog.pg_get_serial_sequence('ecom.' || t, 'id')::pg_catalog.regclass)
           OPERATOR(pg_catalog.<>) ((g + 1) << 48) THEN
          IF g = 0 THEN
            EXECUTE pg_catalog.format('ALTER TABLE ecom.%I ALTER COLUMN id SET MAXVALUE %s', t, (g + 1) << 48);
          ELSE
            EXECUTE pg_catalog.format('ALTER TABLE ecom.%I ALTER COLUMN id SET START WITH %s SET MINVALUE %s SET MAXVALUE %s RESTART WITH %s',
                                      t, (g << 48) + 1, (g << 48) + 1, (g + 1) << 48, (g << 48) + 1);
          END IF;
        END IF;
      END LOOP;
    END
    $do$
  $cmd$;
  -- the calls that take a tenant and touch only that tenant's rows, with
  -- the tenant's position (ecom_adapt is not among them: its support set
  -- is a relation where the call is made, usually the coordinator)
  delegated text[] := ARRAY[
    'ecom_serve(text,text,text[],integer,text,real[],text,bigint)', '$1',
    'ecom_serve_emb(text,text,text[],real[],integer,text,real[],text,bigint)', '$1',
    'ecom_feedback(bigint,text,boolean,text)', '$4',
    'ecom_learn(text,timestamptz,text)', '$1',
    'ecom_evaluate(text,integer,text,timestamptz)', '$1',
    'ecom_forget(text)', '$1'];
  i int;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    RAISE EXCEPTION 'ecom_distribute() needs the citus extension in this database'
      USING ERRCODE = 'feature_not_supported',
            HINT = 'CREATE EXTENSION citus on the coordinator and every worker, add the workers with citus_add_node, then call ecom_distribute() on the coordinator (docs/scaling.md).';
  END IF;
  SELECT count(*) INTO workers FROM pg_dist_node
   WHERE noderole = 'primary' AND isactive AND groupid <> 0;
  IF workers = 0 THEN
    RAISE EXCEPTION 'ecom_distribute() found no Citus worker node'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Add the workers with citus_add_node(host, port) first.';
  END IF;
  IF NOT citus_is_coordinator() THEN
    RAISE EXCEPTION 'ecom_distribute() runs on the Citus coordinator only'
      USING ERRCODE = 'feature_not_supported';
  END IF;
  SELECT n.nspname, e.extversion INTO ext_schema, ext_version
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
   WHERE e.extname = 'pg_ecom';
  -- every node must run the same release (CREATE EXTENSION on the
  -- coordinator installs it on the workers; an update must reach them all)
  FOR r IN SELECT * FROM run_command_on_workers(
             $$SELECT coalesce((SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_ecom'), 'none')$$) LOOP
    IF NOT r.success OR r.result <> ext_version THEN
      RAISE EXCEPTION 'worker %:% has pg_ecom %, the coordinator %', r.nodename, r.nodeport,
        CASE WHEN r.success THEN r.result ELSE '(unreachable: ' || r.result || ')' END, ext_version
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Install the same pg_ecom release on every node and reach every worker, then call ecom_distribute() again.';
    END IF;
  END LOOP;

  -- Rows written by a delegated call (heads and logs) take their ids from
  -- the worker's own identity sequences: each node gets a range of its
  -- own (2^48 ids after its Citus group id, as Citus gives its own bigint
  -- sequences), so ids stay unique across the cluster. A node whose range
  -- is set already keeps its position. The coordinator's is set in this
  -- transaction: a second connection would wait for the locks it holds.
  EXECUTE ranges;
  -- the ranges' DO turned DDL propagation off for the rest of this
  -- transaction: the foreign key below must reach every shard, whatever
  -- the caller's session had
  PERFORM set_config('citus.enable_ddl_propagation', 'on', true);
  PERFORM ecom.run_on_workers(ranges, 'set the identity ranges');

  -- ecom.heads becomes a reference table. Citus would turn ecom.requests,
  -- which refers to it, into a local Citus table on the way, and that
  -- conversion cannot drop the sequence the extension owns: the foreign
  -- key is dropped on every node first and made again once the requests
  -- are distributed.
  IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'ecom.heads'::regclass) THEN
    ALTER TABLE ecom.requests DROP CONSTRAINT IF EXISTS requests_head_id_fkey;
    PERFORM ecom.run_on_workers('ALTER TABLE ecom.requests DROP CONSTRAINT IF EXISTS requests_head_id_fkey',
                                'drop the foreign key to ecom.heads');
    PERFORM create_reference_table('ecom.heads');
    PERFORM truncate_local_data_after_distributing_table('ecom.heads');
    done := done || 'ecom.heads: reference table'::text;
  END IF;

  -- the requests' trigger stamps the writing transaction's id, which
  -- learning's cursor follows (docs/loop.md); on a shard it stamps the
  -- transaction of the node that holds the rows, whose commit order is
  -- the one that matters
  PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
  -- a foreign key to a reference table made in the same transaction as
  -- the shards: Citus needs one connection per node for it
  PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
  IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'ecom.requests'::regclass) THEN
    IF shard_count IS NULL THEN
      PERFORM create_distributed_table('ecom.requests', 'tenant');
    ELSE
      PERFORM create_distributed_table('ecom.requests', 'tenant', shard_count => shard_count);
    END IF;
    done := done || 'ecom.requests: distributed by tenant'::text;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'ecom.impressions'::regclass) THEN
    PERFORM create_distributed_table('ecom.impressions', 'tenant', colocate_with => 'ecom.requests');
    done := done || 'ecom.impressions: distributed by tenant'::text;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'ecom.feedback'::regclass) THEN
    PERFORM create_distributed_table('ecom.feedback', 'tenant', colocate_with => 'ecom.requests');
    done := done || 'ecom.feedback: distributed by tenant'::text;
  END IF;
  -- Citus copied the rows out; the tables' own files keep them until then
  IF array_length(done, 1) > 0 THEN
    PERFORM truncate_local_data_after_distributing_table(t)
       FROM unnest(ARRAY['ecom.feedback', 'ecom.impressions', 'ecom.requests']::regclass[]) t;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'ecom.requests'::regclass
                    AND conname = 'requests_head_id_fkey') THEN
    ALTER TABLE ecom.requests ADD CONSTRAINT requests_head_id_fkey
      FOREIGN KEY (head_id) REFERENCES ecom.heads (id);
    done := done || 'ecom.requests: foreign key to ecom.heads'::text;
  END IF;

  -- Two settings go on each node's copy of some functions, not on the
  -- session:
  --  * scoring inside a query that Citus pushes down to a shard
  --    (ecom_predict over a distributed table) reads ecom.heads, a
  --    reference table, from the shard's query. Citus refuses such nested
  --    reads unless the calling function allows them. They read the node's
  --    own copy of a table that only two-phase commits change: exact.
  --  * the calls that read a relation the caller names (a training source
  --    or a support set, perhaps distributed) and then write a head: Citus
  --    writes a reference table with a foreign key to it only after reads
  --    over one connection per node.
  -- (sent to the workers on every call: one added since the last call
  -- gets them too)
  FOR r IN SELECT p.oid::regprocedure AS fn, x.setting,
                  coalesce(x.setting = ANY (p.proconfig), false) AS here FROM pg_proc p
             JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_ecom'
             JOIN (SELECT unnest(reads_heads), 'citus.allow_nested_distributed_execution=on'
                   UNION ALL
                   SELECT unnest(reads_relations), 'citus.multi_shard_modify_mode=sequential') x(fn, setting)
               ON x.fn = p.proname
            ORDER BY 1 LOOP
    sig := format('ALTER FUNCTION %s SET %s = %L', r.fn, split_part(r.setting, '=', 1), split_part(r.setting, '=', 2));
    PERFORM ecom.run_on_workers(sig, 'set ' || r.setting);
    IF NOT r.here THEN
      EXECUTE sig;
      done := done || (r.fn::text || ': ' || r.setting);
    END IF;
  END LOOP;

  FOR i IN 1 .. array_length(delegated, 1) BY 2 LOOP
    sig := delegated[i];
    IF NOT EXISTS (SELECT 1 FROM pg_dist_object o
                    WHERE o.classid = 'pg_proc'::regclass
                      AND o.objid = (quote_ident(ext_schema) || '.' || sig)::regprocedure
                      AND o.distribution_argument_index IS NOT NULL) THEN
      PERFORM create_distributed_function((quote_ident(ext_schema) || '.' || sig)::regprocedure, delegated[i + 1],
                                          colocate_with => 'ecom.requests');
      done := done || ('delegated: ' || sig);
    END IF;
  END LOOP;

  RETURN jsonb_build_object(
    'workers', workers,
    'shard_count', (SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'ecom.requests'::regclass),
    'done', to_jsonb(done));
END
$fn$;
-- it changes every node's tables: for their owner or a superuser only
REVOKE EXECUTE ON FUNCTION @extschema@.ecom_distribute(int) FROM PUBLIC;
