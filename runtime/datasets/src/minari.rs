//! Offline-RL datasets made elsewhere, as rlrt datasets that `rlrt train`, `replay` and
//! `reward feedback` read (`rlrt import`).
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

use hdf5::types::TypeDescriptor;
use rlrt_runtime::config::ConfigError;
use rlrt_runtime::recording::{DatasetWriter, Episode, RecordingError};
use rlrt_runtime::RobotConfig;

/// Why a file could not be imported. Each names the file and what in it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: cannot open as HDF5", .0.display())]
    Open(PathBuf, #[source] hdf5::Error),
    #[error("{}: {what}", file.display())]
    Hdf5 {
        file: PathBuf,
        what: String,
        #[source]
        source: hdf5::Error,
    },
    #[error("{}: {what}: {problem}", file.display())]
    Data {
        file: PathBuf,
        what: String,
        problem: String,
    },
    #[error(
        "{}: neither Minari (episode_N groups) nor D4RL (observations, actions, ... at the \
         top) layout",
        .0.display()
    )]
    UnknownLayout(PathBuf),
    #[error("{}: no episodes with a step", .0.display())]
    NoEpisodes(PathBuf),
    #[error("the hw-config derived from {from}")]
    DerivedConfig {
        from: String,
        #[source]
        source: ConfigError,
    },
    #[error("writing {}", out.display())]
    Write {
        out: PathBuf,
        #[source]
        source: RecordingError,
    },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}, column {column}", path.display())]
    Metadata {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{from}: {what}: not a serialised space")]
    SpaceJson {
        from: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{from}: {problem}")]
    Space { from: String, problem: String },
}

/// A hw-config the caller chose for the data: parsed, its text (stored with the dataset) and
/// where it was read from.
pub struct GivenConfig {
    pub config: RobotConfig,
    pub text: String,
    pub path: PathBuf,
}

/// The layouts `rlrt import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    Minari,
    D4rl,
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
    /// A problem with the data at `what`.
    fn err(&self, what: &str, problem: impl std::fmt::Display) -> ImportError {
        ImportError::Data {
            file: self.file.to_owned(),
            what: what.to_owned(),
            problem: problem.to_string(),
        }
    }

    /// libhdf5 could not read `what`.
    fn hdf5<'a>(&'a self, what: &'a str) -> impl FnOnce(hdf5::Error) -> ImportError + 'a {
        move |source| ImportError::Hdf5 {
            file: self.file.to_owned(),
            what: what.to_owned(),
            source,
        }
    }
}

