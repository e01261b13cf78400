//! The vectorizer launcher: one process per server (pg_ecom preloaded,
//! `pg_ecom.vectorizer_workers` on) that keeps a vectorizer worker
//! (database.rs) running in every database that wants one. A worker in a
//! database without pg_ecom or without vectorizers exits at once, so the
//! launcher tries such a database again after 10 s, then less and less
//! often (up to every 5 minutes); `ecom_vectorizer_attach` starts its
//! database's worker itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;

use crate::pg::settings;

const FIRST_RETRY: Duration = Duration::from_secs(10);
const LAST_RETRY: Duration = Duration::from_secs(300);

/// Registers the launcher (from `_PG_init` while preloading).
pub fn register() {
    if !settings::vectorizer_workers() {
        return;
    }
    BackgroundWorkerBuilder::new("pg_ecom vectorizer launcher")
        .set_type("pg_ecom vectorizer launcher")
        .set_library("pg_ecom")
        .set_function("pg_ecom_vectorizer_launcher_main")
        .enable_spi_access()
        // a standby's tables cannot be written: nothing to do until promoted
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
    crate::vectorizer::database::enable();
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_ecom_vectorizer_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some(&settings::vectorizer_database()), None);
    // per database without a worker: when to try next, and the wait after
    let mut retry: HashMap<u32, (Instant, Duration)> = HashMap::new();
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: what a background worker does on SIGHUP
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let (databases, served) = BackgroundWorker::transaction(databases);
        let now = Instant::now();
        retry.retain(|db, _| databases.contains(db));
        for db in databases {
            if served.contains(&db) {
                retry.remove(&db);
                continue;
            }
            let (at, wait) = retry.entry(db).or_insert((now, FIRST_RETRY));
            if now >= *at {
                // a failure to start (max_worker_processes) is tried again
                // like a worker that exited
                let _ = crate::vectorizer::database::start(pg_sys::Oid::from(db), false);
                *at = now + *wait;
                *wait = (*wait * 2).min(LAST_RETRY);
            }
        }
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(5))) {
            break;
        }
    }
    // SIGTERM: exit code 1, so that a pg_terminate_backend() restarts it
    // (at shutdown it simply ends)
    // SAFETY: ends the process through Postgres' exit path
    unsafe { pg_sys::proc_exit(1) };
}

/// The databases a worker may connect to, and those where one runs.
fn databases() -> (Vec<u32>, Vec<u32>) {
    Spi::connect(|c| {
        let all = c
            .select(
                "SELECT oid FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate",
                None,
                &[],
            )?
            .map(|r| r.get::<pg_sys::Oid>(1).map(|o| o.map_or(0, |o| o.to_u32())))
            .collect::<Result<Vec<_>, _>>()?;
        let served = c
            .select(
                "SELECT DISTINCT datid FROM pg_catalog.pg_stat_activity
                  WHERE backend_type OPERATOR(pg_catalog.=) 'pg_ecom vectorizer'::pg_catalog.text",
                None,
                &[],
            )?
            .map(|r| r.get::<pg_sys::Oid>(1).map(|o| o.map_or(0, |o| o.to_u32())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, pgrx::spi::Error>((all, served))
    })
    .unwrap_or_else(|e| {
        pgrx::warning!("pg_ecom vectorizer launcher: cannot list databases: {e}");
        (Vec::new(), Vec::new())
    })
}
