//! ecom_predict_interval: one score of ecom_predict and how sure the
//! serving head is of it, from the same posterior Thompson sampling draws
//! from (core interval.rs).

use crate::store::heads::StoredHead;
use pg_ecom_core::draws::{logit_sd, Item};
use pg_ecom_core::interval::credible;
use pg_ecom_core::metrics::sigmoid;

/// (probability, lower, upper) for behaviour `b` of the pair (u, v) with
/// side features `f` and item key `key`; `level` in (0, 1).
pub fn pair(
    head: &StoredHead,
    b: usize,
    u: &[f32],
    v: &[f32],
    f: &[f32],
    key: i64,
    level: f64,
) -> (f64, f64, f64) {
    let h = &head.head;
    // ecom_predict's arithmetic, so that `probability` is its result
    let (s, z) = h.logit_pair(b, u, v, f, Some(key));
    let item = Item {
        logit: f64::from(z),
        s,
        v,
        f,
        item_var: h.items.variance(Some(key), b),
        key: Some(key),
    };
    let sd = logit_sd(&head.posterior, h, b, &[item])[0];
    let (lower, upper) = credible(f64::from(z), sd, level);
    (f64::from(sigmoid(z)), lower, upper)
}
