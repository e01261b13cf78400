//! The per-backend model: loaded lazily on first use, reused afterwards.
//!
//! Never loaded in the postmaster (nothing here runs at `_PG_init`), so no
//! ONNX Runtime thread pool crosses a fork. The cache key is the set of GUCs
//! that shape the session: change one and the next call reloads. A failed
//! load leaves nothing cached, so fixing the setting is enough to recover.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use once_cell::sync::Lazy;

use crate::cache::{Embedding, EmbeddingCache};
use crate::config;
use crate::encode::{self, Encoder, EncoderOptions, Provider};
use crate::manifest::Manifest;
use crate::tokenize::{Ids, TextTokenizer};

#[derive(Clone, PartialEq, Eq)]
struct Key {
    dir: PathBuf,
    library: PathBuf,
    variant: &'static str,
    threads: usize,
    provider: Provider,
}

pub struct Loaded {
    key: Key,
    pub encoder: Encoder,
    pub tokenizer: Arc<TextTokenizer>,
    pub manifest: Manifest,
    pub model_file: PathBuf,
    pub ort_version: String,
}

static CACHE: Lazy<Mutex<EmbeddingCache>> = Lazy::new(|| Mutex::new(EmbeddingCache::new(0)));
static TOKENIZER: Mutex<Option<(PathBuf, Arc<TextTokenizer>)>> = Mutex::new(None);
static ENCODER: Mutex<Option<Loaded>> = Mutex::new(None);

/// Raises a Postgres ERROR that names the setting to fix and its value.
pub fn config_error(message: String, guc: &str) -> ! {
    let value = match guc {
        "pg_ecom.onnxruntime_library" => config::onnxruntime_library().display().to_string(),
        "pg_ecom.model_variant" => config::variant().to_string(),
        _ => config::model_dir().display().to_string(),
    };
    pgrx::pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
        format!("pg_ecom: {message}"),
        "pg_ecom",
    )
    .set_hint(format!(
        "Check {guc} (now \"{value}\"); scripts/setup installs the default files."
    ))
    .report(PgLogLevel::ERROR);
    unreachable!()
}

/// The tokenizer of the configured model directory (no ONNX Runtime needed).
pub fn tokenizer() -> Arc<TextTokenizer> {
    crate::encoding::require_utf8();
    let path = config::model_dir().join("tokenizer.json");
    let mut slot = TOKENIZER.lock();
    if let Some((p, t)) = slot.as_ref() {
        if *p == path {
            return t.clone();
        }
    }
    let t = Arc::new(
        TextTokenizer::from_file(&path).unwrap_or_else(|e| config_error(e, "pg_ecom.model_dir")),
    );
    *slot = Some((path, t.clone()));
    t
}

/// Runs `f` with the loaded encoder, loading it first if needed.
pub fn with_model<R>(f: impl FnOnce(&mut Loaded) -> R) -> R {
    let key = Key {
        dir: config::model_dir(),
        library: config::onnxruntime_library(),
        variant: config::variant(),
        threads: config::threads(),
        provider: config::provider(),
    };
    let mut slot = ENCODER.lock();
    if slot.as_ref().is_none_or(|l| l.key != key) {
        *slot = None; // drop the old session before building a new one
        let loaded = load(key);
        if let Some(w) = &loaded.encoder.fallback_warning {
            pgrx::warning!("pg_ecom: {w}");
        }
        *slot = Some(loaded);
    }
    f(slot.as_mut().expect("loaded above"))
}

