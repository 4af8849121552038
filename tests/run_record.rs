//! `rlrt run --record`: a run against MuJoCo on the loopback link, recorded as a dataset.
//! Every recorded action must be what the policy chose from the recorded observation (the
//! scripted end-effector servo, recomputed here) wherever the safety layer let it through
//! unchanged; episodes are cut at the set length and continue one another; camera frames
//! come with rows; the dataset relabels and trains; a second run continues the folder.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use rlrt_runtime::recording::Dataset;
use serde_json::Value;

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

fn ok(out: Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn run(config: &Path, args: &[&str], dir: &Path) -> Value {
    ok(rlrt()
        .args(["-q", "run"])
        .arg(config)
        .args(args)
        .arg("--record")
        .arg(dir)
        .arg("--json")
        .output()
        .unwrap())
}

#[test]
fn a_sim_run_is_recorded_as_the_policy_saw_and_did_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("arm.toml");
    std::fs::write(
        &config,
        common::shipped_text("reach-arm.toml").replace("rlrt/reach-arm", "rlrt/test-run-record"),
    )
    .unwrap();
    let dir = tmp.path().join("recorded");
    // 3 s in real time at 100 Hz, in episodes of at most 1 s; the camera sends 30 frames/s.
    let outcome = run(
        &config,
        &["--sim", "--seconds", "3", "--episode-seconds", "1"],
        &dir,
    );
    let rec = &outcome["recording"];
    assert_eq!(rec["error"], Value::Null, "{rec}");
    // Three episodes of 1 s, and one more for each cut at a fault (a stale state on a busy
    // machine).
    let cuts = rec["cut_at_faults"].as_u64().unwrap();
    assert_eq!(rec["episodes_written"], 3 + cuts, "{rec}");
    assert!(rec["frames"].as_u64().unwrap() >= 60, "{rec}");

    let data = Dataset::open(&dir).unwrap();
    assert_eq!(data.info.reward, "none");
    assert_eq!(data.info.controller, "rlrt run (ee_servo)");
    assert_eq!(
        data.info.observation_fields,
        [
            "joint_positions",
            "joint_velocities",
            "ee_position",
            "target_position"
        ]
    );
    assert_eq!(data.info.cameras.len(), 1);
    let (o, a) = (data.info.observation_len, data.info.action_len);
    let (ee, target) = (6, 9);
    let (mut checked, mut steps) = (0, 0);
    // The safety layer's previous command before the first recorded tick: none (zero).
    let mut previous: Option<Vec<f64>> = Some(vec![0.0; 3]);
    for (i, episode) in data.episodes.iter().enumerate() {
        assert!(episode.steps() <= 100, "episode {i}: {}", episode.steps());
        assert!(
            *episode.timeouts.last().unwrap(),
            "episode {i} ends at a time limit"
        );
        assert!(episode.rewards.iter().all(|r| *r == 0.0));
        // After a cut at a fault the loop sent fault actions: the previous command is unknown.
        if i > 0 && data.episodes[i - 1].steps() < 100 {
            previous = None;
        }
        // An episode cut for length is continued by the next one.
        if i > 0 && data.episodes[i - 1].steps() == 100 {
            let before = &data.episodes[i - 1];
            let last = before.steps() * o;
            assert_eq!(
                episode.observations[..o],
                before.observations[last..last + o]
            );
        }
        for t in 0..episode.steps() {
            let row = &episode.observations[t * o..(t + 1) * o];
            let action = &episode.actions[t * a..(t + 1) * a];
            // The servo: 0.1 x (target - ee), scaled uniformly into the action bounds
            // (+-0.01 m), as policies/src/scripted.rs computes it.
            let mut step: Vec<f64> = (0..3)
                .map(|k| 0.1 * (row[target + k] - row[ee + k]))
                .collect();
            let over = step.iter().map(|s| s.abs() / 0.01).fold(1.0, f64::max);
            step.iter_mut().for_each(|s| *s /= over);
            // Where the rate limit (0.005 m per tick) left the proposal alone, it was sent.
            let free = previous
                .as_ref()
                .is_some_and(|p| p.iter().zip(&step).all(|(p, s)| (p - s).abs() < 0.0049));
            if free {
                for k in 0..3 {
                    assert!(
                        (action[k] - step[k]).abs() < 1e-12,
                        "episode {i} step {t}: sent {action:?}, the servo asks {step:?} for this row"
                    );
                }
                checked += 1;
            }
            assert!(action.iter().all(|v| v.abs() <= 0.01 + 1e-12), "{action:?}");
            previous = Some(action.to_vec());
            steps += 1;
        }
        let frames = data.frames(i).unwrap().remove(0);
        assert!(!frames.is_empty(), "episode {i} has frames");
        assert!(frames.rows.windows(2).all(|w| w[0] < w[1]));
        assert!(
            frames.success.iter().all(|s| !s),
            "no ground truth on a run"
        );
    }
    assert!(checked * 2 > steps, "{checked} of {steps} steps checked");

    // The recording relabels and trains like any dataset.
    let relabelled = tmp.path().join("relabelled");
    ok(rlrt()
        .arg("relabel")
        .arg(&dir)
        .arg("--program")
        .arg(common::repo("rewards/programs/reach.rhai"))
        .arg("--out")
        .arg(&relabelled)
        .arg("--json")
        .output()
        .unwrap());
    let trained = ok(rlrt()
        .args(["train", "bc", "--data"])
        .arg(&relabelled)
        .arg("--out")
        .arg(tmp.path().join("bc"))
        .args([
            "--steps",
            "50",
            "--eval-every",
            "0",
            "--eval-episodes",
            "1",
            "--json",
        ])
        .output()
        .unwrap());
    assert_eq!(trained["steps"], 50, "{trained}");

    // A second run, in lockstep this time, continues the folder.
    let again = run(
        &config,
        &[
            "--sim",
            "--lockstep",
            "--seconds",
            "1",
            "--episode-seconds",
            "1",
        ],
        &dir,
    );
    assert_eq!(again["recording"]["episodes_written"], 1, "{again}");
    // Lockstep runs far faster than real time, and the camera still sends 30 frames per
    // simulated second: every one is recorded (the link hands the recorder each frame, not
    // just the newest), bar one or two captured before the episode's first row.
    let frames = again["recording"]["frames"].as_u64().unwrap();
    let skipped = again["recording"]["frames_skipped"].as_u64().unwrap();
    assert!((27..=31).contains(&frames), "{again}");
    assert!(skipped <= 2, "{again}");
    let before = data.episodes.len() as u64;
    assert_eq!(
        again["recording"]["episodes_in_dataset"],
        before + 1,
        "{again}"
    );
    assert_eq!(
        Dataset::open(&dir).unwrap().episodes.len() as u64,
        before + 1
    );
}

