//! Text → embedding. The tokenizer (`tokenize`), the ONNX Runtime session
//! (`onnx`, described by `manifest`), this backend's loaded session and
//! its embedding cache (`local`, `cache`), and the front door that decides
//! per call whether this backend or the inference worker encodes.
//!
//! May import: `pg`, `worker`'s client half, pg_ecom_core.

pub mod cache;
pub mod embed;
pub mod identity;
pub mod local;
pub mod manifest;
pub mod onnx;
pub mod route;
pub mod tokenize;
