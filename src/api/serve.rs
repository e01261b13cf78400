//! Ranking: ecom_rank, and ecom_serve, which also logs what it shows.

use crate::pg::errors::PgError;
use pgrx::prelude::*;

use super::predict::{behaviour, finite};
use super::tenant_arg;
use crate::encoder::cache::Embedding;
use crate::pipeline::serve;
use crate::pipeline::serve::Ranking;
use crate::store::heads::{self, serving_head};
use crate::store::versions;
use pg_ecom_core::explore::Policy;

#[allow(clippy::too_many_arguments)]
fn ranking<'a, 'm, 'f, 's: 'a>(
    tenant: Option<&str>,
    items: &'a Array<'m, &'s str>,
    k: i32,
    behaviour_name: &str,
    features: &'a Option<Array<'f, f32>>,
    explore: &str,
    seed: Option<i64>,
    embeddings: Option<&Array<'_, f32>>,
) -> Ranking<'a> {
    if k <= 0 {
        PgError::argument(format!("k must be positive, got {k}")).raise();
    }
    let b = behaviour(behaviour_name);
    let policy = Policy::parse(
        explore,
        crate::pg::settings::explore_temperature(),
        crate::pg::settings::explore_epsilon(),
    )
    .unwrap_or_else(|e| PgError::argument(e).raise());
    let head = serving_head(super::tenant_or_global(tenant));
    let n_items = items.len();
    let flat = features
        .as_ref()
        .map_or(&[][..], super::predict::features_arg);
    if flat.len() != n_items * head.head.k {
        PgError::argument(format!(
            "features must hold {} value(s) per item ({} items x {} side features = {}), got {}",
            head.head.k,
            n_items,
            head.head.k,
            n_items * head.head.k,
            flat.len()
        ))
        .raise();
    }
    let items: Vec<Option<&str>> = items.iter().collect();
    let given = embeddings.map(|e| given_embeddings(e, &items, head.head.dims()));
    Ranking {
        head,
        items,
        given,
        features: flat,
        k: k as usize,
        b,
        policy,
        seed: seed.unwrap_or_else(serve::fresh_seed),
    }
}

/// `item_embeddings` of ecom_rank_emb / ecom_serve_emb: dims values per
/// given item (a 2-D array n x dims, or flat), each row of a non-NULL item
/// a unit vector as ecom_embed returns. A row that is not is an ERROR: a
/// raw or foreign vector would rank silently wrong, and the impressions
/// logged from it would be learned from embeddings the encoder gives.
fn given_embeddings(a: &Array<'_, f32>, items: &[Option<&str>], dims: usize) -> Vec<Embedding> {
    let flat = finite(a, "item_embeddings");
    if flat.len() != items.len() * dims {
        PgError::argument(format!(
            "item_embeddings must hold {dims} values per item ({} items x {dims} = {}), got {}",
            items.len(),
            items.len() * dims,
            flat.len()
        ))
        .raise();
    }
    flat.chunks(dims.max(1))
        .zip(items)
        .enumerate()
        .map(|(i, (row, item))| {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if item.is_some() && (norm - 1.0).abs() > UNIT_TOLERANCE {
                PgError::argument(format!(
                    "item_embeddings row {} has length {norm:.4}, not 1: pass ecom_embed(item, 'item') \
                     of the encoder the head was trained with",
                    i + 1
                ))
                .raise();
            }
            Embedding::from(row)
        })
        .collect()
}

/// How far from 1 a stored embedding's length may be: float32 rounding of
/// a normalised 384-d vector, of a pgvector `vector` copy of one, and of a
/// `halfvec` copy cast back to real[] (11-bit elements: about 1e-3).
const UNIT_TOLERANCE: f32 = 5e-3;

/// ecom_rank's row (its column names are in the #[pg_extern]s' signatures,
/// which the SQL generator reads).
type RankRow = (i32, String, f64, i32, f64, f64);

/// ecom_serve's row: an impression_id before ecom_rank's.
type ServeRow = (i64, i32, String, f64, i32, f64, f64);

