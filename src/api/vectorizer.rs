use pgrx::prelude::*;

/// The pid of this database's vectorizer worker, started if none runs;
/// NULL where the server runs no vectorizer workers (pg_ecom not in
/// shared_preload_libraries, or pg_ecom.vectorizer_workers off).
/// `ecom_vectorizer_attach` calls it (docs/vectorizer.md).
#[pg_extern(volatile, parallel_unsafe, cost = 1000)]
fn ecom_vectorizer_wake() -> Option<i32> {
    crate::vectorizer::database::wake()
}
