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

/// The item effects of one head: per known item, one effect per
/// behaviour, and (tenant heads) the precision of each.
#[derive(Clone, Debug)]
pub struct ItemEffects {
    /// ascending, unique
    keys: Vec<i64>,
    /// NB per key, item after item
    effect: Vec<f32>,
    /// NB per key: how sure the tenant is of each effect. None (the
    /// global head): every effect is the platform's, and a tenant's
    /// belief about its own deviation is the prior, `tenant_prior`.
    precision: Option<Vec<f32>>,
    /// λ_t, the precision of a tenant's deviation before its events;
    /// FROZEN = tenants do not learn their own (heads before 0.5.0)
    pub tenant_prior: f32,
    index: HashMap<i64, usize>,
}

impl Default for ItemEffects {
    fn default() -> Self {
        Self::none()
    }
}

impl PartialEq for ItemEffects {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
            && self.effect == other.effect
            && self.precision == other.precision
            && self.tenant_prior == other.tenant_prior
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
            keys: Vec::new(),
            effect: Vec::new(),
            precision: None,
            tenant_prior: FROZEN,
            index: HashMap::new(),
        }
    }

    /// From the stored arrays (any order of keys); an error names what is
    /// inconsistent.
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
        Ok(Self::built(
            order.iter().map(|&i| keys[i]).collect(),
            pick(&effect),
            precision.as_deref().map(pick),
            tenant_prior,
        ))
    }

    fn built(
        keys: Vec<i64>,
        effect: Vec<f32>,
        precision: Option<Vec<f32>>,
        tenant_prior: f32,
    ) -> Self {
        let index = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        ItemEffects {
            keys,
            effect,
            precision,
            tenant_prior,
            index,
        }
    }

    /// The stored form: (keys, effects, precisions).
    pub fn to_stored(&self) -> (&[i64], &[f32], Option<&[f32]>) {
        (&self.keys, &self.effect, self.precision.as_deref())
    }

    /// Per item: its key, its effects and (tenant heads) their precisions.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[f32], Option<&[f32]>)> {
        self.keys.iter().enumerate().map(move |(i, k)| {
            let at = i * NB..(i + 1) * NB;
            (
                *k,
                &self.effect[at.clone()],
                self.precision.as_ref().map(|p| &p[at]),
            )
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What this head's item effects hold in memory, roughly.
    pub fn bytes(&self) -> usize {
        // key + index entry (key, slot, hash overhead) + effects + precisions
        let per = 8 + 24 + NB * 4 + if self.precision.is_some() { NB * 4 } else { 0 };
        self.keys.len() * per
    }

    /// e_ib: 0 for an item this head knows nothing of.
    pub fn effect(&self, key: Option<i64>, b: usize) -> f32 {
        key.and_then(|k| self.index.get(&k))
            .map_or(0.0, |&i| self.effect[i * NB + b])
    }

    /// The precision of a tenant's belief about its effect of (key, b).
    pub fn precision(&self, key: Option<i64>, b: usize) -> f64 {
        let stored = match (&self.precision, key.and_then(|k| self.index.get(&k))) {
            (Some(p), Some(&i)) => Some(p[i * NB + b]),
            _ => None,
        };
        f64::from(stored.unwrap_or(self.tenant_prior))
    }

    /// The variance Thompson sampling draws the effect with: 0 where
    /// tenants do not learn their own.
    pub fn variance(&self, key: Option<i64>, b: usize) -> f64 {
        if self.tenant_prior >= FROZEN {
            0.0
        } else {
            1.0 / self.precision(key, b)
        }
    }

    /// Whether tenants learn their own deviations under this head.
    pub fn learns(&self) -> bool {
        self.tenant_prior < FROZEN
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
    ItemEffects::built(
        entries.iter().map(|e| e.0).collect(),
        entries.iter().flat_map(|e| e.1).collect(),
        None,
        tenant_prior,
    )
}

/// A tenant's effects after `events`: each (item, behaviour) it has events
/// for moves from `start`'s effect under a Gaussian prior of precision
/// `start.precision` when `continuing` (a Bayesian update of a version
/// that already learned), else `start.tenant_prior` (the start's effects
/// as the mean: a fresh fit). Items the tenant has no events for keep the
/// start's effect, with the prior precision unless continuing. At most
/// `cap` items: the least evidence (summed precision) goes first.
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
            start.precision(Some(key), b)
        } else {
            f64::from(start.tenant_prior)
        }
    };
    let mut per: HashMap<i64, ([f32; NB], [f32; NB])> = HashMap::new();
    for (i, key) in start.keys.iter().enumerate() {
        let mut e = [0f32; NB];
        let mut p = [0f32; NB];
        for b in 0..NB {
            e[b] = start.effect[i * NB + b];
            p[b] = prior_of(*key, b) as f32;
        }
        per.insert(*key, (e, p));
    }
    for (i, ((key, b), evs)) in grouped(events).into_iter().enumerate() {
        if i % 1024 == 0 {
            between();
        }
        let slot = per.entry(key).or_insert_with(|| {
            let mut p = [0f32; NB];
            for (b, q) in p.iter_mut().enumerate() {
                *q = prior_of(key, b) as f32;
            }
            ([0.0; NB], p)
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
    ItemEffects::built(
        entries.iter().map(|e| e.0).collect(),
        entries.iter().flat_map(|e| e.1).collect(),
        Some(entries.iter().flat_map(|e| e.2).collect()),
        start.tenant_prior,
    )
}

/// λ_t by the method of moments: per (tenant, item, behaviour) with
/// enough events, one Newton step from the platform effect estimates the
/// tenant's deviation r (sampling variance v = 1/Σw), and the spread of
/// deviations between tenants is the mean of r² − v. FROZEN when too few
/// items repeat within tenants to tell, or when they do not vary beyond
/// noise.
pub fn between_tenant_precision(per_tenant: &[Vec<ItemEvent>], platform: &ItemEffects) -> f32 {
    const MIN_WEIGHT: f64 = 1.0; // Σ p(1−p): about four events at p = ½
    const MIN_GROUPS: usize = 20;
    let (mut sum, mut groups) = (0f64, 0usize);
    for events in per_tenant {
        for ((key, b), evs) in grouped(events) {
            let e = f64::from(platform.effect(Some(key), b));
            let (mut g, mut w) = (0f64, 0f64);
            for ev in &evs {
                let p = f64::from(sigmoid((ev.offset + e) as f32));
                g += f64::from(ev.y) - p;
                w += p * (1.0 - p);
            }
            if w < MIN_WEIGHT {
                continue;
            }
            let r = g / w;
            sum += r * r - 1.0 / w;
            groups += 1;
        }
    }
    if groups < MIN_GROUPS {
        return FROZEN;
    }
    let spread = sum / groups as f64;
    if spread <= 0.01 {
        FROZEN
    } else {
        (1.0 / spread).clamp(0.25, 100.0) as f32
    }
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
    fn the_tenant_cap_drops_the_least_known_items_first() {
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
        let evs: Vec<ItemEvent> = (0..10).map(|i| ev(9, 1, 0.0, i % 2 == 0)).collect();
        let t = fit_tenant(&platform, &evs, false, 2, &mut || {});
        // item 9 has the tenant's evidence; of the rest the largest effect stays
        assert_eq!(t.to_stored().0, &[2, 9]);
    }

    #[test]
    fn between_tenant_spread_is_found_and_absent_spread_freezes() {
        let platform = ItemEffects::none();
        let mut rng = Rng::new(9);
        // 40 tenants × 10 items, each tenant's item logit drawn with sd 1
        let varied: Vec<Vec<ItemEvent>> = (0..40)
            .map(|_| {
                let mut evs = Vec::new();
                for key in 0..10 {
                    let d = normal(&mut rng);
                    for _ in 0..30 {
                        evs.push(ev(
                            key,
                            1,
                            0.0,
                            uniform(&mut rng) < f64::from(sigmoid(d as f32)),
                        ));
                    }
                }
                evs
            })
            .collect();
        let lt = between_tenant_precision(&varied, &platform);
        assert!(lt > 0.4 && lt < 2.5, "true precision 1: {lt}");
        let same: Vec<Vec<ItemEvent>> = (0..40)
            .map(|_| {
                (0..10)
                    .flat_map(|key| (0..30).map(move |j| (key, j)))
                    .map(|(key, _)| ev(key, 1, 0.0, uniform(&mut rng) < 0.5))
                    .collect()
            })
            .collect();
        assert_eq!(between_tenant_precision(&same, &platform), FROZEN);
        assert_eq!(between_tenant_precision(&varied[..1], &platform), FROZEN);
    }
}
