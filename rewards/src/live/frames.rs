//! Rewards scored from camera frames (`[[rewards]] kind = "clip"` and `"classifier"`), on
//! their own thread: a model that takes milliseconds to hundreds of milliseconds per frame
//! must never sit on the tick, nor on the telemetry thread that feeds the other consumers.
//!
//! - **The scoring thread** (`rlrt-frame-rewards`) polls the link's [`CameraFrames`] every
//!   millisecond and takes each camera's newest frame. Frames that were replaced before it
//!   got to them are counted as superseded, never queued: a slow model scores the freshest
//!   frame rather than falling further behind. CLIP sources that share a model folder share
//!   one model, and the new frames of all their cameras go through it as one batch; text
//!   embeddings are computed once, at load. Each result carries its frame's capture stamp,
//!   receive time and the time it was ready.
//! - **The consumer** on the telemetry thread places each result on the first tick whose
//!   start follows the frame's arrival (the tick that could first have seen it: the same rule
//!   rerun uses for the frame itself), sends it to rerun under `rewards/<source>/...`, and
//!   summarises values, latency (frame received to reward ready), model time, superseded
//!   and invalid frames.
//!
//! Everything that can be checked is checked at load (model files, camera encodings and
//! sizes, prompts), so a bad source stops the run before it starts; a frame that cannot be
//! scored at run time is counted and skipped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rlrt_runtime::compute::{ComputeDevice, Precision};
use rlrt_runtime::config::{FrameResize, ImageEncoding, RewardKind};
use rlrt_runtime::link::{CameraFrames, Frame};
use rlrt_runtime::stats::Percentiles;
use rlrt_runtime::telemetry::TickRecord;
use rlrt_runtime::{Clock, RobotConfig, WallClock};

use rlrt_runtime::hub::{Event, EventSender, TickConsumer};

use super::programs::SeriesSummary;
use super::{LoadError, SourceError, Unscored};
use crate::clip::{ClipEngine, ClipGoal, Resize, Rgb8};
use crate::frame_model::OnnxClassifier;

/// How often the scoring thread looks for new frames when it found none.
const POLL: Duration = Duration::from_millis(1);
/// Tick starts kept for matching (at 1 kHz, a minute: far more than any model takes).
const TICK_HISTORY: usize = 1 << 16;
/// Results waiting for the telemetry thread.
const RESULT_QUEUE: usize = 1024;

/// One frame-scored reward source of the hw-config.
#[derive(Clone, Debug)]
struct SourceInfo {
    name: Arc<str>,
    kind: RewardKind,
    camera: usize,
    camera_name: String,
    weight: f64,
    /// Names of the values logged beside the reward.
    terms: Arc<[String]>,
}

enum Scorer {
    /// One CLIP model and every source that uses it.
    Clip {
        model: Box<ClipEngine>,
        resize: Resize,
        goals: Vec<(usize, ClipGoal)>,
    },
    Classifier {
        model: Box<OnnxClassifier>,
        source: usize,
        /// The sparse reward's threshold; `None` for a reward model (the output is the
        /// reward).
        threshold: Option<f64>,
    },
}

/// The config's frame-scored rewards, loaded and checked, ready to start.
pub struct FrameRewards {
    sources: Vec<SourceInfo>,
    scorers: Vec<Scorer>,
}

/// One frame scored by one source.
#[derive(Clone, Debug)]
pub struct Scored {
    pub source: usize,
    /// The camera's count of accepted frames, this one included.
    pub frame: u64,
    /// Capture time, on the robot's clock.
    pub stamp_ns: u64,
    /// Receive time and the time the reward was ready, on the runtime's clock.
    pub received_ns: u64,
    pub scored_ns: u64,
    /// Time in the model (for a batch, the whole batch).
    pub inference_ns: u64,
    /// Frames of this camera replaced by newer ones before the scoring thread took this one.
    pub superseded: u64,
    /// The reward and its terms, or why the frame could not be scored.
    pub result: Result<(f64, Vec<f64>), Unscored>,
}

