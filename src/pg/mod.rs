//! Postgres plumbing every layer above uses: the `pg_ecom.*` settings,
//! one way to raise an error, signal masks for threads started inside a
//! backend, extension-wide guards and the UTF-8 check.
//!
//! Owns no tables and no model. May import: pgrx, std, pg_ecom_core.

pub mod errors;
pub mod settings;
pub mod signals;
pub mod utf8;
