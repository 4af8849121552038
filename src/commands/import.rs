//! `rlrt import`: offline-RL datasets made elsewhere, as rlrt datasets that `rlrt train`,
//! `replay` and `reward feedback` read.
//!
//! Two HDF5 layouts (libhdf5 from Debian, through the `hdf5-metno` crate):
//!
//! - **Minari** (the successor of D4RL): a dataset folder with `data/main_data.hdf5`, or the
//!   file itself. One group per episode (`episode_0`, `episode_1`, ...) holding
//!   `observations` [T + 1, O], `actions` [T, A], `rewards`, `terminations` and `truncations`
//!   [T]; an optional `infos/success` [T + 1] gives the episode's success at its end. The
//!   group's `seed` attribute, when present, is kept.
//! - **D4RL**: one file with flat `observations` [N, O], `actions` [N, A], `rewards`,
//!   `terminals` and `timeouts` [N], optionally `next_observations` [N, O]. Episodes end at
//!   every terminal or timeout. Without `next_observations` the last transition of each
//!   episode has no next observation and is dropped (as D4RL's own `qlearning_dataset`
//!   does); the step before it is marked as the time limit.
//!
//! Observations must be flat vectors (dictionary observations are refused, naming the
//! group). A hw-config must describe them: its `observation.state` length and action length
//! must equal the file's, and it is stored as the dataset's `config.toml`. Floats of any width
//! and integer or boolean flags are read; NaN, infinities and flags other than 0 or 1 are
//! errors naming the file, the episode, the field and the step.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hdf5::types::TypeDescriptor;
use rlrt_runtime::recording::{DatasetWriter, Episode};

/// The layouts `rlrt import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    Minari,
    D4rl,
}

/// `rlrt import`: a Minari or D4RL dataset as an rlrt dataset.
#[derive(clap::Args, Clone, Debug)]
pub struct ImportArgs {
    /// Minari dataset folder (data/main_data.hdf5) or HDF5 file; D4RL HDF5 file.
    pub source: PathBuf,
    /// The hw-config describing the observations and actions (stored with the dataset).
    /// Without it, one is written from the dataset's own description of its spaces
    /// (Minari's metadata: a Box action space's bounds, the observation length); see
    /// [`derived_config`].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The rlrt dataset folder to write.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, serde::Serialize)]
pub struct ImportOutcome {
    pub file: PathBuf,
    /// The hw-config stored with the dataset: the one given, or "derived from ..." when it
    /// was written from the dataset's metadata.
    pub config: String,
    pub layout: Layout,
    pub out: PathBuf,
    pub episodes: usize,
    pub transitions: usize,
    /// D4RL without `next_observations`: the last transition of each episode.
    pub dropped_transitions: usize,
}

impl std::fmt::Display for ImportOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {} ({:?} layout) into {}: {} episodes, {} transitions",
            self.file.display(),
            self.layout,
            self.out.display(),
            self.episodes,
            self.transitions
        )?;
        writeln!(f, "config: {}", self.config)?;
        if self.dropped_transitions > 0 {
            writeln!(
                f,
                "dropped {} transitions: the last of each episode has no next observation \
                 (the file has no next_observations)",
                self.dropped_transitions
            )?;
        }
        Ok(())
    }
}

/// Where an error is: the file and what in it.
struct Place<'a> {
    file: &'a Path,
}

impl Place<'_> {
    fn err(&self, what: &str, message: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!("{}: {what}: {message}", self.file.display())
    }
}

/// A dataset's values as f64, with its shape.
fn read(
    place: &Place<'_>,
    ds: &hdf5::Dataset,
    what: &str,
) -> anyhow::Result<(Vec<f64>, Vec<usize>)> {
    let shape = ds.shape();
    let dtype = ds.dtype().map_err(|e| place.err(what, e))?;
    let descriptor = dtype.to_descriptor().map_err(|e| place.err(what, e))?;
    let values = match descriptor {
        TypeDescriptor::Float(_) => ds.read_raw::<f64>(),
        TypeDescriptor::Integer(_) => ds
            .read_raw::<i64>()
            .map(|v| v.into_iter().map(|x| x as f64).collect()),
        TypeDescriptor::Unsigned(_) => ds
            .read_raw::<u64>()
            .map(|v| v.into_iter().map(|x| x as f64).collect()),
        TypeDescriptor::Boolean => ds
            .read_raw::<bool>()
            .map(|v| v.into_iter().map(|x| if x { 1.0 } else { 0.0 }).collect()),
        other => {
            return Err(place.err(
                what,
                format!("holds {other:?}; expected numbers or booleans"),
            ))
        }
    }
    .map_err(|e| place.err(what, e))?;
    Ok((values, shape))
}

