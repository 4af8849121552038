//! Episode recordings: rlrt's own dataset format for offline RL and behaviour cloning.
//!
//! A dataset is a folder:
//!
//! ```text
//! my-dataset/
//!   dataset.json          format name and version, observation and action sizes, action mode,
//!                         control rate, names of the observation fields
//!   config.toml           the resolved hw-config text the episodes were recorded with
//!   episode-000000.rlep   one file per finished episode
//!   episode-000000.frames camera frames of that episode (only if dataset.json lists cameras)
//!   episode-000001.rlep
//! ```
//!
//! An episode file is written whole when its episode ends: to a hidden temporary name, then
//! `fsync`, then renamed into place (and the folder synced), so a crash loses at most the
//! episode in progress and never leaves a half-written `.rlep` behind. Its layout, all
//! little-endian, with `T` steps, `O` observation values and `A` action values:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `RLRTEPI1` |
//! | 4 × u32 | format version (1), `O`, `A`, `T` |
//! | u64 | seed of the episode's reset |
//! | u8 + 7 zero bytes | success (0 or 1; the task's ground truth at the end) |
//! | (T + 1) × O × f64 | observations: row `t` is what the policy saw before action `t`; row `T` is the observation after the last step |
//! | T × A × f64 | actions: the commands the safety layer let through (what the robot got) |
//! | T × f64 | rewards |
//! | T × u8 | terminal flags (the task ended: no bootstrapping past this step) |
//! | T × u8 | timeout flags (the episode was cut by its time limit) |
//! | u64 | FNV-1a hash of every byte before it |
//!
//! Observations are the flat feature vectors of `observation.state`, built by
//! [`crate::FeatureBuilder`] exactly as the control loop builds them. Reading checks the
//! magic, the version, the sizes against `dataset.json`, the file length, the hash, every
//! flag and every float (NaN and infinities are rejected); each error names the file, the
//! episode and the field.
//!
//! Camera frames go to a second file per episode, written (the same atomic way) before the
//! `.rlep`, so an episode whose `.rlep` exists has its frames. Layout, little-endian, for the
//! `K` cameras of `dataset.json` in order:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `RLRTFRM1` |
//! | 2 × u32 | format version (1), `K` |
//! | K × (2 × u32) | per camera: frame count `N`, bytes per frame `B` (width × height × bytes per pixel) |
//! | per camera | `N` × u32 observation rows, `N` × u8 success labels, `N` × f64 task scores, `N` × `B` pixel bytes |
//! | u64 | FNV-1a hash of every byte before it |
//!
//! A frame belongs to observation row `t`: it was rendered from the same simulator state. Its
//! success label is the task's ground truth at that state, and its score the quantity the
//! task's success test thresholds (such as a distance): for training success classifiers,
//! never part of an observation. Frames are read per episode ([`Dataset::frames`]), since a
//! dataset's frames rarely fit in memory at once.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::RobotConfig;

const MAGIC: &[u8; 8] = b"RLRTEPI1";
const FRAMES_MAGIC: &[u8; 8] = b"RLRTFRM1";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 * 4 + 8 + 8;
/// The format name in `dataset.json`.
pub const FORMAT: &str = "rlrt-episodes";

/// Why a recording could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Dataset { path: PathBuf, message: String },
    #[error("{path}: not an rlrt dataset.json")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} (episode {episode}): cannot open the frames; dataset.json lists cameras, so \
         every episode has frames"
    )]
    MissingFrames {
        path: PathBuf,
        episode: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} (episode {episode}), field `{field}`: {message}")]
    Episode {
        path: PathBuf,
        episode: usize,
        field: &'static str,
        message: String,
    },
}

