//! Fitting the small part of the global head within tenants: gain and side
//! weights with one free bias per tenant, by joint Newton.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::head::{Example, Head, NB};

use super::solvers::{log_loss64, solve};

// weak priors per event-sum: on the tenant biases (toward the global
// bias, so a tenant with one label does not run off to infinity) and
// on gain and side weights
const PREC: f64 = 1.0;

/// Fits gain and side weights of every behaviour to the tenants in `tasks`
/// (W and the taste fixed) with one free bias per tenant, then the global
/// bias to all their events pooled. The per-tenant biases absorb what
/// differs *between* tenants (one user rates more generously than another),
/// so gain and side weights are set by what ranks items *within* a tenant,
/// which is what a recommendation is. Fitted on pooled log-loss instead, the
/// text score earned its weight by telling generous users from strict ones,
/// and the global head ranked a user's items below the item-popularity
/// feature it was given.
pub(super) fn fit_within(
    head: &mut Head,
    tasks: &[Vec<&Example>],
    fit_gain: bool,
    between: &mut dyn FnMut(),
) {
    let k = head.k;
    let m = k + 1;
    let n: usize = tasks.iter().map(|t| t.len()).sum();
    if n == 0 {
        return;
    }
    for b in 0..NB {
        let Some(rows) = Rows::new(head, tasks, b) else {
            continue;
        };
        let start: Vec<f64> = head.small(b)[..m].iter().map(|&v| f64::from(v)).collect();
        let theta = rows.joint_newton(start, fit_gain, between);
        // 3. the global bias: what a tenant with no events of its own gets
        let c = rows.global_bias(&theta);
        let mut small: Vec<f32> = theta.iter().map(|&v| v as f32).collect();
        small.push(c as f32);
        if small.iter().all(|v| v.is_finite()) {
            head.set_small(b, &small);
        }
    }
}

/// Per tenant, its events of one behaviour as (z = [text score, side
/// features..], label), built once: W does not change here.
struct Rows {
    rows: Vec<Vec<(Vec<f64>, f64)>>,
    /// gain and side weights: the length of z and θ
    m: usize,
    /// the global bias at the start, which the tenant biases are pulled to
    c0: f64,
}

/// The Newton system of the joint fit at (θ, tenant biases): the bias block
/// of the Hessian is diagonal (`h_b`), `h_cross` holds each tenant's row of
/// the θ–bias block.
struct System {
    g_th: Vec<f64>,
    h_th: Vec<f64>,
    g_b: Vec<f64>,
    h_b: Vec<f64>,
    h_cross: Vec<f64>,
}

fn logit(z: &[f64], th: &[f64], bias: f64) -> f64 {
    z.iter().zip(th).map(|(a, c)| a * c).sum::<f64>() + bias
}

impl Rows {
    /// Behaviour b's rows, or None if no tenant has events of it.
    fn new(head: &Head, tasks: &[Vec<&Example>], b: usize) -> Option<Self> {
        let m = head.k + 1;
        let rows: Vec<Vec<(Vec<f64>, f64)>> = tasks
            .iter()
            .map(|t| {
                t.iter()
                    .filter(|e| e.b == b)
                    .map(|e| {
                        let mut z = Vec::with_capacity(m);
                        z.push(f64::from(head.text_score(b, &e.x)));
                        z.extend(e.f.iter().map(|&v| f64::from(v)));
                        (z, f64::from(e.y))
                    })
                    .collect()
            })
            .collect();
        if rows.iter().all(|r| r.is_empty()) {
            return None;
        }
        let c0 = f64::from(head.small(b)[m]);
        Some(Rows { rows, m, c0 })
    }

    /// Joint Newton on (θ, tenant biases) from θ = `theta`, the biases at
    /// the global one; returns θ. A feature nearly constant within a tenant
    /// (a user's own positive rate) is almost collinear with that tenant's
    /// bias, and alternating between the two crawls toward the joint
    /// optimum; the bias block of the Hessian is diagonal, so eliminating
    /// it (Schur complement) costs O(T·m²).
    fn joint_newton(
        &self,
        mut theta: Vec<f64>,
        fit_gain: bool,
        between: &mut dyn FnMut(),
    ) -> Vec<f64> {
        let mut biases = vec![self.c0; self.rows.len()];
        for _ in 0..12 {
            let system = self.system(&theta, &biases);
            let Some((dth, db)) = self.newton_step(system, fit_gain) else {
                break;
            };
            let moved = self.line_search(&mut theta, &mut biases, &dth, &db, fit_gain);
            between();
            if !moved {
                break;
            }
        }
        theta
    }

