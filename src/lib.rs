//! pg_ecom: e-commerce behaviour prediction inside PostgreSQL.
//!
//! Layers, each a folder whose `mod.rs` says what it owns and may import
//! (docs/architecture.md draws them; test/layers.py enforces the order):
//!   `api`       SQL wrappers: parse arguments, call one function, wrap the result
//!   `pipeline`  orchestration: adapt and meta-train, predict, serve, learn, evaluate
//!   `store`     tables: heads and their versions, impressions, feedback, relations
//!   `encoder`   text → embedding: tokenizer, ONNX Runtime, local session, caches
//!   `worker`    worker mode: shared memory, the slot protocol, client and server
//!   `vectorizer` background workers that keep embedding columns current
//!   `pg`        Postgres plumbing: settings, errors, signals, UTF-8
//! and the pure maths in the `pg_ecom_core` crate (core/).
//! Imports flow one way: api → pipeline → {store, encoder, worker, vectorizer} → pg, core.

use pgrx::prelude::*;

mod api;
pub mod encoder;
mod pg;
mod pipeline;
mod store;
mod vectorizer;
mod worker;

#[cfg(test)]
mod testdata;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    pg::errors::install();
    pg::settings::register();
    if pg::settings::preloading() {
        // worker mode: shared memory and the inference worker exist only
        // when the postmaster loads pg_ecom
        worker::layout::install_hooks();
        worker::server::register();
        vectorizer::launcher::register();
    }
}

#[cfg(any(test, feature = "pg_test"))]
mod pg_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}

// Where heads live. A table of the extension: pg_dump keeps its rows.
pgrx::extension_sql!(
    r#"
-- pg_ecom reads text as UTF-8 (pg/utf8.rs)
DO $$
BEGIN
  IF pg_catalog.getdatabaseencoding() OPERATOR(pg_catalog.<>) 'UTF8' THEN
    RAISE EXCEPTION 'pg_ecom needs a UTF8 database; this database''s encoding is %',
                    pg_catalog.getdatabaseencoding()
      USING ERRCODE = 'feature_not_supported',
            HINT = 'Create the database with ENCODING ''UTF8'' (createdb -E UTF8 -T template0) and install pg_ecom there.';
  END IF;
END
$$;

CREATE SCHEMA ecom;
COMMENT ON SCHEMA ecom IS 'pg_ecom: versioned prediction heads per tenant';

CREATE TABLE ecom.heads (
    tenant          text CHECK (tenant <> ''),          -- NULL = the global, meta-learned head
    version         int  NOT NULL CHECK (version > 0),
    parent_version  int,                                -- the tenant's version it was adapted from
    behaviours      text[] NOT NULL,
    n_features      int  NOT NULL,                      -- side features it was trained with
    dims            int  NOT NULL,                      -- embedding width it expects
    weights         real[] NOT NULL,
    hyper           jsonb NOT NULL,                     -- what produced it: source, rows, seed, steps, lr, encoder sha256
    metrics         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      name NOT NULL DEFAULT current_user,
    active          boolean NOT NULL DEFAULT false,
    -- never reused by another row (identity sequence): what caches key on
    id              bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT heads_id_key UNIQUE,
    UNIQUE NULLS NOT DISTINCT (tenant, version),
    -- what Thompson sampling draws from (posterior.rs): per behaviour the
    -- precisions of the adapted part, then the centres; NULL = the prior
    posterior       real[],
    -- it was active at some time: such a version may have served and is
    -- never deleted (only versions that never were may be replaced)
    ever_active     boolean NOT NULL DEFAULT false,
    -- since 0.5.0, what sells beyond the text (core/src/items.rs): the items'
    -- keys (ecom_item_key), 4 effects per item (browse, click, cart,
    -- purchase), and for a tenant's heads the precision of each; NULL = none
    item_keys       bigint[],
    item_effects    real[],
    item_precision  real[],
    -- since 0.6.0, on a global head: the directions along which its tenants'
    -- tastes lie (core/src/taste.rs), [ranks | per behaviour: variances,
    -- directions]; NULL = none (a tenant's head reads its global's, named by
    -- hyper->'taste_base')
    taste_basis     real[]
);
-- exactly one active head per tenant, enforced by the database itself
CREATE UNIQUE INDEX heads_one_active ON ecom.heads (tenant) NULLS NOT DISTINCT WHERE active;
SELECT pg_catalog.pg_extension_config_dump('ecom.heads', '');
SELECT pg_catalog.pg_extension_config_dump('ecom.heads_id_seq', '');

-- security_invoker: the caller's privileges and row-level security policies
-- on ecom.heads apply through the view too (docs/security.md)
CREATE VIEW ecom.tenant_summary WITH (security_invoker = true) AS
SELECT coalesce(h.tenant, '(global)')            AS tenant,
       h.tenant IS NULL                           AS is_global,
       h.version                                  AS active_version,
       (SELECT count(*) FROM ecom.heads v WHERE v.tenant IS NOT DISTINCT FROM h.tenant) AS versions,
       h.hyper->>'kind'                           AS kind,
       (h.hyper->>'rows')::int                    AS training_rows,
       h.hyper->>'source'                         AS source,
       h.n_features,
       h.metrics,
       h.created_at,
       h.created_by
  FROM ecom.heads h
 WHERE h.active;
"#,
    name = "ecom_schema",
    bootstrap
);

