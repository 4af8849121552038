//! An rlrt dataset in LeRobot's dataset layout, version 3.0 (`rlrt export lerobot`)
//! (`codebase_version` "v3.0", the layout `LeRobotDataset` loads), so policies trained with
//! LeRobot can learn from episodes recorded by rlrt.
//!
//! What is written (docs/recordings.md has the mapping):
//! - `data/chunk-000/file-000.parquet` (more files past 100 MB): one row per step, with
//!   `observation.state` and `action` (float32 vectors), `next.reward` (float32),
//!   `next.done` (the episode ends after this step), `next.terminal` (it ended by
//!   termination, not a time limit), `next.success` (the episode succeeded, on its last step),
//!   and LeRobot's `timestamp`, `frame_index`, `episode_index`, `index` and `task_index`.
//!   Episodes follow one another; `index` counts over the whole dataset.
//! - `meta/info.json`, `meta/stats.json` (min, max, mean, std, count and the 1, 10, 50, 90 and
//!   99% quantiles of every feature), `meta/tasks.parquet` (the task sentence, with the pandas
//!   index LeRobot reads it by) and `meta/episodes/chunk-000/file-000.parquet`.
//!
//! An rlrt episode of T steps has T + 1 observations; LeRobot pairs each observation with the
//! action taken from it, so the final observation is not exported. Recorded `rgb8` and
//! `mono8` camera frames become LeRobot `image` features, `observation.images.<camera>`:
//! each step carries the newest frame rendered at or before its observation, as a PNG in the
//! data file (the `{bytes, path}` struct Hugging Face `datasets` decodes), with per-channel
//! statistics in [0, 1] as LeRobot computes them. Depth cameras are not exported; the outcome
//! names them.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rlrt_runtime::recording::{encode_png, Dataset, Episode, RecordingError};

/// The LeRobot dataset version written.
pub const CODEBASE_VERSION: &str = "v3.0";
/// LeRobot's defaults: files per chunk folder and the size a data file is kept under.
const CHUNKS_SIZE: usize = 1000;
const DATA_FILE_MB: usize = 100;

#[derive(Debug, serde::Serialize)]
pub struct LeRobotOutcome {
    pub out: String,
    pub episodes: usize,
    pub frames: usize,
    pub fps: u32,
    pub task: String,
    pub data_files: usize,
    /// Cameras whose frames were exported as `observation.images.<camera>`.
    pub cameras: Vec<String>,
    /// Cameras of the dataset whose frames were not exported (depth encodings).
    pub cameras_not_exported: Vec<String>,
}

