//! `ecom_worker_stats()`: what the workers and their clients counted in
//! shared memory, as one JSON object.

use std::sync::atomic::Ordering;

use crate::encoder::route::{mode, published};
use crate::pg::settings::{self, Inference};
use crate::worker::layout;

/// `ecom_worker_stats()`: queue, batches, latencies, cache, memory.
pub fn stats() -> serde_json::Value {
    use serde_json::json;
    let mode = match mode() {
        Inference::Worker => "worker",
        Inference::Backend => "backend",
    };
    let Some(sh) = layout::get() else {
        return json!({"inference": mode, "preloaded": false, "worker": null});
    };
    let h = sh.header();
    let st = &h.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let (mut queued, mut busy) = (0, 0);
    for s in sh.slots() {
        match s.state.load(Ordering::Relaxed) {
            layout::FREE => {}
            layout::SUBMITTED => {
                queued += 1;
                busy += 1;
            }
            _ => busy += 1,
        }
    }
    let hist = |a: &[std::sync::atomic::AtomicU64]| a.iter().map(load).collect::<Vec<u64>>();
    let pct = |v: &[u64]| {
        json!({
            "p50": layout::quantile(v, 0.50).map(f64::round),
            "p95": layout::quantile(v, 0.95).map(f64::round),
            "p99": layout::quantile(v, 0.99).map(f64::round),
        })
    };
    let batch_hist: serde_json::Map<String, serde_json::Value> = hist(&st.batch_hist)
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
        .collect();
    let (batches, texts) = (load(&st.batches), load(&st.texts));
    let (hits, misses) = (load(&st.cache_hits), load(&st.cache_misses));
    let cache = sh.cache();
    let dims = cache.dims();
    let pids: Vec<i32> = sh
        .workers()
        .iter()
        .map(|w| w.pid.load(Ordering::Acquire))
        .filter(|&p| p != 0)
        .collect();
    let pid = pids.first().copied().unwrap_or(0);
    let info = published(&sh);
    let memory = |pid: i32, field: &str| -> Option<u64> {
        // a worker's memory as the kernel counts it (same OS user)
        let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let line = s.lines().find(|l| l.starts_with(field))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    json!({
        "inference": mode,
        "preloaded": true,
        "worker": {
            "pid": (pid != 0).then_some(pid),
            "pids": pids,
            "count": h.n_workers,
            "states_each": sh.workers().iter().map(|w| match (w.pid.load(Ordering::Acquire), w.ready.load(Ordering::Acquire)) {
                (0, _) => "not running", (_, 1) => "ready", (_, 2) => "failed", _ => "loading"
            }).collect::<Vec<&str>>(),
            "requests_each": sh.workers().iter().map(|w| w.requests.load(Ordering::Relaxed)).collect::<Vec<u64>>(),
            "state": match sh.ready() {
                1 => "ready", 2 => "failed", _ if pid != 0 => "loading", _ => "not running"
            },
            "starts": h.generation.load(Ordering::Relaxed),
            "provider": info["provider"],
            "threads": info["threads"],
            "model_file": info["model_file"],
            "load_ms": info["load_ms"],
            "error": info["error"],
            "max_batch": settings::worker_max_batch(),
            "max_delay_us": settings::worker_max_delay_us(),
        },
        "slots": h.n_slots,
        "slots_busy": busy,
        "queue_depth": queued,
        "requests": load(&st.requests),
        "texts": texts,
        "batches": batches,
        "mean_batch": if batches > 0 { texts as f64 / batches as f64 } else { 0.0 },
        "batch_size_histogram": batch_hist,
        "failed": load(&st.failed),
        "timeouts": load(&st.timeouts),
        "fallbacks": load(&st.fallbacks),
        "requeued": load(&st.requeued),
        "wait_us": pct(&hist(&st.wait_hist)),
        "run_us": pct(&hist(&st.run_hist)),
        "cache": {
            "capacity_bytes": h.cache_bytes,
            "capacity_entries": if dims > 0 { cache.capacity(dims) } else { 0 },
            "entries": cache.entries(),
            "hits": hits,
            "misses": misses,
            "inserts": load(&st.cache_inserts),
            "hit_rate": if hits + misses > 0 { Some(hits as f64 / (hits + misses) as f64) } else { None },
        },
        "memory": {
            "shared_bytes": sh.total_bytes(),
            "worker_rss_bytes": if pids.is_empty() { None } else { pids.iter().map(|&p| memory(p, "Rss:")).sum::<Option<u64>>() },
            "worker_pss_bytes": if pids.is_empty() { None } else { pids.iter().map(|&p| memory(p, "Pss:")).sum::<Option<u64>>() },
        },
    })
}
