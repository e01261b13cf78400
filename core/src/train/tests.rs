//! Adaptation and meta-training, tested on synthetic tenants.

use super::*;
use crate::head::{text_features, Example, Group, Head, NB};
use crate::items::DEFAULT_MAX_ITEMS;
use crate::metrics::auc;
use crate::posterior::Posterior;
use crate::prior::{Prior, FROZEN};
use crate::rng::Rng;

use super::centred::{centred, Centred};
use super::solvers::{conjugate_gradient, solve};

/// `adapt`'s defaults as ecom_adapt uses them (method meta, full steps).
fn meta(steps: usize, prior: Prior, seed: i64) -> AdaptConfig {
    AdaptConfig {
        steps,
        lr: 1.0,
        method: Method::Meta,
        prior,
        seed,
        posterior: None,
        max_items: DEFAULT_MAX_ITEMS,
        directions: crate::posterior::DEFAULT_DIRECTIONS,
        item_prior_from_events: false,
        bias_prior_from_events: false,
    }
}

/// A `purchase` event of context u and item v, positive when z > 0.
fn event(u: &[f32], v: &[f32], f: Vec<f32>, z: f32) -> Example {
    Example {
        x: text_features(u, v),
        f,
        b: NB - 1,
        y: if z > 0.0 { 1.0 } else { 0.0 },
        item: None,
    }
}

fn task(t: usize, examples: Vec<Example>) -> Task {
    Task {
        tenant: format!("t{t}"),
        examples,
        ordered: false,
    }
}

/// Synthetic tenants: a shared text signal (item direction 0) and a
/// tenant-specific weight on side feature 0, so tenants differ in a way
/// only adaptation can learn.
fn synthetic(tenants: usize, per: usize, seed: u64) -> Vec<Task> {
    let dims = 8;
    let mut r = Rng::new(seed);
    let mut unit = move || (r.next_u64() % 20001) as f32 / 10000.0 - 1.0;
    (0..tenants)
        .map(|t| {
            let side_w = if t % 2 == 0 { 2.5 } else { -2.5 };
            let examples = (0..per)
                .map(|_| {
                    let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
                    let v: Vec<f32> = (0..dims).map(|_| unit()).collect();
                    let f = vec![unit()];
                    let z = 3.0 * v[0] + side_w * f[0] + 0.5 * unit();
                    event(&u, &v, f, z)
                })
                .collect();
            task(t, examples)
        })
        .collect()
}

pub(super) fn task_auc(h: &Head, exs: &[Example]) -> f64 {
    let s: Vec<f64> = exs.iter().map(|e| h.predict(e.b, &e.x, &e.f)).collect();
    let y: Vec<bool> = exs.iter().map(|e| e.y > 0.5).collect();
    auc(&s, &y).unwrap()
}

#[test]
fn meta_training_is_deterministic() {
    let tasks = synthetic(6, 60, 3);
    let cfg = MetaConfig {
        meta_steps: 30,
        ..MetaConfig::default()
    };
    let (a, _) = meta_train(&tasks, 8, 1, &cfg, || {});
    let (b, _) = meta_train(&tasks, 8, 1, &cfg, || {});
    assert_eq!(a, b);
    let (c, _) = meta_train(&tasks, 8, 1, &MetaConfig { seed: 7, ..cfg }, || {});
    assert_ne!(a, c);
}

#[test]
fn meta_training_offers_regular_interruption_points() {
    let tasks = synthetic(4, 80, 6);
    let cfg = MetaConfig {
        meta_steps: 50,
        epochs: 2,
        ..MetaConfig::default()
    };
    let mut calls = 0;
    meta_train(&tasks, 8, 1, &cfg, || calls += 1);
    // every minibatch, every meta step, every prior candidate
    assert!(calls >= 50 + 125, "{calls}");
}