impl RecordingError {
    /// The error and its causes on one line, `: `-separated (as the command line prints
    /// errors).
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text += &format!(": {c}");
            cause = c.source();
        }
        text
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What `dataset.json` holds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    /// Always [`FORMAT`].
    pub format: String,
    pub version: u32,
    pub observation_len: usize,
    pub action_len: usize,
    /// `joint_position`, `joint_velocity` or `ee_delta`.
    pub action_mode: String,
    pub control_rate_hz: f64,
    /// `observation.state` of the config, in order.
    pub observation_fields: Vec<String>,
    /// How the rewards were made (such as `negative_task_distance`).
    pub reward: String,
    /// How the actions were chosen (such as `ee_servo + gaussian(0.01)`).
    pub controller: String,
    /// Where the config was read from: relative paths inside `config.toml` (a task file)
    /// resolve against this file's folder.
    pub config_source: String,
    /// Cameras whose frames were recorded (`episode-NNNNNN.frames`); empty for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<CameraInfo>,
}

/// A recorded camera, as the hw-config declared it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraInfo {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// `rgb8`, `mono8`, `16UC1` or `32FC1`.
    pub encoding: String,
    pub rate_hz: f64,
}

impl DatasetInfo {
    /// The description of a dataset recorded with `config` (read from `config_path`), its
    /// rewards made by `reward` and its actions chosen by `controller`.
    pub fn describe(
        config: &RobotConfig,
        config_path: &Path,
        reward: String,
        controller: String,
        cameras: Vec<CameraInfo>,
    ) -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: 1,
            observation_len: config.observation.feature_len,
            action_len: config.action.len(),
            action_mode: config.action.mode.as_str().to_owned(),
            control_rate_hz: config.control_rate_hz,
            observation_fields: config.observation_field_names(),
            reward,
            controller,
            config_source: std::path::absolute(config_path)
                .unwrap_or_else(|_| config_path.to_owned())
                .display()
                .to_string(),
            cameras,
        }
    }
}

/// The config's cameras, as a dataset records them.
pub fn camera_infos(config: &RobotConfig) -> Vec<CameraInfo> {
    config
        .observation
        .cameras
        .iter()
        .map(|c| CameraInfo {
            name: c.name.clone(),
            width: c.width,
            height: c.height,
            encoding: c.encoding.as_str().to_owned(),
            rate_hz: c.rate_hz,
        })
        .collect()
}

impl CameraInfo {
    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        let per_pixel = match self.encoding.as_str() {
            "mono8" => 1,
            "16UC1" => 2,
            "32FC1" => 4,
            _ => 3,
        };
        // Saturating: a dataset.json may claim any size, and no frame is usize::MAX bytes.
        (self.width as usize)
            .saturating_mul(self.height as usize)
            .saturating_mul(per_pixel)
    }
}

/// One camera's frames of one episode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameTrack {
    /// The observation row each frame was rendered with.
    pub rows: Vec<u32>,
    /// The task's ground-truth success at that row (labels, never observations).
    pub success: Vec<bool>,
    /// The quantity the task's success test thresholds at that row (such as a distance in
    /// m; 0 when the task has no test).
    pub scores: Vec<f64>,
    /// The frames back to back, [`CameraInfo::frame_bytes`] each, rows of pixels top first.
    pub pixels: Vec<u8>,
}

impl FrameTrack {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Frame `i`'s bytes.
    pub fn frame(&self, i: usize) -> &[u8] {
        let b = self.pixels.len() / self.rows.len().max(1);
        &self.pixels[i * b..(i + 1) * b]
    }

    pub fn push(&mut self, row: u32, success: bool, score: f64, pixels: &[u8]) {
        self.rows.push(row);
        self.success.push(success);
        self.scores.push(score);
        self.pixels.extend_from_slice(pixels);
    }
}

/// One recorded episode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Episode {
    pub seed: u64,
    pub success: bool,
    /// (steps + 1) rows of `observation_len` values.
    pub observations: Vec<f64>,
    /// `steps` rows of `action_len` values.
    pub actions: Vec<f64>,
    pub rewards: Vec<f64>,
    pub terminals: Vec<bool>,
    pub timeouts: Vec<bool>,
    /// One track per camera of the dataset (empty when it records none). Not filled by
    /// [`Dataset::open`]: read them per episode with [`Dataset::frames`].
    pub frames: Vec<FrameTrack>,
}

impl Episode {
    /// An empty episode that starts from observation `first`.
    pub fn start(seed: u64, first: &[f64]) -> Self {
        Self {
            seed,
            observations: first.to_vec(),
            ..Self::default()
        }
    }

