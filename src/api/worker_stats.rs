use pgrx::prelude::*;
use pgrx::JsonB;

/// What the shared inference worker and the shared embedding cache have
/// done since the server started (docs/worker.md).
#[pg_extern(volatile, parallel_safe, cost = 100)]
fn ecom_worker_stats() -> JsonB {
    JsonB(crate::worker::stats::stats())
}
