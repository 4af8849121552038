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
//! action taken from it, so the final observation is not exported. Camera frames are not
//! exported (LeRobot keeps them as video): the outcome says so when the dataset has some.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, ListArray, RecordBatch,
    StringArray,
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

#[derive(Clone, Debug)]
pub struct LeRobotArgs {
    pub data: PathBuf,
    pub out: PathBuf,
    /// The task sentence of every episode (default: the robot's name from the config).
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
    /// Cameras of the dataset whose frames were not exported.
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
        if !self.cameras_not_exported.is_empty() {
            writeln!(
                f,
                "not exported: the frames of camera(s) {} (LeRobot keeps frames as video)",
                self.cameras_not_exported.join(", ")
            )?;
        }
        Ok(())
    }
}

/// One step of one episode, as LeRobot sees it.
struct Columns {
    state: Vec<f32>,
    action: Vec<f32>,
    reward: Vec<f32>,
    done: Vec<bool>,
    terminal: Vec<bool>,
    success: Vec<bool>,
    timestamp: Vec<f32>,
    frame_index: Vec<i64>,
    episode_index: Vec<i64>,
    index: Vec<i64>,
    task_index: Vec<i64>,
}

impl Columns {
    fn new() -> Self {
        Self {
            state: Vec::new(),
            action: Vec::new(),
            reward: Vec::new(),
            done: Vec::new(),
            terminal: Vec::new(),
            success: Vec::new(),
            timestamp: Vec::new(),
            frame_index: Vec::new(),
            episode_index: Vec::new(),
            index: Vec::new(),
            task_index: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.reward.len()
    }
}

fn vector_field(name: &str, len: usize) -> Field {
    Field::new(
        name,
        DataType::FixedSizeList(
            Arc::new(Field::new_list_field(DataType::Float32, true)),
            len as i32,
        ),
        false,
    )
}

fn data_schema(o: usize, a: usize) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        vector_field("observation.state", o),
        vector_field("action", a),
        Field::new("next.reward", DataType::Float32, false),
        Field::new("next.done", DataType::Boolean, false),
        Field::new("next.terminal", DataType::Boolean, false),
        Field::new("next.success", DataType::Boolean, false),
        Field::new("timestamp", DataType::Float32, false),
        Field::new("frame_index", DataType::Int64, false),
        Field::new("episode_index", DataType::Int64, false),
        Field::new("index", DataType::Int64, false),
        Field::new("task_index", DataType::Int64, false),
    ]))
}

fn vector_array(values: Vec<f32>, len: usize) -> anyhow::Result<ArrayRef> {
    Ok(Arc::new(FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        len as i32,
        Arc::new(Float32Array::from(values)),
        None,
    )?))
}

fn batch(schema: &Arc<Schema>, c: Columns, o: usize, a: usize) -> anyhow::Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        vector_array(c.state, o)?,
        vector_array(c.action, a)?,
        Arc::new(Float32Array::from(c.reward)),
        Arc::new(BooleanArray::from(c.done)),
        Arc::new(BooleanArray::from(c.terminal)),
        Arc::new(BooleanArray::from(c.success)),
        Arc::new(Float32Array::from(c.timestamp)),
        Arc::new(Int64Array::from(c.frame_index)),
        Arc::new(Int64Array::from(c.episode_index)),
        Arc::new(Int64Array::from(c.index)),
        Arc::new(Int64Array::from(c.task_index)),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
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

