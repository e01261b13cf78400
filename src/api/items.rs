//! Item effects as SQL sees them: an item's key, and what a head holds
//! for each item (ecom_item_effects), for dashboards that ask what sells.

use pgrx::prelude::*;
use std::sync::Arc;

use crate::store::heads::{self, StoredHead};
use pg_ecom_core::head::{BEHAVIOURS, NB};
use pg_ecom_core::items::item_key;

/// The key pg_ecom knows `item` by in item effects: a 64-bit hash of its
/// text (FNV-1a), the same for the same text in every database and release.
#[pg_extern(immutable, strict, parallel_safe, cost = 1)]
fn ecom_item_key(item: &str) -> i64 {
    item_key(item)
}

/// The item effects of the head serving `tenant` (its own active head, else
/// the global one; NULL = the global head): one row per item and behaviour,
/// with the precision of the tenant's belief (NULL where the effect is the
/// platform's). Join on ecom_item_key(title).
#[pg_extern(stable, parallel_safe, cost = 1000)]
fn ecom_item_effects(
    tenant: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(item_key, i64),
        name!(behaviour, &'static str),
        name!(effect, f32),
        name!(effect_precision, Option<f32>),
    ),
> {
    let tenant = super::tenant_or_global(tenant);
    heads::require_current_schema();
    let head = heads::serving_head(tenant);
    let keys = head.head.items.iter().map(|(key, _, _)| key).collect();
    TableIterator::new(Rows {
        head,
        keys,
        item: 0,
        behaviour: 0,
    })
}

/// ecom_item_effects' rows, made as they are read: only the keys are
/// listed first (8 bytes per item), not a million items times four rows.
struct Rows {
    head: Arc<StoredHead>,
    keys: Vec<i64>,
    item: usize,
    behaviour: usize,
}

impl Iterator for Rows {
    type Item = (i64, &'static str, f32, Option<f32>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.behaviour == NB {
            self.behaviour = 0;
            self.item += 1;
        }
        if self.item.is_multiple_of(4096) && self.behaviour == 0 {
            pgrx::check_for_interrupts!();
        }
        let key = *self.keys.get(self.item)?;
        let (b, items) = (self.behaviour, &self.head.head.items);
        self.behaviour += 1;
        Some((
            key,
            BEHAVIOURS[b],
            items.effect(Some(key), b),
            items.own_precision(key, b),
        ))
    }
}

/// The `n` items with the largest effect for `behaviour` under the head
/// serving `tenant` (NULL = the global head), largest first: what sells
/// beyond the text. A candidate stage adds them to what a vector index
/// finds (docs/retrieval.md), as the index cannot see item effects.
/// ROWS 100 in lib.rs.
#[pg_extern(stable, parallel_safe, cost = 1000)]
fn ecom_top_items(
    tenant: Option<&str>,
    behaviour: default!(Option<&str>, "'purchase'"),
    n: default!(Option<i32>, 100),
) -> TableIterator<'static, (name!(item_key, i64), name!(effect, f32))> {
    let (Some(behaviour), Some(n)) = (behaviour, n) else {
        return TableIterator::new(Vec::new());
    };
    if n < 0 {
        crate::pg::errors::PgError::argument(format!("n must not be negative, got {n}")).raise();
    }
    let b = super::predict::behaviour(behaviour);
    let tenant = super::tenant_or_global(tenant);
    heads::require_current_schema();
    let head = heads::serving_head(tenant);
    TableIterator::new(head.head.items.top(b, n as usize))
}
