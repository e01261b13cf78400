//! Settings in force for one step only, as a function's `SET` clause puts
//! them: saved at a new GUC nest level and put back after, and put back by
//! the (sub)transaction's abort when the step raises an ERROR.

use std::ffi::CStr;

use pgrx::pg_sys;

/// Runs `f` with each (name, value) of `settings` in force, then puts the
/// caller's values back. `f` must not end the transaction (the level it
/// opened would be gone): as for a procedure with SET clauses.
pub fn with_settings<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    // SAFETY: the sequence a function's SET clause runs (fmgr_security_definer):
    // a nest level, saved values, and AtEOXact_GUC(true, ..) to pop it
    let nest = unsafe {
        let nest = pg_sys::NewGUCNestLevel();
        set_saved(settings);
        nest
    };
    let out = f();
    // SAFETY: pops the level opened above; nothing inside opened another
    // that is still open (a nested one is popped by whoever opened it)
    unsafe { pg_sys::AtEOXact_GUC(true, nest) };
    out
}

/// Sets each (name, value), saving the caller's value at the innermost
/// GUC nest level; an invalid value is an ERROR.
///
/// # Safety
/// Call inside a nest level the caller opened (`NewGUCNestLevel`) and
/// pops (`AtEOXact_GUC`), on the backend's own thread.
pub unsafe fn set_saved(settings: &[(&CStr, &CStr)]) {
    for (name, value) in settings {
        // SAFETY: NUL-terminated strings; the caller's contract above
        unsafe {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
    }
}
