//! The one thread that drains the control loop's telemetry and hands every tick record to
//! each consumer in turn: the fault log, reward programs, and (next) recording and rerun.
//! Consumers may be slow; the loop never waits for them (the channel drops the newest record
//! when full and counts it in `telemetry_dropped`).

use std::thread::JoinHandle;
use std::time::Duration;

use rlrt_runtime::telemetry::{TelemetryReceiver, TickRecord};

/// Something that wants every tick's record.
pub trait TickConsumer: Send {
    fn on_tick(&mut self, record: &TickRecord);
    /// Called when the queue is empty, before the thread sleeps (such as for hot reload).
    fn on_idle(&mut self) {}
    /// Called once after the loop's sender is gone and the queue is drained.
    fn finish(&mut self) {}
}

/// Starts the telemetry thread; it ends when the loop's telemetry sender is dropped.
pub fn spawn(
    receiver: TelemetryReceiver,
    mut consumers: Vec<Box<dyn TickConsumer>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rlrt-telemetry".into())
        .spawn(move || {
            while let Some(n) = receiver.drain_or_closed(|record| {
                for c in consumers.iter_mut() {
                    c.on_tick(record);
                }
            }) {
                if n == 0 {
                    for c in consumers.iter_mut() {
                        c.on_idle();
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            for c in consumers.iter_mut() {
                c.finish();
            }
        })
}

/// The consumers of a run: the fault log, and the config's reward programs if any.
pub fn standard_consumers(
    period_ns: u64,
    rewards: Option<crate::reward_programs::ProgramRewards>,
) -> Vec<Box<dyn TickConsumer>> {
    let mut consumers: Vec<Box<dyn TickConsumer>> =
        vec![Box::new(crate::fault_log::FaultLog::new(period_ns))];
    if let Some(rewards) = rewards {
        consumers.push(Box::new(rewards));
    }
    consumers
}
