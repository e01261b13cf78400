//! `manifest.json`: what the model directory claims to hold (pure Rust).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// what `pg_ecom.encoder` calls it (absent for the default's older
    /// manifests)
    #[serde(default)]
    pub name: Option<String>,
    /// the model's own name (a Hugging Face id): what heads record, and
    /// what tells two encoders apart
    pub model: String,
    pub dims: usize,
    pub max_length: usize,
    pub opset: i64,
    /// variant name ("fp32", "int8") → file name inside the model directory
    pub variants: BTreeMap<String, String>,
    pub sha256: BTreeMap<String, String>,
    /// model file → the file its weights live in (memory-mapped by ONNX
    /// Runtime); absent for models with inline weights
    #[serde(default)]
    pub external_data: BTreeMap<String, String>,
    #[serde(default)]
    pub source: serde_json::Value,
    /// what the model expects before each kind of text (e5: "query: " for
    /// both roles); none for MiniLM
    #[serde(default)]
    pub prefixes: Prefixes,
}

/// The text put before a context (what the shopper said or did) and before
/// an item, as the model was trained to see them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Prefixes {
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub item: String,
}

/// Which kind of text is embedded: it picks the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Context,
    Item,
}

impl Prefixes {
    pub fn of(&self, role: Role) -> &str {
        match role {
            Role::Context => &self.context,
            Role::Item => &self.item,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.context.is_empty() && self.item.is_empty()
    }
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self, String> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read model manifest \"{}\": {e}", path.display()))?;
        Self::parse(&text)
            .map_err(|e| format!("invalid model manifest \"{}\": {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if m.dims == 0 {
            return Err("dims must be positive".into());
        }
        Ok(m)
    }

    /// The model file of `variant`, with an error that lists the known ones.
    pub fn variant_file(&self, dir: &Path, variant: &str) -> Result<PathBuf, String> {
        self.variants
            .get(variant)
            .map(|f| dir.join(f))
            .ok_or_else(|| {
                let known: Vec<&str> = self.variants.keys().map(String::as_str).collect();
                format!(
                    "model variant \"{variant}\" is not in {}/manifest.json (known: {})",
                    dir.display(),
                    known.join(", ")
                )
            })
    }

    /// Checks that the weights file of `model`, if it has one, exists and is
    /// not empty, so that the ERROR names it. (Its sha256 is too slow to check
    /// per connection; a short file is rejected by ONNX Runtime when mapped.)
    pub fn check_external_data(&self, model: &Path) -> Result<(), String> {
        let Some(name) = model.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        let Some(data) = self.external_data.get(name) else {
            return Ok(());
        };
        if !model.is_file() {
            return Ok(()); // the encoder names the missing model file itself
        }
        let path = model.with_file_name(data);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() && m.len() > 0 => Ok(()),
            Ok(_) => Err(format!(
                "model weights file \"{}\" is empty",
                path.display()
            )),
            Err(e) => Err(format!(
                "model weights file \"{}\" cannot be read: {e}",
                path.display()
            )),
        }
    }

    pub fn sha256_of(&self, file: &Path) -> Option<&str> {
        let name = file.file_name()?.to_str()?;
        self.sha256.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"model":"m","dims":384,"max_length":256,"opset":17,
        "variants":{"fp32":"model.onnx","int8":"model_int8.onnx"},
        "sha256":{"model.onnx":"ab"}}"#;

    #[test]
    fn parses_and_resolves_variants() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.dims, 384);
        let dir = Path::new("/x");
        assert_eq!(
            m.variant_file(dir, "int8").unwrap(),
            Path::new("/x/model_int8.onnx")
        );
        assert_eq!(m.sha256_of(Path::new("/x/model.onnx")), Some("ab"));
        assert!(m.prefixes.is_empty() && m.name.is_none());
        let e = m.variant_file(dir, "fp16").unwrap_err();
        assert!(e.contains("known: fp32, int8"), "{e}");
    }

    #[test]
    fn reads_prefixes_and_name() {
        let m = Manifest::parse(&GOOD.replace(
            r#""model":"m","#,
            r#""model":"m","name":"e5","prefixes":{"context":"query: ","item":"passage: "},"#,
        ))
        .unwrap();
        assert_eq!(m.name.as_deref(), Some("e5"));
        assert_eq!(m.prefixes.of(Role::Context), "query: ");
        assert_eq!(m.prefixes.of(Role::Item), "passage: ");
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(Manifest::parse("{").is_err());
        assert!(Manifest::parse(&GOOD.replace("384", "0")).is_err());
        assert!(Manifest::parse(r#"{"model":"m"}"#).is_err());
    }
}
