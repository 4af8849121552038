//! A telemetry consumer that turns tick records into log lines about safety faults: when a
//! fault begins (with its cause), when it clears and how long it lasted. It runs on its own
//! thread, so the tick never formats or writes a log line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rlrt_runtime::safety::Cause;
use rlrt_runtime::telemetry::{TelemetryReceiver, TickRecord};

/// Counts kept by the consumer, readable when it has finished.
#[derive(Default, Debug)]
pub struct FaultLogCounts {
    pub records: AtomicU64,
    pub fault_episodes: AtomicU64,
}

/// Starts the consumer thread; it ends when the loop's telemetry sender is dropped.
pub fn spawn(
    receiver: TelemetryReceiver,
    period_ns: u64,
) -> std::io::Result<(JoinHandle<()>, Arc<FaultLogCounts>)> {
    let counts = Arc::new(FaultLogCounts::default());
    let shared = counts.clone();
    let handle = std::thread::Builder::new()
        .name("rlrt-fault-log".into())
        .spawn(move || {
            let mut current: Option<(Cause, u64)> = None;
            receiver.run_until_closed(Duration::from_millis(5), |record: &TickRecord| {
                shared.records.fetch_add(1, Ordering::Relaxed);
                match (current, record.fault) {
                    (None, Some(cause)) => {
                        shared.fault_episodes.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            tick = record.tick,
                            cause = cause.name(),
                            published = record.published,
                            "safety fault: commanding the fault action"
                        );
                        current = Some((cause, record.tick));
                    }
                    (Some((cause, since)), None) => {
                        let ticks = record.tick - since;
                        tracing::info!(
                            tick = record.tick,
                            cause = cause.name(),
                            ticks,
                            ms = (ticks * period_ns) as f64 / 1e6,
                            "safety fault cleared: policy back in control"
                        );
                        current = None;
                    }
                    (Some((old, since)), Some(new)) if old != new => {
                        tracing::warn!(
                            tick = record.tick,
                            from = old.name(),
                            to = new.name(),
                            "safety fault changed cause"
                        );
                        current = Some((new, since));
                    }
                    _ => {}
                }
            });
            if let Some((cause, since)) = current {
                tracing::warn!(
                    cause = cause.name(),
                    since_tick = since,
                    "run ended during a safety fault"
                );
            }
        })?;
    Ok((handle, counts))
}
