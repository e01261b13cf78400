//! A vectorizer worker: one process per database, connected to it, that
//! embeds what the database's vectorizers queued (`ecom.vectorizer_step`,
//! schema.sql), one batch per vectorizer per transaction, and sleeps
//! `pg_ecom.vectorizer_naptime` when nothing is queued. Texts go to the
//! inference worker where one runs (the session default when preloaded).
//! It exits (code 0: a dynamic worker is then forgotten) when its database
//! has no pg_ecom 0.12.0 or later, or no vectorizer, or another worker
//! already serves it; the launcher or `ecom_vectorizer_attach` starts it
//! again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;

use crate::pg::settings;

/// Set in the postmaster when it registered the launcher; backends and
/// workers inherit it.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// This server runs vectorizer workers (launcher.rs registered).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Starts a worker for database `db`; with `wait`, waits until it runs and
/// returns its pid (the caller must be a backend: it is told the pid).
pub fn start(db: pg_sys::Oid, wait: bool) -> Option<i32> {
    let mut b = BackgroundWorkerBuilder::new("pg_ecom vectorizer")
        .set_type("pg_ecom vectorizer")
        .set_library("pg_ecom")
        .set_function("pg_ecom_vectorizer_main")
        .set_argument(Some(pg_sys::Datum::from(db.to_u32())))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        // never restarted by the postmaster: the launcher decides
        .set_restart_time(None);
    if wait {
        // SAFETY: reads this process's pid
        b = b.set_notify_pid(unsafe { pg_sys::MyProcPid });
    }
    let handle = b.load_dynamic().ok()?;
    if wait {
        handle.wait_for_startup().ok()
    } else {
        Some(0)
    }
}

/// The pid of this database's worker, started if none runs; None where
/// this server runs no vectorizer workers, or none could start
/// (max_worker_processes).
pub fn wake() -> Option<i32> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let running = Spi::get_one::<i32>(
        "SELECT a.pid FROM pg_catalog.pg_stat_activity a
          WHERE a.backend_type OPERATOR(pg_catalog.=) 'pg_ecom vectorizer'::pg_catalog.text
            AND a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
          LIMIT 1",
    )
    .ok()
    .flatten();
    if running.is_some() {
        return running;
    }
    // SAFETY: a plain global of this backend
    let db = unsafe { pg_sys::MyDatabaseId };
    let pid = start(db, true);
    if pid.is_none() {
        pgrx::warning!("pg_ecom: could not start a vectorizer worker (max_worker_processes?); the launcher tries again");
    }
    pid
}

/// postgres.c's die(): the next interrupt check raises FATAL
/// ("terminating background worker … due to administrator command").
unsafe extern "C-unwind" fn die(_signo: std::ffi::c_int) {
    // SAFETY: async-signal-safe stores and SetLatch, errno kept
    unsafe {
        let saved = *libc::__errno_location();
        if !pg_sys::proc_exit_inprogress {
            (&raw mut pg_sys::InterruptPending).write_volatile(1);
            (&raw mut pg_sys::ProcDiePending).write_volatile(1);
        }
        pg_sys::SetLatch(pg_sys::MyLatch);
        *libc::__errno_location() = saved;
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_ecom_vectorizer_main(arg: pg_sys::Datum) {
    let db = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    // SIGTERM as in a backend (shutdown, pg_terminate_backend): the next
    // interrupt check ends the process, in the middle of a batch too (its
    // transaction rolls back: the entries stay queued). A flag checked
    // between batches would keep a fast shutdown waiting on a batch whose
    // inference worker has already gone.
    // SAFETY: installs a handler that does what postgres.c's die() does
    unsafe { pg_sys::pqsignal(libc::SIGTERM, Some(die)) };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    // one worker per database: a session-level advisory lock, held until exit
    let mine = BackgroundWorker::transaction(|| {
        Spi::get_one::<bool>(
            "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended('pg_ecom vectorizer'::pg_catalog.text, 0::pg_catalog.int8))",
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    });
    if !mine {
        return;
    }
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: what a background worker does on SIGHUP
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let Some(taken) = BackgroundWorker::transaction(step) else {
            return;
        };
        if taken == 0 {
            // ends the process on SIGTERM (its interrupt check), or on
            // the postmaster's death
            if !BackgroundWorker::wait_latch(Some(Duration::from_millis(
                settings::vectorizer_naptime_ms(),
            ))) {
                return;
            }
        } else {
            pgrx::check_for_interrupts!();
        }
    }
}

/// One transaction's work: the keys taken, or None when there is nothing
/// to serve in this database.
fn step() -> Option<i64> {
    let installed = Spi::get_one::<bool>(
        "SELECT pg_catalog.to_regprocedure('ecom.vectorizer_step()'::pg_catalog.text) IS NOT NULL",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !installed {
        return None;
    }
    // an ERROR in the step (a catalogue problem; a batch's own errors are
    // kept in ecom.vectorizers) ends this worker with code 1; the launcher
    // starts another
    Spi::get_one::<i64>(
        "SELECT CASE WHEN EXISTS (SELECT FROM ecom.vectorizers) THEN ecom.vectorizer_step() END",
    )
    .unwrap_or_else(|e| pgrx::error!("pg_ecom vectorizer: {e}"))
}
