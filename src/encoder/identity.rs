//! What names an encoder: the settings that shape a session
//! (`EncoderSettings`, which the worker publishes and a session compares
//! with its own) and the model it encodes with (`ModelIdentity`: the model
//! file and its sha256), from which the cache scopes and the key a worker
//! request carries are derived.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::encoder::manifest::{Manifest, Prefixes};
use crate::pg::settings::{self, Provider};

/// The settings that shape an encoder session. The inference worker
/// publishes its own (`describe`); a session with other values encodes in
/// its own backend.
#[derive(Clone, PartialEq, Eq)]
pub struct EncoderSettings {
    pub dir: PathBuf,
    pub library: PathBuf,
    pub variant: &'static str,
    pub threads: usize,
    pub provider: Provider,
}

impl EncoderSettings {
    pub fn current() -> Self {
        EncoderSettings {
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

/// The model embeddings come from: its file and that file's sha256, as
/// `file|sha256`. Two sessions with equal identities get equal embeddings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelIdentity(String);

impl ModelIdentity {
    pub fn of(model_file: &Path, m: &Manifest) -> Self {
        ModelIdentity(format!(
            "{}|{}",
            model_file.display(),
            m.sha256_of(model_file).unwrap_or("")
        ))
    }

    /// What a worker request carries so that it is encoded only by the
    /// model it was routed for (a reload in between fails it instead).
    pub fn key(&self) -> u64 {
        crate::worker::shared_cache::key_of(&self.0, "")
    }

    /// What cached embeddings are keyed on: the model and the length texts
    /// are cut to (`pg_ecom.max_seq_len` changes the embedding).
    pub fn cache_scope(&self, max_seq_len: usize) -> String {
        format!("{}|{}", self.0, max_seq_len)
    }

    /// The model identity of this session's settings (encoder, model_dir,
    /// model_variant), from the manifest alone: no model is loaded, so the
    /// per-backend cache can answer before any worker or encoder is asked.
    /// Errors are the ones loading would raise first, in the same order.
    pub fn of_session() -> Self {
        SessionEncoder::current().identity
    }
}

/// What the manifest of this session's encoder says, read without loading
/// the model: its identity, its model's name and its prefixes.
#[derive(Clone)]
pub struct SessionEncoder {
    pub identity: ModelIdentity,
    pub model: String,
    pub prefixes: Prefixes,
    pub dims: usize,
    pub model_file: PathBuf,
    pub sha256: Option<String>,
    pub source: serde_json::Value,
    pub opset: i64,
}

impl SessionEncoder {
    pub fn current() -> Self {
        use std::os::unix::fs::MetadataExt;
        type Memo = ((PathBuf, &'static str, (u64, i64, i64)), SessionEncoder);
        static MEMO: Mutex<Option<Memo>> = Mutex::new(None);
        let dir = settings::model_dir();
        // files renamed into place (docs/modelling.md) give the manifest a
        // new inode and time: read again, so a new model's sha256 makes a
        // new identity
        let stamp = std::fs::metadata(dir.join("manifest.json"))
            .map_or((0, 0, 0), |m| (m.ino(), m.mtime(), m.mtime_nsec()));
        let key = (dir, settings::variant(), stamp);
        let mut memo = MEMO.lock();
        if let Some((k, v)) = memo.as_ref() {
            if *k == key {
                return v.clone();
            }
        }
        let manifest = Manifest::read(&key.0).unwrap_or_else(|e| {
            let e = settings::encoder_not_installed().unwrap_or(e);
            settings::config_error(e, "pg_ecom.model_dir")
        });
        let file = manifest
            .variant_file(&key.0, key.1)
            .unwrap_or_else(|e| settings::config_error(e, "pg_ecom.model_variant"));
        let v = SessionEncoder {
            identity: ModelIdentity::of(&file, &manifest),
            model: manifest.model.clone(),
            prefixes: manifest.prefixes.clone(),
            dims: manifest.dims,
            sha256: manifest.sha256_of(&file).map(str::to_owned),
            model_file: file,
            source: manifest.source.clone(),
            opset: manifest.opset,
        };
        *memo = Some((key, v.clone()));
        v
    }
}
