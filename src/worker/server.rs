//! The inference worker (worker mode): one background process that owns the
//! encoder for the whole server, takes requests from every backend through
//! shared memory (layout.rs, protocol.rs), encodes them together in batches and wakes
//! each backend through its latch.
//!
//! It never connects to a database and never calls Postgres from the
//! threads ONNX Runtime starts (they start with signals blocked, as in
//! backends: signals.rs). Every failure it can catch becomes a failed
//! request or a published load error; it exits only with code 1 (SIGTERM,
//! or an ERROR escaping), which makes the postmaster start it again after
//! one second without restarting the cluster.

use std::ffi::c_int;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::pg_sys;

use crate::encoder::identity::EncoderSettings;
use crate::encoder::local::{self, Loaded};
use crate::encoder::tokenize::{Ids, TextTokenizer};
use crate::pg::settings;
use crate::worker::info::{LoadedModel, ModelInfo};
use crate::worker::layout::{self, Shared, Slot, Stage, WorkerState};
use crate::worker::protocol::{Readiness, SlotState};

/// Registers the workers (from `_PG_init` while preloading).
pub fn register() {
    for i in 0..settings::workers() {
        BackgroundWorkerBuilder::new(&format!("pg_ecom inference worker {i}"))
            .set_type("pg_ecom inference worker")
            .set_library("pg_ecom")
            .set_function("pg_ecom_worker_main")
            .set_argument(Some(pg_sys::Datum::from(i)))
            .enable_shmem_access(None)
            // no database needed: it can run as soon as shared memory
            // exists, on a hot standby too
            .set_start_time(BgWorkerStartTime::PostmasterStart)
            .set_restart_time(Some(Duration::from_secs(1)))
            .load();
    }
}

/// This process's index among the workers.
static INDEX: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

static TERM: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

/// The worker's own thread: the only one that may touch Postgres.
static MAIN_THREAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets `flag` and the worker's latch, as Postgres' own handlers do. A
/// signal the kernel delivers to another thread of the process (one that
/// a library started without blocking signals) is passed on to the
/// worker's own thread instead: Postgres must never run elsewhere.
fn on_signal(signo: c_int, flag: &AtomicBool) {
    // SAFETY: async-signal-safe calls only; errno is kept
    unsafe {
        let saved = *libc::__errno_location();
        let main = MAIN_THREAD.load(Ordering::SeqCst);
        if main != 0 && libc::pthread_self() as usize != main {
            libc::pthread_kill(main as libc::pthread_t, signo);
        } else {
            flag.store(true, Ordering::SeqCst);
            pg_sys::SetLatch(pg_sys::MyLatch);
        }
        *libc::__errno_location() = saved;
    }
}

unsafe extern "C-unwind" fn on_sigterm(signo: c_int) {
    on_signal(signo, &TERM);
}

unsafe extern "C-unwind" fn on_sighup(signo: c_int) {
    on_signal(signo, &HUP);
}

/// On the way out (any way but a crash): backends stop waiting for us.
unsafe extern "C-unwind" fn on_exit(_code: c_int, _arg: pg_sys::Datum) {
    if let Some(sh) = layout::get() {
        let i = INDEX.load(Ordering::Relaxed);
        let me = &sh.workers()[i];
        me.set_readiness(Readiness::Loading);
        me.latch.store(0, Ordering::Release);
        me.pid.store(0, Ordering::Release);
        fail_running(
            &sh,
            i,
            "pg_ecom: the inference worker stopped during this request",
        );
    }
}

/// Requests worker `i` (this one, or its previous incarnation) took and
/// never finished: failed as "unavailable" (the backend's fallback
/// applies), their backends woken.
fn fail_running(sh: &Shared, i: usize, msg: &str) {
    for s in sh.slots() {
        // the state first (Slot::taken_by says why)
        let st = s.state();
        if (st != SlotState::Running && st != SlotState::Abandoned) || s.taken_by() != Some(i) {
            continue;
        }
        match st {
            SlotState::Running => requeue_or_fail(sh, s, msg),
            SlotState::Abandoned => s.free_if_abandoned(),
            _ => {}
        }
    }
}