    /// Appends one step: the action taken, the reward and flags it earned and the
    /// observation that followed.
    pub fn push(
        &mut self,
        action: &[f64],
        reward: f64,
        terminal: bool,
        timeout: bool,
        next: &[f64],
    ) {
        self.actions.extend_from_slice(action);
        self.rewards.push(reward);
        self.terminals.push(terminal);
        self.timeouts.push(timeout);
        self.observations.extend_from_slice(next);
    }

    pub fn steps(&self) -> usize {
        self.rewards.len()
    }

    /// Sum of the rewards.
    pub fn total_reward(&self) -> f64 {
        self.rewards.iter().sum()
    }

    fn encode(&self, observation_len: usize, action_len: usize) -> Vec<u8> {
        let steps = self.steps();
        let mut out =
            Vec::with_capacity(file_len(steps, observation_len, action_len).unwrap_or_default());
        out.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            observation_len as u32,
            action_len as u32,
            steps as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.seed.to_le_bytes());
        out.extend_from_slice(&[self.success as u8, 0, 0, 0, 0, 0, 0, 0]);
        for v in self
            .observations
            .iter()
            .chain(&self.actions)
            .chain(&self.rewards)
        {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend(self.terminals.iter().map(|&b| b as u8));
        out.extend(self.timeouts.iter().map(|&b| b as u8));
        let hash = fnv1a(&out);
        out.extend_from_slice(&hash.to_le_bytes());
        out
    }
}

/// Bytes of an episode file; `None` when they would not fit in a `usize`, which only a
/// damaged or crafted header can ask for (unchecked, the sum can wrap around to the length of
/// a small file, and decoding then asks for an impossible allocation).
fn file_len(steps: usize, observation_len: usize, action_len: usize) -> Option<usize> {
    let values = steps
        .checked_add(1)?
        .checked_mul(observation_len)?
        .checked_add(steps.checked_mul(action_len)?)?
        .checked_add(steps)?;
    values
        .checked_mul(8)?
        .checked_add(steps.checked_mul(2)?)?
        .checked_add(HEADER_BYTES + 8)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn episode_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("episode-{index:06}.rlep"))
}

fn frames_path(episode: &Path) -> PathBuf {
    episode.with_extension("frames")
}

