use crate::encoder::embed::{embed_all_as, Role};
use crate::pg::errors::PgError;
use pgrx::prelude::*;

/// 384-d mean-pooled, L2-normalised sentence embedding of `text`, as an
/// item (with the encoder's item prefix, if it has one).
/// COST 10000 (× cpu_operator_cost ≈ one encoder run of a few ms): the
/// planner then computes it after a Sort/Limit, not for every row before.
#[pg_extern(stable, strict, parallel_safe, cost = 10000)]
fn ecom_embed(text: &str) -> Vec<f32> {
    // through the per-backend cache like every other entry point, so a
    // statement embedding the same text on many rows encodes it once
    embed_all_as(Role::Item, &[text])[0].to_vec()
}

/// `ecom_embed` of `text` as a 'context' (what a shopper typed or did) or
/// an 'item': an encoder whose manifest gives the two roles different
/// prefixes embeds them differently (multilingual-e5 uses "query: " for
/// both; MiniLM has none).
#[pg_extern(stable, strict, parallel_safe, cost = 10000, name = "ecom_embed")]
fn ecom_embed_as(text: &str, role: &str) -> Vec<f32> {
    embed_all_as(role_of(role), &[text])[0].to_vec()
}

/// Embeds many texts with one ONNX Runtime run per internal batch.
/// `ord` is the 1-based array position; a NULL element gives a NULL embedding.
/// ROWS 100 is set in lib.rs.
#[pg_extern(stable, strict, parallel_safe, cost = 100000)]
fn ecom_embed_batch(
    texts: Array<'_, &str>,
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vec<f32>>))> {
    embed_rows(Role::Item, texts)
}

/// `ecom_embed_batch` with each text as a 'context' or an 'item'.
#[pg_extern(
    stable,
    strict,
    parallel_safe,
    cost = 100000,
    name = "ecom_embed_batch"
)]
fn ecom_embed_batch_as(
    texts: Array<'_, &str>,
    role: &str,
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vec<f32>>))> {
    embed_rows(role_of(role), texts)
}

fn embed_rows(
    role: Role,
    texts: Array<'_, &str>,
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vec<f32>>))> {
    let _progress = crate::pg::progress::call("ecom_embed_batch");
    let items: Vec<Option<&str>> = texts.iter().collect();
    let present: Vec<&str> = items.iter().flatten().copied().collect();
    // through the cache: repeated texts are encoded once, and later calls
    // (ecom_predict, training) find these texts already embedded
    let mut embedded = embed_all_as(role, &present).into_iter();
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

fn role_of(role: &str) -> Role {
    match role.trim().to_ascii_lowercase().as_str() {
        "context" => Role::Context,
        "item" => Role::Item,
        _ => PgError::argument(format!(
            "unknown role {}",
            pg_ecom_core::quote::quoted(role)
        ))
        .hint("A text is embedded as a 'context' (what a shopper typed or did) or an 'item'.")
        .raise(),
    }
}
