//! ecom_predict_interval: ecom_predict with its credible interval.

use crate::pg::errors::PgError;
use pgrx::prelude::*;

use super::predict::{behaviour, pair_of};
use crate::pipeline::interval;
use crate::store::heads::serving_head;
use pg_ecom_core::items::item_key;

/// `probability` = ecom_predict(tenant, context, item, behaviour,
/// features), and [lower, upper] the equal-tailed `level` credible
/// interval of that probability under the serving head's posterior (the
/// one Thompson sampling draws from; docs/modelling.md). One row; none
/// when context, item, behaviour or level is NULL.
#[pg_extern(stable, parallel_safe, cost = 10000)]
fn ecom_predict_interval(
    tenant: Option<&str>,
    context: Option<&str>,
    item: Option<&str>,
    behaviour: default!(Option<&str>, "'purchase'"),
    level: default!(Option<f64>, 0.9),
    features: default!(Option<Array<'_, f32>>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(probability, f64),
        name!(lower, f64),
        name!(upper, f64),
    ),
> {
    let (Some(context), Some(item), Some(behaviour), Some(level)) =
        (context, item, behaviour, level)
    else {
        return TableIterator::new(Vec::new());
    };
    let b = self::behaviour(behaviour);
    if !(level > 0.0 && level < 1.0) {
        PgError::argument(format!(
            "level must be between 0 and 1 (exclusive), got {level}"
        ))
        .raise();
    }
    // a set-returning function: no per-statement memo (fn_extra is the
    // SRF's), so the head is looked up per call
    let head = serving_head(super::tenant_or_global(tenant));
    let (f, e) = pair_of(&head, context, item, &features);
    let row = interval::pair(&head, b, &e[0], &e[1], f, item_key(item), level);
    TableIterator::new(vec![row])
}
