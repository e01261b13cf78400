//! The prior of adaptation: per-group precisions that meta-training
//! learns and every tenant's adaptation is pulled back by.

use serde::{Deserialize, Serialize};

/// Parameter groups, in the order they are laid out in `Head::params`
/// (head.rs): the groups a prior has a precision for, and W, which
/// adaptation never moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    W,
    Gain,
    Side,
    Bias,
    Taste,
}

/// Per-group prior precisions of the adapted part, meta-learned by
/// `meta_train`: adaptation is the MAP estimate under a Gaussian prior
/// centred on the starting head. Small = the tenant's events decide, large =
/// stay with the global head (`FROZEN` = that group does not move).
/// Precisions are per event-sum: the loss is a mean over n events, so each
/// enters divided by n (with 8 events the global head weighs four times
/// more than with 32).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub gain: f32,
    pub side: f32,
    pub bias: f32,
    /// the taste vector τ (isotropic). Heads trained before the taste
    /// existed have no such field: their tenants keep adapting as before.
    #[serde(default = "frozen")]
    pub taste: f32,
    /// λ_t: the precision of a tenant's own item effects around the
    /// platform's (items.rs), per event; FROZEN = tenants keep the
    /// platform's (heads before 0.5.0, or meta-training found no spread)
    #[serde(default = "frozen")]
    pub item: f32,
    /// where a tenant's own events choose its λ_t (item_prior.rs): the
    /// one meta-training chose, which they must beat; `item` is then the
    /// one its rows were fitted under. None before 0.19.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_meta: Option<f32>,
    /// the λ_t the tenant's item effects serve with; None = `item`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_served: Option<f32>,
    /// where a tenant's own events chose `bias` (bias_prior.rs): the
    /// precision they had to beat, its start's. None before 0.20.0, or
    /// where nothing chose (meta-training's own prior, 'global').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_meta: Option<f32>,
}

pub const FROZEN: f32 = 1e6;

fn frozen() -> f32 {
    FROZEN
}

impl Default for Prior {
    fn default() -> Self {
        Prior {
            gain: 1.6,
            side: 1.6,
            bias: 1.6,
            taste: 1.0,
            item: FROZEN,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        }
    }
}

impl Prior {
    pub fn frozen() -> Self {
        Prior {
            gain: FROZEN,
            side: FROZEN,
            bias: FROZEN,
            taste: FROZEN,
            item: FROZEN,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        }
    }

    pub(crate) fn get(&self, g: Group) -> f32 {
        match g {
            Group::Gain => self.gain,
            Group::Side => self.side,
            Group::Bias => self.bias,
            Group::Taste => self.taste,
            Group::W => FROZEN,
        }
    }

    pub(crate) fn set(&mut self, g: Group, v: f32) {
        match g {
            Group::Gain => self.gain = v,
            Group::Side => self.side = v,
            Group::Bias => self.bias = v,
            Group::Taste => self.taste = v,
            Group::W => {}
        }
    }

    /// Larger = closer to the global head.
    pub(crate) fn strength(&self) -> f32 {
        self.gain.ln() + self.side.ln() + self.bias.ln() + self.taste.ln()
    }
}
