//! Postgres plumbing every layer above uses: the `pg_ecom.*` settings
//! (and settings in force for one step, scoped.rs),
//! one way to raise an error, signal masks for threads started inside a
//! backend and the UTF-8 check. (The other extension-wide guard, that the
//! SQL objects are as new as the library, names a column of ecom.heads:
//! it is store/schema.rs.)
//!
//! Owns no tables and no model. May import: pgrx, std, pg_ecom_core.

pub mod errors;
pub mod progress;
pub mod scoped;
pub mod settings;
pub mod signals;
pub mod utf8;
