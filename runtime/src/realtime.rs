//! Optional real-time set-up of the control thread: CPU pinning, SCHED_FIFO priority,
//! locked memory, minimal timer slack. Each step that the OS refuses yields a warning that
//! says what to change; the loop still runs, with worse jitter.

use crate::config::SchedulerConfig;

/// Applies what the config asks for to the calling thread. Returns one warning per step that
/// could not be applied. Call from the control thread, before the first tick.
pub fn apply_to_current_thread(config: &SchedulerConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    imp::reduce_timer_slack(&mut warnings);
    if let Some(core) = config.cpu_core {
        imp::pin_to_core(core, &mut warnings);
    }
    if let Some(priority) = config.realtime_priority {
        imp::set_fifo_priority(priority, &mut warnings);
    }
    if config.lock_memory {
        imp::lock_memory(&mut warnings);
    }
    warnings
}

#[cfg(target_os = "linux")]
mod imp {
    fn last_error() -> std::io::Error {
        std::io::Error::last_os_error()
    }

    /// Linux wakes sleeping threads up to 50 us late by default ("timer slack").
    pub fn reduce_timer_slack(warnings: &mut Vec<String>) {
        // SAFETY: prctl with PR_SET_TIMERSLACK takes an integer argument and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            warnings.push(format!("could not reduce timer slack: {}", last_error()));
        }
    }

    pub fn pin_to_core(core: usize, warnings: &mut Vec<String>) {
        let available = std::thread::available_parallelism().map_or(1, |n| n.get());
        if core >= available {
            warnings.push(format!(
                "scheduler.cpu_core = {core}, but this machine has {available} CPUs; not pinned"
            ));
            return;
        }
        // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET write within it, and
        // sched_setaffinity reads exactly size_of::<cpu_set_t>() bytes from it.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(core, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            warnings.push(format!(
                "could not pin the control thread to CPU {core}: {}",
                last_error()
            ));
        }
    }

    pub fn set_fifo_priority(priority: i32, warnings: &mut Vec<String>) {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: `param` is a valid sched_param that outlives the call.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if rc != 0 {
            warnings.push(format!(
                "could not set SCHED_FIFO priority {priority}: {} (needs CAP_SYS_NICE or an rtprio limit in /etc/security/limits.conf)",
                last_error()
            ));
        }
    }

    pub fn lock_memory(warnings: &mut Vec<String>) {
        // SAFETY: mlockall takes flags only.
        let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
        if rc != 0 {
            warnings.push(format!(
                "could not lock memory: {} (needs CAP_IPC_LOCK or a memlock limit)",
                last_error()
            ));
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn reduce_timer_slack(_warnings: &mut Vec<String>) {}

    pub fn pin_to_core(core: usize, warnings: &mut Vec<String>) {
        warnings.push(format!(
            "CPU pinning (core {core}) is only implemented on Linux"
        ));
    }

    pub fn set_fifo_priority(priority: i32, warnings: &mut Vec<String>) {
        warnings.push(format!(
            "real-time priority {priority} is only implemented on Linux"
        ));
    }

    pub fn lock_memory(warnings: &mut Vec<String>) {
        warnings.push("memory locking is only implemented on Linux".to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_steps_become_warnings_not_errors() {
        let config = SchedulerConfig {
            cpu_core: Some(100_000), // no machine here has that many CPUs
            ..SchedulerConfig::default()
        };
        let warnings = std::thread::spawn(move || apply_to_current_thread(&config))
            .join()
            .unwrap();
        assert!(warnings
            .iter()
            .any(|w| w.contains("not pinned") || w.contains("only implemented")));
    }
}