/// A request its worker could not finish (it stopped or restarted) goes
/// back to the queue once, for this or another worker; a second time it
/// fails as "unavailable" (it may be what stops the worker).
fn requeue_or_fail(sh: &Shared, s: &Slot, msg: &str) {
    // SAFETY: Running: the worker side owns the slot's data
    let d = unsafe { &mut *s.data.get() };
    if d.requeued == 0 {
        d.requeued = 1;
        if s.requeue() {
            sh.header().stats.requeued.fetch_add(1, Ordering::Relaxed);
            crate::worker::client::wake_workers(sh);
            return;
        }
        // abandoned meanwhile: nobody waits for it
        s.free_if_abandoned();
        return;
    }
    finish(s, Err((msg, true)));
}

struct State {
    key: Option<(String, usize)>,
    model: Result<Loaded, String>,
    /// ModelIdentity::key of the loaded model (0: none)
    model_key: u64,
    last_try_us: u64,
    /// the other installed encoders (pg_ecom.encoder), each loaded when a
    /// session first sends it texts: at most one per installed encoder
    others: Vec<Other>,
}

struct Other {
    /// the installed encoder's name ("" for the default)
    name: String,
    /// ModelIdentity::key of its model file
    key: u64,
    model: Result<Loaded, String>,
    /// when it was loaded or tried (a failed load is tried again after 5 s)
    tried_us: u64,
}

/// What this worker publishes about itself.
fn me(sh: &Shared) -> &WorkerState {
    &sh.workers()[INDEX.load(Ordering::Relaxed)]
}

#[pgrx::pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_ecom_worker_main(arg: pg_sys::Datum) {
    let sh = start(arg);
    let me = me(&sh);
    let mut st = State {
        key: None,
        model: Err(String::new()),
        model_key: 0,
        last_try_us: 0,
        others: Vec::new(),
    };
    load(&sh, &mut st);
    let (mut worked, mut last_run_us) = (false, 0u64);
    loop {
        me.heartbeat_us.store(layout::now_us(), Ordering::Release);
        if TERM.load(Ordering::SeqCst) {
            // exit code 1: the postmaster starts a new worker after
            // bgw_restart_time (a shutdown simply ends here)
            // SAFETY: runs the exit callbacks, on_exit included
            unsafe { pg_sys::proc_exit(1) };
        }
        if HUP.swap(false, Ordering::SeqCst) {
            // SAFETY: what a background worker does on SIGHUP
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            load(&sh, &mut st);
        }
        if st.model.is_err() && layout::now_us() - st.last_try_us > 5_000_000 {
            // files fixed meanwhile: serve without a restart
            st.key = None;
            load(&sh, &mut st);
        }
        // a worker without a model leaves the requests to one that has one
        let picked = if st.model.is_err() && sh.readiness() == Readiness::Ready {
            Vec::new()
        } else {
            pick(&sh)
        };
        if picked.is_empty() {
            if worked && layout::now_us() - last_run_us > 1_000_000 {
                // a second without work after a burst: give the heap's
                // free pages back (as a backend does after loading)
                // SAFETY: malloc_trim only releases free memory
                unsafe { libc::malloc_trim(0) };
                worked = false;
            }
            wait_idle();
            continue;
        }
        run(&sh, &mut st, &picked);
        worked = true;
        last_run_us = layout::now_us();
    }
}

