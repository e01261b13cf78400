//! The structured taste prior (taste.rs, taste_basis.rs), tested on
//! synthetic tenants whose tastes lie along two directions spread over
//! every coordinate of the embedding.

use std::sync::Arc;

use super::*;
use crate::head::{text_features, Example, Head, NB};
use crate::items::DEFAULT_MAX_ITEMS;
use crate::posterior::Posterior;
use crate::prior::{Prior, FROZEN};
use crate::rng::{normal, Rng};
use crate::taste::TasteBasis;

use super::solvers::solve;
use super::tests::task_auc;

const DIMS: usize = 24;

fn meta(prior: Prior) -> AdaptConfig {
    AdaptConfig {
        steps: 5,
        lr: 1.0,
        method: Method::Meta,
        prior,
        seed: 1,
        posterior: None,
        max_items: DEFAULT_MAX_ITEMS,
    }
}

/// Two fixed unit directions, dense in every coordinate.
fn planted() -> [Vec<f32>; 2] {
    let mut r = Rng::new(99);
    let mut dir = || {
        let v: Vec<f32> = (0..DIMS).map(|_| normal(&mut r) as f32).collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / n).collect::<Vec<f32>>()
    };
    [dir(), dir()]
}

/// Tenants whose taste is a1·d1 + a2·d2 (a ~ N(0, 3²)), on random unit
/// items; a purchase when the taste's score plus noise is positive.
fn low_rank_tenants(tenants: usize, per: usize, seed: u64) -> Vec<Task> {
    let d = planted();
    let mut r = Rng::new(seed);
    (0..tenants)
        .map(|t| {
            let (a1, a2) = (3.0 * normal(&mut r), 3.0 * normal(&mut r));
            let taste: Vec<f64> = (0..DIMS)
                .map(|i| a1 * f64::from(d[0][i]) + a2 * f64::from(d[1][i]))
                .collect();
            let examples = (0..per)
                .map(|_| {
                    let mut v: Vec<f32> = (0..DIMS).map(|_| normal(&mut r) as f32).collect();
                    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|a| *a /= n);
                    let u: Vec<f32> = (0..DIMS).map(|_| normal(&mut r) as f32).collect();
                    let z: f64 = taste
                        .iter()
                        .zip(&v)
                        .map(|(a, b)| a * f64::from(*b))
                        .sum::<f64>()
                        + 0.5 * normal(&mut r);
                    Example {
                        x: text_features(&u, &v),
                        f: vec![],
                        b: NB - 1,
                        y: if z > 0.0 { 1.0 } else { 0.0 },
                        item: None,
                    }
                })
                .collect();
            Task {
                tenant: format!("t{t}"),
                examples,
                ordered: false,
            }
        })
        .collect()
}

#[test]
fn meta_training_finds_the_directions_tastes_lie_along() {
    let train = low_rank_tenants(40, 200, 1);
    let (head, report) = meta_train(&train, DIMS, 0, &MetaConfig::default(), || {});
    let basis = head.basis.clone().expect("a basis");
    let b = NB - 1;
    assert!(basis.rank(b) >= 2, "{:?}", report.taste);
    // the planted directions lie in the span of the top two
    for d in planted() {
        let in_span: f64 = (0..2)
            .map(|i| {
                basis
                    .row(b, i)
                    .iter()
                    .zip(&d)
                    .map(|(a, c)| f64::from(a * c))
                    .sum::<f64>()
                    .powi(2)
            })
            .sum();
        assert!(in_span > 0.8, "{in_span}");
    }
    // new tenants, 16 events each: the basis beats the isotropic prior
    let test = low_rank_tenants(12, 216, 7);
    let cfg = meta(report.prior);
    let mut iso_head = head.clone();
    iso_head.basis = None;
    let iso_cfg = meta(Prior {
        taste: 1.0,
        ..report.prior
    });
    let (mut with, mut without) = (0.0, 0.0);
    for t in &test {
        let (support, query) = t.examples.split_at(16);
        with += task_auc(&adapt(&head, support, &cfg).0, query) / 12.0;
        without += task_auc(&adapt(&iso_head, support, &iso_cfg).0, query) / 12.0;
    }
    assert!(
        with > without + 0.03,
        "basis {with:.3} vs isotropic {without:.3}"
    );
    assert!(report.taste.val_auc_after > report.taste.val_auc_before);
}

/// A basis of the planted directions (orthonormalised) with variances
/// `var`, for behaviour NB − 1.
fn planted_basis(var: [f32; 2]) -> Arc<TasteBasis> {
    let [d1, d2] = planted();
    let dot: f32 = d1.iter().zip(&d2).map(|(a, b)| a * b).sum();
    let mut e2: Vec<f32> = d2.iter().zip(&d1).map(|(a, b)| a - dot * b).collect();
    let n = e2.iter().map(|a| a * a).sum::<f32>().sqrt();
    e2.iter_mut().for_each(|a| *a /= n);
    let mut basis = TasteBasis::empty(DIMS);
    basis.var[NB - 1] = var.to_vec();
    basis.u[NB - 1] = d1.iter().chain(&e2).copied().collect();
    Arc::new(basis)
}

