//! Offline reward pipelines on recorded datasets, each a function of a plain input struct
//! that returns an outcome (printed with `Display`, serialised for `--json`) or a typed
//! error; the command line only turns flags into those structs:
//!
//! - [`relabel`] (`rlrt relabel`): a dataset written again with every step's reward from a
//!   reward program, a frame source of its config (CLIP, classifier, reward model) or an ONNX
//!   reward model file, or from an ensemble of several, with a report of where they disagree.
//! - [`labelling`] (`rlrt reward label-pairs`): pairs of recorded frames labelled with a
//!   preference by a vision-language model or by the recorded task scores, appended to a
//!   JSON-lines file.
//! - [`training`] (`rlrt reward train-classifier`, `train-preferences`): a success classifier
//!   on a camera's frames, and a Bradley-Terry reward model on preference labels, each
//!   validated on held-out episodes, exported to ONNX and checked with ONNX Runtime.
//!
//! What they share is here: the camera a pipeline reads ([`pick_camera`], [`camera_spec`]),
//! the hw-config a dataset's steps are read with ([`dataset_config`]), reward programs
//! checked against what a dataset recorded ([`checked_program`]) and the success gap
//! ([`mean_where`]); `rlrt replay` uses the last three too.

pub mod labelling;
pub mod relabel;
pub mod training;

use std::path::{Path, PathBuf};

use rlrt_runtime::config::{CameraSpec, ConfigError, ImageEncoding};
use rlrt_runtime::recording::{CameraInfo, Dataset};
use rlrt_runtime::{FeatureBuilder, RobotConfig};

use crate::program::{
    check_file, CheckOptions, Environment, EnvironmentError, Limits, ProgramError, RewardProgram,
};

/// The camera a pipeline was asked for cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error(
        "{}: recorded without camera frames; record with `rlrt record --frames`",
        data.display()
    )]
    NoFrames { data: PathBuf },
    #[error("camera {name:?}: {} has {has:?}", data.display())]
    Unknown {
        data: PathBuf,
        name: String,
        has: Vec<String>,
    },
    #[error("{} has several cameras ({has:?}); pick one with --camera", data.display())]
    Several { data: PathBuf, has: Vec<String> },
    #[error("camera {camera:?} recorded {encoding} frames; image models read rgb8 or mono8")]
    Encoding { camera: String, encoding: String },
}

/// The hw-config a dataset's steps are read with cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatasetConfigError {
    #[error("reading {} with --config", data.display())]
    Given {
        data: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("the config saved in {}", data.display())]
    Saved {
        data: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error(
        "{}: the dataset holds {} observation and {} action values per step, the config {} \
         describes {} and {}",
        data.display(),
        recorded.0,
        recorded.1,
        config.display(),
        described.0,
        described.1
    )]
    Sizes {
        data: PathBuf,
        config: PathBuf,
        /// Observation and action values per step.
        recorded: (usize, usize),
        described: (usize, usize),
    },
}

/// A reward program cannot score a dataset.
#[derive(Debug, thiserror::Error)]
pub enum ProgramCheckError {
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    #[error("checking reward program {name:?} against {}", config.display())]
    Invalid {
        name: String,
        config: PathBuf,
        #[source]
        source: ProgramError,
    },
    #[error(
        "reward program {name} ({}) reads {missing:?}, which {} did not record (it holds \
         {recorded:?})",
        path.display(),
        data.display()
    )]
    Unrecorded {
        name: String,
        path: PathBuf,
        missing: Vec<String>,
        data: PathBuf,
        recorded: Vec<String>,
    },
}

/// The camera of `dataset` (read from `data`) named `camera`, or its only one, with its
/// index among the recorded cameras.
pub fn pick_camera<'a>(
    data: &Path,
    dataset: &'a Dataset,
    camera: Option<&str>,
) -> Result<(usize, &'a CameraInfo), CameraError> {
    let cameras = &dataset.info.cameras;
    if cameras.is_empty() {
        return Err(CameraError::NoFrames {
            data: data.to_path_buf(),
        });
    }
    let names = || cameras.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let index = match camera {
        Some(name) => {
            cameras
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| CameraError::Unknown {
                    data: data.to_path_buf(),
                    name: name.to_owned(),
                    has: names(),
                })?
        }
        None if cameras.len() == 1 => 0,
        None => {
            return Err(CameraError::Several {
                data: data.to_path_buf(),
                has: names(),
            })
        }
    };
    Ok((index, &cameras[index]))
}

