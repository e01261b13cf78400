//! Benchmarks of the pure cores, without Postgres: tokenize, encode (batch
//! sizes 1/8/32/128, fp32 and int8), head scoring, one adaptation, one
//! update continuing from a posterior (with and without directions of β).
//!
//!   PG_ECOM_MODEL_DIR=… cargo bench --bench cores --no-default-features --features pg15
//!
//! (`benches/run.sh` runs it and the SQL-level driver together.) The model
//! and ONNX Runtime library are the installed ones; see `scripts/setup`.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use pg_ecom::encoder::manifest::Manifest;
use pg_ecom::encoder::onnx::{runtime, Encoder, EncoderOptions, Provider};
use pg_ecom::encoder::tokenize::{Ids, TextTokenizer};
use pg_ecom_core::head::{text_features, Example, Head, NB};
use pg_ecom_core::prior::Prior;
use pg_ecom_core::rng::Rng;
use pg_ecom_core::train::{adapt, AdaptConfig, Method};

fn model_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PG_ECOM_MODEL_DIR") {
        return d.into();
    }
    let out = std::process::Command::new("pg_config")
        .arg("--sharedir")
        .output()
        .expect("pg_config not found; set PG_ECOM_MODEL_DIR");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("extension/pg_ecom")
}

/// Product-like titles of realistic length (6–14 tokens).
fn titles(n: usize) -> Vec<String> {
    const WHAT: [&str; 8] = [
        "trail running shoes",
        "merino wool hiking socks",
        "ceramic pour-over coffee dripper",
        "two person dome tent",
        "cork yoga block",
        "stainless steel water bottle",
        "noise cancelling headphones",
        "cast iron skillet",
    ];
    const HOW: [&str; 5] = [
        "size 42",
        "for winter",
        "gift edition",
        "blue, pack of 2",
        "refurbished",
    ];
    (0..n)
        .map(|i| format!("{} {} #{i}", WHAT[i % WHAT.len()], HOW[i % HOW.len()]))
        .collect()
}

