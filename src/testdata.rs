//! Fixtures for the pure-Rust tests: where the installed model lives, and a
//! deterministic set of product-like titles.

use std::path::PathBuf;

/// The model directory: `$PG_ECOM_MODEL_DIR`, else the install location
/// `$(pg_config --sharedir)/extension/pg_ecom`. Tests fail (not skip) when
/// it is missing: the setup script installs it.
pub fn model_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PG_ECOM_MODEL_DIR") {
        return PathBuf::from(d);
    }
    let out = std::process::Command::new("pg_config")
        .arg("--sharedir")
        .output()
        .expect("pg_config not found; set PG_ECOM_MODEL_DIR");
    let share = String::from_utf8(out.stdout).unwrap();
    let dir = PathBuf::from(share.trim())
        .join("extension")
        .join("pg_ecom");
    assert!(
        dir.join("manifest.json").is_file(),
        "model not installed in {} (run the setup script or set PG_ECOM_MODEL_DIR)",
        dir.display()
    );
    dir
}

/// An encoder installed beside the default one (scripts/setup installs
/// multilingual-e5-small): `<model dir>/encoders/<name>`.
pub fn encoder_dir(name: &str) -> PathBuf {
    let dir = model_dir().join("encoders").join(name);
    assert!(
        dir.join("manifest.json").is_file(),
        "encoder {name} not installed in {} (run the setup script)",
        dir.display()
    );
    dir
}

pub fn ort_library() -> PathBuf {
    std::env::var("PG_ECOM_ONNXRUNTIME_LIBRARY")
        .map(PathBuf::from)
        .unwrap_or_else(|_| model_dir().join("libonnxruntime.so"))
}

/// 240 product-like titles: every product with a rotating set of attributes.
pub fn product_titles() -> Vec<String> {
    const PRODUCTS: [&str; 20] = [
        "trail running shoes",
        "merino wool socks",
        "stainless steel water bottle",
        "wireless earbuds",
        "cast iron skillet",
        "yoga mat",
        "laptop backpack",
        "ceramic coffee mug",
        "LED desk lamp",
        "organic green tea",
        "kids rain jacket",
        "mechanical keyboard",
        "bamboo cutting board",
        "noise cancelling headphones",
        "cotton bath towel set",
        "dog chew toy",
        "electric toothbrush",
        "hiking daypack",
        "smartphone case",
        "scented soy candle",
    ];
    const ATTRS: [&str; 12] = [
        "Men's {} - size 10, blue",
        "Women's lightweight {}",
        "{} (2-pack)",
        "Premium {} with free shipping",
        "Eco-friendly {}, recycled materials",
        "{} | black | 500 ml",
        "Budget {} for everyday use",
        "{} - NEW 2026 model!!",
        "Heavy-duty {}, 5 year warranty",
        "{} gift set for her",
        "Compact travel {}",
        "{} by Acme Outdoor Co.",
    ];
    let mut out = Vec::with_capacity(PRODUCTS.len() * ATTRS.len());
    for (i, p) in PRODUCTS.iter().enumerate() {
        for j in 0..ATTRS.len() {
            out.push(ATTRS[(i + j) % ATTRS.len()].replace("{}", p));
        }
    }
    out
}