#[test]
fn adaptation_offers_regular_interruption_points() {
    // ecom_adapt over a 20,000-row support relation ran minutes without
    // one interrupt check: both methods must call back every step, every
    // fold and every slice of events
    let tasks = synthetic(1, 10_000, 4);
    let head = Head::new(8, 1);
    for (method, steps, at_least) in [
        // 4 folds + the final fit, each step; plus the loss passes
        (Method::Meta, 40, 5 * 40),
        // every slice of every step (10,000 events = 3 slices)
        (Method::Full, 40, 3 * 40),
    ] {
        let cfg = AdaptConfig {
            steps,
            lr: 0.1,
            method,
            prior: Prior::default(),
            seed: 1,
            posterior: None,
            max_items: DEFAULT_MAX_ITEMS,
            directions: crate::posterior::DEFAULT_DIRECTIONS,
            item_prior_from_events: false,
            bias_prior_from_events: false,
        };
        let mut calls = 0;
        adapt_with(&head, &tasks[0].examples, &cfg, &mut || calls += 1);
        assert!(calls >= at_least, "{method:?}: {calls} calls");
    }
}

#[test]
fn a_cancel_stops_adaptation_at_the_next_check() {
    // Postgres' interrupt check unwinds out of the callback; nothing
    // after it runs
    let tasks = synthetic(1, 2_000, 4);
    let cfg = AdaptConfig {
        steps: 10_000,
        lr: 0.1,
        method: Method::Full,
        prior: Prior::default(),
        seed: 1,
        posterior: None,
        max_items: DEFAULT_MAX_ITEMS,
        directions: crate::posterior::DEFAULT_DIRECTIONS,
        item_prior_from_events: false,
        bias_prior_from_events: false,
    };
    let mut calls = 0;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        adapt_with(&Head::new(8, 1), &tasks[0].examples, &cfg, &mut || {
            calls += 1;
            if calls == 3 {
                panic!("cancel");
            }
        })
    }));
    assert!(r.is_err());
    assert_eq!(calls, 3);
}

#[test]
fn any_seed_is_accepted_and_reproducible() {
    // seeds are stored as given and passed back; the extremes must not
    // overflow (meta steps add the step number to the seed)
    let tasks = synthetic(4, 60, 2);
    for seed in [i64::MIN, -1, 0, i64::MAX] {
        let cfg = MetaConfig {
            meta_steps: 5,
            epochs: 1,
            seed,
            ..MetaConfig::default()
        };
        let (a, _) = meta_train(&tasks, 8, 1, &cfg, || {});
        let (b, _) = meta_train(&tasks, 8, 1, &cfg, || {});
        assert_eq!(a, b, "seed {seed}");
        let acfg = meta(3, Prior::default(), seed);
        assert_eq!(
            adapt(&a, &tasks[0].examples, &acfg).0,
            adapt(&a, &tasks[0].examples, &acfg).0
        );
    }
}

#[test]
fn adaptation_learns_what_differs_between_tenants() {
    let train = synthetic(10, 200, 11);
    let (head, report) = meta_train(&train, 8, 1, &MetaConfig::default(), || {});
    assert!(
        report.prior.side < FROZEN,
        "side weights should be adaptable: {:?}",
        report.prior
    );
    let test = synthetic(4, 300, 99);
    let cfg = meta(5, report.prior, 1);
    for t in &test {
        let (support, query) = t.examples.split_at(32);
        let before = task_auc(&head, query);
        let (adapted, rep) = adapt(&head, support, &cfg);
        let after = task_auc(&adapted, query);
        eprintln!(
            "{}: AUC {before:.3} -> {after:.3} ({rep:?}) {:?}",
            t.tenant, report.prior
        );
        assert!(
            after > before + 0.05,
            "{}: AUC {before:.3} -> {after:.3} ({rep:?})",
            t.tenant
        );
    }
}

#[test]
fn adaptation_with_nothing_to_learn_does_not_hurt() {
    // every tenant identical: the held-out slice stops useless steps
    let mut tasks = synthetic(6, 300, 5);
    for t in tasks.iter_mut() {
        for e in t.examples.iter_mut() {
            e.y = if e.x[0] > 0.0 { 1.0 } else { 0.0 };
        }
    }
    let (head, report) = meta_train(&tasks, 8, 1, &MetaConfig::default(), || {});
    let cfg = meta(5, report.prior, 2);
    for t in &tasks {
        let (support, query) = t.examples.split_at(16);
        let (adapted, _) = adapt(&head, support, &cfg);
        assert!(task_auc(&adapted, query) >= task_auc(&head, query) - 0.01);
    }
}

