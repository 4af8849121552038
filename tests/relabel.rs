//! `rlrt relabel`: a recorded reach dataset written again with rewards from a reward
//! program, checked step by step against the same reward computed here by hand, with frames
//! and everything else copied; training reads the result; bad programs and folders are
//! refused before anything is written.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use rlrt_runtime::recording::Dataset;

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

fn ok(out: Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn failure(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn relabel(data: &Path, program: &Path, out: &Path) -> Output {
    rlrt()
        .arg("relabel")
        .arg(data)
        .arg("--program")
        .arg(program)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .output()
        .unwrap()
}

fn record(config: &Path, data: &Path, episodes: usize, frames: bool) {
    let mut cmd = rlrt();
    cmd.arg("record")
        .arg(config)
        .args(["--episodes", &episodes.to_string(), "--noise-std", "0.02"])
        .args(["--seed", "3", "--out"])
        .arg(data)
        .arg("--json");
    if frames {
        cmd.arg("--frames");
    }
    ok(cmd.output().unwrap());
}

/// Distance to the target and the size of the action: terms a hand computation can check.
const PROGRAM: &str = "#{\n    distance: -distance(ee_position, target_position),\n    \
                       effort: -0.5 * norm(previous_action),\n}\n";

#[test]
fn every_step_gets_the_program_reward_of_the_state_it_led_to() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    record(&common::repo("hw-configs/reach-arm.toml"), &data, 4, false);
    let program = tmp.path().join("reach-distance.rhai");
    std::fs::write(&program, PROGRAM).unwrap();
    let out = tmp.path().join("relabelled");
    let outcome = ok(relabel(&data, &program, &out));

    let before = Dataset::open(&data).unwrap();
    let after = Dataset::open(&out).unwrap();
    assert_eq!(after.info.reward, "program reach-distance.rhai");
    assert_eq!(
        after.info.observation_fields,
        before.info.observation_fields
    );
    assert_eq!(after.config_text, before.config_text);
    assert_eq!(outcome["episodes"], 4);
    let steps: usize = before.episodes.iter().map(|e| e.steps()).sum();
    assert_eq!(outcome["steps"], steps);
    assert_eq!(
        outcome["recorded_reward"].as_str().unwrap(),
        before.info.reward
    );

    // reach-arm's observation.state: joint positions (3), joint velocities (3), ee_position
    // (3), target_position (3); actions are end-effector displacements (3).
    let (o, a) = (before.info.observation_len, before.info.action_len);
    assert_eq!((o, a), (12, 3));
    let mut worst = 0.0f64;
    let mut total = 0.0;
    for (old, new) in before.episodes.iter().zip(&after.episodes) {
        assert_eq!(new.observations, old.observations);
        assert_eq!(new.actions, old.actions);
        assert_eq!(new.terminals, old.terminals);
        assert_eq!(new.timeouts, old.timeouts);
        assert_eq!((new.seed, new.success), (old.seed, old.success));
        assert_ne!(new.rewards, old.rewards);
        for t in 0..old.steps() {
            let next = &old.observations[(t + 1) * o..(t + 2) * o];
            let action = &old.actions[t * a..(t + 1) * a];
            let d = (0..3)
                .map(|i| (next[6 + i] - next[9 + i]).powi(2))
                .sum::<f64>()
                .sqrt();
            let effort = action.iter().map(|v| v * v).sum::<f64>().sqrt();
            let want = -d - 0.5 * effort;
            worst = worst.max((new.rewards[t] - want).abs());
            total += want;
        }
    }
    assert!(
        worst < 1e-12,
        "largest difference from the hand computation {worst}"
    );
    let mean = outcome["mean_return"].as_f64().unwrap();
    assert!(
        (mean - total / 4.0).abs() < 1e-9,
        "{mean} vs {}",
        total / 4.0
    );
    let terms: Vec<&str> = outcome["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(terms, ["distance", "effort"]);

    // Training reads the relabelled rewards.
    let trained = ok(rlrt()
        .args(["train", "iql", "--data"])
        .arg(&out)
        .arg("--out")
        .arg(tmp.path().join("iql"))
        .args(["--steps", "60", "--eval-every", "0", "--eval-episodes", "1"])
        .args(["--hidden", "32,32", "--batch-size", "32", "--json"])
        .output()
        .unwrap());
    let trained_return = trained["dataset_mean_return"].as_f64().unwrap();
    assert!(
        (trained_return - mean).abs() < 1e-9,
        "{trained_return} vs {mean}"
    );
}

#[test]
fn camera_frames_are_copied_with_the_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("reach-target-camera.toml");
    std::fs::write(
        &config,
        common::shipped_text("reach-arm-target-camera.toml"),
    )
    .unwrap();
    record(&config, &data, 2, true);
    let out = tmp.path().join("relabelled");
    ok(relabel(
        &data,
        &common::repo("rewards/programs/reach.rhai"),
        &out,
    ));
    let before = Dataset::open(&data).unwrap();
    let after = Dataset::open(&out).unwrap();
    assert_eq!(after.info.cameras, before.info.cameras);
    assert!(!before.info.cameras.is_empty());
    for index in 0..2 {
        let (old, new) = (before.frames(index).unwrap(), after.frames(index).unwrap());
        assert!(!old[0].is_empty());
        assert_eq!(new, old);
    }
}

#[test]
fn broken_programs_and_occupied_folders_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    record(&common::repo("hw-configs/reach-arm.toml"), &data, 1, false);
    let out = tmp.path().join("out");

    // A program that does not compile, one that reads a name the robot does not have, and
    // one whose reward is not finite on recorded states.
    for (file, text, expect) in [
        (
            "syntax.rhai",
            "#{ reach: -distance(ee_position, }",
            "syntax.rhai",
        ),
        ("unknown.rhai", "#{ grip: -gripper_width }", "gripper_width"),
        (
            "infinite.rhai",
            "#{ blowup: 1.0 / (distance(ee_position, ee_position)) }",
            "infinite.rhai",
        ),
    ] {
        let path = tmp.path().join(file);
        std::fs::write(&path, text).unwrap();
        let e = failure(relabel(&data, &path, &out));
        assert!(e.contains(expect), "{file}: {e}");
        assert!(!out.exists(), "{file}: {} was created", out.display());
    }

    // The dataset itself, and a folder that already holds something.
    let program = tmp.path().join("ok.rhai");
    std::fs::write(&program, PROGRAM).unwrap();
    let e = failure(relabel(&data, &program, &data));
    assert!(e.contains("the dataset itself"), "{e}");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let e = failure(relabel(&data, &program, &out));
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}
