//! `rlrt export lerobot`: an rlrt dataset in LeRobot's dataset layout, version 3.0
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

use anyhow::Context;
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rlrt_runtime::recording::Dataset;

/// The LeRobot dataset version written.
pub const CODEBASE_VERSION: &str = "v3.0";
/// LeRobot's defaults: files per chunk folder and the size a data file is kept under.
const CHUNKS_SIZE: usize = 1000;
const DATA_FILE_MB: usize = 100;

/// `rlrt export lerobot`.
#[derive(clap::Args, Clone, Debug)]
pub struct LeRobotArgs {
    /// The dataset folder.
    pub data: PathBuf,
    /// The folder to write (must not hold a LeRobot dataset yet).
    #[arg(long)]
    pub out: PathBuf,
    /// The task sentence of every episode (default: the robot's name in the config).
    #[arg(long)]
    pub task: Option<String>,
}

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

    fn array(&self) -> anyhow::Result<ArrayRef> {
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

fn writer(path: &Path, schema: Arc<Schema>) -> anyhow::Result<ArrowWriter<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
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

pub fn export(args: &LeRobotArgs) -> anyhow::Result<LeRobotOutcome> {
    let dataset = Dataset::open(&args.data)?;
    let info = &dataset.info;
    let (o, a) = (info.observation_len, info.action_len);
    let fps = info.control_rate_hz.round();
    anyhow::ensure!(
        (info.control_rate_hz - fps).abs() < 1e-9 && fps >= 1.0,
        "{}: control_rate_hz {} is not a whole number of frames per second, which LeRobot's \
         `fps` must be",
        args.data.join("dataset.json").display(),
        info.control_rate_hz
    );
    let fps = fps as u32;
    let robot = dataset
        .config_text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("robot")?.get("name")?.as_str().map(str::to_owned));
    let task = match &args.task {
        Some(t) if t.trim().is_empty() => anyhow::bail!("--task is empty: write the task"),
        Some(t) => t.clone(),
        None => robot.clone().unwrap_or_else(|| "rlrt episodes".into()),
    };
    if args.out.join("meta/info.json").exists() {
        anyhow::bail!(
            "{} already holds a LeRobot dataset: choose another --out",
            args.out.display()
        );
    }

    // Bytes a frame takes before compression, to keep data files under LeRobot's size.
    let frame_bytes = 4 * (o + a) + 4 + 3 + 4 + 4 * 8;
    let (mut chunk, mut file, mut file_bytes) = (0usize, 0usize, 0usize);
    let mut current: Option<ArrowWriter<File>> = None;
    let mut data_files = 0;
    let mut episodes_meta = Vec::new();
    // LeRobot's feature of each column, and all its values (for the statistics).
    let mut features = serde_json::Map::new();
    let mut all: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    // Cameras exported as images: (index among the recorded cameras, channels), and their
    // pixel statistics.
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
    let mut histograms: Vec<PixelHistogram> = images
        .iter()
        .map(|(_, c)| PixelHistogram::new(*c))
        .collect();
    let mut index = 0i64;
    for (number, episode) in dataset.episodes.iter().enumerate() {
        if episode.steps() == 0 {
            continue;
        }
        let steps = episode.steps() as i64;
        let mut columns = episode_columns(episode, (o, a), fps, episodes_meta.len() as i64, index);
        let mut bytes = steps as usize * frame_bytes;
        if !images.is_empty() {
            let tracks = dataset.frames(number)?;
            for ((camera, channels), histogram) in images.iter().zip(&mut histograms) {
                let spec = &info.cameras[*camera];
                let track = &tracks[*camera];
                anyhow::ensure!(
                    !track.is_empty(),
                    "{}: episode {number} has no frames of camera {:?}",
                    args.data.display(),
                    spec.name
                );
                // Step t shows the newest frame rendered at or before observation t.
                let (mut k, mut pngs, mut last) = (0usize, Vec::new(), usize::MAX);
                for t in 0..steps as usize {
                    while k + 1 < track.len() && track.rows[k + 1] as usize <= t {
                        k += 1;
                    }
                    if k != last {
                        pngs.push(super::encode_png(
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
        }
        let schema = Arc::new(Schema::new(
            columns.iter().map(Column::field).collect::<Vec<_>>(),
        ));
        if current.is_none() || file_bytes + bytes > DATA_FILE_MB * 1024 * 1024 {
            if let Some(full) = current.take() {
                full.close()?;
                file += 1;
                if file == CHUNKS_SIZE {
                    (chunk, file) = (chunk + 1, 0);
                }
            }
            let path = args.out.join(chunk_file("data", chunk, file));
            current = Some(writer(&path, schema.clone())?);
            data_files += 1;
            file_bytes = 0;
        }
        file_bytes += bytes;
        for c in &columns {
            if let Values::Png(_) = c.values {
                continue;
            }
            features.insert(
                c.name.clone(),
                serde_json::json!({ "dtype": c.dtype(), "shape": [c.width], "names": null }),
            );
            let (values, _) = all.entry(c.name.clone()).or_insert((Vec::new(), c.width));
            values.extend(c.as_f64());
        }
        for (camera, channels) in &images {
            let spec = &info.cameras[*camera];
            features.insert(
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
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = current.as_mut().expect("a data file is open");
        out.write(&RecordBatch::try_new(schema, arrays)?)?;
        // One row group per episode, as LeRobot writes them.
        out.flush()?;
        episodes_meta.push(EpisodeRow {
            episode_index: episodes_meta.len() as i64,
            length: steps,
            chunk,
            file,
            from: index,
            to: index + steps,
        });
        index += steps;
    }
    if let Some(last) = current {
        last.close()?;
    }
    anyhow::ensure!(
        !episodes_meta.is_empty(),
        "{}: no episode has a step to export",
        args.data.display()
    );

    // meta/episodes: one row per episode (the per-episode statistics LeRobot also keeps
    // there are dropped by its loader, and not written).
    let n = episodes_meta.len();
    let int = |f: &dyn Fn(&EpisodeRow) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from(
            episodes_meta.iter().map(f).collect::<Vec<_>>(),
        ))
    };
    let tasks = {
        let values = StringArray::from(vec![task.as_str(); n]);
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
        &args.out.join(chunk_file("meta/episodes", 0, 0)),
        episodes_schema,
    )?;
    w.write(&episodes_batch)?;
    w.close()?;

    // meta/tasks.parquet: LeRobot reads it with pandas and looks tasks up by the index
    // named "task", which pandas restores from its metadata.
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
            Arc::new(StringArray::from(vec![task.as_str()])),
        ],
    )?;
    let mut w = writer(&args.out.join("meta/tasks.parquet"), tasks_schema)?;
    w.write(&tasks_batch)?;
    w.close()?;

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
    let write_json = |name: &str, value: &serde_json::Value| -> anyhow::Result<()> {
        let path = args.out.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
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
        out: args.out.display().to_string(),
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
