//! hw-configs: the TOML description of a robot (real or simulated) and its validation.
//!
//! A file is parsed into the raw schema (`schema.rs`, unknown keys rejected), then validated
//! into [`RobotConfig`]. Only a `RobotConfig` reaches the control loop, so an unchecked value
//! never does. Every error names the file, the line and column, and the key path.

mod schema;
mod source_map;
mod validate;

use std::path::{Path, PathBuf};

pub use schema::{
    ActionMode, FaultAction, FrameResize, ImageEncoding, LinkFlavour, LinkMode, PolicyKind,
    RewardKind, RobotKind,
};
pub use source_map::{render_problems, KeyPath, PathSegment, SourceMap};

/// Most joints a robot may have; fixed so that ticks never allocate.
pub const MAX_JOINTS: usize = 32;
/// Most action values (joint count, or an end-effector displacement plus gripper).
pub const MAX_ACTION: usize = MAX_JOINTS;
/// Most values of extra named sensors in one observation, all sensors together.
pub const MAX_SENSOR_VALUES: usize = 64;
/// Version of the schema this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A validated robot description; the only config type the runtime accepts.
#[derive(Clone, Debug)]
pub struct RobotConfig {
    /// File the config came from (for messages and for saving beside checkpoints).
    pub source: PathBuf,
    pub name: String,
    pub kind: RobotKind,
    pub description: Option<String>,
    pub control_rate_hz: f64,
    pub joints: Vec<JointLimits>,
    pub observation: ObservationSpec,
    pub action: ActionSpec,
    pub link: LinkConfig,
    pub safety: SafetyConfig,
    pub policy: PolicyConfig,
    pub rewards: Vec<RewardSourceConfig>,
    pub scheduler: SchedulerConfig,
    /// How `rlrt sim` simulates this robot, if the config says.
    pub sim: Option<SimConfig>,
}

/// The `[sim]` table: which simulation task plays this robot.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// As written: a built-in task name (such as `reach`) or a task file path.
    pub task: String,
    /// The task file, resolved against the config's folder, when `task` names a file
    /// (it contains a `/` or ends in `.toml`).
    pub task_path: Option<PathBuf>,
}

impl RobotConfig {
    /// The names of `observation.state`'s fields, in order: `joint_positions`,
    /// `joint_velocities`, `joint_efforts` or a sensor's name.
    pub fn observation_field_names(&self) -> Vec<String> {
        self.observation
            .fields
            .iter()
            .map(|f| match &f.source {
                FieldSource::JointPositions => "joint_positions".to_owned(),
                FieldSource::JointVelocities => "joint_velocities".to_owned(),
                FieldSource::JointEfforts => "joint_efforts".to_owned(),
                FieldSource::Sensor(i) => self.observation.sensors[*i].name.clone(),
            })
            .collect()
    }

    /// Tick period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        (1e9 / self.control_rate_hz).round() as u64
    }

    /// Tick period in seconds.
    pub fn period_s(&self) -> f64 {
        1.0 / self.control_rate_hz
    }

    pub fn dof(&self) -> usize {
        self.joints.len()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct JointLimits {
    pub name: String,
    pub position_min_rad: f64,
    pub position_max_rad: f64,
    pub max_velocity_rad_s: f64,
    pub max_effort_nm: f64,
}

/// Where each observation field sits in the flat feature vector a policy reads.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservationSpec {
    pub fields: Vec<ObservationField>,
    pub sensors: Vec<SensorSpec>,
    pub cameras: Vec<CameraSpec>,
    /// Length of the flat feature vector.
    pub feature_len: usize,
    /// Total values of all extra sensors, in declaration order.
    pub sensor_values: usize,
}