/// Sets the worker up: its signal handlers, its place among the workers
/// (failing what its previous incarnation left running), its latch and
/// pid for backends to find, and its exit callback.
fn start(arg: pg_sys::Datum) -> Shared {
    // SAFETY: pthread_self of this, the worker's own thread
    MAIN_THREAD.store(unsafe { libc::pthread_self() } as usize, Ordering::SeqCst);
    // SAFETY: a background worker sets its handlers, then unblocks signals
    unsafe {
        pg_sys::pqsignal(libc::SIGTERM, Some(on_sigterm));
        pg_sys::pqsignal(libc::SIGHUP, Some(on_sighup));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let sh = layout::get().expect("pg_ecom's shared memory exists when the worker runs");
    let h = sh.header();
    let i = arg.value().min(sh.workers().len().saturating_sub(1));
    INDEX.store(i, Ordering::Relaxed);
    let me = &sh.workers()[i];
    me.set_readiness(Readiness::Loading);
    me.run_started_us.store(0, Ordering::Release);
    me.heartbeat_us.store(layout::now_us(), Ordering::Release);
    fail_running(
        &sh,
        i,
        "pg_ecom: the inference worker restarted during this request",
    );
    // SAFETY: this process's latch and pid, valid for its life
    unsafe {
        me.latch.store(pg_sys::MyLatch as usize, Ordering::Release);
        me.pid.store(pg_sys::MyProcPid, Ordering::Release);
        pg_sys::on_proc_exit(Some(on_exit), pg_sys::Datum::from(0));
    }
    h.generation.fetch_add(1, Ordering::AcqRel);
    sh
}

/// Sleeps until a backend sets the worker's latch, or a short while.
fn wait_idle() {
    // SAFETY: the worker's own latch
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            // the heartbeat of an idle worker stays well inside
            // the hang limit
            (settings::worker_hang_timeout_us() / 4000).clamp(100, 1000) as std::ffi::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
}

/// (Re)loads the model when the settings that shape it changed.
fn load(sh: &Shared, st: &mut State) {
    let key = EncoderSettings::current();
    let threads = settings::worker_threads();
    let want = (key.describe(), threads);
    if st.key.as_ref() == Some(&want) {
        return;
    }
    let me = me(sh);
    me.set_readiness(Readiness::Loading);
    st.model = Err(String::new()); // drop the old session first
    st.model_key = 0;
    st.others.clear();
    st.last_try_us = layout::now_us();
    let dir = key.dir.clone();
    let tok = move || TextTokenizer::from_file(&dir.join("tokenizer.json")).map(Arc::new);
    // every thread loading starts (ONNX Runtime's environment and pools)
    // starts with signals blocked: only this thread takes them
    let loaded = crate::pg::signals::blocked(|| local::try_load(key.clone(), threads, &tok));
    let info = match loaded {
        Ok(m) => {
            if let Some(w) = &m.encoder.fallback_warning {
                pgrx::warning!("pg_ecom inference worker: {w}");
            }
            let model = describe(&key, threads, &m);
            pgrx::log!(
                "pg_ecom inference worker: {} loaded in {:.0} ms ({}, {threads} threads)",
                m.model_file.display(),
                m.encoder.load_ms,
                m.encoder.provider_in_use
            );
            st.model_key = model.model_key;
            // the shared cache is laid out for the worker's model: a
            // backend-mode session encoding first must not decide its width
            sh.cache().lay_out(m.encoder.dims);
            st.model = Ok(m);
            ModelInfo::ready(want.0.clone(), model)
        }
        Err(e) => {
            pgrx::warning!("pg_ecom inference worker: {}", e.message);
            st.model = Err(e.message.clone());
            ModelInfo::failed(want.0.clone(), e.message, e.guc)
        }
    };
    // with several workers, one that failed does not hide one that is ready
    if st.model.is_ok() || sh.readiness() != Readiness::Ready {
        sh.set_info(&info);
    }
    st.key = Some(want);
    me.heartbeat_us.store(layout::now_us(), Ordering::Release);
    me.set_readiness(if st.model.is_ok() {
        Readiness::Ready
    } else {
        Readiness::Failed
    });
}

/// What the worker publishes about the model it loaded with `key`.
fn describe(key: &EncoderSettings, threads: usize, m: &Loaded) -> LoadedModel {
    LoadedModel {
        model: m.manifest.model.clone(),
        dims: m.encoder.dims,
        variant: key.variant.to_owned(),
        model_dir: key.dir.clone(),
        model_file: m.model_file.clone(),
        sha256: m.manifest.sha256_of(&m.model_file).map(str::to_owned),
        opset: m.manifest.opset,
        onnxruntime_version: m.ort_version.clone(),
        onnxruntime_library: key.library.clone(),
        provider_requested: key.provider.name().to_owned(),
        provider: m.encoder.provider_in_use.to_owned(),
        threads,
        load_ms: (m.encoder.load_ms * 10.0).round() / 10.0,
        source: m.manifest.source.clone(),
        // what requests are routed for: backends compare it with
        // their own model files' and send it with each request
        model_key: m.model_identity().key(),
    }
}

/// Submitted slots, oldest first: (ticket, index, texts, submitted at).
fn submitted(sh: &Shared) -> Vec<(u64, usize, usize, u64)> {
    let mut v: Vec<_> = sh
        .slots()
        .enumerate()
        .filter(|(_, s)| s.state() == SlotState::Submitted)
        .map(|(i, s)| {
            // SAFETY: n_texts was written before Submitted was stored
            let n = unsafe { (*s.data.get()).n_texts } as usize;
            (
                s.ticket.load(Ordering::Relaxed),
                i,
                n,
                s.submitted_us.load(Ordering::Relaxed),
            )
        })
        .collect();
    v.sort_unstable();
    v
}

/// The requests of the next batch, moved to RUNNING: the oldest first, up
/// to pg_ecom.worker_max_batch texts (at least one request). A smaller
/// batch waits up to pg_ecom.worker_max_delay_us for more.
fn pick(sh: &Shared) -> Vec<usize> {
    let max_batch = settings::worker_max_batch();
    let mut waiting = submitted(sh);
    if waiting.is_empty() {
        return Vec::new();
    }
    let total: usize = waiting.iter().map(|w| w.2).sum();
    let delay = settings::worker_max_delay_us();
    if total < max_batch && delay > 0 {
        let oldest = waiting.iter().map(|w| w.3).min().unwrap_or(0);
        let age = layout::now_us().saturating_sub(oldest);
        if age < delay {
            std::thread::sleep(Duration::from_micros(delay - age));
            sh.workers()[INDEX.load(Ordering::Relaxed)]
                .heartbeat_us
                .store(layout::now_us(), Ordering::Release);
            waiting = submitted(sh);
        }
    }
    let mut picked = Vec::new();
    let mut texts = 0;
    for (_, i, n, _) in waiting {
        if !picked.is_empty() && texts + n > max_batch {
            break;
        }
        if sh.slot(i).take(INDEX.load(Ordering::Relaxed)) {
            picked.push(i);
            texts += n;
        }
    }
    picked
}

/// The token ids of one slot's texts.
fn read_slot(s: &Slot, tok: &TextTokenizer) -> Result<Vec<Ids>, String> {
    // SAFETY: Running: the worker owns the slot's data
    let d = unsafe { &*s.data.get() };
    let mut at = 0;
    let mut seqs = Vec::with_capacity(d.n_texts as usize);
    for i in 0..d.n_texts as usize {
        let len = d.lens[i] as usize;
        let bytes = &d.text[at..at + len];
        at += len;
        seqs.push(if d.kinds[i] == layout::KIND_IDS {
            bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            let text = std::str::from_utf8(bytes).map_err(|e| format!("text is not UTF-8: {e}"))?;
            tok.encode(text, d.max_seq_len as usize)
                .map_err(|e| format!("cannot tokenize text: {e}"))?
        });
    }
    Ok(seqs)
}

/// Ends a request: its embeddings or its error, then wakes its backend. A
/// request its backend abandoned meanwhile is simply freed.
fn finish(s: &Slot, result: Result<&[Vec<f32>], (&str, bool)>) {
    {
        // SAFETY: Running: the worker owns the slot's data until `finish` below
        let d = unsafe { &mut *s.data.get() };
        match result {
            Ok(embs) => {
                let dims = embs.first().map_or(0, Vec::len);
                d.dims = dims as u32;
                for (i, e) in embs.iter().enumerate() {
                    d.out[i * dims..(i + 1) * dims].copy_from_slice(e);
                }
            }
            Err((msg, unavailable)) => {
                let n = msg.len().min(d.err.len());
                d.err[..n].copy_from_slice(&msg.as_bytes()[..n]);
                d.err_len = n as u32;
                d.unavailable = u32::from(unavailable);
            }
        }
    }
    s.finished_us.store(layout::now_us(), Ordering::Relaxed);
    if !s.finish(result.is_ok()) {
        // Abandoned: nobody waits for it
        s.free_if_abandoned();
        return;
    }
    let latch = s.owner_latch.load(Ordering::Acquire);
    if latch != 0 {
        // SAFETY: the owner's latch in shared memory
        unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
    }
}

/// Encodes the picked requests, one batch per encoder they were routed
/// for, and answers each.
fn run(sh: &Shared, st: &mut State, picked: &[usize]) {
    let stats = &sh.header().stats;
    let started = layout::now_us();
    for &i in picked {
        let waited = started.saturating_sub(sh.slot(i).submitted_us.load(Ordering::Relaxed));
        stats.record(Stage::Wait, waited);
    }
    let mut keys: Vec<u64> = picked.iter().map(|&i| routed_for(sh, i)).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let group: Vec<usize> = picked
            .iter()
            .copied()
            .filter(|&i| routed_for(sh, i) == key)
            .collect();
        let own = key == st.model_key;
        let model = if own {
            Some(&mut st.model)
        } else {
            other_model(sh, st, key)
        };
        let Some(model) = model else {
            // routed for a model no installed encoder has (files replaced
            // on disk meanwhile): the same answer as a model changed
            // under a request (inference_fallback encodes it locally)
            for &i in &group {
                finish(
                    sh.slot(i),
                    Err((
                        "pg_ecom: the inference worker's model changed during this request",
                        true,
                    )),
                );
            }
            stats
                .failed
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            continue;
        };
        let m = match model {
            Ok(m) => m,
            Err(e) => {
                let msg = if own {
                    format!("pg_ecom: the inference worker has no model: {e}")
                } else {
                    format!("pg_ecom: the inference worker {e}")
                };
                for &i in &group {
                    finish(sh.slot(i), Err((&msg, false)));
                }
                stats
                    .failed
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                continue;
            }
        };
        let t = layout::now_us();
        let (seqs, parts) = tokenize(sh, &group, m);
        if parts.is_empty() {
            continue;
        }
        stats.record(Stage::Tokenize, layout::now_us() - t);
        m.encoder.take_timings(); // what an earlier, failed run left
        let result = encode(sh, m, &seqs, &parts);
        let done = layout::now_us();
        me(sh).run_started_us.store(0, Ordering::Release);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.batch_hist[layout::batch_bucket(seqs.len())].fetch_add(1, Ordering::Relaxed);
        let ok = result.is_ok();
        let timings = m.encoder.take_timings();
        answer(sh, parts, result, done - started);
        if ok {
            stats.record(Stage::CopyIn, timings.copy_in_us);
            stats.record(Stage::Run, timings.run_us);
            // into the slots too: what `answer` took
            stats.record(
                Stage::CopyOut,
                timings.copy_out_us + (layout::now_us() - done),
            );
        }
    }
}

