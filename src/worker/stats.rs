//! `ecom_worker_stats()`: what the workers and their clients counted in
//! shared memory, as one JSON object.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::encoder::route::{mode, published};
use crate::pg::settings::{self, Inference};
use crate::worker::layout::{self, Shared, Stage};
use crate::worker::protocol::{Readiness, SlotState};

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn hist(a: &[AtomicU64]) -> Vec<u64> {
    a.iter().map(load).collect()
}

/// `ecom_worker_stats()`: queue, batches, latencies, cache, memory.
pub fn stats() -> Value {
    let mode = match mode() {
        Inference::Worker => "worker",
        Inference::Backend => "backend",
    };
    let Some(sh) = layout::get() else {
        return json!({"inference": mode, "preloaded": false, "worker": null});
    };
    let h = sh.header();
    let st = &h.stats;
    let (queued, busy) = queue(&sh);
    let (batches, texts) = (load(&st.batches), load(&st.texts));
    let pids: Vec<i32> = sh
        .workers()
        .iter()
        .map(|w| w.pid.load(Ordering::Acquire))
        .filter(|&p| p != 0)
        .collect();
    json!({
        "inference": mode,
        "preloaded": true,
        "worker": worker(&sh, &pids),
        "slots": h.n_slots,
        "slots_busy": busy,
        "queue_depth": queued,
        "requests": load(&st.requests),
        "texts": texts,
        "batches": batches,
        "mean_batch": if batches > 0 { texts as f64 / batches as f64 } else { 0.0 },
        "batch_size_histogram": batch_histogram(&st.batch_hist),
        "failed": load(&st.failed),
        "timeouts": load(&st.timeouts),
        "fallbacks": load(&st.fallbacks),
        "requeued": load(&st.requeued),
        "wait_us": percentiles(&hist(&st.stage(Stage::Wait).hist)),
        "run_us": percentiles(&hist(&st.run_hist)),
        "stages_us": stages(&sh),
        "cache": cache(&sh),
        "memory": {
            "shared_bytes": sh.total_bytes(),
            "worker_rss_bytes": memory(&pids, "Rss:"),
            "worker_pss_bytes": memory(&pids, "Pss:"),
        },
    })
}

/// (requests waiting for a worker, slots in use)
fn queue(sh: &Shared) -> (usize, usize) {
    let (mut queued, mut busy) = (0, 0);
    for s in sh.slots() {
        match s.peek() {
            SlotState::Free => {}
            SlotState::Submitted => {
                queued += 1;
                busy += 1;
            }
            _ => busy += 1,
        }
    }
    (queued, busy)
}

/// The workers: each one's state and requests, and what the one that
/// published last said about its model.
fn worker(sh: &Shared, pids: &[i32]) -> Value {
    let h = sh.header();
    let pid = pids.first().copied().unwrap_or(0);
    let info = published(sh);
    let model = info.as_ref().and_then(|i| i.model.as_ref());
    json!({
        "pid": (pid != 0).then_some(pid),
        "pids": pids,
        "count": h.n_workers,
        "states_each": sh.workers().iter().map(|w| match (w.pid.load(Ordering::Acquire), w.readiness()) {
            (0, _) => "not running", (_, Readiness::Ready) => "ready", (_, Readiness::Failed) => "failed", _ => "loading"
        }).collect::<Vec<&str>>(),
        "requests_each": sh.workers().iter().map(|w| w.requests.load(Ordering::Relaxed)).collect::<Vec<u64>>(),
        "state": match sh.readiness() {
            Readiness::Ready => "ready", Readiness::Failed => "failed", _ if pid != 0 => "loading", _ => "not running"
        },
        "starts": h.generation.load(Ordering::Relaxed),
        "provider": model.map(|m| &m.provider),
        "threads": model.map(|m| m.threads),
        "model_file": model.map(|m| &m.model_file),
        "load_ms": model.map(|m| m.load_ms),
        "error": info.as_ref().and_then(|i| i.error.as_ref()),
        "max_batch": settings::worker_max_batch(),
        "max_delay_us": settings::worker_max_delay_us(),
    })
}

/// Where the time goes, stage by stage (layout::Stage): how often each
/// was passed, its total, mean and percentiles in µs, and what it is
/// counted per.
fn stages(sh: &Shared) -> serde_json::Map<String, Value> {
    let st = &sh.header().stats;
    layout::STAGES
        .iter()
        .map(|&(stage, name, per)| {
            let s = st.stage(stage);
            let h = hist(&s.hist);
            let count: u64 = h.iter().sum();
            let total = load(&s.total_us);
            let mut v = percentiles(&h);
            v["per"] = json!(per);
            v["count"] = json!(count);
            v["total"] = json!(total);
            v["mean"] = json!((count > 0).then(|| (total as f64 / count as f64).round()));
            (name.to_owned(), v)
        })
        .collect()
}

fn percentiles(v: &[u64]) -> Value {
    json!({
        "p50": layout::quantile(v, 0.50).map(f64::round),
        "p95": layout::quantile(v, 0.95).map(f64::round),
        "p99": layout::quantile(v, 0.99).map(f64::round),
    })
}

/// Encoder runs by texts per run: "1", "2-3", …, "128+".
fn batch_histogram(a: &[AtomicU64]) -> serde_json::Map<String, Value> {
    hist(a)
        .iter()
        .enumerate()
        .map(|(b, &n)| {
            let lo = 1usize << b;
            let label = match b {
                0 => "1".to_owned(),
                b if b == layout::BATCH_HIST - 1 => format!("{lo}+"),
                _ => format!("{lo}-{}", 2 * lo - 1),
            };
            (label, json!(n))
        })
        .collect()
}

fn cache(sh: &Shared) -> Value {
    let st = &sh.header().stats;
    let (hits, misses) = (load(&st.cache_hits), load(&st.cache_misses));
    let cache = sh.cache();
    let dims = cache.dims();
    json!({
        "capacity_bytes": sh.header().cache_bytes,
        "capacity_entries": if dims > 0 { cache.capacity(dims) } else { 0 },
        "entries": cache.entries(),
        "hits": hits,
        "misses": misses,
        "inserts": load(&st.cache_inserts),
        "hit_rate": if hits + misses > 0 { Some(hits as f64 / (hits + misses) as f64) } else { None },
    })
}

/// The workers' memory as the kernel counts it (same OS user): the sum of
/// `field` over them, None with no worker running or one unreadable.
fn memory(pids: &[i32], field: &str) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| memory_of(p, field)).sum()
}

fn memory_of(pid: i32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
