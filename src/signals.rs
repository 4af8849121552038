//! Ctrl-C and SIGTERM ask the loop to stop at the end of the current tick.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// The flag the loop polls; set by SIGINT or SIGTERM once [`install`] ran.
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handlers. A second Ctrl-C while stopping falls back to the default action
/// only if the loop is stuck; the loop normally notices within one tick.
pub fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic; `signal` is given a valid function
    // pointer of the expected type.
    unsafe {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}