/// The `k` best of `items` for `context`; items are encoded in batches.
/// NULL items are not ranked. `explore` other than 'none' samples the
/// ranking (docs/loop.md); `seed` makes it reproducible.
/// VOLATILE: with exploration two calls may differ. ROWS 10 in lib.rs.
#[pg_extern(volatile, parallel_safe, cost = 100000)]
#[allow(clippy::too_many_arguments)]
fn ecom_rank(
    tenant: Option<&str>,
    context: Option<&str>,
    items: Option<Array<'_, &str>>,
    k: default!(Option<i32>, 10),
    behaviour: default!(Option<&str>, "'purchase'"),
    features: default!(Option<Array<'_, f32>>, "NULL"),
    explore: default!(Option<&str>, "'none'"),
    seed: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(item_index, i32),
        name!(item, String),
        name!(score, f64),
        name!(rank, i32),
        name!(propensity, f64),
        name!(propensity_se, f64),
    ),
> {
    rank_rows(
        tenant, context, items, None, k, behaviour, features, explore, seed,
    )
}

/// ecom_rank with the items' embeddings given (`item_embeddings`: the
/// ecom_embed(item, 'item') of each item, as a 2-D array n x dims), so no
/// item text is encoded: the second stage after a vector index found the
/// candidates (docs/retrieval.md). Ranks exactly as ecom_rank does when the
/// embeddings are the encoder's. COST: one context encoding at most.
#[pg_extern(volatile, parallel_safe, cost = 10000)]
#[allow(clippy::too_many_arguments)]
fn ecom_rank_emb(
    tenant: Option<&str>,
    context: Option<&str>,
    items: Option<Array<'_, &str>>,
    item_embeddings: Option<Array<'_, f32>>,
    k: default!(Option<i32>, 10),
    behaviour: default!(Option<&str>, "'purchase'"),
    features: default!(Option<Array<'_, f32>>, "NULL"),
    explore: default!(Option<&str>, "'none'"),
    seed: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(item_index, i32),
        name!(item, String),
        name!(score, f64),
        name!(rank, i32),
        name!(propensity, f64),
        name!(propensity_se, f64),
    ),
> {
    // as ecom_rank: nothing to rank without a context (checked first, so
    // that a NULL context never turns into an ERROR about the embeddings)
    if context.is_none() {
        return TableIterator::new(Vec::new());
    }
    let e = required(item_embeddings, "item_embeddings");
    rank_rows(
        tenant,
        context,
        items,
        Some(e),
        k,
        behaviour,
        features,
        explore,
        seed,
    )
}

#[allow(clippy::too_many_arguments)]
fn rank_rows(
    tenant: Option<&str>,
    context: Option<&str>,
    items: Option<Array<'_, &str>>,
    embeddings: Option<Array<'_, f32>>,
    k: Option<i32>,
    behaviour: Option<&str>,
    features: Option<Array<'_, f32>>,
    explore: Option<&str>,
    seed: Option<i64>,
) -> TableIterator<'static, RankRow> {
    let (Some(context), Some(items), Some(k), Some(behaviour), Some(explore)) =
        (context, items, k, behaviour, explore)
    else {
        return TableIterator::new(Vec::new());
    };
    let r = ranking(
        tenant,
        &items,
        k,
        behaviour,
        &features,
        explore,
        seed,
        embeddings.as_ref(),
    );
    let rows: Vec<_> = serve::shown(&r, context)
        .into_iter()
        .map(|s| {
            (
                s.item_index,
                s.item,
                s.score,
                s.rank,
                s.propensity,
                s.propensity_se,
            )
        })
        .collect();
    TableIterator::new(rows)
}

pub(super) fn required<T>(v: Option<T>, name: &str) -> T {
    v.unwrap_or_else(|| PgError::argument(format!("{name} must not be NULL")).raise())
}

/// ecom_rank that also logs what it shows: one row per shown item in
/// ecom.impressions (and the request's candidates in ecom.requests), in
/// the caller's transaction. Returns each shown item's impression_id, to
/// pass to ecom_feedback.
#[pg_extern(volatile, parallel_unsafe, cost = 100000)]
#[allow(clippy::too_many_arguments)]
fn ecom_serve(
    tenant: Option<&str>,
    context: Option<&str>,
    items: Option<Array<'_, &str>>,
    k: default!(Option<i32>, 10),
    behaviour: default!(Option<&str>, "'click'"),
    features: default!(Option<Array<'_, f32>>, "NULL"),
    explore: default!(Option<&str>, "'thompson'"),
    seed: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(impression_id, i64),
        name!(item_index, i32),
        name!(item, String),
        name!(score, f64),
        name!(rank, i32),
        name!(propensity, f64),
        name!(propensity_se, f64),
    ),
> {
    serve_rows(
        tenant, context, items, None, k, behaviour, features, explore, seed,
    )
}

/// ecom_serve with the items' embeddings given, as ecom_rank_emb takes
/// them. What is logged is the same as ecom_serve logs (the item texts):
/// ecom_learn and ecom_evaluate encode those texts, which is why the
/// embeddings must be the encoder's own.
#[pg_extern(volatile, parallel_unsafe, cost = 10000)]
#[allow(clippy::too_many_arguments)]
fn ecom_serve_emb(
    tenant: Option<&str>,
    context: Option<&str>,
    items: Option<Array<'_, &str>>,
    item_embeddings: Option<Array<'_, f32>>,
    k: default!(Option<i32>, 10),
    behaviour: default!(Option<&str>, "'click'"),
    features: default!(Option<Array<'_, f32>>, "NULL"),
    explore: default!(Option<&str>, "'thompson'"),
    seed: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(impression_id, i64),
        name!(item_index, i32),
        name!(item, String),
        name!(score, f64),
        name!(rank, i32),
        name!(propensity, f64),
        name!(propensity_se, f64),
    ),
> {
    let e = required(item_embeddings, "item_embeddings");
    serve_rows(
        tenant,
        context,
        items,
        Some(e),
        k,
        behaviour,
        features,
        explore,
        seed,
    )
}

#[allow(clippy::too_many_arguments)]
fn serve_rows(
    tenant: Option<&str>,
    context: Option<&str>,
    items: Option<Array<'_, &str>>,
    embeddings: Option<Array<'_, f32>>,
    k: Option<i32>,
    behaviour: Option<&str>,
    features: Option<Array<'_, f32>>,
    explore: Option<&str>,
    seed: Option<i64>,
) -> TableIterator<'static, ServeRow> {
    versions::require_writable_to("ecom_serve", "impressions");
    heads::require_current_schema();
    let tenant = tenant_arg(tenant);
    let context = required(context, "context");
    let items = required(items, "items");
    let k = required(k, "k");
    let behaviour_name = required(behaviour, "behaviour");
    let explore = required(explore, "explore");
    let r = ranking(
        Some(tenant),
        &items,
        k,
        behaviour_name,
        &features,
        explore,
        seed,
        embeddings.as_ref(),
    );
    TableIterator::new(
        serve::serve(tenant, context, k, &r)
            .into_iter()
            .map(|(id, s)| {
                (
                    id,
                    s.item_index,
                    s.item,
                    s.score,
                    s.rank,
                    s.propensity,
                    s.propensity_se,
                )
            })
            .collect::<Vec<_>>(),
    )
}
