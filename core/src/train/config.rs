//! What training is asked to do and what it reports.

use serde::{Deserialize, Serialize};

use crate::head::Example;
use crate::posterior::Posterior;
use crate::prior::Prior;

/// How `adapt` changes a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Only the small part (gain, side weights, bias), with the meta-learned
    /// per-group step sizes, a pull back to the start, and early stopping on
    /// a held-out quarter of the support set.
    Meta,
    /// Plain gradient descent on every weight: the naive baseline.
    Full,
}

impl Method {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "meta" => Ok(Method::Meta),
            "full" => Ok(Method::Full),
            _ => Err(format!(
                "unknown method {}; valid methods are: meta, full",
                crate::quote::quoted(s)
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AdaptConfig {
    pub steps: usize,
    pub lr: f32,
    pub method: Method,
    /// Meta only: prior precisions (the pull back toward the start)
    pub prior: Prior,
    /// as the caller gave it (stored in the head's hyper and passed back)
    pub seed: i64,
    /// Meta only: when set, the prior is this posterior of the start (its
    /// per-parameter precisions and centres) instead of `prior`'s group
    /// precisions: `ecom_learn` continuing from a version it learned, a
    /// Bayesian update with the new events only.
    pub posterior: Option<Posterior>,
    /// at most this many items keep an effect in the adapted head
    /// (`pg_ecom.max_item_effects`)
    pub max_items: usize,
    /// at most this many directions of the isotropic taste part keep what
    /// the events said along them in the posterior
    /// (`pg_ecom.posterior_directions`, train/directions.rs)
    pub directions: usize,
    /// Meta only: the tenant's own events choose how far its item effects
    /// may move (`pg_ecom.item_prior = 'tenant'`, item_prior.rs); off,
    /// meta-training's λ_t for every tenant
    pub item_prior_from_events: bool,
    /// Meta only, fresh fits (no `posterior`): the tenant's own events
    /// choose how far its base rate may move (`pg_ecom.bias_prior =
    /// 'tenant'`, bias_prior.rs); off, `prior.bias` as given
    pub bias_prior_from_events: bool,
}

#[derive(Clone, Debug)]
pub struct AdaptReport {
    pub n: usize,
    pub loss_before: f32,
    pub loss_after: f32,
    pub steps_used: usize,
    /// the Laplace posterior of the adapted part at the result
    pub posterior: Posterior,
    /// Meta only: how the tenant's item prior was chosen (item_prior.rs);
    /// None where its head has none to choose (before 0.19.0's bookkeeping)
    pub item_choice: Option<crate::item_prior::Choice>,
    /// the prior the fit ran under: the config's, with the bias its
    /// events chose (bias_prior.rs) where they chose one
    pub prior: crate::prior::Prior,
    /// Meta only: how the bias precision was chosen; None where nothing
    /// chose (method 'full', a continued posterior, 'global')
    pub bias_choice: Option<crate::item_prior::Choice>,
}

pub struct Task {
    pub tenant: String,
    pub examples: Vec<Example>,
    /// examples are in time order: validation adapts on the earliest ones
    pub ordered: bool,
}

/// Events per slice of a pass over a support or training set: `between` runs
/// after each, so a pass over a large relation can be cancelled midway.
pub(crate) const SLICE: usize = 4096;
