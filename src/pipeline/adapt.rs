//! ecom_adapt, stage by stage: the starting head → the support relation's
//! events → examples → adaptation → a new active version.

use crate::pg::errors::PgError;
use std::time::Instant;

use pgrx::pg_sys;
use serde_json::json;

use crate::pipeline::featurise::{elapsed_ms, encoder_identity, featurise, training_budget};
use crate::store::heads::{self, StoredHead};
use crate::store::relation::{self, Events};
use crate::store::versions;
use pg_ecom_core::head::Head;
use pg_ecom_core::item_prior;
use pg_ecom_core::prior::Prior;
use pg_ecom_core::train::{self, AdaptConfig, AdaptReport, Method};

/// ecom_adapt's arguments, checked.
pub struct AdaptRequest<'a> {
    pub tenant: &'a str,
    pub support: pg_sys::Oid,
    pub steps: usize,
    pub lr: f32,
    pub start: &'a str,
    pub method: Method,
    pub seed: i64,
}

/// Adapts, stores and activates; returns ecom_adapt's result.
pub fn adapt(req: &AdaptRequest, started: Instant) -> serde_json::Value {
    let (parent, base, prior) = starting_head(req.tenant, req.start);
    let events = relation::read(req.support, "support", false, &training_budget());
    if events.rows.is_empty() {
        PgError::argument(format!(
            "support relation {} has no usable rows ({} skipped for NULLs)",
            events.name, events.skipped
        ))
        .raise();
    }
    let head0 = first_head(base.as_deref(), &events);
    let exs = featurise(&events.rows);
    let cfg = AdaptConfig {
        steps: req.steps,
        lr: req.lr,
        method: req.method,
        prior,
        seed: req.seed,
        posterior: None,
        max_items: crate::pg::settings::max_item_effects(),
        directions: crate::pg::settings::posterior_directions(),
        item_prior_from_events: crate::pg::settings::item_prior_from_events(),
        bias_prior_from_events: crate::pg::settings::bias_prior_from_events(),
    };
    let (head, report) = train::adapt_with(&head0, &exs, &cfg, &mut || {
        pgrx::check_for_interrupts!();
    });
    let hyper = json!({
        "kind": "adapt", "start": req.start, "parent_tenant": base.as_ref().and_then(|h| h.tenant.clone()),
        "parent_version_of_start": base.as_ref().map(|h| h.version),
        "method": req.method, "steps": req.steps, "lr": req.lr, "seed": req.seed, "prior": item_prior::recorded(report.prior, &head.items),
        "source": events.name, "rows": events.rows.len(), "skipped": events.skipped,
        "encoder": encoder_identity(), "items_base": base.as_ref().and_then(|h| h.items_base()),
        "taste_base": base.as_ref().and_then(|h| h.taste_base()),
        "item_choice": report.item_choice, "bias_choice": report.bias_choice,
    });
    let moved = moved(&head0, &head);
    let version = record(req.tenant, parent, &head, &report, hyper, &moved);
    json!({
        "tenant": req.tenant, "version": version, "n": report.n, "skipped": events.skipped,
        "loss_before": report.loss_before, "loss_after": report.loss_after, "steps_used": report.steps_used,
        "moved": moved, "ms": elapsed_ms(started),
    })
}

/// (the tenant's parent version, the head adaptation starts from, its
/// prior) for `start`.
fn starting_head(
    tenant: &str,
    start: &str,
) -> (Option<i32>, Option<std::sync::Arc<StoredHead>>, Prior) {
    match start {
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
        other => PgError::argument(format!(
            "unknown start {}; valid starts are: global, active, scratch",
            pg_ecom_core::quote::quoted(other)
        ))
        .raise(),
    }
}

/// The weights adaptation starts from: the starting head's (which must
/// fit the events and this session's encoder), or a new head.
fn first_head(base: Option<&StoredHead>, events: &Events) -> Head {
    match base {
        Some(h) => {
            if h.head.k != events.n_features {
                PgError::argument(format!(
                    "support relation {} has {} side feature(s) but the starting head (version {}) was trained with {}",
                    events.name, events.n_features, h.version, h.head.k
                )).raise();
            }
            heads::check_encoder(h, crate::encoder::embed::dims());
            (*h.head).clone()
        }
        None => Head::new(crate::encoder::embed::dims(), events.n_features),
    }
}

/// How far each group moved from the starting head (method meta moves
/// gain, side weights, bias and taste; full moves the text weights too).
fn moved(from: &Head, to: &Head) -> serde_json::Value {
    let moved = from.moved(to);
    let r4 = |x: f64| (x * 1e4).round() / 1e4;
    json!({"text": r4(moved.text), "gain": r4(moved.gain), "side": r4(moved.side), "bias": r4(moved.bias), "taste": r4(moved.taste)})
}

fn record(
    tenant: &str,
    parent: Option<i32>,
    head: &Head,
    report: &AdaptReport,
    hyper: serde_json::Value,
    moved: &serde_json::Value,
) -> i32 {
    let metrics = json!({"n": report.n, "loss_before": report.loss_before, "loss_after": report.loss_after, "steps_used": report.steps_used, "moved": moved});
    versions::insert_version_with(
        Some(tenant),
        parent,
        head,
        Some(&report.posterior),
        hyper,
        metrics,
        true,
    )
}