/// `rewards[index].key` of `config` is wrong: `source` says how.
fn located(
    config: &RobotConfig,
    index: usize,
    key: &'static str,
) -> impl FnOnce(SourceError) -> LoadError {
    let file = config.source.clone();
    move |source| LoadError::Source {
        file,
        index,
        key,
        source: Box::new(source),
    }
}

impl FrameRewards {
    /// Loads every clip and classifier source of `config`; `None` when it has none.
    pub fn load(config: &RobotConfig) -> Result<Option<Self>, LoadError> {
        Self::load_where(config, |_| true)
    }

    /// Loads the clip or classifier source of `config` named `name` alone (`None` when no
    /// such source exists): what `rlrt relabel` scores a dataset's frames with.
    pub fn load_named(config: &RobotConfig, name: &str) -> Result<Option<Self>, LoadError> {
        Self::load_where(config, |r| r.name == name)
    }

    fn load_where(
        config: &RobotConfig,
        keep: impl Fn(&rlrt_runtime::config::RewardSourceConfig) -> bool,
    ) -> Result<Option<Self>, LoadError> {
        let mut sources = Vec::new();
        let mut scorers: Vec<Scorer> = Vec::new();
        // (folder, resize, device, precision) -> scorer index
        type ClipKey = (std::path::PathBuf, FrameResize, ComputeDevice, Precision);
        let mut clip_folders: Vec<(ClipKey, usize)> = Vec::new();
        for (i, reward) in config.rewards.iter().enumerate() {
            if reward.kind == RewardKind::Program || !keep(reward) {
                continue;
            }
            let camera_name = reward.camera.clone().unwrap_or_default();
            let camera = config
                .observation
                .cameras
                .iter()
                .position(|c| c.name == camera_name)
                .ok_or_else(|| {
                    located(config, i, "camera")(SourceError::UnknownCamera(camera_name.clone()))
                })?;
            let spec = &config.observation.cameras[camera];
            let model_path = reward
                .model_path
                .clone()
                .ok_or_else(|| located(config, i, "model_path")(SourceError::Missing))?;
            let source = sources.len();
            let terms: Vec<String> = match reward.kind {
                RewardKind::Clip => {
                    if !matches!(spec.encoding, ImageEncoding::Rgb8 | ImageEncoding::Mono8) {
                        return Err(located(config, i, "camera")(SourceError::ClipEncoding {
                            camera: spec.name.clone(),
                            encoding: spec.encoding.as_str(),
                        }));
                    }
                    // Sources on the same folder, resizing, device and precision share a model.
                    let key = (
                        model_path.clone(),
                        reward.resize,
                        reward.device,
                        reward.precision,
                    );
                    let at = match clip_folders.iter().find(|(k, _)| *k == key) {
                        Some((_, at)) => *at,
                        None => {
                            let model =
                                ClipEngine::load(&model_path, reward.device, reward.precision)
                                    .map_err(|e| located(config, i, "model_path")(e.into()))?;
                            tracing::info!(
                                reward = reward.name,
                                model = %model_path.display(),
                                backend = model.describe(),
                                "CLIP model loaded"
                            );
                            scorers.push(Scorer::Clip {
                                model: Box::new(model),
                                resize: match reward.resize {
                                    FrameResize::CentreCrop => Resize::CentreCrop,
                                    FrameResize::Plain => Resize::Plain,
                                },
                                goals: Vec::new(),
                            });
                            clip_folders.push((key, scorers.len() - 1));
                            scorers.len() - 1
                        }
                    };
                    let Scorer::Clip { model, goals, .. } = &mut scorers[at] else {
                        unreachable!("clip_folders indexes CLIP scorers");
                    };
                    let goal = ClipGoal::new(
                        model.as_ref(),
                        reward.goal.as_deref().unwrap_or_default(),
                        reward.baseline.as_deref(),
                        reward.alpha,
                    )
                    .map_err(|e| located(config, i, "goal")(e.into()))?;
                    goals.push((source, goal));
                    let mut names = vec!["goal_similarity".to_owned()];
                    if reward.baseline.is_some() {
                        names.push("baseline_similarity".to_owned());
                    }
                    names
                }
                RewardKind::Classifier => {
                    let model = OnnxClassifier::load(&model_path, spec, reward.goal.as_deref())
                        .map_err(|e| located(config, i, "model_path")(e.into()))?;
                    scorers.push(Scorer::Classifier {
                        model: Box::new(model),
                        source,
                        threshold: Some(reward.threshold),
                    });
                    vec!["probability".to_owned()]
                }
                _ => {
                    let model =
                        OnnxClassifier::load_reward(&model_path, spec, reward.goal.as_deref())
                            .map_err(|e| located(config, i, "model_path")(e.into()))?;
                    scorers.push(Scorer::Classifier {
                        model: Box::new(model),
                        source,
                        threshold: None,
                    });
                    Vec::new()
                }
            };
            sources.push(SourceInfo {
                name: Arc::from(reward.name.as_str()),
                kind: reward.kind,
                camera,
                camera_name,
                weight: reward.weight,
                terms: terms.into(),
            });
        }
        Ok((!sources.is_empty()).then_some(Self { sources, scorers }))
    }

