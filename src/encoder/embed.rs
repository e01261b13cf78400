//! The encoder's front door: embeddings of texts through this backend's
//! cache, the server's shared cache, and whichever encoder `route` picks,
//! each text encoded once. Every caller above goes through here.

use std::sync::atomic::Ordering;

use once_cell::sync::Lazy;
use parking_lot::Mutex;

use crate::encoder::cache::{Embedding, EmbeddingCache};
use crate::encoder::identity::SessionEncoder;
use crate::encoder::local::with_model;
pub use crate::encoder::manifest::Role;
use crate::encoder::route::{route, Route};
use crate::pg::settings;
use crate::worker::client::by_worker;
use crate::worker::layout;

static CACHE: Lazy<Mutex<EmbeddingCache>> = Lazy::new(|| Mutex::new(EmbeddingCache::new(0)));

/// Embeddings of texts, each as a context or an item: the encoder's prefix
/// for that role goes before the text (multilingual-e5: "query: " for
/// both; MiniLM has none), so the caches key on what was encoded.
pub fn embed_as(texts: &[(Role, &str)]) -> Vec<Embedding> {
    crate::pg::utf8::require_utf8();
    let session = SessionEncoder::current();
    if session.prefixes.is_empty() {
        let plain: Vec<&str> = texts.iter().map(|(_, t)| *t).collect();
        return embed_cached(&session, &plain);
    }
    let prefixed: Vec<String> = texts
        .iter()
        .map(|(role, t)| format!("{}{t}", session.prefixes.of(*role)))
        .collect();
    let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
    embed_cached(&session, &refs)
}

/// `embed_as` for texts of one role.
pub fn embed_all_as(role: Role, texts: &[&str]) -> Vec<Embedding> {
    let with_role: Vec<(Role, &str)> = texts.iter().map(|t| (role, *t)).collect();
    embed_as(&with_role)
}

/// Embeddings of `texts` (prefixes applied) through the caches: this
/// backend's, then the server's shared one; only texts found in neither
/// are encoded (by the inference worker or here, `route.rs`), each once.
/// Output order = input order.
fn embed_cached(session: &SessionEncoder, texts: &[&str]) -> Vec<Embedding> {
    let identity = session.identity.cache_scope(settings::max_seq_len());
    let mut cache = CACHE.lock();
    cache.configure(&identity, settings::embedding_cache_bytes());
    let mut out: Vec<Option<Embedding>> = texts.iter().map(|t| cache.get(t)).collect();
    // distinct misses, each looked up and encoded once
    let mut missing: Vec<&str> = texts
        .iter()
        .zip(&out)
        .filter(|(_, e)| e.is_none())
        .map(|(t, _)| *t)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        let fresh = embed(&identity, &missing);
        let fresh: std::collections::HashMap<&str, Embedding> = missing
            .iter()
            .zip(fresh)
            .map(|(t, e)| (*t, Embedding::from(e)))
            .collect();
        for (t, slot) in texts.iter().zip(out.iter_mut()) {
            if slot.is_none() {
                *slot = Some(fresh[t].clone());
            }
        }
        for (t, e) in &fresh {
            cache.put(t, e.clone());
        }
    }
    out.into_iter().map(|e| e.expect("filled above")).collect()
}

/// The width of the embeddings this session gets, without loading a model
/// when the inference worker serves it.
pub fn dims() -> usize {
    match route() {
        Route::Worker(w) => w.dims,
        Route::Local => with_model(|m| m.encoder.dims),
    }
}

/// The sha256 of the model file this session's embeddings come from.
pub fn model_sha256() -> Option<String> {
    match route() {
        Route::Worker(w) => w.sha256.clone(),
        Route::Local => with_model(|m| m.manifest.sha256_of(&m.model_file).map(str::to_owned)),
    }
}

/// (entries, bytes, hits, misses)
pub fn cache_stats() -> (usize, usize, u64, u64) {
    let c = CACHE.lock();
    (c.len(), c.bytes(), c.hits, c.misses)
}

/// Embeddings of `texts` (distinct, not in this backend's cache): from the
/// shared cache where it has them, the rest encoded on `route`.
pub fn embed(identity: &str, texts: &[&str]) -> Vec<Vec<f32>> {
    let route = &route();
    let sh = layout::get();
    let cache = sh.as_ref().map(|s| s.cache());
    let dims = match route {
        Route::Worker(w) => w.dims,
        Route::Local => cache.as_ref().map_or(0, |c| c.dims()),
    };
    let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    if let (Some(c), Some(s)) = (&cache, &sh) {
        if dims > 0 {
            for (t, o) in texts.iter().zip(out.iter_mut()) {
                *o = c.get(identity, t, dims);
            }
            let hits = out.iter().filter(|o| o.is_some()).count() as u64;
            let st = &s.header().stats;
            st.cache_hits.fetch_add(hits, Ordering::Relaxed);
            st.cache_misses
                .fetch_add(texts.len() as u64 - hits, Ordering::Relaxed);
        }
    }
    let todo: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
    if todo.is_empty() {
        return out.into_iter().map(Option::unwrap).collect();
    }
    let missing: Vec<&str> = todo.iter().map(|&i| texts[i]).collect();
    crate::pg::progress::stage("encoding", "texts", missing.len() as u64);
    let fresh = match (route, &sh) {
        (Route::Worker(w), Some(s)) => by_worker(s, &missing, w.model_key),
        _ => crate::encoder::local::embed_locally(&missing),
    };
    for (&i, e) in todo.iter().zip(fresh) {
        if let (Some(c), Some(s)) = (&cache, &sh) {
            if c.put(identity, texts[i], &e) {
                s.header()
                    .stats
                    .cache_inserts
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        out[i] = Some(e);
    }
    out.into_iter().map(Option::unwrap).collect()
}