/// Σ⁻¹ for Σ = U·Λ·Uᵀ + s²·I, by a dense solve per column: what the
/// augmented coordinates must never need, computed here to check them.
fn dense_inverse(basis: &TasteBasis, s2: f64) -> Vec<f64> {
    let b = NB - 1;
    let mut sigma = vec![0f64; DIMS * DIMS];
    for i in 0..DIMS {
        sigma[i * DIMS + i] = s2;
        for (r, var) in basis.var[b].iter().enumerate() {
            let u = basis.row(b, r);
            for j in 0..DIMS {
                sigma[i * DIMS + j] += f64::from(*var) * f64::from(u[i]) * f64::from(u[j]);
            }
        }
    }
    let mut inv = vec![0f64; DIMS * DIMS];
    for c in 0..DIMS {
        let mut e = vec![0f64; DIMS];
        e[c] = 1.0;
        let x = solve(&mut sigma.clone(), &mut e, DIMS).unwrap();
        for r in 0..DIMS {
            inv[r * DIMS + c] = x[r];
        }
    }
    inv
}

#[test]
fn the_augmented_map_is_the_map_under_the_full_covariance() {
    // at the result, the gradient of Σ log-loss + ½θᵀPθ in centred
    // coordinates, with P's taste block Σ⁻¹ formed densely, is zero
    let tasks = low_rank_tenants(1, 40, 3);
    let exs = &tasks[0].examples;
    let mut head = Head::new(DIMS, 0);
    head.basis = Some(planted_basis([2.0, 0.5]));
    let prior = Prior {
        gain: 1.6,
        bias: 1.6,
        taste: 4.0,
        ..Prior::default()
    };
    let (adapted, _) = adapt(
        &head,
        exs,
        &AdaptConfig {
            steps: 40,
            ..meta(prior)
        },
    );
    let b = NB - 1;
    let n = exs.len() as f64;
    let vbar: Vec<f64> = (0..DIMS)
        .map(|j| exs.iter().map(|e| f64::from(e.x[j])).sum::<f64>() / n)
        .collect();
    let th = adapted.adapted(b);
    let tau: Vec<f64> = th[2..].iter().map(|&t| f64::from(t)).collect();
    let gain = f64::from(th[0]);
    let cbar = f64::from(th[1]) + tau.iter().zip(&vbar).map(|(a, c)| a * c).sum::<f64>();
    let inv = dense_inverse(head.basis.as_ref().unwrap(), 0.25);
    let mut grad = vec![0f64; 2 + DIMS];
    for e in exs {
        let s = f64::from(head.text_score(b, &e.x));
        let z: f64 = gain * s
            + cbar
            + tau
                .iter()
                .zip(&e.x)
                .zip(&vbar)
                .map(|((t, v), c)| t * (f64::from(*v) - c))
                .sum::<f64>();
        let r = 1.0 / (1.0 + (-z).exp()) - f64::from(e.y);
        grad[0] += r * s;
        grad[1] += r;
        for j in 0..DIMS {
            grad[2 + j] += r * (f64::from(e.x[j]) - vbar[j]);
        }
    }
    grad[0] += 1.6 * (gain - 1.0);
    grad[1] += 1.6 * cbar;
    let mut prior_pull = 0f64;
    for i in 0..DIMS {
        let p: f64 = (0..DIMS).map(|j| inv[i * DIMS + j] * tau[j]).sum();
        grad[2 + i] += p;
        prior_pull += p * p;
    }
    let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!(prior_pull.sqrt() > 0.5, "the prior must pull: {prior_pull}");
    assert!(norm < 1e-3 * n, "gradient {norm} at the MAP");
}

