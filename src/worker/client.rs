//! Where a session's texts are encoded: by the shared inference worker
//! (`pg_ecom.inference = 'worker'`) or in this backend. This is the
//! backend's half of the worker protocol (protocol.rs has the states, the
//! worker's half is server.rs), plus the shared embedding cache in front
//! of both.

use crate::pg::errors::PgError;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use pgrx::{pg_sys, PgSqlErrorCode};

use crate::pg::settings;
use crate::worker::layout::{self, Shared, Slot, Stage};
use crate::worker::protocol::{Readiness, SlotState};

/// Why a request to the worker did not return embeddings.
enum Failure {
    /// no worker, or none that answered in time: the fallback applies
    Unavailable(String),
    /// the worker ran the request and it failed (an ONNX Runtime error)
    Failed(String),
}

/// Requests one backend keeps in flight at once: the next ones are
/// queued while the worker runs the first, so a large request keeps the
/// worker (or several) busy without a round trip between runs.
const PIPELINE: usize = 4;

pub fn by_worker(sh: &Shared, texts: &[&str], model_key: u64) -> Vec<Vec<f32>> {
    // similar lengths together, as the encoder batches them
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    let Some(f) = pipeline(sh, texts, &order, model_key, &mut out) else {
        return out;
    };
    match f {
        // the worker's messages carry the "pg_ecom: " prefix already
        Failure::Failed(msg) => PgError::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, msg).raise(),
        Failure::Unavailable(msg) => {
            if !settings::inference_fallback() {
                sh.header().stats.timeouts.fetch_add(1, Ordering::Relaxed);
                unavailable(msg);
            }
            sh.header().stats.fallbacks.fetch_add(1, Ordering::Relaxed);
            pgrx::log!("{msg}; encoding in this backend (pg_ecom.inference_fallback)");
            // what has no embedding yet: the failed chunk, the ones handed
            // back from the pipeline and everything after
            let rest: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_empty()).collect();
            let rest_texts: Vec<&str> = rest.iter().map(|&i| texts[i]).collect();
            for (&i, e) in rest
                .iter()
                .zip(crate::encoder::local::embed_locally(&rest_texts))
            {
                out[i] = e;
            }
            out
        }
    }
}

/// Sends `texts` (in `order`) to the workers one slot's worth at a time,
/// up to PIPELINE requests in flight, and puts each embedding in `out`.
/// The first failure ends it, with the slots still in flight handed back
/// and what has no embedding yet left empty.
fn pipeline(
    sh: &Shared,
    texts: &[&str],
    order: &[usize],
    model_key: u64,
    out: &mut [Vec<f32>],
) -> Option<Failure> {
    let chunks = chunks(texts, order);
    let mut inflight: VecDeque<(usize, Claimed)> = VecDeque::new();
    let mut next = 0;
    while next < chunks.len() || !inflight.is_empty() {
        // submit while there is room; wait for a free slot only when
        // nothing of ours is in flight (never hold slots while waiting)
        while next < chunks.len() && inflight.len() < PIPELINE {
            let chunk: Vec<&str> = order[chunks[next].clone()]
                .iter()
                .map(|&i| texts[i])
                .collect();
            let slot = next_slot(sh, inflight.is_empty());
            match slot.and_then(|c| c.map(|c| submit(sh, c, &chunk, model_key)).transpose()) {
                Ok(Some(c)) => {
                    inflight.push_back((next, c));
                    next += 1;
                }
                Ok(None) => break,
                Err(f) => return Some(f),
            }
        }
        let Some((k, c)) = inflight.pop_front() else {
            continue;
        };
        match wait(sh, c, deadline()) {
            Ok(embs) => {
                for (&i, e) in order[chunks[k].clone()].iter().zip(embs) {
                    out[i] = e;
                }
                crate::pg::progress::add(chunks[k].len() as u64);
            }
            Err(f) => return Some(f),
        }
    }
    None
}

/// When a request started now gives up waiting.
fn deadline() -> u64 {
    layout::now_us() + settings::worker_timeout_ms() * 1000
}

/// A slot for the next request: waits for one when none of ours is in
/// flight (`idle`), else takes one only if one is free now.
fn next_slot(sh: &Shared, idle: bool) -> Result<Option<Claimed<'_>>, Failure> {
    if idle {
        claim(sh, deadline()).map(Some)
    } else if free_slots(sh) * 4 > sh.header().n_slots {
        // more in flight only while slots are plentiful: a large
        // request must not starve small ones of slots
        Ok(try_claim(sh))
    } else {
        Ok(None)
    }
}

