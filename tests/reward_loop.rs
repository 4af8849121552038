//! Reward programs in a real run: evaluated on every tick with an observation, per-term
//! summaries reported, and a program edited during the run is checked and hot-swapped (a
//! broken edit is rejected and the old version stays in service).

use crate::common;

use std::process::Command;
use std::time::Duration;

#[test]
fn reward_program_runs_every_tick_and_hot_reloads_during_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("reach.rhai");
    std::fs::write(
        &program,
        "let d = distance(ee_position, target_position);\n#{ reach: -d }\n",
    )
    .unwrap();
    let config = dir.path().join("arm.toml");
    let text = std::fs::read_to_string(common::repo("hw-configs/reach-arm.toml"))
        .unwrap()
        .replace("rlrt/reach-arm", "rlrt/test-reward-loop")
        .replace(
            "program_path = \"../rewards/programs/reach.rhai\"",
            "program_path = \"reach.rhai\"",
        );
    std::fs::write(&config, text).unwrap();

    let run = Command::new(env!("CARGO_BIN_EXE_rlrt"))
        .args(["-q", "run", "--sim", "--seconds", "4", "--json"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Edits are saved whole (written beside, then renamed over, as editors do): a plain
    // truncating write can be read half-done, which counts as one more rejected edit.
    let save = |text: &str| {
        let partial = dir.path().join("reach.rhai.partial");
        std::fs::write(&partial, text).unwrap();
        std::fs::rename(&partial, &program).unwrap();
    };
    // A broken edit: an unknown name. Rejected; the first version keeps running.
    save("#{ reach: -distance(ee_position, goal) }\n");
    std::thread::sleep(Duration::from_millis(800));
    // A good edit with a new term: swapped in.
    save("let d = distance(ee_position, target_position);\n#{ reach: -d, near: indicator(d < 0.05) }\n");
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ticks = v["report"]["loop_stats"]["ticks"].as_u64().unwrap();
    assert_eq!(ticks, 400);
    let r = &v["rewards"][0];
    assert_eq!(r["name"], "reach-program");
    // Every tick that had an observation was evaluated, none invalid.
    let evaluations = r["evaluations"].as_u64().unwrap();
    assert!(evaluations >= ticks - 5 && evaluations <= ticks, "{r}");
    assert_eq!(r["invalid"], 0);
    assert_eq!(r["rejected_reloads"], 1, "{r}\n{stderr}");
    assert_eq!(r["reloads"], 1, "{r}\n{stderr}");
    let terms: Vec<&str> = r["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        terms.contains(&"reach") && terms.contains(&"near"),
        "{terms:?}"
    );
    // The arm reached the target: the reach term rose to about zero.
    let reach = r["terms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "reach")
        .unwrap();
    assert!(reach["max"].as_f64().unwrap() > -0.01, "{reach}");
    assert!(reach["min"].as_f64().unwrap() < -0.05, "{reach}");
}

#[test]
fn a_broken_reward_program_stops_the_run_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.rhai"), "loop { }\n").unwrap();
    let config = dir.path().join("arm.toml");
    let text = std::fs::read_to_string(common::repo("hw-configs/reach-arm.toml"))
        .unwrap()
        .replace(
            "program_path = \"../rewards/programs/reach.rhai\"",
            "program_path = \"bad.rhai\"",
        );
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rlrt"))
        .args(["run", "--sim", "--seconds", "1"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A program the user must fix is a config error: exit code 2, as `rlrt check` gives.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.rhai"), "{stderr}");
}
