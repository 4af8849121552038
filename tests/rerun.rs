//! rerun recordings, read back with rerun's own Python SDK (`rerun-sdk`, the wheel that
//! ships the viewer): a sim run's `.rrd` holds the reward series the run computed, value for
//! value, and the camera frames it logged; a replay compares two reward programs on the
//! same episodes; a run killed mid-way leaves a readable recording.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn rlrt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rlrt"));
    cmd.arg("-q").env("RERUN_ANALYTICS", "0");
    cmd
}

fn read_rrd(path: &Path) -> Value {
    common::read_rrd(path, false)
}

/// The reach arm with its reward program, on a link prefix of its own, written to `dir`.
fn reach_config(dir: &Path, prefix: &str) -> PathBuf {
    let text = common::shipped_text("reach-arm.toml").replace("rlrt/reach-arm", prefix);
    let path = dir.join("arm.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn json_stdout(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "rlrt failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// `rerun rrd verify` (rerun's own command line, from the rerun-sdk wheel) accepts the file.
fn verify_rrd(file: &Path) {
    let verify = Command::new(common::repo(".deps/python/rerun_sdk/rerun_cli/rerun"))
        .args(["rrd", "verify"])
        .arg(file)
        .env("RERUN_ANALYTICS", "0")
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "rerun rrd verify {}: {}",
        file.display(),
        String::from_utf8_lossy(&verify.stderr)
    );
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn sim_run_recording_holds_the_rewards_and_frames_the_run_computed() {
    let dir = tempfile::tempdir().unwrap();
    let config = reach_config(dir.path(), "rlrt/test-rerun-run");
    let rrd = dir.path().join("out/run.rrd");
    let out = rlrt()
        .args(["run", "--sim", "--seconds", "3", "--json", "--rerun"])
        .arg(format!("save={}", rrd.display()))
        .arg(&config)
        .output()
        .unwrap();
    let run = json_stdout(&out);
    let rerun = &run["rerun"];
    assert_eq!(rerun["dropped"], 0, "{rerun}");
    assert_eq!(rerun["errors"], 0, "{rerun}");
    assert_eq!(run["report"]["loop_stats"]["telemetry_dropped"], 0);
    let ticks = run["report"]["loop_stats"]["ticks"].as_u64().unwrap();
    assert_eq!(rerun["ticks"].as_u64().unwrap(), ticks);

    let file = read_rrd(&rrd);
    let timelines: Vec<&str> = file["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in ["tick", "time", "wall_time"] {
        assert!(
            timelines.contains(&t),
            "timeline {t} missing: {timelines:?}"
        );
    }
    assert!(
        file["blueprints"].as_u64().unwrap() >= 1,
        "no default blueprint"
    );

    // Every term of the reward program, value for value: the run's own summary (count,
    // min, mean, max) must be what the file holds.
    let summary = &run["rewards"][0];
    assert_eq!(summary["name"], "reach-program");
    let evaluations = summary["evaluations"].as_u64().unwrap();
    assert!(evaluations > 100, "{summary}");
    assert_eq!(summary["invalid"], 0);
    let scalars = &file["scalars"];
    let terms = summary["terms"].as_array().unwrap();
    assert_eq!(terms.len(), 4, "{summary}");
    for term in terms.iter().chain(std::iter::once(&summary["total"])) {
        let name = term["name"].as_str().unwrap();
        let series = &scalars[format!("/rewards/reach-program/{name}")];
        let values: Vec<f64> = series["values"]
            .as_array()
            .unwrap_or_else(|| panic!("no series for term {name}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values.len() as u64, evaluations, "term {name}");
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        for (what, got, want) in [("min", min, &term["min"]), ("max", max, &term["max"])] {
            assert_eq!(got, want.as_f64().unwrap(), "term {name} {what}");
        }
        assert!(
            close(mean, term["mean"].as_f64().unwrap()),
            "term {name} mean"
        );
    }
    // The total is the sum of the terms, tick by tick.
    let total = &scalars["/rewards/reach-program/total"]["values"];
    let tick0: Vec<f64> = terms
        .iter()
        .map(|t| {
            scalars[format!("/rewards/reach-program/{}", t["name"].as_str().unwrap())]["values"][7]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(close(tick0.iter().sum(), total[7].as_f64().unwrap()));

    // Frames: as many as the run logged, and no more than the link delivered.
    let frames = file["images"]["/camera/front"].as_u64().unwrap_or(0);
    assert!(frames >= 30, "only {frames} frames in 3 s at 30 Hz");
    assert_eq!(frames, rerun["frames"].as_u64().unwrap());

    // Joints against their limits, actions, timing.
    let config = rlrt_runtime::config::load(&config).unwrap();
    for joint in &config.joints {
        let base = format!("/robot/joints/{}", joint.name);
        assert!(
            scalars[format!("{base}/position")]["values"]
                .as_array()
                .unwrap()
                .len()
                > 100
        );
        let lower = &scalars[format!("{base}/lower_limit")]["values"];
        assert_eq!(lower[0].as_f64().unwrap(), joint.position_min_rad);
        let upper = &scalars[format!("{base}/upper_limit")]["values"];
        assert_eq!(upper[0].as_f64().unwrap(), joint.position_max_rad);
    }
    for axis in ["x", "y", "z"] {
        let proposed = scalars[format!("/action/{axis}/proposed")]["values"]
            .as_array()
            .unwrap()
            .len() as u64;
        assert_eq!(proposed, ticks, "action {axis}");
    }
    assert_eq!(
        scalars["/timing/jitter_us"]["values"]
            .as_array()
            .unwrap()
            .len() as u64,
        ticks
    );
}

#[test]
fn replay_scores_a_dataset_with_two_programs_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let config = reach_config(dir.path(), "rlrt/test-rerun-replay");
    let data = dir.path().join("data");
    let out = rlrt()
        .args([
            "record",
            "--episodes",
            "2",
            "--noise-std",
            "0.005",
            "--json",
            "--out",
        ])
        .arg(&data)
        .arg(&config)
        .output()
        .unwrap();
    json_stdout(&out);

    // A second program that only rewards closeness: compared with the shipped one.
    let other = dir.path().join("closeness.rhai");
    std::fs::write(
        &other,
        "#{ closeness: -2.0 * distance(ee_position, target_position) }\n",
    )
    .unwrap();
    let rrd = dir.path().join("replay.rrd");
    let out = rlrt()
        .args(["replay", "--json", "--program"])
        .arg(format!(
            "shipped={}",
            common::repo("rewards/programs/reach.rhai").display()
        ))
        .arg("--program")
        .arg(format!("closeness={}", other.display()))
        .arg("--rerun")
        .arg(format!("save={}", rrd.display()))
        .arg(&data)
        .output()
        .unwrap();
    let replay = json_stdout(&out);
    assert_eq!(replay["episodes"], 2);
    let steps = replay["steps"].as_u64().unwrap();
    assert!(steps > 50, "{replay}");
    assert_eq!(replay["rerun"]["dropped"], 0);

    let file = read_rrd(&rrd);
    let scalars = &file["scalars"];
    for (i, name) in ["shipped", "closeness"].iter().enumerate() {
        let values: Vec<f64> = scalars[format!("/rewards/{name}/total")]["values"]
            .as_array()
            .unwrap_or_else(|| panic!("no series for {name}"))
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(values.len() as u64, steps, "{name}");
        let program = &replay["programs"][i];
        assert_eq!(program["name"], *name);
        let mean_return = values.iter().sum::<f64>() / 2.0;
        assert!(
            close(mean_return, program["mean_return"].as_f64().unwrap()),
            "{name}"
        );
    }
    // The closeness program's only term is twice the shipped program's distance term.
    let distance = &scalars["/rewards/shipped/distance"]["values"];
    let closeness = &scalars["/rewards/closeness/closeness"]["values"];
    for t in [0, steps as usize / 2, steps as usize - 1] {
        assert!(close(
            2.0 * distance[t].as_f64().unwrap(),
            closeness[t].as_f64().unwrap()
        ));
    }
    assert_eq!(
        scalars["/rewards/recorded/total"]["values"]
            .as_array()
            .unwrap()
            .len() as u64,
        steps
    );
    let ends = file["text"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["text"].as_str().unwrap().contains("ended after"))
        .count();
    assert_eq!(ends, 2);
}

#[test]
fn replay_refuses_a_program_reading_what_was_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // Record without joint velocities in the observation.
    let text = common::shipped_text("reach-arm.toml")
        .replace("rlrt/reach-arm", "rlrt/test-rerun-refuse")
        .replace(
            "state = [\"joint_positions\", \"joint_velocities\", \"ee_position\", \"target_position\"]",
            "state = [\"joint_positions\", \"ee_position\", \"target_position\"]",
        );
    let config = dir.path().join("arm.toml");
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");
    let out = rlrt()
        .args(["record", "--episodes", "1", "--uniform", "--json", "--out"])
        .arg(&data)
        .arg(&config)
        .output()
        .unwrap();
    json_stdout(&out);
    let still = dir.path().join("still.rhai");
    std::fs::write(&still, "#{ still: -norm(joint_velocities) }\n").unwrap();
    let out = rlrt()
        .args(["replay", "--program"])
        .arg(format!("still={}", still.display()))
        .arg("--rerun")
        .arg(format!("save={}", dir.path().join("x.rrd").display()))
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("joint_velocities") && err.contains("did not record"),
        "{err}"
    );
    // The shipped program reads only what was recorded: accepted.
    let out = rlrt()
        .args(["replay", "--json", "--rerun"])
        .arg(format!("save={}", dir.path().join("y.rrd").display()))
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(json_stdout(&out)["programs"][0]["name"], "reach-program");
}

#[test]
fn a_run_killed_mid_way_leaves_a_readable_recording() {
    let dir = tempfile::tempdir().unwrap();
    let config = reach_config(dir.path(), "rlrt/test-rerun-kill");
    let rrd = dir.path().join("killed.rrd");
    let mut child = rlrt()
        .args(["run", "--sim", "--seconds", "60", "--rerun"])
        .arg(format!("save={}", rrd.display()))
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    child.kill().unwrap(); // SIGKILL: nothing is flushed on the way out
    child.wait().unwrap();
    let file = read_rrd(&rrd);
    let ticks = file["scalars"]["/timing/jitter_us"]["ticks"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(ticks > 50, "only {ticks} ticks survived the kill");
}

#[test]
fn bad_destinations_are_refused_with_what_is_expected() {
    let out = rlrt()
        .args(["run", "--kinematic", "--ticks", "10", "--rerun", "save"])
        .arg(common::repo("hw-configs/reach-arm-joint-space.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("save=<file.rrd>"), "{err}");

    let out = rlrt()
        .args(["run", "--kinematic", "--ticks", "10", "--rerun"])
        .arg("save=/proc/rlrt-cannot-write-here/x.rrd")
        .arg(common::repo("hw-configs/reach-arm-joint-space.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/proc/rlrt-cannot-write-here"), "{err}");
}

#[test]
fn demo_recording_verifies_and_puts_frames_rewards_and_faults_on_one_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let rrd = dir.path().join("demo.rrd");
    let out = rlrt()
        .args([
            "demo",
            "--episodes",
            "2",
            "--episode-seconds",
            "2",
            "--json",
            "--rerun",
        ])
        .arg(format!("save={}", rrd.display()))
        .output()
        .unwrap();
    let demo = json_stdout(&out);
    assert_eq!(demo["success_rate"], 1.0, "{demo}");

    // rerun's own command line (from the rerun-sdk wheel) accepts the file.
    verify_rrd(&rrd);

    let file = read_rrd(&rrd);
    assert!(file["blueprints"].as_u64().unwrap() >= 1);
    let frames = file["images"]["/camera/front"].as_u64().unwrap_or(0);
    assert!(frames > 50, "{frames} frames");
    assert_eq!(frames, demo["rerun"]["frames"].as_u64().unwrap());
    let total = &file["scalars"]["/rewards/reach-program/total"]["ticks"];
    assert_eq!(
        total.as_array().unwrap().len() as u64,
        demo["rewards"][0]["evaluations"].as_u64().unwrap()
    );
    let texts: Vec<&str> = file["text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("fault: stale_observation")),
        "{texts:?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("ended: success"))
            .count(),
        2,
        "{texts:?}"
    );
}

#[test]
fn connect_streams_to_a_running_rerun_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = reach_config(dir.path(), "rlrt/test-rerun-connect");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // rerun's own command line as the receiving end: it saves what it is sent.
    let received = dir.path().join("received.rrd");
    let mut server = Command::new(common::repo(".deps/python/rerun_sdk/rerun_cli/rerun"))
        .args(["--port", &port.to_string(), "--save"])
        .arg(&received)
        .env("RERUN_ANALYTICS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let out = rlrt()
        .args(["run", "--sim", "--seconds", "2", "--json", "--rerun"])
        .arg(format!("connect=127.0.0.1:{port}"))
        .arg(&config)
        .output()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = server.kill();
    let _ = server.wait();
    let run = json_stdout(&out);
    assert_eq!(run["rerun"]["dropped"], 0, "{run}");
    let file = read_rrd(&received);
    let total = file["scalars"]["/rewards/reach-program/total"]["values"]
        .as_array()
        .map_or(0, Vec::len) as u64;
    assert!(total > 0, "no reward logged: {run}");
    assert_eq!(total, run["rewards"][0]["evaluations"].as_u64().unwrap());
    assert_eq!(
        file["images"]["/camera/front"].as_u64().unwrap_or(0),
        run["rerun"]["frames"].as_u64().unwrap()
    );
}

/// A `save=` recording that outlasts a part goes on in `<stem>.1.rrd`, ...: each file closes
/// with its footer (rerun's verifier accepts it) and together they hold every tick once.
#[test]
fn a_long_recording_goes_on_in_parts_that_each_verify() {
    let dir = tempfile::tempdir().unwrap();
    let config = reach_config(dir.path(), "rlrt/test-rerun-parts");
    let rrd = dir.path().join("long.rrd");
    let out = rlrt()
        .env("RLRT_RERUN_PART_SECONDS", "1")
        .args(["run", "--sim", "--seconds", "4", "--json", "--rerun"])
        .arg(format!("save={}", rrd.display()))
        .arg(&config)
        .output()
        .unwrap();
    let run = json_stdout(&out);
    let rerun = &run["rerun"];
    assert_eq!(rerun["errors"], 0, "{rerun}");
    assert_eq!(rerun["dropped"], 0, "{rerun}");
    let files: Vec<PathBuf> = rerun["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| PathBuf::from(f.as_str().unwrap()))
        .collect();
    // A part every second of wall time, checked at each flush (every 2 s for a file).
    assert!(files.len() >= 2, "{rerun}");
    assert_eq!(files[0], rrd);
    assert_eq!(files[1], dir.path().join("long.1.rrd"));
    let mut ticks = Vec::new();
    for file in &files {
        verify_rrd(file);
        let content = read_rrd(file);
        let jitter = &content["scalars"]["/timing/jitter_us"]["ticks"];
        ticks.extend(
            jitter
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap()),
        );
    }
    ticks.sort_unstable();
    let logged = ticks.len() as u64;
    ticks.dedup();
    assert_eq!(ticks.len() as u64, logged, "a tick is in two parts");
    assert_eq!(
        logged,
        run["report"]["loop_stats"]["ticks"].as_u64().unwrap()
    );
}