/// Consecutive ranges of `order` that each fit one slot.
fn chunks(texts: &[&str], order: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut v = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let (mut end, mut bytes) = (start, 0);
        while end < order.len() && end - start < layout::MAX_TEXTS {
            let t = texts[order[end]];
            let b = if t.len() > layout::MAX_INLINE_TEXT {
                4 * settings::max_seq_len()
            } else {
                t.len()
            };
            if bytes + b > layout::TEXT_BYTES {
                break;
            }
            bytes += b;
            end += 1;
        }
        v.push(start..end);
        start = end;
    }
    v
}

/// A slot this backend holds; dropping it (an ERROR or a cancel unwinding
/// through the wait) hands the slot back in whatever state it is.
struct Claimed<'a>(&'a Slot);

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        HELD.lock().retain(|&p| p != self.0 as *const Slot as usize);
        self.0.release();
    }
}

/// The slots this backend holds now (addresses), for its exit callback:
/// never another backend's, even one that reuses this pid's old slot.
static HELD: Mutex<Vec<usize>> = Mutex::new(Vec::new());

static EXIT_CALLBACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A backend that exits while it holds a slot (FATAL skips unwinding)
/// gives it back on its way out.
unsafe extern "C-unwind" fn on_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    for p in std::mem::take(&mut *HELD.lock()) {
        // SAFETY: the address of a slot in shared memory this backend holds
        unsafe { &*(p as *const Slot) }.release();
    }
}

fn my_latch() -> usize {
    // SAFETY: this backend's latch, in shared memory for the process's life
    unsafe { pg_sys::MyLatch as usize }
}

/// Sleeps until this backend's latch is set or `d` passed, then checks for
/// interrupts (a cancel sets the latch, so it is seen at once).
pub fn wait_on_latch(d: Duration) {
    // SAFETY: the standard latch wait of a backend
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            d.as_millis().max(1) as std::ffi::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    pgrx::check_for_interrupts!();
}

fn register_exit_callback() {
    if !EXIT_CALLBACK.swap(true, Ordering::Relaxed) {
        // SAFETY: registers a plain callback once per backend
        unsafe { pg_sys::before_shmem_exit(Some(on_exit), pg_sys::Datum::from(0)) };
    }
}

/// A free slot, waiting for one until `deadline`.
fn claim(sh: &Shared, deadline: u64) -> Result<Claimed<'_>, Failure> {
    loop {
        if let Some(c) = try_claim(sh) {
            return Ok(c);
        }
        if layout::now_us() >= deadline {
            return Err(Failure::Unavailable(format!(
                "pg_ecom: no free request slot of the inference worker within {} ms (pg_ecom.worker_slots = {})",
                settings::worker_timeout_ms(),
                sh.header().n_slots
            )));
        }
        check_hung(sh);
        wait_on_latch(Duration::from_millis(5));
    }
}

fn free_slots(sh: &Shared) -> usize {
    sh.slots().filter(|s| s.peek() == SlotState::Free).count()
}

/// A free slot now, if there is one.
fn try_claim(sh: &Shared) -> Option<Claimed<'_>> {
    register_exit_callback();
    // SAFETY: reads this process's pid
    let me = unsafe { pg_sys::MyProcPid };
    for s in sh.slots() {
        if s.try_claim() {
            s.owner_pid.store(me, Ordering::Release);
            s.owner_latch.store(my_latch(), Ordering::Release);
            HELD.lock().push(s as *const Slot as usize);
            return Some(Claimed(s));
        }
    }
    None
}

/// Fills a claimed slot with one request (at most MAX_TEXTS texts that
/// fit) and hands it to the workers.
fn submit<'a>(
    sh: &Shared,
    claimed: Claimed<'a>,
    texts: &[&str],
    model_key: u64,
) -> Result<Claimed<'a>, Failure> {
    let h = sh.header();
    if settings::inference_fallback() && !sh.any_running() {
        return Err(Failure::Unavailable(
            "pg_ecom: the inference worker is not running".into(),
        ));
    }
    let slot = claimed.0;
    let started = layout::now_us();
    let max_seq_len = settings::max_seq_len();
    {
        // SAFETY: Filling: this backend owns the slot's data
        let d = unsafe { &mut *slot.data.get() };
        d.n_texts = texts.len() as u32;
        d.unavailable = 0;
        d.err_len = 0;
        d.requeued = 0;
        d.model_key = model_key;
        d.max_seq_len = max_seq_len as u32;
        let mut at = 0;
        for (i, t) in texts.iter().enumerate() {
            if t.len() > layout::MAX_INLINE_TEXT {
                // a long text: its token ids fit where the text would not
                let ids =
                    crate::encoder::local::encode_text(&crate::encoder::local::tokenizer(), t);
                for id in ids.iter() {
                    d.text[at..at + 4].copy_from_slice(&id.to_le_bytes());
                    at += 4;
                }
                d.lens[i] = 4 * ids.len() as u32;
                d.kinds[i] = layout::KIND_IDS;
            } else {
                d.text[at..at + t.len()].copy_from_slice(t.as_bytes());
                at += t.len();
                d.lens[i] = t.len() as u32;
                d.kinds[i] = layout::KIND_TEXT;
            }
        }
    }
    slot.ticket
        .store(h.ticket.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
    let now = layout::now_us();
    slot.submitted_us.store(now, Ordering::Relaxed);
    h.stats.record(Stage::Submit, now - started);
    slot.submit();
    wake_workers(sh);
    Ok(claimed)
}

