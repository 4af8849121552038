//! Visual debugging in rerun: camera frames, joint states and commands against their limits,
//! every reward source and term, safety interventions and tick timing, on one timeline.
//!
//! The control loop never sees rerun. Its per-tick records reach the telemetry thread through
//! the loop's bounded queue; the [`RerunConsumer`] there forwards them (and each new camera
//! frame) to the rerun thread through a second bounded queue (`rlrt_runtime::hub`'s event
//! queue, which reward consumers also send their terms to), with `try_send`: when rerun
//! falls behind, events are dropped and counted ([`RerunSummary::dropped`]), so neither the
//! tick nor the reward programs ever wait for it. The rerun thread batches scalars into
//! columns (one chunk per series every 100 ms) and logs frames as they come.
//!
//! Entity paths and timelines are listed in `docs/rerun.md`; keep the two in step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rerun::blueprint::{
    Blueprint, Horizontal, Spatial2DView, TextLogView, TimeSeriesView, Vertical,
};
use rerun::{ChannelDatatype, DepthImage, Image, RecordingStream, Scalars, TextLog, TimeColumn};
use rlrt_runtime::config::{ActionMode, ImageEncoding};
use rlrt_runtime::link::{CameraFrames, Frame};
use rlrt_runtime::safety::Cause;
use rlrt_runtime::telemetry::TickRecord;
use rlrt_runtime::RobotConfig;

pub use rlrt_runtime::hub::WallTime;
use rlrt_runtime::hub::{event_queue, Event, EventSender, TickConsumer};

/// The application id recordings are filed under in the viewer.
pub const APPLICATION_ID: &str = "rlrt";
/// Timeline of control ticks (a sequence).
pub const TIMELINE_TICK: &str = "tick";
/// Timeline of the loop's own clock (a duration since the loop started; simulated time in
/// lockstep and replay).
pub const TIMELINE_TIME: &str = "time";
/// Timeline of wall-clock time (a timestamp).
pub const TIMELINE_WALL: &str = "wall_time";
/// Scalars are sent as columns at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often scalars go out to a file: each flush makes one chunk per series, and the file
/// sink keeps about 1 KB of metadata per chunk until the file is closed.
pub const FILE_FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How long one file of a `save=` recording covers before the next part begins (overridden
/// by `RLRT_RERUN_PART_SECONDS`): with the reach arm and its camera, about 25 chunks a second,
/// the file sink's metadata stays under 15 MB.
pub const PART_SECONDS: u64 = 600;

/// Part `index` of a `save=` recording: the path itself for the first, `<stem>.<index>.rrd`
/// beside it for the later ones.
pub fn part_path(path: &std::path::Path, index: u64) -> PathBuf {
    if index == 0 {
        return path.to_owned();
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rrd".into());
    path.with_file_name(format!("{stem}.{index}.{ext}"))
}

/// A file sink with rerun's defaults: the footer is written when it closes.
fn file_sink(path: &std::path::Path) -> Result<rerun::sink::FileSink, RerunError> {
    rerun::sink::FileSink::new(path).map_err(|source| RerunError::Save {
        path: path.to_owned(),
        source: source.into(),
    })
}

/// When the next part of a `save=` recording begins.
struct Parts {
    path: PathBuf,
    every: Duration,
    began: Instant,
    index: u64,
}
/// Or when this many values are waiting.
const FLUSH_VALUES: usize = 16_384;
/// Default capacity of the queue into the rerun thread, in events.
pub const DEFAULT_QUEUE_LEN: usize = 4096;

/// Where the recording goes (`--rerun`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// `save=<file.rrd>`: written to a file (flushed as it goes; a crash keeps what was
    /// written). rerun's file sink keeps every chunk's metadata in memory until the file is
    /// closed, for the file's footer (rerun #12623), so a long run goes on in a new part every
    /// [`PART_SECONDS`] (`<file>.1.rrd`, `<file>.2.rrd`, ...: one recording, which the viewer
    /// opens as one), and scalars are sent in columns every [`FILE_FLUSH_EVERY`].
    Save(PathBuf),
    /// `spawn`: start a rerun viewer (the `rerun` command of the `rerun-sdk` wheel) and
    /// stream to it.
    Spawn,
    /// `connect` or `connect=<host:port | rerun+http://...>`: stream to a running viewer
    /// (default `127.0.0.1:9876`).
    Connect(Option<String>),
}

/// A `--rerun` value that names no destination.
#[derive(Debug, thiserror::Error)]
#[error("--rerun {given:?}: expected save=<file.rrd>, spawn, connect or connect=<host:port>")]
pub struct BadDestination {
    pub given: String,
}

impl FromStr for Destination {
    type Err = BadDestination;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some(("save", path)) if !path.is_empty() => Ok(Self::Save(PathBuf::from(path))),
            Some(("connect", addr)) if !addr.is_empty() => Ok(Self::Connect(Some(addr.into()))),
            None if s == "spawn" => Ok(Self::Spawn),
            None if s == "connect" => Ok(Self::Connect(None)),
            _ => Err(BadDestination {
                given: s.to_owned(),
            }),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Save(p) => write!(f, "save={}", p.display()),
            Self::Spawn => write!(f, "spawn"),
            Self::Connect(None) => write!(f, "connect"),
            Self::Connect(Some(a)) => write!(f, "connect={a}"),
        }
    }
}

