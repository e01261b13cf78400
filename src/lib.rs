//! pg_ecom: e-commerce behaviour prediction inside PostgreSQL.
//!
//! Data path, one module per stage:
//!   text → `tokenize` → token ids → `encode` (ONNX Runtime) → `embedding`
//! `manifest` describes the model files, `model` keeps the per-backend
//! session, `config` holds the GUCs and `api` the thin SQL wrappers.

use pgrx::prelude::*;

mod api;
mod config;
pub mod embedding;
pub mod encode;
pub mod head;
pub mod manifest;
mod model;
pub mod tokenize;
pub mod train;

#[cfg(test)]
mod testdata;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    config::register();
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
