//! Off-policy evaluation: ecom_evaluate.

use crate::pg::errors::PgError;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::JsonB;

use super::predict::behaviour;
use super::tenant_arg;
use crate::store::heads;

/// What `version` of `tenant`'s heads (NULL: the head serving the tenant
/// now) would earn per impression, ranking greedily over the candidates
/// of the tenant's logged requests, rewarded by `behaviour`: IPS, SNIPS
/// and DR estimates with 95% intervals and the effective sample size,
/// next to the logged policy's own reward per impression.
#[pg_extern(stable, parallel_safe, cost = 1000000)]
fn ecom_evaluate(
    tenant: Option<&str>,
    version: Option<i32>,
    behaviour: default!(Option<&str>, "'click'"),
    since: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> JsonB {
    heads::require_current_schema();
    let tenant = tenant_arg(tenant);
    let b = self::behaviour(
        behaviour.unwrap_or_else(|| PgError::argument("behaviour must not be NULL").raise()),
    );
    JsonB(crate::pipeline::evaluate::evaluate_version(
        tenant, version, b, since,
    ))
}