impl std::fmt::Display for LeRobotOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} (LeRobot {CODEBASE_VERSION}): {} episodes, {} frames at {} fps in {} data \
             file(s), task {:?}",
            self.out, self.episodes, self.frames, self.fps, self.data_files, self.task
        )?;
        if !self.cameras.is_empty() {
            writeln!(
                f,
                "camera frames as PNG images: {}",
                self.cameras
                    .iter()
                    .map(|c| format!("observation.images.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        if !self.cameras_not_exported.is_empty() {
            writeln!(
                f,
                "not exported: the frames of depth camera(s) {}",
                self.cameras_not_exported.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The values of one exported column over one episode.
enum Values {
    F32(Vec<f32>),
    Bool(Vec<bool>),
    I64(Vec<i64>),
    /// One PNG per step.
    Png(Vec<Vec<u8>>),
}

/// One column of the data files: its name, its width (values per step) and its values. Its
/// Arrow type, LeRobot feature and statistics all derive from these.
struct Column {
    name: String,
    width: usize,
    values: Values,
}

/// The Arrow type Hugging Face `datasets` stores an `Image` feature as.
fn image_type() -> DataType {
    DataType::Struct(
        vec![
            Field::new("bytes", DataType::Binary, true),
            Field::new("path", DataType::Utf8, true),
        ]
        .into(),
    )
}

impl Column {
    fn dtype(&self) -> &'static str {
        match self.values {
            Values::F32(_) => "float32",
            Values::Bool(_) => "bool",
            Values::I64(_) => "int64",
            Values::Png(_) => "image",
        }
    }

    fn field(&self) -> Field {
        let scalar = match self.values {
            Values::F32(_) => DataType::Float32,
            Values::Bool(_) => DataType::Boolean,
            Values::I64(_) => DataType::Int64,
            Values::Png(_) => return Field::new(&self.name, image_type(), false),
        };
        let data_type = if self.width == 1 {
            scalar
        } else {
            DataType::FixedSizeList(
                Arc::new(Field::new_list_field(scalar, true)),
                self.width as i32,
            )
        };
        Field::new(&self.name, data_type, false)
    }

    fn array(&self) -> Result<ArrayRef, arrow_schema::ArrowError> {
        let flat: ArrayRef = match &self.values {
            Values::F32(v) => Arc::new(Float32Array::from(v.clone())),
            Values::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            Values::I64(v) => Arc::new(Int64Array::from(v.clone())),
            Values::Png(v) => {
                let DataType::Struct(fields) = image_type() else {
                    unreachable!("a struct type")
                };
                let bytes = BinaryArray::from_iter_values(v.iter());
                let paths = StringArray::new_null(v.len());
                return Ok(Arc::new(StructArray::try_new(
                    fields,
                    vec![Arc::new(bytes), Arc::new(paths)],
                    None,
                )?));
            }
        };
        match self.field().data_type() {
            DataType::FixedSizeList(item, width) => Ok(Arc::new(FixedSizeListArray::try_new(
                item.clone(),
                *width,
                flat,
                None,
            )?)),
            _ => Ok(flat),
        }
    }

    fn as_f64(&self) -> Vec<f64> {
        match &self.values {
            Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Values::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
            Values::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Values::Png(_) => Vec::new(),
        }
    }
}

/// Per-channel counts of every byte value of one camera's exported frames: LeRobot's image
/// statistics, exact, without keeping the pixels.
struct PixelHistogram {
    channels: usize,
    counts: Vec<[u64; 256]>,
    frames: usize,
}

impl PixelHistogram {
    fn new(channels: usize) -> Self {
        Self {
            channels,
            counts: vec![[0; 256]; channels],
            frames: 0,
        }
    }

    fn add(&mut self, frame: &[u8]) {
        for (i, v) in frame.iter().enumerate() {
            self.counts[i % self.channels][*v as usize] += 1;
        }
        self.frames += 1;
    }

    /// min, max, mean, std and quantiles per channel, scaled to [0, 1], each as
    /// [channels][1][1] (LeRobot's shape for image statistics), and the frame count.
    fn stats(&self) -> serde_json::Value {
        let mut out: BTreeMap<&str, Vec<[[f64; 1]; 1]>> = BTreeMap::new();
        for hist in &self.counts {
            let n: u64 = hist.iter().sum();
            // The k-th smallest value (0-based).
            let nth = |k: u64| -> f64 {
                let mut seen = 0;
                for (v, c) in hist.iter().enumerate() {
                    seen += c;
                    if seen > k {
                        return v as f64;
                    }
                }
                255.0
            };
            let quantile = |q: f64| {
                let at = q * (n.max(1) - 1) as f64;
                let (low, high) = (at.floor() as u64, at.ceil() as u64);
                nth(low) + (nth(high) - nth(low)) * (at - low as f64)
            };
            let total = n.max(1) as f64;
            let mean = hist
                .iter()
                .enumerate()
                .map(|(v, c)| v as f64 * *c as f64)
                .sum::<f64>()
                / total;
            let var = hist
                .iter()
                .enumerate()
                .map(|(v, c)| (v as f64 - mean).powi(2) * *c as f64)
                .sum::<f64>()
                / total;
            let min = hist.iter().position(|c| *c > 0).unwrap_or(0) as f64;
            let max = hist.iter().rposition(|c| *c > 0).unwrap_or(0) as f64;
            for (key, value) in [
                ("min", min),
                ("max", max),
                ("mean", mean),
                ("std", var.sqrt()),
                ("q01", quantile(0.01)),
                ("q10", quantile(0.10)),
                ("q50", quantile(0.50)),
                ("q90", quantile(0.90)),
                ("q99", quantile(0.99)),
            ] {
                out.entry(key).or_default().push([[value / 255.0]]);
            }
        }
        let mut json = serde_json::to_value(out).expect("numbers");
        json["count"] = serde_json::json!([self.frames]);
        json
    }
}

/// The data columns of one episode: `episode_index` is its number in the export, `first` the
/// global `index` of its first step.
fn episode_columns(
    episode: &rlrt_runtime::recording::Episode,
    (o, a): (usize, usize),
    fps: u32,
    episode_index: i64,
    first: i64,
) -> Vec<Column> {
    let steps = episode.steps();
    let last = |t: usize| t + 1 == steps;
    let f32s = |v: &[f64]| Values::F32(v.iter().map(|&x| x as f32).collect());
    let column = |name: &str, width, values| Column {
        name: name.to_owned(),
        width,
        values,
    };
    vec![
        // Observations 0..T-1, each beside the action taken from it.
        column(
            "observation.state",
            o,
            f32s(&episode.observations[..steps * o]),
        ),
        column("action", a, f32s(&episode.actions[..steps * a])),
        column("next.reward", 1, f32s(&episode.rewards[..steps])),
        column("next.done", 1, Values::Bool((0..steps).map(last).collect())),
        column(
            "next.terminal",
            1,
            Values::Bool(episode.terminals[..steps].to_vec()),
        ),
        column(
            "next.success",
            1,
            Values::Bool((0..steps).map(|t| last(t) && episode.success).collect()),
        ),
        column(
            "timestamp",
            1,
            Values::F32((0..steps).map(|t| (t as f64 / fps as f64) as f32).collect()),
        ),
        column("frame_index", 1, Values::I64((0..steps as i64).collect())),
        column("episode_index", 1, Values::I64(vec![episode_index; steps])),
        column(
            "index",
            1,
            Values::I64((first..first + steps as i64).collect()),
        ),
        column("task_index", 1, Values::I64(vec![0; steps])),
    ]
}

fn writer(path: &Path, schema: Arc<Schema>) -> Result<ArrowWriter<File>, LeRobotError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    let file = File::create(path).map_err(io("creating", path))?;
    // LeRobot writes snappy; any reader of parquet reads it.
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    Ok(ArrowWriter::try_new(file, schema, Some(props))?)
}

fn chunk_file(kind: &str, chunk: usize, file: usize) -> String {
    format!("{kind}/chunk-{chunk:03}/file-{file:03}.parquet")
}

/// Statistics of one feature: per dimension over all frames (LeRobot's `stats.json` keys).
fn stats(values: &[f64], dims: usize) -> serde_json::Value {
    let rows = values.len() / dims.max(1);
    let mut out: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for d in 0..dims {
        let mut column: Vec<f64> = (0..rows).map(|r| values[r * dims + d]).collect();
        let n = column.len().max(1) as f64;
        let mean = column.iter().sum::<f64>() / n;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        column.sort_by(f64::total_cmp);
        // numpy's default quantile: linear between the closest ranks.
        let quantile = |q: f64| {
            if column.is_empty() {
                return 0.0;
            }
            let at = q * (column.len() - 1) as f64;
            let (low, high) = (at.floor() as usize, at.ceil() as usize);
            column[low] + (column[high] - column[low]) * (at - low as f64)
        };
        for (key, value) in [
            ("min", column.first().copied().unwrap_or(0.0)),
            ("max", column.last().copied().unwrap_or(0.0)),
            ("mean", mean),
            ("std", var.sqrt()),
            ("q01", quantile(0.01)),
            ("q10", quantile(0.10)),
            ("q50", quantile(0.50)),
            ("q90", quantile(0.90)),
            ("q99", quantile(0.99)),
        ] {
            out.entry(key).or_default().push(value);
        }
    }
    let mut json = serde_json::to_value(out).expect("numbers");
    json["count"] = serde_json::json!([rows]);
    json
}

/// Where one exported episode lies.
struct EpisodeRow {
    episode_index: i64,
    length: i64,
    chunk: usize,
    file: usize,
    /// Its range of the global `index`, end exclusive.
    from: i64,
    to: i64,
}

/// Why a dataset could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum LeRobotError {
    #[error(transparent)]
    Dataset(#[from] RecordingError),
    #[error(
        "{}: control_rate_hz {rate} is not a whole number of frames per second, which \
         LeRobot's `fps` must be",
        info.display()
    )]
    FractionalRate { info: PathBuf, rate: f64 },
    #[error("--task is empty: write the task")]
    EmptyTask,
    #[error("{} already holds a LeRobot dataset: choose another --out", .0.display())]
    Exists(PathBuf),
    #[error("{}: episode {episode} has no frames of camera {camera:?}", data.display())]
    NoFrames {
        data: PathBuf,
        episode: usize,
        camera: String,
    },
    #[error("{}: no episode has a step to export", .0.display())]
    NoEpisodes(PathBuf),
    #[error("encoding a frame as PNG")]
    Png(#[from] png::EncodingError),
    #[error("{doing} {}", path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

fn io<'a>(doing: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LeRobotError + 'a {
    move |source| LeRobotError::Io {
        doing,
        path: path.to_owned(),
        source,
    }
}

/// Writes the dataset at `data` as a LeRobot dataset in the new folder `out`, every
/// episode under `task` (default: the robot's name in the config).
pub fn export(data: &Path, out: &Path, task: Option<&str>) -> Result<LeRobotOutcome, LeRobotError> {
    let dataset = Dataset::open(data)?;
    let info = &dataset.info;
    let fps = info.control_rate_hz.round();
    if (info.control_rate_hz - fps).abs() >= 1e-9 || fps < 1.0 {
        return Err(LeRobotError::FractionalRate {
            info: data.join("dataset.json"),
            rate: info.control_rate_hz,
        });
    }
    let fps = fps as u32;
    let robot = dataset
        .config_text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("robot")?.get("name")?.as_str().map(str::to_owned));
    let task = match task {
        Some(t) if t.trim().is_empty() => return Err(LeRobotError::EmptyTask),
        Some(t) => t.to_owned(),
        None => robot.clone().unwrap_or_else(|| "rlrt episodes".into()),
    };
    if out.join("meta/info.json").exists() {
        return Err(LeRobotError::Exists(out.to_owned()));
    }
    let mut files = DataFiles::new(data, out, &dataset, fps);
    for (number, episode) in dataset.episodes.iter().enumerate() {
        files.episode(number, episode)?;
    }
    files.close()?;
    let DataFiles {
        episodes_meta,
        features,
        all,
        images,
        histograms,
        data_files,
        index,
        ..
    } = files;
    if episodes_meta.is_empty() {
        return Err(LeRobotError::NoEpisodes(data.to_owned()));
    }
    let n = episodes_meta.len();
    write_episodes(out, &episodes_meta, &task)?;
    write_tasks(out, &task)?;
    let frames = index as usize;
    let info_json = serde_json::json!({
        "codebase_version": CODEBASE_VERSION,
        "fps": fps,
        "features": features,
        "total_episodes": n,
        "total_frames": frames,
        "total_tasks": 1,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": 200,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": null,
        "robot_type": robot,
        "splits": { "train": format!("0:{n}") },
    });
    let write_json = |name: &str, value: &serde_json::Value| -> Result<(), LeRobotError> {
        let path = out.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")
            .map_err(io("writing", &path))
    };
    write_json("meta/info.json", &info_json)?;
    let mut stats_json: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .map(|(name, (values, dims))| (name.clone(), stats(values, *dims)))
        .collect();
    for ((camera, _), histogram) in images.iter().zip(&histograms) {
        stats_json.insert(
            format!("observation.images.{}", info.cameras[*camera].name),
            histogram.stats(),
        );
    }
    write_json("meta/stats.json", &serde_json::Value::Object(stats_json))?;

    Ok(LeRobotOutcome {
        out: out.display().to_string(),
        episodes: n,
        frames,
        fps,
        task,
        data_files,
        cameras: images
            .iter()
            .map(|(c, _)| info.cameras[*c].name.clone())
            .collect(),
        cameras_not_exported: info
            .cameras
            .iter()
            .enumerate()
            .filter(|(i, _)| !images.iter().any(|(c, _)| c == i))
            .map(|(_, c)| c.name.clone())
            .collect(),
    })
}

/// The data files being written (`data/chunk-*/file-*.parquet`, one row group per episode)
/// and what the metadata will say of them.
struct DataFiles<'a> {
    data: &'a Path,
    out: &'a Path,
    dataset: &'a Dataset,
    fps: u32,
    /// Bytes a frame takes before compression, to keep data files under LeRobot's size.
    frame_bytes: usize,
    chunk: usize,
    file: usize,
    file_bytes: usize,
    current: Option<ArrowWriter<File>>,
    data_files: usize,
    episodes_meta: Vec<EpisodeRow>,
    /// LeRobot's feature of each column.
    features: serde_json::Map<String, serde_json::Value>,
    /// All values of each column (for the statistics), with its width.
    all: BTreeMap<String, (Vec<f64>, usize)>,
    /// Cameras exported as images: (index among the recorded cameras, channels).
    images: Vec<(usize, usize)>,
    /// Their pixel statistics.
    histograms: Vec<PixelHistogram>,
    /// Frames written so far.
    index: i64,
}

impl<'a> DataFiles<'a> {
    fn new(data: &'a Path, out: &'a Path, dataset: &'a Dataset, fps: u32) -> Self {
        let info = &dataset.info;
        let images: Vec<(usize, usize)> = info
            .cameras
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c.encoding.as_str() {
                "rgb8" => Some((i, 3)),
                "mono8" => Some((i, 1)),
                _ => None,
            })
            .collect();
        let histograms = images
            .iter()
            .map(|(_, c)| PixelHistogram::new(*c))
            .collect();
        Self {
            data,
            out,
            dataset,
            fps,
            frame_bytes: 4 * (info.observation_len + info.action_len) + 4 + 3 + 4 + 4 * 8,
            chunk: 0,
            file: 0,
            file_bytes: 0,
            current: None,
            data_files: 0,
            episodes_meta: Vec::new(),
            features: serde_json::Map::new(),
            all: BTreeMap::new(),
            images,
            histograms,
            index: 0,
        }
    }

    /// Episode `number` of the dataset as rows of the current data file (a new file when
    /// it would pass LeRobot's size).
    fn episode(&mut self, number: usize, episode: &Episode) -> Result<(), LeRobotError> {
        if episode.steps() == 0 {
            return Ok(());
        }
        let info = &self.dataset.info;
        let steps = episode.steps() as i64;
        let sizes = (info.observation_len, info.action_len);
        let episode_index = self.episodes_meta.len() as i64;
        let mut columns = episode_columns(episode, sizes, self.fps, episode_index, self.index);
        let mut bytes = steps as usize * self.frame_bytes;
        if !self.images.is_empty() {
            bytes += self.image_columns(number, steps as usize, &mut columns)?;
        }
        let schema = Arc::new(Schema::new(
            columns.iter().map(Column::field).collect::<Vec<_>>(),
        ));
        if self.current.is_none() || self.file_bytes + bytes > DATA_FILE_MB * 1024 * 1024 {
            if let Some(full) = self.current.take() {
                full.close()?;
                self.file += 1;
                if self.file == CHUNKS_SIZE {
                    (self.chunk, self.file) = (self.chunk + 1, 0);
                }
            }
            let path = self.out.join(chunk_file("data", self.chunk, self.file));
            self.current = Some(writer(&path, schema.clone())?);
            self.data_files += 1;
            self.file_bytes = 0;
        }
        self.file_bytes += bytes;
        for c in &columns {
            if let Values::Png(_) = c.values {
                continue;
            }
            self.features.insert(
                c.name.clone(),
                serde_json::json!({ "dtype": c.dtype(), "shape": [c.width], "names": null }),
            );
            let (values, _) = self
                .all
                .entry(c.name.clone())
                .or_insert((Vec::new(), c.width));
            values.extend(c.as_f64());
        }
        for (camera, channels) in &self.images {
            let spec = &info.cameras[*camera];
            self.features.insert(
                format!("observation.images.{}", spec.name),
                serde_json::json!({
                    "dtype": "image",
                    "shape": [spec.height, spec.width, channels],
                    "names": ["height", "width", "channels"],
                }),
            );
        }
        let arrays = columns
            .iter()
            .map(Column::array)
            .collect::<Result<Vec<_>, _>>()?;
        let out = self.current.as_mut().expect("a data file is open");
        out.write(&RecordBatch::try_new(schema, arrays)?)?;
        // One row group per episode, as LeRobot writes them.
        out.flush()?;
        self.episodes_meta.push(EpisodeRow {
            episode_index,
            length: steps,
            chunk: self.chunk,
            file: self.file,
            from: self.index,
            to: self.index + steps,
        });
        self.index += steps;
        Ok(())
    }

    /// The PNG columns of episode `number`'s exported cameras; returns their bytes.
    fn image_columns(
        &mut self,
        number: usize,
        steps: usize,
        columns: &mut Vec<Column>,
    ) -> Result<usize, LeRobotError> {
        let info = &self.dataset.info;
        let tracks = self.dataset.frames(number)?;
        let mut bytes = 0;
        for ((camera, channels), histogram) in self.images.iter().zip(&mut self.histograms) {
            let spec = &info.cameras[*camera];
            let track = &tracks[*camera];
            if track.is_empty() {
                return Err(LeRobotError::NoFrames {
                    data: self.data.to_owned(),
                    episode: number,
                    camera: spec.name.clone(),
                });
            }
            // Step t shows the newest frame rendered at or before observation t.
            let (mut k, mut pngs, mut last) = (0usize, Vec::new(), usize::MAX);
            for t in 0..steps {
                while k + 1 < track.len() && track.rows[k + 1] as usize <= t {
                    k += 1;
                }
                if k != last {
                    pngs.push(encode_png(
                        track.frame(k),
                        spec.width,
                        spec.height,
                        *channels,
                    )?);
                    last = k;
                } else {
                    let again = pngs.last().expect("encoded above").clone();
                    pngs.push(again);
                }
                histogram.add(track.frame(k));
                bytes += pngs.last().map_or(0, Vec::len);
            }
            columns.push(Column {
                name: format!("observation.images.{}", spec.name),
                width: 1,
                values: Values::Png(pngs),
            });
        }
        Ok(bytes)
    }

    fn close(&mut self) -> Result<(), LeRobotError> {
        if let Some(last) = self.current.take() {
            last.close()?;
        }
        Ok(())
    }
}

