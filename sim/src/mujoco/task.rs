//! Task files: a small TOML file that turns any MJCF model into an rlrt simulation task
//! (which model, start state, reset distribution, named sensors, success test). The keys
//! are documented in `sim/tasks/README.md`; the shipped tasks are examples.

use std::path::{Path, PathBuf};

use mujoco_rs::error::MjModelError;
use serde::Deserialize;

use super::gymnasium::{self, GymEnv};

/// A task file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub name: String,
    pub description: Option<String>,
    /// MJCF file, relative to the task file (absent for Gymnasium tasks: their model comes
    /// from the installed gymnasium package).
    pub model: Option<String>,
    pub keyframe: Option<String>,
    /// Episode length; default 5 s (Gymnasium tasks: 1000 control steps, not settable).
    pub episode_seconds: Option<f64>,
    pub end_effector: Option<EndEffector>,
    #[serde(default)]
    pub reset: Reset,
    #[serde(default)]
    pub sensors: Vec<Sensor>,
    /// The ground-truth success test (absent for Gymnasium tasks, which have rewards and
    /// terminations instead).
    pub success: Option<Success>,
    /// One of Gymnasium's MuJoCo locomotion tasks: its model, observation, reward,
    /// termination and reset distribution (see `gymnasium.rs`).
    pub gymnasium: Option<GymnasiumTask>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GymnasiumTask {
    pub env: GymEnv,
}

const DEFAULT_EPISODE_SECONDS: f64 = 5.0;

impl TaskFile {
    /// The episode length in s at a control period of `period_s`: Gymnasium's episode
    /// length in control steps for its tasks, else `episode_seconds` (default 5 s).
    pub fn episode_seconds(&self, period_s: f64) -> f64 {
        match &self.gymnasium {
            Some(gym) => gym.env.episode_steps() as f64 * period_s,
            None => self.episode_seconds.unwrap_or(DEFAULT_EPISODE_SECONDS),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndEffector {
    pub site: String,
    #[serde(default = "default_damping")]
    pub damping: f64,
}

fn default_damping() -> f64 {
    0.05
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reset {
    #[serde(default)]
    pub joint_noise_rad: f64,
    #[serde(default)]
    pub place: Vec<Place>,
}

/// Draws a body's position uniformly in a box (axes left out keep their value).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    pub body: String,
    pub x: Option<[f64; 2]>,
    pub y: Option<[f64; 2]>,
    pub z: Option<[f64; 2]>,
    pub away_from: Option<String>,
    pub min_distance_m: Option<f64>,
}

/// A point of the model: a site or a body origin.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointRef {
    pub site: Option<String>,
    pub body: Option<String>,
}

/// A named 3-vector sensor: the world position of a site or body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    pub name: String,
    pub site: Option<String>,
    pub body: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Axes {
    Xyz,
    Xy,
}

/// Success: the distance between two points, over the given axes, below a threshold.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Success {
    pub from: PointRef,
    pub to: PointRef,
    #[serde(default = "default_axes")]
    pub axes: Axes,
    pub below_m: f64,
}

fn default_axes() -> Axes {
    Axes::Xyz
}

/// Where a task comes from: a file, or one of the tasks built into this binary.
#[derive(Clone, Debug)]
pub struct TaskSource {
    /// The task file's path (for messages), or `builtin:<name>`.
    pub origin: String,
    pub file: TaskFile,
    /// The MJCF: its path, or its text for built-in tasks.
    pub model: ModelSource,
}

#[derive(Clone, Debug)]
pub enum ModelSource {
    Path(PathBuf),
    Text {
        name: &'static str,
        xml: &'static str,
    },
}

/// Why a task could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{origin}: not a task file")]
    Toml {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "{origin}: camera {camera:?}: cannot render offscreen; rendering needs EGL (Debian: \
         libegl1 libgl1-mesa-dri), or run without cameras"
    )]
    Offscreen {
        origin: String,
        camera: String,
        #[source]
        source: mujoco_rs::renderer::RendererError,
    },
    #[error("{origin}: `model`: MuJoCo cannot load {model}")]
    Model {
        origin: String,
        model: String,
        #[source]
        source: mujoco_rs::error::MjModelError,
    },
    #[error("reading task file {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unknown built-in task {0:?}; built-in tasks: {list}", list = BUILTIN_NAMES.join(", "))]
    UnknownBuiltin(String),
}

