//! Ctrl-C (SIGINT): a control loop stops at the end of its tick and still reports; a command
//! without a loop (training, benchmarks) ends at once instead of ignoring the signal.

use crate::common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The rlrt binary with SIGINT at its default action, as a shell gives a foreground command.
/// A process inherits ignored signals, and a test harness started in the background (as a
/// non-interactive shell starts `cmd &`) has SIGINT ignored; rlrt leaves an ignored SIGINT
/// ignored in commands without a control loop, as programs should.
fn rlrt() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rlrt"));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    command
}

fn interrupt(child: &Child) {
    // SAFETY: sends SIGINT to a child process this test started and has not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0, "kill failed");
}

/// Waits up to `limit` for the child; kills it and fails the test past that.
fn exit_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {limit:?} after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_stops_a_run_at_a_tick_and_it_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reach.toml");
    let text =
        common::shipped_text("reach-arm.toml").replace("rlrt/reach-arm", "rlrt/test-signals");
    std::fs::write(&config, text).unwrap();
    let mut child = rlrt()
        .args(["-q", "run"])
        .arg(&config)
        .args(["--sim", "--seconds", "120", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    interrupt(&child);
    let status = exit_within(&mut child, Duration::from_secs(15));
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "{status:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The report is the interrupted run's: it ticked, and it stopped long before its 120 s
    // (the process lived about 4 s; 20 s of ticks at 100 Hz is a generous ceiling).
    let ticks = v["report"]["loop_stats"]["ticks"].as_u64().expect("ticks");
    assert!((1..2_000).contains(&ticks), "{ticks} ticks: {v}");
    assert!(v["report"]["fault_ticks"].is_u64(), "{v}");
    assert_eq!(v["report"]["estop_engaged"], false, "{v}");
}

#[test]
fn ctrl_c_ends_a_command_without_a_control_loop_at_once() {
    let mut child = rlrt()
        .args(["-q", "bench", "iql", "--steps", "10000000", "--no-peer"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    interrupt(&child);
    let status = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

#[test]
fn ctrl_c_saves_training_at_its_step_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ckpt = dir.path().join("ckpt");
    let status = rlrt()
        .args(["-q", "record"])
        .arg(common::repo("hw-configs/reach-arm.toml"))
        .args(["--episodes", "2", "--noise-std", "0.01", "--out"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let train = |steps: &str, resume: bool| {
        let mut cmd = rlrt();
        cmd.args(["-q", "train", "bc", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&ckpt)
            .args([
                "--steps",
                steps,
                "--eval-every",
                "0",
                "--eval-episodes",
                "1",
            ])
            .args(["--hidden", "32,32", "--batch-size", "32", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if resume {
            cmd.arg("--resume");
        }
        cmd
    };
    let mut child = train("100000000", false).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    interrupt(&child);
    let status = exit_within(&mut child, Duration::from_secs(15));
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["interrupted"], true, "{outcome}");
    let steps = outcome["steps"].as_u64().unwrap();
    assert!(ckpt.join("checkpoint.json").exists());

    // The checkpoint holds exactly that step: resuming for 20 more ends at steps + 20.
    let target = (steps + 20).to_string();
    let out = train(&target, true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed["steps"].as_u64(), Some(steps + 20), "{resumed}");
    assert_eq!(resumed["interrupted"], false, "{resumed}");
}
