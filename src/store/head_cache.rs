//! The decode cache of heads: a row of `ecom.heads` decoded once per
//! backend (weights into a `Head`, the stored posterior or the prior into
//! a `Posterior`), then shared by every lookup that finds the same row
//! version. heads.rs reads the rows and fills it.

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use pg_ecom_core::head::Head;
use pg_ecom_core::posterior::Posterior;

/// A row version of ecom.heads: (table oid, id, xmin). `id` comes from the
/// table's identity sequence, so no other row version of this table ever
/// has it (not a version number reused after ecom_forget or a rollback in
/// the same transaction, which (tenant, version, xmin) could not tell
/// apart); the table's oid tells apart a table dropped and created again
/// (DROP EXTENSION, CREATE EXTENSION) in the same backend.
pub type Key = (u32, i64, i64);

/// A decoded head.
#[derive(Clone)]
pub struct Decoded {
    pub head: Arc<Head>,
    /// what Thompson draws from
    pub posterior: Arc<Posterior>,
    /// whether that was stored (else it is the prior)
    pub posterior_stored: bool,
}

/// At most this many decoded heads; past it the cache starts over.
const CAPACITY: usize = 256;
/// ... and at most this much of their own item effects and posteriors
/// (each head's are capped by pg_ecom.max_item_effects and
/// pg_ecom.posterior_directions; a tenant's head holds only what it
/// learned and shares the platform's effects of its global head): 256
/// heads of a large catalogue, or with many directions, would otherwise
/// hold gigabytes. A head larger than this alone is not kept.
const BUDGET_BYTES: usize = 64 << 20;

/// What a decoded head counts against the budget.
fn bytes_of(d: &Decoded) -> usize {
    d.head.items.bytes() + d.posterior.bytes()
}

struct Cache {
    heads: HashMap<Key, Decoded>,
    bytes: usize,
}

static HEADS: Lazy<Mutex<Cache>> = Lazy::new(|| {
    Mutex::new(Cache {
        heads: HashMap::new(),
        bytes: 0,
    })
});

/// The row version `key` decoded before in this backend, if still cached.
pub fn get(key: &Key) -> Option<Decoded> {
    HEADS.lock().heads.get(key).cloned()
}

/// Keeps `decoded` for later lookups of `key`.
pub fn insert(key: Key, decoded: Decoded) {
    let bytes = bytes_of(&decoded);
    if bytes > BUDGET_BYTES {
        return; // decoded again at each lookup rather than held past the budget
    }
    let mut cache = HEADS.lock();
    if cache.heads.len() > CAPACITY || cache.bytes + bytes > BUDGET_BYTES {
        cache.heads.clear();
        cache.bytes = 0;
    }
    cache.bytes += bytes;
    if let Some(old) = cache.heads.insert(key, decoded) {
        cache.bytes -= bytes_of(&old);
    }
}