/// A [rows, cols] (or [rows] when `cols` is 1) dataset as rows of finite values.
fn matrix(
    place: &Place<'_>,
    group: &hdf5::Group,
    name: &str,
    where_: &str,
    rows: Option<usize>,
    cols: usize,
    config_key: &str,
) -> anyhow::Result<Vec<f64>> {
    let what = format!("{where_}/{name}");
    if !group.link_exists(name) {
        return Err(place.err(&what, "missing"));
    }
    let ds = match group.dataset(name) {
        Ok(ds) => ds,
        Err(_) => {
            return Err(place.err(
                &what,
                "is a group (dictionary observations); rlrt reads flat observation vectors",
            ))
        }
    };
    let (values, shape) = read(place, &ds, &what)?;
    let fits = match shape.as_slice() {
        [r] => cols == 1 && rows.is_none_or(|n| n == *r),
        [r, c] => *c == cols && rows.is_none_or(|n| n == *r),
        _ => false,
    };
    if !fits {
        let rows = rows.map_or("N".to_owned(), |n| n.to_string());
        return Err(place.err(
            &what,
            format!("shape {shape:?}, expected [{rows}, {cols}] ({config_key} of the hw-config)"),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(place.err(
            &what,
            format!(
                "{} at step {}, value {} (must be finite)",
                values[i],
                i / cols,
                i % cols
            ),
        ));
    }
    Ok(values)
}

fn flags(place: &Place<'_>, values: Vec<f64>, what: &str) -> anyhow::Result<Vec<bool>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            0.0 => Ok(false),
            1.0 => Ok(true),
            other => Err(place.err(what, format!("{other} at step {i}, expected 0 or 1"))),
        })
        .collect()
}

fn hdf5_file(source: &Path) -> PathBuf {
    if source.is_dir() {
        let minari = source.join("data").join("main_data.hdf5");
        if minari.exists() {
            return minari;
        }
        return source.join("main_data.hdf5");
    }
    source.to_owned()
}