fn load(key: Key) -> Loaded {
    let manifest =
        Manifest::read(&key.dir).unwrap_or_else(|e| config_error(e, "pg_ecom.model_dir"));
    let model_file = manifest
        .variant_file(&key.dir, key.variant)
        .unwrap_or_else(|e| config_error(e, "pg_ecom.model_variant"));
    manifest
        .check_external_data(&model_file)
        .unwrap_or_else(|e| config_error(e, "pg_ecom.model_dir"));
    let tokenizer = tokenizer();
    let rt = encode::runtime(&key.library)
        .unwrap_or_else(|e| config_error(e, "pg_ecom.onnxruntime_library"));
    let opts = EncoderOptions {
        threads: key.threads,
        provider: key.provider,
        arena: key.variant != "int8",
    };
    let encoder = Encoder::load(rt, &model_file, &opts)
        .unwrap_or_else(|e| config_error(e, "pg_ecom.model_dir"));
    // Loading parses the graph, optimises it and pre-packs the weights,
    // freeing temporaries as it goes; glibc keeps those pages in the heap.
    // Give them back, or every backend carries them for its lifetime
    // (measured: 15 MB per backend, benches/RESULTS.md).
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
    if encoder.dims != manifest.dims {
        config_error(
            format!(
                "model \"{}\" produces {}-dimensional embeddings but {}/manifest.json says {}",
                model_file.display(),
                encoder.dims,
                key.dir.display(),
                manifest.dims
            ),
            "pg_ecom.model_dir",
        );
    }
    Loaded {
        key,
        encoder,
        tokenizer,
        manifest,
        model_file,
        ort_version: rt.version.clone(),
    }
}

/// Tokenizes with the encoder's truncation length (`pg_ecom.max_seq_len`).
pub fn encode_text(tok: &TextTokenizer, text: &str) -> Ids {
    tok.encode(text, config::max_seq_len())
        .unwrap_or_else(|e| error!("pg_ecom: cannot tokenize text: {e}"))
}

/// Whether Postgres has a cancel or terminate request pending. Read from the
/// encoder's watcher thread: the flags are `sig_atomic_t` words that signal
/// handlers set, so a volatile read is what C code does too.
fn cancel_requested() -> bool {
    // SAFETY: aligned word reads of Postgres globals that live for the
    // process; never written from here.
    unsafe {
        std::ptr::read_volatile(&raw const pg_sys::QueryCancelPending) != 0
            || std::ptr::read_volatile(&raw const pg_sys::ProcDiePending) != 0
    }
}

/// Embeds texts in length-sorted batches, checking for query cancellation
/// between ONNX Runtime runs.
fn embed_texts(texts: &[&str]) -> Vec<Vec<f32>> {
    with_model(|m| {
        let seqs: Vec<Ids> = texts
            .iter()
            .map(|t| {
                pgrx::check_for_interrupts!();
                encode_text(&m.tokenizer, t)
            })
            .collect();
        m.encoder
            .embed_all(
                &seqs,
                || {
                    pgrx::check_for_interrupts!();
                },
                &cancel_requested,
            )
            .unwrap_or_else(|e| {
                // a terminated run: let Postgres raise its own cancel ERROR
                // ("canceling statement due to statement timeout", …)
                pgrx::check_for_interrupts!();
                error!("pg_ecom: {e}")
            })
    })
}

/// Embeddings of `texts` through the per-backend cache: only texts not seen
/// before are encoded, in batches. Output order = input order.
pub fn embed_cached(texts: &[&str]) -> Vec<Embedding> {
    crate::encoding::require_utf8();
    let identity = with_model(|m| format!("{}|{}", m.model_file.display(), config::max_seq_len()));
    let mut cache = CACHE.lock();
    cache.configure(&identity, config::embedding_cache_bytes());
    let mut out: Vec<Option<Embedding>> = texts.iter().map(|t| cache.get(t)).collect();
    // distinct misses, each encoded once
    let mut missing: Vec<&str> = texts
        .iter()
        .zip(&out)
        .filter(|(_, e)| e.is_none())
        .map(|(t, _)| *t)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        let fresh = embed_texts(&missing);
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

/// (entries, bytes, hits, misses)
pub fn cache_stats() -> (usize, usize, u64, u64) {
    let c = CACHE.lock();
    (c.len(), c.bytes(), c.hits, c.misses)
}