fn encode_frames(tracks: &[FrameTrack]) -> Vec<u8> {
    let body: usize = tracks
        .iter()
        .map(|t| 13 * t.rows.len() + t.pixels.len() + 8)
        .sum();
    let mut out = Vec::with_capacity(16 + body + 8);
    out.extend_from_slice(FRAMES_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(tracks.len() as u32).to_le_bytes());
    for t in tracks {
        let per_frame = t.pixels.len() / t.rows.len().max(1);
        out.extend_from_slice(&(t.rows.len() as u32).to_le_bytes());
        out.extend_from_slice(&(per_frame as u32).to_le_bytes());
    }
    for t in tracks {
        for r in &t.rows {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend(t.success.iter().map(|&s| s as u8));
        for v in &t.scores {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&t.pixels);
    }
    let hash = fnv1a(&out);
    out.extend_from_slice(&hash.to_le_bytes());
    out
}

/// The length a frames file must have, from its header; an error if the header is wrong.
fn frames_layout(
    head: &[u8],
    info: &DatasetInfo,
    bad: &dyn Fn(&'static str, String) -> RecordingError,
) -> Result<(usize, Vec<(usize, usize)>), RecordingError> {
    let k = info.cameras.len();
    let header = 16 + 8 * k;
    if head.len() < header {
        return Err(bad(
            "frames",
            format!("{} bytes: truncated header", head.len()),
        ));
    }
    if &head[..8] != FRAMES_MAGIC {
        return Err(bad(
            "frames",
            "not an rlrt frames file (expected RLRTFRM1)".into(),
        ));
    }
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    if u32_at(8) != VERSION {
        return Err(bad(
            "frames",
            format!("version {}, expected {VERSION}", u32_at(8)),
        ));
    }
    if u32_at(12) as usize != k {
        return Err(bad(
            "frames",
            format!("{} cameras, dataset.json lists {k}", u32_at(12)),
        ));
    }
    let mut counts = Vec::with_capacity(k);
    let mut len = header + 8;
    for (c, camera) in info.cameras.iter().enumerate() {
        let (n, b) = (u32_at(16 + 8 * c) as usize, u32_at(20 + 8 * c) as usize);
        if n > 0 && b != camera.frame_bytes() {
            return Err(bad(
                "frames",
                format!(
                    "camera {:?}: {b} bytes per frame, expected {} ({} x {} {})",
                    camera.name,
                    camera.frame_bytes(),
                    camera.width,
                    camera.height,
                    camera.encoding
                ),
            ));
        }
        // Checked: unchecked, a crafted header can wrap the sum around to the length of a
        // small file, whose frames are then read past its end.
        len = b
            .checked_add(13)
            .and_then(|per_frame| per_frame.checked_mul(n))
            .and_then(|bytes| bytes.checked_add(len))
            .ok_or_else(|| {
                bad(
                    "frames",
                    format!(
                        "camera {:?}: {n} frames of {b} bytes, more than a file can hold",
                        camera.name
                    ),
                )
            })?;
        counts.push((n, b));
    }
    Ok((len, counts))
}

/// Reads and validates one episode's frames file; `steps` is the episode's step count.
pub fn decode_frames(
    bytes: &[u8],
    path: &Path,
    episode: usize,
    steps: usize,
    info: &DatasetInfo,
) -> Result<Vec<FrameTrack>, RecordingError> {
    let bad = |field: &'static str, message: String| RecordingError::Episode {
        path: path.to_owned(),
        episode,
        field,
        message,
    };
    let (len, counts) = frames_layout(bytes, info, &bad)?;
    if bytes.len() != len {
        return Err(bad(
            "frames",
            format!(
                "{} bytes, expected {len} (truncated or corrupt)",
                bytes.len()
            ),
        ));
    }
    let stored = u64::from_le_bytes(bytes[len - 8..].try_into().expect("8 bytes"));
    if fnv1a(&bytes[..len - 8]) != stored {
        return Err(bad(
            "frames",
            "content does not match its hash (corrupt)".into(),
        ));
    }
    let mut at = 16 + 8 * counts.len();
    let mut tracks = Vec::with_capacity(counts.len());
    for (c, (n, b)) in counts.into_iter().enumerate() {
        let mut track = FrameTrack::default();
        for i in 0..n {
            let row = u32::from_le_bytes(bytes[at + 4 * i..at + 4 * i + 4].try_into().expect("4"));
            if row as usize > steps {
                return Err(bad(
                    "frames",
                    format!(
                        "camera {:?} frame {i}: observation row {row}, the episode has {} rows",
                        info.cameras[c].name,
                        steps + 1
                    ),
                ));
            }
            track.rows.push(row);
        }
        at += 4 * n;
        for (i, s) in bytes[at..at + n].iter().enumerate() {
            match s {
                0 | 1 => track.success.push(*s == 1),
                other => {
                    return Err(bad(
                        "frames",
                        format!("success label {other} at frame {i}, expected 0 or 1"),
                    ))
                }
            }
        }
        at += n;
        for i in 0..n {
            let v = f64::from_le_bytes(bytes[at + 8 * i..at + 8 * i + 8].try_into().expect("8"));
            if !v.is_finite() {
                return Err(bad(
                    "frames",
                    format!("score {v} at frame {i} (must be finite)"),
                ));
            }
            track.scores.push(v);
        }
        at += 8 * n;
        track.pixels = bytes[at..at + n * b].to_vec();
        at += n * b;
        tracks.push(track);
    }
    Ok(tracks)
}

/// Writes the episodes of one dataset, one file per episode.
pub struct DatasetWriter {
    dir: PathBuf,
    info: DatasetInfo,
    next_index: usize,
}

impl DatasetWriter {
    /// Creates (or continues) the dataset in `dir`. A folder that already holds a dataset
    /// is continued only if its `dataset.json` matches `info` and its `config.toml` matches
    /// `config_text`; new episodes are numbered after the existing ones.
    pub fn create(
        dir: &Path,
        info: DatasetInfo,
        config_text: &str,
    ) -> Result<Self, RecordingError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let info_path = dir.join("dataset.json");
        let config_path = dir.join("config.toml");
        let next_index = if info_path.exists() {
            let existing = read_info(&info_path)?;
            if existing != info {
                return Err(RecordingError::Dataset {
                    path: info_path,
                    message: "an existing dataset with other sizes, fields or controller; \
                              record into a new folder"
                        .into(),
                });
            }
            let old = fs::read_to_string(&config_path).map_err(io(&config_path))?;
            if old != config_text {
                return Err(RecordingError::Dataset {
                    path: config_path,
                    message: "the existing dataset was recorded with another config".into(),
                });
            }
            episode_files(dir)?.len()
        } else {
            let json = serde_json::to_string_pretty(&info).expect("DatasetInfo serialises");
            write_atomic(&config_path, config_text.as_bytes())?;
            write_atomic(&info_path, json.as_bytes())?;
            0
        };
        Ok(Self {
            dir: dir.to_owned(),
            info,
            next_index,
        })
    }

    /// Writes one finished episode (temporary file, fsync, rename) and returns its path.
    pub fn write(&mut self, episode: &Episode) -> Result<PathBuf, RecordingError> {
        let path = episode_path(&self.dir, self.next_index);
        let (o, a, t) = (
            self.info.observation_len,
            self.info.action_len,
            episode.steps(),
        );
        let bad = |field, message: String| RecordingError::Episode {
            path: path.clone(),
            episode: self.next_index,
            field,
            message,
        };
        if episode.observations.len() != (t + 1) * o {
            return Err(bad(
                "observations",
                format!(
                    "{} values, expected (steps + 1) x {o} = {}",
                    episode.observations.len(),
                    (t + 1) * o
                ),
            ));
        }
        if episode.actions.len() != t * a {
            return Err(bad(
                "actions",
                format!(
                    "{} values, expected steps x {a} = {}",
                    episode.actions.len(),
                    t * a
                ),
            ));
        }
        if episode.terminals.len() != t || episode.timeouts.len() != t {
            return Err(bad("terminals", format!("flags for {t} steps expected")));
        }
        let cameras = &self.info.cameras;
        if episode.frames.len() != cameras.len() {
            return Err(bad(
                "frames",
                format!(
                    "{} frame tracks, dataset.json lists {} cameras",
                    episode.frames.len(),
                    cameras.len()
                ),
            ));
        }
        for (track, camera) in episode.frames.iter().zip(cameras) {
            let fits = track.success.len() == track.rows.len()
                && track.scores.len() == track.rows.len()
                && track.scores.iter().all(|v| v.is_finite())
                && Some(track.pixels.len()) == track.rows.len().checked_mul(camera.frame_bytes())
                && track.rows.iter().all(|r| *r as usize <= t);
            if !fits {
                return Err(bad(
                    "frames",
                    format!(
                        "camera {:?}: {} rows, {} labels and {} bytes do not make frames of {} \
                         bytes within {} observation rows",
                        camera.name,
                        track.rows.len(),
                        track.success.len(),
                        track.pixels.len(),
                        camera.frame_bytes(),
                        t + 1
                    ),
                ));
            }
        }
        // Frames first: an episode whose .rlep exists always has its frames.
        if !cameras.is_empty() {
            write_atomic(&frames_path(&path), &encode_frames(&episode.frames))?;
        }
        write_atomic(&path, &episode.encode(o, a))?;
        self.next_index += 1;
        Ok(path)
    }

    /// Episodes in the folder so far.
    pub fn episodes(&self) -> usize {
        self.next_index
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, fsyncs it, renames
/// it into place and fsyncs the folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RecordingError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_info(path: &Path) -> Result<DatasetInfo, RecordingError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    let info: DatasetInfo = serde_json::from_str(&text).map_err(|source| RecordingError::Json {
        path: path.to_owned(),
        source,
    })?;
    if info.format != FORMAT || info.version != VERSION {
        return Err(RecordingError::Dataset {
            path: path.to_owned(),
            message: format!(
                "format {:?} version {}, expected {FORMAT:?} version {VERSION}",
                info.format, info.version
            ),
        });
    }
    Ok(info)
}

