use pgrx::prelude::*;
use pgrx::JsonB;

use crate::pg::settings;

/// Version of the extension library (may be newer than the SQL objects).
#[pg_extern(immutable, parallel_safe)]
fn ecom_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Describes the encoder this session's texts go to: the inference
/// worker's (worker mode) or this backend's, loading it if needed.
#[pg_extern(volatile, parallel_safe, cost = 10000)]
fn ecom_model_info() -> JsonB {
    let (entries, bytes, hits, misses) = crate::encoder::embed::cache_stats();
    let cache = serde_json::json!({"entries": entries, "bytes": bytes, "hits": hits, "misses": misses,
                                   "capacity_bytes": settings::embedding_cache_bytes()});
    if let crate::encoder::route::Route::Worker(w) = crate::encoder::route::route() {
        let mut info = w.info;
        info["inference"] = "worker".into();
        info["max_seq_len"] = settings::max_seq_len().into();
        info["embedding_cache"] = cache;
        if let Some(o) = info.as_object_mut() {
            o.remove("state");
            o.remove("key");
            o.remove("model_key");
        }
        add_encoders(&mut info);
        return JsonB(info);
    }
    crate::encoder::local::with_model(|m| {
        JsonB(serde_json::json!({
            "inference": "backend",
            "model": m.manifest.model,
            "dims": m.encoder.dims,
            "variant": settings::variant(),
            "model_dir": settings::model_dir(),
            "model_file": m.model_file,
            "sha256": m.manifest.sha256_of(&m.model_file),
            "max_seq_len": settings::max_seq_len(),
            "opset": m.manifest.opset,
            "onnxruntime_version": m.ort_version,
            "onnxruntime_library": settings::onnxruntime_library(),
            "provider_requested": settings::provider().name(),
            "provider": m.encoder.provider_in_use,
            "threads": settings::threads(),
            "load_ms": (m.encoder.load_ms * 10.0).round() / 10.0,
            "source": m.manifest.source,
            "embedding_cache": cache,
        }))
    })
    .map_json(add_encoders)
}

trait MapJson {
    fn map_json(self, f: impl FnOnce(&mut serde_json::Value)) -> Self;
}

impl MapJson for JsonB {
    fn map_json(mut self, f: impl FnOnce(&mut serde_json::Value)) -> Self {
        f(&mut self.0);
        self
    }
}

/// The session's encoder (`pg_ecom.encoder`, "" for the default), its
/// prefixes, and every installed encoder with its model and width.
fn add_encoders(info: &mut serde_json::Value) {
    use crate::encoder::manifest::Manifest;
    let session = crate::encoder::identity::SessionEncoder::current();
    let current = settings::encoder_name().unwrap_or_default();
    let installed: Vec<serde_json::Value> = settings::installed_encoders()
        .into_iter()
        .map(|(name, dir)| match Manifest::read(&dir) {
            Ok(m) => serde_json::json!({
                "name": name, "model": m.model, "dims": m.dims, "dir": dir,
                "variants": m.variants.keys().collect::<Vec<_>>(),
                "prefixes": {"context": m.prefixes.context, "item": m.prefixes.item},
                "in_use": name == current,
            }),
            Err(e) => {
                serde_json::json!({"name": name, "dir": dir, "error": e, "in_use": name == current})
            }
        })
        .collect();
    info["encoder"] = current.into();
    info["prefixes"] =
        serde_json::json!({"context": session.prefixes.context, "item": session.prefixes.item});
    info["encoders"] = installed.into();
}