#[test]
fn meta_adaptation_never_changes_the_text_weights() {
    let tasks = synthetic(3, 40, 8);
    let head = Head::new(8, 1);
    let cfg = meta(5, Prior::default(), 3);
    let (adapted, rep) = adapt(&head, &tasks[0].examples, &cfg);
    assert_eq!(rep.n, 40);
    for i in 0..head.params.len() {
        if head.group_of(i) == Group::W {
            assert_eq!(head.params[i], adapted.params[i]);
        }
    }
    // the adapted part did move, the taste included
    let m = head.moved(&adapted);
    assert!(m.taste > 0.0 && m.bias > 0.0, "{m:?}");
    let (full, _) = adapt(
        &head,
        &tasks[0].examples,
        &AdaptConfig {
            method: Method::Full,
            lr: 0.5,
            ..cfg
        },
    );
    assert!((0..head.params.len())
        .any(|i| head.group_of(i) == Group::W && full.params[i] != head.params[i]));
}

#[test]
fn adaptation_never_inverts_the_text_score() {
    // labels that contradict the text: the gain may shrink to zero, not below
    let mut tasks = synthetic(1, 64, 4);
    for e in tasks[0].examples.iter_mut() {
        e.f[0] = 0.0;
        e.y = if e.x[0] > 0.0 { 0.0 } else { 1.0 };
    }
    let mut head = Head::new(8, 1);
    head.params[0] = 3.0; // W_browse[0]: text says x[0] > 0 is good
    for e in tasks[0].examples.iter_mut() {
        e.b = 0;
    }
    let cfg = meta(
        10,
        Prior {
            gain: 0.016,
            side: 0.016,
            bias: 0.016,
            taste: 0.016,
            item: FROZEN,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        },
        0,
    );
    let (adapted, _) = adapt(&head, &tasks[0].examples, &cfg);
    assert!(adapted.small(0)[0] >= 0.0, "gain {}", adapted.small(0)[0]);
}

#[test]
fn empty_support_returns_the_start() {
    let head = Head::new(4, 0);
    let cfg = meta(5, Prior::default(), 0);
    let (same, rep) = adapt(&head, &[], &cfg);
    assert_eq!(same, head);
    assert_eq!(rep.n, 0);
}

/// Tenants that differ only in *which* items they like: tenant t likes
/// items along its own direction of the embedding space. No gain, side
/// weight or bias can express that; a taste can.
fn tastes(tenants: usize, per: usize, seed: u64) -> Vec<Task> {
    let dims = 8;
    let mut r = Rng::new(seed);
    let mut unit = move || (r.next_u64() % 20001) as f32 / 10000.0 - 1.0;
    (0..tenants)
        .map(|t| {
            let dir = t % dims;
            let sign = if (t / dims) % 2 == 0 { 1.0 } else { -1.0 };
            let examples = (0..per)
                .map(|_| {
                    let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
                    let mut v: Vec<f32> = (0..dims).map(|_| unit()).collect();
                    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|a| *a /= norm);
                    let f = vec![unit()];
                    let z = 6.0 * sign * v[dir] + 1.0 * f[0] + 0.5 * unit();
                    event(&u, &v, f, z)
                })
                .collect();
            task(t, examples)
        })
        .collect()
}

#[test]
fn a_taste_learns_which_items_a_tenant_prefers() {
    let train = tastes(24, 120, 21);
    let (head, report) = meta_train(&train, 8, 1, &MetaConfig::default(), || {});
    assert!(report.prior.taste < FROZEN, "{:?}", report.prior);
    // the global head itself has no taste
    assert!(head.params[head.taste_range()].iter().all(|&v| v == 0.0));
    let cfg = meta(5, report.prior, 1);
    // new tenants (other directions and signs), 32 events each
    let test = tastes(6, 400, 77);
    let mut gains = Vec::new();
    for t in &test {
        let (support, query) = t.examples.split_at(32);
        let before = task_auc(&head, query);
        let (adapted, _) = adapt(&head, support, &cfg);
        let after = task_auc(&adapted, query);
        assert!(head.moved(&adapted).taste > 0.0);
        gains.push(after - before);
    }
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    assert!(mean > 0.1, "mean AUC gain {mean:.3}: {gains:?}");
    assert!(gains.iter().all(|&g| g > 0.0), "{gains:?}");
}

