//! A run recorded as it happens (`rlrt run --record <folder>`): the run's steps as an rlrt dataset (docs/recordings.md), so
//! that data collected on a real robot (or a simulator on the link), with any policy, can be
//! relabelled and trained on like `rlrt record`'s.
//!
//! A telemetry consumer, never on the tick: each tick's record carries the observation the
//! policy used and the command that was sent. Row `t` of an episode is the feature vector of
//! tick `t`'s observation, action `t` the command sent on that tick, and row `t + 1` the next
//! tick's observation. Each camera frame is kept with the newest row whose state the robot
//! sampled at or before the frame's capture (both stamped on the robot's clock), so a frame
//! that arrives late still sits beside the state it shows; frames captured before the
//! episode's first row are dropped. Frames carry no success labels (a robot has no ground
//! truth). The link keeps every accepted frame for the recorder until it takes them (bounded
//! in bytes; what does not fit is dropped and counted), so a run stepped faster than real
//! time keeps its frames too.
//!
//! Episodes are cut:
//! - every `episode_seconds` of loop time, so that a crash or power cut loses at most that
//!   much (each finished episode is written at once: temporary file, fsync, rename);
//! - at a tick without a fresh, usable observation (no state yet, a stale state, a fault
//!   action): the data around a fault is not what the policy did, so the episode before it
//!   ends there and the next one starts at the first good tick after it;
//! - when the run ends.
//!
//! The last step of every episode is marked as a time limit (`timeout`), never as a terminal
//! state. Rewards are recorded as 0 and `dataset.json` says `none`: score the data with
//! `rlrt relabel` (a reward program, CLIP, a classifier or a reward model) before training.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::TickConsumer;
use crate::link::{CameraFrames, Frame};
use crate::recording::{
    camera_infos, DatasetInfo, DatasetWriter, Episode, FrameTrack, RecordingError,
};
use crate::telemetry::TickRecord;
use crate::{FeatureBuilder, RobotConfig};

/// Pixels of frames waiting for the rows they belong to (all cameras), and of frames each
/// camera keeps between the recorder's looks: beyond these the oldest are dropped, counted.
const HELD_BYTES: usize = 256 << 20;
const QUEUED_BYTES: usize = 64 << 20;

/// What `dataset.json`'s `reward` says of a run's recording.
pub const NO_REWARD: &str = "none";

/// Where and how to record a run.
#[derive(Clone, Debug)]
pub struct Recording {
    pub dir: PathBuf,
    /// The hw-config file and its text, saved with the dataset.
    pub config_path: PathBuf,
    pub config_text: String,
    /// The longest episode, in seconds of loop time.
    pub episode_seconds: f64,
}

/// What was recorded.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordingSummary {
    pub dir: String,
    /// Episodes written by this run, and the dataset's total after it.
    pub episodes_written: usize,
    pub episodes_in_dataset: usize,
    pub steps: usize,
    pub frames: usize,
    /// Frames replaced by newer ones before they were looked at, or captured before their
    /// episode's first row.
    pub frames_skipped: u64,
    /// Episodes cut at a tick without a usable observation.
    pub cut_at_faults: usize,
    /// An episode that could not be written (the reason; recording stopped there).
    pub error: Option<String>,
}

impl std::fmt::Display for RecordingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "recorded to {}: {} episodes ({} steps, {} camera frames, {} frames skipped, {} \
             episodes cut at faults); the dataset holds {} episodes; rewards: none (score them \
             with rlrt relabel)",
            self.dir,
            self.episodes_written,
            self.steps,
            self.frames,
            self.frames_skipped,
            self.cut_at_faults,
            self.episodes_in_dataset
        )?;
        if let Some(e) = &self.error {
            writeln!(f, "recording FAILED and stopped: {e}")?;
        }
        Ok(())
    }
}

pub struct RunRecorder {
    writer: DatasetWriter,
    features: FeatureBuilder,
    action_len: usize,
    max_steps: usize,
    row: Vec<f64>,
    episode: Option<Episode>,
    /// The command of the previous tick, waiting for the observation it led to.
    pending: Vec<f64>,
    cameras: Option<Arc<CameraFrames>>,
    /// Frames just taken from the link, before they join `held`.
    incoming: Vec<Frame>,
    /// The robot's sample stamp of each row of the episode in progress.
    stamps: Vec<u64>,
    /// Per camera, frames captured after the newest row seen so far: placed once a row
    /// sampled at or after their capture arrives.
    held: Vec<std::collections::VecDeque<Frame>>,
    held_bytes: usize,
    summary: RecordingSummary,
    shared: Arc<Mutex<RecordingSummary>>,
    failed: bool,
}

