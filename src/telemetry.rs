//! A run's telemetry, assembled: the hub thread (`rlrt_runtime::hub`) with the consumers a
//! command asked for (the fault log, the config's reward programs and frame rewards, the run
//! recorder, rerun logging), and what they report when the run ends.

use std::sync::Arc;
use std::thread::JoinHandle;

use rlrt_runtime::hub::{spawn, EventSender, TickConsumer};
use rlrt_runtime::link::CameraFrames;
use rlrt_runtime::telemetry::TelemetryReceiver;

use rlrt_rewards::live::frames::{FrameRewardSummary, FrameRewards};

/// The consumers of a run: the fault log, the config's reward programs if any, and rerun
/// logging if asked for (`rerun` with the link's camera frames, when there is a link).
pub fn standard_consumers(
    period_ns: u64,
    rewards: Option<rlrt_rewards::live::programs::ProgramRewards>,
    rerun: Option<(&crate::timeline::RerunLogger, Option<Arc<CameraFrames>>)>,
) -> Vec<Box<dyn TickConsumer>> {
    let mut consumers: Vec<Box<dyn TickConsumer>> = vec![Box::new(
        rlrt_runtime::hub::fault_log::FaultLog::new(period_ns),
    )];
    let events = rerun.as_ref().map(|(logger, _)| logger.events());
    if let Some(rewards) = rewards {
        consumers.push(Box::new(rewards.with_rerun(events)));
    }
    if let Some((logger, cameras)) = rerun {
        consumers.push(Box::new(logger.consumer(cameras)));
    }
    consumers
}

/// The telemetry side of one run: the thread and what it reports at the end.
pub struct RunTelemetry {
    thread: JoinHandle<()>,
    summaries: Option<Arc<std::sync::Mutex<Vec<rlrt_rewards::live::programs::ProgramSummary>>>>,
    frame_summaries: Option<Arc<std::sync::Mutex<Vec<FrameRewardSummary>>>>,
    recording: Option<Arc<std::sync::Mutex<rlrt_runtime::hub::recorder::RecordingSummary>>>,
    rerun: Option<crate::timeline::RerunLogger>,
}

/// What a run's telemetry reports once it has finished.
pub struct TelemetryOutcome {
    pub programs: Vec<rlrt_rewards::live::programs::ProgramSummary>,
    pub frame_rewards: Vec<FrameRewardSummary>,
    /// What `--record` wrote.
    pub recording: Option<rlrt_runtime::hub::recorder::RecordingSummary>,
    pub rerun: Option<crate::timeline::RerunSummary>,
}

/// The link's camera frames and the clock they are stamped with, for frame-scored rewards.
pub struct CameraFeed {
    pub frames: Arc<CameraFrames>,
    pub clock: rlrt_runtime::WallClock,
}

/// What a run's telemetry thread serves.
pub struct TelemetrySetup<'a> {
    /// The config's reward programs, loaded and checked.
    pub programs: Option<rlrt_rewards::live::programs::ProgramRewards>,
    /// The config's clip and classifier rewards, loaded; they need `cameras`.
    pub frame_rewards: Option<FrameRewards>,
    pub rerun: Option<&'a crate::timeline::Destination>,
    /// The recording's name in rerun, such as "rlrt run reach-arm".
    pub title: String,
    pub wall: crate::timeline::WallTime,
    /// The link's camera frames (runs over a link).
    pub cameras: Option<CameraFeed>,
    /// Record the run's steps (and camera frames) as a dataset.
    pub recording: Option<rlrt_runtime::hub::recorder::Recording>,
}

impl TelemetrySetup<'_> {
    /// Also records the run as a dataset.
    pub fn with_recording(
        mut self,
        recording: Option<rlrt_runtime::hub::recorder::Recording>,
    ) -> Self {
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
        programs: Option<rlrt_rewards::live::programs::ProgramRewards>,
        frame_rewards: Option<FrameRewards>,
        rerun: Option<&'a crate::timeline::Destination>,
    ) -> Self {
        let clock = rt.control.clock();
        Self {
            programs,
            frame_rewards,
            rerun,
            title,
            wall: crate::timeline::WallTime::from_clock_now(rlrt_runtime::Clock::now_ns(clock)),
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
        programs: Option<rlrt_rewards::live::programs::ProgramRewards>,
        rerun: Option<&'a crate::timeline::Destination>,
        wall: crate::timeline::WallTime,
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
                crate::timeline::RerunLogger::start(
                    d,
                    config,
                    &title,
                    wall,
                    crate::timeline::DEFAULT_QUEUE_LEN,
                )
            })
            .transpose()?;
        let summaries = programs.as_ref().map(|r| r.summaries());
        let mut consumers = standard_consumers(
            config.period_ns(),
            programs,
            rerun
                .as_ref()
                .map(|r| (r, cameras.as_ref().map(|c| c.frames.clone()))),
        );
        let mut recording_summary = None;
        if let Some(rec) = &recording {
            let recorder = rlrt_runtime::hub::recorder::RunRecorder::new(
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
                    f.start(feed.frames, feed.clock, rerun.as_ref().map(|r| r.events()))?;
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
    pub fn rerun_handle(&self) -> Option<EventSender> {
        self.rerun.as_ref().map(|r| r.events())
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
            rerun: self.rerun.map(crate::timeline::RerunLogger::finish),
        }
    }
}