// The loop: what ecom_serve showed, and what followed (docs/loop.md).
pgrx::extension_sql_file!("store/loop_schema.sql", name = "ecom_loop_schema");

// Citus: the loop's tables distributed by tenant (docs/scaling.md).
pgrx::extension_sql_file!(
    "store/distribute.sql",
    name = "ecom_distribute",
    requires = ["ecom_loop_schema"]
);

// Vectorizers: embedding columns that follow their text (docs/vectorizer.md).
pgrx::extension_sql_file!(
    "vectorizer/schema.sql",
    name = "ecom_vectorizer_schema",
    requires = ["ecom_loop_schema"]
);

// Rows the planner should expect from the set-returning functions (pgrx
// declares COST but not ROWS): ecom_rank returns k rows (default 10).
pgrx::extension_sql!(
    r#"
ALTER FUNCTION @extschema@.ecom_rank(text, text, text[], integer, text, real[], text, bigint) ROWS 10;
ALTER FUNCTION @extschema@.ecom_serve(text, text, text[], integer, text, real[], text, bigint) ROWS 10;
ALTER FUNCTION @extschema@.ecom_rank_emb(text, text, text[], real[], integer, text, real[], text, bigint) ROWS 10;
ALTER FUNCTION @extschema@.ecom_serve_emb(text, text, text[], real[], integer, text, real[], text, bigint) ROWS 10;
ALTER FUNCTION @extschema@.ecom_embed_batch(text[]) ROWS 100;
ALTER FUNCTION @extschema@.ecom_embed_batch(text[], text) ROWS 100;
ALTER FUNCTION @extschema@.ecom_item_effects(text) ROWS 80000;
ALTER FUNCTION @extschema@.ecom_top_items(text, text, integer) ROWS 100;
ALTER FUNCTION @extschema@.ecom_predict_interval(text, text, text, text, double precision, real[]) ROWS 1;
-- the vectorizers' internal functions are not for PUBLIC (vectorizer/schema.sql).
-- Triggers fire whatever EXECUTE says; CREATE TRIGGER needs it, so nobody
-- else can hang the trigger functions on a table of theirs.
REVOKE EXECUTE ON FUNCTION ecom.vectorizer_inserted(), ecom.vectorizer_updated(),
  ecom.vectorizer_embed(ecom.vectorizers, text[]), ecom.vectorizer_batch(int, int), ecom.vectorizers_due(),
  @extschema@.ecom_vectorizer_write(oid, text, text[], text), @extschema@.ecom_vectorizer_wake() FROM PUBLIC;
"#,
    name = "rows_estimates",
    finalize
);