impl RunRecorder {
    /// Creates (or continues, if it holds a matching dataset) the dataset in `rec.dir`.
    pub fn new(
        config: &RobotConfig,
        rec: &Recording,
        cameras: Option<Arc<CameraFrames>>,
    ) -> Result<Self, RecordingError> {
        // The policy's kind in the config's spelling (ee_servo, checkpoint, ...).
        let mut policy = String::new();
        for (i, c) in format!("{:?}", config.policy.kind).chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                policy.push('_');
            }
            policy.push(c.to_ascii_lowercase());
        }
        let camera_infos = if cameras.is_some() {
            camera_infos(config)
        } else {
            Vec::new()
        };
        let info = DatasetInfo::describe(
            config,
            &rec.config_path,
            NO_REWARD.to_owned(),
            format!("rlrt run ({policy})"),
            camera_infos,
        );
        let writer = DatasetWriter::create(&rec.dir, info, &rec.config_text)?;
        let n = cameras.as_ref().map_or(0, |c| c.slots().len());
        if let Some(cameras) = &cameras {
            for i in 0..n {
                cameras.keep_every_frame(i, QUEUED_BYTES);
            }
        }
        let summary = RecordingSummary {
            dir: rec.dir.display().to_string(),
            episodes_in_dataset: writer.episodes(),
            ..RecordingSummary::default()
        };
        Ok(Self {
            writer,
            features: FeatureBuilder::new(config),
            action_len: config.action.len(),
            max_steps: ((rec.episode_seconds * config.control_rate_hz).round() as usize).max(1),
            row: vec![0.0; config.observation.feature_len],
            episode: None,
            pending: Vec::new(),
            cameras,
            incoming: Vec::new(),
            stamps: Vec::new(),
            held: vec![std::collections::VecDeque::new(); n],
            held_bytes: 0,
            shared: Arc::new(Mutex::new(summary.clone())),
            summary,
            failed: false,
        })
    }

    pub fn summary(&self) -> Arc<Mutex<RecordingSummary>> {
        self.shared.clone()
    }

    /// Writes the episode in progress (if it has a step) and forgets it.
    fn end_episode(&mut self) {
        let Some(mut episode) = self.episode.take() else {
            return;
        };
        if episode.steps() == 0 || self.failed {
            return;
        }
        if let Some(last) = episode.timeouts.last_mut() {
            *last = true;
        }
        match self.writer.write(&episode) {
            Ok(_) => {
                self.summary.episodes_written += 1;
                self.summary.episodes_in_dataset = self.writer.episodes();
                self.summary.steps += episode.steps();
                self.summary.frames += episode.frames.iter().map(FrameTrack::len).sum::<usize>();
            }
            Err(e) => {
                let text = e.with_causes();
                tracing::error!("recording stopped: {text}");
                self.summary.error = Some(text);
                self.failed = true;
            }
        }
        if let Ok(mut shared) = self.shared.lock() {
            *shared = self.summary.clone();
        }
    }

    /// Takes each camera's new frames, and keeps every frame whose row is known with the
    /// newest row sampled at or before its capture.
    fn take_frames(&mut self) {
        let (Some(cameras), Some(episode)) = (self.cameras.clone(), self.episode.as_mut()) else {
            return;
        };
        let newest = self.stamps.last().copied().unwrap_or(0);
        for i in 0..cameras.slots().len() {
            self.summary.frames_skipped += cameras.take_every_frame(i, &mut self.incoming);
            for frame in self.incoming.drain(..) {
                self.held_bytes += frame.data.len();
                self.held[i].push_back(frame);
            }
            // Bounded: a run whose rows stop coming (telemetry far behind) drops its oldest
            // frames rather than grow without limit.
            while self.held_bytes > HELD_BYTES {
                let Some(old) = self.held.iter_mut().filter_map(|h| h.pop_front()).next() else {
                    break;
                };
                self.held_bytes -= old.data.len();
                self.summary.frames_skipped += 1;
            }
            // A frame is placed once a row sampled at or after its capture is known.
            while let Some(frame) = self.held[i].front() {
                if frame.stamp_ns > newest {
                    break;
                }
                let at = self.stamps.partition_point(|s| *s <= frame.stamp_ns);
                let frame = self.held[i].pop_front().expect("front exists");
                self.held_bytes -= frame.data.len();
                let track = &mut episode.frames[i];
                match at.checked_sub(1) {
                    // Rows only grow along a track.
                    Some(row) => {
                        let row = (row as u32).max(track.rows.last().copied().unwrap_or(0));
                        track.push(row, false, 0.0, &frame.data);
                    }
                    // Captured before this episode's first row.
                    None => self.summary.frames_skipped += 1,
                }
            }
        }
    }

    /// A new episode starting from `row` (sampled at `stamp`).
    fn start_episode(&mut self, stamp: u64) {
        let mut episode = Episode::start(self.summary.episodes_written as u64, &self.row);
        episode.frames = vec![FrameTrack::default(); self.held.len()];
        self.episode = Some(episode);
        self.stamps.clear();
        self.stamps.push(stamp);
    }
}

impl TickConsumer for RunRecorder {
    fn on_tick(&mut self, record: &TickRecord) {
        if self.failed {
            return;
        }
        let usable = record.observation.seq != 0 && record.fault.is_none() && record.published;
        if !usable {
            if self.episode.as_ref().is_some_and(|e| e.steps() > 0) {
                self.summary.cut_at_faults += 1;
            }
            self.end_episode();
            return;
        }
        self.features.write(&record.observation, &mut self.row);
        let stamp = record.observation.stamp_ns;
        match self.episode.as_mut() {
            Some(episode) => {
                episode.push(&self.pending, 0.0, false, false, &self.row);
                self.stamps.push(stamp);
            }
            None => self.start_episode(stamp),
        }
        self.take_frames();
        self.pending.clear();
        self.pending
            .extend_from_slice(&record.command[..self.action_len]);
        if self
            .episode
            .as_ref()
            .is_some_and(|e| e.steps() >= self.max_steps)
        {
            // The next episode starts from this tick's observation and command.
            self.end_episode();
            self.start_episode(stamp);
        }
    }

    fn finish(&mut self) {
        self.end_episode();
    }
}
