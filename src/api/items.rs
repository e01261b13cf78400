//! Item effects as SQL sees them: an item's key, and what a head holds
//! for each item (ecom_item_effects), for dashboards that ask what sells.

use pgrx::prelude::*;

use crate::store::heads;
use pg_ecom_core::head::BEHAVIOURS;
use pg_ecom_core::items::item_key;

/// The key pg_ecom knows `item` by in item effects: a 64-bit hash of its
/// text (FNV-1a), the same for the same text in every database and release.
#[pg_extern(immutable, strict, parallel_safe, cost = 1)]
fn ecom_item_key(item: &str) -> i64 {
    item_key(item)
}

/// The item effects of the head serving `tenant` (its own active head, else
/// the global one; NULL = the global head): one row per item and behaviour,
/// with the precision of the tenant's belief (NULL for the global head,
/// whose effects are the platform's). Join on ecom_item_key(title).
#[pg_extern(stable, parallel_safe, cost = 1000)]
fn ecom_item_effects(
    tenant: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(item_key, i64),
        name!(behaviour, String),
        name!(effect, f32),
        name!(effect_precision, Option<f32>),
    ),
> {
    let tenant = super::tenant_or_global(tenant);
    heads::require_current_schema();
    let head = heads::serving_head(tenant);
    let rows: Vec<_> = head
        .head
        .items
        .iter()
        .flat_map(|(key, effects, precision)| {
            BEHAVIOURS.iter().enumerate().map(move |(b, name)| {
                (
                    key,
                    (*name).to_string(),
                    effects[b],
                    precision.map(|p| p[b]),
                )
            })
        })
        .collect();
    TableIterator::new(rows)
}
