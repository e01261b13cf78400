//! Forgetting a tenant: its loop rows, then its heads, under its lock.

use serde_json::json;

use crate::store::{impressions, versions};

/// Deletes every head of `tenant` and its requests, impressions and
/// feedback; says how many of each.
pub fn forget(tenant: &str) -> serde_json::Value {
    // the loop's rows first: they name the heads' versions (under the
    // tenant's lock, so that no ecom_learn or ecom_feedback interleaves)
    versions::lock_tenant(Some(tenant));
    let loop_rows = impressions::forget(tenant);
    let heads = versions::forget(tenant);
    json!({
        "tenant": tenant, "heads": heads, "requests": loop_rows.requests,
        "impressions": loop_rows.impressions, "feedback": loop_rows.feedback,
    })
}
