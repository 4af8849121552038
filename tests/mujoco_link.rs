//! The runtime and the MuJoCo simulator over real zenoh sessions on loopback: free-running
//! with cameras, lockstep determinism, ground-truth evaluation, and `rlrt sim` + `rlrt run`
//! as two processes.

use crate::common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rlrt::linked::LinkedRuntime;
use rlrt::loopback::{free_port, loopback_configs, serve_mujoco};
use rlrt_runtime::link::{open_session, Frame};
use rlrt_runtime::protocol::{self, EpisodeOp, FLAG_LOCKSTEP_STEP};
use rlrt_runtime::telemetry::{telemetry_channel, TickRecord};
use rlrt_runtime::{Observation, RobotConfig, RunLimit};
use rlrt_sim::ServeMode;
use zenoh::Wait;

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn reach(prefix: &str, replace: &[(&str, &str)]) -> RobotConfig {
    let mut c = common::shipped_config("reach-arm.toml", replace);
    c.link.key_prefix = prefix.to_owned();
    c
}

#[test]
fn free_running_mujoco_with_a_camera_for_1000_ticks() {
    // A generous stale timeout: this test is about the link and the camera, and the other
    // tests of this file load both cores at the same time (the watchdog has its own tests).
    let config = reach(
        "rlrt/test-mj-free",
        &[
            ("control_rate_hz = 100.0", "control_rate_hz = 500.0"),
            (
                "stale_observation_timeout_ms = 50.0",
                "stale_observation_timeout_ms = 250.0",
            ),
        ],
    );
    let (rc, sc) = loopback_configs(&config, free_port().unwrap());
    let LinkedRuntime { control, link, .. } = LinkedRuntime::connect(&rc, 0).unwrap();
    let (tx, rx) = telemetry_channel(100_000, control.stats());
    let mut control = control.with_telemetry(tx);
    let session = open_session(&sc.link).unwrap();
    let sim = serve_mujoco(
        &session,
        &sc,
        5,
        ServeMode::FreeRun { rate_hz: 500.0 },
        true,
    )
    .unwrap();
    let link_stats = link.stats();
    wait_for("the first state", Duration::from_secs(10), || {
        link_stats.states_accepted.load(Ordering::Relaxed) > 0
    });
    let report = control.run(
        &AtomicBool::new(false),
        RunLimit {
            max_ticks: Some(1000),
        },
    );
    assert_eq!(report.loop_stats.ticks, 1000);
    // A loaded machine (CI runs every test at once) can stall a wall-clock loop long enough
    // for a few stale-observation faults: the safety layer working. The policy must still
    // have driven most ticks.
    assert!(report.fault_ticks * 2 < report.loop_stats.ticks, "{report}");
    let mut records: Vec<TickRecord> = Vec::new();
    rx.drain(|r| records.push(*r));
    common::assert_commands_safe(&rc, &records);
    let stats = sim.stats();
    assert_eq!(stats.out_of_limit_commands.load(Ordering::Relaxed), 0);
    assert_eq!(stats.render_failures.load(Ordering::Relaxed), 0);
    assert_eq!(link_stats.states_malformed.load(Ordering::Relaxed), 0);

    // 2 s of a 30 Hz camera: about 60 frames, each the configured size, none rejected.
    let cameras = link.cameras();
    let slot = &cameras.slots()[0];
    let received = slot.received.load(Ordering::Relaxed);
    assert!((40..=80).contains(&received), "{received} frames");
    assert_eq!(slot.rejected.load(Ordering::Relaxed), 0);
    // Both sessions have shared memory on (the default) and share this host: every frame
    // was published from, and arrived in, zenoh shared memory.
    assert_eq!(
        slot.received_shared.load(Ordering::Relaxed),
        received,
        "frames not in shared memory"
    );
    assert!(stats.frames_shared.load(Ordering::Relaxed) >= received);
    let mut frame = Frame::default();
    assert!(cameras.latest(0, &mut frame));
    assert_eq!(frame.data.len(), 84 * 84 * 3);
    assert!(frame.data.iter().any(|&p| p != frame.data[0]));

    // The servo reached the target: the simulator's ground truth says so, and the seed
    // of the episode is the one the simulator started with.
    let e = link.query_evaluation(Duration::from_secs(2)).unwrap();
    assert_eq!(e.seed, 5);
    assert!(e.success, "{e:?}");
    // It stepped alongside the ticks (how close to real time depends on the machine's load;
    // `rlrt bench link` measures that).
    assert!(e.steps > 0, "{e:?}");
}