/// The episode files of a dataset folder, in order.
fn episode_files(dir: &Path) -> Result<Vec<PathBuf>, RecordingError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "rlep")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("episode-"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A whole dataset in memory.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The episode files, in order.
    pub files: Vec<PathBuf>,
    pub dir: PathBuf,
    pub info: DatasetInfo,
    /// The resolved hw-config text the episodes were recorded with.
    pub config_text: String,
    pub episodes: Vec<Episode>,
}

impl Dataset {
    /// Reads and validates every episode of the dataset in `dir`.
    pub fn open(dir: &Path) -> Result<Self, RecordingError> {
        let info = read_info(&dir.join("dataset.json"))?;
        let config_path = dir.join("config.toml");
        let config_text = fs::read_to_string(&config_path).map_err(io(&config_path))?;
        let files = episode_files(dir)?;
        if files.is_empty() {
            return Err(RecordingError::Dataset {
                path: dir.to_owned(),
                message: "no episode files (episode-NNNNNN.rlep)".into(),
            });
        }
        let mut episodes = Vec::with_capacity(files.len());
        for (index, path) in files.iter().enumerate() {
            let bytes = fs::read(path).map_err(io(path))?;
            episodes.push(decode(&bytes, path, index, &info)?);
            if !info.cameras.is_empty() {
                check_frames_file(&frames_path(path), index, &info)?;
            }
        }
        Ok(Self {
            files,
            dir: dir.to_owned(),
            info,
            config_text,
            episodes,
        })
    }

