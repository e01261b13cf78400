//! What followed an impression: ecom_feedback, one label or a relation.

use pgrx::prelude::*;

use super::predict::behaviour as behaviour_index;
use super::serve::required;
use crate::store::heads;
use crate::store::versions;

/// Records what followed impression `impression_id`: `behaviour` happened
/// (label true) or not. Idempotent per (impression, behaviour): returns
/// false when it was already recorded so. With pg_ecom.feedback_implies
/// (on by default) a positive label also records the behaviours before it
/// in the funnel (browse < click < cart < purchase) as positive, never
/// replacing a label given explicitly.
#[pg_extern(volatile, parallel_unsafe, cost = 1000)]
fn ecom_feedback(
    impression_id: Option<i64>,
    behaviour: Option<&str>,
    label: default!(Option<bool>, true),
) -> bool {
    record_one(None, impression_id, behaviour, label)
}

/// ecom_feedback with the impression's tenant: the same as the form
/// without it, but an impression of another tenant is not found. The
/// tenant is what Citus routes the call by, to the node holding the
/// impression (ecom_distribute, docs/scaling.md). It comes last and
/// every argument is required: a call of three untyped parameters (as
/// drivers send them) must still resolve to the form above.
#[pg_extern(name = "ecom_feedback", volatile, parallel_unsafe, cost = 1000)]
fn ecom_feedback_of_tenant(
    impression_id: Option<i64>,
    behaviour: Option<&str>,
    label: Option<bool>,
    tenant: Option<&str>,
) -> bool {
    record_one(Some(tenant), impression_id, behaviour, label)
}

/// Both one-label forms; `tenant` is Some for the form that takes one.
fn record_one(
    tenant: Option<Option<&str>>,
    impression_id: Option<i64>,
    behaviour: Option<&str>,
    label: Option<bool>,
) -> bool {
    versions::require_writable_to("ecom_feedback", "feedback");
    heads::require_current_schema();
    let id = required(impression_id, "impression_id");
    let b = behaviour_index(required(behaviour, "behaviour"));
    let label = required(label, "label");
    let tenant = tenant.map(|t| required(t, "tenant"));
    crate::store::feedback::record(
        id,
        tenant,
        b,
        label,
        crate::pg::settings::feedback_implies(),
    )
}

/// The bulk form: every row of `feedback` (impression_id bigint, behaviour
/// text, label boolean), all or nothing. Returns the rows written or
/// changed in ecom.feedback (implied ones included).
///
/// The argument arrives as a bare oid (SQL type regclass, declared below):
/// pgrx's PgRelation would open it before this function runs, and an oid
/// naming no relation (`ecom_feedback(42)`, which PostgreSQL resolves to
/// this form) would fail there with an internal error instead of ours.
#[pg_extern(
    name = "ecom_feedback",
    sql = r#"
CREATE FUNCTION "ecom_feedback"(
	"feedback" regclass
) RETURNS bigint
VOLATILE PARALLEL UNSAFE COST 100000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_feedback_relation_wrapper';
"#
)]
fn ecom_feedback_relation(feedback: Option<pg_sys::Oid>) -> i64 {
    versions::require_writable_to("ecom_feedback", "feedback");
    heads::require_current_schema();
    let rel = required(feedback, "feedback relation");
    crate::store::feedback::record_relation(rel, crate::pg::settings::feedback_implies())
}