/// Counters of the rerun thread.
#[derive(Debug, Default)]
pub struct RerunStats {
    pub ticks: AtomicU64,
    pub frames: AtomicU64,
    /// Frames that arrived but were replaced by a newer one before the telemetry thread
    /// looked (only each camera's newest frame is kept).
    pub frames_skipped: AtomicU64,
    pub reward_rows: AtomicU64,
    /// Log calls rerun refused (such as a malformed batch).
    pub errors: AtomicU64,
    /// Files written after the first (`save=` on a long run).
    pub later_parts: AtomicU64,
}

/// What was logged, for the run's report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RerunSummary {
    pub destination: String,
    pub ticks: u64,
    pub frames: u64,
    pub frames_skipped: u64,
    pub reward_rows: u64,
    pub dropped: u64,
    pub errors: u64,
    /// The files of a `save=` recording, in order (one unless the run outlasted a part).
    pub files: Vec<String>,
}

impl std::fmt::Display for RerunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "rerun ({}): {} ticks, {} frames ({} replaced before logging), {} reward rows, \
             {} events dropped, {} errors",
            self.destination,
            self.ticks,
            self.frames,
            self.frames_skipped,
            self.reward_rows,
            self.dropped,
            self.errors
        )?;
        if self.files.len() > 1 {
            writeln!(f, "rerun files (one recording): {}", self.files.join(" "))?;
        }
        Ok(())
    }
}

/// A running rerun logger. [`RerunLogger::finish`] (after every handle is dropped) waits for
/// the queue to drain and the recording to be flushed.
pub struct RerunLogger {
    events: EventSender,
    thread: JoinHandle<()>,
    destination: Destination,
    stats: Arc<RerunStats>,
}

/// What the logger needs to know about the robot, taken from its config.
#[derive(Clone, Debug)]
struct Layout {
    joints: Vec<String>,
    joint_min: Vec<f64>,
    joint_max: Vec<f64>,
    action_names: Vec<String>,
    action_min: Vec<f64>,
    action_max: Vec<f64>,
    /// (name, offset into the observation's sensor values, size)
    sensors: Vec<(String, usize, usize)>,
    cameras: Vec<(String, u32, u32, ImageEncoding)>,
}

impl Layout {
    fn of(config: &RobotConfig) -> Self {
        let action_names = match config.action.mode {
            ActionMode::EeDelta => ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
                .iter()
                .take(config.action.len())
                .map(|s| (*s).to_owned())
                .collect(),
            ActionMode::JointPosition | ActionMode::JointVelocity | ActionMode::JointEffort => {
                config.joints.iter().map(|j| j.name.clone()).collect()
            }
        };
        Self {
            joints: config.joints.iter().map(|j| j.name.clone()).collect(),
            joint_min: config.joints.iter().map(|j| j.position_min_rad).collect(),
            joint_max: config.joints.iter().map(|j| j.position_max_rad).collect(),
            action_names,
            action_min: config.action.min.clone(),
            action_max: config.action.max.clone(),
            sensors: config
                .observation
                .sensors
                .iter()
                .map(|s| (s.name.clone(), s.offset, s.size))
                .collect(),
            cameras: config
                .observation
                .cameras
                .iter()
                .map(|c| (c.name.clone(), c.width, c.height, c.encoding))
                .collect(),
        }
    }
}

