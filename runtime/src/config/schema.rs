//! The hw-config file as written by users: plain serde types with `deny_unknown_fields`.
//! Nothing here is trusted; `validate.rs` turns it into a [`super::RobotConfig`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub schema_version: u32,
    pub robot: RawRobot,
    pub joints: Vec<RawJoint>,
    pub observation: RawObservation,
    pub action: RawAction,
    pub link: RawLink,
    pub safety: RawSafety,
    pub policy: RawPolicy,
    #[serde(default)]
    pub rewards: Vec<RawReward>,
    #[serde(default)]
    pub scheduler: RawScheduler,
    pub sim: Option<RawSim>,
}

/// How `rlrt sim` simulates this robot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSim {
    pub task: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRobot {
    pub name: String,
    pub kind: RobotKind,
    pub control_rate_hz: f64,
    pub description: Option<String>,
}

/// Whether the robot is real hardware or a simulator answering on the link.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RobotKind {
    Hardware,
    Sim,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJoint {
    pub name: String,
    pub position_min_rad: f64,
    pub position_max_rad: f64,
    pub max_velocity_rad_s: f64,
    pub max_effort_nm: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObservation {
    pub state: Vec<String>,
    #[serde(default)]
    pub sensors: Vec<RawSensor>,
    #[serde(default)]
    pub cameras: Vec<RawCamera>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSensor {
    pub name: String,
    pub size: usize,
    pub unit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCamera {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub rate_hz: f64,
    pub encoding: ImageEncoding,
}

/// Pixel encodings, named as in ROS 2's sensor_msgs/Image.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ImageEncoding {
    Rgb8,
    Mono8,
    #[serde(rename = "16UC1")]
    Depth16,
    #[serde(rename = "32FC1")]
    Depth32F,
}

impl ImageEncoding {
    /// The name in sensor_msgs/Image (and in hw-configs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rgb8 => "rgb8",
            Self::Mono8 => "mono8",
            Self::Depth16 => "16UC1",
            Self::Depth32F => "32FC1",
        }
    }

    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb8 => 3,
            Self::Mono8 => 1,
            Self::Depth16 => 2,
            Self::Depth32F => 4,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub mode: ActionMode,
    pub min: Option<Vec<f64>>,
    pub max: Option<Vec<f64>>,
    pub max_delta_per_tick: Option<Vec<f64>>,
}

/// What a command's values mean.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionMode {
    /// Joint position targets, radians.
    JointPosition,
    /// Joint velocity targets, radians per second.
    JointVelocity,
    /// End-effector displacement per tick: x, y, z in metres, then optionally roll, pitch,
    /// yaw in radians, then optionally a gripper command.
    EeDelta,
    /// Joint efforts (torques or forces), in the robot's effort units, one per joint. The
    /// simulator writes them to each joint's motor actuator as its control (for
    /// Gymnasium's tasks: the environment's action, scaled by the motor's gear).
    JointEffort,
}

impl ActionMode {
    /// The name in hw-configs (`action.mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionMode::JointPosition => "joint_position",
            ActionMode::JointVelocity => "joint_velocity",
            ActionMode::EeDelta => "ee_delta",
            ActionMode::JointEffort => "joint_effort",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    pub mode: LinkMode,
    #[serde(default)]
    pub connect: Vec<String>,
    #[serde(default)]
    pub listen: Vec<String>,
    pub key_prefix: String,
    /// Camera frames through zenoh shared memory between processes on one host (default
    /// true; peers elsewhere, or without shared memory, get the bytes over the network).
    pub shared_memory: Option<bool>,
    pub tls: Option<RawTls>,
    pub access: Option<RawAccess>,
    /// Which messages travel on the link: rlrt's own keys (default) or ROS 2 topics over
    /// rmw_zenoh (then `[link.ros2]` says which).
    pub flavour: Option<LinkFlavour>,
    pub ros2: Option<RawRos2>,
}

/// The messages a link carries.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkFlavour {
    Rlrt,
    Ros2,
}

