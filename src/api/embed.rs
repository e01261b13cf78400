use pgrx::prelude::*;

/// 384-d mean-pooled, L2-normalised sentence embedding of `text`.
/// COST 10000 (× cpu_operator_cost ≈ one encoder run of a few ms): the
/// planner then computes it after a Sort/Limit, not for every row before.
#[pg_extern(stable, strict, parallel_safe, cost = 10000)]
fn ecom_embed(text: &str) -> Vec<f32> {
    // through the per-backend cache like every other entry point, so a
    // statement embedding the same text on many rows encodes it once
    crate::encoder::embed::embed_cached(&[text])[0].to_vec()
}

/// Embeds many texts with one ONNX Runtime run per internal batch.
/// `ord` is the 1-based array position; a NULL element gives a NULL embedding.
/// ROWS 100 is set in lib.rs.
#[pg_extern(stable, strict, parallel_safe, cost = 100000)]
fn ecom_embed_batch(
    texts: Array<'_, &str>,
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vec<f32>>))> {
    let items: Vec<Option<&str>> = texts.iter().collect();
    let present: Vec<&str> = items.iter().flatten().copied().collect();
    // through the cache: repeated texts are encoded once, and later calls
    // (ecom_predict, training) find these texts already embedded
    let mut embedded = crate::encoder::embed::embed_cached(&present).into_iter();
    let rows: Vec<_> = items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                i as i32 + 1,
                t.map(|_| embedded.next().expect("one embedding per text").to_vec()),
            )
        })
        .collect();
    TableIterator::new(rows)
}