#[test]
fn the_taste_stays_frozen_where_tenants_share_one_taste() {
    // every tenant likes the same direction: the global text weights
    // learn it; a per-tenant taste would only fit noise
    let mut tasks = tastes(12, 150, 3);
    for t in tasks.iter_mut() {
        for e in t.examples.iter_mut() {
            e.y = if e.x[0] + 0.3 * e.f[0] > 0.0 {
                1.0
            } else {
                0.0
            };
        }
    }
    let (head, report) = meta_train(&tasks, 8, 1, &MetaConfig::default(), || {});
    let cfg = meta(5, report.prior, 2);
    for t in &tasks {
        let (support, query) = t.examples.split_at(16);
        let (adapted, _) = adapt(&head, support, &cfg);
        let (before, after) = (task_auc(&head, query), task_auc(&adapted, query));
        assert!(
            after >= before - 0.01,
            "{}: {before:.3} -> {after:.3}",
            t.tenant
        );
    }
}

#[test]
fn a_prior_stored_before_the_taste_keeps_the_taste_frozen() {
    // 0.1.x heads store {"gain", "side", "bias"}: their tenants adapt
    // exactly as before (no taste, early stopping by cross-validation)
    let p: Prior =
        serde_json::from_value(serde_json::json!({"gain": 0.016, "side": 0.016, "bias": 0.016}))
            .unwrap();
    assert_eq!(p.taste, FROZEN);
    let tasks = synthetic(1, 40, 5);
    let head = Head::new(8, 1);
    let cfg = meta(5, p, 1);
    let (adapted, _) = adapt(&head, &tasks[0].examples, &cfg);
    let m = head.moved(&adapted);
    assert_eq!(m.taste, 0.0);
    assert!(m.side + m.bias + m.gain > 0.0, "{m:?}");
}

#[test]
fn the_posterior_tightens_with_events_and_keeps_the_prior_elsewhere() {
    let tasks = synthetic(1, 80, 21);
    let head = Head::new(8, 1);
    let cfg = meta(5, Prior::default(), 1);
    let (_, few) = adapt(&head, &tasks[0].examples[..10], &cfg);
    let (_, many) = adapt(&head, &tasks[0].examples, &cfg);
    let b = NB - 1; // the synthetic events' behaviour
    let prior = Posterior::from_prior(&cfg.prior, 1, 8);
    for i in 0..Posterior::width(1, 8) {
        assert!(few.posterior.precision(b)[i] >= prior.precision(b)[i]);
        assert!(many.posterior.precision(b)[i] >= few.posterior.precision(b)[i] - 1e-6);
    }
    // the bias (k + 1) learns from every event: 8 times the events,
    // several times the information (p(1 − p) falls as the fit sharpens)
    let data = |p: &Posterior| p.precision(b)[2] - prior.precision(b)[2];
    assert!(
        data(&many.posterior) > 3.0 * data(&few.posterior),
        "{} vs {}",
        data(&many.posterior),
        data(&few.posterior)
    );
    // behaviours without events keep the prior, centred at 0
    assert_eq!(many.posterior.precision(0), prior.precision(0));
    assert!(many.posterior.center(0).iter().all(|&c| c == 0.0));
    // the centre of b is its events' mean item
    let mean0: f32 = tasks[0].examples.iter().map(|e| e.x[0]).sum::<f32>() / 80.0;
    assert!((many.posterior.center(b)[0] - mean0).abs() < 1e-5);
}