fn tokenize(c: &mut Criterion) {
    let dir = model_dir();
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let title = &titles(1)[0];
    let long = "lightweight breathable mesh upper with reinforced toe cap ".repeat(200);
    let mut g = c.benchmark_group("tokenize");
    g.bench_function("title", |b| {
        b.iter(|| tok.encode(black_box(title), 256).unwrap())
    });
    g.bench_function("long_text_truncated_to_256", |b| {
        b.iter(|| tok.encode(black_box(&long), 256).unwrap())
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let dir = model_dir();
    let manifest = Manifest::read(&dir).unwrap();
    let lib = std::env::var("PG_ECOM_ONNXRUNTIME_LIBRARY")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("libonnxruntime.so"));
    let rt = runtime(&lib).unwrap();
    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let threads = std::env::var("PG_ECOM_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let all: Vec<Ids> = titles(128)
        .iter()
        .map(|t| tok.encode(t, 256).unwrap())
        .collect();
    for variant in ["fp32", "int8"] {
        let opts = EncoderOptions {
            threads,
            provider: Provider::Cpu,
            arena: variant != "int8",
        };
        let file = manifest.variant_file(&dir, variant).unwrap();
        let mut enc = Encoder::load(rt, &file, &opts).unwrap();
        let mut g = c.benchmark_group(format!("encode_{variant}_{threads}thread"));
        g.measurement_time(Duration::from_secs(8)).sample_size(10);
        for n in [1usize, 8, 32, 128] {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &all[..n], |b, seqs| {
                b.iter(|| {
                    enc.embed_all(seqs, pg_ecom::encoder::onnx::BATCH_SIZE, || {}, &|| false)
                        .unwrap()
                })
            });
        }
        g.finish();
    }
}

fn unit_vec(r: &mut Rng, d: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..d)
        .map(|_| (r.next_u64() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn head(c: &mut Criterion) {
    let mut r = Rng::new(7);
    let mut h = Head::new(384, 4);
    for p in h.params.iter_mut() {
        *p = (r.next_u64() % 2001) as f32 / 100_000.0 - 0.01;
    }
    let (u, v) = (unit_vec(&mut r, 384), unit_vec(&mut r, 384));
    let f = [0.3f32, 0.1, 0.0, 1.0];
    let mut g = c.benchmark_group("head");
    g.bench_function("predict_pair", |b| {
        b.iter(|| h.predict_pair(3, black_box(&u), black_box(&v), &f, Some(7)))
    });
    for k in [16usize, 64] {
        let support: Vec<Example> = (0..k)
            .map(|i| {
                let (u, v) = (unit_vec(&mut r, 384), unit_vec(&mut r, 384));
                Example {
                    x: text_features(&u, &v),
                    f: f.to_vec(),
                    b: i % NB,
                    y: (i % 3 == 0) as u8 as f32,
                    item: Some(i as i64),
                }
            })
            .collect();
        for steps in [1usize, 5, 20] {
            let cfg = AdaptConfig {
                steps,
                lr: 0.5,
                method: Method::Meta,
                prior: Prior::default(),
                seed: 42,
                posterior: None,
                max_items: pg_ecom_core::items::DEFAULT_MAX_ITEMS,
                directions: pg_ecom_core::posterior::DEFAULT_DIRECTIONS,
                item_prior_from_events: true,
                bias_prior_from_events: true,
            };
            g.bench_function(format!("adapt_k{k}_steps{steps}"), |b| {
                b.iter(|| adapt(&h, black_box(&support), &cfg))
            });
        }
    }
    g.finish();
}

/// One `ecom_learn`-sized update (50 events) continuing from a posterior
/// that learned 500 events, on a head with two taste directions: with
/// `pg_ecom.posterior_directions` 0 (β keeps its prior) and 32 (the
/// default), what keeping the directions of β costs an update.
fn carried(c: &mut Criterion) {
    let mut r = Rng::new(11);
    let dims = 384;
    let mut h = Head::new(dims, 0);
    let mut basis = pg_ecom_core::taste::TasteBasis::empty(dims);
    basis.var[1] = vec![1.0, 1.0];
    basis.u[1] = unit_vec(&mut r, dims)
        .into_iter()
        .chain(unit_vec(&mut r, dims))
        .collect();
    h.basis = Some(std::sync::Arc::new(basis));
    let items: Vec<Vec<f32>> = (0..300).map(|_| unit_vec(&mut r, dims)).collect();
    let mut events = |n: usize| -> Vec<Example> {
        (0..n)
            .map(|_| {
                let v = &items[(r.next_u64() % 300) as usize];
                Example {
                    x: text_features(&unit_vec(&mut r, dims), v),
                    f: vec![],
                    b: 1,
                    y: (r.next_u64() % 2) as f32,
                    item: None,
                }
            })
            .collect()
    };
    let (first, next) = (events(500), events(50));
    let mut g = c.benchmark_group("carried");
    for directions in [0usize, 32] {
        let cfg = AdaptConfig {
            steps: 5,
            lr: 1.0,
            method: Method::Meta,
            prior: Prior {
                taste: 3.0,
                ..Prior::default()
            },
            seed: 42,
            posterior: None,
            max_items: pg_ecom_core::items::DEFAULT_MAX_ITEMS,
            directions,
            item_prior_from_events: true,
            bias_prior_from_events: true,
        };
        let (h1, r1) = adapt(&h, &first, &cfg);
        let cfg = AdaptConfig {
            posterior: Some(r1.posterior),
            ..cfg
        };
        g.bench_function(format!("learn50_directions{directions}"), |b| {
            b.iter(|| adapt(&h1, black_box(&next), &cfg))
        });
    }
    g.finish();
}

criterion_group!(benches, tokenize, encode, head, carried);
criterion_main!(benches);
