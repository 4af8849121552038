//! Simulated robots for rlrt.
//!
//! [`kinematic`] is an in-process joint-level plant: every joint follows its command with a
//! first-order servo, inside its velocity and position limits. It needs no native library,
//! so the loop, the safety layer and the CLI can be exercised anywhere; the MuJoCo simulator
//! that serves physics and cameras over the link joins this crate next.

pub mod kinematic;

pub use kinematic::{KinematicArm, LockstepPlant, ThreadedPlant, ThreadedPlantHandle};
