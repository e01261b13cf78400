//! Where this session's texts are encoded: by the inference worker (when
//! it serves the model this session's settings name) or in this backend.
//! Decided per call from what the worker published.

use crate::pg::errors::PgError;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use pgrx::PgSqlErrorCode;

use crate::encoder::identity::{EncoderSettings, ModelIdentity};
use crate::pg::settings::{self, Inference};
use crate::worker::client::{unavailable, wait_on_latch};
use crate::worker::info::{LoadState, ModelInfo};
use crate::worker::layout::{self, Shared};
use crate::worker::protocol::Readiness;

/// The model the worker serves, as a session sees it.
#[derive(Clone)]
pub struct WorkerModel {
    pub dims: usize,
    pub sha256: Option<String>,
    /// ModelIdentity::key of the worker's model
    pub model_key: u64,
    /// what the worker published (ModelInfo), as JSON
    pub info: serde_json::Value,
}

pub enum Route {
    Local,
    Worker(WorkerModel),
}

/// What the worker published, parsed once per version of it.
static PUBLISHED: Mutex<Option<(u64, Option<ModelInfo>)>> = Mutex::new(None);

/// What the worker published; None before it has (or if it did not fit).
pub fn published(sh: &Shared) -> Option<ModelInfo> {
    let v = sh.header().info_version.load(Ordering::Acquire);
    let mut p = PUBLISHED.lock();
    match p.as_ref() {
        Some((seen, info)) if *seen == v => info.clone(),
        _ => {
            let info = sh.info();
            *p = Some((v, info.clone()));
            info
        }
    }
}

/// Decides where this session's texts go now.
pub fn route() -> Route {
    if mode() == Inference::Backend {
        return Route::Local;
    }
    let Some(sh) = layout::get() else {
        PgError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "pg_ecom.inference = 'worker' needs pg_ecom in shared_preload_libraries").hint("Add pg_ecom to shared_preload_libraries and restart, or SET pg_ecom.inference = 'backend'.").raise()
    };
    if !wait_until_ready(&sh) {
        return fall_back(&sh);
    }
    let current = EncoderSettings::current();
    let Some(info) = published(&sh) else {
        return Route::Local;
    };
    if info.key != current.describe() {
        // this session chose another model or runtime than the server's:
        // the worker serves it too when it is another installed encoder
        // run the worker's way
        return another_encoder(current, info);
    }
    if info.state == LoadState::Failed {
        // the same files would fail here too: the same ERROR as in
        // backend mode, naming the setting
        let guc = match info.guc.as_deref() {
            Some("pg_ecom.onnxruntime_library") => "pg_ecom.onnxruntime_library",
            Some("pg_ecom.model_variant") => "pg_ecom.model_variant",
            _ => "pg_ecom.model_dir",
        };
        settings::config_error(
            info.error
                .unwrap_or_else(|| "the model failed to load".to_owned()),
            guc,
        );
    }
    let Some(model) = info
        .model
        .as_ref()
        .filter(|m| (1..=layout::MAX_DIMS).contains(&m.dims))
    else {
        return Route::Local;
    };
    if ModelIdentity::of_session().key() != model.model_key {
        // the session's model files changed on disk (renamed into place)
        // while the worker still has the old model: the session's own
        // model encodes, and describes itself, so nothing mixes the two
        return Route::Local;
    }
    Route::Worker(WorkerModel {
        dims: model.dims,
        sha256: model.sha256.clone(),
        model_key: model.model_key,
        info: info.to_value(),
    })
}

/// The route of a session whose encoder is another installed one than the
/// worker's (`pg_ecom.encoder`, or the default where the server's
/// configuration names another), its other settings those of the worker:
/// the worker loads that encoder on its first request. Anything else
/// encodes here.
fn another_encoder(current: EncoderSettings, info: ModelInfo) -> Route {
    use crate::encoder::identity::SessionEncoder;
    let (Some(served), LoadState::Ready) = (info.model.as_ref(), info.state) else {
        return Route::Local;
    };
    // what the worker can find by itself: a named encoder (its directory
    // does not depend on settings), or the default where it is installed;
    // a session's own pg_ecom.model_dir is its own business
    let installed = current.dir.starts_with(settings::encoders_dir())
        || (!settings::model_dir_is_set() && current.dir == settings::default_model_dir());
    let as_worker = EncoderSettings {
        dir: served.model_dir.clone(),
        ..current
    };
    if !installed || info.key != as_worker.describe() {
        return Route::Local;
    }
    let session = SessionEncoder::current();
    if !(1..=layout::MAX_DIMS).contains(&session.dims) {
        return Route::Local;
    }
    // what the worker published, for the model this session's texts go to
    let mut described = info.to_value();
    described["model"] = session.model.clone().into();
    described["dims"] = session.dims.into();
    described["model_dir"] = settings::model_dir().display().to_string().into();
    described["model_file"] = session.model_file.display().to_string().into();
    described["sha256"] = session.sha256.clone().into();
    described["source"] = session.source.clone();
    described["opset"] = session.opset.into();
    described["load_ms"] = serde_json::Value::Null; // loaded on first use
    Route::Worker(WorkerModel {
        dims: session.dims,
        sha256: session.sha256,
        model_key: session.identity.key(),
        info: described,
    })
}

/// Waits (up to pg_ecom.worker_timeout) for a running worker that has
/// tried to load its model; false when there is none.
fn wait_until_ready(sh: &Shared) -> bool {
    let deadline = layout::now_us() + settings::worker_timeout_ms() * 1000;
    loop {
        if sh.readiness() != Readiness::Loading {
            return true;
        }
        if settings::inference_fallback() && !sh.any_running() {
            return false;
        }
        if layout::now_us() >= deadline {
            return false;
        }
        wait_on_latch(Duration::from_millis(10));
    }
}

fn fall_back(sh: &Shared) -> Route {
    let h = sh.header();
    if settings::inference_fallback() {
        h.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        return Route::Local;
    }
    h.stats.timeouts.fetch_add(1, Ordering::Relaxed);
    unavailable(format!(
        "pg_ecom: the inference worker is not running (waited {} ms)",
        settings::worker_timeout_ms()
    ))
}

/// `pg_ecom.inference` as this process reads it: its default differs when
/// pg_ecom was preloaded (worker mode is possible).
pub fn mode() -> Inference {
    if layout::preloaded() {
        settings::INFERENCE_PRELOADED.get()
    } else {
        settings::INFERENCE_PLAIN.get()
    }
}
