//! Simulated robots for rlrt.
//!
//! [`kinematic`] is an in-process joint-level plant: every joint follows its command with a
//! first-order servo, inside its velocity and position limits. It needs no native library,
//! so the loop, the safety layer and the CLI can be exercised anywhere. [`serve`] puts a
//! simulated robot on the zenoh link, where the runtime sees it exactly like hardware; the
//! MuJoCo simulator with cameras joins this crate next.

pub mod kinematic;
pub mod serve;

pub use kinematic::{KinematicArm, LockstepPlant, ThreadedPlant, ThreadedPlantHandle};
pub use serve::{ServeMode, SimServer};
