//! `rlrt reward ...` and `rlrt bench reward-program` as a user runs them.

use crate::common;

use std::process::Command;

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

#[test]
fn reward_check_prints_term_ranges_and_exits_2_on_a_bad_program() {
    let out = rlrt()
        .args(["reward", "check"])
        .arg(common::repo("hw-configs/reach-arm.toml"))
        .arg(common::repo("rewards/programs/reach.rhai"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for term in ["reach", "distance", "success", "smooth", "total"] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(term)),
            "{stdout}"
        );
    }
    assert!(stdout.contains("256 sampled states"), "{stdout}");

    // push.rhai reads block_position and goal_position, which the reach arm lacks.
    let out = rlrt()
        .args(["reward", "check"])
        .arg(common::repo("hw-configs/reach-arm.toml"))
        .arg(common::repo("rewards/programs/push.rhai"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("push.rhai:4:") && stderr.contains("unknown variable `block_position`"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let hostile = dir.path().join("hostile.rhai");
    std::fs::write(
        &hostile,
        "let i = 0;\nwhile true { i += 1; }\n#{ a: 1.0 }\n",
    )
    .unwrap();
    let out = rlrt()
        .args(["reward", "check"])
        .arg(common::repo("hw-configs/reach-arm.toml"))
        .arg(&hostile)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("hostile.rhai:2:") && stderr.contains("stopped"),
        "{stderr}"
    );
}

#[test]
fn reward_prompt_prints_the_environment_and_the_task() {
    let out = rlrt()
        .args(["reward", "prompt"])
        .arg(common::repo("hw-configs/push-arm.toml"))
        .arg("push the block onto the goal")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for part in [
        "Task: push the block onto the goal",
        "- block_position: array[3] of float [m]",
        "```rhai",
    ] {
        assert!(stdout.contains(part), "prompt lacks {part:?}");
    }
}

#[test]
fn bench_reward_program_reports_rlrt_and_the_python_peer_computing_the_same_reward() {
    let out = rlrt()
        .args(["bench", "reward-program", "--calls", "3000", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["bench"], "reward-program");
    assert!(v["metrics"]["evaluate"]["p99"].as_f64().unwrap() > 0.0);
    assert!(v["evaluations_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        v.get("peer_error").is_none(),
        "the numpy peer did not run (run `cargo xtask setup`): {}",
        v["peer_error"]
    );
    assert!(
        v["peers"]["python_numpy"]["evaluate"]["p99"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The peer is the same reward: totals agree on the compared states.
    assert!(
        v["max_abs_total_difference"].as_f64().unwrap() < 1e-9,
        "{v}"
    );
}
