//! `ecom.heads`: versioned heads per tenant, read through SPI (and cached
//! by row identity); versions.rs writes them.
//!
//! Every statement here names its objects with their schema (`ecom.`,
//! `pg_catalog.`), operators included (`OPERATOR(pg_catalog.=)`), and casts
//! its parameters to exact types: these run with the caller's search_path,
//! where a look-alike function or operator earlier on the path would
//! otherwise run instead, with the caller's rights.

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use std::collections::HashMap;
use std::sync::Arc;

use crate::pg::errors::raise as error;
use pg_ecom_core::head::Head;
use pg_ecom_core::posterior::Posterior;
use pg_ecom_core::prior::{Prior, FROZEN};

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

/// Cache of decoded heads by (table, id, xmin). `id` comes from the
/// table's identity sequence, so no other row version of this table ever
/// has it (not a version number reused after ecom_forget or a rollback in
/// the same transaction, which (tenant, version, xmin) could not tell
/// apart); the table's oid tells apart a table dropped and created again
/// (DROP EXTENSION, CREATE EXTENSION) in the same backend.
type HeadKey = (u32, i64, i64);
/// the head, what Thompson draws from, and whether that was stored (else
/// it is the prior)
type Decoded = (Arc<Head>, Arc<Posterior>, bool);
static HEADS: Lazy<Mutex<HashMap<HeadKey, Decoded>>> = Lazy::new(|| Mutex::new(HashMap::new()));

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

/// What a lookup could see: the active snapshot's bounds, command id and
/// in-progress count, the subtransaction, and the role asking. Used only
/// within one statement's call site (see `HeadMemo`): there it changes when
/// a PL/pgSQL loop moves to a new statement, after our own writes (command
/// id), after ROLLBACK TO SAVEPOINT (new subtransaction) and when another
/// transaction ends between two snapshots (xmin/xmax/xcnt).
///
/// When row-level security applies to the caller on ecom.heads, a policy
/// may read a setting (`current_setting('app.tenant')`) that a PL/pgSQL
/// function changes between two calls at one call site, with the same
/// snapshot: then the values of every custom setting (names with a dot) are
/// part of what the lookup could see as well.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Visibility {
    xmin: u32,
    xmax: u32,
    curcid: u32,
    xcnt: u32,
    subxact: u32,
    user: u32,
    settings: u64,
}

fn visibility(rls: bool) -> Option<Visibility> {
    // SAFETY: reads fields of the active snapshot, which Postgres keeps valid
    // for the duration of the current query. GetActiveSnapshot() must not be
    // called without one (it dereferences the stack's top), hence the check.
    unsafe {
        if !pg_sys::ActiveSnapshotSet() {
            return None;
        }
        let s = pg_sys::GetActiveSnapshot();
        if s.is_null() {
            return None;
        }
        Some(Visibility {
            xmin: (*s).xmin.into_inner(),
            xmax: (*s).xmax.into_inner(),
            curcid: (*s).curcid,
            xcnt: (*s).xcnt,
            subxact: pg_sys::GetCurrentSubTransactionId(),
            user: pg_sys::GetUserId().to_u32(),
            settings: if rls {
                custom_settings_fingerprint()
            } else {
                0
            },
        })
    }
}

/// Whether row-level security policies of ecom.heads apply to the caller.
fn rls_applies() -> bool {
    // SAFETY: catalog lookups by name and oid, with missing_ok / noError.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"ecom".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return false;
        }
        let rel = pg_sys::get_relname_relid(c"heads".as_ptr(), nsp);
        rel != pg_sys::InvalidOid
            && pg_sys::check_enable_rls(rel, pg_sys::InvalidOid, true)
                == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}