/// The camera an image model of `camera`'s recorded frames is loaded for.
pub fn camera_spec(camera: &CameraInfo) -> Result<CameraSpec, CameraError> {
    let encoding = match camera.encoding.as_str() {
        "rgb8" => ImageEncoding::Rgb8,
        "mono8" => ImageEncoding::Mono8,
        other => {
            return Err(CameraError::Encoding {
                camera: camera.name.clone(),
                encoding: other.to_owned(),
            })
        }
    };
    Ok(CameraSpec {
        name: camera.name.clone(),
        width: camera.width,
        height: camera.height,
        rate_hz: camera.rate_hz,
        encoding,
    })
}

/// The hw-config the steps of `dataset` (read from `data`) are read with: `config`, or the
/// one saved with the dataset; it must describe the dataset's observation and action sizes.
pub fn dataset_config(
    data: &Path,
    dataset: &Dataset,
    config: Option<&Path>,
) -> Result<(RobotConfig, FeatureBuilder), DatasetConfigError> {
    let config = match config {
        Some(path) => {
            rlrt_runtime::config::load(path).map_err(|source| DatasetConfigError::Given {
                data: data.to_path_buf(),
                source,
            })?
        }
        None => rlrt_runtime::config::parse(
            &dataset.config_text,
            &PathBuf::from(&dataset.info.config_source),
        )
        .map_err(|source| DatasetConfigError::Saved {
            data: data.to_path_buf(),
            source,
        })?,
    };
    let features = FeatureBuilder::new(&config);
    let recorded = (dataset.info.observation_len, dataset.info.action_len);
    let described = (features.len(), config.action.len());
    if recorded != described {
        return Err(DatasetConfigError::Sizes {
            data: data.to_path_buf(),
            config: config.source.clone(),
            recorded,
            described,
        });
    }
    Ok((config, features))
}

/// Checks the reward program in `path` (called `name`) against `config` (compile, names,
/// dry run) and that it reads only what `dataset` (read from `data`) recorded.
pub fn checked_program(
    name: &str,
    path: &Path,
    config: &RobotConfig,
    data: &Path,
    dataset: &Dataset,
) -> Result<RewardProgram, ProgramCheckError> {
    let env = Environment::from_config(config)?;
    let (program, _) = check_file(&env, path, &Limits::default(), &CheckOptions::default())
        .map_err(|source| ProgramCheckError::Invalid {
            name: name.to_owned(),
            config: config.source.clone(),
            source,
        })?;
    let allowed = replayable(dataset);
    let missing: Vec<String> = program
        .fields_read()
        .into_iter()
        .filter(|f| !allowed.iter().any(|a| a == f))
        .map(str::to_owned)
        .collect();
    if !missing.is_empty() {
        return Err(ProgramCheckError::Unrecorded {
            name: name.to_owned(),
            path: path.to_path_buf(),
            missing,
            data: data.to_path_buf(),
            recorded: dataset.info.observation_fields.clone(),
        });
    }
    Ok(program)
}

/// Mean of the episode `returns` whose success flag equals `want` (all when `None`); `None`
/// when no episode qualifies. The success gap of a reward is
/// `mean_where(.., Some(true)) - mean_where(.., Some(false))` ([`success_gap`]).
pub fn mean_where(returns: &[f64], successes: &[bool], want: Option<bool>) -> Option<f64> {
    let picked: Vec<f64> = returns
        .iter()
        .zip(successes)
        .filter(|(_, ok)| want.is_none_or(|w| **ok == w))
        .map(|(r, _)| *r)
        .collect();
    (!picked.is_empty()).then(|| picked.iter().sum::<f64>() / picked.len() as f64)
}

/// Mean return of the successful episodes minus that of the failed ones (`None` when either
/// group is empty): how well a reward separates what the task's own success test separates.
pub fn success_gap(returns: &[f64], successes: &[bool]) -> Option<f64> {
    mean_where(returns, successes, Some(true))
        .zip(mean_where(returns, successes, Some(false)))
        .map(|(a, b)| a - b)
}

/// Names a program may read from a replayed state: the recorded observation fields and
/// what is derived from the config or the actions.
fn replayable(dataset: &Dataset) -> Vec<String> {
    let mut names: Vec<String> = dataset
        .info
        .observation_fields
        .iter()
        .map(|n| n.replace('-', "_"))
        .collect();
    names.extend(
        [
            "joint_position_min",
            "joint_position_max",
            "previous_action",
            "dt",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    names
}