    /// Reads and validates the camera frames of episode `index` (one track per camera of
    /// `dataset.json`; none when it lists no cameras).
    pub fn frames(&self, index: usize) -> Result<Vec<FrameTrack>, RecordingError> {
        if self.info.cameras.is_empty() {
            return Ok(Vec::new());
        }
        let path = frames_path(&self.files[index]);
        let bytes = fs::read(&path).map_err(io(&path))?;
        decode_frames(
            &bytes,
            &path,
            index,
            self.episodes[index].steps(),
            &self.info,
        )
    }

    /// Number of transitions over all episodes.
    pub fn transitions(&self) -> usize {
        self.episodes.iter().map(Episode::steps).sum()
    }

    /// Fraction of episodes that ended in success.
    pub fn success_rate(&self) -> f64 {
        let n = self.episodes.iter().filter(|e| e.success).count();
        n as f64 / self.episodes.len().max(1) as f64
    }
}

/// Checks that an episode's frames file exists and that its length fits its header (the
/// hash is checked when the frames are read).
fn check_frames_file(
    path: &Path,
    episode: usize,
    info: &DatasetInfo,
) -> Result<(), RecordingError> {
    use std::io::Read;
    let bad = |field: &'static str, message: String| RecordingError::Episode {
        path: path.to_owned(),
        episode,
        field,
        message,
    };
    let mut file = File::open(path).map_err(|source| RecordingError::MissingFrames {
        path: path.to_owned(),
        episode,
        source,
    })?;
    let len = file.metadata().map_err(io(path))?.len() as usize;
    let mut head = vec![0u8; (16 + 8 * info.cameras.len()).min(len)];
    file.read_exact(&mut head).map_err(io(path))?;
    let (expected, _) = frames_layout(&head, info, &bad)?;
    if len != expected {
        return Err(bad(
            "frames",
            format!("{len} bytes, expected {expected} (truncated or corrupt)"),
        ));
    }
    Ok(())
}

