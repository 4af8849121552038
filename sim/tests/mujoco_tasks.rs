//! The MuJoCo tasks against real MuJoCo: loading, seeded resets, the end-effector
//! controller, ground-truth success, offscreen rendering, determinism and bad task files.

use rlrt_runtime::config::ActionMode;
use rlrt_runtime::{Command, Observation, RobotConfig};
use rlrt_sim::mujoco::task::TaskSource;
use rlrt_sim::mujoco::MujocoSim;
use rlrt_sim::Plant;

use crate::common::{config, sim, workspace};

fn observe(config: &RobotConfig, plant: &impl Plant) -> Observation {
    let mut o = Observation::empty(config.dof(), config.observation.sensor_values);
    plant.observe(&mut o);
    o
}

/// The scripted reach controller, inline: a tenth of the error, at most 1 cm per axis.
fn servo_step(config: &RobotConfig, plant: &mut MujocoSim, from: usize, to: usize) {
    let o = observe(config, plant);
    let mut command = Command::new(ActionMode::EeDelta, 3);
    for axis in 0..3 {
        command.values[axis] =
            (0.1 * (o.sensors[to + axis] - o.sensors[from + axis])).clamp(-0.01, 0.01);
    }
    plant.apply(&command);
    plant.step(config.period_s());
}

#[test]
fn reach_resets_are_seeded_and_the_servo_succeeds() {
    let config = config("reach-arm.toml");
    let mut plant = sim(&config, false);
    plant.reset(7);
    let a = observe(&config, &plant);
    plant.reset(8);
    let b = observe(&config, &plant);
    plant.reset(7);
    let c = observe(&config, &plant);
    assert_eq!(a.sensors, c.sensors, "same seed, same start");
    assert_eq!(a.joint_positions, c.joint_positions);
    assert_ne!(
        a.sensors[3..6],
        b.sensors[3..6],
        "targets differ between seeds"
    );

    let mut successes = 0;
    for seed in 0..5 {
        plant.reset(seed);
        let start = plant.verdict().unwrap();
        assert!(
            !start.success,
            "seed {seed} starts solved ({})",
            start.score
        );
        for _ in 0..300 {
            servo_step(&config, &mut plant, 0, 3);
        }
        let end = plant.verdict().unwrap();
        assert!(end.score < start.score);
        successes += end.success as u32;
        // The observation reports the target where the task placed it, and the end
        // effector where the verdict measured it.
        let o = observe(&config, &plant);
        let d: f64 = (0..3)
            .map(|i| (o.sensors[i] - o.sensors[3 + i]).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((d - end.score).abs() < 1e-12);
    }
    assert_eq!(successes, 5);
    assert_eq!(plant.out_of_limit_commands(), 0);
}

#[test]
fn lockstep_runs_are_bit_identical() {
    let config = config("reach-arm.toml");
    let run = || {
        let mut plant = sim(&config, false);
        plant.reset(42);
        let mut trace = Vec::new();
        for _ in 0..200 {
            servo_step(&config, &mut plant, 0, 3);
            let o = observe(&config, &plant);
            trace.extend(o.joint_positions[..3].iter().map(|v| v.to_bits()));
            trace.extend(o.joint_velocities[..3].iter().map(|v| v.to_bits()));
        }
        trace
    };
    assert_eq!(run(), run());
}

#[test]
fn push_success_is_the_block_in_the_goal_region() {
    let config = config("push-arm.toml");
    let mut plant = sim(&config, false);
    plant.reset(3);
    let o = observe(&config, &plant);
    let (block, goal) = (&o.sensors[3..6], &o.sensors[6..9]);
    assert!((block[0] - goal[0]).hypot(block[1] - goal[1]) >= 0.1);
    assert!(!plant.verdict().unwrap().success);
    plant
        .set_body_position("block", [goal[0] + 0.03, goal[1], 0.025])
        .unwrap();
    let v = plant.verdict().unwrap();
    assert!(v.success && (v.score - 0.03).abs() < 1e-9, "{v:?}");
    // The block rests on the floor: stepping keeps it there and in the goal.
    for _ in 0..50 {
        plant.step(config.period_s());
    }
    assert!(plant.verdict().unwrap().success);
}

#[test]
fn cameras_render_the_scene_offscreen() {
    for (width, height) in [(84u32, 84u32), (224, 224)] {
        let config = {
            let path = workspace("hw-configs/reach-arm.toml");
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("width = 84", &format!("width = {width}"))
                .replace("height = 84", &format!("height = {height}"));
            rlrt_runtime::config::parse(&text, &path).unwrap()
        };
        let mut plant = sim(&config, true);
        assert_eq!(plant.cameras(), 1);
        plant.reset(1);
        let first = plant.render(0).unwrap().to_vec();
        assert_eq!(first.len(), (width * height * 3) as usize);
        let mut colours: Vec<[u8; 3]> = first.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(
            colours.len() > 20,
            "a flat image: {} colours",
            colours.len()
        );
        // The arm moves between frames, so the image changes.
        for _ in 0..50 {
            servo_step(&config, &mut plant, 0, 3);
        }
        let second = plant.render(0).unwrap();
        assert_ne!(first, second);
    }
}

fn task_error(task: &str, xml: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("model.xml"),
        xml.unwrap_or(include_str!("../tasks/reach.xml")),
    )
    .unwrap();
    let path = dir.path().join("task.toml");
    std::fs::write(&path, task).unwrap();
    let config = config("reach-arm.toml");
    match TaskSource::from_path(&path).and_then(|t| MujocoSim::new(&config, &t, false)) {
        Ok(_) => panic!("accepted:\n{task}"),
        // The error and its causes, as the command line prints them.
        Err(e) => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text += &format!(": {c}");
                cause = c.source();
            }
            text
        }
    }
}

