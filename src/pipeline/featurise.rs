//! Events → examples: both texts of each event through the encoder, the
//! head's text features, and what reproduces them (the encoder's identity).

use serde_json::json;

use crate::encoder::embed::{embed_as, Role};
use crate::encoder::local::with_model;
use crate::store::relation::{self, Event};
use pg_ecom_core::head::{text_features, Example};
use pg_ecom_core::items::item_key;

pub fn featurise(events: &[Event]) -> Vec<Example> {
    let mut texts: Vec<(Role, &str)> = Vec::with_capacity(events.len() * 2);
    for e in events {
        texts.push((Role::Context, &e.context));
        texts.push((Role::Item, &e.item));
    }
    let emb = embed_as(&texts);
    events
        .iter()
        .zip(emb.chunks_exact(2))
        .enumerate()
        .map(|(i, (e, uv))| {
            // a large relation takes a while even with every text cached
            if i % 4096 == 0 {
                pgrx::check_for_interrupts!();
            }
            Example {
                x: text_features(&uv[0], &uv[1]),
                f: e.features.clone(),
                b: e.behaviour,
                y: if e.label { 1.0 } else { 0.0 },
                item: Some(item_key(&e.item)),
            }
        })
        .collect()
}

/// What reproduces a head: encoder identity and settings.
pub fn encoder_identity() -> serde_json::Value {
    let (model, sha256) = match crate::encoder::route::route() {
        crate::encoder::route::Route::Worker(w) => (w.info["model"].clone(), json!(w.sha256)),
        crate::encoder::route::Route::Local => with_model(|m| {
            (
                json!(m.manifest.model),
                json!(m.manifest.sha256_of(&m.model_file)),
            )
        }),
    };
    let prefixes = crate::encoder::identity::SessionEncoder::current().prefixes;
    json!({
        "model": model,
        "sha256": sha256,
        "prefixes": {"context": prefixes.context, "item": prefixes.item},
        "variant": crate::pg::settings::variant(),
        "max_seq_len": crate::pg::settings::max_seq_len(),
    })
}

/// What reading a support or source relation may hold: each event, once
/// featurised, is 2·dims+1 floats, and while it is featurised its two
/// embeddings (when the cache cannot keep them) besides its texts.
pub fn training_budget() -> relation::Budget {
    let dims = crate::encoder::embed::dims();
    relation::Budget {
        bytes: crate::pg::settings::max_training_bytes(),
        per_event: (4 * dims + 1) * std::mem::size_of::<f32>() + 160,
    }
}

/// Milliseconds since `started`, to one decimal, for results.
pub fn elapsed_ms(started: std::time::Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e4).round() / 10.0
}
