//! `ecom.heads`: versioned heads per tenant, read and written through SPI.
//!
//! Versions are never overwritten. Writers of one tenant serialise on a
//! transaction-scoped advisory lock, so two concurrent `ecom_adapt` calls get
//! consecutive versions, and the partial unique index on active heads
//! guarantees at most one active head per tenant whatever happens.

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use pgrx::prelude::*;
use pgrx::{JsonB, PgLogLevel, PgSqlErrorCode};
use std::collections::HashMap;
use std::sync::Arc;

use crate::head::Head;

pub const BEHAVIOURS_SQL: &str = "ARRAY['browse','click','cart','purchase']";

/// An active head as read from the table.
pub struct StoredHead {
    pub tenant: Option<String>,
    pub version: i32,
    pub head: Arc<Head>,
    pub hyper: serde_json::Value,
}

/// Cache of decoded heads by (tenant, version, xmin): a row is immutable
/// once written, and xmin tells apart a version number reused after a
/// rolled-back transaction.
type HeadKey = (Option<String>, i32, i64);
static HEADS: Lazy<Mutex<HashMap<HeadKey, Arc<Head>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

fn error(code: PgSqlErrorCode, msg: String, hint: Option<&str>) -> ! {
    let mut r = pgrx::pg_sys::panic::ErrorReport::new(code, msg, "pg_ecom");
    if let Some(h) = hint {
        r = r.set_hint(h);
    }
    r.report(PgLogLevel::ERROR);
    unreachable!()
}

/// What a lookup could see: the active snapshot's bounds, command id and
/// in-progress count, the subtransaction, and the role asking. Used only
/// within one statement's call site (see `HeadMemo`): there it changes when
/// a PL/pgSQL loop moves to a new statement, after our own writes (command
/// id), after ROLLBACK TO SAVEPOINT (new subtransaction) and when another
/// transaction ends between two snapshots (xmin/xmax/xcnt).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Visibility {
    xmin: u32,
    xmax: u32,
    curcid: u32,
    xcnt: u32,
    subxact: u32,
    user: u32,
}

fn visibility() -> Option<Visibility> {
    // SAFETY: reads fields of the active snapshot, which Postgres keeps valid
    // for the duration of the current query; NULL is checked.
    unsafe {
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
        })
    }
}

/// Answers of `active_head` for one call site of one statement (kept in the
/// call's `fn_extra`, freed with the statement). Scoring a 10,000-row table
/// asks the same question 10,000 times; all but the first become a hash
/// lookup instead of an SPI query. Never shared across statements, so a
/// row-level-security policy that reads a setting, or a head committed by
/// another session, is seen by the next statement as usual.
#[derive(Default)]
pub struct HeadMemo {
    /// indexed by `own_only`: the answer for the global head (tenant NULL)
    global: [Option<Memo>; 2],
    /// indexed by `own_only`: answers by tenant, looked up by `&str`, so a
    /// row costs a hash and no allocation
    tenants: [HashMap<String, Memo>; 2],
}

type Memo = (Visibility, Option<Arc<StoredHead>>);

