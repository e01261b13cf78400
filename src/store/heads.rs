//! `ecom.heads`: versioned heads per tenant, read through SPI, each row
//! version decoded once per backend (head_cache.rs); the check that a head
//! fits the loaded encoder. memo.rs remembers lookups within a statement;
//! versions.rs writes heads.
//!
//! Every statement here names its objects with their schema (`ecom.`,
//! `pg_catalog.`), operators included (`OPERATOR(pg_catalog.=)`), and casts
//! its parameters to exact types: these run with the caller's search_path,
//! where a look-alike function or operator earlier on the path would
//! otherwise run instead, with the caller's rights.

use crate::pg::errors::PgError;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use std::sync::Arc;

use crate::store::head_cache::{self, Decoded};
use pg_ecom_core::head::Head;
use pg_ecom_core::item_prior;
use pg_ecom_core::items::ItemEffects;
use pg_ecom_core::posterior::Posterior;
use pg_ecom_core::prior::{Prior, FROZEN};
use pg_ecom_core::taste::TasteBasis;

/// The guard every entry point passes first lives in schema.rs; callers
/// name it here, beside the heads it protects.
pub use crate::store::schema::require_current_schema;

pub const BEHAVIOURS_SQL: &str = "ARRAY['browse','click','cart','purchase']::pg_catalog.text[]";

/// An active head as read from the table.
pub struct StoredHead {
    pub tenant: Option<String>,
    pub version: i32,
    pub head: Arc<Head>,
    /// what Thompson sampling draws from: the stored Laplace posterior,
    /// or (heads without one: the global head, heads made before 0.2.0)
    /// the prior the head adapts under
    pub posterior: Arc<Posterior>,
    /// the posterior was stored with the head (not its prior): a Bayesian
    /// update may continue from it, in its centred coordinates
    pub posterior_stored: bool,
    /// ecom.heads.id: never reused by another row
    pub id: i64,
    pub hyper: serde_json::Value,
    /// set once this head was checked against the loaded encoder
    encoder_checked: std::sync::atomic::AtomicBool,
}

/// The prior a head's tenants adapt under (stored in its hyper by
/// ecom_meta_train and ecom_adapt); a head with none readable adapts as
/// 0.1.x did, without a taste.
pub fn prior_of(hyper: &serde_json::Value) -> Prior {
    serde_json::from_value(hyper["prior"].clone()).unwrap_or(Prior {
        taste: FROZEN,
        ..Prior::default()
    })
}

/// `tenant = $n` for a nullable tenant, in operators no search_path can
/// replace (IS NOT DISTINCT FROM looks its `=` up on the search_path).
pub(crate) fn same_tenant(param: &str) -> String {
    format!("(tenant OPERATOR(pg_catalog.=) {param} OR (tenant IS NULL AND {param} IS NULL))")
}

/// The head that serves `tenant`: its own active head, else the global one
/// (cold start). `own_only` skips the fallback.
pub fn active_head(tenant: Option<&str>, own_only: bool) -> Option<Arc<StoredHead>> {
    lookup(tenant, own_only, None).map(Arc::new)
}

/// Version `version` of `tenant`'s heads (NULL = the global head's),
/// active or not.
pub fn head_version(tenant: Option<&str>, version: i32) -> Option<Arc<StoredHead>> {
    lookup(tenant, true, Some(version)).map(Arc::new)
}

impl StoredHead {
    /// The global row whose platform item effects a tenant's head adapted
    /// from this one reads over (its `hyper->'items_base'`): this head's
    /// own id when it is a global head with item effects, else what this
    /// head reads over.
    pub fn items_base(&self) -> Option<i64> {
        if self.tenant.is_none() {
            (!self.head.items.is_empty() && self.id > 0).then_some(self.id)
        } else {
            self.hyper["items_base"].as_i64()
        }
    }

