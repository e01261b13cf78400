//! Checks shared by the wrappers that train: learning rates and counts.

use crate::pg::errors::PgError;

/// Learning rates above this only make training diverge.
pub(super) const MAX_LR: f64 = 100.0;
/// Ridge weights above this hold every weight of the head at zero.
pub(super) const MAX_L2: f64 = 100.0;
/// Step counts above this are a typo (the 4-fold step selection of
/// ecom_adapt keeps one loss per step and fold), not a wish.
pub(super) const MAX_STEPS: i32 = 10_000;

pub(super) fn positive(name: &str, v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 || v > MAX_LR {
        PgError::argument(format!(
            "{name} must be a positive number no larger than {MAX_LR}, got {v}"
        ))
        .raise();
    }
    v
}

pub(super) fn positive_int(name: &str, v: i32) -> usize {
    if v <= 0 {
        PgError::argument(format!("{name} must be positive, got {v}")).raise();
    }
    v as usize
}

pub(super) fn steps_in_range(name: &str, v: i32, min: i32) -> usize {
    if !(min..=MAX_STEPS).contains(&v) {
        PgError::argument(format!(
            "{name} must be between {min} and {MAX_STEPS}, got {v}"
        ))
        .raise();
    }
    v as usize
}
