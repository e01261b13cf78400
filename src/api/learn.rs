//! Learning: ecom_adapt, ecom_meta_train, ecom_rollback, ecom_forget.

use std::collections::BTreeMap;
use std::time::Instant;

use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation};
use serde_json::json;

use super::invalid_argument;
use crate::pipeline::learn::{elapsed_ms, encoder_identity, featurise, training_budget};
use crate::store::heads;
use crate::store::relation;
use crate::store::versions;
use pg_ecom_core::head::{Example, Head};
use pg_ecom_core::prior::Prior;
use pg_ecom_core::train::{self, AdaptConfig, MetaConfig, Method};

/// Learning rates above this only make training diverge.
const MAX_LR: f64 = 100.0;
/// Step counts above this are a typo (the 4-fold step selection of
/// ecom_adapt keeps one loss per step and fold), not a wish.
const MAX_STEPS: i32 = 10_000;

fn positive(name: &str, v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 || v > MAX_LR {
        invalid_argument(format!(
            "{name} must be a positive number no larger than {MAX_LR}, got {v}"
        ));
    }
    v
}

fn positive_int(name: &str, v: i32) -> usize {
    if v <= 0 {
        invalid_argument(format!("{name} must be positive, got {v}"));
    }
    v as usize
}

fn steps_in_range(name: &str, v: i32, min: i32) -> usize {
    if !(min..=MAX_STEPS).contains(&v) {
        invalid_argument(format!(
            "{name} must be between {min} and {MAX_STEPS}, got {v}"
        ));
    }
    v as usize
}

/// Adapts `tenant`'s head to the labelled events in `support` (columns
/// context text, item text, behaviour text, label boolean [, features
/// real[]]), stores and activates a new version. `start`: 'global' (the
/// global head), 'active' (the tenant's active head, else global) or
/// 'scratch'. `method`: 'meta' (the safeguarded adaptation) or 'full'
/// (plain gradient descent on every weight, for comparison). `lr` NULL =
/// 1.0 for 'meta' (a full Newton step) and 0.1 for 'full'.
#[pg_extern(volatile, parallel_unsafe, cost = 1000000)]
#[allow(clippy::too_many_arguments)]
fn ecom_adapt(
    tenant: Option<&str>,
    support: Option<PgRelation>,
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
        invalid_argument(
            "tenant must not be NULL (the global head is learned by ecom_meta_train)".into(),
        )
    });
    let tenant = super::tenant_arg(Some(tenant));
    let support = support
        .unwrap_or_else(|| invalid_argument("support relation must not be NULL".into()))
        .oid();
    let steps = steps_in_range("steps", steps.unwrap_or(5), 1);
    let method = Method::parse(method.unwrap_or("meta")).unwrap_or_else(|e| invalid_argument(e));
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
    let start = start.unwrap_or("global");
    // kept as given: the stored value can be passed back as a bigint
    let seed = seed.unwrap_or(42);

    let (parent, base, prior) = match start {
        "global" | "active" => {
            let h = if start == "global" {
                heads::active_head(None, true)
            } else {
                heads::active_head(Some(tenant), false)
            };
            let h = h.unwrap_or_else(|| heads::serving_head(None));
            // a head with no (readable) prior adapts as 0.1.x did: no taste
            let prior = heads::prior_of(&h.hyper);
            (h.tenant.is_some().then_some(h.version), Some(h), prior)
        }
        "scratch" => (None, None, Prior::default()),
        other => invalid_argument(format!(
            "unknown start \"{other}\"; valid starts are: global, active, scratch"
        )),
    };
    let events = relation::read(support, "support", false, &training_budget());
    if events.rows.is_empty() {
        invalid_argument(format!(
            "support relation {} has no usable rows ({} skipped for NULLs)",
            events.name, events.skipped
        ));
    }
    let head0 = match &base {
        Some(h) => {
            if h.head.k != events.n_features {
                invalid_argument(format!(
                    "support relation {} has {} side feature(s) but the starting head (version {}) was trained with {}",
                    events.name, events.n_features, h.version, h.head.k
                ));
            }
            heads::check_encoder(h, crate::encoder::embed::dims());
            (*h.head).clone()
        }
        None => Head::new(crate::encoder::embed::dims(), events.n_features),
    };
    let exs = featurise(&events.rows);
    let cfg = AdaptConfig {
        steps,
        lr,
        method,
        prior,
        seed,
        posterior: None,
    };
    let (head, report) = train::adapt_with(&head0, &exs, &cfg, &mut || {
        pgrx::check_for_interrupts!();
    });
    let hyper = json!({
        "kind": "adapt", "start": start, "parent_tenant": base.as_ref().and_then(|h| h.tenant.clone()),
        "parent_version_of_start": base.as_ref().map(|h| h.version),
        "method": method, "steps": steps, "lr": lr, "seed": seed, "prior": prior,
        "source": events.name, "rows": events.rows.len(), "skipped": events.skipped,
        "encoder": encoder_identity(),
    });
    // how far each group moved from the starting head (method meta moves
    // gain, side weights, bias and taste; full moves the text weights too)
    let moved = head0.moved(&head);
    let r4 = |x: f64| (x * 1e4).round() / 1e4;
    let moved = json!({"text": r4(moved.text), "gain": r4(moved.gain), "side": r4(moved.side), "bias": r4(moved.bias), "taste": r4(moved.taste)});
    let metrics = json!({"n": report.n, "loss_before": report.loss_before, "loss_after": report.loss_after, "steps_used": report.steps_used, "moved": moved});
    let version = versions::insert_version_with(
        Some(tenant),
        parent,
        &head,
        Some(&report.posterior),
        hyper,
        metrics,
        true,
    );
    JsonB(json!({
        "tenant": tenant, "version": version, "n": report.n, "skipped": events.skipped,
        "loss_before": report.loss_before, "loss_after": report.loss_after, "steps_used": report.steps_used,
        "moved": moved, "ms": elapsed_ms(started),
    }))
}