/// Runs `steps` lockstep steps from `seed` and returns every state the simulator
/// published, as bits (positions, velocities, efforts, sensors), seen by a third session.
fn lockstep_trajectory(seed: u64, steps: u64) -> (Vec<u64>, protocol::Evaluation) {
    let config = reach(&format!("rlrt/test-mj-lockstep-{seed}"), &[]);
    let (rc, sc) = loopback_configs(&config, free_port().unwrap());
    let mut rt = LinkedRuntime::connect(&rc, FLAG_LOCKSTEP_STEP).unwrap();
    let session = open_session(&sc.link).unwrap();
    let _sim = serve_mujoco(&session, &sc, seed, ServeMode::Lockstep, false).unwrap();

    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let _recorder = {
        let seen = seen.clone();
        let (dof, sensors) = (config.dof(), config.observation.sensor_values);
        let mut o = Observation::empty(dof, sensors);
        rt.link
            .session()
            .declare_subscriber(&rt.link.keys().state)
            .callback_mut(move |sample| {
                protocol::decode_state(&sample.payload().to_bytes(), dof, sensors, &mut o).unwrap();
                let mut seen = seen.lock().unwrap();
                for v in o.joint_positions[..dof]
                    .iter()
                    .chain(&o.joint_velocities[..dof])
                    .chain(&o.joint_efforts[..dof])
                    .chain(&o.sensors[..sensors])
                {
                    seen.push(v.to_bits());
                }
            })
            .wait()
            .unwrap()
    };
    // The simulator's first state may be published before the sessions meet: ask for the
    // seeded reset until a state arrives, then let stragglers settle.
    let stats = rt.link.stats();
    wait_for("the first state", Duration::from_secs(10), || {
        if stats.states_accepted.load(Ordering::Relaxed) == 0 {
            rt.link.send_episode(EpisodeOp::Reset { seed }).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        stats.states_accepted.load(Ordering::Relaxed) > 0
    });
    std::thread::sleep(Duration::from_millis(200));
    seen.lock().unwrap().clear();

    let ticks = rt.control.stats();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (rt, stop_ref) = (&mut rt, &stop);
        let worker = scope.spawn(move || rt.tick_on_arrival(stop_ref, true));
        wait_for("the lockstep steps", Duration::from_secs(30), || {
            ticks.ticks.load(Ordering::Relaxed) > steps
        });
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap();
    });
    let evaluation = rt.link.query_evaluation(Duration::from_secs(2)).unwrap();
    let per_state = 3 * config.dof() + config.observation.sensor_values;
    let mut trace = seen.lock().unwrap().clone();
    trace.truncate(steps as usize * per_state);
    assert_eq!(
        trace.len(),
        steps as usize * per_state,
        "too few states seen"
    );
    (trace, evaluation)
}

#[test]
fn lockstep_runs_with_the_same_seed_are_bit_identical() {
    let (a, ea) = lockstep_trajectory(11, 300);
    let (b, eb) = lockstep_trajectory(11, 300);
    assert!(a == b, "the two lockstep trajectories differ");
    // The scripted servo solved the task in lockstep too.
    assert!(ea.success && eb.success, "{ea:?} {eb:?}");
    // A different seed is a different episode.
    let (c, _) = lockstep_trajectory(12, 300);
    assert!(a != c);
}

