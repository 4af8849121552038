//! rlrt datasets to and from the formats other tools use. [`minari`] imports Minari and
//! D4RL HDF5 files (libhdf5) as rlrt datasets; [`lerobot`] exports an rlrt dataset in
//! LeRobot's v3.0 layout (Parquet through arrow-rs). Both are workstation work: the robot
//! build leaves this crate, and its native libraries, out.

pub mod lerobot;
pub mod minari;
