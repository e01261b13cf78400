//! A tenant's versions: ecom_rollback and ecom_forget.

use crate::pg::errors::PgError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use crate::store::versions;

/// Makes `version` the active head of `tenant` (NULL = the global head).
#[pg_extern(volatile, parallel_unsafe, cost = 1000)]
fn ecom_rollback(tenant: Option<&str>, version: Option<i32>) -> JsonB {
    versions::require_writable("ecom_rollback");
    let tenant = super::tenant_or_global(tenant);
    let version = version.unwrap_or_else(|| PgError::argument("version must not be NULL").raise());
    if !versions::rollback(tenant, version) {
        PgError::argument(format!(
            "{} has no version {version}",
            crate::pg::errors::owner_name(tenant)
        ))
        .raise();
    }
    JsonB(json!({"tenant": tenant, "active_version": version}))
}

/// Deletes every head of `tenant` (all versions) and its requests,
/// impressions and feedback; says how many of each it deleted.
#[pg_extern(volatile, parallel_unsafe, cost = 1000)]
fn ecom_forget(tenant: Option<&str>) -> JsonB {
    versions::require_writable("ecom_forget");
    let tenant = tenant.unwrap_or_else(|| {
        PgError::argument("tenant must not be NULL (ecom_forget never deletes the global head)")
            .raise()
    });
    let tenant = super::tenant_arg(Some(tenant));
    JsonB(crate::pipeline::forget::forget(tenant))
}
