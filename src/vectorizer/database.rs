//! A vectorizer worker: one process per database, connected to it, that
//! embeds what the database's vectorizers queued (`ecom.vectorizers_due`,
//! `ecom.vectorizer_batch`, schema.sql), one batch per transaction, and
//! sleeps `pg_ecom.vectorizer_naptime` when nothing is queued. Texts go to the
//! inference worker where one runs (the session default when preloaded).
//! It exits (code 0: a dynamic worker is then forgotten) when its database
//! has no pg_ecom 0.12.0 or later, or no vectorizer for 30 s, or another
//! worker already serves it; the launcher or `ecom_vectorizer_attach` starts it
//! again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
/// returns its pid (the caller must be a backend: it is told the pid), and
/// the worker waits up to 30 s for a first vectorizer.
pub fn start(db: pg_sys::Oid, wait: bool) -> Option<i32> {
    let mut b = BackgroundWorkerBuilder::new("pg_ecom vectorizer")
        .set_type("pg_ecom vectorizer")
        .set_library("pg_ecom")
        .set_function("pg_ecom_vectorizer_main")
        // the database, and (bit 32) whether to wait for a first vectorizer
        .set_argument(Some(pg_sys::Datum::from(
            db.to_u32() as u64 | (wait as u64) << 32,
        )))
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
    // SAFETY: plain reads of this backend's state
    if !ENABLED.load(Ordering::Relaxed) || unsafe { pg_sys::RecoveryInProgress() } {
        // a standby starts no vectorizer worker before its promotion
        return None;
    }
    // pg_stat_activity as of now, not as this transaction first read it
    // SAFETY: drops this backend's statistics snapshot
    unsafe { pg_sys::pgstat_clear_snapshot() };
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
    let linger = (arg.value() as u64 >> 32) & 1 == 1;
    // SIGTERM as in a backend (shutdown, pg_terminate_backend): the next
    // interrupt check ends the process, in the middle of a batch too (its
    // transaction rolls back: the entries stay queued). A flag checked
    // between batches would keep a fast shutdown waiting on a batch whose
    // inference worker has already gone. Installed before the signals are
    // unblocked.
    // SAFETY: installs a handler that does what postgres.c's die() does
    unsafe { pg_sys::pqsignal(libc::SIGTERM, Some(die)) };
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    // one worker per database: a session-level advisory lock, held until exit
    let try_lock = || {
        in_transaction(|| {
            Spi::get_one::<bool>(
                "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended('pg_ecom vectorizer'::pg_catalog.text, 0::pg_catalog.int8))",
            )
            .ok()
            .flatten()
            .unwrap_or(false)
        })
    };
    let started = Instant::now();
    let mut mine = try_lock();
    // one attach started may find a worker the launcher started that is
    // about to leave (it looked before the attach committed): it waits to
    // take over rather than leave the database without one
    while !mine && linger && started.elapsed() < LINGER {
        if !BackgroundWorker::wait_latch(Some(Duration::from_millis(200))) {
            return;
        }
        mine = try_lock();
    }
    if !mine {
        return;
    }
    // a worker started by ecom_vectorizer_attach may look before the attach
    // commits: it waits a while for a first vectorizer before it leaves.
    // One the launcher started leaves at once: a session connected to a
    // database makes DROP DATABASE and CREATE DATABASE … TEMPLATE refuse.
    let mut idle_since: Option<Instant> = None;
    loop {
        if BackgroundWorker::sighup_received() {
            // SAFETY: what a background worker does on SIGHUP
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let taken = match in_transaction(due) {
            Due::NotInstalled => return,
            Due::NoVectorizer => {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if !linger || since.elapsed() >= LINGER {
                    return;
                }
                0
            }
            Due::Batches(batches) => {
                idle_since = None;
                // each batch its own transaction: one vectorizer's wait or
                // error holds up no other's rows
                batches
                    .into_iter()
                    .map(|(id, size)| in_transaction(|| batch(id, size)))
                    .sum::<i64>()
            }
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

/// How long a worker waits for a first vectorizer before it exits.
const LINGER: Duration = Duration::from_secs(30);

/// `f` in a transaction of its own, then the statistics a backend reports
/// after each statement (autovacuum learns of the dead queue rows and table
/// versions from them; a worker that never reports them keeps them secret).
fn in_transaction<R>(
    f: impl FnOnce() -> R + std::panic::UnwindSafe + std::panic::RefUnwindSafe,
) -> R {
    let r = BackgroundWorker::transaction(f);
    // SAFETY: what worker_spi does after each transaction
    unsafe {
        pg_sys::pgstat_report_stat(true);
        pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_IDLE, std::ptr::null());
    }
    r
}

enum Due {
    /// no pg_ecom 0.12.0 or later in this database
    NotInstalled,
    NoVectorizer,
    /// (vectorizer, batch size) with rows to embed now
    Batches(Vec<(i32, i32)>),
}

fn due() -> Due {
    let installed = Spi::get_one::<bool>(
        "SELECT pg_catalog.to_regprocedure('ecom.vectorizers_due()'::pg_catalog.text) IS NOT NULL",
    )
    .ok()
    .flatten()
    .unwrap_or(false);
    if !installed {
        return Due::NotInstalled;
    }
    let any = Spi::get_one::<bool>("SELECT EXISTS (SELECT FROM ecom.vectorizers)")
        .ok()
        .flatten()
        .unwrap_or(false);
    if !any {
        return Due::NoVectorizer;
    }
    let batches = Spi::connect(|c| {
        c.select(
            "SELECT id, batch_size FROM ecom.vectorizers_due()",
            None,
            &[],
        )?
        .map(|r| Ok((r.get::<i32>(1)?.unwrap_or(0), r.get::<i32>(2)?.unwrap_or(1))))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| pgrx::error!("pg_ecom vectorizer: {e}"));
    Due::Batches(batches)
}

/// One batch of vectorizer `id`: the keys taken. A batch's own errors are
/// kept in ecom.vectorizers; an ERROR escaping (a catalogue problem) ends
/// this worker with code 1, and the launcher starts another.
fn batch(id: i32, size: i32) -> i64 {
    // SAFETY: shows the batch in pg_stat_activity while it runs
    unsafe {
        pg_sys::pgstat_report_activity(
            pg_sys::BackendState::STATE_RUNNING,
            c"SELECT ecom.vectorizer_batch(…)".as_ptr(),
        )
    };
    Spi::get_one_with_args::<i32>(
        "SELECT ecom.vectorizer_batch($1::pg_catalog.int4, $2::pg_catalog.int4)",
        &[id.into(), size.into()],
    )
    .unwrap_or_else(|e| pgrx::error!("pg_ecom vectorizer: {e}"))
    .unwrap_or(0) as i64
}
