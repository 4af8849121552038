//! rlrt's Gymnasium tasks against Gymnasium itself: from the same physics state and under
//! the same actions, Hopper-v5, Walker2d-v5 and HalfCheetah-v5 must give the same
//! observations, rewards and terminations as `gymnasium.make(...)` with the `mujoco` Python
//! bindings of the same MuJoCo version (`sim/tests/python/gymnasium_replay.py`, run with
//! `.deps/python` from `cargo xtask setup`). Also: reset distributions, episode lengths and
//! configs that do not fit a Gymnasium task.

use std::io::Write;
use std::process::{Command as Process, Stdio};

use rlrt_runtime::config::ActionMode;
use rlrt_runtime::rng::uniform;
use rlrt_runtime::{Command, Observation, RobotConfig};
use rlrt_sim::mujoco::task::TaskSource;
use rlrt_sim::mujoco::MujocoSim;
use rlrt_sim::Plant;

use crate::common::{config, sim, workspace};

fn observation(config: &RobotConfig, plant: &impl Plant) -> Vec<f64> {
    let mut o = Observation::empty(config.dof(), config.observation.sensor_values);
    plant.observe(&mut o);
    o.sensors[..config.observation.sensor_values].to_vec()
}

fn gymnasium(job: &serde_json::Value) -> serde_json::Value {
    let mut child = Process::new("python3")
        .arg(workspace("sim/tests/python/gymnasium_replay.py"))
        .env("PYTHONPATH", workspace(".deps/python"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gymnasium_replay.py failed (run `cargo xtask setup` for gymnasium and mujoco in \
         .deps/python): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn max_difference(a: &[f64], b: &serde_json::Value) -> f64 {
    let b: Vec<f64> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(a.len(), b.len());
    rlrt_models::compare::max_abs_difference(a, &b)
}

/// Runs `steps` seeded random actions (uniform in +/- `scale`) in rlrt and in Gymnasium
/// from the same state, until the episode terminates.
fn conforms(file: &str, env: &str, steps: usize, seed: u64, scale: f64) -> usize {
    let config = config(file);
    let mut plant = sim(&config, false);
    plant.reset(seed);
    let (qpos, qvel) = plant.state();
    let start = observation(&config, &plant);
    let mut rng = seed ^ 0xAC71_0115;
    let dof = config.dof();
    let actions: Vec<Vec<f64>> = (0..steps)
        .map(|_| (0..dof).map(|_| uniform(&mut rng, -scale, scale)).collect())
        .collect();
    let mut ours = Vec::new();
    for (t, action) in actions.iter().enumerate() {
        let mut command = Command::new(ActionMode::JointEffort, dof);
        command.values[..dof].copy_from_slice(action);
        command.seq = t as u64 + 1;
        plant.apply(&command);
        plant.step(config.period_s());
        let verdict = plant.verdict().expect("a Gymnasium task has a verdict");
        ours.push((
            observation(&config, &plant),
            verdict.reward.expect("a Gymnasium task has rewards"),
            verdict.terminated,
        ));
        if verdict.terminated {
            break;
        }
    }
    let theirs = gymnasium(&serde_json::json!({
        "env": env, "qpos": qpos, "qvel": qvel, "actions": actions,
    }));
    // JSON carries the state to Python and back (serde_json's default float parsing may be
    // off by an ulp), so "equal" is within 1e-12.
    assert!(
        max_difference(&start, &theirs["observation"]) <= 1e-12,
        "{env}: initial observation {start:?} vs {}",
        theirs["observation"]
    );
    let steps_theirs = theirs["steps"].as_array().unwrap();
    assert_eq!(ours.len(), steps_theirs.len(), "{env}: episode lengths");
    let mut worst = (0.0f64, 0.0f64);
    for (t, ((obs, reward, terminated), step)) in ours.iter().zip(steps_theirs).enumerate() {
        let d = max_difference(obs, &step["observation"]);
        let r = (reward - step["reward"].as_f64().unwrap()).abs();
        assert!(
            d <= 1e-9 && r <= 1e-9,
            "{env} step {t}: observation {d}, reward {r}"
        );
        assert_eq!(
            *terminated,
            step["terminated"].as_bool().unwrap(),
            "{env} step {t}"
        );
        worst = (worst.0.max(d), worst.1.max(r));
    }
    eprintln!(
        "{env}: {} steps, max difference observation {:e}, reward {:e}",
        ours.len(),
        worst.0,
        worst.1
    );
    ours.len()
}

#[test]
fn hopper_matches_gymnasium() {
    // Random actions topple the hopper (full-range ones within tens of steps, small ones
    // later): the termination must come on the same step in both.
    let fast = conforms("hopper.toml", "Hopper-v5", 300, 1, 1.0);
    let slow = conforms("hopper.toml", "Hopper-v5", 300, 1, 0.05);
    assert!(fast < slow && slow < 300, "{fast} {slow}");
}

#[test]
fn walker2d_matches_gymnasium() {
    assert!(conforms("walker2d.toml", "Walker2d-v5", 300, 2, 1.0) > 0);
}

#[test]
fn half_cheetah_matches_gymnasium() {
    // HalfCheetah never terminates.
    assert_eq!(
        conforms("half-cheetah.toml", "HalfCheetah-v5", 200, 3, 1.0),
        200
    );
}

#[test]
fn resets_follow_gymnasium_noise_and_differ_by_seed() {
    for (file, scale) in [("hopper.toml", 5e-3), ("half-cheetah.toml", 0.1)] {
        let config = config(file);
        let mut plant = sim(&config, false);
        plant.reset(0);
        let (q0, _) = plant.state();
        plant.reset(1);
        let (q1, v1) = plant.state();
        plant.reset(1);
        assert_eq!(
            plant.state(),
            (q1.clone(), v1.clone()),
            "{file}: seeded resets repeat"
        );
        assert_ne!(q0, q1, "{file}: seeds differ");
        // qpos0 of the model plus at most the noise scale: two draws differ by at most twice.
        for (a, b) in q1.iter().zip(&q0) {
            assert!((a - b).abs() <= 2.0 * scale + 1e-12, "{file}: {a} vs {b}");
        }
        assert_eq!(plant.episode_seconds() * config.control_rate_hz, 1000.0);
        assert!(!plant.has_success_test());
    }
}

#[test]
fn configs_that_do_not_fit_a_gymnasium_task_are_refused() {
    let text = std::fs::read_to_string(workspace("hw-configs/hopper.toml")).unwrap();
    let source = workspace("hw-configs/hopper.toml");
    let attempt = |from: &str, to: &str| -> String {
        let config = rlrt_runtime::config::parse(&text.replace(from, to), &source)
            .unwrap_or_else(|e| panic!("{e}"));
        let task = TaskSource::builtin("hopper").unwrap();
        match MujocoSim::new(&config, &task, false) {
            Ok(_) => panic!("{from} -> {to} was accepted"),
            Err(e) => e.to_string(),
        }
    };
    // Gymnasium's Hopper steps at 125 Hz (4 steps of 2 ms).
    let e = attempt("control_rate_hz = 125.0", "control_rate_hz = 250.0");
    assert!(e.contains("Hopper-v5 takes 4") && e.contains("125"), "{e}");
    // The observation sensor must have Gymnasium's length.
    let e = attempt("size = 11", "size = 12");
    assert!(e.contains("11 values"), "{e}");
}
