//! Worker mode: one inference worker encodes for every backend. The
//! shared-memory layout (`layout`), the slot and readiness states and their
//! moves (`protocol`), what a worker publishes about its model (`info`), the
//! shared embedding cache (`shared_cache`), the backend's half of the
//! protocol (`client`), the worker's (`server`) and their counters (`stats`).
//!
//! May import: `pg`, `encoder` (the server runs the local session),
//! pg_ecom_core.

pub mod client;
pub mod info;
pub mod layout;
pub mod protocol;
pub mod server;
pub mod shared_cache;
pub mod stats;
