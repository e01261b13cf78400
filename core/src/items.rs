//! Stage 4b: item effects — what sells, beyond what the text says. Pure
//! Rust, no Postgres.
//!
//! A logit gains one number per (item, behaviour): e_ib. The global head
//! learns it from every meta-train tenant's events, as a MAP estimate with
//! the global head's own logit as offset under a N(0, 1/λ) prior, so an
//! item seen rarely keeps what its text predicts and an item never seen
//! gets 0 (the text carries the cold start). A tenant's head starts from
//! those platform effects and learns its own deviation from its events
//! under a N(platform effect, 1/λ_t) prior: λ is chosen on validation
//! tenants, λ_t estimated from how much items' effects vary between the
//! meta-train tenants (empirical Bayes).
//!
//! Items are known by a 64-bit FNV-1a hash of their text: the same text
//! in `ecom_predict`, an impression or a training relation is the same item.

use std::collections::HashMap;
use std::sync::Arc;

use crate::behaviour::NB;
use crate::metrics::sigmoid;
use crate::prior::FROZEN;

/// `pg_ecom.max_item_effects`' default: items per head that keep an effect.
pub const DEFAULT_MAX_ITEMS: usize = 20_000;

/// An item's identity: FNV-1a (64-bit) of its UTF-8 text, as a bigint.
/// Stable across builds and platforms: stored keys must keep matching.
pub fn item_key(text: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// One table of item effects: per known item, one effect per behaviour,
/// and (a tenant's own) the precision of each.
#[derive(Debug, PartialEq)]
pub struct Table {
    /// ascending, unique
    keys: Vec<i64>,
    /// NB per key, item after item
    effect: Vec<f32>,
    /// NB per key: how sure the tenant is of each effect; None for the
    /// platform's (a tenant's belief about its own deviation from them is
    /// the prior, `tenant_prior`)
    precision: Option<Vec<f32>>,
    index: HashMap<i64, usize>,
}

impl Table {
    fn new(keys: Vec<i64>, effect: Vec<f32>, precision: Option<Vec<f32>>) -> Self {
        let index = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        Table {
            keys,
            effect,
            precision,
            index,
        }
    }

    fn at(&self, key: Option<i64>) -> Option<usize> {
        key.and_then(|k| self.index.get(&k).copied())
    }

    fn rows(&self) -> impl Iterator<Item = (i64, &[f32], Option<&[f32]>)> {
        (0..self.keys.len()).map(move |i| {
            let at = i * NB..(i + 1) * NB;
            (
                self.keys[i],
                &self.effect[at.clone()],
                self.precision.as_ref().map(|p| &p[at]),
            )
        })
    }

    fn bytes(&self) -> usize {
        // key + index entry (key, slot, hash overhead) + effects + precisions
        let per = 8 + 24 + NB * 4 + if self.precision.is_some() { NB * 4 } else { 0 };
        self.keys.len() * per
    }
}

/// The item effects of one head. The global head's are the platform's
/// (`own`, no precisions). A tenant's head keeps only the items it has
/// evidence on (`own`, with precisions) and reads every other item from
/// the platform's effects it started from (`base`, shared, never copied
/// into its row): a tenant version costs what the tenant learned, not the
/// catalogue.
#[derive(Clone, Debug)]
pub struct ItemEffects {
    own: Arc<Table>,
    /// the platform's effects a tenant's own build on
    base: Option<Arc<Table>>,
    /// λ_t, the precision of a tenant's deviation before its events, the
    /// one its own rows were fitted under; FROZEN = tenants do not learn
    /// their own (heads before 0.5.0)
    pub tenant_prior: f32,
    /// the λ_t meta-training chose, which the tenant's own events must
    /// beat to serve with another (item_prior.rs); None = `tenant_prior`
    /// (versions before 0.19.0)
    pub meta_prior: Option<f32>,
    /// the λ_t the tenant's rows serve and draw with (item_prior.rs); None
    /// = `tenant_prior`. Where it differs, each row is rescaled from the
    /// prior it was fitted under to this one (`served`).
    pub chosen_prior: Option<f32>,
}

impl Default for ItemEffects {
    fn default() -> Self {
        Self::none()
    }
}

impl PartialEq for ItemEffects {
    fn eq(&self, other: &Self) -> bool {
        self.own == other.own
            && self.base == other.base
            && self.tenant_prior == other.tenant_prior
            && self.meta_prior == other.meta_prior
            && self.chosen_prior == other.chosen_prior
    }
}

/// One event as item effects see it: the logit without the item effect.
#[derive(Clone, Copy, Debug)]
pub struct ItemEvent {
    pub key: i64,
    pub b: usize,
    pub offset: f64,
    pub y: f32,
}

impl ItemEffects {
    pub fn none() -> Self {
        ItemEffects {
            own: Arc::new(Table::new(Vec::new(), Vec::new(), None)),
            base: None,
            tenant_prior: FROZEN,
            meta_prior: None,
            chosen_prior: None,
        }
    }

    /// From the stored arrays (any order of keys); an error names what is
    /// inconsistent. `precision` is a tenant's (its own items, read over
    /// `base`) or None (the platform's).
    pub fn from_stored(
        keys: Vec<i64>,
        effect: Vec<f32>,
        precision: Option<Vec<f32>>,
        tenant_prior: f32,
    ) -> Result<Self, String> {
        let n = keys.len();
        if effect.len() != NB * n {
            return Err(format!(
                "{} item effects for {n} item(s), expected {}",
                effect.len(),
                NB * n
            ));
        }
        if effect.iter().any(|e| !e.is_finite()) {
            return Err("an item effect is NaN or infinite".into());
        }
        if let Some(p) = &precision {
            if p.len() != NB * n {
                return Err(format!(
                    "{} item precisions for {n} item(s), expected {}",
                    p.len(),
                    NB * n
                ));
            }
            if p.iter().any(|p| !p.is_finite() || *p <= 0.0) {
                return Err("an item precision is not a positive number".into());
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| keys[i]);
        if order.windows(2).any(|w| keys[w[0]] == keys[w[1]]) {
            return Err("an item key appears twice".into());
        }
        let pick = |v: &[f32]| -> Vec<f32> {
            order
                .iter()
                .flat_map(|&i| v[i * NB..(i + 1) * NB].iter().copied())
                .collect()
        };
        let own = Table::new(
            order.iter().map(|&i| keys[i]).collect(),
            pick(&effect),
            precision.as_deref().map(pick),
        );
        Ok(ItemEffects {
            own: Arc::new(own),
            base: None,
            tenant_prior,
            meta_prior: None,
            chosen_prior: None,
        })
    }

    /// A tenant's own effects read over `base`, the platform's effects of
    /// the global head it started from.
    pub fn over(mut self, base: &ItemEffects) -> Self {
        self.base = Some(base.own.clone());
        self
    }

    /// Whether these are the platform's: a global head's, which no tenant
    /// learned and which read over nothing.
    pub fn is_platform(&self) -> bool {
        self.base.is_none() && self.own.precision.is_none()
    }

    /// The stored form of this head's own items: (keys, effects, precisions).
    pub fn to_stored(&self) -> (&[i64], &[f32], Option<&[f32]>) {
        (
            &self.own.keys,
            &self.own.effect,
            self.own.precision.as_deref(),
        )
    }

    /// Per item: its key, its effects and (a tenant's own) their
    /// precisions; a tenant's own first, then the platform's items it has
    /// none of its own for.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[f32], Option<&[f32]>)> {
        let own: &Table = &self.own;
        let platform = self
            .base
            .iter()
            .flat_map(|b| b.rows())
            .filter(move |(k, _, _)| !own.index.contains_key(k));
        own.rows().chain(platform)
    }

    /// Items this head holds itself (a tenant's: those it has evidence on).
    pub fn len(&self) -> usize {
        self.own.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.own.keys.is_empty()
    }

    /// What this head's own item effects hold in memory, roughly (the
    /// platform's they read over are shared and counted with the global
    /// head).
    pub fn bytes(&self) -> usize {
        self.own.bytes()
    }

    /// e_ib: the tenant's own, else the platform's, else 0.
    pub fn effect(&self, key: Option<i64>, b: usize) -> f32 {
        match self.own.at(key) {
            Some(i) => self.served(key, i, b).0,
            None => self.base_effect(key, b),
        }
    }

    /// The platform's effect a tenant's own deviates from (0 where the
    /// platform has none).
    fn base_effect(&self, key: Option<i64>, b: usize) -> f32 {
        self.base
            .as_ref()
            .and_then(|t| t.at(key).map(|i| t.effect[i * NB + b]))
            .unwrap_or(0.0)
    }

    /// The λ_t the tenant's effects serve and draw with.
    pub fn served_prior(&self) -> f32 {
        self.chosen_prior.unwrap_or(self.tenant_prior)
    }

    /// Own row `i`'s (effect, precision) under the served λ_t. A row is a
    /// Laplace posterior N(e, 1/p) of a deviation from the platform's μ
    /// under a N(μ, 1/λ) prior: its events' share is a precision
    /// d = p − λ around e_d = μ + (e − μ)·p/d, so under λ* it is
    /// N(μ + (e − μ)·p/(d + λ*), 1/(d + λ*)), exactly as the Gaussian
    /// approximation of the events stands. At FROZEN, the platform's μ.
    fn served(&self, key: Option<i64>, i: usize, b: usize) -> (f32, f64) {
        let e = self.own.effect[i * NB + b];
        let Some(p) = self.own.precision.as_ref().map(|p| p[i * NB + b]) else {
            return (e, f64::from(self.tenant_prior));
        };
        let c = self.served_prior();
        if c == self.tenant_prior {
            return (e, f64::from(p));
        }
        let (p, lambda) = (f64::from(p), f64::from(self.tenant_prior));
        let d = (p - lambda).max(0.0);
        let mu = f64::from(self.base_effect(key, b));
        if c >= FROZEN {
            return (mu as f32, f64::from(c) + d);
        }
        let ps = d + f64::from(c);
        ((mu + (f64::from(e) - mu) * p / ps) as f32, ps)
    }

    /// Whether this is a tenant's head with rows of its own events (with
    /// precisions): what a fit continues rather than takes as its mean.
    pub fn has_own_rows(&self) -> bool {
        self.own.precision.is_some() && !self.own.keys.is_empty()
    }

    /// A tenant's head that learned no item effect of its own: before
    /// 0.19.0 a frozen λ_t stored a copy of the platform's effects as its
    /// own, with no precisions. The same head reading the platform's
    /// effects only, with no row of its own.
    pub fn without_platform_copy(&self) -> ItemEffects {
        if self.own.precision.is_some() || self.base.is_none() {
            return self.clone();
        }
        ItemEffects {
            own: Arc::new(Table::new(Vec::new(), Vec::new(), None)),
            ..self.clone()
        }
    }

    /// The tenant's rows as evidence about λ_t: per (item, behaviour) it
    /// has events for, the deviation its events alone point to and their
    /// precision (e_d − μ, d in `served`).
    pub(crate) fn evidence_rows(&self) -> Vec<(f64, f64)> {
        let Some(precision) = self.own.precision.as_ref() else {
            return Vec::new();
        };
        let lambda = f64::from(self.tenant_prior);
        let mut rows = Vec::new();
        for (i, &key) in self.own.keys.iter().enumerate() {
            for b in 0..NB {
                let p = f64::from(precision[i * NB + b]);
                let d = p - lambda;
                // 1e-6 of the prior's: f32 rounding, not an event
                if d > 1e-6 * lambda.max(1.0) {
                    let e = f64::from(self.own.effect[i * NB + b]);
                    let mu = f64::from(self.base_effect(Some(key), b));
                    rows.push(((e - mu) * p / d, d));
                }
            }
        }
        rows
    }

    /// The `n` items with the largest effect for behaviour `b` (the tenant's
    /// own where it has one, else the platform's), largest first: the best
    /// sellers a candidate stage adds to what a vector index finds, since
    /// an item's effect is outside what the index searches (retrieval.rs).
    /// Ties go to the smaller key, so the list is the same on every call.
    pub fn top(&self, b: usize, n: usize) -> Vec<(i64, f32)> {
        let mut all: Vec<(i64, f32)> = self
            .iter()
            .map(|(key, _, _)| (key, self.effect(Some(key), b)))
            .collect();
        let order = |x: &(i64, f32), y: &(i64, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
        if n < all.len() {
            all.select_nth_unstable_by(n, order);
            all.truncate(n);
        }
        all.sort_by(order);
        all
    }

    /// The precision of a tenant's belief about its effect of (key, b):
    /// its own where it has evidence, else the prior.
    pub fn precision(&self, key: Option<i64>, b: usize) -> f64 {
        match (&self.own.precision, self.own.at(key)) {
            (Some(_), Some(i)) => self.served(key, i, b).1,
            _ => f64::from(self.served_prior()),
        }
    }

    /// The precision the tenant learned for (key, b), if it has evidence.
    pub fn own_precision(&self, key: i64, b: usize) -> Option<f32> {
        self.own.precision.as_ref()?;
        let i = self.own.at(Some(key))?;
        Some(self.served(Some(key), i, b).1 as f32)
    }

    /// The precision (key, b)'s row was fitted to, under `tenant_prior`:
    /// where the next fit continues from.
    fn fitted_precision(&self, key: i64, b: usize) -> f64 {
        let stored = match (&self.own.precision, self.own.at(Some(key))) {
            (Some(p), Some(i)) => Some(p[i * NB + b]),
            _ => None,
        };
        f64::from(stored.unwrap_or(self.tenant_prior))
    }

    /// The variance Thompson sampling draws the effect with: 0 where
    /// tenants do not learn their own.
    pub fn variance(&self, key: Option<i64>, b: usize) -> f64 {
        if self.served_prior() >= FROZEN {
            0.0
        } else {
            1.0 / self.precision(key, b)
        }
    }

    /// The variance of the part of the effect that the tenant's events
    /// gave it (`pg_ecom.thompson_draw = 'evidence'`, draws.rs
    /// `Share::Evidence`): with d = its precision less the prior's, the
    /// spread of the estimate its events alone would move the prior's mean
    /// to, shrunk as the posterior mean is, d/(λ_t + d)². 0 where the
    /// tenant has no evidence, the posterior's own variance as the events
    /// come to outweigh the prior.
    pub fn evidence_variance(&self, key: Option<i64>, b: usize) -> f64 {
        if self.served_prior() >= FROZEN {
            return 0.0;
        }
        let p = key.and_then(|k| self.own_precision(k, b)).map(f64::from);
        p.map_or(0.0, |p| evidence_share(p, f64::from(self.served_prior())))
    }

    /// The variance a Thompson draw gives the effect. With `informed_only`,
    /// an item the tenant has no evidence on for behaviour `b` is held at
    /// its mean: its spread is the prior's, the same for every such item,
    /// and where items recur rarely in one tenant's traffic, what a draw
    /// there explores is seldom shown again to repay the clicks it costs
    /// (as draws.rs argues for the taste). Evidence is a precision above
    /// the prior's: a tenant's row holds every behaviour of an item it has
    /// events of, those it has none for at the prior's precision exactly.
    pub fn draw_variance(&self, key: Option<i64>, b: usize, informed_only: bool) -> f64 {
        let informed =
            key.is_some_and(|k| self.fitted_precision(k, b) > f64::from(self.tenant_prior));
        if informed_only && !informed {
            0.0
        } else {
            self.variance(key, b)
        }
    }

    /// Whether tenants learn their own deviations under this head.
    pub fn learns(&self) -> bool {
        self.tenant_prior < FROZEN
    }
}

/// The variance of a coordinate's events' share of its posterior: with
/// posterior precision `p` of which `prior` is the prior's, d = p − prior
/// (never below 0), the posterior mean's spread when only the events'
/// evidence is redrawn, d/p². It is 0 before any event and tends to the
/// posterior variance 1/p as the events outweigh the prior.
pub fn evidence_share(p: f64, prior: f64) -> f64 {
    let d = (p - prior).max(0.0);
    if p > 0.0 && p.is_finite() {
        d / (p * p)
    } else {
        0.0
    }
}

/// Per (item, behaviour): the MAP effect under N(mean, 1/prec) given
/// events with offsets, and its Laplace precision prec + Σ p(1 − p).
/// Newton's method, damped: the problem is one-dimensional and convex.
fn map_effect(events: &[&ItemEvent], mean: f64, prec: f64) -> (f64, f64) {
    let mut e = mean;
    let mut h = prec;
    for _ in 0..25 {
        let (mut g, mut w) = (prec * (e - mean), prec);
        for ev in events {
            let p = f64::from(sigmoid((ev.offset + e) as f32));
            g += p - f64::from(ev.y);
            w += (p * (1.0 - p)).max(1e-9);
        }
        h = w;
        let step = (g / w).clamp(-2.0, 2.0);
        e -= step;
        if step.abs() < 1e-6 {
            break;
        }
    }
    (e, h)
}

/// Events grouped by (key, b), in key order.
fn grouped(events: &[ItemEvent]) -> Vec<((i64, usize), Vec<&ItemEvent>)> {
    let mut by: HashMap<(i64, usize), Vec<&ItemEvent>> = HashMap::new();
    for e in events {
        by.entry((e.key, e.b)).or_default().push(e);
    }
    let mut groups: Vec<_> = by.into_iter().collect();
    groups.sort_by_key(|(k, _)| *k);
    groups
}

/// Keeps at most `cap` items: those with the least evidence go first
/// (`evidence`, larger = keep), ties by the smallest effect (dropping it
/// changes scores least), then by key.
fn capped(
    mut entries: Vec<(i64, [f32; NB], [f32; NB], f64)>,
    cap: usize,
) -> Vec<(i64, [f32; NB], [f32; NB], f64)> {
    if entries.len() > cap {
        let size = |e: &[f32; NB]| e.iter().map(|x| x.abs()).fold(0f32, f32::max);
        entries.sort_by(|a, b| {
            b.3.total_cmp(&a.3)
                .then(size(&b.1).total_cmp(&size(&a.1)))
                .then(a.0.cmp(&b.0))
        });
        entries.truncate(cap);
    }
    entries.sort_by_key(|e| e.0);
    entries
}

/// Platform effects from every meta-train tenant's events: MAP under
/// N(0, 1/`lambda`), at most `cap` items (the most events kept first).
/// `between` runs every 1,024 items.
pub fn fit_platform(
    events: &[ItemEvent],
    lambda: f64,
    tenant_prior: f32,
    cap: usize,
    between: &mut dyn FnMut(),
) -> ItemEffects {
    let mut per: HashMap<i64, ([f32; NB], [f32; NB], f64)> = HashMap::new();
    for (i, ((key, b), evs)) in grouped(events).into_iter().enumerate() {
        if i % 1024 == 0 {
            between();
        }
        let (e, h) = map_effect(&evs, 0.0, lambda);
        let slot = per.entry(key).or_insert(([0.0; NB], [0.0; NB], 0.0));
        slot.0[b] = e as f32;
        slot.1[b] = h as f32;
        slot.2 += evs.len() as f64;
    }
    let entries = capped(
        per.into_iter().map(|(k, (e, p, n))| (k, e, p, n)).collect(),
        cap,
    );
    ItemEffects {
        own: Arc::new(Table::new(
            entries.iter().map(|e| e.0).collect(),
            entries.iter().flat_map(|e| e.1).collect(),
            None,
        )),
        base: None,
        tenant_prior,
        meta_prior: None,
        chosen_prior: None,
    }
}

/// A tenant's effects after `events`: each (item, behaviour) it has events
/// for moves from `start`'s effect (its own, else the platform's) under a
/// Gaussian prior of precision `start.precision` when `continuing` (a
/// Bayesian update of a version that already learned), else
/// `start.tenant_prior` (the start's effects as the mean: a fresh fit).
/// The result keeps the items the tenant has evidence on, read over the
/// platform's; the start's own items it has no events for stay as they
/// were (with the prior's precision unless continuing). At most `cap`
/// items of its own: the least evidence (summed precision) goes first,
/// and an item dropped falls back to the platform's effect.
pub fn fit_tenant(
    start: &ItemEffects,
    events: &[ItemEvent],
    continuing: bool,
    cap: usize,
    between: &mut dyn FnMut(),
) -> ItemEffects {
    if !start.learns() {
        return start.clone();
    }
    let prior_of = |key: i64, b: usize| -> f64 {
        if continuing {
            start.fitted_precision(key, b)
        } else {
            f64::from(start.tenant_prior)
        }
    };
    let mut per: HashMap<i64, ([f32; NB], [f32; NB])> = HashMap::new();
    if !start.is_platform() {
        for (key, effect, _) in start.own.rows() {
            let mut e = [0f32; NB];
            let mut p = [0f32; NB];
            for b in 0..NB {
                e[b] = effect[b];
                p[b] = prior_of(key, b) as f32;
            }
            per.insert(key, (e, p));
        }
    }
    for (i, ((key, b), evs)) in grouped(events).into_iter().enumerate() {
        if i % 1024 == 0 {
            between();
        }
        let slot = per.entry(key).or_insert_with(|| {
            let mut e = [0f32; NB];
            let mut p = [0f32; NB];
            for b in 0..NB {
                e[b] = start.effect(Some(key), b);
                p[b] = prior_of(key, b) as f32;
            }
            (e, p)
        });
        let (e, h) = map_effect(&evs, f64::from(slot.0[b]), f64::from(slot.1[b]));
        slot.0[b] = e as f32;
        slot.1[b] = h as f32;
    }
    let entries = capped(
        per.into_iter()
            .map(|(k, (e, p))| {
                let evidence = p.iter().map(|&x| f64::from(x)).sum();
                (k, e, p, evidence)
            })
            .collect(),
        cap,
    );
    ItemEffects {
        own: Arc::new(Table::new(
            entries.iter().map(|e| e.0).collect(),
            entries.iter().flat_map(|e| e.1).collect(),
            Some(entries.iter().flat_map(|e| e.2).collect()),
        )),
        base: if start.is_platform() {
            Some(start.own.clone())
        } else {
            start.base.clone()
        },
        tenant_prior: start.tenant_prior,
        meta_prior: start.meta_prior,
        chosen_prior: start.chosen_prior,
    }
}

/// λ_t by the method of moments, from what a tenant's item deviations
/// predict about its later events: each (tenant, item, behaviour)'s events
/// are split in two (its earlier and later half where they are in time
/// order, a fixed pseudo-random half otherwise: not alternate events,
/// since a source without time order comes sorted by label within a
/// context, and alternate events would share their noise), and one Newton step
/// from the platform effect gives the summed residual g = Σ(y − p) ≈ w·d
/// of each half. Their noise is independent, so Σ g₁g₂ / Σ w₁w₂ estimates
/// the spread E d² of the deviations that persist, weighted by evidence.
/// A deviation that side features absorb once the tenant's own events
/// update them (an item-popularity feature computed on the tenant's
/// events) does not persist, and counting it would have a tenant learn
/// twice what its features already say. Each half's tenant level (what
/// its bias absorbs when it adapts) is fitted first, so a tenant that
/// clicks more everywhere does not count as items that differ. Only items
/// `platform` has an effect for count. FROZEN when too few items repeat
/// within tenants to tell, or when they do not vary beyond 0.01. Pass
/// tenants the platform's effects were not fitted on: in sample, every
/// deviation shrinks toward 0. `ordered[i]`: tenant i's events are in
/// time order.
pub fn between_tenant_precision(
    per_tenant: &[Vec<ItemEvent>],
    ordered: &[bool],
    platform: &ItemEffects,
) -> Spread {
    spread_precision(per_tenant, ordered, platform, false)
}

/// λ_t as measured, and how well: the standard error of the spread
/// (1/λ_t) from the products' own scatter. A spread within a standard
/// error or two of 0 is mostly noise; so few validation tenants rarely
/// tell more, and a small spread moves an effect little, so it is kept
/// and reported rather than frozen (benches/EVAL.md, "λ_t from the item
/// deviations that persist").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub precision: f32,
    /// None when too few (tenant, item) pairs were seen in both halves
    pub se: Option<f32>,
}

/// λ_t as `between_tenant_precision` measures it, where the platform kept
/// no effect (its features already say what sells, or no item is sold
/// widely enough): every item counts, its deviation taken from the head's
/// prediction, since a tenant's best sellers can still differ from it.
pub fn head_spread_precision(per_tenant: &[Vec<ItemEvent>], ordered: &[bool]) -> Spread {
    spread_precision(per_tenant, ordered, &ItemEffects::none(), true)
}

/// Per (item, behaviour): Σ(y − p) and Σ p(1 − p) at logit z + the
/// events' own level per behaviour (three Newton steps).
fn residuals(
    events: &[&ItemEvent],
    z: impl Fn(&ItemEvent) -> f64,
) -> HashMap<(i64, usize), (f64, f64)> {
    let mut level = [0f64; NB];
    for (b, c) in level.iter_mut().enumerate() {
        for _ in 0..3 {
            let (mut g, mut w) = (0f64, 1e-9);
            for e in events.iter().filter(|e| e.b == b) {
                let p = f64::from(sigmoid((z(e) + *c) as f32));
                g += f64::from(e.y) - p;
                w += p * (1.0 - p);
            }
            *c += (g / w).clamp(-2.0, 2.0);
        }
    }
    let mut by: HashMap<(i64, usize), (f64, f64)> = HashMap::new();
    for e in events {
        let p = f64::from(sigmoid((z(e) + level[e.b]) as f32));
        let slot = by.entry((e.key, e.b)).or_insert((0.0, 0.0));
        slot.0 += f64::from(e.y) - p;
        slot.1 += p * (1.0 - p);
    }
    by
}

fn spread_precision(
    per_tenant: &[Vec<ItemEvent>],
    ordered: &[bool],
    platform: &ItemEffects,
    every_item: bool,
) -> Spread {
    const MIN_GROUPS: usize = 20;
    // (g₁g₂, w₁w₂) of every (tenant, item, behaviour) seen in both halves
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    for (t, events) in per_tenant.iter().enumerate() {
        let known: Vec<&ItemEvent> = events
            .iter()
            .filter(|e| every_item || platform.own.at(Some(e.key)).is_some())
            .collect();
        let mut by: HashMap<(i64, usize), Vec<&ItemEvent>> = HashMap::new();
        for e in &known {
            by.entry((e.key, e.b)).or_default().push(*e);
        }
        let mut keys: Vec<(i64, usize)> = by.keys().copied().collect();
        keys.sort_unstable();
        let timed = ordered.get(t).copied().unwrap_or(false);
        let mut rng = crate::rng::Rng::new(0x5eed ^ t as u64);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for k in keys {
            let mut group = by.remove(&k).unwrap_or_default();
            if !timed {
                // Fisher–Yates: halves that ignore the order read
                for i in (1..group.len()).rev() {
                    let j = (crate::rng::uniform(&mut rng) * (i + 1) as f64) as usize;
                    group.swap(i, j.min(i));
                }
            }
            // an odd group's middle event goes to the earlier half
            let half = group.len().div_ceil(2);
            first.extend_from_slice(&group[..half]);
            second.extend_from_slice(&group[half..]);
        }
        let z = |e: &ItemEvent| e.offset + f64::from(platform.effect(Some(e.key), e.b));
        let early = residuals(&first, z);
        let late = residuals(&second, z);
        // summed in key order: the same events give the same λ_t, bit for bit
        let mut keys: Vec<&(i64, usize)> = early.keys().filter(|k| late.contains_key(k)).collect();
        keys.sort_unstable();
        for k in keys {
            let ((g1, w1), (g2, w2)) = (early[k], late[k]);
            pairs.push((g1 * g2, w1 * w2));
        }
    }
    let den: f64 = pairs.iter().map(|p| p.1).sum();
    if pairs.len() < MIN_GROUPS || den <= 0.0 {
        return Spread {
            precision: FROZEN,
            se: None,
        };
    }
    let spread = pairs.iter().map(|p| p.0).sum::<f64>() / den;
    // the ratio's delta-method error: each pair's product less what the
    // spread predicts for it
    let sq: f64 = pairs
        .iter()
        .map(|(gg, ww)| (gg - spread * ww).powi(2))
        .sum();
    let se = Some((sq.sqrt() / den) as f32);
    let precision = if spread <= 0.01 {
        FROZEN
    } else {
        (1.0 / spread).clamp(0.25, 100.0) as f32
    };
    Spread { precision, se }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{normal, uniform, Rng};

    fn ev(key: i64, b: usize, offset: f64, y: bool) -> ItemEvent {
        ItemEvent {
            key,
            b,
            offset,
            y: if y { 1.0 } else { 0.0 },
        }
    }

    /// An evidence draw's variance of an item effect: none without
    /// evidence (no row, or the prior's precision), far below the
    /// posterior's after one event's worth, the posterior's once the
    /// events outweigh the prior; none where tenants keep the platform's.
    #[test]
    fn evidence_variance_grows_from_nothing_to_the_posterior_s() {
        let b = 1;
        let mut precision = vec![14.0f32; 3 * NB];
        precision[NB + b] = 14.25;
        precision[2 * NB + b] = 1400.0;
        let e = ItemEffects::from_stored(vec![1, 2, 3], vec![0.0; 3 * NB], Some(precision), 14.0)
            .unwrap();
        assert_eq!(e.evidence_variance(Some(1), b), 0.0);
        assert_eq!(e.evidence_variance(Some(99), b), 0.0);
        assert_eq!(e.evidence_variance(None, b), 0.0);
        let one = e.evidence_variance(Some(2), b);
        assert!((one - 0.25 / (14.25f64 * 14.25)).abs() < 1e-9);
        assert!(one < 0.02 * e.variance(Some(2), b));
        let many = e.evidence_variance(Some(3), b);
        assert!((many / e.variance(Some(3), b) - 1.0).abs() < 0.011);
        assert_eq!(ItemEffects::none().evidence_variance(Some(2), b), 0.0);
    }

    #[test]
    fn top_lists_the_largest_effects_of_a_behaviour_own_over_platform() {
        let platform = ItemEffects::from_stored(
            vec![1, 2, 3, 4],
            vec![
                0.0, 0.5, 0.0, 0.0, //
                0.0, 2.0, 0.0, 0.0, //
                0.0, -1.0, 0.0, 3.0, //
                0.0, 0.5, 0.0, 0.0,
            ],
            None,
            FROZEN,
        )
        .unwrap();
        // the tenant's own belief about item 2 replaces the platform's
        let own = ItemEffects::from_stored(
            vec![2, 9],
            vec![0.0, -2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            None,
            FROZEN,
        )
        .unwrap()
        .over(&platform);
        assert_eq!(platform.top(1, 2), vec![(2, 2.0), (1, 0.5)]);
        assert_eq!(own.top(1, 3), vec![(9, 1.0), (1, 0.5), (4, 0.5)]);
        assert_eq!(own.top(3, 1), vec![(3, 3.0)]);
        assert_eq!(own.top(1, 100).len(), 5, "every item once, n beyond them");
        assert!(ItemEffects::none().top(1, 10).is_empty());
    }

    #[test]
    fn keys_are_fnv1a_of_the_text() {
        // FNV-1a 64 reference values
        assert_eq!(item_key(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(item_key("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
        assert_ne!(item_key("Toy Story (1995)"), item_key("Toy Story (1995) "));
    }

    #[test]
    fn a_popular_item_gains_an_effect_shrunk_by_its_events() {
        // item 1: 9 of 10 clicked, item 2: 1 of 10, offsets 0
        let mut evs = Vec::new();
        for i in 0..10 {
            evs.push(ev(1, 1, 0.0, i < 9));
            evs.push(ev(2, 1, 0.0, i < 1));
        }
        evs.push(ev(3, 1, 0.0, true)); // seen once
        let fx = fit_platform(&evs, 1.0, FROZEN, 100, &mut || {});
        let (e1, e2, e3) = (
            fx.effect(Some(1), 1),
            fx.effect(Some(2), 1),
            fx.effect(Some(3), 1),
        );
        assert!(e1 > 1.0 && e1 < 2.2, "{e1}"); // logit(0.9) = 2.2, shrunk
        assert!((e1 + e2).abs() < 1e-4, "symmetric: {e1} {e2}");
        assert!(e3 > 0.0 && e3 < e1, "one event moves it less: {e3}");
        assert_eq!(fx.effect(Some(4), 1), 0.0, "never seen");
        assert_eq!(fx.effect(None, 1), 0.0);
        assert_eq!(fx.effect(Some(1), 0), 0.0, "another behaviour");
        // a stronger prior shrinks more
        let strong = fit_platform(&evs, 10.0, FROZEN, 100, &mut || {});
        assert!(strong.effect(Some(1), 1) < e1);
    }

    #[test]
    fn the_cap_keeps_the_items_with_most_events() {
        let mut evs = Vec::new();
        for key in 0..50i64 {
            for j in 0..=key {
                evs.push(ev(key, 1, 0.0, j % 2 == 0));
            }
        }
        let fx = fit_platform(&evs, 1.0, FROZEN, 10, &mut || {});
        assert_eq!(fx.len(), 10);
        let (keys, effects, precision) = fx.to_stored();
        assert_eq!(keys, (40..50).collect::<Vec<_>>());
        assert_eq!(effects.len(), 10 * NB);
        assert!(precision.is_none());
    }

    #[test]
    fn stored_arrays_round_trip_in_any_order_and_bad_ones_are_refused() {
        let fx = ItemEffects::from_stored(
            vec![5, -3],
            vec![0.5, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0],
            Some(vec![2.0; 8]),
            1.0,
        )
        .unwrap();
        assert_eq!(fx.to_stored().0, &[-3, 5]);
        assert_eq!(fx.effect(Some(5), 0), 0.5);
        assert_eq!(fx.effect(Some(-3), 0), -1.0);
        let (k, e, p) = fx.to_stored();
        let back = ItemEffects::from_stored(k.to_vec(), e.to_vec(), p.map(<[f32]>::to_vec), 1.0);
        assert_eq!(back.unwrap(), fx);
        assert!(ItemEffects::from_stored(vec![1], vec![0.0; 3], None, 1.0).is_err());
        assert!(ItemEffects::from_stored(vec![1, 1], vec![0.0; 8], None, 1.0).is_err());
        assert!(ItemEffects::from_stored(vec![1], vec![f32::NAN; 4], None, 1.0).is_err());
        assert!(ItemEffects::from_stored(vec![1], vec![0.0; 4], Some(vec![0.0; 4]), 1.0).is_err());
        assert!(ItemEffects::from_stored(vec![1], vec![0.0; 4], Some(vec![1.0; 3]), 1.0).is_err());
    }

    #[test]
    fn a_tenant_moves_from_the_platform_effect_and_keeps_the_rest() {
        let platform = ItemEffects::from_stored(
            vec![1, 2],
            vec![0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0],
            None,
            2.0,
        )
        .unwrap();
        // the tenant never clicks item 1, which sells on the platform
        let evs: Vec<ItemEvent> = (0..20).map(|_| ev(1, 1, 0.0, false)).collect();
        let t = fit_tenant(&platform, &evs, false, 100, &mut || {});
        assert!(t.effect(Some(1), 1) < 0.0, "{}", t.effect(Some(1), 1));
        assert_eq!(t.effect(Some(2), 1), -1.0, "untouched item kept");
        assert!(t.precision(Some(1), 1) > 2.0);
        assert_eq!(t.precision(Some(2), 1), 2.0);
        assert!(t.variance(Some(1), 1) < t.variance(Some(2), 1));
        // a head whose tenants do not learn item effects stays as it is
        let frozen = ItemEffects {
            tenant_prior: FROZEN,
            ..platform.clone()
        };
        assert_eq!(fit_tenant(&frozen, &evs, false, 100, &mut || {}), frozen);
        assert_eq!(frozen.variance(Some(1), 1), 0.0);
    }

    #[test]
    fn sequential_updates_equal_one_batch_fit() {
        // the Laplace update of a 1-d effect is exact up to the curvature
        // at the mode: in halves versus at once, within a few percent
        let platform =
            ItemEffects::from_stored(vec![7], vec![0.0, 0.3, 0.0, 0.0], None, 1.0).unwrap();
        let mut rng = Rng::new(5);
        let evs: Vec<ItemEvent> = (0..200)
            .map(|_| ev(7, 1, uniform(&mut rng) - 0.5, uniform(&mut rng) < 0.7))
            .collect();
        let batch = fit_tenant(&platform, &evs, false, 10, &mut || {});
        let first = fit_tenant(&platform, &evs[..100], false, 10, &mut || {});
        let second = fit_tenant(&first, &evs[100..], true, 10, &mut || {});
        let (eb, es) = (batch.effect(Some(7), 1), second.effect(Some(7), 1));
        assert!((eb - es).abs() <= 0.05 * eb.abs(), "{eb} vs {es}");
        let (pb, ps) = (batch.precision(Some(7), 1), second.precision(Some(7), 1));
        assert!((pb - ps).abs() <= 0.05 * pb, "{pb} vs {ps}");
    }

    #[test]
    fn a_tenant_keeps_only_what_it_learned_and_the_cap_falls_back_to_the_platform() {
        let platform = ItemEffects::from_stored(
            vec![1, 2, 3],
            vec![
                0.0, 0.1, 0.0, 0.0, //
                0.0, 2.0, 0.0, 0.0, //
                0.0, 0.5, 0.0, 0.0,
            ],
            None,
            1.0,
        )
        .unwrap();
        // 30 events of item 9, 10 of item 3, 2 of item 1: all clicked
        let evs: Vec<ItemEvent> = (0..30)
            .map(|_| ev(9, 1, 0.0, true))
            .chain((0..10).map(|_| ev(3, 1, 0.0, true)))
            .chain((0..2).map(|_| ev(1, 1, 0.0, true)))
            .collect();
        let t = fit_tenant(&platform, &evs, false, 10, &mut || {});
        // its row holds what it learned; the catalogue stays the platform's
        assert_eq!(t.to_stored().0, &[1, 3, 9]);
        assert_eq!(t.effect(Some(2), 1), 2.0);
        assert!(t.effect(Some(3), 1) > 0.5);
        assert_eq!(t.iter().count(), 4);
        // capped at 2: item 1 (least evidence) goes and reads the platform's again
        let capped = fit_tenant(&platform, &evs, false, 2, &mut || {});
        assert_eq!(capped.to_stored().0, &[3, 9]);
        assert_eq!(capped.effect(Some(1), 1), 0.1);
        assert_eq!(capped.precision(Some(1), 1), 1.0);
        // a draw holds the items it has no evidence on at their mean
        // unless told to draw everything
        assert!(t.draw_variance(Some(3), 1, true) > 0.0);
        // its row holds item 3's other behaviours too, without evidence
        assert!(t.own_precision(3, 0).is_some());
        assert_eq!(t.draw_variance(Some(3), 0, true), 0.0);
        assert_eq!(t.draw_variance(Some(3), 1, true), t.variance(Some(3), 1));
        assert_eq!(t.draw_variance(Some(2), 1, true), 0.0);
        assert_eq!(t.draw_variance(Some(2), 1, false), t.variance(Some(2), 1));
        assert!(t.variance(Some(2), 1) > 0.0);
        assert_eq!(platform.draw_variance(Some(3), 1, true), 0.0);
        // continuing keeps the tenant's items and the same platform
        let more = fit_tenant(&t, &evs[..5], true, 10, &mut || {});
        assert_eq!(more.to_stored().0, &[1, 3, 9]);
        assert_eq!(more.effect(Some(2), 1), 2.0);
        assert_eq!(more.effect(Some(3), 1), t.effect(Some(3), 1));
    }

    /// A tenant prior at least this precise (sd ≤ 0.22 in logit) moves an
    /// effect too little to matter: what noise alone may leave where the
    /// evidence is as plentiful as here.
    const HARMLESS: f32 = 20.0;

    /// tenants × 10 items × 30 events, in time order round the items, each
    /// (tenant, item) logit drawn `item_sd` apart between tenants on top
    /// of a tenant level `level_sd` apart (what a tenant's bias absorbs).
    /// With `absorbed`, the offset of an item's later half already holds
    /// its deviation, as an item-popularity feature computed on the
    /// tenant's own events would.
    fn tenants(
        rng: &mut Rng,
        n: usize,
        item_sd: f64,
        level_sd: f64,
        absorbed: bool,
    ) -> Vec<Vec<ItemEvent>> {
        (0..n)
            .map(|_| {
                let level = level_sd * normal(rng);
                let d: Vec<f64> = (0..10).map(|_| level + item_sd * normal(rng)).collect();
                let mut evs = Vec::new();
                for round in 0..30 {
                    for (key, &dk) in d.iter().enumerate() {
                        let y = uniform(rng) < f64::from(sigmoid(dk as f32));
                        let offset = if absorbed && round >= 15 {
                            dk - level
                        } else {
                            0.0
                        };
                        evs.push(ev(key as i64, 1, offset, y));
                    }
                }
                evs
            })
            .collect()
    }

    /// The same events as a source without `ts` gives them: sorted by item
    /// and then label (relation.rs orders by context, item, behaviour,
    /// label).
    fn sorted_as_read(tenants: &[Vec<ItemEvent>]) -> Vec<Vec<ItemEvent>> {
        tenants
            .iter()
            .map(|evs| {
                let mut evs = evs.clone();
                evs.sort_by_key(|a| (a.key, a.y > 0.5));
                evs
            })
            .collect()
    }

    #[test]
    fn between_tenant_spread_is_found_and_absent_spread_is_harmless() {
        let platform =
            ItemEffects::from_stored((0..10).collect(), vec![0.0; 10 * NB], None, FROZEN).unwrap();
        let mut rng = Rng::new(9);
        let timed = [true; 40];
        let varied = tenants(&mut rng, 40, 1.0, 0.0, false);
        let lt = between_tenant_precision(&varied, &timed, &platform);
        assert!(
            lt.precision > 0.4 && lt.precision < 2.5,
            "true precision 1: {lt:?}"
        );
        let se = lt.se.unwrap();
        assert!(se > 0.0 && se < 0.5, "{lt:?}");
        // without a time order, halves drawn at random, whatever the
        // events' order: the same spread, and none where there is none
        let untimed = between_tenant_precision(&sorted_as_read(&varied), &[false; 40], &platform);
        assert!(
            untimed.precision > 0.4 && untimed.precision < 2.5,
            "true precision 1: {untimed:?}"
        );
        let alike = tenants(&mut rng, 40, 0.0, 0.0, false);
        let untimed_alike =
            between_tenant_precision(&sorted_as_read(&alike), &[false; 40], &platform).precision;
        assert!(untimed_alike >= HARMLESS, "{untimed_alike}");
        // no spread: what noise leaves is too small to move an effect
        // (a prior sd of at most 0.22 in logit) or nothing at all
        let alike = between_tenant_precision(&alike, &timed, &platform).precision;
        assert!(alike >= HARMLESS, "{alike}");
        // tenants that differ only in how much they click overall
        let levels =
            between_tenant_precision(&tenants(&mut rng, 40, 0.0, 0.7, false), &timed, &platform)
                .precision;
        assert!(levels >= HARMLESS, "{levels}");
        let one = between_tenant_precision(&varied[..1], &timed, &platform);
        assert_eq!((one.precision, one.se), (FROZEN, None));
        // items the platform has no effect for do not count
        let elsewhere =
            ItemEffects::from_stored((100..110).collect(), vec![0.0; 10 * NB], None, FROZEN)
                .unwrap();
        assert_eq!(
            between_tenant_precision(&varied, &timed, &elsewhere).precision,
            FROZEN
        );
        assert_eq!(
            between_tenant_precision(&varied, &timed, &ItemEffects::none()).precision,
            FROZEN
        );
        // against the head's prediction (0 here) every item counts: the
        // same spread is found
        let lt0 = head_spread_precision(&varied, &timed);
        assert!(
            (lt0.precision - lt.precision).abs() < 1e-4,
            "{lt0:?} against {lt:?}"
        );
    }

    #[test]
    fn deviations_the_features_absorb_later_are_not_a_spread() {
        let timed = [true; 40];
        let absorbed = tenants(&mut Rng::new(11), 40, 1.0, 0.3, true);
        let lt_absorbed = head_spread_precision(&absorbed, &timed).precision;
        assert!(lt_absorbed >= HARMLESS, "{lt_absorbed}");
        // the same tenants (the same draws) where no feature absorbs their
        // deviations: found to differ by about 1
        let kept = tenants(&mut Rng::new(11), 40, 1.0, 0.3, false);
        let lt = head_spread_precision(&kept, &timed).precision;
        assert!(lt > 0.4 && lt < 2.5, "true precision 1: {lt}");
    }
}