    /// Starts the scoring thread on `cameras` (stamped with `clock`, the clock the link
    /// stamps frames with); the returned consumer belongs on the telemetry thread.
    pub fn start(
        self,
        cameras: Arc<CameraFrames>,
        clock: WallClock,
        rerun: Option<EventSender>,
    ) -> std::io::Result<FrameRewardConsumer> {
        let (tx, rx) = crossbeam_channel::bounded(RESULT_QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let results_dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sources = self.sources.clone();
        let worker = Worker {
            scorers: self.scorers,
            sources: self.sources,
            cameras: cameras.clone(),
            clock,
            out: tx,
            stop: stop.clone(),
            results_dropped: results_dropped.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("rlrt-frame-rewards".into())
            .spawn(move || worker.run())?;
        let summaries: Vec<FrameRewardSummary> =
            sources.iter().map(FrameRewardSummary::new).collect();
        Ok(FrameRewardConsumer {
            shared: Arc::new(Mutex::new(summaries.clone())),
            summaries,
            latencies: vec![Vec::new(); sources.len()],
            inference: vec![Vec::new(); sources.len()],
            sources,
            rx,
            stop,
            thread: Some(thread),
            cameras,
            results_dropped,
            ticks: VecDeque::new(),
            pending: VecDeque::new(),
            rerun,
            last_publish: Instant::now(),
        })
    }
}

struct Worker {
    scorers: Vec<Scorer>,
    sources: Vec<SourceInfo>,
    cameras: Arc<CameraFrames>,
    clock: WallClock,
    out: Sender<Scored>,
    stop: Arc<AtomicBool>,
    results_dropped: Arc<std::sync::atomic::AtomicU64>,
}

/// A camera's frame as the scoring thread took it.
#[derive(Default)]
struct Taken {
    frame: Frame,
    fresh: bool,
    superseded: u64,
    /// RGB bytes (a mono8 frame expanded), for CLIP.
    rgb: Vec<u8>,
}

impl Worker {
    fn run(mut self) {
        let n = self.cameras.slots().len();
        let used: Vec<bool> = (0..n)
            .map(|c| self.sources.iter().any(|s| s.camera == c))
            .collect();
        let mut taken: Vec<Taken> = (0..n).map(|_| Taken::default()).collect();
        let mut last = vec![0u64; n];
        while !self.stop.load(Ordering::Relaxed) {
            let mut any = false;
            for c in (0..n).filter(|c| used[*c]) {
                let t = &mut taken[c];
                t.fresh = false;
                let slot = &self.cameras.slots()[c];
                if slot.received.load(Ordering::Relaxed) <= last[c]
                    || !self.cameras.latest(c, &mut t.frame)
                    || t.frame.count <= last[c]
                {
                    continue;
                }
                t.superseded = t.frame.count - last[c] - 1;
                last[c] = t.frame.count;
                t.fresh = true;
                if slot.spec.encoding == ImageEncoding::Mono8 {
                    t.rgb.clear();
                    t.rgb.extend(t.frame.data.iter().flat_map(|v| [*v, *v, *v]));
                }
                any = true;
            }
            if !any {
                std::thread::sleep(POLL);
                continue;
            }
            for i in 0..self.scorers.len() {
                self.score(i, &taken);
            }
        }
    }

    fn send(&self, scored: Scored) {
        if self.out.try_send(scored).is_err() {
            self.results_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn score(&mut self, index: usize, taken: &[Taken]) {
        let stamp = |source: usize,
                     t: &Taken,
                     inference_ns: u64,
                     scored_ns: u64,
                     result: Result<(f64, Vec<f64>), Unscored>| Scored {
            source,
            frame: t.frame.count,
            stamp_ns: t.frame.stamp_ns,
            received_ns: t.frame.received_ns,
            scored_ns,
            inference_ns,
            superseded: t.superseded,
            result,
        };
        let mut results = Vec::new();
        match &mut self.scorers[index] {
            Scorer::Clip {
                model,
                resize,
                goals,
            } => {
                // One batch: each fresh camera of this model once.
                let mut cams: Vec<usize> = goals
                    .iter()
                    .map(|(s, _)| self.sources[*s].camera)
                    .filter(|c| taken[*c].fresh)
                    .collect();
                cams.sort_unstable();
                cams.dedup();
                if cams.is_empty() {
                    return;
                }
                let frames: Vec<Rgb8<'_>> = cams
                    .iter()
                    .map(|c| {
                        let spec = &self.cameras.slots()[*c].spec;
                        let t = &taken[*c];
                        Rgb8 {
                            data: if spec.encoding == ImageEncoding::Mono8 {
                                &t.rgb
                            } else {
                                &t.frame.data
                            },
                            width: spec.width as usize,
                            height: spec.height as usize,
                        }
                    })
                    .collect();
                let t0 = self.clock.now_ns();
                let embedded = model.embed_frames(&frames, *resize);
                let t1 = self.clock.now_ns();
                for (source, goal) in goals.iter() {
                    let cam = self.sources[*source].camera;
                    let Some(row) = cams.iter().position(|c| *c == cam) else {
                        continue;
                    };
                    let result = match &embedded {
                        Ok(e) => clip_result(goal, &e[row]),
                        Err(e) => Err(Unscored::new(e)),
                    };
                    results.push(stamp(*source, &taken[cam], t1 - t0, t1, result));
                }
            }
            Scorer::Classifier {
                model,
                source,
                threshold,
            } => {
                let cam = self.sources[*source].camera;
                let t = &taken[cam];
                if !t.fresh {
                    return;
                }
                let t0 = self.clock.now_ns();
                let p = model.score(&t.frame.data);
                let t1 = self.clock.now_ns();
                let result = p
                    .map(|p| classifier_result(p, *threshold))
                    .map_err(Unscored::new);
                results.push(stamp(*source, t, t1 - t0, t1, result));
            }
        }
        for r in results {
            self.send(r);
        }
    }
}

/// A CLIP source's reward and terms (goal, then baseline similarity) for one embedding.
fn clip_result(goal: &ClipGoal, embedding: &[f32]) -> Result<(f64, Vec<f64>), Unscored> {
    goal.score(embedding)
        .map(|r| {
            let mut terms = vec![r.goal_similarity];
            terms.extend(r.baseline_similarity);
            (r.reward, terms)
        })
        .map_err(Unscored::new)
}

/// A classifier's sparse reward (1 at or above the threshold) and its probability; without
/// a threshold (a reward model), the output itself and no terms.
fn classifier_result(output: f64, threshold: Option<f64>) -> (f64, Vec<f64>) {
    match threshold {
        Some(t) => (if output >= t { 1.0 } else { 0.0 }, vec![output]),
        None => (output, Vec::new()),
    }
}

/// Frames scored at most this many at a time by [`FrameRewards::score_frames`].
const OFFLINE_BATCH: usize = 16;

impl FrameRewards {
    /// How many sources were loaded.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Source `source`'s name, the name of the camera it reads and the names of the terms
    /// it reports beside its reward.
    pub fn describe(&self, source: usize) -> (&str, &str, &[String]) {
        let s = &self.sources[source];
        (&s.name, &s.camera_name, &s.terms)
    }

    /// Scores recorded frames of source `source`'s camera (each `spec.frame_bytes()` long,
    /// as the camera sends them) with that source alone, in order, outside any run: the
    /// same model, preprocessing, reward and terms as the scoring thread, batched for CLIP.
    /// One result per frame; a frame the model fails on gets the reason.
    pub fn score_frames(
        &mut self,
        source: usize,
        spec: &rlrt_runtime::config::CameraSpec,
        frames: &[&[u8]],
    ) -> Vec<Result<(f64, Vec<f64>), Unscored>> {
        let mut out = Vec::with_capacity(frames.len());
        let scorer = self.scorers.iter_mut().find(|s| match s {
            Scorer::Clip { goals, .. } => goals.iter().any(|(g, _)| *g == source),
            Scorer::Classifier { source: s, .. } => *s == source,
        });
        match scorer {
            None => out.extend(
                frames
                    .iter()
                    .map(|_| Err(Unscored(format!("no source {source}")))),
            ),
            Some(Scorer::Classifier {
                model, threshold, ..
            }) => {
                for frame in frames {
                    out.push(
                        model
                            .score(frame)
                            .map(|p| classifier_result(p, *threshold))
                            .map_err(Unscored::new),
                    );
                }
            }
            Some(Scorer::Clip {
                model,
                resize,
                goals,
            }) => {
                let goal = &goals
                    .iter()
                    .find(|(g, _)| *g == source)
                    .expect("found above")
                    .1;
                let mono = spec.encoding == ImageEncoding::Mono8;
                for chunk in frames.chunks(OFFLINE_BATCH) {
                    let rgb: Vec<Vec<u8>> = if mono {
                        chunk
                            .iter()
                            .map(|f| f.iter().flat_map(|v| [*v, *v, *v]).collect())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let images: Vec<Rgb8<'_>> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, f)| Rgb8 {
                            data: if mono { &rgb[i] } else { f },
                            width: spec.width as usize,
                            height: spec.height as usize,
                        })
                        .collect();
                    match model.embed_frames(&images, *resize) {
                        Ok(embedded) => {
                            out.extend(embedded.iter().map(|e| clip_result(goal, e)));
                        }
                        Err(e) => out.extend(chunk.iter().map(|_| Err(Unscored::new(&e)))),
                    }
                }
            }
        }
        out
    }
}

/// Where a result lands among the ticks seen so far.
#[derive(Debug, PartialEq, Eq)]
pub enum TickMatch {
    /// The first tick that started at or after the frame arrived, and its start.
    Tick(u64, u64),
    /// No tick has started since the frame arrived (yet).
    NotYet,
    /// The frame arrived before the oldest tick kept.
    TooOld,
}

/// Matches a frame received at `received_ns` to the first tick of `ticks` ((tick, start_ns),
/// in order) that started at or after it.
pub fn match_tick(ticks: &VecDeque<(u64, u64)>, received_ns: u64) -> TickMatch {
    let Some(&(_, first_start)) = ticks.front() else {
        return TickMatch::NotYet;
    };
    let at = ticks.partition_point(|(_, start)| *start < received_ns);
    match ticks.get(at) {
        None => TickMatch::NotYet,
        Some(_) if at == 0 && first_start > received_ns && ticks.len() >= TICK_HISTORY => {
            TickMatch::TooOld
        }
        Some(&(tick, start)) => TickMatch::Tick(tick, start),
    }
}

/// Percentiles of a latency, in milliseconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Millis {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Millis {
    fn of(values_ns: &[u64]) -> Option<Self> {
        let mut ns: Vec<f64> = values_ns.iter().map(|v| *v as f64).collect();
        let p = Percentiles::of(&mut ns)?;
        Some(Self {
            p50: p.p50 * 1e-6,
            p99: p.p99 * 1e-6,
            max: p.max * 1e-6,
        })
    }
}

/// What one frame-scored reward source did during a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FrameRewardSummary {
    pub name: String,
    pub kind: RewardKind,
    pub camera: String,
    pub weight: f64,
    /// Frames the camera delivered over the link during the run.
    pub frames_received: u64,
    /// Frames the link refused (not decodable, or size or encoding unlike the hw-config's).
    pub frames_rejected: u64,
    /// Frames scored, placed on a tick and reported.
    pub scored: u64,
    /// Frames replaced by a newer one before the scoring thread took them.
    pub superseded: u64,
    /// Frames the model could not score (the reason went to the log and to rerun).
    pub invalid: u64,
    /// Results that arrived after the run's last tick or before the oldest tick kept.
    pub unmatched: u64,
    /// Results lost because the telemetry thread fell 1024 results behind.
    pub results_dropped: u64,
    /// The reward (CLIP: the VLM-RM reward; classifier: 1 at or above the threshold, else 0).
    pub reward: SeriesSummary,
    pub terms: Vec<SeriesSummary>,
    /// Frame received to reward ready.
    pub latency_ms: Option<Millis>,
    /// Time in the model per call.
    pub inference_ms: Option<Millis>,
}

impl FrameRewardSummary {
    fn new(source: &SourceInfo) -> Self {
        Self {
            name: source.name.to_string(),
            kind: source.kind,
            camera: source.camera_name.clone(),
            weight: source.weight,
            frames_received: 0,
            frames_rejected: 0,
            scored: 0,
            superseded: 0,
            invalid: 0,
            unmatched: 0,
            results_dropped: 0,
            reward: SeriesSummary::new("reward"),
            terms: source.terms.iter().map(|t| SeriesSummary::new(t)).collect(),
            latency_ms: None,
            inference_ms: None,
        }
    }
}

/// The telemetry thread's side: places results on ticks, logs and summarises them. It owns
/// the scoring thread, which it stops when the run ends.
pub struct FrameRewardConsumer {
    sources: Vec<SourceInfo>,
    rx: Receiver<Scored>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    cameras: Arc<CameraFrames>,
    results_dropped: Arc<std::sync::atomic::AtomicU64>,
    ticks: VecDeque<(u64, u64)>,
    pending: VecDeque<Scored>,
    summaries: Vec<FrameRewardSummary>,
    latencies: Vec<Vec<u64>>,
    inference: Vec<Vec<u64>>,
    shared: Arc<Mutex<Vec<FrameRewardSummary>>>,
    rerun: Option<EventSender>,
    last_publish: Instant,
}

impl FrameRewardConsumer {
    /// The summaries, updated about every second while the run goes and final after it.
    pub fn summaries(&self) -> Arc<Mutex<Vec<FrameRewardSummary>>> {
        self.shared.clone()
    }

