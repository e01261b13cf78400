//! Versions of `ecom.heads` written: a new version (activated or kept
//! waiting), the replacement of waiting candidates, rollback, forget, and
//! the per-tenant lock that serialises them. Reading heads is heads.rs.
//!
//! Versions are never overwritten, and one that served is never deleted
//! or renumbered. Writers of one tenant serialise on a transaction-scoped
//! advisory lock, so two concurrent `ecom_adapt` calls get consecutive
//! versions; the partial unique index on active heads guarantees at most
//! one active head per tenant, and the requests' foreign key keeps every
//! version a request names. SQL is schema-qualified as in heads.rs.

use crate::pg::errors::PgError;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};

use crate::store::heads::{same_tenant, BEHAVIOURS_SQL};
use crate::store::schema::require_current_schema;
use pg_ecom_core::head::Head;
use pg_ecom_core::items::ItemEffects;
use pg_ecom_core::posterior::Posterior;
use pg_ecom_core::taste::TasteBasis;

/// Functions that write ecom.heads refuse early, before any encoding or
/// training, in a read-only transaction and on a hot standby (where
/// transactions are always read-only), with the SQLSTATE Postgres uses.
pub fn require_writable(function: &str) {
    require_writable_to(function, "a head version");
}

/// `require_writable` for a function that writes `what`.
pub fn require_writable_to(function: &str, what: &str) {
    // SAFETY: reads backend-local globals.
    let (read_only, recovery) = unsafe { (pg_sys::XactReadOnly, pg_sys::RecoveryInProgress()) };
    if read_only || recovery {
        PgError::new(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!(
                "{function}() writes {what} and cannot run in a read-only transaction{}",
                if recovery {
                    " (this server is a hot standby)"
                } else {
                    ""
                }
            ),
        )
        .hint(if recovery {
            "Run it on the primary; standbys serve the new head as soon as it is replayed."
        } else {
            "Run it in a read-write transaction."
        })
        .raise();
    }
}

/// Stores `head` as the next version of `tenant` (NULL = global), makes it
/// the active one and returns its version.
pub fn insert_version(
    tenant: Option<&str>,
    parent: Option<i32>,
    head: &Head,
    hyper: serde_json::Value,
    metrics: serde_json::Value,
) -> i32 {
    insert_version_with(tenant, parent, head, None, hyper, metrics, true)
}

