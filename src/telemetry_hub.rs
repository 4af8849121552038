//! The one thread that drains the control loop's telemetry and hands every tick record to
//! each consumer in turn: the fault log, reward programs, and (next) recording and rerun.
//! Consumers may be slow; the loop never waits for them (the channel drops the newest record
//! when full and counts it in `telemetry_dropped`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rlrt_runtime::link::CameraFrames;
use rlrt_runtime::telemetry::{TelemetryReceiver, TickRecord};

use crate::frame_rewards::{FrameRewardSummary, FrameRewards};
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
    frame_summaries: Option<Arc<std::sync::Mutex<Vec<FrameRewardSummary>>>>,
    recording: Option<Arc<std::sync::Mutex<crate::run_recorder::RecordingSummary>>>,
    rerun: Option<crate::rerun_log::RerunLogger>,
}

/// What a run's telemetry reports once it has finished.
pub struct TelemetryOutcome {
    pub programs: Vec<crate::reward_programs::ProgramSummary>,
    pub frame_rewards: Vec<FrameRewardSummary>,
    /// What `--record` wrote.
    pub recording: Option<crate::run_recorder::RecordingSummary>,
    pub rerun: Option<crate::rerun_log::RerunSummary>,
}

/// The link's camera frames and the clock they are stamped with, for frame-scored rewards.
pub struct CameraFeed {
    pub frames: Arc<CameraFrames>,
    pub clock: rlrt_runtime::WallClock,
}

/// What a run's telemetry thread serves.
pub struct TelemetrySetup<'a> {
    /// The config's reward programs, loaded and checked.
    pub programs: Option<crate::reward_programs::ProgramRewards>,
    /// The config's clip and classifier rewards, loaded; they need `cameras`.
    pub frame_rewards: Option<FrameRewards>,
    pub rerun: Option<&'a crate::rerun_log::Destination>,
    /// The recording's name in rerun, such as "rlrt run reach-arm".
    pub title: String,
    pub wall: crate::rerun_log::WallTime,
    /// The link's camera frames (runs over a link).
    pub cameras: Option<CameraFeed>,
    /// Record the run's steps (and camera frames) as a dataset.
    pub recording: Option<crate::run_recorder::Recording>,
}

impl TelemetrySetup<'_> {
    /// Also records the run as a dataset.
    pub fn with_recording(mut self, recording: Option<crate::run_recorder::Recording>) -> Self {
        self.recording = recording;
        self
    }
}

impl<'a> TelemetrySetup<'a> {
    /// The setup of a run over a link: the link's cameras and the loop's clock, wall time
    /// from now.
    pub fn on_link(
        rt: &crate::linked::LinkedRuntime,
        title: String,
        programs: Option<crate::reward_programs::ProgramRewards>,
        frame_rewards: Option<FrameRewards>,
        rerun: Option<&'a crate::rerun_log::Destination>,
    ) -> Self {
        let clock = rt.control.clock();
        Self {
            programs,
            frame_rewards,
            rerun,
            title,
            wall: crate::rerun_log::WallTime::from_clock_now(rlrt_runtime::Clock::now_ns(clock)),
            cameras: Some(CameraFeed {
                frames: rt.link.cameras(),
                clock: clock.clone(),
            }),
            recording: None,
        }
    }
}

impl<'a> TelemetrySetup<'a> {
    /// The setup of a run without a link (the kinematic model): no cameras, so no frame
    /// rewards.
    pub fn without_link(
        title: String,
        programs: Option<crate::reward_programs::ProgramRewards>,
        rerun: Option<&'a crate::rerun_log::Destination>,
        wall: crate::rerun_log::WallTime,
    ) -> Self {
        Self {
            programs,
            frame_rewards: None,
            rerun,
            title,
            wall,
            cameras: None,
            recording: None,
        }
    }
}

impl RunTelemetry {
    /// Starts the telemetry thread with the standard consumers, opening the rerun
    /// destination first when one is given, and the frame-reward scoring thread when the
    /// config has frame-scored rewards (these need the camera feed of a link).
    pub fn start(
        config: &rlrt_runtime::RobotConfig,
        receiver: TelemetryReceiver,
        setup: TelemetrySetup<'_>,
    ) -> anyhow::Result<Self> {
        let TelemetrySetup {
            programs,
            frame_rewards,
            rerun,
            title,
            wall,
            cameras,
            recording,
        } = setup;
        let rerun = rerun
            .map(|d| {
                crate::rerun_log::RerunLogger::start(
                    d,
                    config,
                    &title,
                    wall,
                    crate::rerun_log::DEFAULT_QUEUE_LEN,
                )
            })
            .transpose()?;
        let summaries = programs.as_ref().map(|r| r.summaries());
        let mut consumers = standard_consumers(
            config.period_ns(),
            programs,
            rerun
                .as_ref()
                .map(|r| (r.handle(), cameras.as_ref().map(|c| c.frames.clone()))),
        );
        let mut recording_summary = None;
        if let Some(rec) = &recording {
            let recorder = crate::run_recorder::RunRecorder::new(
                config,
                rec,
                cameras.as_ref().map(|c| c.frames.clone()),
            )?;
            recording_summary = Some(recorder.summary());
            consumers.push(Box::new(recorder));
        }
        let mut frame_summaries = None;
        match (frame_rewards, cameras) {
            (None, _) => {}
            (Some(_), None) => anyhow::bail!(
                "the config's clip and classifier rewards score camera frames, which only a \
                 robot on the link sends (use the link or --sim, not --kinematic)"
            ),
            (Some(f), Some(feed)) => {
                let consumer =
                    f.start(feed.frames, feed.clock, rerun.as_ref().map(|r| r.handle()))?;
                frame_summaries = Some(consumer.summaries());
                consumers.push(Box::new(consumer));
            }
        }
        Ok(Self {
            thread: spawn(receiver, consumers)?,
            summaries,
            frame_summaries,
            recording: recording_summary,
            rerun,
        })
    }

    /// A handle for logging more events (such as episode ends) to this run's recording.
    /// Drop it before [`RunTelemetry::finish`], which waits for the recording to close.
    pub fn rerun_handle(&self) -> Option<RerunHandle> {
        self.rerun.as_ref().map(|r| r.handle())
    }

    /// Waits for the thread (the loop's telemetry sender must be dropped first), the
    /// frame-reward scoring thread and the rerun recording to finish.
    pub fn finish(self) -> TelemetryOutcome {
        let _ = self.thread.join();
        fn take<T: Clone>(s: Option<Arc<std::sync::Mutex<Vec<T>>>>) -> Vec<T> {
            s.and_then(|s| s.lock().ok().map(|s| s.clone()))
                .unwrap_or_default()
        }
        TelemetryOutcome {
            programs: take(self.summaries),
            frame_rewards: take(self.frame_summaries),
            recording: self
                .recording
                .and_then(|s| s.lock().ok().map(|s| s.clone())),
            rerun: self.rerun.map(crate::rerun_log::RerunLogger::finish),
        }
    }
}