/// Gymnasium's tasks, by the names rlrt gives them (their models come from the installed
/// gymnasium package).
const GYMNASIUM_BUILTIN: [(&str, GymEnv); 3] = [
    ("hopper", GymEnv::Hopper),
    ("walker2d", GymEnv::Walker2d),
    ("half_cheetah", GymEnv::HalfCheetah),
];

/// The tasks shipped with rlrt: (name, task file, model file name, MJCF text).
const BUILTIN: [(&str, &str, &str, &str); 2] = [
    (
        "reach",
        include_str!("../../tasks/reach.toml"),
        "reach.xml",
        include_str!("../../tasks/reach.xml"),
    ),
    (
        "push",
        include_str!("../../tasks/push.toml"),
        "push.xml",
        include_str!("../../tasks/push.xml"),
    ),
];

pub const BUILTIN_NAMES: [&str; 5] = ["reach", "push", "hopper", "walker2d", "half_cheetah"];

impl TaskSource {
    /// One of the built-in tasks by name.
    pub fn builtin(name: &str) -> Result<Self, TaskError> {
        if let Some((_, env)) = GYMNASIUM_BUILTIN.iter().find(|(n, _)| *n == name) {
            let origin = format!("builtin:{name}");
            let file = TaskFile {
                name: name.to_owned(),
                description: Some(format!("Gymnasium's {}", env.id())),
                model: None,
                keyframe: None,
                episode_seconds: None,
                end_effector: None,
                reset: Reset::default(),
                sensors: Vec::new(),
                success: None,
                gymnasium: Some(GymnasiumTask { env: *env }),
            };
            let model = gymnasium_model(*env, &origin)?;
            return Ok(Self {
                origin,
                file,
                model,
            });
        }
        let (_, text, model_name, xml) = BUILTIN
            .iter()
            .find(|(n, ..)| *n == name)
            .ok_or_else(|| TaskError::UnknownBuiltin(name.to_owned()))?;
        let origin = format!("builtin:{name}");
        let file = parse(text, &origin)?;
        Ok(Self {
            origin,
            file,
            model: ModelSource::Text {
                name: model_name,
                xml,
            },
        })
    }

