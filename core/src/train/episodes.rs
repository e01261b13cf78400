//! Validation episodes (support and query splits of held-out tenants) and
//! how well an adapted head ranks on them.

use crate::head::{Example, Head};
use crate::metrics::auc;
use crate::rng::Rng;

use super::adapt::adapt_with;
use super::config::{AdaptConfig, Task};

pub(super) fn split_task(
    exs: &[Example],
    shots: usize,
    rng: &mut Rng,
) -> (Vec<Example>, Vec<Example>) {
    let mut idx: Vec<usize> = (0..exs.len()).collect();
    rng.shuffle(&mut idx);
    let shots = shots.min(exs.len() / 2);
    let support = idx[..shots].iter().map(|&i| exs[i].clone()).collect();
    let query = idx[shots..]
        .iter()
        .take(128)
        .map(|&i| exs[i].clone())
        .collect();
    (support, query)
}

pub(super) type Episode = (Vec<Example>, Vec<Example>);

/// Validation episodes. Time-ordered tenants are adapted on their earliest
/// `shots`/2, `shots` and 2·`shots` events and judged on the events after
/// them, as a new tenant would be; others on random splits.
pub(super) fn episodes(tasks: &[Task], which: &[usize], shots: usize, seed: u64) -> Vec<Episode> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for &t in which {
        let exs = &tasks[t].examples;
        if exs.len() < 4 {
            continue;
        }
        if tasks[t].ordered {
            for s in [shots / 2, shots, 2 * shots] {
                let s = s.clamp(1, exs.len() / 2);
                let query = exs[s..].iter().take(256).cloned().collect();
                out.push((exs[..s].to_vec(), query));
            }
        } else {
            for _ in 0..4 {
                out.push(split_task(exs, shots, &mut rng));
            }
        }
    }
    out
}

pub(super) fn mean_query_loss(
    head: &Head,
    episodes: &[Episode],
    cfg: Option<&AdaptConfig>,
    between: &mut dyn FnMut(),
) -> f32 {
    if episodes.is_empty() {
        return 0.0;
    }
    let mut total = 0f32;
    for (s, q) in episodes {
        total += match cfg {
            Some(c) => adapt_with(head, s, c, between).0.mean_loss(q),
            None => head.mean_loss(q),
        };
        between();
    }
    total / episodes.len() as f32
}

/// Query AUC of each episode with the unadapted head: what
/// `query_quality` compares adapted heads with, the same for every prior.
pub(super) fn baseline_aucs(head: &Head, episodes: &[Episode]) -> Vec<Option<f64>> {
    episodes.iter().map(|(_, q)| query_auc(head, q)).collect()
}

pub(super) fn query_auc(h: &Head, q: &[Example]) -> Option<f64> {
    let scores: Vec<f64> = q.iter().map(|e| f64::from(h.example_logit(e))).collect();
    let labels: Vec<bool> = q.iter().map(|e| e.y > 0.5).collect();
    auc(&scores, &labels)
}

/// Episodes judged with one head: the head adaptation starts from, and
/// each episode's query AUC before adaptation (`baseline_aucs`).
pub(super) struct Fold {
    pub(super) head: Head,
    pub(super) episodes: Vec<Episode>,
    pub(super) before: Vec<Option<f64>>,
    /// how many tenants the episodes come from
    pub(super) tenants: usize,
}

/// How heads rank after adaptation, episode by episode over every fold:
/// (mean query log-loss, mean query AUC over the episodes whose query has
/// both labels, with each episode's loss of AUC against its unadapted head
/// counted twice).
pub(super) fn query_quality(
    folds: &[Fold],
    cfg: &AdaptConfig,
    between: &mut dyn FnMut(),
) -> Quality {
    let (mut loss, mut n, mut auc_sum, mut auc_n) = (0f64, 0usize, 0f64, 0usize);
    let (mut plain_sum, mut big) = (0f64, 0usize);
    for fold in folds {
        for ((s, q), before) in fold.episodes.iter().zip(&fold.before) {
            let h = adapt_with(&fold.head, s, cfg, between).0;
            loss += f64::from(h.mean_loss(q));
            n += 1;
            if let (Some(a), Some(before)) = (query_auc(&h, q), before) {
                // a tenant that adaptation makes worse counts twice: the
                // average gain must not be bought with a few tenants' losses
                auc_sum += a - (before - a).max(0.0);
                plain_sum += a;
                big += usize::from(before - a > BIG_LOSS);
                auc_n += 1;
            }
            between();
        }
    }
    Quality {
        loss: (loss / n.max(1) as f64) as f32,
        auc: (auc_sum / auc_n.max(1) as f64) as f32,
        plain_auc: (plain_sum / auc_n.max(1) as f64) as f32,
        big_losses: (big as f64 / auc_n.max(1) as f64) as f32,
    }
}

/// An episode whose query AUC falls by more than this against its
/// unadapted head counts as a tenant adaptation made worse (the
/// benchmarks' worst-tenant rule).
pub(super) const BIG_LOSS: f64 = 0.01;

#[derive(Clone, Copy, Debug)]
pub(super) struct Quality {
    pub(super) loss: f32,
    /// mean query AUC, each episode's loss against its unadapted head
    /// counted twice
    pub(super) auc: f32,
    /// mean query AUC, plainly
    pub(super) plain_auc: f32,
    /// the share of episodes that lose more than `BIG_LOSS`
    pub(super) big_losses: f32,
}
