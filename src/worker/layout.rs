//! Worker mode's shared memory: a header the inference worker publishes
//! itself in, a fixed array of request slots, and the shared embedding
//! cache (`shared_cache.rs`). It exists only when pg_ecom is in
//! `shared_preload_libraries`: its size is fixed when the server starts
//! (`pg_ecom.worker_slots`, `pg_ecom.shared_cache_mb`).
//!
//! No locks: each slot moves through its states by compare-and-swap
//! (protocol.rs has the states and every move), and whoever moved it into
//! a state owns its data until it moves it on (backend: Filling and after
//! Done/Failed; worker: Running). Every process maps shared memory at the
//! same address (forked from the postmaster), so a latch pointer stored
//! here is valid in all of them.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use pgrx::pg_sys;

use crate::pg::settings::MAX_WORKERS;
use crate::worker::info::ModelInfo;

/// Texts one slot carries; a larger request takes several slots in turn.
pub const MAX_TEXTS: usize = 64;
/// Bytes of text one slot carries.
pub const TEXT_BYTES: usize = 64 * 1024;
/// A text longer than this is tokenized in the backend and travels as its
/// token ids (at most `max_seq_len` of them), so that any text fits.
pub const MAX_INLINE_TEXT: usize = 16 * 1024;
/// The widest embedding a slot returns; a wider model encodes in each
/// backend (worker mode does not serve it).
pub const MAX_DIMS: usize = 1024;
const ERR_BYTES: usize = 1024;
const INFO_BYTES: usize = 8192;
/// Latency histograms: 4 buckets per power of two of microseconds.
pub const HIST: usize = 4 * 34;
/// Batch-size histogram: 1, 2–3, 4–7, … , 128+ texts per encoder run.
pub const BATCH_HIST: usize = 8;

/// How a text travels in a slot.
pub const KIND_TEXT: u8 = 0;
pub const KIND_IDS: u8 = 1;

#[repr(C)]
pub struct SlotData {
    pub n_texts: u32,
    pub max_seq_len: u32,
    pub dims: u32,
    pub err_len: u32,
    /// with FAILED: 1 when the worker could not run the request (it was
    /// stopping or restarted), so the backend's fallback applies; 0 when
    /// running it failed (an ONNX Runtime error)
    pub unavailable: u32,
    /// times a restarting worker put it back in the queue (once at most)
    pub requeued: u32,
    /// the model the backend routed it for (ModelIdentity::key); a worker
    /// with another model fails it as "unavailable" instead of encoding it
    pub model_key: u64,
    /// byte length of each text (or 4 × its number of ids)
    pub lens: [u32; MAX_TEXTS],
    pub kinds: [u8; MAX_TEXTS],
    pub text: [u8; TEXT_BYTES],
    pub out: [f32; MAX_TEXTS * MAX_DIMS],
    pub err: [u8; ERR_BYTES],
}

#[repr(C)]
pub struct Slot {
    /// a `SlotState`, read and moved by protocol.rs only
    pub(crate) state: AtomicU32,
    pub owner_pid: AtomicI32,
    pub owner_latch: AtomicUsize,
    /// order of submission: the worker serves the oldest first
    pub ticket: AtomicU64,
    pub submitted_us: AtomicU64,
    /// when the worker handed its answer back (Done or Failed), for the
    /// hand-back stage the backend measures when it reads it
    pub finished_us: AtomicU64,
    /// index of the worker that runs it (protocol.rs: `Slot::taken_by`)
    pub(crate) worker: AtomicU32,
    pub data: UnsafeCell<SlotData>,
}

#[repr(C)]
pub struct Stats {
    pub requests: AtomicU64,
    pub texts: AtomicU64,
    pub batches: AtomicU64,
    pub failed: AtomicU64,
    pub abandoned: AtomicU64,
    pub timeouts: AtomicU64,
    pub fallbacks: AtomicU64,
    /// requests a stopping or restarted worker put back in the queue
    pub requeued: AtomicU64,
    pub batch_hist: [AtomicU64; BATCH_HIST],
    pub run_hist: [AtomicU64; HIST],
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_inserts: AtomicU64,
    pub stages: [StageStats; STAGES.len()],
}

/// Where a request's time goes, in the order it passes through. Submit,
/// wait and hand-back are counted per request; the others per encoder
/// batch of the worker (one batch answers several requests).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// the backend writes its texts into a slot (long texts tokenized there)
    Submit,
    /// submitted until a worker takes it
    Wait,
    /// the worker reads the batch's texts and tokenizes them
    Tokenize,
    /// token ids padded into the input tensors
    CopyIn,
    /// ONNX Runtime's runs (mean pooling and normalising are in the graph)
    Run,
    /// embeddings read out of the output tensors and into the slots
    CopyOut,
    /// answered until the backend has woken and copied its embeddings out
    HandBack,
}