/// A robot that speaks ROS 2 through rmw_zenoh (ros2_control and its controllers).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRos2 {
    pub domain_id: Option<u32>,
    pub node_name: Option<String>,
    pub namespace: Option<String>,
    pub state_topic: Option<String>,
    pub command_topic: String,
    pub command_type: String,
    pub trajectory_time_from_start_ms: Option<f64>,
    pub estop_topic: Option<String>,
    #[serde(default)]
    pub cameras: Vec<RawRos2Camera>,
}

/// A camera's ROS 2 topic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRos2Camera {
    pub name: String,
    pub topic: String,
    #[serde(rename = "type")]
    pub msg_type: String,
}

/// Who may exchange this robot's messages on the session.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub allow_cert_common_names: Vec<String>,
}

/// zenoh session mode.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    Peer,
    Client,
    Router,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub root_ca_path: String,
    pub cert_path: Option<String>,
    pub key_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSafety {
    pub stale_observation_timeout_ms: f64,
    pub fault_action: FaultAction,
    pub damp_time_constant_ms: Option<f64>,
    #[serde(default)]
    pub estop_after_consecutive_faults: u32,
}

/// What the safety layer commands while a fault lasts.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Keep commanding the last safe position (joint_position mode).
    HoldPosition,
    /// Command zero velocity, or a zero displacement (joint_velocity, ee_delta).
    ZeroVelocity,
    /// Let the last velocity (or effort) command decay exponentially to zero
    /// (joint_velocity, joint_effort).
    Damp,
    /// Command zero effort: the joints go limp (joint_effort).
    ZeroEffort,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub kind: PolicyKind,
    pub time_budget_us: Option<f64>,
    pub amplitude_fraction: Option<f64>,
    pub frequency_hz: Option<f64>,
    pub target_rad: Option<Vec<f64>>,
    pub speed_fraction: Option<f64>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub gain: Option<f64>,
    pub checkpoint_path: Option<String>,
    pub model_path: Option<String>,
}

/// Policies this build can run.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Hold the first observed joint positions.
    Hold,
    /// Sweep every joint sinusoidally around the middle of its range.
    Sine,
    /// Move to a fixed joint target at a fraction of the velocity limits.
    JointTarget,
    /// Servo one observed point (such as the end effector) toward another (such as a
    /// target) with end-effector displacements.
    EeServo,
    /// A trained actor from an `rlrt train` checkpoint folder.
    Checkpoint,
    /// An ONNX model (observation in, action out) run by ONNX Runtime.
    Onnx,
    /// A TorchScript module (observation in, action out) run by libtorch.
    Torchscript,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReward {
    pub name: String,
    pub kind: RewardKind,
    pub weight: Option<f64>,
    pub program_path: Option<String>,
    pub model_path: Option<String>,
    pub camera: Option<String>,
    pub goal: Option<String>,
    pub baseline: Option<String>,
    pub alpha: Option<f64>,
    pub threshold: Option<f64>,
    pub resize: Option<FrameResize>,
    pub device: Option<crate::compute::ComputeDevice>,
    pub precision: Option<crate::compute::Precision>,
}

/// How a CLIP reward brings a camera frame to the model's square input.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameResize {
    /// Shortest side to the input size with bicubic resampling, then a centre crop (CLIP's
    /// own preprocessing).
    #[default]
    CentreCrop,
    /// Straight to the input size, aspect ratio not kept (what VLM-RM used).
    Plain,
}

/// Reward sources (`[[rewards]]`; hw-configs/REFERENCE.toml describes every kind).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// A sandboxed reward program (Text2Reward-style).
    Program,
    /// CLIP zero-shot similarity between a camera frame and a goal sentence (VLM-RM).
    Clip,
    /// A success classifier on camera frames, thresholded to a sparse reward.
    Classifier,
    /// A reward model fitted to VLM preference labels.
    PreferenceModel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    pub cpu_core: Option<usize>,
    pub realtime_priority: Option<i32>,
    pub lock_memory: Option<bool>,
    pub spin_us: Option<f64>,
    pub telemetry_queue_len: Option<usize>,
}
