//! Stage 5c: how sure a score is — the credible interval of a click (or
//! any behaviour's) probability under the head's Laplace posterior.
//!
//! An item's logit is linear in the adapted part, so under the Gaussian
//! posterior it is Gaussian too, with the standard deviation
//! `draws::logit_sd` gives; σ is monotone, so the interval of the
//! probability is σ of the logit's interval, with no draws and no seed.
//! It is the same belief Thompson sampling draws from: what `ecom_serve`
//! explores is what these intervals say is unsure.

use crate::metrics::sigmoid;

/// The equal-tailed `level` interval [lower, upper] of σ(z) for
/// z ~ N(`logit`, `sd`²), `level` in (0, 1). The quantile comes from the
/// tail (1 − level)/2, which stays exact for a level within 2⁻⁵³ of 1
/// (0.5 + level/2 would round to 1 there), and the bounds are σ in f64, so
/// they reach 0 or 1 only beyond a logit of ±37. They always hold
/// `probability`, the f32 σ(`logit`) scoring returns, even when sd = 0.
pub fn credible(logit: f64, sd: f64, level: f64) -> (f64, f64) {
    let q = -normal_quantile((1.0 - level) / 2.0) * sd;
    let p = f64::from(sigmoid(logit as f32));
    if q == 0.0 {
        return (p, p); // a frozen head is sure
    }
    let s = |z: f64| 1.0 / (1.0 + (-z).exp());
    (s(logit - q).min(p), s(logit + q).max(p))
}

/// Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation (relative
/// error below 1.2·10⁻⁹), far finer than any posterior it is used with.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{normal, Rng};

    #[test]
    fn quantiles_are_the_normal_s() {
        for (p, z) in [
            (0.5, 0.0),
            (0.95, 1.644_853_626_951_472_2),
            (0.975, 1.959_963_984_540_054),
            (0.999, 3.090_232_306_167_813_5),
            (0.01, -2.326_347_874_040_841),
        ] {
            assert!(
                (normal_quantile(p) - z).abs() < 1e-8,
                "{p}: {}",
                normal_quantile(p)
            );
        }
    }

    /// A 90% interval holds 90% of σ(z) for z drawn from the logit's
    /// Gaussian, and narrows as the logit grows surer.
    #[test]
    fn an_interval_holds_its_level() {
        let (m, sd) = (-0.7, 0.8);
        let (lo, hi) = credible(m, sd, 0.9);
        assert!(lo < f64::from(sigmoid(m as f32)) && f64::from(sigmoid(m as f32)) < hi);
        let mut rng = Rng::new(3);
        let n = 100_000;
        let inside = (0..n)
            .filter(|_| {
                let p = f64::from(sigmoid((m + sd * normal(&mut rng)) as f32));
                lo <= p && p <= hi
            })
            .count();
        let share = inside as f64 / f64::from(n);
        assert!((share - 0.9).abs() < 0.005, "{share}");
        let (lo2, hi2) = credible(m, sd / 4.0, 0.9);
        assert!(lo2 > lo && hi2 < hi);
        assert_eq!(credible(m, 0.0, 0.9).0, credible(m, 0.0, 0.9).1);
    }

    /// Levels at the edges of (0, 1) and logits far out give finite bounds
    /// that hold the f32 probability scoring returns.
    #[test]
    fn extreme_levels_and_logits_stay_finite_and_ordered() {
        let near_one = 1.0 - f64::EPSILON / 2.0;
        assert_eq!(0.5 + near_one / 2.0, 1.0); // what the tail form avoids
        for level in [near_one, 0.999_999, 0.5, 1e-12, f64::MIN_POSITIVE] {
            for (m, sd) in [
                (0.3, 0.5),
                (25.0, 3.0),
                (-25.0, 3.0),
                (1.0, 0.0),
                (-0.2, 1e-9),
            ] {
                let (lo, hi) = credible(m, sd, level);
                let p = f64::from(sigmoid(m as f32));
                assert!(lo.is_finite() && hi.is_finite(), "{level} {m} {sd}");
                assert!(
                    0.0 <= lo && lo <= p && p <= hi && hi <= 1.0,
                    "{level} {m} {sd}: {lo} {p} {hi}"
                );
            }
        }
        // f64 bounds: σ(13.6) is not rounded to 1 (in f32 it would be close)
        let (lo, hi) = credible(12.0, 1.0, 0.9);
        assert!(lo < hi && hi < 1.0, "{lo} {hi}");
    }
}