/// `meta/episodes`: one row per episode (the per-episode statistics LeRobot also keeps there
/// are dropped by its loader, and not written).
fn write_episodes(
    out: &Path,
    episodes_meta: &[EpisodeRow],
    task: &str,
) -> Result<(), LeRobotError> {
    let n = episodes_meta.len();
    let int = |f: &dyn Fn(&EpisodeRow) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from(
            episodes_meta.iter().map(f).collect::<Vec<_>>(),
        ))
    };
    let tasks = {
        let values = StringArray::from(vec![task; n]);
        let offsets = arrow_buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(1, n));
        Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            offsets,
            Arc::new(values),
            None,
        )?) as ArrayRef
    };
    let episodes_schema = Arc::new(Schema::new(vec![
        Field::new("episode_index", DataType::Int64, false),
        Field::new(
            "tasks",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
        Field::new("length", DataType::Int64, false),
        Field::new("data/chunk_index", DataType::Int64, false),
        Field::new("data/file_index", DataType::Int64, false),
        Field::new("dataset_from_index", DataType::Int64, false),
        Field::new("dataset_to_index", DataType::Int64, false),
        Field::new("meta/episodes/chunk_index", DataType::Int64, false),
        Field::new("meta/episodes/file_index", DataType::Int64, false),
    ]));
    let episodes_batch = RecordBatch::try_new(
        episodes_schema.clone(),
        vec![
            int(&|m| m.episode_index),
            tasks,
            int(&|m| m.length),
            int(&|m| m.chunk as i64),
            int(&|m| m.file as i64),
            int(&|m| m.from),
            int(&|m| m.to),
            int(&|_| 0),
            int(&|_| 0),
        ],
    )?;
    let mut w = writer(
        &out.join(chunk_file("meta/episodes", 0, 0)),
        episodes_schema,
    )?;
    w.write(&episodes_batch)?;
    w.close()?;

    Ok(())
}

