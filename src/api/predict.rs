//! Scoring: ecom_predict, ecom_predict_all, ecom_predict_emb.

use crate::pg::errors::PgError;
use pgrx::prelude::*;
use pgrx::JsonB;
use std::sync::Arc;

use crate::encoder::cache::Embedding;
use crate::encoder::embed::{embed_as, Role};
use crate::encoder::identity::SessionEncoder;
use crate::store::heads::{check_encoder, StoredHead};
use crate::store::memo::HeadMemo;
use pg_ecom_core::head::{behaviour_index, feature_out_of_range, usable_feature, Head, BEHAVIOURS};
use pg_ecom_core::items::item_key;

/// The head serving `tenant`, remembered for the rest of this statement at
/// this call site (see `HeadMemo`).
fn statement_head(fcinfo: pg_sys::FunctionCallInfo, tenant: Option<&str>) -> Arc<StoredHead> {
    let tenant = super::tenant_or_global(tenant);
    // SAFETY: fcinfo is the live call's; scalar functions leave fn_extra to
    // us, and pgrx frees the memo (running its destructor) with fn_mcxt.
    let mut memo = unsafe { pgrx::fcinfo::pg_func_extra(fcinfo, HeadMemo::default) };
    memo.serving_head(tenant)
}

pub(crate) fn behaviour(name: &str) -> usize {
    behaviour_index(name).unwrap_or_else(|e| PgError::argument(e).raise())
}

fn non_finite(which: &str) -> ! {
    PgError::argument(format!("{which} must not contain NULL, NaN or infinity")).raise()
}

/// The elements of a real[] argument, borrowed from the detoasted array (no
/// copy: this runs once per row); NULL, NaN or infinity is an ERROR.
pub(crate) fn finite<'a>(a: &'a Array<'_, f32>, which: &str) -> &'a [f32] {
    let s = a.as_slice().unwrap_or_else(|_| non_finite(which));
    if !s.iter().all(|x| x.is_finite()) {
        non_finite(which);
    }
    s
}

/// A side-features argument: finite, and within ±`FEATURE_LIMIT`
/// (`usable_feature`).
pub(crate) fn features_arg<'a>(a: &'a Array<'_, f32>) -> &'a [f32] {
    let s = finite(a, "features");
    if let Some(&x) = s.iter().find(|&&x| !usable_feature(x)) {
        PgError::argument(feature_out_of_range(x)).raise();
    }
    s
}

/// Side features checked against what the head was trained with.
pub(crate) fn side_features<'a>(
    features: &'a Option<Array<'_, f32>>,
    head: &StoredHead,
) -> &'a [f32] {
    let f = features.as_ref().map_or(&[][..], features_arg);
    if f.len() != head.head.k {
        PgError::argument(format!(
            "the head serving this tenant (version {}) was trained with {} side feature(s), got {}",
            head.version,
            head.head.k,
            f.len()
        ))
        .raise();
    }
    f
}

/// What scoring one (context, item) pair needs, shared by ecom_predict,
/// ecom_predict_all and ecom_explain: the head serving `tenant` at this call
/// site, the side features checked against it, and the two embeddings
/// (through the cache), checked against the head's width.
pub(crate) fn pair_inputs<'a>(
    fcinfo: pg_sys::FunctionCallInfo,
    tenant: Option<&str>,
    context: &str,
    item: &str,
    features: &'a Option<Array<'_, f32>>,
) -> (Arc<StoredHead>, &'a [f32], Vec<Embedding>) {
    let head = statement_head(fcinfo, tenant);
    let (f, e) = pair_of(&head, context, item, features);
    (head, f, e)
}

/// For a head already found: the side features checked against it and the
/// pair's two embeddings (through the cache), checked against its width.
pub(crate) fn pair_of<'a>(
    head: &StoredHead,
    context: &str,
    item: &str,
    features: &'a Option<Array<'_, f32>>,
) -> (&'a [f32], Vec<Embedding>) {
    let f = side_features(features, head);
    // from the manifest, before any model is loaded for nothing
    check_encoder(head, SessionEncoder::current().dims);
    let e = embed_as(&[(Role::Context, context), (Role::Item, item)]);
    check_encoder(head, e[0].len());
    (f, e)
}

fn embedding<'a>(v: &'a Array<'_, f32>, which: &str, head: &Head) -> &'a [f32] {
    let e = finite(v, which);
    if e.len() != head.dims() {
        PgError::argument(format!(
            "{which} has {} elements; the head expects {}",
            e.len(),
            head.dims()
        ))
        .raise();
    }
    e
}

/// Probability in [0, 1] that the user described by `context` shows
/// `behaviour` on `item`. Unknown tenants are served by the global head.
/// COST as ecom_embed's (api/embed.rs): an encoder run when not cached.
#[pg_extern(stable, parallel_safe, cost = 10000)]
fn ecom_predict(
    tenant: Option<&str>,
    context: Option<&str>,
    item: Option<&str>,
    behaviour: default!(Option<&str>, "'purchase'"),
    features: default!(Option<Array<'_, f32>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<f64> {
    let (context, item, b) = (context?, item?, self::behaviour(behaviour?));
    let (head, f, e) = pair_inputs(fcinfo, tenant, context, item, &features);
    Some(
        head.head
            .predict_pair(b, &e[0], &e[1], f, Some(item_key(item))),
    )
}

/// Every behaviour's probability, as {"browse": …, "click": …, …}.
#[pg_extern(stable, parallel_safe, cost = 10000)]
fn ecom_predict_all(
    tenant: Option<&str>,
    context: Option<&str>,
    item: Option<&str>,
    features: default!(Option<Array<'_, f32>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<JsonB> {
    let (context, item) = (context?, item?);
    let (head, f, e) = pair_inputs(fcinfo, tenant, context, item, &features);
    let key = Some(item_key(item));
    let mut m = serde_json::Map::new();
    for (b, name) in BEHAVIOURS.iter().enumerate() {
        m.insert(
            (*name).into(),
            head.head.predict_pair(b, &e[0], &e[1], f, key).into(),
        );
    }
    Some(JsonB(serde_json::Value::Object(m)))
}

/// Like ecom_predict, from stored embeddings: no encoder run (~5 µs).
#[pg_extern(stable, parallel_safe, cost = 20)]
fn ecom_predict_emb(
    tenant: Option<&str>,
    context_emb: Option<Array<'_, f32>>,
    item_emb: Option<Array<'_, f32>>,
    behaviour: default!(Option<&str>, "'purchase'"),
    features: default!(Option<Array<'_, f32>>, "NULL"),
    fcinfo: pg_sys::FunctionCallInfo,
) -> Option<f64> {
    let (cu, cv, b) = (context_emb?, item_emb?, self::behaviour(behaviour?));
    let head = statement_head(fcinfo, tenant);
    let f = side_features(&features, &head);
    let (u, v) = (
        embedding(&cu, "context_emb", &head.head),
        embedding(&cv, "item_emb", &head.head),
    );
    Some(head.head.predict_pair(b, u, v, f, None))
}