/// Each stage, its name in `ecom_worker_stats()`, and what it is counted per.
pub const STAGES: [(Stage, &str, &str); 7] = [
    (Stage::Submit, "submit", "request"),
    (Stage::Wait, "wait", "request"),
    (Stage::Tokenize, "tokenize", "batch"),
    (Stage::CopyIn, "copy_in", "batch"),
    (Stage::Run, "run", "batch"),
    (Stage::CopyOut, "copy_out", "batch"),
    (Stage::HandBack, "hand_back", "request"),
];

#[repr(C)]
pub struct StageStats {
    pub hist: [AtomicU64; HIST],
    pub total_us: AtomicU64,
}

impl Stats {
    pub fn stage(&self, stage: Stage) -> &StageStats {
        &self.stages[stage as usize]
    }

    /// Counts `us` microseconds spent once in `stage`.
    pub fn record(&self, stage: Stage, us: u64) {
        let s = self.stage(stage);
        s.hist[hist_bucket(us)].fetch_add(1, Ordering::Relaxed);
        s.total_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// What one inference worker publishes about itself.
#[repr(C)]
pub struct WorkerState {
    /// 0 when not running
    pub pid: AtomicI32,
    pub latch: AtomicUsize,
    pub heartbeat_us: AtomicU64,
    /// a `Readiness`, read and written by protocol.rs only
    pub(crate) ready: AtomicU32,
    /// requests it answered (all its incarnations)
    pub requests: AtomicU64,
    /// when its current encoder run started (0: not running one)
    pub run_started_us: AtomicU64,
    /// when a backend last asked it to exit for making no progress
    pub term_sent_us: AtomicU64,
}

#[repr(C)]
pub struct Header {
    pub magic: u64,
    pub n_slots: usize,
    pub cache_bytes: usize,
    pub n_workers: usize,
    pub workers: [WorkerState; MAX_WORKERS],
    /// worker starts since the server started
    pub generation: AtomicU32,
    pub ticket: AtomicU64,
    /// bumped whenever `info` changes
    pub info_version: AtomicU64,
    /// guards `info` (rarely written, rarely read: a spin lock suffices)
    info_lock: AtomicU32,
    info_len: UnsafeCell<usize>,
    info: UnsafeCell<[u8; INFO_BYTES]>,
    pub stats: Stats,
}

const MAGIC: u64 = 0x7067_5f65_636f_6d31; // "pg_ecom1"

fn align(n: usize) -> usize {
    n.div_ceil(64) * 64
}

fn region_size(slots: usize, cache_bytes: usize) -> usize {
    align(size_of::<Header>()) + slots * align(size_of::<Slot>()) + align(cache_bytes)
}

/// The shared region, set by the startup hook in the postmaster and
/// inherited by every process it forks.
static mut REGION: *mut u8 = std::ptr::null_mut();

pub struct Shared {
    header: *mut Header,
    slots: *mut u8,
    cache: *mut u8,
}

// SAFETY: everything reached through these pointers is atomics or data
// whose ownership the slot states hand over (module comment).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

impl Shared {
    pub fn header(&self) -> &Header {
        // SAFETY: initialised by the startup hook, lives as long as the server
        unsafe { &*self.header }
    }
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        (0..self.header().n_slots).map(move |i| self.slot(i))
    }
    pub fn slot(&self, i: usize) -> &Slot {
        assert!(i < self.header().n_slots);
        // SAFETY: in bounds of the region laid out by `region_size`
        unsafe { &*(self.slots.add(i * align(size_of::<Slot>())) as *const Slot) }
    }
    pub fn cache(&self) -> crate::worker::shared_cache::SharedCache {
        // SAFETY: the cache's bytes are ours alone within the region
        unsafe {
            crate::worker::shared_cache::SharedCache::new(self.cache, self.header().cache_bytes)
        }
    }
    pub fn workers(&self) -> &[WorkerState] {
        let h = self.header();
        &h.workers[..h.n_workers.min(MAX_WORKERS)]
    }

    /// Whether any worker process is running.
    pub fn any_running(&self) -> bool {
        self.workers()
            .iter()
            .any(|w| w.pid.load(Ordering::Acquire) != 0)
    }

    pub fn total_bytes(&self) -> usize {
        region_size(self.header().n_slots, self.header().cache_bytes)
    }

    /// Replaces what the worker publishes about itself (its model, provider,
    /// load error): a JSON object.
    pub fn set_info(&self, info: &ModelInfo) {
        let s = serde_json::to_string(info).expect("paths in ModelInfo are UTF-8");
        let h = self.header();
        let _g = spin(&h.info_lock);
        // SAFETY: guarded by info_lock
        unsafe {
            let n = s.len().min(INFO_BYTES);
            (&mut *h.info.get())[..n].copy_from_slice(&s.as_bytes()[..n]);
            *h.info_len.get() = n;
        }
        h.info_version.fetch_add(1, Ordering::AcqRel);
    }

    /// What the worker published; None before it has (or if it did not fit).
    pub fn info(&self) -> Option<ModelInfo> {
        let h = self.header();
        let _g = spin(&h.info_lock);
        // SAFETY: guarded by info_lock
        let bytes = unsafe { (&(*h.info.get()))[..*h.info_len.get()].to_vec() };
        serde_json::from_slice(&bytes).ok()
    }
}

struct SpinGuard<'a>(&'a AtomicU32);
impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}
fn spin(l: &AtomicU32) -> SpinGuard<'_> {
    while l
        .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    SpinGuard(l)
}