impl ObservationSpec {
    /// Offset of a field in the feature vector, if the policy observes it.
    pub fn offset_of(&self, source: &FieldSource) -> Option<usize> {
        self.fields
            .iter()
            .find(|f| &f.source == source)
            .map(|f| f.offset)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservationField {
    pub source: FieldSource,
    pub offset: usize,
    pub len: usize,
}

/// Which part of the robot state a feature comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldSource {
    JointPositions,
    JointVelocities,
    JointEfforts,
    /// An extra sensor: index into [`ObservationSpec::sensors`].
    Sensor(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SensorSpec {
    pub name: String,
    pub size: usize,
    /// Offset into the observation's sensor values.
    pub offset: usize,
    pub unit: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CameraSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub rate_hz: f64,
    pub encoding: ImageEncoding,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActionSpec {
    pub mode: ActionMode,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub max_delta_per_tick: Vec<f64>,
}

impl ActionSpec {
    pub fn len(&self) -> usize {
        self.min.len()
    }

    pub fn is_empty(&self) -> bool {
        self.min.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    pub mode: LinkMode,
    pub connect: Vec<String>,
    pub listen: Vec<String>,
    pub key_prefix: String,
    /// zenoh shared memory on this session: camera frames are published from shared memory
    /// and received without a network copy when both ends are on one host.
    pub shared_memory: bool,
    pub tls: Option<TlsConfig>,
    /// When set, only peers whose TLS certificate has one of these common names may
    /// exchange messages on `<key_prefix>/**` with this session, and nothing else passes.
    pub allow_cert_common_names: Option<Vec<String>>,
    /// Set when the robot speaks ROS 2 (rmw_zenoh): state, commands, cameras and e-stop then
    /// travel as ROS 2 topics; `key_prefix` keeps only rlrt's own extras (a simulator's
    /// episode control and verdicts).
    pub ros2: Option<Ros2Config>,
}

/// How a `ros2` link meets the robot's ROS 2 graph. Topic names are fully qualified.
#[derive(Clone, Debug, PartialEq)]
pub struct Ros2Config {
    pub domain_id: u32,
    pub node_name: String,
    /// "/" or "/a/b".
    pub namespace: String,
    /// `sensor_msgs/msg/JointState`, matched to the joints by name.
    pub state_topic: String,
    pub command_topic: String,
    pub command_type: Ros2Command,
    /// A JointTrajectory command's one point is to be reached this long after it is sent.
    pub trajectory_time_from_start_ns: u64,
    /// `std_msgs/msg/Bool`: true engages the e-stop, false resets it.
    pub estop_topic: Option<String>,
    /// One per camera of the observation, in its order.
    pub cameras: Vec<Ros2Camera>,
}

/// The message a `ros2` link commands the robot with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ros2Command {
    /// `std_msgs/msg/Float64MultiArray`: forward_command_controller and the
    /// JointGroup{Position,Velocity,Effort}Controllers.
    Float64MultiArray,
    /// `trajectory_msgs/msg/JointTrajectory` with one point: joint_trajectory_controller.
    JointTrajectory,
}

impl Ros2Command {
    pub fn type_name(self) -> &'static str {
        match self {
            Ros2Command::Float64MultiArray => "std_msgs/msg/Float64MultiArray",
            Ros2Command::JointTrajectory => "trajectory_msgs/msg/JointTrajectory",
        }
    }
}

/// A camera's topic on a `ros2` link.
#[derive(Clone, Debug, PartialEq)]
pub struct Ros2Camera {
    /// The observation camera it feeds.
    pub name: String,
    pub topic: String,
    /// `sensor_msgs/msg/CompressedImage` (JPEG or PNG) instead of `sensor_msgs/msg/Image`.
    pub compressed: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    pub root_ca_path: PathBuf,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SafetyConfig {
    pub stale_observation_timeout_ns: u64,
    pub fault_action: FaultAction,
    /// Time constant of the `damp` fault action.
    pub damp_time_constant_s: f64,
    /// Latch the e-stop after this many faulted ticks in a row; 0 never does.
    pub estop_after_consecutive_faults: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    pub kind: PolicyKind,
    /// A policy slower than this is treated as having produced nothing.
    pub time_budget_ns: u64,
    pub amplitude_fraction: f64,
    pub frequency_hz: f64,
    pub target_rad: Option<Vec<f64>>,
    pub speed_fraction: f64,
    /// ee_servo: offsets of the `from` and `to` points (3 values each) in the feature
    /// vector, and the fraction of the remaining error commanded per tick.
    pub servo: Option<ServoConfig>,
    /// checkpoint: the checkpoint folder, resolved against the config's folder.
    pub checkpoint_path: Option<PathBuf>,
    /// onnx, torchscript: the model file, resolved against the config's folder.
    pub model_path: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServoConfig {
    pub from_offset: usize,
    pub to_offset: usize,
    pub gain: f64,
}

/// A clip reward's alpha when it has a baseline sentence and no alpha is given (in a config
/// and on `rlrt reward clip`): halfway between plain cosine similarity and the full
/// goal-baseline projection.
pub const DEFAULT_CLIP_ALPHA: f64 = 0.5;

/// A clip reward's alpha: the one given, else [`DEFAULT_CLIP_ALPHA`] with a baseline and 0
/// (no baseline to mix in) without.
pub fn clip_alpha(alpha: Option<f64>, has_baseline: bool) -> f64 {
    alpha.unwrap_or(if has_baseline {
        DEFAULT_CLIP_ALPHA
    } else {
        0.0
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct RewardSourceConfig {
    pub name: String,
    pub kind: RewardKind,
    pub weight: f64,
    pub program_path: Option<PathBuf>,
    pub model_path: Option<PathBuf>,
    pub camera: Option<String>,
    pub goal: Option<String>,
    pub baseline: Option<String>,
    /// Clip only: [`DEFAULT_CLIP_ALPHA`] when there is a baseline and no alpha, else 0.
    pub alpha: f64,
    pub threshold: f64,
    /// CLIP only: how frames are brought to the model's input size.
    pub resize: FrameResize,
    /// CLIP only: where the model runs (`cuda` needs rlrt built with the `cuda` feature).
    pub device: crate::compute::ComputeDevice,
    /// CLIP only: f16 on CUDA, f32 otherwise.
    pub precision: crate::compute::Precision,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    pub cpu_core: Option<usize>,
    pub realtime_priority: Option<i32>,
    pub lock_memory: bool,
    /// The loop sleeps until this long before a deadline, then spins.
    pub spin_ns: u64,
    pub telemetry_queue_len: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            cpu_core: None,
            realtime_priority: None,
            lock_memory: false,
            spin_ns: 200_000,
            telemetry_queue_len: 4096,
        }
    }
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub key: KeyPath,
    pub message: String,
}

/// Why a config was rejected. `Display` prints one line per problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(file, diagnostics))]
    Invalid {
        file: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(file: &Path, diagnostics: &[Diagnostic]) -> String {
    render_problems(
        file,
        diagnostics
            .iter()
            .map(|d| (d.line, d.column, format!("`{}`: {}", d.key, d.message))),
    )
}

/// Reads and validates a hw-config file.
pub fn load(path: impl AsRef<Path>) -> Result<RobotConfig, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates config text; `path` is used for messages and relative paths.
pub fn parse(text: &str, path: &Path) -> Result<RobotConfig, ConfigError> {
    let map = SourceMap::new(text);
    let raw: schema::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
        file: path.to_owned(),
        diagnostics: vec![parse_diagnostic(&map, &e)],
    })?;
    validate::validate(raw, path).map_err(|problems| ConfigError::Invalid {
        file: path.to_owned(),
        diagnostics: problems
            .into_iter()
            .map(|(key, message)| {
                let (line, column) = map
                    .span_of(&key)
                    .map_or((1, 1), |span| map.line_col(span.start));
                Diagnostic {
                    line,
                    column,
                    key,
                    message,
                }
            })
            .collect(),
    })
}

/// Turns a TOML/serde error into a diagnostic with a key path.
fn parse_diagnostic(map: &SourceMap<'_>, error: &toml::de::Error) -> Diagnostic {
    let message = error.message().trim().to_owned();
    let offset = error.span().map_or(0, |s| s.start);
    let (line, column) = map.line_col(offset);
    let mut key = map.path_at(offset);
    // A syntax error often sits just past the value it breaks; look back along the line.
    let mut probe = offset;
    while key.is_root() && probe > 0 && map.line_col(probe - 1).0 == line {
        probe -= 1;
        key = map.path_at(probe);
    }
    // serde reports a missing key at the table that lacks it; name the key itself.
    if let Some(field) = between(&message, "missing field `", "`") {
        key = key.key(field);
    }
    // For an unknown key the span is the key; make sure it ends the path.
    if let Some(field) = between(&message, "unknown field `", "`") {
        if !matches!(key.0.last(), Some(PathSegment::Key(k)) if k == field) {
            key = key.key(field);
        }
    }
    let message = message.replace('\n', " ");
    Diagnostic {
        line,
        column,
        key,
        message,
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}