impl HeadMemo {
    pub fn active_head(&mut self, tenant: Option<&str>, own_only: bool) -> Option<Arc<StoredHead>> {
        let Some(vis) = visibility() else {
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
    lookup(tenant, own_only).map(Arc::new)
}

fn lookup(tenant: Option<&str>, own_only: bool) -> Option<StoredHead> {
    let sql = if own_only {
        "SELECT tenant, version, xmin::text::bigint, hyper FROM ecom.heads
          WHERE tenant IS NOT DISTINCT FROM $1 AND active"
    } else {
        "SELECT tenant, version, xmin::text::bigint, hyper FROM ecom.heads
          WHERE (tenant = $1 OR tenant IS NULL) AND active ORDER BY tenant NULLS LAST LIMIT 1"
    };
    let row = Spi::connect(|c| {
        let t = c.select(sql, Some(1), &[tenant.into()])?;
        if t.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = t.first();
        Ok(Some((
            r.get::<String>(1)?,
            r.get::<i32>(2)?.unwrap_or(0),
            r.get::<i64>(3)?.unwrap_or(0),
            r.get::<JsonB>(4)?.map(|j| j.0).unwrap_or_default(),
        )))
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.heads: {e}"))?;
    let (tenant, version, xmin, hyper) = row;
    let key = (tenant.clone(), version, xmin);
    let cached = HEADS.lock().get(&key).cloned();
    let head = match cached {
        Some(h) => h,
        None => {
            // a read-only SPI query: pgrx's Spi::get_one* run as "update",
            // which assigns a transaction id (an error on a hot standby,
            // and a wasted xid plus WAL on a primary, per scoring statement)
            let weights: Vec<f32> = Spi::connect(|c| {
                c.select(
                    "SELECT weights FROM ecom.heads WHERE tenant IS NOT DISTINCT FROM $1 AND version = $2",
                    Some(1),
                    &[tenant.clone().into(), version.into()],
                )?
                .first()
                .get::<Vec<f32>>(1)
            })
            .unwrap_or_else(|e| error!("pg_ecom: cannot read ecom.heads: {e}"))
            .unwrap_or_default();
            let head = Arc::new(decode(&hyper, weights));
            let mut cache = HEADS.lock();
            if cache.len() > 256 {
                cache.clear();
            }
            cache.insert(key, head.clone());
            head
        }
    };
    Some(StoredHead {
        tenant,
        version,
        head,
        hyper,
    })
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
    let head = Head {
        t,
        k,
        params: weights,
    };
    if t == 0 || head.params.len() != Head::new(head.dims(), k).params.len() {
        error!(
            "pg_ecom: ecom.heads holds a head with inconsistent weights (t={t}, k={k}, {} weights)",
            head.params.len()
        );
    }
    head
}

/// Functions that write ecom.heads refuse early, before any encoding or
/// training, in a read-only transaction and on a hot standby (where
/// transactions are always read-only), with the SQLSTATE Postgres uses.
pub fn require_writable(function: &str) {
    // SAFETY: reads backend-local globals.
    let (read_only, recovery) = unsafe { (pg_sys::XactReadOnly, pg_sys::RecoveryInProgress()) };
    if read_only || recovery {
        error(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!(
                "pg_ecom: {function}() writes a head version and cannot run in a read-only transaction{}",
                if recovery { " (this server is a hot standby)" } else { "" }
            ),
            Some(if recovery {
                "Run it on the primary; standbys serve the new head as soon as it is replayed."
            } else {
                "Run it in a read-write transaction."
            }),
        );
    }
}

/// Stores `head` as the next version of `tenant` (NULL = global), makes it
/// the active one and returns its version.
pub fn insert_version(
    tenant: Option<&str>,
    parent: Option<i32>,
    head: &Head,
    mut hyper: serde_json::Value,
    metrics: serde_json::Value,
) -> i32 {
    if head.params.iter().any(|p| !p.is_finite()) {
        error(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            "pg_ecom: training diverged (a weight is NaN or infinite); nothing was stored".into(),
            Some("Use a smaller lr or fewer steps."),
        );
    }
    hyper["t"] = head.t.into();
    hyper["k"] = head.k.into();
    lock_tenant(tenant);
    Spi::connect_mut(|c| {
        c.update(
            "UPDATE ecom.heads SET active = false WHERE tenant IS NOT DISTINCT FROM $1 AND active",
            None,
            &[tenant.into()],
        )?;
        let t = c.update(
            &format!(
                "INSERT INTO ecom.heads (tenant, version, parent_version, behaviours, n_features, dims, weights, hyper, metrics, active)
                 SELECT $1, coalesce(max(version), 0) + 1, $2, {BEHAVIOURS_SQL}, $3, $4, $5, $6, $7, true
                   FROM ecom.heads WHERE tenant IS NOT DISTINCT FROM $1
                 RETURNING version"
            ),
            None,
            &[
                tenant.into(),
                parent.into(),
                (head.k as i32).into(),
                (head.dims() as i32).into(),
                head.params.clone().into(),
                JsonB(hyper).into(),
                JsonB(metrics).into(),
            ],
        )?;
        t.first().get::<i32>(1)
    })
    .unwrap_or_else(|e| error!("pg_ecom: cannot write ecom.heads: {e}"))
    .expect("INSERT … RETURNING gives a version")
}

/// Serialises writers of one tenant until the end of the transaction.
fn lock_tenant(tenant: Option<&str>) {
    let key = format!("pg_ecom:{}", tenant.unwrap_or("\u{0}global"));
    Spi::run_with_args(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[key.into()],
    )
    .unwrap_or_else(|e| error!("pg_ecom: cannot lock tenant: {e}"));
}

pub fn rollback(tenant: Option<&str>, version: i32) -> bool {
    lock_tenant(tenant);
    let exists: bool = Spi::get_one_with_args(
        "SELECT EXISTS (SELECT 1 FROM ecom.heads WHERE tenant IS NOT DISTINCT FROM $1 AND version = $2)",
        &[tenant.into(), version.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !exists {
        return false;
    }
    // two statements: the unique index on active heads is checked per row
    for sql in [
        "UPDATE ecom.heads SET active = false WHERE tenant IS NOT DISTINCT FROM $1 AND active AND version <> $2",
        "UPDATE ecom.heads SET active = true WHERE tenant IS NOT DISTINCT FROM $1 AND version = $2",
    ] {
        Spi::run_with_args(sql, &[tenant.into(), version.into()])
            .unwrap_or_else(|e| error!("pg_ecom: cannot write ecom.heads: {e}"));
    }
    true
}

pub fn forget(tenant: &str) -> i64 {
    lock_tenant(Some(tenant));
    Spi::get_one_with_args::<i64>(
        "WITH d AS (DELETE FROM ecom.heads WHERE tenant = $1 RETURNING 1) SELECT count(*) FROM d",
        &[tenant.into()],
    )
    .unwrap_or_else(|e| error!("pg_ecom: cannot delete from ecom.heads: {e}"))
    .unwrap_or(0)
}
