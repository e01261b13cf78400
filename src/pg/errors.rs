//! What a client sees of an error: message, SQLSTATE, DETAIL and HINT
//! written for people — never Rust frames or source paths.
//!
//! pgrx appends a Rust backtrace to an error's DETAIL whenever the Rust
//! runtime captures one (RUST_BACKTRACE or RUST_LIB_BACKTRACE set in the
//! server's environment), also to Postgres' own errors that cross our code
//! such as "canceling statement due to statement timeout", and fills the
//! error's source location with Rust file and function paths. Two layers
//! keep those from clients:
//! 1. `_PG_init` sets RUST_LIB_BACKTRACE=0 unless the server was started
//!    with it set: no backtrace is captured (nor paid for) by default.
//! 2. An `emit_log_hook` moves a captured backtrace from DETAIL into the
//!    error's BACKTRACE field, which Postgres writes to the server log only,
//!    and clears Rust source locations. Starting the server with
//!    RUST_LIB_BACKTRACE=1 is the debug setting that puts backtraces in the
//!    log.
//!
//! Postgres calls emit_log_hook only for messages it writes to the server
//! log: with log_min_messages above a message's level (for example `fatal`
//! hides ERRORs from the log) the hook does not run, and a client asking
//! for VERBOSITY verbose sees the Rust file and line of that message
//! (docs/reliability.md).

use std::ffi::{CStr, CString};

use pgrx::{pg_sys, PgLogLevel, PgSqlErrorCode};

/// The one way pg_ecom raises an ERROR: a SQLSTATE, a message, and an
/// optional DETAIL and HINT, built and then raised:
///
/// `PgError::new(code, msg).hint(h).raise()`.
///
/// The "pg_ecom: " rule: a message about one of the caller's arguments
/// (`PgError::argument`, SQLSTATE 22023) names the argument and carries no
/// prefix, since the statement that failed is its context; every other
/// message starts with "pg_ecom: " exactly once (the builder adds it),
/// since it can be about the server's state (the model, the worker, the
/// tables) and is read in the server log away from any statement.
/// `PgError::input` is for what else the caller passed that has its own
/// SQLSTATE (a relation it named, the database it runs in): no prefix.
///
/// Messages kept as released although the rule would word them otherwise
/// (tests and users' log filters match them): with the prefix, ecom_evaluate's
/// unknown version (22023), ecom_feedback's relation errors (42P01, 42703,
/// 42804, 22023 "… nothing was recorded") and its unknown impression
/// (P0002); without it, ecom_learn's impressions budget (54000).
#[must_use = "a PgError does nothing until .raise()"]
pub struct PgError {
    code: PgSqlErrorCode,
    message: String,
    hint: Option<String>,
}

const PREFIX: &str = "pg_ecom: ";

impl PgError {
    /// An ERROR with `code`; the message gets the "pg_ecom: " prefix.
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let message = if message.starts_with(PREFIX) {
            message
        } else {
            format!("{PREFIX}{message}")
        };
        PgError {
            code,
            message,
            hint: None,
        }
    }

    /// A bad argument value (SQLSTATE 22023); the message names the
    /// argument and has no prefix.
    pub fn argument(message: impl Into<String>) -> Self {
        PgError {
            code: PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            message: message.into(),
            hint: None,
        }
    }

    /// What the caller passed is wrong in a way with its own SQLSTATE (a
    /// relation it named, the database it runs in); no prefix, as for
    /// `argument`.
    pub fn input(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        PgError {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Something pg_ecom's own statements or files did not do (SQLSTATE
    /// XX000): a statement on its tables that failed, a head that does
    /// not decode.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Raises it. `track_caller`: the error's source location (shown only
    /// where docs/reliability.md says) is the call site, not this line.
    #[track_caller]
    pub fn raise(self) -> ! {
        let mut r = pg_sys::panic::ErrorReport::new(self.code, self.message, "pg_ecom");
        if let Some(h) = self.hint {
            r = r.set_hint(h);
        }
        r.report(PgLogLevel::ERROR);
        unreachable!()
    }
}

/// The longest tenant name any function takes, in bytes: names are keys
/// of unique indexes (whose entries must fit a third of a page) and are
/// quoted in messages.
pub const MAX_TENANT_BYTES: usize = 256;

/// `tenant "name"` for a message, the name cut after 64 characters: a
/// message never echoes a long argument back whole.
pub fn tenant_name(tenant: &str) -> String {
    format!("tenant {}", pg_ecom_core::quote::quoted(tenant))
}

/// Whose heads a message is about: `tenant_name`, or the global head
/// (NULL tenant).
pub fn owner_name(tenant: Option<&str>) -> String {
    tenant.map_or_else(|| "the global head".to_string(), tenant_name)
}

static mut PREVIOUS: pg_sys::emit_log_hook_type = None;

pub fn install() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // set_var is not thread-safe: _PG_init runs before pg_ecom starts
        // any thread, and in the postmaster (shared_preload_libraries) no
        // thread exists; another extension loaded earlier in a session
        // could have started threads that read the environment, which is
        // the remaining (documented) risk of loading pg_ecom late.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // SAFETY: hooks are process globals set at library load, chained as
    // Postgres' own modules do.
    unsafe {
        PREVIOUS = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(scrub_hook);
    }
}

