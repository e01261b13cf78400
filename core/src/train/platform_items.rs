//! Meta-training's last phase: the platform's item effects, how strongly
//! they are shrunk (chosen on the validation tenants, fitted on the
//! others), and how far a tenant's own may move from them.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::head::Head;
use crate::items::{
    between_tenant_precision, fit_platform, head_spread_precision, ItemEffects, ItemEvent,
};
use crate::metrics::{auc, log_loss};
use crate::prior::FROZEN;

use super::config::Task;

/// What the phase found, returned to the caller of ecom_meta_train.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ItemsReport {
    /// items that kept an effect
    pub items: usize,
    /// λ, the platform effects' prior precision; None = no item effects
    pub precision: Option<f32>,
    /// λ_t, a tenant's own effects' prior precision; None = tenants keep
    /// the platform's
    pub tenant_precision: Option<f32>,
    /// the standard error of the spread 1/λ_t was measured as (None: too
    /// few items seen twice to measure): a spread within a standard error
    /// or two of 0 is mostly noise
    pub tenant_spread_se: Option<f32>,
    /// on the validation tenants, with effects fitted on the others:
    /// mean within-tenant AUC and log-loss without and with them
    pub val_auc_before: Option<f32>,
    pub val_auc_after: Option<f32>,
    pub val_loss_before: Option<f32>,
    pub val_loss_after: Option<f32>,
}

/// Judged: mean within-tenant AUC (tenants with both labels) and mean
/// log-loss of the validation tenants' events.
#[derive(Clone, Copy)]
struct Judged {
    auc: f32,
    loss: f32,
}

/// Prior precisions tried for the platform effects (per event-sum: 2 is
/// worth two events at p = ½ of evidence that the text is right).
const GRID: [f64; 4] = [0.5, 2.0, 8.0, 32.0];
/// An effect must lift validation AUC by this much to be kept: a handful
/// of tenants cannot tell apart closer candidates, and when in doubt the
/// text alone should win.
const TOLERANCE_AUC: f32 = 0.001;
/// ... and may not raise the validation log-loss by more than this.
const LOSS_SLACK: f32 = 0.01;

/// A platform effect needs events from this many tenants: the global head
/// is readable by every tenant, and an item only one or two tenants sell
/// would publish their sales (docs/security.md).
pub const MIN_TENANTS_PER_ITEM: usize = 3;

/// The items with events from at least `MIN_TENANTS_PER_ITEM` tenants.
fn shared_items<'a>(per_tenant: impl Iterator<Item = &'a Vec<ItemEvent>>) -> HashSet<i64> {
    let mut tenants: HashMap<i64, usize> = HashMap::new();
    for events in per_tenant {
        let mine: HashSet<i64> = events.iter().map(|e| e.key).collect();
        for key in mine {
            *tenants.entry(key).or_default() += 1;
        }
    }
    tenants
        .into_iter()
        .filter(|(_, n)| *n >= MIN_TENANTS_PER_ITEM)
        .map(|(k, _)| k)
        .collect()
}

fn events_of(head: &Head, task: &Task) -> Vec<ItemEvent> {
    task.examples
        .iter()
        .filter_map(|e| {
            Some(ItemEvent {
                key: e.item?,
                b: e.b,
                offset: f64::from(head.example_logit(e)),
                y: e.y,
            })
        })
        .collect()
}

fn judge(per_tenant: &[Vec<ItemEvent>], fx: &ItemEffects) -> Judged {
    let (mut aucs, mut loss, mut n) = (Vec::new(), 0f64, 0usize);
    for evs in per_tenant {
        let z: Vec<f64> = evs
            .iter()
            .map(|e| e.offset + f64::from(fx.effect(Some(e.key), e.b)))
            .collect();
        let labels: Vec<bool> = evs.iter().map(|e| e.y > 0.5).collect();
        if let Some(a) = auc(&z, &labels) {
            aucs.push(a);
        }
        for (zi, e) in z.iter().zip(evs) {
            loss += f64::from(log_loss(*zi as f32, e.y));
            n += 1;
        }
    }
    Judged {
        auc: (aucs.iter().sum::<f64>() / aucs.len().max(1) as f64) as f32,
        loss: (loss / n.max(1) as f64) as f32,
    }
}