/// Meta-learns the global head across the tenants of `source` (columns
/// tenant text, context text, item text, behaviour text, label boolean
/// [, features real[]]); stores and activates it as a new global version.
/// `inner_steps` = 0 trains one pooled head with no meta-learning.
#[pg_extern(volatile, parallel_unsafe, cost = 10000000)]
#[allow(clippy::too_many_arguments)]
fn ecom_meta_train(
    source: Option<PgRelation>,
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
    let source = source
        .unwrap_or_else(|| invalid_argument("source relation must not be NULL".into()))
        .oid();
    let cfg = MetaConfig {
        inner_steps: steps_in_range("inner_steps", inner_steps.unwrap_or(5), 0),
        meta_steps: positive_int("meta_steps", meta_steps.unwrap_or(200)),
        epochs: positive_int("epochs", epochs.unwrap_or(3)),
        lr: positive("lr", lr.unwrap_or(0.01)) as f32,
        shots: positive_int("shots", shots.unwrap_or(16)),
        val_fraction: {
            let v = val_fraction.unwrap_or(0.2);
            if !(0.0..1.0).contains(&v) {
                invalid_argument(format!("val_fraction must be in [0, 1), got {v}"));
            }
            v as f32
        },
        seed: seed.unwrap_or(42),
        l2: {
            let v = l2.unwrap_or(0.001);
            if !v.is_finite() || v < 0.0 {
                invalid_argument(format!("l2 must be zero or positive, got {v}"));
            }
            v as f32
        },
        ..MetaConfig::default()
    };
    let events = relation::read(source, "source", true, &training_budget());
    if events.rows.is_empty() {
        invalid_argument(format!(
            "source relation {} has no usable rows ({} skipped for NULLs)",
            events.name, events.skipped
        ));
    }
    let exs = featurise(&events.rows);
    let mut by_tenant: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for (e, x) in events.rows.iter().zip(exs) {
        by_tenant
            .entry(e.tenant.clone().unwrap_or_default())
            .or_default()
            .push(x);
    }
    let tasks: Vec<train::Task> = by_tenant
        .into_iter()
        .map(|(tenant, examples)| train::Task {
            tenant,
            examples,
            ordered: events.ordered,
        })
        .collect();
    let dims = crate::encoder::embed::dims();
    let (head, report) = train::meta_train(&tasks, dims, events.n_features, &cfg, || {
        pgrx::check_for_interrupts!();
    });
    let parent = heads::active_head(None, true).map(|h| h.version);
    let hyper = json!({
        "kind": "meta_train", "config": cfg, "prior": report.prior,
        "source": events.name, "rows": events.rows.len(), "skipped": events.skipped,
        "tenants": tasks.len(), "time_ordered": events.ordered, "encoder": encoder_identity(),
    });
    // counts, never names: every tenant can read the global head (README,
    // tenant isolation), so it must not say which other tenants trained it
    let metrics = json!({
        "train_loss": report.train_loss, "val_loss_before": report.val_loss_before, "val_loss_after": report.val_loss_after,
        "train_tenants": report.train_tenants.len(), "val_tenants": report.val_tenants.len(), "n_train": report.n_train,
    });
    let version = versions::insert_version(None, parent, &head, hyper, metrics);
    JsonB(json!({
        "version": version, "n": events.rows.len(), "skipped": events.skipped, "tenants": tasks.len(),
        "train_loss": report.train_loss, "val_loss_before": report.val_loss_before, "val_loss_after": report.val_loss_after,
        "val_tenants": report.val_tenants, "prior": report.prior,
        "ms": elapsed_ms(started),
    }))
}

/// Makes `version` the active head of `tenant` (NULL = the global head).
#[pg_extern(volatile, parallel_unsafe, cost = 1000)]
fn ecom_rollback(tenant: Option<&str>, version: Option<i32>) -> JsonB {
    versions::require_writable("ecom_rollback");
    let tenant = super::tenant_or_global(tenant);
    let version = version.unwrap_or_else(|| invalid_argument("version must not be NULL".into()));
    if !versions::rollback(tenant, version) {
        invalid_argument(format!(
            "{} has no version {version}",
            tenant.map_or(
                "the global head".to_string(),
                crate::pg::errors::tenant_name
            )
        ));
    }
    JsonB(json!({"tenant": tenant, "active_version": version}))
}

/// Deletes every head of `tenant` (all versions) and its requests,
/// impressions and feedback; says how many of each it deleted.
#[pg_extern(volatile, parallel_unsafe, cost = 1000)]
fn ecom_forget(tenant: Option<&str>) -> JsonB {
    versions::require_writable("ecom_forget");
    let tenant = tenant.unwrap_or_else(|| {
        invalid_argument(
            "tenant must not be NULL (ecom_forget never deletes the global head)".into(),
        )
    });
    let tenant = super::tenant_arg(Some(tenant));
    // the loop's rows first: they name the heads' versions (under the
    // tenant's lock, so that no ecom_learn or ecom_feedback interleaves)
    versions::lock_tenant(Some(tenant));
    let loop_rows = crate::store::impressions::forget(tenant);
    let heads = versions::forget(tenant);
    JsonB(json!({
        "tenant": tenant, "heads": heads, "requests": loop_rows.requests,
        "impressions": loop_rows.impressions, "feedback": loop_rows.feedback,
    }))
}