    fn system(&self, theta: &[f64], biases: &[f64]) -> System {
        let (m, nt, c0) = (self.m, self.rows.len(), self.c0);
        let mut g_th = vec![0f64; m];
        let mut h_th = vec![0f64; m * m];
        for i in 0..m {
            g_th[i] += PREC * theta[i];
            h_th[i * m + i] += PREC;
        }
        let mut g_b = vec![0f64; nt];
        let mut h_b = vec![PREC; nt];
        let mut h_cross = vec![0f64; nt * m];
        for (ti, t) in self.rows.iter().enumerate() {
            g_b[ti] += PREC * (biases[ti] - c0);
            for (zz, y) in t {
                let p = 1.0 / (1.0 + (-logit(zz, theta, biases[ti])).exp());
                let (r, w) = (p - y, (p * (1.0 - p)).max(1e-6));
                g_b[ti] += r;
                h_b[ti] += w;
                for i in 0..m {
                    g_th[i] += r * zz[i];
                    h_cross[ti * m + i] += w * zz[i];
                    for j in 0..m {
                        h_th[i * m + j] += w * zz[i] * zz[j];
                    }
                }
            }
        }
        System {
            g_th,
            h_th,
            g_b,
            h_b,
            h_cross,
        }
    }

    /// The Newton direction (δθ, δbiases), or None if the reduced system
    /// is singular.
    fn newton_step(&self, system: System, fit_gain: bool) -> Option<(Vec<f64>, Vec<f64>)> {
        let (m, nt) = (self.m, self.rows.len());
        let System {
            g_th,
            mut h_th,
            g_b,
            h_b,
            h_cross,
        } = system;
        // eliminate the biases: S = H_θθ − Σ_t h_t h_tᵀ / h_bb,t
        let mut rhs = g_th;
        for ti in 0..nt {
            let hc = &h_cross[ti * m..(ti + 1) * m];
            for i in 0..m {
                rhs[i] -= hc[i] * g_b[ti] / h_b[ti];
                for j in 0..m {
                    h_th[i * m + j] -= hc[i] * hc[j] / h_b[ti];
                }
            }
        }
        if !fit_gain {
            // the gain stays: its row and column say δgain = 0
            for j in 0..m {
                h_th[j] = 0.0;
                h_th[j * m] = 0.0;
            }
            h_th[0] = 1.0;
            rhs[0] = 0.0;
        }
        let dth = solve(&mut h_th, &mut rhs, m)?;
        let db: Vec<f64> = (0..nt)
            .map(|ti| {
                let hc = &h_cross[ti * m..(ti + 1) * m];
                let cross: f64 = hc.iter().zip(&dth).map(|(a, c)| a * c).sum();
                (g_b[ti] - cross) / h_b[ti]
            })
            .collect();
        Some((dth, db))
    }

    /// The joint objective: log-loss plus the weak priors.
    fn objective(&self, th: &[f64], bs: &[f64]) -> f64 {
        let mut o = 0.5 * PREC * th.iter().map(|v| v * v).sum::<f64>();
        for (ti, t) in self.rows.iter().enumerate() {
            o += 0.5 * PREC * (bs[ti] - self.c0).powi(2);
            for (zz, y) in t {
                o += log_loss64(logit(zz, th, bs[ti]), *y);
            }
        }
        o
    }

    /// Moves (θ, biases) along the Newton direction; false if no step was
    /// taken. Halves the step until the objective does not rise: separable
    /// events (a tenant whose labels one feature splits) make a full Newton
    /// step overshoot.
    fn line_search(
        &self,
        theta: &mut Vec<f64>,
        biases: &mut Vec<f64>,
        dth: &[f64],
        db: &[f64],
        fit_gain: bool,
    ) -> bool {
        let base = self.objective(theta, biases);
        let mut step = 1.0;
        for _ in 0..12 {
            let mut th: Vec<f64> = theta.iter().zip(dth).map(|(a, d)| a - step * d).collect();
            if !fit_gain {
                th[0] = theta[0];
            }
            th[0] = th[0].max(0.0);
            let bs: Vec<f64> = biases.iter().zip(db).map(|(a, d)| a - step * d).collect();
            if self.objective(&th, &bs) <= base + 1e-9 {
                (*theta, *biases) = (th, bs);
                return true;
            }
            step /= 2.0;
        }
        false
    }

    /// The global bias given θ, by Newton on all the tenants' events pooled.
    fn global_bias(&self, theta: &[f64]) -> f64 {
        let c0 = self.c0;
        let mut c = c0;
        for _ in 0..8 {
            let (mut g, mut hss) = (PREC * (c - c0), PREC);
            for (zz, y) in self.rows.iter().flatten() {
                let p = 1.0 / (1.0 + (-logit(zz, theta, c)).exp());
                g += p - y;
                hss += (p * (1.0 - p)).max(1e-6);
            }
            c -= g / hss;
        }
        c
    }
}