pub fn run(args: &ImportArgs) -> anyhow::Result<ImportOutcome> {
    let file_path = hdf5_file(&args.source);
    let place = Place { file: &file_path };
    let file = hdf5::File::open(&file_path)
        .map_err(|e| anyhow::anyhow!("{}: cannot open as HDF5: {e}", file_path.display()))?;
    let (config, text, config_path, config_said) = match &args.config {
        Some(path) => {
            let (config, text) = super::load_config(path)?;
            (config, text, path.clone(), path.display().to_string())
        }
        None => {
            let derived = derived_config(&file_path, &file)?;
            // Parsed as if it sat in the new dataset's folder (where it is stored).
            let path = args.out.join("config.toml");
            let config = rlrt_runtime::config::parse(&derived.text, &path)
                .map_err(|e| anyhow::anyhow!("the hw-config derived from {}: {e}", derived.from))?;
            let said = format!("derived from {}", derived.from);
            (config, derived.text, path, said)
        }
    };
    let (o, a) = (config.observation.feature_len, config.action.len());
    let mut episode_names: Vec<(u64, String)> = file
        .member_names()
        .map_err(|e| place.err("/", e))?
        .into_iter()
        .filter_map(|n| {
            n.strip_prefix("episode_")
                .and_then(|id| id.parse().ok())
                .map(|id| (id, n.clone()))
        })
        .collect();
    episode_names.sort();
    let layout = if !episode_names.is_empty() {
        Layout::Minari
    } else if file.link_exists("observations") {
        Layout::D4rl
    } else {
        anyhow::bail!(
            "{}: neither Minari (episode_N groups) nor D4RL (observations, actions, ... at the \
             top) layout",
            file_path.display()
        );
    };
    let mut episodes = Vec::new();
    let mut dropped = 0;
    match layout {
        Layout::Minari => {
            for (id, name) in &episode_names {
                let g = file.group(name).map_err(|e| place.err(name, e))?;
                let actions = matrix(&place, &g, "actions", name, None, a, "the action length")?;
                let t = actions.len() / a;
                let observations = matrix(
                    &place,
                    &g,
                    "observations",
                    name,
                    Some(t + 1),
                    o,
                    "observation.state length",
                )?;
                let rewards = matrix(&place, &g, "rewards", name, Some(t), 1, "one per step")?;
                let flag = |n: &str| -> anyhow::Result<Vec<bool>> {
                    let v = matrix(&place, &g, n, name, Some(t), 1, "one per step")?;
                    flags(&place, v, &format!("{name}/{n}"))
                };
                let (terminals, timeouts) = (flag("terminations")?, flag("truncations")?);
                let success = if g.link_exists("infos") {
                    let infos = g.group("infos").map_err(|e| place.err(name, e))?;
                    if infos.link_exists("success") {
                        let v = matrix(
                            &place,
                            &infos,
                            "success",
                            &format!("{name}/infos"),
                            None,
                            1,
                            "one per observation",
                        )?;
                        v.last().is_some_and(|x| *x != 0.0)
                    } else {
                        false
                    }
                } else {
                    false
                };
                let seed = g
                    .attr("seed")
                    .ok()
                    .and_then(|s| s.read_scalar::<i64>().ok())
                    .map_or(*id, |s| s as u64);
                episodes.push(Episode {
                    seed,
                    success,
                    observations,
                    actions,
                    rewards,
                    terminals,
                    timeouts,
                    frames: Vec::new(),
                });
            }
        }
        Layout::D4rl => {
            let root: &hdf5::Group = &file;
            let actions = matrix(&place, root, "actions", "", None, a, "the action length")?;
            let n = actions.len() / a;
            let observations = matrix(
                &place,
                root,
                "observations",
                "",
                Some(n),
                o,
                "observation.state length",
            )?;
            let next = if root.link_exists("next_observations") {
                Some(matrix(
                    &place,
                    root,
                    "next_observations",
                    "",
                    Some(n),
                    o,
                    "observation.state length",
                )?)
            } else {
                None
            };
            let rewards = matrix(&place, root, "rewards", "", Some(n), 1, "one per step")?;
            let terminals = flags(
                &place,
                matrix(&place, root, "terminals", "", Some(n), 1, "one per step")?,
                "terminals",
            )?;
            let timeouts = if root.link_exists("timeouts") {
                flags(
                    &place,
                    matrix(&place, root, "timeouts", "", Some(n), 1, "one per step")?,
                    "timeouts",
                )?
            } else {
                vec![false; n]
            };
            let mut start = 0;
            for end in 0..n {
                if !(terminals[end] || timeouts[end] || end + 1 == n) {
                    continue;
                }
                let row = |v: &[f64], i: usize, w: usize| v[i * w..(i + 1) * w].to_vec();
                let mut e = Episode::start(episodes.len() as u64, &row(&observations, start, o));
                match &next {
                    Some(nx) => {
                        for i in start..=end {
                            e.push(
                                &row(&actions, i, a),
                                rewards[i],
                                terminals[i],
                                timeouts[i],
                                &row(nx, i, o),
                            );
                        }
                    }
                    None => {
                        // Step `end` has no next observation: it is dropped, and the step
                        // before it becomes the cut.
                        dropped += 1;
                        for (i, reward) in rewards.iter().enumerate().take(end).skip(start) {
                            e.push(
                                &row(&actions, i, a),
                                *reward,
                                false,
                                i + 1 == end,
                                &row(&observations, i + 1, o),
                            );
                        }
                    }
                }
                if e.steps() > 0 {
                    episodes.push(e);
                }
                start = end + 1;
            }
        }
    }
    if episodes.is_empty() {
        anyhow::bail!("{}: no episodes with a step", file_path.display());
    }
    let info = rlrt_runtime::recording::DatasetInfo::describe(
        &config,
        &config_path,
        format!("imported ({layout:?} rewards)"),
        format!("imported from {}", file_path.display()),
        Vec::new(),
    );
    let mut writer = DatasetWriter::create(&args.out, info, &text)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let transitions = episodes.iter().map(Episode::steps).sum();
    for e in &episodes {
        writer.write(e)?;
    }
    Ok(ImportOutcome {
        file: file_path,
        config: config_said,
        layout,
        out: args.out.clone(),
        episodes: episodes.len(),
        transitions,
        dropped_transitions: dropped,
    })
}

