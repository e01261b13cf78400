//! ecom_meta_train, stage by stage: the source relation's events → one
//! task per tenant → meta-training → a new active global version.

use crate::pg::errors::PgError;
use std::collections::BTreeMap;
use std::time::Instant;

use pgrx::pg_sys;
use serde_json::json;

use crate::pipeline::featurise::{elapsed_ms, encoder_identity, featurise, training_budget};
use crate::store::heads;
use crate::store::relation::{self, Events};
use crate::store::versions;
use pg_ecom_core::head::Example;
use pg_ecom_core::train::{self, MetaConfig};

/// Meta-trains, stores and activates; returns ecom_meta_train's result.
pub fn meta_train(source: pg_sys::Oid, cfg: &MetaConfig, started: Instant) -> serde_json::Value {
    let _progress = crate::pg::progress::call("ecom_meta_train");
    let events = relation::read(source, "source", true, &training_budget());
    if events.rows.is_empty() {
        PgError::argument(format!(
            "source relation {} has no usable rows ({} skipped for NULLs)",
            events.name, events.skipped
        ))
        .raise();
    }
    let tasks = tasks(&events);
    let dims = crate::encoder::embed::dims();
    crate::pg::progress::stage(&format!("training on {} tenants", tasks.len()), "steps", 0);
    let (head, report) = train::meta_train(&tasks, dims, events.n_features, cfg, || {
        pgrx::check_for_interrupts!();
        crate::pg::progress::tick();
    });
    let parent = heads::active_head(None, true).map(|h| h.version);
    let hyper = json!({
        "kind": "meta_train", "config": cfg, "prior": report.prior,
        "source": events.name, "rows": events.rows.len(), "skipped": events.skipped,
        "tenants": tasks.len(), "time_ordered": events.ordered, "encoder": encoder_identity(),
    });
    // counts, never names: every tenant can read the global head
    // (docs/security.md), so it must not say which other tenants trained it
    let metrics = json!({
        "train_loss": report.train_loss, "val_loss_before": report.val_loss_before, "val_loss_after": report.val_loss_after,
        "train_tenants": report.train_tenants.len(), "val_tenants": report.val_tenants.len(), "n_train": report.n_train,
        "items": report.items, "taste": report.taste,
    });
    let version = versions::insert_version(None, parent, &head, hyper, metrics);
    json!({
        "version": version, "n": events.rows.len(), "skipped": events.skipped, "tenants": tasks.len(),
        "train_loss": report.train_loss, "val_loss_before": report.val_loss_before, "val_loss_after": report.val_loss_after,
        "val_tenants": report.val_tenants, "prior": report.prior, "items": report.items, "taste": report.taste,
        "ms": elapsed_ms(started),
    })
}

/// One task per tenant, in tenant order, examples in relation order.
fn tasks(events: &Events) -> Vec<train::Task> {
    let exs = featurise(&events.rows);
    let mut by_tenant: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for (e, x) in events.rows.iter().zip(exs) {
        by_tenant
            .entry(e.tenant.clone().unwrap_or_default())
            .or_default()
            .push(x);
    }
    by_tenant
        .into_iter()
        .map(|(tenant, examples)| train::Task {
            tenant,
            examples,
            ordered: events.ordered,
        })
        .collect()
}