/// Waits for a submitted request's embeddings (or its failure) until
/// `deadline`, then hands the slot back.
fn wait(sh: &Shared, claimed: Claimed, deadline: u64) -> Result<Vec<Vec<f32>>, Failure> {
    let slot = claimed.0;
    let timeout_us = settings::worker_timeout_ms() * 1000;
    loop {
        // SAFETY: Done or Failed: the worker handed the data back
        let d = || unsafe { &*slot.data.get() };
        match slot.state() {
            SlotState::Done => {
                let d = d();
                let n = d.n_texts as usize;
                let dims = d.dims as usize;
                let out = (0..n)
                    .map(|i| d.out[i * dims..(i + 1) * dims].to_vec())
                    .collect();
                let finished = slot.finished_us.load(Ordering::Relaxed);
                sh.header()
                    .stats
                    .record(Stage::HandBack, layout::now_us().saturating_sub(finished));
                drop(claimed);
                return Ok(out);
            }
            SlotState::Failed => {
                let d = d();
                let msg = String::from_utf8_lossy(&d.err[..d.err_len as usize]).into_owned();
                let unavailable = d.unavailable != 0;
                drop(claimed);
                return Err(if unavailable {
                    Failure::Unavailable(msg)
                } else {
                    Failure::Failed(msg)
                });
            }
            _ => {}
        }
        if settings::inference_fallback() && !sh.any_running() {
            return Err(Failure::Unavailable(
                "pg_ecom: the inference worker stopped".into(),
            ));
        }
        check_hung(sh);
        if layout::now_us() >= deadline {
            return Err(Failure::Unavailable(format!(
                "pg_ecom: the inference worker did not answer within {} ms (pg_ecom.worker_timeout)",
                timeout_us / 1000
            )));
        }
        wait_on_latch(Duration::from_millis(100));
    }
}

/// A worker that is not looping (SIGSTOP, a run that never returns) while
/// it runs a request, or while requests wait that it should take, is asked
/// to exit once its progress mark is older than pg_ecom.worker_hang_timeout
/// (a server setting: no session can shorten it); the postmaster starts a
/// new one (exit code 1: no cluster restart). A worker that is loading its
/// model is left alone.
fn check_hung(sh: &Shared) {
    let hang = settings::worker_hang_timeout_us();
    let now = layout::now_us();
    let oldest_waiting = sh
        .slots()
        .filter(|s| s.state() == SlotState::Submitted)
        .map(|s| now.saturating_sub(s.submitted_us.load(Ordering::Relaxed)))
        .max()
        .unwrap_or(0);
    for (i, w) in sh.workers().iter().enumerate() {
        let pid = w.pid.load(Ordering::Acquire);
        // only a worker with a model takes requests: one loading, or one
        // whose model failed, is not judged
        if pid == 0 || w.readiness() != Readiness::Ready {
            continue;
        }
        let stale = now.saturating_sub(w.heartbeat_us.load(Ordering::Acquire)) >= hang;
        let running = w.run_started_us.load(Ordering::Acquire) != 0;
        if !(stale && (running || oldest_waiting >= hang)) {
            continue;
        }
        // one backend signals and logs, once per hang period
        let sent = w.term_sent_us.load(Ordering::Acquire);
        if now.saturating_sub(sent) < hang
            || w.term_sent_us
                .compare_exchange(sent, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        pgrx::log!(
            "pg_ecom: inference worker {i} (pid {pid}) made no progress for {} ms; asking it to restart",
            hang / 1000
        );
        // SAFETY: a signal to a process of this server
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// Wakes the workers: whichever is free takes the request.
pub fn wake_workers(sh: &Shared) {
    for w in sh.workers() {
        let latch = w.latch.load(Ordering::Acquire);
        if latch != 0 {
            // SAFETY: a worker's latch in shared memory (its PGPROC's);
            // SetLatch on a latch whose owner left is harmless
            unsafe { pg_sys::SetLatch(latch as *mut pg_sys::Latch) };
        }
    }
}

pub fn unavailable(msg: String) -> ! {
    PgError::new(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, msg).hint("The server log says why; it restarts the worker by itself. SET pg_ecom.inference_fallback = on to encode in the backend meanwhile.").raise()
}
