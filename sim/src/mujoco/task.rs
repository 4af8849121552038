//! Task files: a small TOML file that turns any MJCF model into an rlrt simulation task
//! (which model, start state, reset distribution, named sensors, success test). The keys
//! are documented in `sim/tasks/README.md`; the shipped tasks are examples.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A task file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFile {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// MJCF file, relative to the task file.
    pub model: String,
    #[serde(default)]
    pub keyframe: Option<String>,
    #[serde(default = "default_episode_seconds")]
    pub episode_seconds: f64,
    #[serde(default)]
    pub end_effector: Option<EndEffector>,
    #[serde(default)]
    pub reset: Reset,
    #[serde(default)]
    pub sensors: Vec<Sensor>,
    pub success: Success,
}

fn default_episode_seconds() -> f64 {
    5.0
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
    #[serde(default)]
    pub x: Option<[f64; 2]>,
    #[serde(default)]
    pub y: Option<[f64; 2]>,
    #[serde(default)]
    pub z: Option<[f64; 2]>,
    #[serde(default)]
    pub away_from: Option<String>,
    #[serde(default)]
    pub min_distance_m: Option<f64>,
}

/// A point of the model: a site or a body origin.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointRef {
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
}

/// A named 3-vector sensor: the world position of a site or body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    pub name: String,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
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
    #[error("reading task file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("unknown built-in task {0:?}; built-in tasks: {list}", list = BUILTIN_NAMES.join(", "))]
    UnknownBuiltin(String),
}

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

pub const BUILTIN_NAMES: [&str; 2] = ["reach", "push"];

impl TaskSource {
    /// One of the built-in tasks by name.
    pub fn builtin(name: &str) -> Result<Self, TaskError> {
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
        let model = ModelSource::Path(dir.join(&file.model));
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

    pub(crate) fn invalid(&self, message: impl Into<String>) -> TaskError {
        TaskError::Invalid {
            origin: self.origin.clone(),
            message: message.into(),
        }
    }
}

fn parse(text: &str, origin: &str) -> Result<TaskFile, TaskError> {
    let file: TaskFile = toml::from_str(text).map_err(|e| TaskError::Invalid {
        origin: origin.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let fail = |message: String| {
        Err(TaskError::Invalid {
            origin: origin.to_owned(),
            message,
        })
    };
    if !(file.episode_seconds > 0.0 && file.episode_seconds.is_finite()) {
        return fail(format!(
            "`episode_seconds`: got {}, expected a positive number of seconds",
            file.episode_seconds
        ));
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
    for (key, point) in [
        ("success.from", &file.success.from),
        ("success.to", &file.success.to),
    ] {
        if point.site.is_some() == point.body.is_some() {
            return fail(format!("`{key}`: give exactly one of site or body"));
        }
    }
    if !(file.success.below_m > 0.0 && file.success.below_m.is_finite()) {
        return fail(format!(
            "`success.below_m`: got {}, expected a positive distance in m",
            file.success.below_m
        ));
    }
    Ok(file)
}
