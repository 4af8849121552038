//! Simulated robots for rlrt.
//!
//! [`mujoco`] (feature `mujoco`, on by default) runs a task's MJCF model in MuJoCo: the
//! reach and push tasks ship built in, and a small TOML task file turns any MJCF model into
//! a task. [`kinematic`] is an in-process joint-level plant that needs no native library.
//! [`serve`] puts either on the zenoh link, where the runtime sees it exactly like hardware.
//! [`rollout`] (feature `mujoco`) runs seeded episodes of a policy in a task directly, in
//! simulated time: recording datasets and evaluating policies.

pub mod kinematic;
#[cfg(feature = "mujoco")]
pub mod mujoco;
pub mod plant;
#[cfg(feature = "mujoco")]
pub mod rollout;
pub mod serve;

pub use kinematic::{KinematicArm, LockstepPlant, ThreadedPlant, ThreadedPlantHandle};
pub use plant::{Plant, Verdict};
pub use serve::{ServeMode, SimServer};