/// The shared region, when pg_ecom was preloaded.
pub fn get() -> Option<Shared> {
    // SAFETY: written once in the postmaster before any fork
    let base = unsafe { REGION };
    if base.is_null() {
        return None;
    }
    // SAFETY: the region was sized by region_size for this header
    unsafe {
        let header = base as *mut Header;
        let slots = base.add(align(size_of::<Header>()));
        let cache = slots.add((*header).n_slots * align(size_of::<Slot>()));
        Some(Shared {
            header,
            slots,
            cache,
        })
    }
}

/// Whether this process can use the worker (pg_ecom was preloaded).
pub fn preloaded() -> bool {
    // SAFETY: see get()
    unsafe { !REGION.is_null() }
}

/// Microseconds on the system-wide monotonic clock (comparable between
/// processes).
pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes ts only
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Bucket of a latency in µs: 4 per power of two.
pub fn hist_bucket(us: u64) -> usize {
    let x = (us + 1) as f64;
    ((x.log2() * 4.0) as usize).min(HIST - 1)
}

/// Upper edge (µs) of bucket `b`.
pub fn hist_upper(b: usize) -> f64 {
    (2f64.powf((b + 1) as f64 / 4.0) - 1.0).max(1.0)
}

/// The `q` quantile of a histogram, as its bucket's upper edge; None when
/// empty.
pub fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, &c) in counts.iter().enumerate() {
        seen += c;
        if seen >= want {
            return Some(hist_upper(b));
        }
    }
    None
}

pub fn batch_bucket(n: usize) -> usize {
    (usize::BITS - 1 - n.max(1).leading_zeros()).min(BATCH_HIST as u32 - 1) as usize
}

static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// From `_PG_init` while preloading: asks for the region and sets it up at
/// server start.
pub fn install_hooks() {
    // SAFETY: called once in the postmaster from _PG_init, as C extensions do
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(on_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(on_startup);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_request() {
    // SAFETY: postmaster, shmem_request_hook
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        pg_sys::RequestAddinShmemSpace(region_size(
            crate::pg::settings::worker_slots(),
            crate::pg::settings::shared_cache_bytes(),
        ));
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_startup() {
    // SAFETY: postmaster (or after a crash restart), under AddinShmemInitLock
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        let slots = crate::pg::settings::worker_slots();
        let cache_bytes = crate::pg::settings::shared_cache_bytes();
        let size = region_size(slots, cache_bytes);
        let lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock; // AddinShmemInitLock
        pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let base = pg_sys::ShmemInitStruct(c"pg_ecom".as_ptr(), size, &mut found) as *mut u8;
        if !found {
            std::ptr::write_bytes(base, 0, size);
            let h = base as *mut Header;
            (*h).magic = MAGIC;
            (*h).n_slots = slots;
            (*h).cache_bytes = cache_bytes;
            (*h).n_workers = crate::pg::settings::workers().min(MAX_WORKERS);
        }
        pg_sys::LWLockRelease(lock);
        REGION = base;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = [0u64; HIST];
        for us in 1..=1000u64 {
            h[hist_bucket(us)] += 1;
        }
        let p50 = quantile(&h, 0.5).unwrap();
        let p99 = quantile(&h, 0.99).unwrap();
        // 4 buckets per octave: an edge is within 19 % above the true value
        assert!((500.0..=500.0 * 1.19 + 1.0).contains(&p50), "{p50}");
        assert!((990.0..=990.0 * 1.19 + 1.0).contains(&p99), "{p99}");
        assert!(quantile(&[0; HIST], 0.5).is_none());
    }

    #[test]
    fn each_stage_counts_in_its_own_place() {
        for (i, (stage, _, _)) in STAGES.iter().enumerate() {
            assert_eq!(*stage as usize, i, "{stage:?}");
        }
    }

    #[test]
    fn batch_buckets() {
        assert_eq!(batch_bucket(1), 0);
        assert_eq!(batch_bucket(3), 1);
        assert_eq!(batch_bucket(4), 2);
        assert_eq!(batch_bucket(64), 6);
        assert_eq!(batch_bucket(5000), 7);
    }
}