/// A hash of the current values of all custom settings (placeholders such
/// as `app.tenant` and settings of extensions). A few microseconds; taken
/// only when row-level security applies.
fn custom_settings_fingerprint() -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    // SAFETY: the GUC array and its entries belong to this backend and are
    // not changed while we read them (no GUC is set from here); pointers
    // are checked for NULL before use; each entry's vartype says which
    // struct it is.
    unsafe {
        let vars = pg_sys::get_guc_variables();
        let n = pg_sys::GetNumConfigOptions();
        if vars.is_null() {
            return 0;
        }
        for i in 0..n.max(0) as usize {
            let g = *vars.add(i);
            if g.is_null() || (*g).group != pg_sys::config_group::CUSTOM_OPTIONS {
                continue;
            }
            std::ffi::CStr::from_ptr((*g).name).hash(&mut h);
            match (*g).vartype {
                pg_sys::config_type::PGC_STRING => {
                    let v = *(*g.cast::<pg_sys::config_string>()).variable;
                    if !v.is_null() {
                        std::ffi::CStr::from_ptr(v).hash(&mut h);
                    }
                }
                pg_sys::config_type::PGC_INT => {
                    (*(*g.cast::<pg_sys::config_int>()).variable).hash(&mut h)
                }
                pg_sys::config_type::PGC_ENUM => {
                    (*(*g.cast::<pg_sys::config_enum>()).variable).hash(&mut h)
                }
                pg_sys::config_type::PGC_BOOL => {
                    (*(*g.cast::<pg_sys::config_bool>()).variable).hash(&mut h)
                }
                pg_sys::config_type::PGC_REAL => (*(*g.cast::<pg_sys::config_real>()).variable)
                    .to_bits()
                    .hash(&mut h),
                _ => {}
            }
        }
    }
    h.finish()
}

/// Answers of `active_head` for one call site of one statement (kept in the
/// call's `fn_extra`, freed with the statement). Scoring a 10,000-row table
/// asks the same question 10,000 times; all but the first become a hash
/// lookup instead of an SPI query. Never shared across statements, so a
/// row-level-security policy that reads a setting, or a head committed by
/// another session, is seen by the next statement as usual.
#[derive(Default)]
pub struct HeadMemo {
    /// row-level security applied at the last lookup (it can change only
    /// by DDL, which moves the command id or the snapshot)
    rls: bool,
    /// indexed by `own_only`: the answer for the global head (tenant NULL)
    global: [Option<Memo>; 2],
    /// indexed by `own_only`: answers by tenant, looked up by `&str`, so a
    /// row costs a hash and no allocation
    tenants: [HashMap<String, Memo>; 2],
}

type Memo = (Visibility, Option<Arc<StoredHead>>);

impl HeadMemo {
    pub fn active_head(&mut self, tenant: Option<&str>, own_only: bool) -> Option<Arc<StoredHead>> {
        let Some(vis) = visibility(self.rls) else {
            return active_head(tenant, own_only);
        };
        let i = usize::from(own_only);
        let seen = match tenant {
            None => self.global[i].as_ref(),
            Some(t) => self.tenants[i].get(t),
        };
        if let Some((v, h)) = seen {
            if *v == vis {
                return h.clone();
            }
        }
        let rls = rls_applies();
        let vis = if rls == self.rls {
            vis
        } else {
            self.rls = rls;
            visibility(rls).unwrap_or(vis)
        };
        let found = active_head(tenant, own_only);
        let memo = (vis, found.clone());
        match tenant {
            None => self.global[i] = Some(memo),
            Some(t) => {
                let map = &mut self.tenants[i];
                if map.len() >= 1024 {
                    map.clear(); // a statement over very many tenants: stay bounded
                }
                map.insert(t.to_owned(), memo);
            }
        }
        found
    }

    pub fn serving_head(&mut self, tenant: Option<&str>) -> Arc<StoredHead> {
        self.active_head(tenant, false)
            .unwrap_or_else(|| no_global_head())
    }
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
    error(
        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
        format!(
            "pg_ecom: the head serving {} kept changing while it was read",
            tenant.map_or(
                "the global head".to_string(),
                crate::pg::errors::tenant_name
            )
        ),
        Some("Concurrent ecom_adapt, ecom_rollback or ecom_forget calls; retry the statement."),
    )
}

/// A library newer than the SQL objects (new binaries installed, ALTER
/// EXTENSION … UPDATE not run yet in this database) would fail on columns
/// that 0.1.0 lacks: say what to do instead. Checked in the catalogs until
/// it first succeeds in this backend (the update can happen while a
/// backend lives; it cannot be undone).
pub fn require_current_schema() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static CURRENT: AtomicBool = AtomicBool::new(false);
    if CURRENT.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: catalog lookups by name, with missing_ok.
    let has_id = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"ecom".as_ptr(), true);
        let rel = if nsp == pg_sys::InvalidOid {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_relname_relid(c"heads".as_ptr(), nsp)
        };
        if rel == pg_sys::InvalidOid {
            return; // no ecom.heads at all: the query itself will say so
        }
        pg_sys::get_attnum(rel, c"ever_active".as_ptr()) != pg_sys::InvalidAttrNumber as i16
    };
    if !has_id {
        error(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "pg_ecom: the extension's SQL objects in this database are older than the pg_ecom library ({})",
                env!("CARGO_PKG_VERSION")
            ),
            Some("Run ALTER EXTENSION pg_ecom UPDATE in this database."),
        );
    }
    CURRENT.store(true, Ordering::Relaxed);
}