/// The platform's item effects for `head`, learned from every tenant's
/// events (`train` and `val`) for the items at least
/// `MIN_TENANTS_PER_ITEM` tenants have events for, with λ chosen on `val`
/// from effects fitted on `train` alone; none when no candidate lifts the
/// validation tenants' ranking, or there are no validation tenants to tell.
/// A tenant's own effects get a prior (λ_t) wherever the validation
/// tenants show their items differ from the head's prediction beyond
/// noise, platform effects or not.
pub(super) fn learn_items(
    head: &Head,
    tasks: &[Task],
    train: &[usize],
    val: &[usize],
    max_items: usize,
    between: &mut dyn FnMut(),
) -> (ItemEffects, ItemsReport) {
    let none = (ItemEffects::none(), ItemsReport::default());
    if val.is_empty() || max_items == 0 {
        return none;
    }
    let train_events: Vec<Vec<ItemEvent>> =
        train.iter().map(|&t| events_of(head, &tasks[t])).collect();
    let held: Vec<Vec<ItemEvent>> = val.iter().map(|&t| events_of(head, &tasks[t])).collect();
    let held_ordered: Vec<bool> = val.iter().map(|&t| tasks[t].ordered).collect();
    let shared = shared_items(train_events.iter().chain(&held));
    let fit_on: Vec<ItemEvent> = train_events
        .into_iter()
        .flatten()
        .filter(|e| shared.contains(&e.key))
        .collect();
    if held.iter().all(Vec::is_empty) {
        return none;
    }
    between();
    let before = judge(&held, &ItemEffects::none());
    let mut best: Option<(f64, Judged, ItemEffects)> = None;
    // with no item shared by enough tenants (each store sells its own
    // catalogue) there is no platform effect to try
    for &lambda in GRID.iter().rev().filter(|_| !fit_on.is_empty()) {
        let fx = fit_platform(&fit_on, lambda, FROZEN, max_items, between);
        let j = judge(&held, &fx);
        between();
        let lifts = j.auc >= before.auc + TOLERANCE_AUC && j.loss <= before.loss + LOSS_SLACK;
        // from the strongest prior down: a weaker one must do better by
        // the tolerance to be preferred
        let better = match &best {
            None => lifts,
            Some((_, b, _)) => lifts && j.auc >= b.auc + TOLERANCE_AUC,
        };
        if better {
            best = Some((lambda, j, fx));
        }
    }
    let Some((lambda, after, fitted)) = best else {
        // no platform effect lifts the validation tenants (side features
        // may already say what sells everywhere), yet a store's own best
        // sellers can still differ from the head's prediction: how far,
        // measured on the same tenants, lets them learn their own
        let mut none = ItemEffects::none();
        let spread = head_spread_precision(&held, &held_ordered);
        none.tenant_prior = spread.precision;
        let tenant_precision = (none.tenant_prior < FROZEN).then_some(none.tenant_prior);
        return (
            none,
            ItemsReport {
                tenant_precision,
                tenant_spread_se: spread.se,
                val_auc_before: Some(before.auc),
                val_loss_before: Some(before.loss),
                ..Default::default()
            },
        );
    };
    // how far tenants' own may move: measured on the validation tenants,
    // against effects fitted without them
    let spread = between_tenant_precision(&held, &held_ordered, &fitted);
    let tenant_prior = spread.precision;
    let everyone: Vec<ItemEvent> = fit_on
        .into_iter()
        .chain(
            held.into_iter()
                .flatten()
                .filter(|e| shared.contains(&e.key)),
        )
        .collect();
    let effects = fit_platform(&everyone, lambda, tenant_prior, max_items, between);
    let report = ItemsReport {
        items: effects.len(),
        precision: Some(lambda as f32),
        tenant_precision: (tenant_prior < FROZEN).then_some(tenant_prior),
        tenant_spread_se: spread.se,
        val_auc_before: Some(before.auc),
        val_auc_after: Some(after.auc),
        val_loss_before: Some(before.loss),
        val_loss_after: Some(after.loss),
    };
    (effects, report)
}