/// Decodes and validates one episode file.
pub fn decode(
    bytes: &[u8],
    path: &Path,
    episode: usize,
    info: &DatasetInfo,
) -> Result<Episode, RecordingError> {
    let bad = |field, message: String| RecordingError::Episode {
        path: path.to_owned(),
        episode,
        field,
        message,
    };
    if bytes.len() < HEADER_BYTES + 8 {
        return Err(bad(
            "header",
            format!(
                "{} bytes: truncated (a header is {HEADER_BYTES})",
                bytes.len()
            ),
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err(bad(
            "magic",
            "not an rlrt episode file (expected RLRTEPI1)".into(),
        ));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let (version, o, a, t) = (
        u32_at(8),
        u32_at(12) as usize,
        u32_at(16) as usize,
        u32_at(20) as usize,
    );
    if version != VERSION {
        return Err(bad("version", format!("{version}, expected {VERSION}")));
    }
    if o != info.observation_len {
        return Err(bad(
            "observation_len",
            format!("{o}, dataset.json says {}", info.observation_len),
        ));
    }
    if a != info.action_len {
        return Err(bad(
            "action_len",
            format!("{a}, dataset.json says {}", info.action_len),
        ));
    }
    let Some(expected) = file_len(t, o, a) else {
        return Err(bad(
            "length",
            format!("{t} steps of {o} + {a} values, more than a file can hold (corrupt)"),
        ));
    };
    if bytes.len() != expected {
        return Err(bad(
            "length",
            format!(
                "{} bytes, expected {expected} for {t} steps (truncated or corrupt)",
                bytes.len()
            ),
        ));
    }
    let stored = u64::from_le_bytes(bytes[expected - 8..].try_into().expect("8 bytes"));
    if fnv1a(&bytes[..expected - 8]) != stored {
        return Err(bad(
            "hash",
            "content does not match its hash (corrupt)".into(),
        ));
    }
    let seed = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
    let success = match bytes[32] {
        0 => false,
        1 => true,
        other => return Err(bad("success", format!("{other}, expected 0 or 1"))),
    };
    let mut at = HEADER_BYTES;
    let mut floats =
        |field: &'static str, count: usize, row: usize| -> Result<Vec<f64>, RecordingError> {
            let mut v = Vec::with_capacity(count);
            for i in 0..count {
                let x = f64::from_le_bytes(
                    bytes[at + 8 * i..at + 8 * i + 8]
                        .try_into()
                        .expect("8 bytes"),
                );
                if !x.is_finite() {
                    return Err(bad(
                        field,
                        format!(
                            "{x} at step {}, value {} (must be finite)",
                            i / row.max(1),
                            i % row.max(1)
                        ),
                    ));
                }
                v.push(x);
            }
            at += 8 * count;
            Ok(v)
        };
    let observations = floats("observations", (t + 1) * o, o)?;
    let actions = floats("actions", t * a, a)?;
    let rewards = floats("rewards", t, 1)?;
    let flags = |field: &'static str, from: usize| -> Result<Vec<bool>, RecordingError> {
        bytes[from..from + t]
            .iter()
            .enumerate()
            .map(|(step, &b)| match b {
                0 => Ok(false),
                1 => Ok(true),
                other => Err(bad(
                    field,
                    format!("{other} at step {step}, expected 0 or 1"),
                )),
            })
            .collect()
    };
    let terminals = flags("terminals", at)?;
    let timeouts = flags("timeouts", at + t)?;
    Ok(Episode {
        seed,
        success,
        observations,
        actions,
        rewards,
        terminals,
        timeouts,
        frames: Vec::new(),
    })
}

/// One camera frame (`channels` 1: mono8, 3: rgb8) as PNG bytes.
pub fn encode_png(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: usize,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, width, height);
    encoder.set_color(if channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DatasetInfo {
        DatasetInfo {
            format: FORMAT.into(),
            version: VERSION,
            observation_len: 2,
            action_len: 1,
            action_mode: "joint_position".into(),
            control_rate_hz: 100.0,
            observation_fields: vec!["joint_positions".into()],
            reward: "test".into(),
            controller: "test".into(),
            config_source: "test.toml".into(),
            cameras: Vec::new(),
        }
    }

    fn episode(seed: u64, steps: usize) -> Episode {
        let mut e = Episode::start(seed, &[0.0, 1.0]);
        for t in 0..steps {
            let x = t as f64;
            e.push(&[x * 0.1], -x, false, t + 1 == steps, &[x, x + 1.0]);
        }
        e.success = seed % 2 == 0;
        e
    }

    #[test]
    fn episodes_round_trip_and_continue_numbering() {
        let dir = std::env::temp_dir().join(format!("rlrt-rec-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut w = DatasetWriter::create(&dir, info(), "cfg").unwrap();
        w.write(&episode(2, 5)).unwrap();
        w.write(&episode(3, 7)).unwrap();
        let mut w = DatasetWriter::create(&dir, info(), "cfg").unwrap();
        assert_eq!(w.episodes(), 2);
        w.write(&episode(4, 1)).unwrap();
        assert!(DatasetWriter::create(&dir, info(), "other").is_err());
        let d = Dataset::open(&dir).unwrap();
        assert_eq!(
            d.episodes,
            vec![episode(2, 5), episode(3, 7), episode(4, 1)]
        );
        assert_eq!(d.transitions(), 13);
        assert_eq!(d.config_text, "cfg");
        // No temporary files left behind.
        assert!(fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_name_file_episode_and_field() {
        let path = Path::new("d/episode-000003.rlep");
        let good = episode(1, 4).encode(2, 1);
        let err = decode(&good[..good.len() - 3], path, 3, &info())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("episode-000003.rlep (episode 3), field `length`"),
            "{err}"
        );
        let mut flipped = good.clone();
        flipped[HEADER_BYTES + 1] ^= 1;
        let err = decode(&flipped, path, 3, &info()).unwrap_err().to_string();
        assert!(err.contains("`hash`"), "{err}");
        let mut nan = episode(1, 4);
        nan.actions[2] = f64::NAN;
        let err = decode(&nan.encode(2, 1), path, 3, &info())
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `actions`: NaN at step 2"), "{err}");
        let mut wide = info();
        wide.observation_len = 3;
        let err = decode(&good, path, 3, &wide).unwrap_err().to_string();
        assert!(
            err.contains("`observation_len`: 2, dataset.json says 3"),
            "{err}"
        );
    }

    #[test]
    fn frames_round_trip_and_damage_is_located() {
        let dir = std::env::temp_dir().join(format!("rlrt-frames-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut with_camera = info();
        with_camera.cameras = vec![CameraInfo {
            name: "front".into(),
            width: 2,
            height: 2,
            encoding: "rgb8".into(),
            rate_hz: 30.0,
        }];
        let mut w = DatasetWriter::create(&dir, with_camera.clone(), "cfg").unwrap();
        let mut e = episode(2, 5);
        // A frame without its track is refused before anything is written.
        assert!(w
            .write(&e)
            .unwrap_err()
            .to_string()
            .contains("0 frame tracks"));
        let mut track = FrameTrack::default();
        track.push(0, false, 0.5, &[1; 12]);
        track.push(3, true, 0.01, &[2; 12]);
        e.frames = vec![track.clone()];
        let path = w.write(&e).unwrap();
        let d = Dataset::open(&dir).unwrap();
        assert!(d.episodes[0].frames.is_empty(), "frames are read on demand");
        assert_eq!(d.frames(0).unwrap(), vec![track.clone()]);
        assert_eq!(d.frames(0).unwrap()[0].frame(1), &[2; 12]);

        let frames = frames_path(&path);
        let good = fs::read(&frames).unwrap();
        let mut flipped = good.clone();
        let last = flipped.len() - 9;
        flipped[last] ^= 1;
        fs::write(&frames, &flipped).unwrap();
        let err = Dataset::open(&dir)
            .unwrap()
            .frames(0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "episode-000000.frames (episode 0), field `frames`: content does not match"
            ),
            "{err}"
        );
        fs::write(&frames, &good[..good.len() - 4]).unwrap();
        let err = Dataset::open(&dir).unwrap_err().to_string();
        assert!(err.contains("truncated or corrupt"), "{err}");
        fs::remove_file(&frames).unwrap();
        let err = Dataset::open(&dir).unwrap_err().to_string();
        assert!(err.contains("cannot open"), "{err}");
        // An old dataset.json without `cameras` still reads.
        let json = serde_json::to_string(&info()).unwrap();
        assert!(!json.contains("cameras"));
        assert_eq!(serde_json::from_str::<DatasetInfo>(&json).unwrap(), info());
        fs::remove_dir_all(&dir).unwrap();
    }
}