/// Entity path of component `i` of a sensor of `size` values.
fn sensor_component(name: &str, size: usize, i: usize) -> String {
    if size == 3 {
        format!("robot/sensors/{name}/{}", ["x", "y", "z"][i])
    } else {
        format!("robot/sensors/{name}/{i}")
    }
}

/// The default view: camera frames and the event log on the left, reward curves, joints,
/// actions and timing on the right.
fn blueprint(layout: &Layout) -> Blueprint {
    let mut left: Vec<rerun::blueprint::ContainerLike> = layout
        .cameras
        .iter()
        .map(|(name, ..)| {
            Spatial2DView::new(format!("camera {name}"))
                .with_origin(format!("camera/{name}"))
                .into()
        })
        .collect();
    left.push(TextLogView::new("events").with_origin("events").into());
    let right: Vec<rerun::blueprint::ContainerLike> = vec![
        TimeSeriesView::new("rewards").with_origin("rewards").into(),
        TimeSeriesView::new("joints and limits")
            .with_origin("robot/joints")
            .into(),
        TimeSeriesView::new("actions and limits")
            .with_origin("action")
            .into(),
        TimeSeriesView::new("safety").with_origin("safety").into(),
        TimeSeriesView::new("timing (µs)")
            .with_origin("timing")
            .into(),
    ];
    Blueprint::new(
        Horizontal::new([Vertical::new(left).into(), Vertical::new(right).into()])
            .with_column_shares([0.4, 0.6]),
    )
}

/// A recording stream to `destination` with rlrt's own timelines only (rerun's automatic
/// log_tick/log_time columns would mean nothing for a control loop or a training run): what
/// `rlrt train --rerun` logs its plots into.
pub fn open_stream(
    destination: &Destination,
    recording_name: &str,
) -> Result<RecordingStream, RerunError> {
    open(destination, recording_name, None)
}

/// Plots on a timeline of rlrt's own (such as `rlrt train`'s `step`): scalars logged one by
/// one. Logging failures are not errors of the caller (a viewer closed mid-run loses plots).
pub struct Plots {
    rec: RecordingStream,
}

impl Plots {
    pub fn open(destination: &Destination, recording_name: &str) -> Result<Self, RerunError> {
        Ok(Self {
            rec: open_stream(destination, recording_name)?,
        })
    }

    /// Later scalars belong to `value` on `timeline`.
    pub fn set_time(&self, timeline: &'static str, value: i64) {
        self.rec.set_time_sequence(timeline, value);
    }

    /// One finite value at `path` (others are left out).
    pub fn scalar(&self, path: &str, value: f64) {
        if value.is_finite() {
            let _ = self.rec.log(path, &Scalars::single(value));
        }
    }

    /// Waits until what was logged has been written or sent.
    pub fn flush(&self) {
        let _ = self.rec.flush_blocking();
    }
}

fn open(
    destination: &Destination,
    recording_name: &str,
    blueprint: Option<rerun::blueprint::Blueprint>,
) -> Result<RecordingStream, RerunError> {
    let mut builder =
        rerun::RecordingStreamBuilder::new(APPLICATION_ID).recording_name(recording_name);
    if let Some(b) = blueprint {
        builder = builder.with_default_blueprint(b);
    }
    let rec = match destination {
        Destination::Save(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| RerunError::CreateDir {
                    dir: dir.to_owned(),
                    source,
                })?;
            }
            builder
                .set_sinks((file_sink(path)?,))
                .map_err(|source| RerunError::Save {
                    path: path.clone(),
                    source,
                })?
        }
        Destination::Spawn => builder
            .spawn_opts(&spawn_options())
            .map_err(|source| RerunError::Spawn { source })?,
        Destination::Connect(addr) => {
            let url = match addr {
                None => "rerun+http://127.0.0.1:9876/proxy".to_owned(),
                Some(a) if a.starts_with("rerun") => a.clone(),
                Some(a) => format!("rerun+http://{a}/proxy"),
            };
            builder
                .connect_grpc_opts(url.clone())
                .map_err(|source| RerunError::Connect { url, source })?
        }
    };
    rec.set_log_tick_enabled(false);
    rec.set_log_time_enabled(false);
    Ok(rec)
}