unsafe extern "C-unwind" fn scrub_hook(edata: *mut pg_sys::ErrorData) {
    // Inside error reporting: a panic must not escape into Postgres, and
    // a failure to scrub must not stop the report.
    let _ = std::panic::catch_unwind(|| unsafe { scrub(edata) });
    // SAFETY: the previous hook, if any, expects exactly this call.
    unsafe {
        if let Some(prev) = PREVIOUS {
            prev(edata);
        }
    }
}

/// SAFETY: `e` is the ErrorData being emitted; strings are allocated in the
/// current memory context, which Postgres sets to ErrorContext here.
unsafe fn scrub(e: *mut pg_sys::ErrorData) {
    if e.is_null() {
        return;
    }
    let e = &mut *e;
    if !e.detail.is_null() {
        let detail = CStr::from_ptr(e.detail).to_string_lossy().into_owned();
        if let Some((kept, trace)) = split_backtrace(&detail) {
            let kept_copy = if kept.is_empty() {
                std::ptr::null_mut()
            } else {
                pstrdup(kept)
            };
            if kept.is_empty() || !kept_copy.is_null() {
                if e.backtrace.is_null() {
                    e.backtrace = pstrdup(trace);
                }
                e.detail = kept_copy;
            }
        }
    }
    if !e.filename.is_null() && CStr::from_ptr(e.filename).to_bytes().ends_with(b".rs") {
        e.filename = std::ptr::null();
        e.lineno = 0;
        e.funcname = std::ptr::null();
    }
}

/// A copy of `s` in the current memory context, or NULL. Never raises:
/// an ERROR inside error reporting would free the error being reported
/// (pgrx's FFI guard flushes the error state), so out-of-memory gives NULL
/// (MCXT_ALLOC_NO_OOM) and the caller keeps what it had.
unsafe fn pstrdup(s: &str) -> *mut std::ffi::c_char {
    let Ok(c) = CString::new(s.replace('\0', "")) else {
        return std::ptr::null_mut();
    };
    let bytes = c.as_bytes_with_nul();
    let p = pg_sys::palloc_extended(bytes.len(), pg_sys::MCXT_ALLOC_NO_OOM as i32);
    if !p.is_null() {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len());
    }
    p.cast()
}

/// Splits a DETAIL into the part written for people and a Rust backtrace
/// appended to it (std's format: numbered frames, each followed by an
/// "at file.rs:line:col" line). None when there is no backtrace.
pub fn split_backtrace(detail: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for line in detail.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("0: ") && line.len() > t.len() {
            let rest = &detail[offset..];
            let is_trace = rest.lines().skip(1).any(|l| {
                let l = l.trim_start();
                l.starts_with("at ") || l.starts_with("1: ")
            });
            if is_trace {
                return Some((detail[..offset].trim_end(), rest));
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::split_backtrace;

    const TRACE: &str = "   0: pgrx_pg_sys::submodules::panic::register_pg_guard_panic_hook::{{closure}}\n             at /root/.cargo/registry/src/pgrx-pg-sys-0.18.0/src/submodules/panic.rs:353:32\n   1: std::panicking::rust_panic_with_hook\n             at /rustc/x/library/std/src/panicking.rs:841:13\n";

    #[test]
    fn a_backtrace_after_a_detail_is_split_off() {
        let d = format!("support relation sup has 3 rows\n{TRACE}");
        let (kept, trace) = split_backtrace(&d).unwrap();
        assert_eq!(kept, "support relation sup has 3 rows");
        assert!(trace.starts_with("   0: pgrx_pg_sys"));
    }

    #[test]
    fn a_detail_that_is_only_a_backtrace_leaves_nothing() {
        let (kept, _) = split_backtrace(TRACE).unwrap();
        assert_eq!(kept, "");
    }

    #[test]
    fn long_tenant_names_are_cut_in_messages() {
        assert_eq!(super::tenant_name("shop"), "tenant \"shop\"");
        let long = "é".repeat(1000);
        let m = super::tenant_name(&long);
        assert!(m.starts_with(&format!("tenant \"{}…\"", "é".repeat(64))));
        assert!(m.ends_with("(2000 bytes)"));
    }

    #[test]
    fn details_written_for_people_are_kept() {
        assert!(split_backtrace("Key (tenant)=(a) already exists.").is_none());
        assert!(split_backtrace("step 0: nothing moved").is_none());
        assert!(split_backtrace("").is_none());
    }
}
