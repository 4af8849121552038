//! A robot and its runtime in one process, joined by a real zenoh link over TCP on
//! 127.0.0.1: what the demo, `bench link` and the tests run.

use std::net::TcpListener;

use rlrt_runtime::RobotConfig;

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The same robot seen from both ends of a loopback link: the runtime's side listens on
/// `port`, the robot's side connects to it; both peer mode, no multicast scouting.
pub fn loopback_configs(config: &RobotConfig, port: u16) -> (RobotConfig, RobotConfig) {
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let mut runtime = config.clone();
    runtime.link.listen = vec![endpoint.clone()];
    runtime.link.connect = Vec::new();
    runtime.link.tls = None;
    runtime.link.allow_cert_common_names = None;
    let mut robot = runtime.clone();
    robot.link.listen = Vec::new();
    robot.link.connect = vec![endpoint];
    (runtime, robot)
}

/// Serves `config`'s `[sim]` task in MuJoCo on `session`.
/// The simulation task a config names in `[sim]` (a built-in task, a task file, or one of
/// Gymnasium's, whose model must be installed). Commands call it before they open a zenoh
/// session, so a missing task is the first and only thing the user reads.
pub fn sim_task(config: &RobotConfig) -> anyhow::Result<rlrt_sim::mujoco::task::TaskSource> {
    let sim = config.sim.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no [sim] table: add one naming the task, such as [sim] task = \"reach\"",
            config.source.display()
        )
    })?;
    Ok(rlrt_sim::mujoco::task::TaskSource::resolve(
        &sim.task,
        sim.task_path.as_deref(),
    )?)
}

pub fn serve_mujoco(
    session: &zenoh::Session,
    config: &RobotConfig,
    seed: u64,
    mode: rlrt_sim::ServeMode,
    render: bool,
) -> anyhow::Result<rlrt_sim::SimServer> {
    use rlrt_sim::mujoco::MujocoSim;
    let task = sim_task(config)?;
    let for_plant = config.clone();
    Ok(rlrt_sim::SimServer::start_with(
        session,
        config,
        seed,
        mode,
        move || MujocoSim::new(&for_plant, &task, render),
    )?)
}