    /// Takes every waiting result and places those whose tick has come.
    fn pump(&mut self) {
        while let Ok(s) = self.rx.try_recv() {
            self.pending.push_back(s);
        }
        while let Some(front) = self.pending.front() {
            match match_tick(&self.ticks, front.received_ns) {
                TickMatch::NotYet => break,
                TickMatch::TooOld => {
                    let s = self.pending.pop_front().expect("front exists");
                    self.summaries[s.source].unmatched += 1;
                }
                TickMatch::Tick(tick, start_ns) => {
                    let s = self.pending.pop_front().expect("front exists");
                    self.place(s, tick, start_ns);
                }
            }
        }
    }

    fn place(&mut self, s: Scored, tick: u64, start_ns: u64) {
        let source = &self.sources[s.source];
        let summary = &mut self.summaries[s.source];
        summary.superseded += s.superseded;
        self.inference[s.source].push(s.inference_ns);
        match s.result {
            Ok((reward, terms)) => {
                summary.scored += 1;
                summary.reward.add(reward);
                for (t, v) in summary.terms.iter_mut().zip(&terms) {
                    t.add(*v);
                }
                self.latencies[s.source].push(s.scored_ns.saturating_sub(s.received_ns));
                if let Some(rerun) = &self.rerun {
                    rerun.offer(Event::Reward {
                        tick,
                        time_ns: start_ns,
                        source: source.name.clone(),
                        names: source.terms.clone(),
                        values: terms,
                        total: reward,
                    });
                }
            }
            Err(why) => {
                summary.invalid += 1;
                tracing::warn!(
                    reward = %source.name,
                    frame = s.frame,
                    "frame not scored: {why}"
                );
                if let Some(rerun) = &self.rerun {
                    rerun.offer(Event::RewardInvalid {
                        tick,
                        time_ns: start_ns,
                        source: source.name.clone(),
                        why: why.0,
                    });
                }
            }
        }
    }

