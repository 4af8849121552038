//! A robot driver written in Python with the `eclipse-zenoh` package (tests/python/
//! robot_driver.py) talks to the runtime: it publishes CDR states, decodes rlrt's commands
//! with the standard library's `struct`, and follows them. `cargo xtask setup` installs the
//! package into `.deps/python`.

use crate::common;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rlrt::linked::LinkedRuntime;
use rlrt_runtime::telemetry::telemetry_channel;
use rlrt_runtime::RunLimit;

fn python() -> Command {
    let mut cmd = Command::new("python3");
    cmd.env("PYTHONPATH", common::repo(".deps/python"));
    cmd
}

#[test]
fn python_driver_follows_rlrt_commands() {
    let probe = python()
        .args(["-c", "import zenoh"])
        .output()
        .expect("python3 must be installed");
    assert!(
        probe.status.success(),
        "the eclipse-zenoh package is missing: run `cargo xtask setup` (or `cargo xtask test`)\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = common::shipped_config("reach-arm-joint-space.toml", &[]);
    config.link.key_prefix = "rlrt/python-driver".into();
    config.link.listen = vec![format!("tcp/127.0.0.1:{port}")];

    let LinkedRuntime { control, link, .. } = LinkedRuntime::connect(&config, 0).unwrap();
    let (tx, rx) = telemetry_channel(10_000, control.stats());
    let mut control = control.with_telemetry(tx);

    let driver = python()
        .arg(common::repo("tests/python/robot_driver.py"))
        .args([
            "--connect",
            &format!("tcp/127.0.0.1:{port}"),
            "--prefix",
            "rlrt/python-driver",
        ])
        .args(["--seconds", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stats = link.stats();
    let start = Instant::now();
    while stats.states_accepted.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no state from the Python driver"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = control.run(
        &AtomicBool::new(false),
        RunLimit {
            max_ticks: Some(300),
        },
    );
    let mut last_command = None;
    rx.drain(|r| {
        if r.published {
            last_command = Some((r.command_seq, r.command().to_vec()));
        }
    });
    let out = driver.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // A loaded machine (CI runs every test at once) can stall a wall-clock loop long enough
    // for a few stale-observation faults: the safety layer working. The policy must still
    // have driven most ticks.
    assert!(report.fault_ticks * 2 < report.loop_stats.ticks, "{report}");
    assert_eq!(stats.states_malformed.load(Ordering::Relaxed), 0);
    assert_eq!(
        summary["bad"], 0,
        "the driver could not decode some commands"
    );
    assert!(summary["commands"].as_u64().unwrap() >= 290, "{summary}");
    // The driver decoded exactly what the runtime sent last.
    let (seq, values) = last_command.unwrap();
    assert_eq!(summary["last"]["seq"], seq);
    let decoded: Vec<f64> = summary["last"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(decoded, values);
    // And the driver's arm went where rlrt's controller sent it.
    let finals: Vec<f64> = summary["final_positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (q, t) in finals.iter().zip([0.8, 0.4, -0.9]) {
        assert!((q - t).abs() < 0.05, "{finals:?}");
    }
}

/// `rlrt run --json` against the Python driver sending camera frames, the first few of them
/// malformed: the run goes on, and its report lists every link counter (zeros included) and
/// what each camera received and rejected.
#[test]
fn run_reports_every_link_counter_and_the_malformed_camera_frames() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reach.toml");
    let text = common::shipped_text("reach-arm-joint-space.toml").replace(
        "key_prefix = \"rlrt/reach-arm\"",
        &format!("key_prefix = \"rlrt/camera-junk\"\nlisten = [\"tcp/127.0.0.1:{port}\"]"),
    );
    std::fs::write(&config, text).unwrap();
    let mut driver = python()
        .arg(common::repo("tests/python/robot_driver.py"))
        .args(["--connect", &format!("tcp/127.0.0.1:{port}")])
        .args(["--prefix", "rlrt/camera-junk", "--seconds", "120"])
        .args(["--camera", "front", "--width", "84", "--height", "84"])
        .args(["--junk-frames", "6"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_rlrt"))
        .args(["run", "--seconds", "4", "--wait-seconds", "60", "--json"])
        .arg(&config)
        .output();
    let _ = driver.kill();
    let _ = driver.wait();
    let run = run.unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let counter = |name: &str| {
        v["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv[0] == name)
            .unwrap_or_else(|| panic!("no counter {name} in {}", v["link"]))[1]
            .as_u64()
            .unwrap()
    };
    // Every counter is there, zeros included.
    for name in [
        "states_received",
        "states_accepted",
        "states_malformed",
        "states_non_finite",
        "states_out_of_order",
        "commands_sent",
        "command_send_failures",
        "estop_malformed",
        "camera_frames_received",
        "camera_frames_rejected",
    ] {
        counter(name);
    }
    assert!(counter("states_accepted") > 0, "{v}");
    assert_eq!(counter("states_malformed"), 0, "{v}");
    // The junk frames the driver sent once the run was listening were counted and dropped,
    // the good ones after them accepted (how many of each arrive before the run ends
    // depends on the machine's load: at least one of each, at most the 6 junk ones).
    let camera = &v["cameras"][0];
    assert_eq!(camera["name"], "front", "{v}");
    let rejected = camera["rejected"].as_u64().unwrap();
    assert!((1..=6).contains(&rejected), "{camera}");
    assert!(camera["frames"].as_u64().unwrap() >= 1, "{camera}");
    assert_eq!(counter("camera_frames_rejected"), rejected);
    assert_eq!(
        counter("camera_frames_received"),
        camera["frames"].as_u64().unwrap()
    );
}