/// A hw-config written from a dataset's own description of its spaces.
pub struct DerivedConfig {
    pub text: String,
    /// Where the description came from (for messages).
    pub from: String,
}

/// Box bounds of a Gymnasium space as Minari serialises it (`{"type": "Box", "shape": [..],
/// "low": [..], "high": [..], ...}`).
struct BoxSpace {
    shape: Vec<usize>,
    low: Vec<f64>,
    high: Vec<f64>,
}

fn box_space(json: &str, what: &str, from: &str) -> anyhow::Result<BoxSpace> {
    // Gymnasium writes infinite bounds as bare Infinity, which JSON lacks; only the shape
    // of such a space is used.
    let cleaned = json
        .replace("-Infinity", "\"-inf\"")
        .replace("Infinity", "\"inf\"")
        .replace("NaN", "\"nan\"");
    let v: serde_json::Value = serde_json::from_str(&cleaned)
        .map_err(|e| anyhow::anyhow!("{from}: {what}: not a serialised space: {e}"))?;
    let kind = v["type"].as_str().unwrap_or("?");
    anyhow::ensure!(
        kind == "Box",
        "{from}: {what} is a {kind} space; rlrt reads flat Box (vector) spaces: pass --config \
         with a hw-config that describes the data"
    );
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as usize)
                .collect()
        })
        .unwrap_or_default();
    let flat = |key: &str| -> Vec<f64> {
        fn walk(v: &serde_json::Value, out: &mut Vec<f64>) {
            match v {
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                serde_json::Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::String(s) if s == "inf" => out.push(f64::INFINITY),
                serde_json::Value::String(s) if s == "-inf" => out.push(f64::NEG_INFINITY),
                _ => out.push(f64::NAN),
            }
        }
        let mut out = Vec::new();
        walk(&v[key], &mut out);
        out
    };
    Ok(BoxSpace {
        shape,
        low: flat("low"),
        high: flat("high"),
    })
}

