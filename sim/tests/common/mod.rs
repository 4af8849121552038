//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rlrt_runtime::RobotConfig;
use rlrt_sim::mujoco::task::TaskSource;
use rlrt_sim::mujoco::MujocoSim;

/// A path in the workspace.
pub fn workspace(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A shipped hw-config, by file name.
pub fn config(name: &str) -> RobotConfig {
    rlrt_runtime::config::load(workspace(&format!("hw-configs/{name}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The config's `[sim]` task, loaded (with cameras when `render`).
pub fn sim(config: &RobotConfig, render: bool) -> MujocoSim {
    let sim = config.sim.as_ref().expect("the config has a [sim] table");
    let task =
        TaskSource::resolve(&sim.task, sim.task_path.as_deref()).unwrap_or_else(|e| panic!("{e}"));
    MujocoSim::new(config, &task, render).unwrap_or_else(|e| panic!("{e}"))
}
