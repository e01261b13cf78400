//! Stage 2: token ids → sentence embeddings, through ONNX Runtime.
//!
//! Pure Rust (no Postgres). The ONNX graph built by `models/export.py` does the
//! mean pooling and L2 normalisation itself, so what comes out of a run is the
//! final embedding. We pad each batch only to its own longest sequence and
//! sort big inputs by length, so short product titles never pay for a long one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use once_cell::sync::OnceCell;
use ort::environment::Environment;
use ort::ep::{ExecutionProvider, CPU, CUDA};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session};
use ort::value::TensorRef;

use crate::encoder::tokenize::Ids;
use crate::pg::signals;

/// Texts per ONNX Runtime run in batch entry points.
pub const BATCH_SIZE: usize = 32;

pub use crate::pg::settings::Provider;

/// The process-wide ONNX Runtime, loaded from `library` on first use.
///
/// ONNX Runtime allows one environment per process and the shared library,
/// once loaded, stays: a later different path cannot replace it (reported as
/// an error naming both paths). A failed load is not remembered, so fixing the
/// path and calling again works without a restart.
pub fn runtime(library: &Path) -> Result<&'static Runtime, String> {
    static RT: OnceCell<Runtime> = OnceCell::new();
    let rt = RT.get_or_try_init(|| {
        if !library.is_file() {
            return Err(format!(
                "ONNX Runtime library \"{}\" does not exist",
                library.display()
            ));
        }
        let env = ort::init_from(library)
            .map_err(|e| {
                format!(
                    "cannot load ONNX Runtime library \"{}\": {e}",
                    library.display()
                )
            })?
            .with_name("pg_ecom")
            .with_telemetry(false)
            .build()
            .map_err(|e| {
                format!(
                    "cannot start ONNX Runtime from \"{}\": {e}",
                    library.display()
                )
            })?;
        Ok(Runtime {
            env,
            library: library.to_path_buf(),
            version: library_version(library).unwrap_or_else(|| ort::info().to_owned()),
        })
    })?;
    if rt.library != library {
        return Err(format!(
            "ONNX Runtime was already loaded in this backend from \"{}\"; a different library (\"{}\") takes effect only in a new connection",
            rt.library.display(),
            library.display()
        ));
    }
    Ok(rt)
}

pub struct Runtime {
    env: Environment,
    pub library: PathBuf,
    pub version: String,
}