impl RerunLogger {
    /// Opens the destination and starts the rerun thread.
    pub fn start(
        destination: &Destination,
        config: &RobotConfig,
        recording_name: &str,
        wall: WallTime,
        queue_len: usize,
    ) -> Result<Self, RerunError> {
        let layout = Layout::of(config);
        let rec = open(destination, recording_name, Some(blueprint(&layout)))?;
        let config_text = std::fs::read_to_string(&config.source).unwrap_or_default();
        if !config_text.is_empty() {
            let _ = rec.log_static(
                "robot/config",
                &rerun::TextDocument::from_markdown(format!(
                    "hw-config `{}`\n\n```toml\n{config_text}\n```",
                    config.source.display()
                )),
            );
        }
        let (events, rx) = event_queue(queue_len);
        let stats = Arc::new(RerunStats::default());
        let parts = match destination {
            Destination::Save(path) => Some(Parts {
                path: path.clone(),
                every: Duration::from_secs(
                    std::env::var("RLRT_RERUN_PART_SECONDS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(PART_SECONDS),
                ),
                began: Instant::now(),
                index: 0,
            }),
            _ => None,
        };
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("rlrt-rerun".into())
            .spawn(move || {
                let mut writer = Writer::new(rec, layout, wall, thread_stats);
                if let Some(parts) = parts {
                    writer.flush_every = FILE_FLUSH_EVERY;
                    writer.parts = Some(parts);
                }
                writer.run(rx)
            })
            .map_err(|source| RerunError::Thread { source })?;
        Ok(Self {
            events,
            thread,
            destination: destination.clone(),
            stats,
        })
    }

    /// A sender into this logger's queue, for consumers that log their own events (reward
    /// terms, episode ends).
    pub fn events(&self) -> EventSender {
        self.events.clone()
    }

    /// The telemetry consumer that forwards every tick record and each camera's new frames.
    pub fn consumer(&self, cameras: Option<Arc<CameraFrames>>) -> RerunConsumer {
        RerunConsumer::new(self.events(), self.stats.clone(), cameras)
    }

    /// Drops this logger's sender, waits for the rerun thread to log what is queued and flush
    /// the recording. Every other sender must be gone (the telemetry thread joined).
    pub fn finish(self) -> RerunSummary {
        let Self {
            events,
            thread,
            destination,
            stats,
        } = self;
        let dropped = events.dropped();
        drop(events);
        let _ = thread.join();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let files = match &destination {
            Destination::Save(path) => (0..=get(&stats.later_parts))
                .map(|i| part_path(path, i).display().to_string())
                .collect(),
            _ => Vec::new(),
        };
        RerunSummary {
            files,
            destination: destination.to_string(),
            ticks: get(&stats.ticks),
            frames: get(&stats.frames),
            frames_skipped: get(&stats.frames_skipped),
            reward_rows: get(&stats.reward_rows),
            dropped,
            errors: get(&stats.errors),
        }
    }
}

/// Where `cargo xtask setup` leaves the viewer (the rerun-sdk wheel's own executable),
/// relative to the repository root.
const LOCAL_VIEWER: &str = ".deps/python/rerun_sdk/rerun_cli/rerun";

/// Spawns the viewer `cargo xtask setup` installed when run from the repository root, else
/// the `rerun` on `PATH`.
fn spawn_options() -> rerun::SpawnOptions {
    let mut options = rerun::SpawnOptions::default();
    let local = std::path::Path::new(LOCAL_VIEWER);
    if local.is_file() {
        options.executable_path = Some(local.display().to_string());
    }
    options
}

/// One scalar series waiting to be sent as columns.
struct Series {
    path: String,
    ticks: Vec<i64>,
    times: Vec<f64>,
    walls: Vec<f64>,
    values: Vec<f64>,
}

/// The rerun thread's state.
struct Writer {
    rec: RecordingStream,
    layout: Layout,
    wall: WallTime,
    stats: Arc<RerunStats>,
    series: Vec<Series>,
    index: HashMap<String, usize>,
    waiting: usize,
    /// Fixed series, by position: joint position, velocity, lower and upper limit; action
    /// proposed, command, lower and upper bound; sensors; safety; timing.
    joints: Vec<[usize; 4]>,
    actions: Vec<[usize; 4]>,
    sensors: Vec<usize>,
    safety: [usize; 2],
    timing: [usize; 6],
    last_interventions: u32,
    last_fault: Option<Cause>,
    /// Limits are drawn as lines through the first and last tick of each batch.
    limits_tick: Option<(u64, u64)>,
    flush_every: Duration,
    parts: Option<Parts>,
}

impl Writer {
    fn new(rec: RecordingStream, layout: Layout, wall: WallTime, stats: Arc<RerunStats>) -> Self {
        let mut w = Self {
            rec,
            layout: layout.clone(),
            wall,
            stats,
            series: Vec::new(),
            index: HashMap::new(),
            waiting: 0,
            joints: Vec::new(),
            actions: Vec::new(),
            sensors: Vec::new(),
            safety: [0; 2],
            timing: [0; 6],
            last_interventions: 0,
            last_fault: None,
            limits_tick: None,
            flush_every: FLUSH_EVERY,
            parts: None,
        };
        for j in &layout.joints {
            let base = format!("robot/joints/{j}");
            let four = ["position", "velocity", "lower_limit", "upper_limit"]
                .map(|leaf| w.series_index(&format!("{base}/{leaf}")));
            w.joints.push(four);
        }
        for a in &layout.action_names {
            let base = format!("action/{a}");
            let four = ["proposed", "command", "lower_bound", "upper_bound"]
                .map(|leaf| w.series_index(&format!("{base}/{leaf}")));
            w.actions.push(four);
        }
        for (name, _, size) in &layout.sensors {
            for i in 0..*size {
                let index = w.series_index(&sensor_component(name, *size, i));
                w.sensors.push(index);
            }
        }
        w.safety = [
            w.series_index("safety/interventions"),
            w.series_index("safety/fault"),
        ];
        w.timing = [
            w.series_index("timing/jitter_us"),
            w.series_index("timing/read_us"),
            w.series_index("timing/policy_us"),
            w.series_index("timing/safety_us"),
            w.series_index("timing/publish_us"),
            w.series_index("timing/observation_age_us"),
        ];
        w
    }