#[test]
fn a_kinematic_run_records_without_frames_and_training_asks_for_rewards_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recorded");
    let outcome = run(
        &common::repo("hw-configs/reach-arm-joint-space.toml"),
        &["--kinematic", "--lockstep", "--seconds", "2"],
        &dir,
    );
    assert_eq!(outcome["recording"]["episodes_written"], 1, "{outcome}");
    let steps = outcome["recording"]["steps"].as_u64().unwrap();
    assert!((190..=199).contains(&steps), "{outcome}");
    let data = Dataset::open(&dir).unwrap();
    assert!(data.info.cameras.is_empty());
    // Rewards are left for relabel: training on "none" is refused with the way out.
    let out = rlrt()
        .args(["train", "iql", "--data"])
        .arg(&dir)
        .arg("--out")
        .arg(tmp.path().join("iql"))
        .args(["--steps", "10"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("rlrt relabel"),
        "{stderr}"
    );

    // A folder that cannot be a dataset stops the run before it starts, naming it; a
    // dataset of another config is not mixed into.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let edited = tmp.path().join("edited.toml");
    std::fs::write(
        &edited,
        common::shipped_text("reach-arm-joint-space.toml") + "\n# edited\n",
    )
    .unwrap();
    for (config, into) in [
        (
            common::repo("hw-configs/reach-arm-joint-space.toml"),
            file.clone(),
        ),
        (edited, dir.clone()),
    ] {
        let out = rlrt()
            .args(["-q", "run"])
            .arg(&config)
            .args(["--kinematic", "--lockstep", "--seconds", "1", "--record"])
            .arg(&into)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(&*into.display().to_string()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(Dataset::open(&dir).unwrap().episodes.len(), 1);
}