    /// The global row whose taste basis a tenant's head adapted from this
    /// one uses (its `hyper->'taste_base'`), as `items_base` does.
    pub fn taste_base(&self) -> Option<i64> {
        if self.tenant.is_none() {
            (self.head.basis.is_some() && self.id > 0).then_some(self.id)
        } else {
            self.hyper["taste_base"].as_i64()
        }
    }

    /// A head not (yet) stored, to evaluate like a stored one.
    pub fn unsaved(tenant: Option<&str>, head: Head, posterior: Posterior) -> Self {
        StoredHead {
            tenant: tenant.map(str::to_owned),
            version: 0,
            head: Arc::new(head),
            posterior: Arc::new(posterior),
            posterior_stored: true,
            id: 0,
            hyper: serde_json::Value::Null,
            encoder_checked: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

fn lookup(tenant: Option<&str>, own_only: bool, version: Option<i32>) -> Option<StoredHead> {
    crate::pg::utf8::require_utf8();
    // A concurrent ecom_forget or rollback can remove the row between the
    // two reads (each takes a new snapshot in READ COMMITTED): look again.
    require_current_schema();
    for _ in 0..3 {
        if let Some(found) = try_lookup(tenant, own_only, version) {
            return found;
        }
    }
    PgError::new(
        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
        format!(
            "the head serving {} kept changing while it was read",
            crate::pg::errors::owner_name(tenant)
        ),
    )
    .hint("Concurrent ecom_adapt, ecom_rollback or ecom_forget calls; retry the statement.")
    .raise()
}

/// The columns of a head's row that every lookup reads; the weights and
/// posterior, read only for a row not decoded yet, are not among them.
struct Row {
    tenant: Option<String>,
    version: i32,
    /// tableoid, id and xmin: the decode cache's key
    key: head_cache::Key,
    hyper: serde_json::Value,
}

/// One attempt: Some(answer), or None when the row vanished in between.
fn try_lookup(
    tenant: Option<&str>,
    own_only: bool,
    version: Option<i32>,
) -> Option<Option<StoredHead>> {
    let Some(row) = read_row(&row_sql(own_only, version), tenant, version) else {
        return Some(None);
    };
    let key = row.key;
    let cached = head_cache::get(&key);
    let decoded = match cached {
        Some(h) => h,
        None => {
            let decoded = read_decoded(key.1, key.2, &row.hyper)?;
            head_cache::insert(key, decoded.clone());
            decoded
        }
    };
    Some(Some(StoredHead {
        tenant: row.tenant,
        version: row.version,
        head: decoded.head,
        posterior: decoded.posterior,
        posterior_stored: decoded.posterior_stored,
        id: key.1,
        hyper: row.hyper,
        encoder_checked: std::sync::atomic::AtomicBool::new(false),
    }))
}

/// The query for the row that answers a lookup: `version` of the tenant's
/// heads, the tenant's own active head, or (neither) the tenant's active
/// head else the global one.
fn row_sql(own_only: bool, version: Option<i32>) -> String {
    if version.is_some() {
        format!(
            "SELECT tenant, version, tableoid::pg_catalog.oid, id, xmin::pg_catalog.text::pg_catalog.int8, hyper
               FROM ecom.heads WHERE {} AND version OPERATOR(pg_catalog.=) $2::pg_catalog.int4",
            same_tenant("$1::pg_catalog.text")
        )
    } else if own_only {
        format!(
            "SELECT tenant, version, tableoid::pg_catalog.oid, id, xmin::pg_catalog.text::pg_catalog.int8, hyper
               FROM ecom.heads WHERE {} AND active",
            same_tenant("$1::pg_catalog.text")
        )
    } else {
        "SELECT tenant, version, tableoid::pg_catalog.oid, id, xmin::pg_catalog.text::pg_catalog.int8, hyper
           FROM ecom.heads
          WHERE (tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text OR tenant IS NULL) AND active
          ORDER BY tenant NULLS LAST LIMIT 1"
            .to_string()
    }
}

/// Runs `sql` (from `row_sql`): the row found, if any.
fn read_row(sql: &str, tenant: Option<&str>, version: Option<i32>) -> Option<Row> {
    Spi::connect(|c| {
        let t = c.select(sql, Some(1), &[tenant.into(), version.into()])?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some(Row {
            tenant: r.get::<String>(1)?,
            version: r.get::<i32>(2)?.unwrap_or(0),
            key: (
                r.get::<pg_sys::Oid>(3)?.map_or(0, |o| o.to_u32()),
                r.get::<i64>(4)?.unwrap_or(0),
                r.get::<i64>(5)?.unwrap_or(0),
            ),
            hyper: r.get::<JsonB>(6)?.map(|j| j.0).unwrap_or_default(),
        }))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.heads: {e}")).raise())
}

/// Reads the weights and posterior of row version (`id`, `xmin`) and
/// decodes them; None when that row version is gone.
fn read_decoded(id: i64, xmin: i64, hyper: &serde_json::Value) -> Option<Decoded> {
    // a read-only SPI query: pgrx's Spi::get_one* run as "update",
    // which assigns a transaction id (an error on a hot standby,
    // and a wasted xid plus WAL on a primary, per scoring statement)
    type Stored = (Vec<f32>, Option<Vec<f32>>, StoredItems, Option<Vec<f32>>);
    let stored: Option<Stored> = Spi::connect(|c| {
        let t = c.select(
            "SELECT weights, posterior, item_keys, item_effects, item_precision, taste_basis FROM ecom.heads
              WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.int8
                AND xmin::pg_catalog.text::pg_catalog.int8 OPERATOR(pg_catalog.=) $2::pg_catalog.int8",
            Some(1),
            &[id.into(), xmin.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        let posterior = r.get::<Vec<f32>>(2)?;
        let items = (
            r.get::<Vec<i64>>(3)?,
            r.get::<Vec<f32>>(4)?,
            r.get::<Vec<f32>>(5)?,
        );
        let basis = r.get::<Vec<f32>>(6)?;
        Ok(r.get::<Vec<f32>>(1)?.map(|w| (w, posterior, items, basis)))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.heads: {e}")).raise());
    let (weights, posterior, items, basis) = stored?;
    let mut head = decode(hyper, weights);
    head.items = decode_items(hyper, items);
    if let Some(base) = hyper["items_base"].as_i64() {
        head.items = head.items.over(&global_row(base).head.items);
    }
    head.basis = match (basis, hyper["taste_base"].as_i64()) {
        (Some(w), _) => Some(Arc::new(
            TasteBasis::from_weights(head.dims(), &w).unwrap_or_else(|e| {
                PgError::internal(format!(
                    "ecom.heads holds a head with an inconsistent taste basis: {e}"
                ))
                .raise()
            }),
        )),
        (None, Some(base)) => global_row(base).head.basis.clone(),
        (None, None) => None,
    };
    let stored = posterior.is_some();
    let posterior = decode_posterior(hyper, &head, posterior);
    Some(Decoded {
        head: Arc::new(head),
        posterior: Arc::new(posterior),
        posterior_stored: stored,
    })
}

/// A head serves only the encoder it was trained for: the embedding width
/// must match (ERROR, with what to do), and a different encoder file of the
/// same width (sha256 recorded when the head was made) draws one WARNING
/// per backend. Checked once per looked-up head, not per row.
pub fn check_encoder(h: &StoredHead, dims: usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if h.encoder_checked.load(Ordering::Relaxed) {
        return;
    }
    let who = crate::pg::errors::owner_name(h.tenant.as_deref());
    if h.head.dims() != dims {
        PgError::new(PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, format!(
                "version {} of {who} was trained on {}-dimensional embeddings, but the loaded encoder produces {dims}",
                h.version,
                h.head.dims()
            )).hint("The encoder changed since this head was made (pg_ecom.model_dir or the model files). Point pg_ecom.model_dir back to that model, or run ecom_meta_train and ecom_adapt again with this one.").raise();
    }
    let session = crate::encoder::identity::SessionEncoder::current();
    if let Some(made_with) = h.hyper["encoder"]["model"].as_str() {
        if made_with != session.model {
            PgError::new(
                PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                format!(
                    "version {} of {who} was trained with the encoder {made_with}, but this session's encoder is {}",
                    h.version, session.model
                ),
            )
            .hint(encoder_hint(made_with))
            .raise();
        }
    }
    // the same model with other prefixes (an encoder directory copied and
    // its manifest edited) embeds texts differently too
    let recorded_prefixes = &h.hyper["encoder"]["prefixes"];
    if recorded_prefixes.is_object() {
        let differs = |role: &str, now: &str| recorded_prefixes[role].as_str().unwrap_or("") != now;
        if differs("context", &session.prefixes.context) || differs("item", &session.prefixes.item)
        {
            PgError::new(
                PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
                format!(
                    "version {} of {who} was trained with the prefixes {recorded_prefixes}, but this session's encoder puts {{\"context\": \"{}\", \"item\": \"{}\"}} before texts",
                    h.version, session.prefixes.context, session.prefixes.item
                ),
            )
            .hint("The manifest of this session's encoder names other prefixes than when the head was trained: restore them, or meta-train and adapt again with these.")
            .raise();
        }
    }
    let recorded = h.hyper["encoder"]["sha256"].as_str();
    let loaded = crate::encoder::embed::model_sha256();
    if let (Some(r), Some(l)) = (recorded, loaded.as_deref()) {
        if r != l && !WARNED.swap(true, Ordering::Relaxed) {
            pgrx::warning!(
                "pg_ecom: version {} of {who} was made with another encoder (sha256 {}…) than the loaded one (ecom_model_info() shows it); its scores may be meaningless",
                h.version,
                &r[..r.len().min(12)],
            );
        }
    }
    h.encoder_checked.store(true, Ordering::Relaxed);
}

/// How to score with the encoder a head was made with.
fn encoder_hint(model: &str) -> String {
    use crate::encoder::manifest::Manifest;
    let installed = crate::pg::settings::installed_encoders()
        .into_iter()
        .find(|(_, dir)| Manifest::read(dir).is_ok_and(|m| m.model == model));
    match installed {
        Some((name, _)) if name.is_empty() => "SET pg_ecom.encoder = '' (the default) to score with it, or meta-train and adapt again with this encoder.".to_owned(),
        Some((name, _)) => format!("SET pg_ecom.encoder = '{name}' to score with it, or meta-train and adapt again with this encoder."),
        None => "That encoder is not installed (ecom_model_info() lists those that are); meta-train and adapt again with this one.".to_owned(),
    }
}

/// The head that serves `tenant`, or the ERROR a caller without any head gets.
pub fn serving_head(tenant: Option<&str>) -> Arc<StoredHead> {
    active_head(tenant, false).unwrap_or_else(|| no_global_head())
}

pub(super) fn no_global_head() -> ! {
    PgError::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "there is no global head yet",
    )
    .hint("Run ecom_meta_train(source) first: it learns the head that new tenants start from.")
    .raise()
}

fn decode(hyper: &serde_json::Value, weights: Vec<f32>) -> Head {
    let t = hyper["t"].as_u64().unwrap_or(0) as usize;
    let k = hyper["k"].as_u64().unwrap_or(0) as usize;
    Head::from_weights(t, k, weights).unwrap_or_else(|e| {
        PgError::internal(format!(
            "ecom.heads holds a head with inconsistent weights (t={t}, k={k}): {e}"
        ))
        .raise()
    })
}

/// The global row `id` a tenant's head reads its platform item effects
/// and taste basis from (ecom.heads.id, never reused; a global version is
/// never deleted), decoded once per backend like any head.
fn global_row(id: i64) -> Decoded {
    let row = Spi::connect(|c| {
        let t = c.select(
            "SELECT tableoid::pg_catalog.oid, xmin::pg_catalog.text::pg_catalog.int8, hyper FROM ecom.heads
              WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.int8 AND tenant IS NULL",
            Some(1),
            &[id.into()],
        )?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<pg_sys::Oid>(1)?.map_or(0, |o| o.to_u32()),
            r.get::<i64>(2)?.unwrap_or(0),
            r.get::<JsonB>(3)?.map(|j| j.0).unwrap_or_default(),
        )))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.heads: {e}")).raise());
    let missing = || -> ! {
        PgError::internal(format!(
            "ecom.heads holds a tenant's head whose global head (row id {id}) is gone"
        ))
        .raise()
    };
    let Some((oid, xmin, hyper)) = row else {
        missing()
    };
    let key = (oid, id, xmin);
    if let Some(d) = head_cache::get(&key) {
        return d;
    }
    let decoded = read_decoded(id, xmin, &hyper).unwrap_or_else(|| missing());
    head_cache::insert(key, decoded.clone());
    decoded
}

/// The stored columns of a head's item effects: keys, effects, precisions.
type StoredItems = (Option<Vec<i64>>, Option<Vec<f32>>, Option<Vec<f32>>);

/// A head's item effects (NULL keys: none, as before 0.5.0), with the
/// precision its tenants' own start from (its prior's `item`).
fn decode_items(hyper: &serde_json::Value, stored: StoredItems) -> ItemEffects {
    let prior = prior_of(hyper);
    for (name, value) in [
        ("item_meta", prior.item_meta),
        ("item_served", prior.item_served),
        ("bias_meta", prior.bias_meta),
    ] {
        if let Some(v) = value.filter(|v| !(v.is_finite() && *v > 0.0)) {
            PgError::internal(format!(
                "ecom.heads holds a head whose prior's {name} is {v}, not a positive number"
            ))
            .raise();
        }
    }
    let mut items = decode_item_rows(prior.item, stored);
    item_prior::restore(&prior, &mut items);
    items
}

fn decode_item_rows(tenant_prior: f32, (keys, effects, precision): StoredItems) -> ItemEffects {
    if !(tenant_prior.is_finite() && tenant_prior > 0.0) {
        PgError::internal(format!(
            "ecom.heads holds a head whose prior's item precision is {tenant_prior}, not a positive number"
        ))
        .raise();
    }
    let Some(keys) = keys else {
        let mut none = ItemEffects::none();
        none.tenant_prior = tenant_prior;
        return none;
    };
    ItemEffects::from_stored(keys, effects.unwrap_or_default(), precision, tenant_prior)
        .unwrap_or_else(|e| {
            PgError::internal(format!(
                "ecom.heads holds a head with inconsistent item effects: {e}"
            ))
            .raise()
        })
}

fn decode_posterior(hyper: &serde_json::Value, head: &Head, stored: Option<Vec<f32>>) -> Posterior {
    match stored {
        Some(w) => Posterior::from_weights(
            head.k,
            head.dims(),
            &w,
            head.basis.as_deref().map(TasteBasis::ranks),
        )
        .unwrap_or_else(|e| {
            PgError::internal(format!(
                "ecom.heads holds a head with an inconsistent posterior: {e}"
            ))
            .raise()
        }),
        None => {
            Posterior::from_prior_in(&prior_of(hyper), head.k, head.dims(), head.basis.as_deref())
        }
    }
}

/// Whether a version of `tenant` later than `version` ever served: the
/// one serving now was rolled back to.
pub fn later_version_served(tenant: &str, version: i32) -> bool {
    Spi::connect(|c| {
        c.select(
            "SELECT 1 FROM ecom.heads WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text
                AND version OPERATOR(pg_catalog.>) $2::pg_catalog.int4 AND ever_active LIMIT 1",
            Some(1),
            &[tenant.into(), version.into()],
        )
        .map(|t| !t.is_empty())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.heads: {e}")).raise())
}

/// Whether `tenant` has any head of its own, active or not.
pub fn has_versions(tenant: &str) -> bool {
    Spi::connect(|c| {
        c.select(
            "SELECT 1 FROM ecom.heads WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text LIMIT 1",
            Some(1),
            &[tenant.into()],
        )
        .map(|t| !t.is_empty())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.heads: {e}")).raise())
}
