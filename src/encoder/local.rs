//! The per-backend model: loaded lazily on first use, reused afterwards
//! (backend mode, or a session whose settings differ from the worker's).
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

use crate::encoder::cache::{Embedding, EmbeddingCache};
use crate::pg::settings;
use crate::encoder::onnx::{self, Encoder, EncoderOptions, Provider};
use crate::encoder::manifest::Manifest;
use crate::encoder::tokenize::{Ids, TextTokenizer};

/// The settings that shape an encoder session. The inference worker
/// publishes its own (`describe`); a session with other values encodes in
/// its own backend.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub dir: PathBuf,
    pub library: PathBuf,
    pub variant: &'static str,
    pub threads: usize,
    pub provider: Provider,
}

impl Key {
    pub fn current() -> Self {
        Key {
            dir: settings::model_dir(),
            library: settings::onnxruntime_library(),
            variant: settings::variant(),
            threads: settings::threads(),
            provider: settings::provider(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.dir.display(),
            self.library.display(),
            self.variant,
            self.threads,
            self.provider.name()
        )
    }
}

pub struct Loaded {
    key: Key,
    pub encoder: Encoder,
    pub tokenizer: Arc<TextTokenizer>,
    pub manifest: Manifest,
    pub model_file: PathBuf,
    pub ort_version: String,
}

impl Loaded {
    /// The model file and its sha256 (what `model_key` hashes).
    pub fn model_identity(&self) -> String {
        model_identity(&self.model_file, &self.manifest)
    }
}

fn model_identity(model_file: &std::path::Path, m: &Manifest) -> String {
    format!(
        "{}|{}",
        model_file.display(),
        m.sha256_of(model_file).unwrap_or("")
    )
}

/// What a worker request carries so that it is encoded only by the model
/// it was routed for (a reload in between fails it instead).
pub fn model_key(model_identity: &str) -> u64 {
    crate::worker::shared_cache::key_of(model_identity, "")
}

/// The model identity of this session's settings (model_dir,
/// model_variant), from the manifest alone: no model is loaded, so the
/// per-backend cache can answer before any worker or encoder is asked.
/// Errors are the ones loading would raise first, in the same order.
pub fn session_model_identity() -> String {
    use std::os::unix::fs::MetadataExt;
    type Memo = ((PathBuf, &'static str, (u64, i64, i64)), String);
    static MEMO: Mutex<Option<Memo>> = Mutex::new(None);
    let dir = settings::model_dir();
    // files renamed into place (README) give the manifest a new inode and
    // time: read again, so a new model's sha256 makes a new identity
    let stamp = std::fs::metadata(dir.join("manifest.json"))
        .map_or((0, 0, 0), |m| (m.ino(), m.mtime(), m.mtime_nsec()));
    let key = (dir, settings::variant(), stamp);
    let mut memo = MEMO.lock();
    if let Some((k, v)) = memo.as_ref() {
        if *k == key {
            return v.clone();
        }
    }
    let manifest = Manifest::read(&key.0).unwrap_or_else(|e| config_error(e, "pg_ecom.model_dir"));
    let file = manifest
        .variant_file(&key.0, key.1)
        .unwrap_or_else(|e| config_error(e, "pg_ecom.model_variant"));
    let v = model_identity(&file, &manifest);
    *memo = Some((key, v.clone()));
    v
}

static CACHE: Lazy<Mutex<EmbeddingCache>> = Lazy::new(|| Mutex::new(EmbeddingCache::new(0)));
static TOKENIZER: Mutex<Option<(PathBuf, Arc<TextTokenizer>)>> = Mutex::new(None);
static ENCODER: Mutex<Option<Loaded>> = Mutex::new(None);

/// Raises a Postgres ERROR that names the setting to fix and its value.
pub fn config_error(message: String, guc: &str) -> ! {
    let value = match guc {
        "pg_ecom.onnxruntime_library" => settings::onnxruntime_library().display().to_string(),
        "pg_ecom.model_variant" => settings::variant().to_string(),
        _ => settings::model_dir().display().to_string(),
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
    crate::pg::utf8::require_utf8();
    let path = settings::model_dir().join("tokenizer.json");
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
    let key = Key::current();
    let mut slot = ENCODER.lock();
    if slot.as_ref().is_none_or(|l| l.key != key) {
        *slot = None; // drop the old session before building a new one
        let threads = key.threads;
        // threads loading starts (ONNX Runtime's environment and pools)
        // start with signals blocked: Postgres' handlers run on this one
        let loaded = crate::pg::signals::blocked(|| try_load(key, threads, &|| Ok(tokenizer())))
            .unwrap_or_else(|e| config_error(e.message, e.guc));
        if let Some(w) = &loaded.encoder.fallback_warning {
            pgrx::warning!("pg_ecom: {w}");
        }
        *slot = Some(loaded);
    }
    f(slot.as_mut().expect("loaded above"))
}

/// Why a model could not be loaded, and the setting to check.
pub struct LoadError {
    pub message: String,
    pub guc: &'static str,
}

fn fail(guc: &'static str) -> impl Fn(String) -> LoadError {
    move |message| LoadError { message, guc }
}

/// Loads the model `key` names with `ort_threads` ONNX Runtime threads.
/// Raises nothing (the inference worker reports its errors to backends).
pub fn try_load(
    key: Key,
    ort_threads: usize,
    tokenizer: &dyn Fn() -> Result<Arc<TextTokenizer>, String>,
) -> Result<Loaded, LoadError> {
    let manifest = Manifest::read(&key.dir).map_err(fail("pg_ecom.model_dir"))?;
    let model_file = manifest
        .variant_file(&key.dir, key.variant)
        .map_err(fail("pg_ecom.model_variant"))?;
    manifest
        .check_external_data(&model_file)
        .map_err(fail("pg_ecom.model_dir"))?;
    let tokenizer = tokenizer().map_err(fail("pg_ecom.model_dir"))?;
    let rt = onnx::runtime(&key.library).map_err(fail("pg_ecom.onnxruntime_library"))?;
    let opts = EncoderOptions {
        threads: ort_threads,
        provider: key.provider,
        arena: key.variant != "int8",
    };
    let encoder = Encoder::load(rt, &model_file, &opts).map_err(fail("pg_ecom.model_dir"))?;
    // Loading parses the graph, optimises it and pre-packs the weights,
    // freeing temporaries as it goes; glibc keeps those pages in the heap.
    // Give them back, or every backend carries them for its lifetime
    // (measured: 15 MB per backend, benches/RESULTS.md).
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
    if encoder.dims != manifest.dims {
        return Err(LoadError {
            message: format!(
                "model \"{}\" produces {}-dimensional embeddings but {}/manifest.json says {}",
                model_file.display(),
                encoder.dims,
                key.dir.display(),
                manifest.dims
            ),
            guc: "pg_ecom.model_dir",
        });
    }
    Ok(Loaded {
        key,
        encoder,
        tokenizer,
        manifest,
        model_file,
        ort_version: rt.version.clone(),
    })
}

/// Tokenizes with the encoder's truncation length (`pg_ecom.max_seq_len`).
pub fn encode_text(tok: &TextTokenizer, text: &str) -> Ids {
    tok.encode(text, settings::max_seq_len())
        .unwrap_or_else(|e| error!("pg_ecom: cannot tokenize text: {e}"))
}

/// Whether Postgres has a cancel or terminate request pending. Read from the
/// encoder's watcher thread: the flags are `sig_atomic_t` words that signal
/// handlers set, so a volatile read is what C code does too.
pub fn cancel_requested() -> bool {
    // SAFETY: aligned word reads of Postgres globals that live for the
    // process; never written from here.
    unsafe {
        std::ptr::read_volatile(&raw const pg_sys::QueryCancelPending) != 0
            || std::ptr::read_volatile(&raw const pg_sys::ProcDiePending) != 0
    }
}

/// Embeds texts in length-sorted batches in this backend, checking for
/// query cancellation between ONNX Runtime runs.
pub fn embed_locally(texts: &[&str]) -> Vec<Vec<f32>> {
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
                onnx::BATCH_SIZE,
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

/// Embeddings of `texts` through the caches: this backend's, then the
/// server's shared one; only texts found in neither are encoded (by the
/// inference worker or here, `inference.rs`), each once. Output order =
/// input order.
pub fn embed_cached(texts: &[&str]) -> Vec<Embedding> {
    crate::pg::utf8::require_utf8();
    let identity = format!("{}|{}", session_model_identity(), settings::max_seq_len());
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
        let fresh = crate::worker::client::embed(&identity, &missing);
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
    match crate::worker::client::route() {
        crate::worker::client::Route::Worker(w) => w.dims,
        crate::worker::client::Route::Local => with_model(|m| m.encoder.dims),
    }
}

/// The sha256 of the model file this session's embeddings come from.
pub fn model_sha256() -> Option<String> {
    match crate::worker::client::route() {
        crate::worker::client::Route::Worker(w) => w.sha256.clone(),
        crate::worker::client::Route::Local => {
            with_model(|m| m.manifest.sha256_of(&m.model_file).map(str::to_owned))
        }
    }
}

/// (entries, bytes, hits, misses)
pub fn cache_stats() -> (usize, usize, u64, u64) {
    let c = CACHE.lock();
    (c.len(), c.bytes(), c.hits, c.misses)
}