    /// A task file; its model path is resolved against the file's folder.
    pub fn from_path(path: &Path) -> Result<Self, TaskError> {
        let text = std::fs::read_to_string(path).map_err(|source| TaskError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let origin = path.display().to_string();
        let file = parse(&text, &origin)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let model = match (&file.model, &file.gymnasium) {
            (Some(model), None) => ModelSource::Path(dir.join(model)),
            (None, Some(gym)) => gymnasium_model(gym.env, &origin)?,
            _ => unreachable!("parse checks that exactly one of model and gymnasium is given"),
        };
        Ok(Self {
            origin,
            file,
            model,
        })
    }

    /// A built-in name, or a path when `path` is given (as the hw-config's `[sim]` says).
    pub fn resolve(task: &str, path: Option<&Path>) -> Result<Self, TaskError> {
        match path {
            Some(p) => Self::from_path(p),
            None => Self::builtin(task),
        }
    }

    pub(crate) fn unloadable(&self, model: String, source: MjModelError) -> TaskError {
        TaskError::Model {
            origin: self.origin.clone(),
            model,
            source,
        }
    }

    pub(crate) fn invalid(&self, message: impl Into<String>) -> TaskError {
        TaskError::Invalid {
            origin: self.origin.clone(),
            message: message.into(),
        }
    }
}

/// Gymnasium's model file of `env`, from the installed package.
fn gymnasium_model(env: GymEnv, origin: &str) -> Result<ModelSource, TaskError> {
    let dir = gymnasium::assets_dir().map_err(|message| TaskError::Invalid {
        origin: origin.to_owned(),
        message: format!("{}: {message}", env.id()),
    })?;
    Ok(ModelSource::Path(dir.join(env.xml())))
}

fn parse(text: &str, origin: &str) -> Result<TaskFile, TaskError> {
    let file: TaskFile = toml::from_str(text).map_err(|source| TaskError::Toml {
        origin: origin.to_owned(),
        source,
    })?;
    let fail = |message: String| {
        Err(TaskError::Invalid {
            origin: origin.to_owned(),
            message,
        })
    };
    if file.gymnasium.is_some() {
        for (key, given) in [
            ("model", file.model.is_some()),
            ("success", file.success.is_some()),
            ("episode_seconds", file.episode_seconds.is_some()),
            ("keyframe", file.keyframe.is_some()),
            ("end_effector", file.end_effector.is_some()),
            (
                "reset",
                file.reset.joint_noise_rad != 0.0 || !file.reset.place.is_empty(),
            ),
        ] {
            if given {
                return fail(format!(
                    "`{key}` does not go with [gymnasium]: the environment defines its model, \
                     reset, rewards, terminations and episode length (1000 steps)"
                ));
            }
        }
    } else {
        if file.model.is_none() {
            return fail("missing `model` (the MJCF file, relative to the task file)".into());
        }
        if file.success.is_none() {
            return fail("missing [success] (the ground-truth success test)".into());
        }
    }
    if let Some(seconds) = file.episode_seconds {
        if !(seconds > 0.0 && seconds.is_finite()) {
            return fail(format!(
                "`episode_seconds`: got {seconds}, expected a positive number of seconds"
            ));
        }
    }
    if !(file.reset.joint_noise_rad >= 0.0 && file.reset.joint_noise_rad.is_finite()) {
        return fail(format!(
            "`reset.joint_noise_rad`: got {}, expected a finite value >= 0",
            file.reset.joint_noise_rad
        ));
    }
    if let Some(ee) = &file.end_effector {
        if !(ee.damping > 0.0 && ee.damping.is_finite()) {
            return fail(format!(
                "`end_effector.damping`: got {}, expected a positive value",
                ee.damping
            ));
        }
    }
    for (i, place) in file.reset.place.iter().enumerate() {
        for (axis, range) in [("x", place.x), ("y", place.y), ("z", place.z)] {
            if let Some([lo, hi]) = range {
                if !(lo <= hi && lo.is_finite() && hi.is_finite()) {
                    return fail(format!(
                        "`reset.place[{i}].{axis}`: got [{lo}, {hi}], expected [min, max] with min <= max"
                    ));
                }
            }
        }
        if place.away_from.is_some() != place.min_distance_m.is_some() {
            return fail(format!(
                "`reset.place[{i}]`: away_from and min_distance_m go together"
            ));
        }
    }
    for (i, sensor) in file.sensors.iter().enumerate() {
        if sensor.site.is_some() == sensor.body.is_some() {
            return fail(format!(
                "`sensors[{i}]` ({:?}): give exactly one of site or body",
                sensor.name
            ));
        }
    }
    if let Some(success) = &file.success {
        for (key, point) in [("success.from", &success.from), ("success.to", &success.to)] {
            if point.site.is_some() == point.body.is_some() {
                return fail(format!("`{key}`: give exactly one of site or body"));
            }
        }
        if !(success.below_m > 0.0 && success.below_m.is_finite()) {
            return fail(format!(
                "`success.below_m`: got {}, expected a positive distance in m",
                success.below_m
            ));
        }
    }
    Ok(file)
}
