//! The one thread that drains the control loop's telemetry and hands every tick record to
//! each consumer in turn: the fault log, reward programs, and (next) recording and rerun.
//! Consumers may be slow; the loop never waits for them (the channel drops the newest record
//! when full and counts it in `telemetry_dropped`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rlrt_runtime::link::CameraFrames;
use rlrt_runtime::telemetry::{TelemetryReceiver, TickRecord};

use crate::rerun_log::{RerunConsumer, RerunHandle};

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

/// The consumers of a run: the fault log, the config's reward programs if any, and rerun
/// logging if asked for (`rerun` with the link's camera frames, when there is a link).
pub fn standard_consumers(
    period_ns: u64,
    rewards: Option<crate::reward_programs::ProgramRewards>,
    rerun: Option<(RerunHandle, Option<Arc<CameraFrames>>)>,
) -> Vec<Box<dyn TickConsumer>> {
    let mut consumers: Vec<Box<dyn TickConsumer>> =
        vec![Box::new(crate::fault_log::FaultLog::new(period_ns))];
    let handle = rerun.as_ref().map(|(h, _)| h.clone());
    if let Some(rewards) = rewards {
        consumers.push(Box::new(rewards.with_rerun(handle)));
    }
    if let Some((handle, cameras)) = rerun {
        consumers.push(Box::new(RerunConsumer::new(handle, cameras)));
    }
    consumers
}

/// The telemetry side of one run: the thread and what it reports at the end.
pub struct RunTelemetry {
    thread: JoinHandle<()>,
    summaries: Option<Arc<std::sync::Mutex<Vec<crate::reward_programs::ProgramSummary>>>>,
    rerun: Option<crate::rerun_log::RerunLogger>,
}

impl RunTelemetry {
    /// Starts the telemetry thread with the standard consumers, opening the rerun
    /// destination first when one is given.
    pub fn start(
        config: &rlrt_runtime::RobotConfig,
        receiver: TelemetryReceiver,
        rewards: Option<crate::reward_programs::ProgramRewards>,
        rerun: Option<&crate::rerun_log::Destination>,
        wall: crate::rerun_log::WallTime,
        cameras: Option<Arc<CameraFrames>>,
    ) -> anyhow::Result<Self> {
        let rerun = rerun
            .map(|d| {
                crate::rerun_log::RerunLogger::start(
                    d,
                    config,
                    &format!("rlrt run {}", config.name),
                    wall,
                    crate::rerun_log::DEFAULT_QUEUE_LEN,
                )
            })
            .transpose()?;
        let summaries = rewards.as_ref().map(|r| r.summaries());
        let consumers = standard_consumers(
            config.period_ns(),
            rewards,
            rerun.as_ref().map(|r| (r.handle(), cameras)),
        );
        Ok(Self {
            thread: spawn(receiver, consumers)?,
            summaries,
            rerun,
        })
    }

    /// Waits for the thread (the loop's telemetry sender must be dropped first) and the
    /// rerun recording to finish.
    pub fn finish(
        self,
    ) -> (
        Vec<crate::reward_programs::ProgramSummary>,
        Option<crate::rerun_log::RerunSummary>,
    ) {
        let _ = self.thread.join();
        let rewards = self
            .summaries
            .and_then(|s| s.lock().ok().map(|s| s.clone()))
            .unwrap_or_default();
        (
            rewards,
            self.rerun.map(crate::rerun_log::RerunLogger::finish),
        )
    }
}