/// A dataset's values as f64, with its shape.
fn read(
    place: &Place<'_>,
    ds: &hdf5::Dataset,
    what: &str,
) -> Result<(Vec<f64>, Vec<usize>), ImportError> {
    let shape = ds.shape();
    let dtype = ds.dtype().map_err(place.hdf5(what))?;
    let descriptor = dtype.to_descriptor().map_err(place.hdf5(what))?;
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
    .map_err(place.hdf5(what))?;
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
) -> Result<Vec<f64>, ImportError> {
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

fn flags(place: &Place<'_>, values: Vec<f64>, what: &str) -> Result<Vec<bool>, ImportError> {
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

/// Imports the Minari or D4RL file at `source` (a Minari dataset folder or an HDF5 file)
/// into a new rlrt dataset at `out`. Without a `config`, one is written from the dataset's
/// own description of its spaces ([`derived_config`]).
pub fn import(
    source: &Path,
    config: Option<GivenConfig>,
    out: &Path,
) -> Result<ImportOutcome, ImportError> {
    let file_path = hdf5_file(source);
    let place = Place { file: &file_path };
    let file = hdf5::File::open(&file_path).map_err(|e| ImportError::Open(file_path.clone(), e))?;
    let (given, config_said) = match config {
        Some(given) => {
            let said = given.path.display().to_string();
            (given, said)
        }
        None => {
            let derived = derived_config(&file_path, &file)?;
            // Parsed as if it sat in the new dataset's folder (where it is stored).
            let path = out.join("config.toml");
            let config = rlrt_runtime::config::parse(&derived.text, &path).map_err(|source| {
                ImportError::DerivedConfig {
                    from: derived.from.clone(),
                    source,
                }
            })?;
            let said = format!("derived from {}", derived.from);
            (
                GivenConfig {
                    config,
                    text: derived.text,
                    path,
                },
                said,
            )
        }
    };
    let config = &given.config;
    let sizes = (config.observation.feature_len, config.action.len());
    let mut episode_names: Vec<(u64, String)> = file
        .member_names()
        .map_err(place.hdf5("/"))?
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
        return Err(ImportError::UnknownLayout(file_path));
    };
    let (episodes, dropped) = match layout {
        Layout::Minari => (read_minari(&place, &file, &episode_names, sizes)?, 0),
        Layout::D4rl => read_d4rl(&place, &file, sizes)?,
    };
    if episodes.is_empty() {
        return Err(ImportError::NoEpisodes(file_path));
    }
    let info = rlrt_runtime::recording::DatasetInfo::describe(
        config,
        &given.path,
        format!("imported ({layout:?} rewards)"),
        format!("imported from {}", file_path.display()),
        Vec::new(),
    );
    let write = |source| ImportError::Write {
        out: out.to_owned(),
        source,
    };
    let mut writer = DatasetWriter::create(out, info, &given.text).map_err(write)?;
    let transitions = episodes.iter().map(Episode::steps).sum();
    for e in &episodes {
        writer.write(e).map_err(write)?;
    }
    Ok(ImportOutcome {
        file: file_path,
        config: config_said,
        layout,
        out: out.to_owned(),
        episodes: episodes.len(),
        transitions,
        dropped_transitions: dropped,
    })
}

/// Minari's layout: one group per episode.
fn read_minari(
    place: &Place<'_>,
    file: &hdf5::File,
    episode_names: &[(u64, String)],
    (o, a): (usize, usize),
) -> Result<Vec<Episode>, ImportError> {
    let mut episodes = Vec::new();
    for (id, name) in episode_names {
        let g = file.group(name).map_err(place.hdf5(name))?;
        let actions = matrix(place, &g, "actions", name, None, a, "the action length")?;
        let t = actions.len() / a;
        let observations = matrix(
            place,
            &g,
            "observations",
            name,
            Some(t + 1),
            o,
            "observation.state length",
        )?;
        let rewards = matrix(place, &g, "rewards", name, Some(t), 1, "one per step")?;
        let flag = |n: &str| -> Result<Vec<bool>, ImportError> {
            let v = matrix(place, &g, n, name, Some(t), 1, "one per step")?;
            flags(place, v, &format!("{name}/{n}"))
        };
        let (terminals, timeouts) = (flag("terminations")?, flag("truncations")?);
        let success = if g.link_exists("infos") {
            let infos = g.group("infos").map_err(place.hdf5(name))?;
            if infos.link_exists("success") {
                let v = matrix(
                    place,
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
    Ok(episodes)
}

/// D4RL's layout: flat arrays, episodes cut at every terminal or timeout. Also returns how
/// many transitions were dropped (no next observation).
fn read_d4rl(
    place: &Place<'_>,
    file: &hdf5::File,
    (o, a): (usize, usize),
) -> Result<(Vec<Episode>, usize), ImportError> {
    let mut episodes = Vec::new();
    let mut dropped = 0;
    let root: &hdf5::Group = file;
    let actions = matrix(place, root, "actions", "", None, a, "the action length")?;
    let n = actions.len() / a;
    let observations = matrix(
        place,
        root,
        "observations",
        "",
        Some(n),
        o,
        "observation.state length",
    )?;
    let next = if root.link_exists("next_observations") {
        Some(matrix(
            place,
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
    let rewards = matrix(place, root, "rewards", "", Some(n), 1, "one per step")?;
    let terminals = flags(
        place,
        matrix(place, root, "terminals", "", Some(n), 1, "one per step")?,
        "terminals",
    )?;
    let timeouts = if root.link_exists("timeouts") {
        flags(
            place,
            matrix(place, root, "timeouts", "", Some(n), 1, "one per step")?,
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
    Ok((episodes, dropped))
}

/// A hw-config written from a dataset's own description of its spaces.
pub struct DerivedConfig {
    pub text: String,
    /// Where the description came from (for messages).
    pub from: String,
}

fn space(from: &str, problem: String) -> ImportError {
    ImportError::Space {
        from: from.to_owned(),
        problem,
    }
}

/// Box bounds of a Gymnasium space as Minari serialises it (`{"type": "Box", "shape": [..],
/// "low": [..], "high": [..], ...}`).
struct BoxSpace {
    shape: Vec<usize>,
    low: Vec<f64>,
    high: Vec<f64>,
}

fn box_space(json: &str, what: &'static str, from: &str) -> Result<BoxSpace, ImportError> {
    // Gymnasium writes infinite bounds as bare Infinity, which JSON lacks; only the shape
    // of such a space is used.
    let cleaned = json
        .replace("-Infinity", "\"-inf\"")
        .replace("Infinity", "\"inf\"")
        .replace("NaN", "\"nan\"");
    let v: serde_json::Value =
        serde_json::from_str(&cleaned).map_err(|source| ImportError::SpaceJson {
            from: from.to_owned(),
            what,
            source,
        })?;
    let kind = v["type"].as_str().unwrap_or("?");
    if kind != "Box" {
        return Err(space(
            from,
            format!(
                "{what} is a {kind} space; rlrt reads flat Box (vector) spaces: pass --config \
                 with a hw-config that describes the data"
            ),
        ));
    }
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
pub fn derived_config(file_path: &Path, file: &hdf5::File) -> Result<DerivedConfig, ImportError> {
    let metadata_path = file_path.with_file_name("metadata.json");
    let (fields, from): (serde_json::Map<String, serde_json::Value>, String) = if metadata_path
        .exists()
    {
        let text = std::fs::read_to_string(&metadata_path).map_err(|source| ImportError::Read {
            path: metadata_path.clone(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ImportError::Metadata {
                path: metadata_path.clone(),
                line: source.line(),
                column: source.column(),
                source,
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
        return Err(space(
            &file_path.display().to_string(),
            "no description of its action space (Minari's metadata.json or action_space \
             attribute); pass --config with a hw-config whose observation and action sizes \
             match the file"
                .into(),
        ));
    };
    let action = box_space(action_json, "action_space", &from)?;
    let a: usize = action.shape.iter().product();
    if a == 0 || action.low.len() != a || action.high.len() != a {
        return Err(space(
            &from,
            format!(
                "action_space has shape {:?} with {} low and {} high bounds",
                action.shape,
                action.low.len(),
                action.high.len()
            ),
        ));
    }
    for j in 0..a {
        let (low, high) = (action.low[j], action.high[j]);
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(space(
                &from,
                format!(
                    "action_space bound {j} is [{low}, {high}]; rlrt needs finite bounds with \
                     low below high to scale its actor's outputs: pass --config"
                ),
            ));
        }
    }
    let o = match fields.get("observation_space").and_then(|v| v.as_str()) {
        Some(json) => {
            let space = box_space(json, "observation_space", &from)?;
            if space.shape.len() != 1 {
                return Err(self::space(
                    &from,
                    format!(
                        "observation_space has shape {:?}; rlrt reads flat observation vectors",
                        space.shape
                    ),
                ));
            }
            space.shape[0]
        }
        None => {
            return Err(space(
                &from,
                "no observation_space; pass --config with a hw-config that describes the \
                 observations"
                    .into(),
            ))
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