    fn series_index(&mut self, path: &str) -> usize {
        if let Some(&i) = self.index.get(path) {
            return i;
        }
        self.series.push(Series {
            path: path.to_owned(),
            ticks: Vec::new(),
            times: Vec::new(),
            walls: Vec::new(),
            values: Vec::new(),
        });
        self.index.insert(path.to_owned(), self.series.len() - 1);
        self.series.len() - 1
    }

    fn push(&mut self, series: usize, tick: u64, time_s: f64, wall_s: f64, value: f64) {
        let s = &mut self.series[series];
        s.ticks.push(tick as i64);
        s.times.push(time_s);
        s.walls.push(wall_s);
        s.values.push(value);
        self.waiting += 1;
    }

    fn run(mut self, rx: Receiver<Event>) {
        let mut last_flush = Instant::now();
        loop {
            match rx.recv_timeout(self.flush_every) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.waiting >= FLUSH_VALUES || last_flush.elapsed() >= self.flush_every {
                self.flush();
                last_flush = Instant::now();
                self.next_part_if_due();
            }
        }
        self.flush();
        if let Err(e) = self.rec.flush_blocking() {
            tracing::warn!("rerun: flushing the recording failed: {e}");
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Goes on in the next file of a `save=` recording once the current one covers its time:
    /// the current file is flushed and closed with its footer.
    fn next_part_if_due(&mut self) {
        let Some(parts) = &mut self.parts else {
            return;
        };
        if parts.began.elapsed() < parts.every {
            return;
        }
        let next = part_path(&parts.path, parts.index + 1);
        match file_sink(&next) {
            Ok(sink) => {
                self.rec.set_sink(Box::new(sink));
                parts.index += 1;
                self.stats.later_parts.store(parts.index, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!("rerun: {e}; the recording stays in the current file");
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        parts.began = Instant::now();
    }

    fn set_time(&self, tick: u64, time_ns: u64) {
        self.rec.set_time_sequence(TIMELINE_TICK, tick as i64);
        self.rec
            .set_duration_secs(TIMELINE_TIME, time_ns as f64 * 1e-9);
        self.rec
            .set_timestamp_secs_since_epoch(TIMELINE_WALL, self.wall.seconds(time_ns));
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(record) => self.tick(&record, true),
            Event::Replayed(record) => self.tick(&record, false),
            Event::Reward {
                tick,
                time_ns,
                source,
                names,
                values,
                total,
            } => {
                let (t, w) = (time_ns as f64 * 1e-9, self.wall.seconds(time_ns));
                for (name, value) in names.iter().zip(values) {
                    let i = self.series_index(&format!("rewards/{source}/{name}"));
                    self.push(i, tick, t, w, value);
                }
                let i = self.series_index(&format!("rewards/{source}/total"));
                self.push(i, tick, t, w, total);
                self.stats.reward_rows.fetch_add(1, Ordering::Relaxed);
            }
            Event::RewardInvalid {
                tick,
                time_ns,
                source,
                why,
            } => self.text(
                tick,
                time_ns,
                TextLogLevelName::WARN,
                format!("reward {source}: invalid ({why})"),
            ),
            Event::Frame {
                camera,
                tick,
                time_ns,
                data,
            } => self.frame(camera, tick, time_ns, data),
            Event::Text {
                tick,
                time_ns,
                level,
                text,
            } => self.text(tick, time_ns, level, text),
        }
    }

    fn text(&mut self, tick: u64, time_ns: u64, level: &'static str, text: String) {
        self.set_time(tick, time_ns);
        if self
            .rec
            .log("events", &TextLog::new(text).with_level(level))
            .is_err()
        {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn frame(&mut self, camera: usize, tick: u64, time_ns: u64, data: Vec<u8>) {
        let Some((name, width, height, encoding)) = self.layout.cameras.get(camera).cloned() else {
            return;
        };
        self.set_time(tick, time_ns);
        let path = format!("camera/{name}");
        let logged = match encoding {
            ImageEncoding::Rgb8 => self
                .rec
                .log(path, &Image::from_rgb24(data, [width, height])),
            ImageEncoding::Mono8 => self.rec.log(path, &Image::from_l8(data, [width, height])),
            ImageEncoding::Depth16 => self.rec.log(
                path,
                &DepthImage::from_data_type_and_bytes(data, [width, height], ChannelDatatype::U16)
                    .with_meter(1000.0),
            ),
            ImageEncoding::Depth32F => self.rec.log(
                path,
                &DepthImage::from_data_type_and_bytes(data, [width, height], ChannelDatatype::F32)
                    .with_meter(1.0),
            ),
        };
        match logged {
            Ok(()) => self.stats.frames.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn tick(&mut self, r: &TickRecord, live: bool) {
        let (tick, time_ns) = (r.tick, r.start_ns);
        let (t, w) = (time_ns as f64 * 1e-9, self.wall.seconds(time_ns));
        let has_observation = r.observation.seq != 0;
        if has_observation {
            for j in 0..self.joints.len() {
                let [pos, vel, ..] = self.joints[j];
                self.push(pos, tick, t, w, r.observation.joint_positions[j]);
                self.push(vel, tick, t, w, r.observation.joint_velocities[j]);
            }
            // `sensors` holds one series per sensor value, in observation order.
            for k in 0..self.sensors.len() {
                self.push(self.sensors[k], tick, t, w, r.observation.sensors[k]);
            }
        }
        let len = (r.action_len as usize).min(self.actions.len());
        for a in 0..len {
            let [proposed, command, ..] = self.actions[a];
            self.push(proposed, tick, t, w, r.proposed[a]);
            if r.published {
                self.push(command, tick, t, w, r.command[a]);
            }
        }
        if live {
            self.tick_health(r, t, w);
        }
        self.limits_tick = Some(match self.limits_tick {
            None => (tick, tick),
            Some((first, _)) => (first, tick),
        });
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// Safety and timing of a live tick.
    fn tick_health(&mut self, r: &TickRecord, t: f64, w: f64) {
        let (tick, has_observation) = (r.tick, r.observation.seq != 0);
        self.push(
            self.safety[0],
            tick,
            t,
            w,
            f64::from(r.interventions.count_ones()),
        );
        self.push(
            self.safety[1],
            tick,
            t,
            w,
            f64::from(u8::from(r.fault.is_some())),
        );
        let us = |ns: u64| ns as f64 * 1e-3;
        let timing = [
            (r.start_ns as f64 - r.deadline_ns as f64) * 1e-3,
            us(r.read_ns),
            us(r.policy_ns),
            us(r.safety_ns),
            us(r.publish_ns),
            us(r.observation_age_ns),
        ];
        for (i, v) in timing.into_iter().enumerate() {
            if i != 5 || has_observation {
                self.push(self.timing[i], tick, t, w, v);
            }
        }
        if r.interventions != self.last_interventions || r.fault != self.last_fault {
            self.safety_event(r);
        }
    }

    /// A line in the event log when the set of interventions or the fault changes.
    fn safety_event(&mut self, r: &TickRecord) {
        let causes: Vec<&str> = Cause::ALL
            .iter()
            .filter(|c| r.interventions & c.bit() != 0)
            .map(|c| c.name())
            .collect();
        let (level, text) = match (r.fault, self.last_fault) {
            (Some(fault), None) => (
                TextLogLevelName::ERROR,
                format!(
                    "fault: {} (safe action); interventions: {}",
                    fault.name(),
                    causes.join(", ")
                ),
            ),
            (None, Some(previous)) => (
                TextLogLevelName::INFO,
                format!("recovered from {}", previous.name()),
            ),
            _ if causes.is_empty() => (TextLogLevelName::INFO, "no interventions".to_owned()),
            _ => (
                TextLogLevelName::WARN,
                format!("interventions: {}", causes.join(", ")),
            ),
        };
        self.last_interventions = r.interventions;
        self.last_fault = r.fault;
        self.text(r.tick, r.start_ns, level, text);
    }

    /// Sends every waiting series as columns; joint and action limits as two points (first
    /// and last tick of the batch), which draws them as lines.
    fn flush(&mut self) {
        if let Some((first, last)) = self.limits_tick.take() {
            let layout = self.layout.clone();
            let points = self.limit_points(first, last);
            for (j, _) in layout.joints.iter().enumerate() {
                let [_, _, lo, hi] = self.joints[j];
                for &(tick, time_s, wall_s) in &points {
                    self.push(lo, tick, time_s, wall_s, layout.joint_min[j]);
                    self.push(hi, tick, time_s, wall_s, layout.joint_max[j]);
                }
            }
            for a in 0..self.actions.len() {
                let [_, _, lo, hi] = self.actions[a];
                for &(tick, time_s, wall_s) in &points {
                    self.push(lo, tick, time_s, wall_s, layout.action_min[a]);
                    self.push(hi, tick, time_s, wall_s, layout.action_max[a]);
                }
            }
        }
        if self.waiting == 0 {
            return;
        }
        for s in &mut self.series {
            if s.values.is_empty() {
                continue;
            }
            let indexes = [
                TimeColumn::new_sequence(TIMELINE_TICK, s.ticks.drain(..)),
                TimeColumn::new_duration_secs(TIMELINE_TIME, s.times.drain(..)),
                TimeColumn::new_timestamp_secs_since_epoch(TIMELINE_WALL, s.walls.drain(..)),
            ];
            let sent = Scalars::new(s.values.drain(..))
                .columns_of_unit_batches()
                .ok()
                .and_then(|columns| {
                    self.rec
                        .send_columns(s.path.as_str(), indexes, columns)
                        .ok()
                });
            if sent.is_none() {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.waiting = 0;
    }

    /// The tick, loop time and wall time of the batch's first and last tick, taken from the
    /// first action series (every tick has a proposed action).
    fn limit_points(&self, first: u64, last: u64) -> Vec<(u64, f64, f64)> {
        let Some(&[proposed, ..]) = self.actions.first() else {
            return Vec::new();
        };
        let jitter = &self.series[proposed];
        let find = |tick: u64| {
            jitter
                .ticks
                .iter()
                .position(|&t| t == tick as i64)
                .map(|i| (tick, jitter.times[i], jitter.walls[i]))
        };
        let mut points: Vec<_> = [find(first), find(last)].into_iter().flatten().collect();
        points.dedup_by_key(|p| p.0);
        points
    }
}

/// TextLog level names (rerun's `TextLogLevel` constants are associated consts on a type
/// that is awkward to name from here).
struct TextLogLevelName;

impl TextLogLevelName {
    const ERROR: &'static str = "ERROR";
    const WARN: &'static str = "WARN";
    const INFO: &'static str = "INFO";
}

/// The telemetry thread's side: forwards every tick record, and each camera's new frames
/// on the first tick whose start follows the frame's arrival.
pub struct RerunConsumer {
    events: EventSender,
    stats: Arc<RerunStats>,
    cameras: Option<Arc<CameraFrames>>,
    last_count: Vec<u64>,
    scratch: Frame,
}

impl RerunConsumer {
    fn new(
        events: EventSender,
        stats: Arc<RerunStats>,
        cameras: Option<Arc<CameraFrames>>,
    ) -> Self {
        let n = cameras.as_ref().map_or(0, |c| c.slots().len());
        Self {
            events,
            stats,
            cameras,
            last_count: vec![0; n],
            scratch: Frame::default(),
        }
    }

    fn frames(&mut self, tick: u64, tick_start_ns: u64) {
        let Some(cameras) = self.cameras.clone() else {
            return;
        };
        for (i, slot) in cameras.slots().iter().enumerate() {
            let received = slot.received.load(Ordering::Relaxed);
            if received <= self.last_count[i] || !cameras.latest(i, &mut self.scratch) {
                continue;
            }
            if self.scratch.count <= self.last_count[i] || self.scratch.received_ns > tick_start_ns
            {
                continue; // not new, or not yet visible at this tick
            }
            let skipped = self.scratch.count - self.last_count[i] - 1;
            self.stats
                .frames_skipped
                .fetch_add(skipped, Ordering::Relaxed);
            self.last_count[i] = self.scratch.count;
            self.events.offer(Event::Frame {
                camera: i,
                tick,
                time_ns: self.scratch.received_ns,
                data: std::mem::take(&mut self.scratch.data),
            });
        }
    }
}

impl TickConsumer for RerunConsumer {
    fn on_tick(&mut self, record: &TickRecord) {
        self.frames(record.tick, record.start_ns);
        self.events.offer(Event::Tick(Box::new(*record)));
    }
}

/// A rerun destination that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    #[error("--rerun save: creating {}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--rerun save: cannot write {}", path.display())]
    Save {
        path: PathBuf,
        #[source]
        source: rerun::RecordingStreamError,
    },
    #[error(
        "--rerun spawn: cannot start the rerun viewer (install it with \
         `pip install rerun-sdk==0.36.3`; `cargo xtask setup` puts it in .deps/python/bin)"
    )]
    Spawn {
        #[source]
        source: rerun::RecordingStreamError,
    },
    #[error("--rerun connect: cannot reach a viewer at {url}")]
    Connect {
        url: String,
        #[source]
        source: rerun::RecordingStreamError,
    },
    #[error("starting the rerun thread")]
    Thread {
        #[source]
        source: std::io::Error,
    },
}
