//! The SQL surface: thin `#[pg_extern]` wrappers. Each checks and converts
//! its arguments, calls one function of `pipeline` (or, for a single read
//! or write, of `store`/`encoder`) and wraps the result.
//!
//! May import every layer below; nothing imports `api`.
use crate::pg::errors::PgError;

mod adapt;
mod args;
mod embed;
mod evaluate;
mod explain;
mod feedback;
mod heads;
mod info;
mod interval;
mod items;
mod learn;
mod predict;
mod retrieve;
mod serve;
mod similarity;
mod tokenize;
mod vectorizer;
mod worker_stats;

/// A tenant argument that must name a tenant: NULL or '' is an ERROR.
pub(crate) fn tenant_arg(tenant: Option<&str>) -> &str {
    let t = tenant.unwrap_or_else(|| PgError::argument("tenant must not be NULL").raise());
    if t.is_empty() {
        PgError::argument("tenant must not be empty").raise();
    }
    tenant_or_global(Some(t));
    t
}

/// A tenant argument where NULL means the global head: any name given
/// must fit `MAX_TENANT_BYTES`.
pub(crate) fn tenant_or_global(tenant: Option<&str>) -> Option<&str> {
    use crate::pg::errors::MAX_TENANT_BYTES;
    if let Some(t) = tenant {
        if t.len() > MAX_TENANT_BYTES {
            PgError::argument(format!(
                "tenant names are at most {MAX_TENANT_BYTES} bytes; {} is longer",
                crate::pg::errors::tenant_name(t)
            ))
            .raise();
        }
    }
    tenant
}
