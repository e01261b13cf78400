//! The per-backend model: loaded lazily on first use, reused afterwards
//! (backend mode, or a session whose settings differ from the worker's).
//!
//! Never loaded in the postmaster (nothing here runs at `_PG_init`), so no
//! ONNX Runtime thread pool crosses a fork. The cache key is the set of GUCs
//! that shape the session: change one and the next call reloads. A failed
//! load leaves nothing cached, so fixing the setting is enough to recover.

use crate::pg::errors::PgError;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use pgrx::prelude::*;

use crate::encoder::identity::{EncoderSettings, ModelIdentity};
use crate::encoder::manifest::Manifest;
use crate::encoder::onnx::{self, Encoder, EncoderOptions};
use crate::encoder::tokenize::{Ids, TextTokenizer};
use crate::pg::settings;

pub struct Loaded {
    key: EncoderSettings,
    pub encoder: Encoder,
    pub tokenizer: Arc<TextTokenizer>,
    pub manifest: Manifest,
    pub model_file: PathBuf,
    pub ort_version: String,
}

impl Loaded {
    /// The model file and its sha256 (what `model_key` hashes).
    pub fn model_identity(&self) -> ModelIdentity {
        ModelIdentity::of(&self.model_file, &self.manifest)
    }
}

static TOKENIZER: Mutex<Option<(PathBuf, Arc<TextTokenizer>)>> = Mutex::new(None);
static ENCODER: Mutex<Option<Loaded>> = Mutex::new(None);

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
    let t = Arc::new(TextTokenizer::from_file(&path).unwrap_or_else(|e| {
        let e = settings::encoder_not_installed().unwrap_or(e);
        settings::config_error(e, "pg_ecom.model_dir")
    }));
    *slot = Some((path, t.clone()));
    t
}

/// Runs `f` with the loaded encoder, loading it first if needed.
pub fn with_model<R>(f: impl FnOnce(&mut Loaded) -> R) -> R {
    let key = EncoderSettings::current();
    let mut slot = ENCODER.lock();
    if slot.as_ref().is_none_or(|l| l.key != key) {
        *slot = None; // drop the old session before building a new one
        let threads = key.threads;
        // threads loading starts (ONNX Runtime's environment and pools)
        // start with signals blocked: Postgres' handlers run on this one
        let loaded = crate::pg::signals::blocked(|| try_load(key, threads, &|| Ok(tokenizer())))
            .unwrap_or_else(|e| settings::config_error(e.message, e.guc));
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
    key: EncoderSettings,
    ort_threads: usize,
    tokenizer: &dyn Fn() -> Result<Arc<TextTokenizer>, String>,
) -> Result<Loaded, LoadError> {
    let manifest = Manifest::read(&key.dir)
        .map_err(|e| settings::encoder_not_installed().unwrap_or(e))
        .map_err(fail("pg_ecom.model_dir"))?;
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
    let mut encoder = Encoder::load(rt, &model_file, &opts).map_err(fail("pg_ecom.model_dir"))?;
    encoder.pad = i64::from(tokenizer.pad);
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
        .unwrap_or_else(|e| PgError::internal(format!("cannot tokenize text: {e}")).raise())
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
        // `between` runs before each batch: the one before is done
        let mut batches = 0u64;
        m.encoder
            .embed_all(
                &seqs,
                onnx::BATCH_SIZE,
                || {
                    pgrx::check_for_interrupts!();
                    if batches > 0 {
                        crate::pg::progress::add(onnx::BATCH_SIZE as u64);
                    }
                    batches += 1;
                },
                &cancel_requested,
            )
            .unwrap_or_else(|e| {
                // a terminated run: let Postgres raise its own cancel ERROR
                // ("canceling statement due to statement timeout", …)
                pgrx::check_for_interrupts!();
                PgError::internal(e.to_string()).raise()
            })
    })
}