#[test]
fn sim_and_run_as_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().unwrap();
    let text =
        common::shipped_text("reach-arm.toml").replace("rlrt/reach-arm", "rlrt/test-two-processes");
    let write = |name: &str, endpoint_key: &str| {
        let path = dir.path().join(name);
        let text = text.replace(
            "[link]\nmode = \"peer\"",
            &format!("[link]\nmode = \"peer\"\n{endpoint_key} = [\"tcp/127.0.0.1:{port}\"]"),
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let runtime_config = write("runtime.toml", "listen");
    let sim_config = write("sim.toml", "connect");
    let rlrt = env!("CARGO_BIN_EXE_rlrt");
    let sim = Command::new(rlrt)
        .args(["-q", "sim", "--seconds", "6", "--json"])
        .arg(&sim_config)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = Command::new(rlrt)
        .args(["-q", "run", "--seconds", "2", "--json"])
        .arg(&runtime_config)
        .output()
        .unwrap();
    let sim = sim.wait_with_output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(sim.status.success());
    let run: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    assert_eq!(run["report"]["loop_stats"]["ticks"], 200);
    let accepted = run["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv[0] == "states_accepted")
        .map(|kv| kv[1].as_u64().unwrap())
        .unwrap();
    assert!(accepted >= 150, "{run}");
    assert!(sim["commands"].as_u64().unwrap() >= 150, "{sim}");
    assert_eq!(sim["out_of_limit_commands"], 0);
    assert_eq!(sim["malformed_commands"], 0);
    assert!(sim["frames_published"].as_u64().unwrap() > 0);
    // Two processes on one host: the simulator's frames went out from shared memory.
    assert_eq!(sim["frames_shared"], sim["frames_published"], "{sim}");
}

#[test]
fn camera_frames_travel_as_bytes_with_shared_memory_off() {
    let config = reach(
        "rlrt/test-mj-no-shm",
        &[(
            "key_prefix = \"rlrt/reach-arm\"",
            "key_prefix = \"rlrt/reach-arm\"\nshared_memory = false",
        )],
    );
    assert!(!config.link.shared_memory);
    let (rc, sc) = loopback_configs(&config, free_port().unwrap());
    let LinkedRuntime { link, .. } = LinkedRuntime::connect(&rc, 0).unwrap();
    let session = open_session(&sc.link).unwrap();
    let sim = serve_mujoco(
        &session,
        &sc,
        1,
        ServeMode::FreeRun { rate_hz: 100.0 },
        true,
    )
    .unwrap();
    let cameras = link.cameras();
    let slot = &cameras.slots()[0];
    wait_for("10 camera frames", Duration::from_secs(20), || {
        slot.received.load(Ordering::Relaxed) >= 10
    });
    assert_eq!(slot.received_shared.load(Ordering::Relaxed), 0);
    assert_eq!(slot.rejected.load(Ordering::Relaxed), 0);
    assert_eq!(sim.stats().frames_shared.load(Ordering::Relaxed), 0);
}

#[test]
fn run_without_a_robot_says_what_it_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lonely.toml");
    let port = free_port().unwrap();
    let text = common::shipped_text("reach-arm.toml").replace(
        "[link]\nmode = \"peer\"",
        &format!("[link]\nmode = \"peer\"\nlisten = [\"tcp/127.0.0.1:{port}\"]"),
    );
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rlrt"))
        .args(["run", "--wait-seconds", "0.5"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no robot state arrived on rlrt/reach-arm/state within 0.5 s"),
        "{stderr}"
    );
}

#[test]
fn run_sim_lockstep_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("arm.toml");
    std::fs::write(
        &config,
        common::shipped_text("reach-arm.toml").replace("rlrt/reach-arm", "rlrt/test-cli-lockstep"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rlrt"))
        .args([
            "-q",
            "run",
            "--sim",
            "--lockstep",
            "--ticks",
            "300",
            "--json",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["report"]["loop_stats"]["ticks"], 300, "{v}");
    assert_eq!(v["out_of_limit_commands"], 0);
    assert_eq!(v["report"]["fault_ticks"], 0, "{v}");
}

#[test]
fn a_missing_gymnasium_model_is_the_first_and_only_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_rlrt"))
        .args(["run", "--sim", "--seconds", "1"])
        .arg(common::repo("hw-configs/hopper.toml"))
        .env("RLRT_GYMNASIUM_ASSETS", "/nonexistent/gymnasium-assets")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The task is resolved before any zenoh session opens: no link chatter before it.
    assert!(
        stderr.contains("Hopper-v5") && stderr.contains("RLRT_GYMNASIUM_ASSETS"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("zenoh") && !stderr.contains("Scouting"),
        "{stderr}"
    );
}