/// The version the library reports itself ("1.32.0"), read through the C
/// API's `OrtGetApiBase`. The library is already loaded, so this only bumps
/// its reference count.
fn library_version(library: &Path) -> Option<String> {
    // SAFETY: the same file ort just loaded successfully; the symbol has the
    // C API's documented signature and the returned string is static.
    unsafe {
        let lib = libloading::Library::new(library).ok()?;
        let get: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        let base = get();
        if base.is_null() {
            return None;
        }
        let v = ((*base).GetVersionString)();
        (!v.is_null()).then(|| std::ffi::CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

pub struct EncoderOptions {
    pub threads: usize,
    pub provider: Provider,
    /// ONNX Runtime's CPU memory arena. It keeps its peak size for the life
    /// of the session: measured per backend (benches/RESULTS.md), it saves
    /// memory and time for fp32 but costs int8 ~12 MB for no speed.
    pub arena: bool,
}

pub struct Encoder {
    session: Session,
    pub dims: usize,
    /// The execution provider actually serving runs ("cpu" or "cuda").
    pub provider_in_use: &'static str,
    /// Set when the requested provider could not be used.
    pub fallback_warning: Option<String>,
    pub load_ms: f64,
    /// the tokenizer's padding id (masked out: it changes no embedding)
    pub pad: i64,
    ids: Vec<i64>,
    mask: Vec<i64>,
    /// time spent in each part of the runs since the last `take_timings`
    timings: RunTimings,
}

/// Microseconds an encoder spent in each part of its runs: building the
/// input tensors, ONNX Runtime's runs, reading the embeddings out.
#[derive(Clone, Copy, Default, Debug)]
pub struct RunTimings {
    pub copy_in_us: u64,
    pub run_us: u64,
    pub copy_out_us: u64,
}

fn micros_since(t: Instant) -> u64 {
    t.elapsed().as_micros() as u64
}

impl Encoder {
    pub fn load(rt: &Runtime, model: &Path, opts: &EncoderOptions) -> Result<Self, String> {
        let started = Instant::now();
        if !model.is_file() {
            return Err(format!("model file \"{}\" does not exist", model.display()));
        }
        let mut fallback_warning = None;
        let mut want_cuda = matches!(opts.provider, Provider::Cuda | Provider::Auto);
        if want_cuda && !CUDA::is_available().unwrap_or(false) {
            want_cuda = false;
            fallback_warning = Some(format!(
                "execution provider \"{}\" requested but this ONNX Runtime ({}) has no CUDA support; using CPU",
                opts.provider.name(),
                rt.library.display()
            ));
        }
        let session = match Self::build(rt, model, opts, want_cuda) {
            Ok(s) => s,
            Err(e) if want_cuda => {
                want_cuda = false;
                fallback_warning = Some(format!("CUDA execution provider failed ({e}); using CPU"));
                Self::build(rt, model, opts, false)?
            }
            Err(e) => return Err(e),
        };
        let dims = output_dims(&session).ok_or_else(|| {
            format!(
                "model \"{}\" has no fixed embedding width on its output",
                model.display()
            )
        })?;
        Ok(Self {
            session,
            dims,
            provider_in_use: if want_cuda { "cuda" } else { "cpu" },
            fallback_warning,
            load_ms: started.elapsed().as_secs_f64() * 1e3,
            pad: 0,
            ids: Vec::new(),
            mask: Vec::new(),
            timings: RunTimings::default(),
        })
    }

    fn build(
        rt: &Runtime,
        model: &Path,
        opts: &EncoderOptions,
        cuda: bool,
    ) -> Result<Session, String> {
        let fail =
            |e: &dyn std::fmt::Display| format!("cannot load model \"{}\": {e}", model.display());
        let mut b = Session::builder(&rt.env)
            .map_err(|e| fail(&e))?
            // "All" fuses LayerNorm, GELU and attention at load time, so the
            // hand-built graph runs as fast as an offline-optimised one.
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail(&e))?
            .with_intra_threads(opts.threads)
            .map_err(|e| fail(&e))?
            .with_inter_threads(1)
            .map_err(|e| fail(&e))?;
        let cpu = CPU::default().with_arena_allocator(opts.arena).build();
        b = if cuda {
            b.with_execution_providers([CUDA::default().build().error_on_failure(), cpu])
        } else {
            b.with_execution_providers([cpu])
        }
        .map_err(|e| fail(&e))?;
        // ONNX Runtime starts its thread pool here; those threads must never
        // run Postgres' signal handlers, so they start with signals blocked.
        signals::blocked(|| b.commit_from_file(model)).map_err(|e| fail(&e))
    }

    /// Embeds one batch, padded to the longest sequence of the batch. The id
    /// and mask buffers live in the encoder and are reused from run to run.
    fn embed_batch<S: AsRef<[u32]>>(
        &mut self,
        batch: &[S],
        opts: &RunOptions,
    ) -> Result<Vec<Vec<f32>>, String> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let t = Instant::now();
        let width = batch.iter().map(|s| s.as_ref().len()).max().unwrap_or(0);
        let n = batch.len() * width;
        self.ids.clear();
        self.ids.resize(n, self.pad);
        self.mask.clear();
        self.mask.resize(n, 0);
        for (r, seq) in batch.iter().enumerate() {
            let row = r * width;
            for (c, &id) in seq.as_ref().iter().enumerate() {
                self.ids[row + c] = i64::from(id);
                self.mask[row + c] = 1;
            }
        }
        let shape = [batch.len(), width];
        let ids_t =
            TensorRef::from_array_view((shape, &self.ids[..])).map_err(|e| e.to_string())?;
        let mask_t =
            TensorRef::from_array_view((shape, &self.mask[..])).map_err(|e| e.to_string())?;
        self.timings.copy_in_us += micros_since(t);
        let t = Instant::now();
        let outputs = self
            .session
            .run_with_options(
                ort::inputs!["input_ids" => ids_t, "attention_mask" => mask_t],
                opts,
            )
            .map_err(|e| format!("ONNX Runtime run failed: {e}"))?;
        self.timings.run_us += micros_since(t);
        let t = Instant::now();
        let (shape, data) = outputs["embedding"]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("unexpected model output: {e}"))?;
        if shape.len() != 2 || shape[0] as usize != batch.len() || shape[1] as usize != self.dims {
            return Err(format!("unexpected model output shape {shape:?}"));
        }
        let embs = data.chunks_exact(self.dims).map(<[f32]>::to_vec).collect();
        drop(outputs); // ONNX Runtime frees its output tensor here: part of the copy out
        self.timings.copy_out_us += micros_since(t);
        Ok(embs)
    }

    /// The time spent in each part of the runs since the last call.
    pub fn take_timings(&mut self) -> RunTimings {
        std::mem::take(&mut self.timings)
    }

    /// Embeds any number of sequences in batches of `batch_size`, grouped by
    /// length so that padding stays small. Output order = input order.
    ///
    /// `between` runs before each batch (Postgres passes its interrupt check
    /// here). `cancelled` is polled from a watcher thread *during* each run:
    /// when it turns true the run is terminated through ONNX Runtime's run
    /// options, so even one long run stops within milliseconds, and the call
    /// returns `Err(CANCELLED)`.
    pub fn embed_all(
        &mut self,
        seqs: &[Ids],
        batch_size: usize,
        mut between: impl FnMut(),
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<Vec<f32>>, String> {
        let opts = RunOptions::new().map_err(|e| e.to_string())?;
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let mut out = vec![Vec::new(); seqs.len()];
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            // set `done` on every way out, unwinding included (an interrupt
            // raised by `between` unwinds through here), so the scope can join
            let _stop = SetOnDrop(&done);
            let (done, opts) = (&done, &opts);
            signals::blocked(|| {
                scope.spawn(move || watch(done, cancelled, opts));
            });
            let mut batch: Vec<&[u32]> = Vec::with_capacity(batch_size);
            for chunk in order.chunks(batch_size.max(1)) {
                between();
                batch.clear();
                batch.extend(chunk.iter().map(|&i| seqs[i].as_slice()));
                let embs = self.embed_batch(&batch, opts).map_err(|e| {
                    if cancelled() {
                        CANCELLED.to_owned()
                    } else {
                        e
                    }
                })?;
                for (&i, emb) in chunk.iter().zip(embs) {
                    out[i] = emb;
                }
            }
            Ok(out)
        })
    }
}

