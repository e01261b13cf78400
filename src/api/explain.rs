//! ecom_explain: one score of ecom_predict, term by term.

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::json;

use super::predict::{behaviour, side_features, statement_head};
use crate::head::BEHAVIOURS;
use crate::model::embed_cached;
use crate::store::check_encoder;

/// Why `ecom_predict(tenant, context, item, behaviour, features)` gives its
/// score: the logit split into the text term (the text score W·x learned
/// across tenants, times the serving head's text gain), one term per side
/// feature, and the bias. The terms add up to `logit`, and `score` =
/// σ(logit) is exactly what ecom_predict returns.
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
    let head = statement_head(fcinfo, tenant);
    let f = side_features(&features, &head);
    let e = embed_cached(&[context, item]);
    check_encoder(&head, e[0].len());
    let x = head.head.explain_pair(b, &e[0], &e[1], f);
    Some(JsonB(json!({
        "tenant": tenant,
        "served_by": {"tenant": head.tenant, "version": head.version},
        "behaviour": BEHAVIOURS[b],
        "score": head.head.predict_pair(b, &e[0], &e[1], f),
        "logit": f64::from(x.logit),
        "terms": {
            "text": f64::from(x.text),
            "side": x.side.iter().map(|&t| f64::from(t)).collect::<Vec<_>>(),
            "bias": f64::from(x.bias),
        },
        "text": {"score": f64::from(x.text_score), "gain": f64::from(x.gain)},
    })))
}
