use pgrx::prelude::*;

use super::invalid_argument;

fn no_nulls(v: Array<'_, f32>, which: &str) -> Vec<f32> {
    v.iter()
        .map(|x| {
            x.unwrap_or_else(|| {
                invalid_argument(format!("embedding {which} contains a NULL element"))
            })
        })
        .collect()
}

/// Cosine similarity; NaN when either vector is all zeros (as pgvector).
#[pg_extern(immutable, strict, parallel_safe)]
fn ecom_similarity(a: Array<'_, f32>, b: Array<'_, f32>) -> f64 {
    let (a, b) = (no_nulls(a, "a"), no_nulls(b, "b"));
    crate::embedding::cosine(&a, &b).unwrap_or_else(|e| invalid_argument(e))
}