/// What `embed_all` returns when `cancelled` stopped it.
pub const CANCELLED: &str = "ONNX Runtime run cancelled";

/// How often the watcher looks at the cancel flag during a run.
const WATCH_EVERY: Duration = Duration::from_millis(5);

fn watch(done: &AtomicBool, cancelled: &(dyn Fn() -> bool + Sync), opts: &RunOptions) {
    while !done.load(Ordering::Acquire) {
        if cancelled() {
            let _ = opts.terminate();
            return;
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

struct SetOnDrop<'a>(&'a AtomicBool);
impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn output_dims(session: &Session) -> Option<usize> {
    let out = session.outputs().iter().find(|o| o.name() == "embedding")?;
    let shape = out.dtype().tensor_shape()?;
    let last = *shape.last()?;
    (last > 0).then_some(last as usize)
}

#[cfg(test)]
mod tests {
    //! Against the real exported model and ONNX Runtime library.
    use super::*;
    use crate::encoder::manifest::Manifest;
    use crate::encoder::tokenize::TextTokenizer;
    use crate::testdata;
    use pg_ecom_core::similarity::cosine;

    /// sentence-transformers' published embedding of "hello world", dims 1-5.
    const HELLO_WORLD: [f32; 5] = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394];

    fn load(variant: &str) -> (Encoder, TextTokenizer) {
        let dir = testdata::model_dir();
        let m = Manifest::read(&dir).unwrap();
        let rt = runtime(&testdata::ort_library()).unwrap();
        let opts = EncoderOptions {
            threads: 1,
            provider: Provider::Cpu,
            arena: true,
        };
        let enc = Encoder::load(rt, &m.variant_file(&dir, variant).unwrap(), &opts).unwrap();
        (
            enc,
            TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap(),
        )
    }

    fn embed(enc: &mut Encoder, tok: &TextTokenizer, texts: &[String]) -> Vec<Vec<f32>> {
        let seqs: Vec<Ids> = texts.iter().map(|t| tok.encode(t, 256).unwrap()).collect();
        enc.embed_all(&seqs, BATCH_SIZE, || {}, &|| false).unwrap()
    }

    #[test]
    fn fp32_matches_sentence_transformers() {
        let (mut enc, tok) = load("fp32");
        assert_eq!(enc.dims, 384);
        assert_eq!(enc.provider_in_use, "cpu");
        let e = &embed(&mut enc, &tok, &["hello world".into()])[0];
        for (i, (got, want)) in e.iter().zip(HELLO_WORLD).enumerate() {
            assert!(
                (got - want).abs() < 1e-3,
                "dim {}: got {got}, want {want}",
                i + 1
            );
        }
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "not unit length: {norm}");
    }

    #[test]
    fn batching_and_padding_do_not_change_embeddings() {
        let (mut enc, tok) = load("fp32");
        let texts: Vec<String> = testdata::product_titles().into_iter().take(70).collect();
        let together = embed(&mut enc, &tok, &texts);
        for (i, t) in texts.iter().enumerate().step_by(7) {
            let alone = &embed(&mut enc, &tok, std::slice::from_ref(t))[0];
            let c = cosine(alone, &together[i]).unwrap();
            assert!(c > 0.99999, "{t:?}: cosine {c}");
        }
    }

    #[test]
    fn int8_stays_close_to_fp32() {
        let (mut f, tok) = load("fp32");
        let (mut q, _) = load("int8");
        let titles = testdata::product_titles();
        assert!(titles.len() >= 200);
        let (a, b) = (embed(&mut f, &tok, &titles), embed(&mut q, &tok, &titles));
        let cos: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| cosine(x, y).unwrap())
            .collect();
        let mean = cos.iter().sum::<f64>() / cos.len() as f64;
        let min = cos.iter().cloned().fold(f64::INFINITY, f64::min);
        eprintln!(
            "int8 vs fp32 cosine over {} titles: mean {mean:.4}, min {min:.4}",
            cos.len()
        );
        assert!(mean >= 0.99, "mean cosine {mean}");
        assert!(min >= 0.95, "min cosine {min}");
    }

    #[test]
    fn a_cancel_request_terminates_a_run_in_flight() {
        let (mut enc, tok) = load("fp32");
        // 4 batches of 32 × 256 tokens: seconds of work on one thread
        let long = "wool socks for cold mountain evenings ".repeat(60);
        let seqs: Vec<Ids> = (0..128).map(|_| tok.encode(&long, 256).unwrap()).collect();
        assert_eq!(seqs[0].len(), 256);
        let flag = AtomicBool::new(false);
        let started = Instant::now();
        let (res, took) = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                flag.store(true, Ordering::SeqCst);
            });
            let mut batches = 0;
            let res = enc.embed_all(&seqs, BATCH_SIZE, || batches += 1, &|| {
                flag.load(Ordering::SeqCst)
            });
            (res, started.elapsed())
        });
        assert_eq!(res.err().as_deref(), Some(CANCELLED));
        // the first batch alone takes longer than this on one thread; no
        // timing assertion beyond "stopped before finishing the work"
        eprintln!("cancelled after {took:?}");
        let again = embed(&mut enc, &tok, &["hello world".into()]);
        assert_eq!(again[0].len(), 384, "the encoder works after a termination");
    }

    #[test]
    fn fuzz_arbitrary_utf8_embeds_to_unit_vectors() {
        let (mut enc, tok) = load("int8");
        let mut r = pg_ecom_core::rng::Rng::new(77);
        let texts: Vec<String> = (0..300)
            .map(|_| crate::encoder::tokenize::model_tests::arbitrary_text(&mut r))
            .collect();
        let e = embed(&mut enc, &tok, &texts);
        for (t, v) in texts.iter().zip(&e) {
            assert_eq!(v.len(), 384);
            let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                v.iter().all(|x| x.is_finite()) && (n - 1.0).abs() < 1e-3,
                "{t:?}: norm {n}"
            );
        }
        eprintln!("encoder fuzz: {} arbitrary UTF-8 texts", texts.len());
    }

    #[test]
    fn missing_model_names_the_file() {
        let rt = runtime(&testdata::ort_library()).unwrap();
        let opts = EncoderOptions {
            threads: 1,
            provider: Provider::Cpu,
            arena: true,
        };
        let e = Encoder::load(rt, Path::new("/nonexistent/model.onnx"), &opts)
            .err()
            .unwrap();
        assert!(e.contains("/nonexistent/model.onnx"), "{e}");
        let junk = std::env::temp_dir().join("pg_ecom_corrupt_model.onnx");
        std::fs::write(&junk, b"this is not an onnx file").unwrap();
        let e = Encoder::load(rt, &junk, &opts).err().unwrap();
        assert!(e.contains("pg_ecom_corrupt_model.onnx"), "{e}");
    }

    #[test]
    fn cuda_request_falls_back_to_cpu_without_gpu() {
        let dir = testdata::model_dir();
        let m = Manifest::read(&dir).unwrap();
        let rt = runtime(&testdata::ort_library()).unwrap();
        let opts = EncoderOptions {
            threads: 1,
            provider: Provider::Auto,
            arena: true,
        };
        let enc = Encoder::load(rt, &m.variant_file(&dir, "fp32").unwrap(), &opts).unwrap();
        // The CPU-only wheel has no CUDA provider; with a GPU build this test
        // documents the other branch.
        if enc.provider_in_use == "cpu" {
            assert!(enc.fallback_warning.is_some());
        }
    }
}