#[test]
fn continuing_from_a_posterior_approximates_learning_from_everything() {
    // Bayesian updating: half the events, then the other half with the
    // first fit's posterior as the prior, lands near one fit on all of
    // them, and far nearer than forgetting the first half's precision
    // (the group prior again) or ignoring the first half
    let tasks = synthetic(1, 120, 4);
    let exs = &tasks[0].examples;
    let head = Head::new(8, 1);
    let cfg = meta(8, Prior::default(), 1);
    let (all, _) = adapt(&head, exs, &cfg);
    let (first, r1) = adapt(&head, &exs[..60], &cfg);
    let carried = AdaptConfig {
        posterior: Some(r1.posterior.clone()),
        ..cfg.clone()
    };
    let (seq, _) = adapt(&first, &exs[60..], &carried);
    let (reset, _) = adapt(&first, &exs[60..], &cfg);
    let b = NB - 1;
    let dist = |h: &Head| -> f64 {
        h.adapted(b)
            .iter()
            .zip(all.adapted(b))
            .map(|(a, c)| f64::from(a - c).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let norm = all
        .adapted(b)
        .iter()
        .map(|a| f64::from(*a).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        dist(&seq) < 0.25 * norm,
        "sequential {} vs |all| {norm}",
        dist(&seq)
    );
    assert!(
        dist(&seq) < dist(&reset),
        "{} vs {}",
        dist(&seq),
        dist(&reset)
    );
}

#[test]
fn conjugate_gradients_solve_the_newton_system() {
    // against the dense solve of the same (Σ w z zᵀ + diag(prec)) x = g
    let tasks = synthetic(1, 30, 9);
    let head = Head::new(8, 1);
    let all = centred(&head, &tasks[0].examples);
    let refs: Vec<&Centred> = all.iter().collect();
    let m = 1 + 2 + 8;
    let mut r = Rng::new(3);
    let w: Vec<f64> = refs
        .iter()
        .map(|_| 0.05 + (r.next_u64() % 100) as f64 / 500.0)
        .collect();
    let prec: Vec<f64> = (0..m).map(|i| 0.01 + i as f64 * 0.003).collect();
    let g: Vec<f64> = (0..m).map(|i| (i as f64 - 4.0) * 0.1).collect();
    let center: Vec<f64> = (0..8).map(|i| 0.05 * i as f64).collect();
    let x = conjugate_gradient(&refs, &w, &prec, &g, &center, &mut || {}).unwrap();
    let mut a = vec![0f64; m * m];
    let mut z = vec![0f64; m];
    for (e, &wi) in refs.iter().zip(&w) {
        z.iter_mut().for_each(|v| *v = 0.0);
        e.axpy(1.0, &mut z, &center);
        for i in 0..m {
            for j in 0..m {
                a[i * m + j] += wi * z[i] * z[j];
            }
        }
    }
    for i in 0..m {
        a[i * m + i] += prec[i];
    }
    let want = solve(&mut a, &mut g.clone(), m).unwrap();
    for i in 0..m {
        assert!(
            (x[i] - want[i]).abs() < 1e-6 * (1.0 + want[i].abs()),
            "{i}: {} vs {}",
            x[i],
            want[i]
        );
    }
}

#[test]
fn the_global_head_ranks_within_a_tenant_at_least_as_well_as_popularity() {
    // f0 = the item's popularity (ranks within a tenant); f1 = the
    // tenant's own generosity (constant within a tenant, so it says
    // nothing about which of a tenant's items it likes); the text is
    // noise the text weights can fit on training events
    let dims = 8;
    let mut r = Rng::new(17);
    let mut unit = move || (r.next_u64() % 20001) as f32 / 10000.0 - 1.0;
    let mut tasks: Vec<Task> = (0..30)
        .map(|t| {
            let generosity = unit() * 2.0;
            let examples = (0..80)
                .map(|_| {
                    let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
                    let v: Vec<f32> = (0..dims).map(|_| unit()).collect();
                    let pop = unit();
                    let z = 1.5 * pop + generosity + 1.5 * unit();
                    Example {
                        x: text_features(&u, &v),
                        f: vec![pop, generosity / 2.0],
                        b: NB - 1,
                        y: if z > 0.0 { 1.0 } else { 0.0 },
                        item: None,
                    }
                })
                .collect();
            task(t, examples)
        })
        .collect();
    let test = tasks.split_off(20);
    let (head, _) = meta_train(&tasks, dims, 2, &MetaConfig::default(), || {});
    let (mut by_head, mut by_pop) = (0.0, 0.0);
    for t in &test {
        by_head += task_auc(&head, &t.examples);
        let s: Vec<f64> = t.examples.iter().map(|e| f64::from(e.f[0])).collect();
        let y: Vec<bool> = t.examples.iter().map(|e| e.y > 0.5).collect();
        by_pop += auc(&s, &y).unwrap();
    }
    let (by_head, by_pop) = (by_head / test.len() as f64, by_pop / test.len() as f64);
    assert!(
        by_head >= by_pop - 0.005,
        "head {by_head:.4} vs popularity {by_pop:.4}"
    );
}

#[test]
fn separable_events_give_bounded_weights() {
    // one side feature splits every tenant's labels exactly: Newton
    // without a line search overshot to logits past exp's range
    let mut tasks = synthetic(6, 60, 13);
    for t in tasks.iter_mut() {
        for e in t.examples.iter_mut() {
            e.y = if e.f[0] > 0.0 { 1.0 } else { 0.0 };
        }
    }
    let (head, _) = meta_train(&tasks, 8, 1, &MetaConfig::default(), || {});
    let cfg = meta(
        5,
        Prior {
            gain: 0.016,
            side: 0.016,
            bias: 0.016,
            taste: 0.03,
            item: FROZEN,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        },
        1,
    );
    let (adapted, _) = adapt(&head, &tasks[0].examples, &cfg);
    for h in [&head, &adapted] {
        assert!(h.params.iter().all(|p| p.is_finite()));
        for e in &tasks[1].examples {
            let z = h.logit(e.b, &e.x, &e.f);
            assert!(z.abs() < 100.0, "logit {z}");
        }
    }
}

/// Items that sell at their own rates, whatever their text: meta-training
/// keeps effects that follow the rates because they lift held-out tenants,
/// and estimates how much tenants differ.
#[test]
fn meta_training_learns_what_sells_beyond_the_text() {
    let dims = 8;
    let mut r = Rng::new(21);
    let n_items = 60;
    let items: Vec<(Vec<f32>, f64)> = (0..n_items)
        .map(|_| {
            let v: Vec<f32> = (0..dims)
                .map(|_| crate::rng::normal(&mut r) as f32)
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            (
                v.iter().map(|x| x / n).collect(),
                1.5 * crate::rng::normal(&mut r),
            )
        })
        .collect();
    let u = vec![0.5f32; dims];
    let mut tasks: Vec<Task> = (0..20)
        .map(|t| {
            // odd tenants like the odd items more: tenants differ
            let examples = (0..240)
                .map(|_| {
                    let i = r.below(n_items);
                    let twist = if (t + i).is_multiple_of(2) { 1.0 } else { -1.0 };
                    let p = crate::metrics::sigmoid((items[i].1 + twist) as f32);
                    let mut e = event(&u, &items[i].0, vec![], 0.0);
                    e.y = if crate::rng::uniform(&mut r) < f64::from(p) {
                        1.0
                    } else {
                        0.0
                    };
                    e.item = Some(i as i64);
                    e
                })
                .collect();
            task(t, examples)
        })
        .collect();
    // an item only two tenants sell, always bought: their sales stay private
    for j in 0..40 {
        let mut e = event(&u, &items[0].0, vec![], 1.0);
        e.item = Some(999);
        tasks[j % 2].examples.push(e);
    }
    let cfg = MetaConfig {
        meta_steps: 20,
        ..MetaConfig::default()
    };
    let (head, report) = meta_train(&tasks, dims, 0, &cfg, || {});
    let it = &report.items;
    assert_eq!(it.items, n_items, "{it:?}");
    assert_eq!(head.items.effect(Some(999), NB - 1), 0.0);
    assert!(
        it.val_auc_after.unwrap() > it.val_auc_before.unwrap() + 0.03,
        "{it:?}"
    );
    assert!(it.tenant_precision.is_some(), "{it:?}");
    assert_eq!(report.prior.item, head.items.tenant_prior);
    // the effects follow the true rates
    let (xs, ys): (Vec<f64>, Vec<f64>) = items
        .iter()
        .enumerate()
        .map(|(i, (_, p))| (*p, f64::from(head.items.effect(Some(i as i64), NB - 1))))
        .unzip();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mx, my) = (mean(&xs), mean(&ys));
    let cov: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>().sqrt();
    let sy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum::<f64>().sqrt();
    assert!(cov / (sx * sy) > 0.7, "correlation {}", cov / (sx * sy));
    // one tenant: none held out to judge by, so no effects
    let (head, report) = meta_train(&tasks[..1], dims, 0, &cfg, || {});
    assert!(head.items.is_empty() && report.items.items == 0);
}

/// Stores that each sell their own catalogue share no item, so the
/// platform keeps no effect; their best sellers still differ from what
/// the text predicts, and meta-training measures by how much, so that a
/// new store learns its own from its events.
#[test]
fn stores_without_shared_items_still_learn_their_own_best_sellers() {
    let dims = 4;
    let mut r = Rng::new(31);
    let u = vec![0.5f32; dims];
    let v = vec![0.5f32; dims];
    // store t sells items 100·t .. 100·t + 12, each at its own rate
    let store = |t: usize, events: usize, r: &mut Rng| -> Vec<Example> {
        let rates: Vec<f64> = (0..12).map(|_| 1.5 * crate::rng::normal(r)).collect();
        (0..events)
            .map(|j| {
                let i = j % 12;
                let p = crate::metrics::sigmoid(rates[i] as f32);
                let y = crate::rng::uniform(r) < f64::from(p);
                let mut e = event(&u, &v, vec![], if y { 1.0 } else { -1.0 });
                e.item = Some((100 * t + i) as i64);
                e
            })
            .collect()
    };
    let tasks: Vec<Task> = (0..20).map(|t| task(t, store(t, 240, &mut r))).collect();
    let cfg = MetaConfig {
        meta_steps: 10,
        ..MetaConfig::default()
    };
    let (head, report) = meta_train(&tasks, dims, 0, &cfg, || {});
    assert_eq!(report.items.items, 0, "{:?}", report.items);
    assert!(head.items.is_empty());
    let lt = report.items.tenant_precision.expect("a tenant prior");
    // the true spread of a store's items is 1.5² apart: precision ≈ 0.44
    assert!(lt > 0.15 && lt < 1.5, "{lt}");
    assert_eq!(report.prior.item, lt);
    // a new store learns its own best sellers from 120 events
    let new = store(77, 240, &mut r);
    let (adapted, _) = adapt(&head, &new[..120], &meta(5, report.prior, 1));
    assert!(adapted.items.len() == 12, "{}", adapted.items.len());
    let item_auc = |h: &Head| {
        let s: Vec<f64> = new[120..]
            .iter()
            .map(|e| f64::from(h.example_logit(e)))
            .collect();
        let y: Vec<bool> = new[120..].iter().map(|e| e.y > 0.5).collect();
        auc(&s, &y).unwrap()
    };
    assert!(
        item_auc(&adapted) > item_auc(&head) + 0.1,
        "{} {}",
        item_auc(&adapted),
        item_auc(&head)
    );
    // stores whose items all sell alike: nothing to learn, and what noise
    // leaves is too small to move an effect
    let alike: Vec<Task> = (0..20)
        .map(|t| {
            let mut ex = store(t, 240, &mut r);
            for e in &mut ex {
                e.y = if crate::rng::uniform(&mut r) < 0.5 {
                    1.0
                } else {
                    0.0
                };
            }
            task(t, ex)
        })
        .collect();
    let (head, report) = meta_train(&alike, dims, 0, &cfg, || {});
    // noise alone leaves nothing, or a prior too tight to move an effect
    // by more than about 0.2 in logit
    assert!(head.items.tenant_prior >= 20.0, "{:?}", report.items);
}

/// A tenant's events move its own effects from the platform's: an item it
/// always buys goes up, one it never buys down, the rest stay; a Bayesian
/// update in two halves lands where one fit on all does.
#[test]
fn adaptation_learns_a_tenant_s_own_item_effects() {
    let dims = 4;
    let mut head = Head::new(dims, 0);
    head.items =
        crate::items::ItemEffects::from_stored(vec![0, 1, 2], vec![0.0; 3 * NB], None, 1.0)
            .unwrap();
    let v = vec![0.5f32; dims];
    let support: Vec<Example> = (0..60)
        .map(|j| {
            let i = j % 2;
            let mut e = event(&v, &v, vec![], if i == 0 { 1.0 } else { -1.0 });
            e.item = Some(i as i64);
            e
        })
        .collect();
    let cfg = meta(5, Prior::frozen(), 1);
    let (adapted, report) = adapt(&head, &support, &cfg);
    let b = NB - 1;
    assert!(adapted.items.effect(Some(0), b) > 0.5);
    assert!(adapted.items.effect(Some(1), b) < -0.5);
    assert_eq!(adapted.items.effect(Some(2), b), 0.0);
    assert!(adapted.items.precision(Some(0), b) > 2.0);
    assert_eq!(adapted.items.precision(Some(2), b), 1.0);
    assert!(report.loss_after < report.loss_before);
    // in halves, continuing from the first half's posterior
    let (first, r1) = adapt(&head, &support[..30], &cfg);
    let carried = AdaptConfig {
        posterior: Some(r1.posterior),
        ..cfg.clone()
    };
    let (second, _) = adapt(&first, &support[30..], &carried);
    for i in 0..2 {
        let (a, s) = (
            adapted.items.effect(Some(i), b),
            second.items.effect(Some(i), b),
        );
        assert!((a - s).abs() <= 0.05 * a.abs(), "item {i}: {a} vs {s}");
    }
    // a head whose tenants keep the platform's effects
    let mut frozen = head.clone();
    frozen.items.tenant_prior = FROZEN;
    let (kept, _) = adapt(&frozen, &support, &cfg);
    assert_eq!(kept.items, frozen.items);
}

/// The prior search's folds: each held-out tenant judged exactly once, by
/// a fold that holds none of the others it is calibrated on.
#[test]
fn prior_folds_are_disjoint_and_cover_the_judged_tenants() {
    for (n, want) in [(9usize, 4usize), (3, 3), (1, 1), (0, 1)] {
        let judge: Vec<usize> = (10..10 + n).collect();
        let f = super::meta::folds(&judge, 4);
        assert_eq!(f.len(), want, "{n} tenants");
        let mut all: Vec<usize> = f.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, judge, "every judged tenant exactly once");
    }
}

