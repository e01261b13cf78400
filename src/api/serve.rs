//! Ranking: ecom_rank, and ecom_serve, which also logs what it shows.

use crate::pg::errors::PgError;
use pgrx::prelude::*;

use super::predict::{behaviour, finite};
use super::tenant_arg;
use crate::pipeline::serve;
use crate::pipeline::serve::Ranking;
use crate::store::heads::{self, serving_head};
use crate::store::versions;
use pg_ecom_core::explore::Policy;

fn ranking<'a, 'm, 'f, 's: 'a>(
    tenant: Option<&str>,
    items: &'a Array<'m, &'s str>,
    k: i32,
    behaviour_name: &str,
    features: &'a Option<Array<'f, f32>>,
    explore: &str,
    seed: Option<i64>,
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
    let flat = features.as_ref().map_or(&[][..], |a| finite(a, "features"));
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
    Ranking {
        head,
        items: items.iter().collect(),
        features: flat,
        k: k as usize,
        b,
        policy,
        seed: seed.unwrap_or_else(serve::fresh_seed),
    }
}

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
    let (Some(context), Some(items), Some(k), Some(behaviour), Some(explore)) =
        (context, items, k, behaviour, explore)
    else {
        return TableIterator::new(Vec::new());
    };
    let r = ranking(tenant, &items, k, behaviour, &features, explore, seed);
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
