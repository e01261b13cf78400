//! Thin `#[pg_extern]` wrappers: argument checks and type conversion only.

mod embed;
mod evaluate;
mod explain;
mod info;
mod learn;
mod predict;
mod serve;
mod similarity;
mod tokenize;
mod worker_stats;

use pgrx::PgSqlErrorCode;

/// ERROR for a bad argument value (SQLSTATE 22023).
pub(crate) fn invalid_argument(message: String) -> ! {
    crate::errors::raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message,
        None,
    )
}

/// A tenant argument that must name a tenant: NULL or '' is an ERROR.
pub(crate) fn tenant_arg(tenant: Option<&str>) -> &str {
    let t = tenant.unwrap_or_else(|| invalid_argument("tenant must not be NULL".into()));
    if t.is_empty() {
        invalid_argument("tenant must not be empty".into());
    }
    t
}
