//! Whether this database's pg_ecom SQL objects are as new as the library:
//! the guard every entry point that reads or writes heads passes first.
//! It names a column of `ecom.heads`, so it lives with the tables rather
//! than in `pg` (which owns no tables). And whether `ecom_distribute` has
//! spread a table over Citus workers, which changes what SQL Citus plans.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::pg::errors::PgError;

/// A library newer than the SQL objects (new binaries installed, ALTER
/// EXTENSION … UPDATE not run yet in this database) would fail on columns
/// that older releases lack (taste_basis is 0.6.0's), or on keys they
/// lack (0.14.0's feedback key): say what to do instead. Checked in the catalogs until
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
        // 0.14.0 replaced UNIQUE (id, tenant) by the primary key
        pg_sys::get_attnum(rel, c"taste_basis".as_ptr()) != pg_sys::InvalidAttrNumber as i16
            && pg_sys::get_relname_relid(c"requests_id_tenant_key".as_ptr(), nsp)
                == pg_sys::InvalidOid
    };
    if !has_id {
        PgError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "the extension's SQL objects in this database are older than the pg_ecom library ({})",
                env!("CARGO_PKG_VERSION")
            ),
        )
        .hint("Run ALTER EXTENSION pg_ecom UPDATE in this database.")
        .raise();
    }
    CURRENT.store(true, Ordering::Relaxed);
}

/// Whether Citus distributes `table` (a schema-qualified name of pg_ecom's,
/// e.g. "ecom.impressions"): false without Citus.
pub fn distributed(table: &str) -> bool {
    Spi::connect(|c| {
        let citus = c
            .select(
                "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
                Some(1),
                &[],
            )?
            .first()
            .get::<bool>(1)?
            .unwrap_or(false);
        if !citus {
            return Ok::<_, pgrx::spi::Error>(false);
        }
        c.select(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                             WHERE logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.regclass)",
            Some(1),
            &[table.into()],
        )?
        .first()
        .get::<bool>(1)
        .map(|d| d.unwrap_or(false))
    })
    .unwrap_or_else(|e| PgError::internal(format!("cannot read Citus' metadata: {e}")).raise())
}
