//! GUCs (`pg_ecom.*`) and where the model artifacts live by default.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::{pg_sys, PgSqlErrorCode, PostgresGucEnum};

use crate::pg::errors::PgError;

mod loop_settings;
use loop_settings::register_loop_settings;
pub use loop_settings::*;

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ModelVariant {
    #[name = c"fp32"]
    Fp32,
    #[name = c"int8"]
    Int8,
}

/// Where ONNX Runtime runs the model (`pg_ecom.execution_provider`).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Provider {
    #[name = c"cpu"]
    Cpu,
    #[name = c"cuda"]
    Cuda,
    #[name = c"auto"]
    Auto,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::Auto => "auto",
        }
    }
}

/// The model's position embeddings: the longest `pg_ecom.max_seq_len`.
pub const MAX_POSITIONS: usize = 512;
/// The most inference workers `pg_ecom.workers` may start.
pub const MAX_WORKERS: usize = 16;

/// Whether the postmaster is loading pg_ecom now (shared_preload_libraries).
pub fn preloading() -> bool {
    // SAFETY: a plain global Postgres sets while it preloads libraries
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Inference {
    #[name = c"backend"]
    Backend,
    #[name = c"worker"]
    Worker,
}

pub static MODEL_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ENCODER: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static ONNXRUNTIME_LIBRARY: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static MODEL_VARIANT: GucSetting<ModelVariant> =
    GucSetting::<ModelVariant>::new(ModelVariant::Fp32);
pub static INTRA_OP_THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static MAX_SEQ_LEN: GucSetting<i32> = GucSetting::<i32>::new(256);
pub static EMBEDDING_CACHE_MB: GucSetting<i32> = GucSetting::<i32>::new(16);
pub static MAX_TRAINING_MB: GucSetting<i32> = GucSetting::<i32>::new(1024);
pub static EXECUTION_PROVIDER: GucSetting<Provider> = GucSetting::<Provider>::new(Provider::Cpu);
pub static MAX_ITEM_EFFECTS: GucSetting<i32> =
    GucSetting::<i32>::new(pg_ecom_core::items::DEFAULT_MAX_ITEMS as i32);
pub static POSTERIOR_DIRECTIONS: GucSetting<i32> =
    GucSetting::<i32>::new(pg_ecom_core::posterior::DEFAULT_DIRECTIONS as i32);
// Two settings behind one name: the default is 'worker' only where the
// worker can exist (pg_ecom preloaded), and pgrx fixes a boot value per
// static.
pub static INFERENCE_PRELOADED: GucSetting<Inference> =
    GucSetting::<Inference>::new(Inference::Worker);
pub static INFERENCE_PLAIN: GucSetting<Inference> =
    GucSetting::<Inference>::new(Inference::Backend);
pub static INFERENCE_FALLBACK: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static WORKER_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30_000);
pub static WORKER_HANG_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(60_000);
pub static WORKER_MAX_BATCH: GucSetting<i32> = GucSetting::<i32>::new(64);
pub static WORKER_MAX_DELAY: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static WORKER_THREADS: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static WORKER_SLOTS: GucSetting<i32> = GucSetting::<i32>::new(32);
pub static WORKERS: GucSetting<i32> = GucSetting::<i32>::new(1);
pub static SHARED_CACHE_MB: GucSetting<i32> = GucSetting::<i32>::new(64);
pub static PROGRESS_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(0);
pub static VECTORIZER_WORKERS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static VECTORIZER_DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
pub static VECTORIZER_NAPTIME: GucSetting<i32> = GucSetting::<i32>::new(1000);

pub fn register() {
    register_settings();
    // Names under pg_ecom. that are not ours (a typo, or
    // pg_ecom.embedding_cache_size of release 0.1.0) get a WARNING and are
    // dropped, instead of being kept as silent placeholders.
    // SAFETY: called once while the library loads, as Postgres' own
    // modules do after defining their settings.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"pg_ecom".as_ptr()) };
}

/// In the order they have always been defined (worker mode first).
fn register_settings() {
    register_worker_settings();
    register_model_settings();
    register_encoder_settings();
    register_loop_settings();
    register_progress_settings();
}

