//! The loop's learning: ecom_learn.

use crate::pg::errors::PgError;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;

use super::tenant_arg;
use crate::pipeline::learn::{self, Activate};
use crate::store::heads;
use crate::store::versions;

/// Adapts `tenant`'s head from its impressions and their feedback: from
/// the active version, with the events logged after it (a Bayesian update:
/// its posterior is the prior), or with `since` from the global head over
/// the impressions since then. Stores a new version; `activate`:
/// 'if_better' (when its off-policy estimate on held-out requests beats
/// the active head's), 'always' or 'never'. Reads at most
/// pg_ecom.learn_max_impressions of the most recent impressions older than
/// pg_ecom.feedback_window. Nothing to learn from: no new version.
#[pg_extern(volatile, parallel_unsafe, cost = 1000000)]
fn ecom_learn(
    tenant: Option<&str>,
    since: default!(Option<TimestampWithTimeZone>, "NULL"),
    activate: default!(Option<&str>, "'if_better'"),
) -> JsonB {
    versions::require_writable("ecom_learn");
    heads::require_current_schema();
    let started = std::time::Instant::now();
    let tenant = tenant_arg(tenant);
    let activate = Activate::parse(activate.unwrap_or("if_better"))
        .unwrap_or_else(|e| PgError::argument(e).raise());
    JsonB(learn::learn(tenant, since, activate, started))
}