/// The model a request was routed for (ModelIdentity::key).
fn routed_for(sh: &Shared, i: usize) -> u64 {
    // SAFETY: Running: the worker owns the slot's data
    unsafe { (*sh.slot(i).data.get()).model_key }
}

/// The installed encoder (other than the worker's own) whose model file
/// has identity `key`, loaded on first use with the worker's settings;
/// None when no installed encoder has it. Loading one replaces what was
/// loaded for the same encoder before (files replaced on disk), so the
/// worker holds at most one model per installed encoder.
fn other_model<'a>(
    sh: &Shared,
    st: &'a mut State,
    key: u64,
) -> Option<&'a mut Result<Loaded, String>> {
    use crate::encoder::identity::ModelIdentity;
    use crate::encoder::manifest::Manifest;
    let now = layout::now_us();
    if let Some(at) = st.others.iter().position(|o| o.key == key) {
        let o = &st.others[at];
        if o.model.is_ok() || now - o.tried_us < 5_000_000 {
            return Some(&mut st.others[at].model);
        }
    }
    let base = EncoderSettings::current();
    let (name, dir) = settings::installed_encoders()
        .into_iter()
        .filter(|(_, dir)| *dir != base.dir) // the worker's own model
        .find(|(_, dir)| {
            Manifest::read(dir).is_ok_and(|m| {
                m.variant_file(dir, base.variant)
                    .is_ok_and(|f| ModelIdentity::of(&f, &m).key() == key)
            })
        })?;
    st.others.retain(|o| o.name != name); // drop the old one first
    let threads = settings::worker_threads();
    let tok_dir = dir.clone();
    let tok = move || TextTokenizer::from_file(&tok_dir.join("tokenizer.json")).map(Arc::new);
    let settings = EncoderSettings { dir, ..base };
    let label = if name.is_empty() {
        "(the default)"
    } else {
        name.as_str()
    };
    // loading takes a second or so: not a hang
    me(sh)
        .heartbeat_us
        .store(layout::now_us(), Ordering::Release);
    let model = match crate::pg::signals::blocked(|| local::try_load(settings, threads, &tok)) {
        Ok(m) => {
            pgrx::log!(
                "pg_ecom inference worker: encoder {label} ({}) loaded in {:.0} ms",
                m.model_file.display(),
                m.encoder.load_ms
            );
            Ok(m)
        }
        Err(e) => {
            pgrx::warning!("pg_ecom inference worker: encoder {label}: {}", e.message);
            Err(format!("cannot load encoder {label}: {}", e.message))
        }
    };
    me(sh)
        .heartbeat_us
        .store(layout::now_us(), Ordering::Release);
    st.others.push(Other {
        name,
        key,
        model,
        tried_us: now,
    });
    st.others.last_mut().map(|o| &mut o.model)
}