fn feature(dtype: &str, shape: usize) -> serde_json::Value {
    serde_json::json!({ "dtype": dtype, "shape": [shape], "names": null })
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

    let schema = data_schema(o, a);
    // Bytes a frame takes before compression, to keep data files under LeRobot's size.
    let frame_bytes = 4 * (o + a) + 4 + 3 + 4 + 4 * 8;
    let (mut chunk, mut file, mut file_bytes) = (0usize, 0usize, 0usize);
    let mut current = writer(&args.out.join(chunk_file("data", 0, 0)), schema.clone())?;
    let mut data_files = 1;
    let mut episodes_meta = Vec::new();
    let mut all: BTreeMap<&str, (Vec<f64>, usize)> = BTreeMap::new();
    let mut index = 0i64;
    for episode in &dataset.episodes {
        let steps = episode.steps();
        if steps == 0 {
            continue;
        }
        let bytes = steps * frame_bytes;
        if file_bytes > 0 && file_bytes + bytes > DATA_FILE_MB * 1024 * 1024 {
            current.close()?;
            file += 1;
            if file == CHUNKS_SIZE {
                (chunk, file) = (chunk + 1, 0);
            }
            current = writer(
                &args.out.join(chunk_file("data", chunk, file)),
                schema.clone(),
            )?;
            data_files += 1;
            file_bytes = 0;
        }
        file_bytes += bytes;
        let mut c = Columns::new();
        let episode_index = episodes_meta.len() as i64;
        let from = index;
        for t in 0..steps {
            c.state.extend(
                episode.observations[t * o..(t + 1) * o]
                    .iter()
                    .map(|&v| v as f32),
            );
            c.action.extend(
                episode.actions[t * a..(t + 1) * a]
                    .iter()
                    .map(|&v| v as f32),
            );
            c.reward.push(episode.rewards[t] as f32);
            let last = t + 1 == steps;
            c.done.push(last);
            c.terminal.push(episode.terminals[t]);
            c.success.push(last && episode.success);
            c.timestamp.push((t as f64 / fps as f64) as f32);
            c.frame_index.push(t as i64);
            c.episode_index.push(episode_index);
            c.index.push(index);
            c.task_index.push(0);
            index += 1;
        }
        let mut add = |name: &'static str, values: Vec<f64>, dims: usize| {
            let entry = all.entry(name).or_insert((Vec::new(), dims));
            entry.0.extend(values);
        };
        add(
            "observation.state",
            c.state.iter().map(|&v| v as f64).collect(),
            o,
        );
        add("action", c.action.iter().map(|&v| v as f64).collect(), a);
        add(
            "next.reward",
            c.reward.iter().map(|&v| v as f64).collect(),
            1,
        );
        for (name, values) in [
            ("next.done", &c.done),
            ("next.terminal", &c.terminal),
            ("next.success", &c.success),
        ] {
            add(name, values.iter().map(|&b| b as u8 as f64).collect(), 1);
        }
        add(
            "timestamp",
            c.timestamp.iter().map(|&v| v as f64).collect(),
            1,
        );
        for (name, values) in [
            ("frame_index", &c.frame_index),
            ("episode_index", &c.episode_index),
            ("index", &c.index),
            ("task_index", &c.task_index),
        ] {
            add(name, values.iter().map(|&v| v as f64).collect(), 1);
        }
        debug_assert_eq!(c.len(), steps);
        current.write(&batch(&schema, c, o, a)?)?;
        // One row group per episode, as LeRobot writes them.
        current.flush()?;
        episodes_meta.push(EpisodeRow {
            episode_index,
            length: steps as i64,
            chunk,
            file,
            from,
            to: index,
        });
    }
    current.close()?;
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
    let mut features = serde_json::Map::new();
    for (name, dtype, shape) in [
        ("observation.state", "float32", o),
        ("action", "float32", a),
        ("next.reward", "float32", 1),
        ("next.done", "bool", 1),
        ("next.terminal", "bool", 1),
        ("next.success", "bool", 1),
        ("timestamp", "float32", 1),
        ("frame_index", "int64", 1),
        ("episode_index", "int64", 1),
        ("index", "int64", 1),
        ("task_index", "int64", 1),
    ] {
        features.insert(name.into(), feature(dtype, shape));
    }
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
    let stats_json: serde_json::Map<String, serde_json::Value> = all
        .iter()
        .map(|(name, (values, dims))| ((*name).to_owned(), stats(values, *dims)))
        .collect();
    write_json("meta/stats.json", &serde_json::Value::Object(stats_json))?;

    Ok(LeRobotOutcome {
        out: args.out.display().to_string(),
        episodes: n,
        frames,
        fps,
        task,
        data_files,
        cameras_not_exported: info.cameras.iter().map(|c| c.name.clone()).collect(),
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