/// A hw-config for a dataset that describes its own spaces: Minari's `metadata.json` (beside
/// `main_data.hdf5`, Minari 0.5 and later) or the same keys as attributes of the HDF5 file
/// (earlier Minari). One joint per action value with the action space's bounds as effort
/// bounds (`action.mode = "joint_effort"`: Gymnasium's MuJoCo actions are motor controls),
/// one sensor holding the whole observation vector, no `[sim]` table (so `rlrt train` trains
/// offline with held-out diagnostics), and a control rate to set before deploying.
pub fn derived_config(file_path: &Path, file: &hdf5::File) -> anyhow::Result<DerivedConfig> {
    let metadata_path = file_path.with_file_name("metadata.json");
    let (fields, from): (serde_json::Map<String, serde_json::Value>, String) =
        if metadata_path.exists() {
            let text = std::fs::read_to_string(&metadata_path)
                .with_context(|| format!("reading {}", metadata_path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{}: line {}, column {}: {e}",
                    metadata_path.display(),
                    e.line(),
                    e.column()
                )
            })?;
            (
                v.as_object().cloned().unwrap_or_default(),
                metadata_path.display().to_string(),
            )
        } else {
            let mut map = serde_json::Map::new();
            for key in [
                "action_space",
                "observation_space",
                "env_spec",
                "dataset_id",
            ] {
                if let Ok(attr) = file.attr(key) {
                    if let Ok(s) = attr.read_scalar::<hdf5::types::VarLenUnicode>() {
                        map.insert(key.into(), s.as_str().into());
                    } else if let Ok(s) = attr.read_scalar::<hdf5::types::VarLenAscii>() {
                        map.insert(key.into(), s.as_str().into());
                    }
                }
            }
            (map, format!("the attributes of {}", file_path.display()))
        };
    let Some(action_json) = fields.get("action_space").and_then(|v| v.as_str()) else {
        anyhow::bail!(
            "{}: no description of its action space (Minari's metadata.json or action_space \
             attribute); pass --config with a hw-config whose observation and action sizes \
             match the file",
            file_path.display()
        );
    };
    let action = box_space(action_json, "action_space", &from)?;
    let a: usize = action.shape.iter().product();
    anyhow::ensure!(
        a > 0 && action.low.len() == a && action.high.len() == a,
        "{from}: action_space has shape {:?} with {} low and {} high bounds",
        action.shape,
        action.low.len(),
        action.high.len()
    );
    for j in 0..a {
        anyhow::ensure!(
            action.low[j].is_finite()
                && action.high[j].is_finite()
                && action.low[j] < action.high[j],
            "{from}: action_space bound {j} is [{}, {}]; rlrt needs finite bounds with low \
             below high to scale its actor's outputs: pass --config",
            action.low[j],
            action.high[j]
        );
    }
    let o = match fields.get("observation_space").and_then(|v| v.as_str()) {
        Some(json) => {
            let space = box_space(json, "observation_space", &from)?;
            anyhow::ensure!(
                space.shape.len() == 1,
                "{from}: observation_space has shape {:?}; rlrt reads flat observation vectors",
                space.shape
            );
            space.shape[0]
        }
        None => {
            anyhow::bail!(
                "{from}: no observation_space; pass --config with a hw-config that describes the \
                 observations"
            )
        }
    };
    let env_id = fields
        .get("env_spec")
        .and_then(|v| v.as_str())
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v["id"].as_str().map(str::to_owned));
    let dataset_id = fields
        .get("dataset_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let title = env_id
        .clone()
        .or(dataset_id.clone())
        .unwrap_or_else(|| "imported".into());
    let name: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "# Written by `rlrt import` from {from}\n\
         # (environment {env}, dataset {dataset}). The observation is one sensor holding the\n\
         # dataset's whole observation vector; each action value is a joint whose effort bounds\n\
         # are the action space's. No [sim] table: rlrt trains on this data offline, with\n\
         # diagnostics on held-out episodes. Set control_rate_hz, the limits and [link] before\n\
         # running a policy on a robot with it.\n\
         schema_version = 1\n\n\
         [robot]\n\
         name = {name:?}\n\
         kind = \"hardware\"\n\
         control_rate_hz = 50.0\n\
         description = {description:?}\n",
        env = env_id.as_deref().unwrap_or("not named"),
        dataset = dataset_id.as_deref().unwrap_or("not named"),
        description = format!("{title}, imported ({o} observation values, {a} actions)"),
    );
    for j in 0..a {
        let bound = action.low[j].abs().max(action.high[j].abs());
        text += &format!(
            "\n[[joints]]\nname = \"action_{j}\"\nposition_min_rad = -1e6\nposition_max_rad = 1e6\n\
             max_velocity_rad_s = 1e6\nmax_effort_nm = {bound:?}\n"
        );
    }
    text += &format!(
        "\n[observation]\nstate = [\"observation\"]\n\n[[observation.sensors]]\n\
         name = \"observation\"\nsize = {o}\n\n\
         [action]\nmode = \"joint_effort\"\nmin = [{}]\nmax = [{}]\n\n\
         [link]\nmode = \"peer\"\nkey_prefix = \"rlrt/{name}\"\n\n\
         [safety]\nstale_observation_timeout_ms = 100.0\nfault_action = \"zero_effort\"\n\n\
         [policy]\nkind = \"hold\"\n",
        list(&action.low),
        list(&action.high)
    );
    Ok(DerivedConfig { text, from })
}

/// `rlrt import`: converts and prints what was written.
pub fn execute(args: ImportArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    output.print(&run(&args)?)?;
    Ok(super::Exit::Success)
}