/// One attempt: Some(answer), or None when the row vanished in between.
fn try_lookup(
    tenant: Option<&str>,
    own_only: bool,
    version: Option<i32>,
) -> Option<Option<StoredHead>> {
    let sql = if version.is_some() {
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
    };
    let row = Spi::connect(|c| {
        let t = c.select(&sql, Some(1), &[tenant.into(), version.into()])?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<String>(1)?,
            r.get::<i32>(2)?.unwrap_or(0),
            r.get::<pg_sys::Oid>(3)?.map_or(0, |o| o.to_u32()),
            r.get::<i64>(4)?.unwrap_or(0),
            r.get::<i64>(5)?.unwrap_or(0),
            r.get::<JsonB>(6)?.map(|j| j.0).unwrap_or_default(),
        )))
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.heads: {e}"));
    let Some((tenant, version, table, id, xmin, hyper)) = row else {
        return Some(None);
    };
    let key = (table, id, xmin);
    let cached = HEADS.lock().get(&key).cloned();
    let (head, posterior, posterior_stored) = match cached {
        Some(h) => h,
        None => {
            // a read-only SPI query: pgrx's Spi::get_one* run as "update",
            // which assigns a transaction id (an error on a hot standby,
            // and a wasted xid plus WAL on a primary, per scoring statement)
            let stored: Option<(Vec<f32>, Option<Vec<f32>>)> = Spi::connect(|c| {
                let t = c.select(
                    "SELECT weights, posterior FROM ecom.heads
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
                Ok(r.get::<Vec<f32>>(1)?.map(|w| (w, posterior)))
            })
            .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.heads: {e}"));
            let (weights, posterior) = stored?;
            let head = decode(&hyper, weights);
            let stored = posterior.is_some();
            let posterior = decode_posterior(&hyper, &head, posterior);
            let decoded = (Arc::new(head), Arc::new(posterior), stored);
            let mut cache = HEADS.lock();
            if cache.len() > 256 {
                cache.clear();
            }
            cache.insert(key, decoded.clone());
            decoded
        }
    };
    Some(Some(StoredHead {
        tenant,
        version,
        head,
        posterior,
        posterior_stored,
        id,
        hyper,
        encoder_checked: std::sync::atomic::AtomicBool::new(false),
    }))
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
    let who = match &h.tenant {
        Some(t) => crate::pg::errors::tenant_name(t),
        None => "the global head".to_string(),
    };
    if h.head.dims() != dims {
        error(
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            format!(
                "pg_ecom: version {} of {who} was trained on {}-dimensional embeddings, but the loaded encoder produces {dims}",
                h.version,
                h.head.dims()
            ),
            Some("The encoder changed since this head was made (pg_ecom.model_dir or the model files). Point pg_ecom.model_dir back to that model, or run ecom_meta_train and ecom_adapt again with this one."),
        );
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

/// The head that serves `tenant`, or the ERROR a caller without any head gets.
pub fn serving_head(tenant: Option<&str>) -> Arc<StoredHead> {
    active_head(tenant, false).unwrap_or_else(|| no_global_head())
}

fn no_global_head() -> ! {
    error(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "pg_ecom: there is no global head yet".into(),
        Some("Run ecom_meta_train(source) first: it learns the head that new tenants start from."),
    )
}

fn decode(hyper: &serde_json::Value, weights: Vec<f32>) -> Head {
    let t = hyper["t"].as_u64().unwrap_or(0) as usize;
    let k = hyper["k"].as_u64().unwrap_or(0) as usize;
    Head::from_weights(t, k, weights).unwrap_or_else(|e| {
        error!("pg_ecom: ecom.heads holds a head with inconsistent weights (t={t}, k={k}): {e}")
    })
}

fn decode_posterior(hyper: &serde_json::Value, head: &Head, stored: Option<Vec<f32>>) -> Posterior {
    match stored {
        Some(w) => Posterior::from_weights(head.k, head.dims(), &w).unwrap_or_else(|e| {
            error!("pg_ecom: ecom.heads holds a head with an inconsistent posterior: {e}")
        }),
        None => Posterior::from_prior(&prior_of(hyper), head.k, head.dims()),
    }
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
    .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.heads: {e}"))
}