/// Adapting on the first half, then on the second from the first's
/// posterior, against one fit on all: how far apart, relative to how far
/// the one fit moved.
fn sequential_gap(head: &Head, prior: Prior, exs: &[Example]) -> f64 {
    let cfg = AdaptConfig {
        steps: 10,
        ..meta(prior)
    };
    let (all, _) = adapt(head, exs, &cfg);
    let half = exs.len() / 2;
    let (first, r1) = adapt(head, &exs[..half], &cfg);
    let carried = AdaptConfig {
        posterior: Some(r1.posterior),
        ..cfg
    };
    let (seq, _) = adapt(&first, &exs[half..], &carried);
    let b = NB - 1;
    let dist = |a: &[f32], c: &[f32]| -> f64 {
        a.iter()
            .zip(c)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    dist(&seq.adapted(b), &all.adapted(b)) / dist(&all.adapted(b), &head.adapted(b))
}

#[test]
fn sequential_updates_match_a_batch_fit_within_five_percent() {
    let tasks = low_rank_tenants(3, 240, 11);
    let mut head = Head::new(DIMS, 0);
    head.basis = Some(planted_basis([9.0, 9.0]));
    for t in &tasks {
        for taste in [FROZEN, 30.0] {
            let prior = Prior {
                taste,
                ..Prior::default()
            };
            let gap = sequential_gap(&head, prior, &t.examples);
            assert!(gap < 0.05, "{}: taste {taste}: {gap:.3}", t.tenant);
        }
    }
}

#[test]
fn draws_have_the_block_posterior_s_covariance() {
    // an item's logit varies by zᵀB⁻¹z along [gain, bias, α] plus
    // Σ (v − v̄)²/precision along β, in both ways of drawing
    let tasks = low_rank_tenants(1, 60, 5);
    let mut head = Head::new(DIMS, 0);
    head.basis = Some(planted_basis([2.0, 0.5]));
    let b = NB - 1;
    let mut a = head.adapted(b);
    a[0] = 6.0; // far from 0: the gain's projection never bites
    head.set_adapted(b, &a);
    let prior = Prior {
        taste: 4.0,
        ..Prior::default()
    };
    let (_, rep) = adapt(&head, &tasks[0].examples, &meta(prior));
    let post = rep.posterior;
    let (block, w) = post.block(b).unwrap();
    assert_eq!(w, 4);
    let e = &tasks[0].examples[0];
    let v = &e.x[..DIMS];
    let s = f64::from(head.text_score(b, &e.x));
    let c: Vec<f64> = post.center(b).iter().map(|&x| f64::from(x)).collect();
    let mut z = vec![s, 1.0];
    z.extend(head.basis.as_ref().unwrap().project(b, v, &c));
    let mut bl: Vec<f64> = block.iter().map(|&x| f64::from(x)).collect();
    let mut zz = z.clone();
    let bz = solve(&mut bl, &mut zz, w).unwrap();
    let mut want: f64 = z.iter().zip(&bz).map(|(a, b)| a * b).sum();
    want += v
        .iter()
        .zip(&c)
        .zip(&post.precision(b)[2..])
        .map(|((x, ci), p)| (f64::from(*x) - ci).powi(2) / f64::from(*p))
        .sum::<f64>();
    let mean = f64::from(head.logit(b, &e.x, &e.f));
    let n = 40_000;
    let mut rng = Rng::new(8);
    let mut sq = 0.0;
    for _ in 0..n {
        let th = post.sample(&head, b, &mut rng);
        let l = crate::posterior::logit_of(&th, s as f32, v, &[]);
        sq += (l - mean).powi(2) / f64::from(n);
    }
    assert!((sq / want - 1.0).abs() < 0.05, "sample {sq} vs {want}");
    let items = [crate::draws::Item {
        logit: mean,
        s: s as f32,
        v,
        f: &[],
        item_var: 0.0,
        key: None,
    }];
    let draws = crate::draws::ItemDraws::new(&post, &head, b, &items);
    let mut sq = 0.0;
    for _ in 0..n {
        sq += (draws.draw(&mut rng)[0] - mean).powi(2) / f64::from(n);
    }
    assert!((sq / want - 1.0).abs() < 0.05, "item draws {sq} vs {want}");
    // a credible interval's width: the same variance, exactly, undrawn
    let sd = crate::draws::logit_sd(&post, &head, b, &items)[0];
    assert!(
        (sd * sd / want - 1.0).abs() < 1e-4,
        "logit_sd {} vs {want}",
        sd * sd
    );
}

#[test]
fn a_posterior_carried_over_keeps_its_block() {
    let tasks = low_rank_tenants(1, 80, 2);
    let mut head = Head::new(DIMS, 0);
    head.basis = Some(planted_basis([2.0, 0.5]));
    let prior = Prior::default();
    let b = NB - 1;
    let (h1, r1) = adapt(&head, &tasks[0].examples[..40], &meta(prior));
    let carried = AdaptConfig {
        posterior: Some(r1.posterior.clone()),
        ..meta(prior)
    };
    let (_, r2) = adapt(&h1, &tasks[0].examples[40..], &carried);
    let (b1, w) = r1.posterior.block(b).unwrap();
    let (b2, _) = r2.posterior.block(b).unwrap();
    // information only grows: every diagonal entry, and the α part's
    for i in 0..w {
        assert!(b2[i * w + i] >= b1[i * w + i], "{i}");
    }
    // the stored form round-trips with the head's ranks
    let ranks = Some(head.basis.as_ref().unwrap().ranks());
    let w2 = r2.posterior.to_weights();
    assert_eq!(
        Posterior::from_weights(0, DIMS, &w2, ranks).unwrap(),
        r2.posterior
    );
}