/// Progress of long calls (pg/progress.rs).
fn register_progress_settings() {
    GucRegistry::define_int_guc(
        c"pg_ecom.progress_interval",
        c"How often ecom_embed_batch and ecom_meta_train report their progress as a NOTICE (0 = never).",
        c"A vectorizer's backfill reports in ecom.vectorizer_status instead.",
        &PROGRESS_INTERVAL,
        0,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
}

/// Which model: its files, the runtime library, the weights.
fn register_model_settings() {
    // Paths load code and data into the server process: superuser only.
    GucRegistry::define_string_guc(
        c"pg_ecom.model_dir",
        c"Directory holding manifest.json, the ONNX model files and tokenizer.json.",
        c"Empty means $(pg_config --sharedir)/extension/pg_ecom.",
        &MODEL_DIR,
        GucContext::Suset,
        GucFlags::default(),
    );
    // A name, not a path: it picks one of the encoders setup installed, so
    // anyone may choose it (per database or role with ALTER … SET). The
    // check hook keeps it a name, so it can never leave encoders/.
    // SAFETY: the hook is #[pg_guard]ed and only reads the new value.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"pg_ecom.encoder",
            c"Which installed encoder embeds texts: empty for the default (all-MiniLM-L6-v2, in pg_ecom.model_dir), or the name of one under $(pg_config --sharedir)/extension/pg_ecom/encoders.",
            c"ecom_model_info() lists the installed encoders. Heads record the encoder they were trained with; scoring them with another is an ERROR.",
            &ENCODER,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_encoder_name),
            None,
            None,
        );
    }
    GucRegistry::define_string_guc(
        c"pg_ecom.onnxruntime_library",
        c"Path of the ONNX Runtime shared library (libonnxruntime.so).",
        c"Empty means $(pg_config --sharedir)/extension/pg_ecom/libonnxruntime.so. Loaded once per backend; a change takes effect in new connections.",
        &ONNXRUNTIME_LIBRARY,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.model_variant",
        c"Encoder weights: fp32, or int8 (dynamically quantized, ~4x smaller).",
        c"",
        &MODEL_VARIANT,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// How a backend runs its encoder and what it may hold.
fn register_encoder_settings() {
    // Settings that size a backend's threads, memory or GPU context are
    // superuser-only (a superuser can still grant them per role or
    // database with ALTER ROLE / ALTER DATABASE … SET): any user could
    // otherwise make each of their connections hold gigabytes or a CUDA
    // context.
    GucRegistry::define_int_guc(
        c"pg_ecom.intra_op_threads",
        c"Threads ONNX Runtime uses inside one backend for one run.",
        c"Every backend has its own pool, so keep connections x threads at or below the core count. Superuser only.",
        &INTRA_OP_THREADS,
        1,
        64,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.max_seq_len",
        c"Tokens per text (with [CLS] and [SEP]) fed to the encoder; longer texts are truncated.",
        c"",
        &MAX_SEQ_LEN,
        2,
        MAX_POSITIONS as i32,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.embedding_cache_mb",
        c"Memory per backend for embeddings kept by text, so repeated texts are not re-encoded (0 = off).",
        c"Counts the text, the embedding and bookkeeping of each entry. Superuser only.",
        &EMBEDDING_CACHE_MB,
        0,
        4096,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.max_item_effects",
        c"Items per head that keep an effect of their own (what sells beyond the text); 0 = none.",
        c"ecom_meta_train keeps the items with the most events, ecom_adapt and ecom_learn the items the tenant knows best; each item costs about 60 bytes per cached head. Superuser only.",
        &MAX_ITEM_EFFECTS,
        0,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.posterior_directions",
        c"Directions of the isotropic taste part a version's posterior keeps what its events said along, per behaviour.",
        c"ecom_adapt and ecom_learn keep the directions the events informed most; each costs 1.5 kB per stored version and behaviour that learned, and across them the posterior stays at the prior. Heads with taste directions only. Superuser only.",
        &POSTERIOR_DIRECTIONS,
        0,
        pg_ecom_core::posterior::DATA_RANK as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.max_training_mb",
        c"Memory one ecom_adapt or ecom_meta_train call may hold for the events it reads.",
        c"Each event counts about 6 kB (384-dimensional model: its features and, while they are computed, its two embeddings) plus its texts; a larger relation is an ERROR. Superuser only.",
        &MAX_TRAINING_MB,
        1,
        1024 * 1024,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_enum_guc(
        c"pg_ecom.execution_provider",
        c"ONNX Runtime execution provider: cpu, cuda, or auto (cuda when usable).",
        c"cuda and auto fall back to cpu with a WARNING when no usable GPU is found. Superuser only: each backend that uses cuda holds its own CUDA context.",
        &EXECUTION_PROVIDER,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// Worker mode (docs/worker.md). Sizes of shared memory
/// are fixed at server start; what a user could use to make the server hold
/// more is superuser-only.
fn register_worker_settings() {
    let preloaded = preloading();
    register_inference_settings(preloaded);
    register_worker_tuning();
    // Sizes of shared memory: Postgres accepts PGC_POSTMASTER settings
    // only from a library the postmaster loads
    if preloaded {
        register_shared_memory_settings();
        register_vectorizer_settings();
    }
}

/// The vectorizers' background workers (docs/vectorizer.md): only where the
/// postmaster loads pg_ecom, which starts them.
fn register_vectorizer_settings() {
    GucRegistry::define_bool_guc(
        c"pg_ecom.vectorizer_workers",
        c"Start a background worker per database that embeds the rows its vectorizers queued.",
        c"Off: queued rows wait for ecom_vectorizer_run(). Fixed at server start.",
        &VECTORIZER_WORKERS,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pg_ecom.vectorizer_database",
        c"The database the vectorizer launcher connects to, to list the databases it starts workers in.",
        c"Fixed at server start.",
        &VECTORIZER_DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.vectorizer_naptime",
        c"How long a vectorizer worker with nothing queued sleeps before it looks again.",
        c"",
        &VECTORIZER_NAPTIME,
        10,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
}

/// Where a session's texts are encoded, and how long it waits for the
/// worker.
fn register_inference_settings(preloaded: bool) {
    GucRegistry::define_enum_guc(
        c"pg_ecom.inference",
        c"Where texts are encoded: 'worker' (one shared inference worker, needs pg_ecom in shared_preload_libraries) or 'backend' (each connection loads its own model).",
        c"Defaults to 'worker' when pg_ecom is preloaded. A session whose encoder settings (model_dir, model_variant, onnxruntime_library, execution_provider, intra_op_threads) differ from the server's encodes in its own backend. Superuser only.",
        if preloaded { &INFERENCE_PRELOADED } else { &INFERENCE_PLAIN },
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"pg_ecom.inference_fallback",
        c"When the inference worker is not running or does not answer within pg_ecom.worker_timeout, encode in this backend instead of raising an ERROR.",
        c"Falling back loads the model into the backend (its memory, its first-call time). Superuser only.",
        &INFERENCE_FALLBACK,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.worker_timeout",
        c"How long a backend waits for the inference worker's answer to one request before an ERROR (or the fallback).",
        c"",
        &WORKER_TIMEOUT,
        100,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
}

/// How the workers run (they reread these on SIGHUP).
fn register_worker_tuning() {
    GucRegistry::define_int_guc(
        c"pg_ecom.worker_hang_timeout",
        c"An inference worker that runs a request but shows no progress for this long is asked to exit (the postmaster starts a new one).",
        c"Progress is marked between ONNX Runtime runs of at most pg_ecom.worker_max_batch texts: keep it well above the longest such run.",
        &WORKER_HANG_TIMEOUT,
        1000,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.worker_max_batch",
        c"Most texts the inference worker encodes in one ONNX Runtime run, from requests of any backends.",
        c"",
        &WORKER_MAX_BATCH,
        1,
        1024,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.worker_max_delay_us",
        c"How long the inference worker waits for more requests before running a batch smaller than pg_ecom.worker_max_batch (microseconds; 0 = never waits).",
        c"",
        &WORKER_MAX_DELAY,
        0,
        1_000_000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.worker_threads",
        c"Threads ONNX Runtime uses in each inference worker (0 = the CPU cores divided among pg_ecom.workers).",
        c"A change takes effect when the workers reload their configuration.",
        &WORKER_THREADS,
        0,
        256,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

/// Fixed at server start: the workers and the shared memory they use.
fn register_shared_memory_settings() {
    GucRegistry::define_int_guc(
        c"pg_ecom.workers",
        c"Inference workers, each with its own model: requests go to whichever is free.",
        c"More than one pays on a CPU with many cores (each holds the model's memory; with cuda each its own CUDA context). Fixed at server start.",
        &WORKERS,
        1,
        MAX_WORKERS as i32,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.worker_slots",
        c"Requests that can wait for the inference worker at once; more backends wait for a free slot.",
        c"Each slot takes about 330 kB of shared memory. Fixed at server start.",
        &WORKER_SLOTS,
        1,
        1024,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_ecom.shared_cache_mb",
        c"Shared memory for embeddings kept by model and text, used by every backend (0 = off).",
        c"Only with pg_ecom in shared_preload_libraries; fixed at server start. Texts longer than 512 bytes are not kept there.",
        &SHARED_CACHE_MB,
        0,
        1024 * 1024,
        GucContext::Postmaster,
        GucFlags::UNIT_MB,
    );
}

pub fn inference_fallback() -> bool {
    INFERENCE_FALLBACK.get()
}
pub fn worker_timeout_ms() -> u64 {
    WORKER_TIMEOUT.get().max(1) as u64
}
pub fn worker_hang_timeout_us() -> u64 {
    WORKER_HANG_TIMEOUT.get().max(1000) as u64 * 1000
}
pub fn worker_max_batch() -> usize {
    WORKER_MAX_BATCH.get().max(1) as usize
}
pub fn worker_max_delay_us() -> u64 {
    WORKER_MAX_DELAY.get().max(0) as u64
}
pub fn worker_threads() -> usize {
    match WORKER_THREADS.get() {
        n if n > 0 => n as usize,
        _ => (std::thread::available_parallelism().map_or(1, |n| n.get()) / workers()).max(1),
    }
}
pub fn workers() -> usize {
    WORKERS.get().clamp(1, MAX_WORKERS as i32) as usize
}
pub fn progress_interval_ms() -> u64 {
    PROGRESS_INTERVAL.get().max(0) as u64
}
pub fn vectorizer_workers() -> bool {
    VECTORIZER_WORKERS.get()
}
pub fn vectorizer_database() -> String {
    VECTORIZER_DATABASE
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| "postgres".to_owned())
}
pub fn vectorizer_naptime_ms() -> u64 {
    VECTORIZER_NAPTIME.get().max(10) as u64
}
pub fn worker_slots() -> usize {
    WORKER_SLOTS.get().max(1) as usize
}
pub fn shared_cache_bytes() -> usize {
    SHARED_CACHE_MB.get().max(0) as usize * 1024 * 1024
}

fn setting(g: &GucSetting<Option<CString>>) -> Option<PathBuf> {
    g.get()
        .and_then(|s| s.into_string().ok())
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from)
}

/// `$(pg_config --sharedir)`, as the running server sees it.
fn share_dir() -> PathBuf {
    let mut buf = [0 as std::ffi::c_char; pg_sys::MAXPGPATH as usize];
    // SAFETY: my_exec_path is a NUL-terminated global filled at startup;
    // get_share_path writes at most MAXPGPATH bytes into buf.
    unsafe {
        pg_sys::get_share_path(
            std::ptr::addr_of!(pg_sys::my_exec_path).cast(),
            buf.as_mut_ptr(),
        );
        PathBuf::from(CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned())
    }
}

/// Where scripts/setup installs the model files and the ONNX Runtime library.
fn install_dir() -> PathBuf {
    share_dir().join("extension").join("pg_ecom")
}

/// Where the encoders other than the default are installed, one directory
/// per encoder named as `pg_ecom.encoder` names it.
pub fn encoders_dir() -> PathBuf {
    install_dir().join("encoders")
}

/// The directory of this session's encoder: `pg_ecom.model_dir` (or the
/// install directory) for the default, else the named encoder's.
pub fn model_dir() -> PathBuf {
    match encoder_name() {
        None => default_model_dir(),
        // a name the check hook let through: it cannot leave encoders/
        Some(name) => encoders_dir().join(name),
    }
}

/// Whether this session's `pg_ecom.model_dir` moves the default encoder.
pub fn model_dir_is_set() -> bool {
    setting(&MODEL_DIR).is_some()
}

/// The directory of the default encoder.
pub fn default_model_dir() -> PathBuf {
    setting(&MODEL_DIR).unwrap_or_else(install_dir)
}

/// `pg_ecom.encoder`, None for the default.
pub fn encoder_name() -> Option<String> {
    ENCODER
        .get()
        .and_then(|s| s.into_string().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !is_default_name(s))
}

/// What the default encoder is called besides '' (a user who reads
/// `all-MiniLM-L6-v2` in the docs sets that), unless an encoder of that
/// name is installed under encoders/.
const DEFAULT_NAME: &str = "all-MiniLM-L6-v2";

fn is_default_name(name: &str) -> bool {
    name.eq_ignore_ascii_case(DEFAULT_NAME)
        && !encoders_dir().join(name).join("manifest.json").is_file()
}

/// Rejects `SET pg_ecom.encoder` to anything but a name (or empty).
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_encoder_name(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: Postgres passes a valid pointer to the proposed value, which
    // is NULL or a NUL-terminated string.
    let value = unsafe { (*newval).as_ref().map(|p| CStr::from_ptr(p)) };
    match value.map(CStr::to_string_lossy) {
        None => true,
        Some(v) => v.trim().is_empty() || valid_encoder_name(v.trim()),
    }
}

/// The installed encoders: (name, directory); the default first, named ""
/// (as `pg_ecom.encoder` names it), then encoders/ in name order.
pub fn installed_encoders() -> Vec<(String, PathBuf)> {
    let mut out = vec![(String::new(), default_model_dir())];
    if let Ok(entries) = std::fs::read_dir(encoders_dir()) {
        let mut named: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let dir = e.path();
                (valid_encoder_name(&name) && dir.join("manifest.json").is_file())
                    .then_some((name, dir))
            })
            .collect();
        named.sort();
        out.extend(named);
    }
    out
}

/// Why this session's model directory has no manifest, when the reason is
/// that `pg_ecom.encoder` names an encoder that is not installed.
pub fn encoder_not_installed() -> Option<String> {
    let name = encoder_name()?;
    if model_dir().join("manifest.json").is_file() {
        return None;
    }
    let names: Vec<String> = installed_encoders()
        .into_iter()
        .skip(1)
        .map(|(n, _)| n)
        .collect();
    Some(format!(
        "encoder \"{name}\" is not installed (installed: the default{}{})",
        if names.is_empty() { "" } else { ", " },
        names.join(", ")
    ))
}

/// Names that cannot leave the encoders directory.
pub fn valid_encoder_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The setting that chose the model directory: what an ERROR about its
/// files tells the user to check.
fn dir_setting() -> &'static str {
    if encoder_name().is_some() {
        "pg_ecom.encoder"
    } else {
        "pg_ecom.model_dir"
    }
}

/// Independent of `model_dir`: pointing at another model must not ask for
/// another runtime library.
pub fn onnxruntime_library() -> PathBuf {
    setting(&ONNXRUNTIME_LIBRARY).unwrap_or_else(|| install_dir().join("libonnxruntime.so"))
}

pub fn variant() -> &'static str {
    match MODEL_VARIANT.get() {
        ModelVariant::Fp32 => "fp32",
        ModelVariant::Int8 => "int8",
    }
}

pub fn provider() -> Provider {
    EXECUTION_PROVIDER.get()
}

pub fn threads() -> usize {
    INTRA_OP_THREADS.get().max(1) as usize
}

pub fn max_seq_len() -> usize {
    MAX_SEQ_LEN.get() as usize
}

/// Items per head that keep an effect of their own.
pub fn max_item_effects() -> usize {
    MAX_ITEM_EFFECTS.get().max(0) as usize
}

pub fn posterior_directions() -> usize {
    POSTERIOR_DIRECTIONS.get().max(0) as usize
}

/// What reading one training relation may hold, in bytes.
pub fn max_training_bytes() -> usize {
    MAX_TRAINING_MB.get().max(1) as usize * 1024 * 1024
}

/// The embedding cache's budget in bytes.
pub fn embedding_cache_bytes() -> usize {
    EMBEDDING_CACHE_MB.get().max(0) as usize * 1024 * 1024
}

/// Raises a Postgres ERROR that names the setting to fix and its value.
pub fn config_error(message: String, guc: &str) -> ! {
    let guc = match guc {
        "pg_ecom.model_dir" => dir_setting(),
        other => other,
    };
    let value = match guc {
        "pg_ecom.onnxruntime_library" => onnxruntime_library().display().to_string(),
        "pg_ecom.model_variant" => variant().to_string(),
        "pg_ecom.encoder" => encoder_name().unwrap_or_default(),
        _ => model_dir().display().to_string(),
    };
    PgError::new(PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, message)
        .hint(if guc == "pg_ecom.encoder" {
            format!("Check {guc} (now {}): ecom_model_info() lists the installed encoders, and scripts/setup installs them.", pg_ecom_core::quote::quoted(&value))
        } else {
            format!("Check {guc} (now {}); scripts/setup installs the default files.", pg_ecom_core::quote::quoted(&value))
        })
        .raise()
}