/// `meta/tasks.parquet`: LeRobot reads it with pandas and looks tasks up by the index named
/// "task", which pandas restores from its metadata.
fn write_tasks(out: &Path, task: &str) -> Result<(), LeRobotError> {
    let pandas = serde_json::json!({
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": null},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "rlrt", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.3.3"
    });
    let tasks_schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("task_index", DataType::Int64, false),
            Field::new("task", DataType::Utf8, false),
        ],
        [("pandas".to_owned(), pandas.to_string())].into(),
    ));
    let tasks_batch = RecordBatch::try_new(
        tasks_schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![0i64])),
            Arc::new(StringArray::from(vec![task])),
        ],
    )?;
    let mut w = writer(&out.join("meta/tasks.parquet"), tasks_schema)?;
    w.write(&tasks_batch)?;
    w.close()?;

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_per_dimension_with_numpy_quantiles() {
        // Two dimensions, five rows: 0..4 and 10..14 reversed.
        let values: Vec<f64> = (0..5).flat_map(|r| [r as f64, 14.0 - r as f64]).collect();
        let s = stats(&values, 2);
        assert_eq!(s["min"], serde_json::json!([0.0, 10.0]));
        assert_eq!(s["max"], serde_json::json!([4.0, 14.0]));
        assert_eq!(s["mean"], serde_json::json!([2.0, 12.0]));
        assert_eq!(s["q50"], serde_json::json!([2.0, 12.0]));
        // numpy.quantile([0, 1, 2, 3, 4], 0.1) == 0.4
        assert!((s["q10"][0].as_f64().unwrap() - 0.4).abs() < 1e-12);
        assert!((s["std"][0].as_f64().unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(s["count"], serde_json::json!([5]));
    }
}