/// The picked requests' token ids, all together, and which of them are
/// whose: (slot, range in the ids). One bad request fails alone.
fn tokenize(sh: &Shared, picked: &[usize], m: &Loaded) -> (Vec<Ids>, Vec<(usize, Range<usize>)>) {
    let stats = &sh.header().stats;
    let mut seqs: Vec<Ids> = Vec::new();
    let mut parts: Vec<(usize, Range<usize>)> = Vec::new();
    for &i in picked {
        if m.encoder.dims > layout::MAX_DIMS {
            // wider than a slot's answer can hold
            finish(
                sh.slot(i),
                Err((
                    "pg_ecom: the inference worker's model changed during this request",
                    true,
                )),
            );
            stats.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match read_slot(sh.slot(i), &m.tokenizer) {
            Ok(v) => {
                let from = seqs.len();
                seqs.extend(v);
                parts.push((i, from..seqs.len()));
            }
            Err(e) => {
                finish(sh.slot(i), Err((&format!("pg_ecom: {e}"), false)));
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    (seqs, parts)
}

/// One encoder run over `seqs`, marking progress between its batches; it
/// stops early when the worker is stopping or every backend gave up.
fn encode(
    sh: &Shared,
    m: &mut Loaded,
    seqs: &[Ids],
    parts: &[(usize, Range<usize>)],
) -> Result<Vec<Vec<f32>>, String> {
    let max_batch = settings::worker_max_batch();
    let all_abandoned = || {
        parts
            .iter()
            .all(|(i, _)| sh.slot(*i).peek() == SlotState::Abandoned)
    };
    let cancelled = || TERM.load(Ordering::SeqCst) || all_abandoned();
    let me = me(sh);
    me.heartbeat_us.store(layout::now_us(), Ordering::Release);
    me.run_started_us.store(layout::now_us(), Ordering::Release);
    // a panic inside the encoder fails these requests, not the worker
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.encoder.embed_all(
            seqs,
            max_batch,
            || me.heartbeat_us.store(layout::now_us(), Ordering::Release),
            &cancelled,
        )
    }))
    .unwrap_or_else(|_| Err("internal error in the inference worker (see the server log)".into()))
}

/// Answers each request of a run: its embeddings, or the run's error (put
/// back in the queue instead when the worker is stopping).
fn answer(
    sh: &Shared,
    parts: Vec<(usize, Range<usize>)>,
    result: Result<Vec<Vec<f32>>, String>,
    run_us: u64,
) {
    let stats = &sh.header().stats;
    match result {
        Ok(embs) => {
            for (i, range) in parts {
                // counted before the backend is woken: what it reads next
                // includes its own request
                stats.requests.fetch_add(1, Ordering::Relaxed);
                me(sh).requests.fetch_add(1, Ordering::Relaxed);
                stats.texts.fetch_add(range.len() as u64, Ordering::Relaxed);
                stats.run_hist[layout::hist_bucket(run_us)].fetch_add(1, Ordering::Relaxed);
                finish(sh.slot(i), Ok(&embs[range.clone()]));
            }
        }
        Err(e) => {
            let stopping = TERM.load(Ordering::SeqCst);
            let msg = if stopping {
                "pg_ecom: the inference worker stopped during this request".to_owned()
            } else {
                format!("pg_ecom: {e}")
            };
            for (i, _) in parts {
                if stopping {
                    requeue_or_fail(sh, sh.slot(i), &msg);
                } else {
                    finish(sh.slot(i), Err((&msg, false)));
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
