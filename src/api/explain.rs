//! ecom_explain: one score of ecom_predict, term by term.

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use super::predict::{behaviour, pair_inputs};
use pg_ecom_core::head::BEHAVIOURS;
use pg_ecom_core::items::item_key;
use pg_ecom_core::metrics::sigmoid;

/// Why `ecom_predict(tenant, context, item, behaviour, features)` gives its
/// score: the logit split into the text term (the text score W·x learned
/// across tenants, times the serving head's text gain), the tenant's taste
/// (τ·v: how much this tenant's own preference in embedding space likes the
/// item; 0 for the global head), one term per side feature, the bias, and
/// the item's own effect (what sells beyond its text; 0 for an item the
/// head has none for).
/// The terms add up to `logit`, and `score` = σ(logit) is exactly what
/// ecom_predict returns.
#[pg_extern(stable, parallel_safe, cost = 10000)]
fn ecom_explain(
    tenant: Option<&str>,
    context: Option<&str>,
    item: Option<&str>,
    behaviour: default!(Option<&str>, "'purchase'"),
    features: default!(Option<Array<'_, f32>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<JsonB> {
    let (context, item, b) = (context?, item?, self::behaviour(behaviour?));
    let (head, f, e) = pair_inputs(fcinfo, tenant, context, item, &features);
    let x = head
        .head
        .explain_pair(b, &e[0], &e[1], f, Some(item_key(item)));
    Some(JsonB(json!({
        "tenant": tenant,
        "served_by": {"tenant": head.tenant, "version": head.version},
        "behaviour": BEHAVIOURS[b],
        "score": f64::from(sigmoid(x.logit)), // = predict_pair's, same arithmetic
        "logit": f64::from(x.logit),
        "terms": {
            "text": f64::from(x.text),
            "taste": f64::from(x.taste),
            "side": x.side.iter().map(|&t| f64::from(t)).collect::<Vec<_>>(),
            "bias": f64::from(x.bias),
            "item": f64::from(x.item),
        },
        "text": {"score": f64::from(x.text_score), "gain": f64::from(x.gain)},
    })))
}
