use pgrx::prelude::*;

/// Internal: runs a vectorizer batch's write as the table's owner
/// (vectorizer/owner.rs); superuser only, EXECUTE revoked from PUBLIC.
#[pg_extern(volatile, parallel_unsafe, cost = 10000)]
fn ecom_vectorizer_write(
    source: pg_sys::Oid,
    statement: &str,
    keys: Vec<String>,
    role: &str,
) -> i64 {
    crate::vectorizer::owner::write_as_owner(source, statement, keys, role)
}

/// The pid of this database's vectorizer worker, started if none runs;
/// NULL where the server runs no vectorizer workers (pg_ecom not in
/// shared_preload_libraries, or pg_ecom.vectorizer_workers off).
/// `ecom_vectorizer_attach` calls it (docs/vectorizer.md).
#[pg_extern(volatile, parallel_unsafe, cost = 1000)]
fn ecom_vectorizer_wake() -> Option<i32> {
    crate::vectorizer::database::wake()
}
