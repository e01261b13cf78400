//! Worker mode: one inference worker encodes for every backend. The
//! shared-memory layout (`layout`), the shared embedding cache
//! (`shared_cache`), the backend's half of the protocol (`client`) and the
//! worker's (`server`).
//!
//! May import: `pg`, `encoder` (the server runs the local session),
//! pg_ecom_core.

pub mod client;
pub mod layout;
pub mod server;
pub mod shared_cache;
pub mod stats;
