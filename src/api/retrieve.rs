//! Retrieval: ecom_query_vector, what a vector index searches for the
//! candidates of ecom_rank_emb / ecom_serve_emb (docs/retrieval.md).

use pgrx::prelude::*;

use super::predict::behaviour;
use crate::pipeline::retrieve;
use crate::store::heads::serving_head;

/// The vector q whose inner product with an item's embedding is the item's
/// logit under `tenant`'s serving head, up to terms that do not depend on
/// the item's text (bias, side features, the item's learned effect).
/// Ordering unit item embeddings by <#>, <=> or <-> to q is the head's
/// order. Encodes `context` once (through the cache): COST as ecom_embed.
#[pg_extern(stable, parallel_safe, cost = 10000)]
fn ecom_query_vector(
    tenant: Option<&str>,
    context: Option<&str>,
    behaviour: default!(Option<&str>, "'purchase'"),
) -> Option<Vec<f32>> {
    let (context, b) = (context?, self::behaviour(behaviour?));
    let head = serving_head(super::tenant_or_global(tenant));
    Some(retrieve::query_vector(&head, b, context))
}
