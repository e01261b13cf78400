//! Settings in force for one step only, as a function's `SET` clause puts
//! them: saved at a GUC nest level the caller opens and pops, and put back
//! by the (sub)transaction's abort when the step raises an ERROR.

use std::ffi::CStr;

use pgrx::pg_sys;

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
