//! Threads we (or ONNX Runtime) start inside a backend must not receive the
//! signals Postgres handles (SIGINT for cancel, SIGTERM, SIGALRM for
//! timeouts, SIGUSR1…): the handlers assume they run on the backend's own
//! thread. A new thread inherits the creating thread's mask, so we block
//! everything while creating threads and restore the mask right after.

/// Runs `f` (which creates threads) with all signals blocked on this thread.
pub fn blocked<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: plain POSIX calls on sigset_t values we own; the old mask is
    // restored on every way out, unwinding included.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        struct Restore(libc::sigset_t);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: restores the mask saved above.
                unsafe {
                    libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
                }
            }
        }
        let _restore = Restore(old);
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigint_blocked_here() -> bool {
        // SAFETY: queries this thread's mask only.
        unsafe {
            let mut cur: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut cur);
            libc::sigismember(&cur, libc::SIGINT) == 1
        }
    }

    #[test]
    fn threads_started_inside_have_signals_blocked_and_caller_is_restored() {
        assert!(!sigint_blocked_here());
        let child = blocked(|| std::thread::spawn(sigint_blocked_here));
        assert!(
            child.join().unwrap(),
            "child thread must start with SIGINT blocked"
        );
        assert!(!sigint_blocked_here(), "caller's mask must be restored");
    }
}
