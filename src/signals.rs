//! Ctrl-C and SIGTERM ask a control loop to stop at the end of the current tick.
//!
//! Only commands that poll the flag (`run`, `sim`, `demo`, `bench loop`, and `train`, which
//! saves its checkpoint at the current step) take the signals over, by asking for
//! [`stop_flag`]; every other command (recording, benchmarks, ...) keeps the default action
//! and ends at once. A second signal while a loop is stopping also
//! ends the process at once, in case the loop is stuck.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static STOP: AtomicBool = AtomicBool::new(false);

/// The flag a loop polls, set by SIGINT or SIGTERM. The first call installs the handlers.
pub fn stop_flag() -> &'static AtomicBool {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install);
    &STOP
}

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // Second signal: the default action (terminate). `signal` and `raise` are
        // async-signal-safe.
        // SAFETY: restores the default disposition of a valid signal number and raises it.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only touches an atomic and calls async-signal-safe functions;
    // `signal` is given a valid function pointer of the expected type.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}