/// A tenant that clicks a tenth as often as its start predicts: with a
/// frozen bias only `pg_ecom.bias_prior = 'tenant'` lets the adapted
/// head's level follow (bias_prior.rs), and the report says what chose
/// it; under 'global' the level stays where meta-training froze it.
#[test]
fn a_tenant_at_another_base_rate_moves_a_frozen_bias() {
    let dims = 8;
    let start = Head::new(dims, 0);
    let mut r = Rng::new(11);
    let support: Vec<Example> = (0..400)
        .map(|i| {
            let u: Vec<f32> = (0..dims)
                .map(|_| crate::rng::normal(&mut r) as f32)
                .collect();
            let v: Vec<f32> = (0..dims)
                .map(|_| crate::rng::normal(&mut r) as f32)
                .collect();
            event(&u, &v, Vec::new(), if i % 20 == 0 { 1.0 } else { -1.0 })
        })
        .collect();
    let prior = Prior {
        bias: FROZEN,
        ..Prior::default()
    };
    let rate = |h: &Head| {
        support
            .iter()
            .map(|e| f64::from(crate::metrics::sigmoid(h.example_logit(e))))
            .sum::<f64>()
            / support.len() as f64
    };
    let before = rate(&start);
    let (held, report) = adapt(&start, &support, &meta(5, prior, 1));
    assert!(report.bias_choice.is_none());
    assert_eq!(report.prior.bias, FROZEN);
    let (freed, report) = adapt(
        &start,
        &support,
        &AdaptConfig {
            bias_prior_from_events: true,
            ..meta(5, prior, 1)
        },
    );
    let choice = report.bias_choice.expect("a fresh meta fit chooses");
    assert_eq!(choice.meta, FROZEN);
    assert!(choice.chosen < 10.0, "{choice:?}");
    assert_eq!(
        (report.prior.bias, report.prior.bias_meta),
        (choice.chosen, Some(FROZEN))
    );
    let (r_held, r_freed) = (rate(&held), rate(&freed));
    assert!(
        (r_freed - 0.05).abs() < 0.02 && (r_held - 0.05).abs() > 0.2,
        "predicted rate before {before}, frozen {r_held}, freed {r_freed}"
    );
}
