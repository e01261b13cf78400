//! What an inference worker publishes about its model in shared memory (a
//! JSON object), and what sessions read back from it: where to route their
//! texts (encoder/route.rs), `ecom_model_info()` and `ecom_worker_stats()`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum LoadState {
    Ready,
    Failed,
}

/// The published object: `state` and `key` always; the model's fields when
/// it loaded, `error` and `guc` when it failed (absent keys otherwise).
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct ModelInfo {
    pub state: LoadState,
    /// EncoderSettings::describe of the worker's settings: a session with
    /// others encodes in its own backend
    pub key: String,
    #[serde(flatten)]
    pub model: Option<LoadedModel>,
    /// why loading failed
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// the setting to fix
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guc: Option<String>,
}

/// The model a worker loaded (every key present, `sha256` and `source`
/// null when the manifest has none).
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct LoadedModel {
    pub model: String,
    pub dims: usize,
    pub variant: String,
    pub model_dir: PathBuf,
    pub model_file: PathBuf,
    pub sha256: Option<String>,
    pub opset: i64,
    pub onnxruntime_version: String,
    pub onnxruntime_library: PathBuf,
    pub provider_requested: String,
    pub provider: String,
    pub threads: usize,
    pub load_ms: f64,
    pub source: serde_json::Value,
    /// what requests are routed for: backends compare it with their own
    /// model files' and send it with each request
    pub model_key: u64,
}

impl ModelInfo {
    pub fn ready(key: String, model: LoadedModel) -> Self {
        ModelInfo {
            state: LoadState::Ready,
            key,
            model: Some(model),
            error: None,
            guc: None,
        }
    }

    pub fn failed(key: String, error: String, guc: &str) -> Self {
        ModelInfo {
            state: LoadState::Failed,
            key,
            model: None,
            error: Some(error),
            guc: Some(guc.to_owned()),
        }
    }

    /// As a JSON value, with the same keys as the published text.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn loaded(sha256: Option<&str>, source: serde_json::Value) -> LoadedModel {
        LoadedModel {
            model: "m".into(),
            dims: 384,
            variant: "fp32".into(),
            model_dir: "/d".into(),
            model_file: "/d/model.onnx".into(),
            sha256: sha256.map(str::to_owned),
            opset: 17,
            onnxruntime_version: "1.20.0".into(),
            onnxruntime_library: "/d/libonnxruntime.so".into(),
            provider_requested: "cpu".into(),
            provider: "cpu".into(),
            threads: 4,
            load_ms: 123.4,
            source,
            model_key: u64::MAX - 5,
        }
    }

    /// The objects the worker published before this type existed (json!).
    fn by_hand(m: &LoadedModel) -> serde_json::Value {
        json!({
            "state": "ready",
            "key": "k",
            "model": m.model,
            "dims": m.dims,
            "variant": m.variant,
            "model_dir": m.model_dir,
            "model_file": m.model_file,
            "sha256": m.sha256,
            "opset": m.opset,
            "onnxruntime_version": m.onnxruntime_version,
            "onnxruntime_library": m.onnxruntime_library,
            "provider_requested": m.provider_requested,
            "provider": m.provider,
            "threads": m.threads,
            "load_ms": m.load_ms,
            "source": m.source,
            "model_key": m.model_key,
        })
    }

    #[test]
    fn same_keys_and_values_as_before_and_back() {
        for m in [
            loaded(Some("abc"), json!({"repo": "x"})),
            loaded(None, serde_json::Value::Null),
        ] {
            let info = ModelInfo::ready("k".into(), m.clone());
            let text = serde_json::to_string(&info).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v, by_hand(&m));
            let back: ModelInfo = serde_json::from_str(&text).unwrap();
            assert_eq!(back, info);
            assert_eq!(back.to_value(), by_hand(&m));
        }
        let failed = ModelInfo::failed("k".into(), "no file".into(), "pg_ecom.model_dir");
        let want =
            json!({"state": "failed", "key": "k", "error": "no file", "guc": "pg_ecom.model_dir"});
        let text = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            want
        );
        let back: ModelInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back, failed);
        assert_eq!(back.to_value(), want);
    }
}