/// `insert_version` with the head's posterior, and activating it or not
/// (ecom_learn keeps a version that did not evaluate better inactive).
pub fn insert_version_with(
    tenant: Option<&str>,
    parent: Option<i32>,
    head: &Head,
    posterior: Option<&Posterior>,
    mut hyper: serde_json::Value,
    metrics: serde_json::Value,
    activate: bool,
) -> i32 {
    require_storable(head, posterior);
    hyper["t"] = head.t.into();
    hyper["k"] = head.k.into();
    // versions this one replaced (deleted in this transaction): numbers
    // are never handed out twice, so the new one comes after them
    let replaced_up_to = hyper["replaces"]
        .as_array()
        .and_then(|v| v.iter().filter_map(|x| x.as_i64()).max())
        .unwrap_or(0) as i32;
    require_current_schema();
    lock_tenant(tenant);
    let same = same_tenant("$1::pg_catalog.text");
    // a head without item effects stores NULLs, as heads before 0.5.0
    let items = (!head.items.is_empty()).then(|| head.items.to_stored());
    // the directions are stored with the global head only; its tenants
    // name it (hyper->'taste_base')
    let basis = head
        .basis
        .as_deref()
        .filter(|_| tenant.is_none())
        .map(TasteBasis::to_weights);
    let version = Spi::connect_mut(|c| {
        if activate {
            c.update(
                &format!("UPDATE ecom.heads SET active = false WHERE {same} AND active"),
                None,
                &[tenant.into()],
            )?;
        }
        // ON CONFLICT (tenant, version) DO NOTHING: at REPEATABLE READ or
        // SERIALIZABLE a version committed after our snapshot (by a
        // concurrent ecom_adapt we waited for) conflicts here; Postgres then
        // raises a serialization failure (40001, retryable) instead of a
        // unique violation. A conflict it lets through is reported as 40001
        // below. Only that constraint: a clash on `id` (a sequence set back
        // by hand or by a failover that did not copy it) stays a 23505.
        let t = c.update(
            &format!(
                "INSERT INTO ecom.heads (tenant, version, parent_version, behaviours, n_features, dims, weights, hyper, metrics, active, posterior, ever_active,
                                         item_keys, item_effects, item_precision, taste_basis)
                 SELECT $1::pg_catalog.text,
                        GREATEST(COALESCE(pg_catalog.max(version), 0), $10::pg_catalog.int4) OPERATOR(pg_catalog.+) 1,
                        $2::pg_catalog.int4, {BEHAVIOURS_SQL}, $3::pg_catalog.int4, $4::pg_catalog.int4,
                        $5::pg_catalog.float4[], $6::pg_catalog.jsonb, $7::pg_catalog.jsonb, $8::pg_catalog.bool,
                        $9::pg_catalog.float4[], $8::pg_catalog.bool,
                        $11::pg_catalog.int8[], $12::pg_catalog.float4[], $13::pg_catalog.float4[],
                        $14::pg_catalog.float4[]
                   FROM ecom.heads WHERE {same}
                 ON CONFLICT (tenant, version) DO NOTHING
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
                activate.into(),
                posterior.map(Posterior::to_weights).into(),
                replaced_up_to.into(),
                items.map(|(k, _, _)| k.to_vec()).into(),
                items.map(|(_, e, _)| e.to_vec()).into(),
                items.and_then(|(_, _, p)| p.map(<[f32]>::to_vec)).into(),
                basis.into(),
            ],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        t.first().get::<i32>(1)
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot write ecom.heads: {e}")).raise());
    version.unwrap_or_else(|| concurrent_write(tenant))
}

/// Refuses, before anything is written, a head that could not be read
/// back or could not score: non-finite weights (training diverged) or a
/// posterior that does not decode.
fn require_storable(head: &Head, posterior: Option<&Posterior>) {
    if head.params.iter().any(|p| !p.is_finite()) {
        PgError::new(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            "training diverged (a weight is NaN or infinite); nothing was stored",
        )
        .hint("Use a smaller lr or fewer steps.")
        .raise();
    }
    // a head is stored only if it can be read back and score: the same
    // checks as reading it (decode, decode_posterior, decode_items)
    let (keys, effects, precision) = head.items.to_stored();
    if let Err(e) = ItemEffects::from_stored(
        keys.to_vec(),
        effects.to_vec(),
        precision.map(<[f32]>::to_vec),
        head.items.tenant_prior,
    ) {
        PgError::new(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("training gave unusable item effects ({e}); nothing was stored"),
        )
        .hint("The events it learned from hold values it cannot use.")
        .raise();
    }
    if let Some(b) = head.basis.as_deref() {
        if let Err(e) = TasteBasis::from_weights(head.dims(), &b.to_weights()) {
            PgError::new(
                PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                format!("training gave an unusable taste basis ({e}); nothing was stored"),
            )
            .raise();
        }
    }
    if let Some(p) = posterior {
        let ranks = head.basis.as_deref().map(TasteBasis::ranks);
        if let Err(e) = Posterior::from_weights(head.k, head.dims(), &p.to_weights(), ranks) {
            PgError::new(PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, format!("training gave an unusable posterior ({e}); nothing was stored")).hint("The events it learned from hold values it cannot use; ecom_learn skips logged rows whose features are not finite or lie beyond ±1e9.").raise();
        }
    }
}

/// Deletes the versions of `tenant` that ecom_learn stored inactive from
/// the same active version (`parent`) and that never served: a newer
/// candidate, learned from the same events and more, replaces them, so that
/// a job every minute keeps at most one waiting candidate per active
/// version. A version that was ever active, or that a request names, is
/// kept whatever it is (it may have served; the requests' foreign key
/// enforces the second). Returns the versions deleted, for the new
/// version's `hyper->'replaces'` (its number comes after them).
///
/// The candidates are found first and deleted by id: Citus cannot delete
/// from a reference table (ecom.heads) in a statement that also reads a
/// distributed one (ecom.requests). The tenant's lock, held from here to
/// the end of the transaction, keeps a request from naming one of them in
/// between (and only active versions serve). The DELETE checks again that
/// each is still inactive: on Citus that lock is per node, and a rollback
/// on another node may have activated one meanwhile.
pub fn drop_inactive_candidates(tenant: &str, parent: Option<i32>) -> Vec<i32> {
    lock_tenant(Some(tenant));
    Spi::connect_mut(|c| {
        let ids = c
            .select(
                "SELECT pg_catalog.array_agg(h.id) FROM ecom.heads h
                  WHERE h.tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text AND NOT h.active AND NOT h.ever_active
                    AND h.hyper OPERATOR(pg_catalog.->>) 'kind'::pg_catalog.text OPERATOR(pg_catalog.=) 'learn'::pg_catalog.text
                    AND (h.parent_version OPERATOR(pg_catalog.=) $2::pg_catalog.int4
                         OR (h.parent_version IS NULL AND $2::pg_catalog.int4 IS NULL))
                    AND NOT EXISTS (SELECT 1 FROM ecom.requests r WHERE r.head_id OPERATOR(pg_catalog.=) h.id
                                       AND r.tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text)",
                Some(1),
                &[tenant.into(), parent.into()],
            )?
            .first()
            .get::<Vec<i64>>(1)?;
        let Some(ids) = ids else {
            return Ok(Vec::new());
        };
        let t = c.update(
            "DELETE FROM ecom.heads WHERE id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])
                AND NOT active AND NOT ever_active RETURNING version",
            None,
            &[ids.into()],
        )?;
        let mut out = Vec::new();
        for r in t {
            out.extend(r.get::<i32>(1)?);
        }
        out.sort_unstable();
        Ok::<_, pgrx::spi::Error>(out)
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot write ecom.heads: {e}")).raise())
}

fn concurrent_write(tenant: Option<&str>) -> ! {
    PgError::new(
        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
        format!(
            "could not serialize access to the heads of {} (changed by a concurrent transaction)",
            crate::pg::errors::owner_name(tenant)
        ),
    )
    .hint("Retry the transaction.")
    .raise()
}

/// `lock_tenant` for a function that reads the tenant's loop before it
/// writes (ecom_learn): at REPEATABLE READ or SERIALIZABLE its snapshot was
/// taken before the wait, so what it waited for (feedback, another learn)
/// is invisible to it; then, as PostgreSQL does for rows, a serialization
/// failure to retry rather than a learn that misses a label.
pub fn lock_tenant_to_read(tenant: &str) {
    let key = format!("pg_ecom:{tenant}");
    let got = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended($1::pg_catalog.text, 0::pg_catalog.int8))",
        &[key.into()],
    )
    .unwrap_or_else(|e| PgError::internal(format!("cannot lock tenant: {e}")).raise())
    .unwrap_or(false);
    take_xid();
    if got {
        return;
    }
    lock_tenant(Some(tenant));
    // SAFETY: reads a backend-local global.
    let snapshot_per_transaction =
        unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 };
    if snapshot_per_transaction {
        PgError::new(PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE, format!(
                "could not serialize access to the loop of {} (feedback or learning committed while ecom_learn waited)",
                crate::pg::errors::tenant_name(tenant)
            )).hint("Retry the transaction, or run ecom_learn at READ COMMITTED.").raise();
    }
}

/// Gives the transaction its xid now (it writes anyway). Until it has
/// one, pgrx runs every statement read-only, and PostgreSQL runs a
/// read-only statement with the calling statement's snapshot: reads after
/// waiting for a lock would not see what the holder committed meanwhile.
pub fn take_xid() {
    // SAFETY: assigns this backend's transaction an xid (an ERROR in a
    // read-only transaction, which every caller has refused before).
    unsafe {
        pg_sys::GetCurrentTransactionId();
    }
}

/// Serialises writers of one tenant until the end of the transaction.
pub fn lock_tenant(tenant: Option<&str>) {
    let key = format!("pg_ecom:{}", tenant.unwrap_or("\u{0}global"));
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1::pg_catalog.text, 0::pg_catalog.int8))",
        &[key.into()],
    )
    .unwrap_or_else(|e| PgError::internal(format!("cannot lock tenant: {e}")).raise());
}