#[test]
fn bad_task_files_name_the_problem() {
    let good = std::fs::read_to_string(workspace("sim/tasks/reach.toml"))
        .unwrap()
        .replace("model = \"reach.xml\"", "model = \"model.xml\"");
    assert!(task_error(
        &good.replace("name = \"target_position\"", "name = \"goal\""),
        None
    )
    .contains("\"target_position\", which this task does not provide"));
    assert!(task_error(
        &good.replace("keyframe = \"home\"", "keyframe = \"nope\""),
        None
    )
    .contains("`keyframe`: no keyframe \"nope\""));
    assert!(task_error(
        &good.replace("site = \"ee\"\ndamping", "site = \"tip\"\ndamping"),
        None
    )
    .contains("`end_effector.site`: no site \"tip\""));
    assert!(
        task_error(&good.replace("below_m = 0.03", "below_m = -1.0"), None)
            .contains("`success.below_m`")
    );
    assert!(task_error(
        &good.replace("below_m = 0.03", "below_m = 0.03\nbogus = 1"),
        None
    )
    .contains("unknown field `bogus`"));
    assert!(
        task_error(&good.replace("x = [0.15, 0.45]", "x = [0.45, 0.15]"), None)
            .contains("`reset.place[0].x`")
    );
    assert!(task_error(
        &good.replace("model = \"model.xml\"", "model = \"missing.xml\""),
        None
    )
    .contains("missing.xml"));
    // A model whose joints do not match the hw-config, or whose timestep does not divide
    // the control period.
    let xml = include_str!("../tasks/reach.xml");
    assert!(
        task_error(&good, Some(&xml.replace("\"elbow_pitch\"", "\"elbow\"")))
            .contains("joints[2] is \"elbow_pitch\", which the model has no joint of")
    );
    assert!(task_error(
        &good,
        Some(&xml.replace("timestep=\"0.002\"", "timestep=\"0.003\""))
    )
    .contains("does not divide the control period"));
    assert!(task_error(
        &good,
        Some(&xml.replace("<camera name=\"front\"", "<camera name=\"side\""))
    )
    .contains("observation.cameras[0] is \"front\""));
    assert!(task_error(&good, Some("<mujoco><worldbody><geom size="))
        .contains("`model`: MuJoCo cannot load"));
}