    fn publish(&mut self) {
        for (i, summary) in self.summaries.iter_mut().enumerate() {
            let camera = self.sources[i].camera;
            let slot = &self.cameras.slots()[camera];
            summary.frames_received = slot.received.load(Ordering::Relaxed);
            summary.frames_rejected = slot.rejected.load(Ordering::Relaxed);
            summary.results_dropped = self.results_dropped.load(Ordering::Relaxed);
            summary.latency_ms = Millis::of(&self.latencies[i]);
            summary.inference_ms = Millis::of(&self.inference[i]);
        }
        if let Ok(mut shared) = self.shared.lock() {
            shared.clone_from(&self.summaries);
        }
        self.last_publish = Instant::now();
    }
}

impl TickConsumer for FrameRewardConsumer {
    fn on_tick(&mut self, record: &TickRecord) {
        if self.ticks.len() == TICK_HISTORY {
            self.ticks.pop_front();
        }
        self.ticks.push_back((record.tick, record.start_ns));
        if !self.pending.is_empty() || !self.rx.is_empty() {
            self.pump();
        }
    }

    fn on_idle(&mut self) {
        self.pump();
        if self.last_publish.elapsed() > Duration::from_secs(1) {
            self.publish();
        }
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.pump();
        for s in std::mem::take(&mut self.pending) {
            self.summaries[s.source].unmatched += 1;
        }
        self.publish();
    }
}

impl Drop for FrameRewardConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Prints summaries as a table.
pub fn write_summaries(
    f: &mut impl std::fmt::Write,
    summaries: &[FrameRewardSummary],
) -> std::fmt::Result {
    for s in summaries {
        writeln!(
            f,
            "frame reward {} ({:?} on camera {}, weight {}): {} frames received ({} rejected by \
             the link), {} scored, {} superseded before scoring, {} invalid, {} unmatched",
            s.name,
            s.kind,
            s.camera,
            s.weight,
            s.frames_received,
            s.frames_rejected,
            s.scored,
            s.superseded,
            s.invalid,
            s.unmatched
        )?;
        if s.reward.count > 0 {
            writeln!(
                f,
                "  reward: mean {:.4}, min {:.4}, max {:.4}",
                s.reward.mean, s.reward.min, s.reward.max
            )?;
            for t in &s.terms {
                writeln!(
                    f,
                    "  {}: mean {:.4}, min {:.4}, max {:.4}",
                    t.name, t.mean, t.min, t.max
                )?;
            }
        }
        if let (Some(l), Some(m)) = (&s.latency_ms, &s.inference_ms) {
            writeln!(
                f,
                "  latency (frame received to reward ready): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
                 model: p50 {:.2} ms, p99 {:.2} ms",
                l.p50, l.p99, l.max, m.p50, m.p99
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks(starts: &[u64]) -> VecDeque<(u64, u64)> {
        starts
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u64 + 10, *s))
            .collect()
    }

    #[test]
    fn a_result_lands_on_the_first_tick_that_could_see_its_frame() {
        let t = ticks(&[100, 200, 300]);
        assert_eq!(match_tick(&t, 150), TickMatch::Tick(11, 200));
        assert_eq!(match_tick(&t, 200), TickMatch::Tick(11, 200));
        assert_eq!(match_tick(&t, 50), TickMatch::Tick(10, 100));
        assert_eq!(match_tick(&t, 301), TickMatch::NotYet);
        assert_eq!(match_tick(&VecDeque::new(), 1), TickMatch::NotYet);
    }

    #[test]
    fn a_result_older_than_the_history_is_unmatched() {
        let full: VecDeque<(u64, u64)> = (0..TICK_HISTORY as u64).map(|i| (i, 1000 + i)).collect();
        assert_eq!(match_tick(&full, 5), TickMatch::TooOld);
        assert_eq!(match_tick(&full, 1000), TickMatch::Tick(0, 1000));
    }

    #[test]
    fn percentiles_in_milliseconds() {
        let m = Millis::of(&(1..=100).map(|i| i * 1_000_000).collect::<Vec<_>>()).unwrap();
        assert_eq!((m.p50, m.p99, m.max), (51.0, 99.0, 100.0));
        assert!(Millis::of(&[]).is_none());
    }
}
