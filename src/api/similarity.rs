use crate::pg::errors::PgError;
use pgrx::prelude::*;

/// The elements, borrowed (pgrx's element iterator costs ~10 µs per
/// 384-element array; a slice costs nothing).
fn no_nulls<'a>(v: &'a Array<'_, f32>, which: &str) -> &'a [f32] {
    v.as_slice().unwrap_or_else(|_| {
        PgError::argument(format!("embedding {which} contains a NULL element")).raise()
    })
}

/// Cosine similarity; NaN when either vector is all zeros (as pgvector).
#[pg_extern(immutable, strict, parallel_safe, cost = 10)]
fn ecom_similarity(a: Array<'_, f32>, b: Array<'_, f32>) -> f64 {
    let (a, b) = (no_nulls(&a, "a"), no_nulls(&b, "b"));
    pg_ecom_core::similarity::cosine(a, b).unwrap_or_else(|e| PgError::argument(e).raise())
}
