//! Training heads: ecom_adapt (one tenant) and ecom_meta_train (the
//! global head, across tenants).

use crate::pg::errors::PgError;
use std::time::Instant;

use pgrx::prelude::*;
use pgrx::JsonB;

use super::args::{positive, positive_int, steps_in_range, MAX_L2};
use crate::pipeline::adapt::{self, AdaptRequest};
use crate::pipeline::meta_train;
use crate::store::heads;
use crate::store::versions;
use pg_ecom_core::train::{MetaConfig, Method};

/// Adapts `tenant`'s head to the labelled events in `support` (columns
/// context text, item text, behaviour text, label boolean [, features
/// real[]]), stores and activates a new version. `start`: 'global' (the
/// global head), 'active' (the tenant's active head, else global) or
/// 'scratch'. `method`: 'meta' (the safeguarded adaptation) or 'full'
/// (plain gradient descent on every weight, for comparison). `lr` NULL =
/// 1.0 for 'meta' (a full Newton step) and 0.1 for 'full'.
///
/// `support` arrives as a bare oid (SQL type regclass, declared below):
/// pgrx's PgRelation would open it before this function runs, and an oid
/// naming no relation (`ecom_adapt('shop', 42)`) would fail there with an
/// internal error instead of ours. The declaration is the one pgrx
/// generated for PgRelation, so the catalog is unchanged.
#[pg_extern(
    name = "ecom_adapt",
    sql = r#"
CREATE FUNCTION "ecom_adapt"(
	"tenant" TEXT,
	"support" regclass,
	"steps" INT DEFAULT 5,
	"lr" double precision DEFAULT NULL,
	"start" TEXT DEFAULT 'global',
	"method" TEXT DEFAULT 'meta',
	"seed" bigint DEFAULT 42
) RETURNS jsonb
VOLATILE PARALLEL UNSAFE COST 1000000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_adapt_wrapper';
"#
)]
#[allow(clippy::too_many_arguments)]
fn ecom_adapt(
    tenant: Option<&str>,
    support: Option<pg_sys::Oid>,
    steps: default!(Option<i32>, 5),
    lr: default!(Option<f64>, "NULL"),
    start: default!(Option<&str>, "'global'"),
    method: default!(Option<&str>, "'meta'"),
    seed: default!(Option<i64>, 42),
) -> JsonB {
    versions::require_writable("ecom_adapt");
    heads::require_current_schema();
    let started = Instant::now();
    let tenant = tenant.unwrap_or_else(|| {
        PgError::argument("tenant must not be NULL (the global head is learned by ecom_meta_train)")
            .raise()
    });
    let tenant = super::tenant_arg(Some(tenant));
    let support =
        support.unwrap_or_else(|| PgError::argument("support relation must not be NULL").raise());
    let steps = steps_in_range("steps", steps.unwrap_or(5), 1);
    let method =
        Method::parse(method.unwrap_or("meta")).unwrap_or_else(|e| PgError::argument(e).raise());
    let lr = match lr {
        None => {
            if method == Method::Meta {
                1.0
            } else {
                0.1
            }
        }
        Some(v) => positive("lr", v),
    } as f32;
    JsonB(adapt::adapt(
        &AdaptRequest {
            tenant,
            support,
            steps,
            lr,
            start: start.unwrap_or("global"),
            method,
            // kept as given: the stored value can be passed back as a bigint
            seed: seed.unwrap_or(42),
        },
        started,
    ))
}

/// Meta-learns the global head across the tenants of `source` (columns
/// tenant text, context text, item text, behaviour text, label boolean
/// [, features real[]]); stores and activates it as a new global version.
/// `inner_steps` = 0 trains one pooled head with no meta-learning.
/// `source` is a bare oid of SQL type regclass, as `support` of ecom_adapt.
#[pg_extern(
    name = "ecom_meta_train",
    sql = r#"
CREATE FUNCTION "ecom_meta_train"(
	"source" regclass,
	"inner_steps" INT DEFAULT 5,
	"meta_steps" INT DEFAULT 200,
	"epochs" INT DEFAULT 3,
	"lr" double precision DEFAULT 0.01,
	"shots" INT DEFAULT 16,
	"val_fraction" double precision DEFAULT 0.2,
	"seed" bigint DEFAULT 42,
	"l2" double precision DEFAULT 0.001
) RETURNS jsonb
VOLATILE PARALLEL UNSAFE COST 10000000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_meta_train_wrapper';
"#
)]
#[allow(clippy::too_many_arguments)]
fn ecom_meta_train(
    source: Option<pg_sys::Oid>,
    inner_steps: default!(Option<i32>, 5),
    meta_steps: default!(Option<i32>, 200),
    epochs: default!(Option<i32>, 3),
    lr: default!(Option<f64>, 0.01),
    shots: default!(Option<i32>, 16),
    val_fraction: default!(Option<f64>, 0.2),
    seed: default!(Option<i64>, 42),
    l2: default!(Option<f64>, 0.001),
) -> JsonB {
    versions::require_writable("ecom_meta_train");
    heads::require_current_schema();
    let started = Instant::now();
    let source =
        source.unwrap_or_else(|| PgError::argument("source relation must not be NULL").raise());
    let cfg = MetaConfig {
        inner_steps: steps_in_range("inner_steps", inner_steps.unwrap_or(5), 0),
        meta_steps: positive_int("meta_steps", meta_steps.unwrap_or(200)),
        epochs: positive_int("epochs", epochs.unwrap_or(3)),
        lr: positive("lr", lr.unwrap_or(0.01)) as f32,
        shots: positive_int("shots", shots.unwrap_or(16)),
        val_fraction: {
            let v = val_fraction.unwrap_or(0.2);
            if !(0.0..1.0).contains(&v) {
                PgError::argument(format!("val_fraction must be in [0, 1), got {v}")).raise();
            }
            v as f32
        },
        seed: seed.unwrap_or(42),
        l2: {
            let v = l2.unwrap_or(0.001);
            // beyond f32's range it overflowed into a "diverged" hint about lr
            if !v.is_finite() || !(0.0..=MAX_L2).contains(&v) {
                PgError::argument(format!(
                    "l2 must be zero or a positive number no larger than {MAX_L2}, got {}",
                    if v.abs() >= 1e6 {
                        format!("{v:e}")
                    } else {
                        format!("{v}")
                    }
                ))
                .raise();
            }
            v as f32
        },
        max_items: crate::pg::settings::max_item_effects(),
        ..MetaConfig::default()
    };
    JsonB(meta_train::meta_train(source, &cfg, started))
}