pub fn rollback(tenant: Option<&str>, version: i32) -> bool {
    lock_tenant(tenant);
    let same = same_tenant("$1::pg_catalog.text");
    let exists = Spi::connect(|c| {
        c.select(
            &format!(
                "SELECT 1 FROM ecom.heads WHERE {same} AND version OPERATOR(pg_catalog.=) $2::pg_catalog.int4"
            ),
            Some(1),
            &[tenant.into(), version.into()],
        )
        .map(|t| !t.is_empty())
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read ecom.heads: {e}")).raise());
    if !exists {
        return false;
    }
    // two statements: the unique index on active heads is checked per row.
    // The second finds no row to activate when a concurrent transaction
    // (committed after our snapshot, at REPEATABLE READ) deleted it.
    let mut activated = 0;
    for sql in [
        format!("UPDATE ecom.heads SET active = false WHERE {same} AND active AND version OPERATOR(pg_catalog.<>) $2::pg_catalog.int4"),
        format!("UPDATE ecom.heads SET active = true, ever_active = true WHERE {same} AND version OPERATOR(pg_catalog.=) $2::pg_catalog.int4"),
    ] {
        activated = Spi::connect_mut(|c| {
            c.update(&sql, None, &[tenant.into(), version.into()])
                .map(|t| t.len())
        })
        .unwrap_or_else(|e| PgError::internal(format!("cannot write ecom.heads: {e}")).raise());
    }
    if activated == 0 {
        concurrent_write(tenant);
    }
    true
}

/// Deletes every version of `tenant`, and any mention of its name in the
/// metrics of other heads (global heads made by release 0.1.0 listed the
/// tenants they were trained and validated on).
pub fn forget(tenant: &str) -> i64 {
    lock_tenant(Some(tenant));
    Spi::connect_mut(|c| {
        let n = c
            .update(
                "WITH d AS (DELETE FROM ecom.heads WHERE tenant OPERATOR(pg_catalog.=) $1::pg_catalog.text RETURNING 1)
                 SELECT pg_catalog.count(*) FROM d",
                None,
                &[tenant.into()],
            )?
            .first()
            .get::<i64>(1)?
            .unwrap_or(0);
        // Only when such lists exist (heads of 0.1.0 restored after the
        // update script ran): an UPDATE would need UPDATE privilege on every
        // forget, and at SERIALIZABLE read the whole table.
        let lists = "pg_catalog.jsonb_typeof(metrics OPERATOR(pg_catalog.->) 'train_tenants'::pg_catalog.text) OPERATOR(pg_catalog.=) 'array'::pg_catalog.text
                  OR pg_catalog.jsonb_typeof(metrics OPERATOR(pg_catalog.->) 'val_tenants'::pg_catalog.text) OPERATOR(pg_catalog.=) 'array'::pg_catalog.text";
        let any = !c
            .select(
                &format!("SELECT 1 FROM ecom.heads WHERE tenant IS NULL AND ({lists}) LIMIT 1"),
                Some(1),
                &[],
            )?
            .is_empty();
        if any {
            c.update(
                &format!(
                    "UPDATE ecom.heads
                        SET metrics = metrics OPERATOR(pg_catalog.-) 'train_tenants'::pg_catalog.text
                                              OPERATOR(pg_catalog.-) 'val_tenants'::pg_catalog.text
                      WHERE tenant IS NULL AND ({lists})"
                ),
                None,
                &[],
            )?;
        }
        Ok::<_, pgrx::spi::Error>(n)
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot delete from ecom.heads: {e}")).raise())
}
