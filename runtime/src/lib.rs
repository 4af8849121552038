//! rlrt's real-time core: hw-config parsing and validation, the fixed-rate control loop,
//! the safety layer, loop statistics and the telemetry hand-off to slower threads.
//!
//! Everything a tick touches is allocated before the first tick; see ARCHITECTURE.md for the
//! invariants and what enforces each.

pub mod alloc_count;
pub mod bench;
pub mod clock;
pub mod compute;
pub mod config;
pub mod control_loop;
pub mod deps;
pub mod evaluation;
pub mod hub;
pub mod link;
pub mod messages;
pub mod policy;
pub mod protocol;
pub mod realtime;
pub mod recording;
pub mod rng;
pub mod ros2;
pub mod safety;
pub mod stats;
pub mod telemetry;

pub use clock::{Clock, ManualClock, WallClock};
pub use config::RobotConfig;
pub use control_loop::{ControlLoop, FeatureBuilder, LoopError, RunLimit, RunReport};
pub use messages::{
    observation_mailbox, Command, CommandSink, Observation, ObservationReader, ObservationWriter,
    SinkError,
};
pub use policy::{Policy, PolicyError};
pub use safety::{Cause, EStop, SafetyLayer};
