//! The runtime and a simulated robot over real zenoh sessions on loopback (peer mode, TCP).

use crate::common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rlrt::linked::LinkedRuntime;
use rlrt_runtime::link::{open_session, RobotLink};
use rlrt_runtime::protocol;
use rlrt_runtime::telemetry::{telemetry_channel, TickRecord};
use rlrt_runtime::{Cause, ControlLoop, RobotConfig, RunLimit, WallClock};
use rlrt_sim::{ServeMode, SimServer};
use zenoh::Wait;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The reach arm at 500 Hz; the runtime listens on `port`, robots connect to it.
fn configs(port: u16, prefix: &str) -> (RobotConfig, RobotConfig) {
    let mut runtime = common::shipped_config(
        "reach-arm-joint-space.toml",
        &[("control_rate_hz = 100.0", "control_rate_hz = 500.0")],
    );
    runtime.link.key_prefix = prefix.to_owned();
    let mut robot = runtime.clone();
    runtime.link.listen = vec![format!("tcp/127.0.0.1:{port}")];
    robot.link.connect = vec![format!("tcp/127.0.0.1:{port}")];
    (runtime, robot)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Runtime {
    control: ControlLoop<WallClock>,
    link: RobotLink,
    rx: rlrt_runtime::telemetry::TelemetryReceiver,
}

fn runtime(config: &RobotConfig) -> Runtime {
    let LinkedRuntime { control, link, .. } = LinkedRuntime::connect(config, 0).unwrap();
    let (tx, rx) = telemetry_channel(100_000, control.stats());
    Runtime {
        control: control.with_telemetry(tx),
        link,
        rx,
    }
}

#[test]
fn runtime_drives_a_simulated_robot_over_zenoh_for_1000_ticks() {
    let (rc, sc) = configs(free_port(), "rlrt/test-1000");
    let mut rt = runtime(&rc);
    let sim_session = open_session(&sc.link).unwrap();
    let sim =
        SimServer::start(&sim_session, &sc, 4, ServeMode::FreeRun { rate_hz: 1000.0 }).unwrap();
    let link_stats = rt.link.stats();
    wait_for("the robot's first state", Duration::from_secs(10), || {
        link_stats.states_accepted.load(Ordering::Relaxed) > 0
    });
    wait_for(
        "the robot's liveliness token",
        Duration::from_secs(10),
        || link_stats.robot_alive.load(Ordering::Relaxed),
    );
    let report = rt.control.run(
        &AtomicBool::new(false),
        RunLimit {
            max_ticks: Some(1000),
        },
    );
    let mut records: Vec<TickRecord> = Vec::new();
    rt.rx.drain(|r| records.push(*r));
    assert_eq!(report.loop_stats.ticks, 1000);
    // A loaded machine (CI runs every test at once) can stall a wall-clock loop long enough
    // for a few stale-observation faults: the safety layer working. The policy must still
    // have driven most ticks.
    assert!(report.fault_ticks * 2 < report.loop_stats.ticks, "{report}");
    common::assert_commands_safe(&rc, &records);
    let sim_stats = sim.stats();
    // Generous: on a loaded machine the last commands can sit in zenoh's queues for seconds.
    wait_for("the last commands", Duration::from_secs(15), || {
        sim_stats.commands.load(Ordering::Relaxed) >= 990
    });
    assert_eq!(sim_stats.out_of_limit_commands.load(Ordering::Relaxed), 0);
    assert_eq!(sim_stats.malformed_commands.load(Ordering::Relaxed), 0);
    assert!(
        link_stats.states_accepted.load(Ordering::Relaxed) >= 1500,
        "{:?}",
        link_stats.snapshot()
    );
    assert_eq!(link_stats.states_malformed.load(Ordering::Relaxed), 0);
    // The joint-target controller got the arm to its target through the link.
    let last = records.last().unwrap();
    for (q, t) in last.positions().iter().zip([0.8, 0.4, -0.9]) {
        assert!((q - t).abs() < 0.02, "{:?}", last.positions());
    }
    drop(sim);
}

#[test]
fn killing_the_sim_trips_the_watchdog_and_its_return_resumes_control() {
    let (mut rc, sc) = configs(free_port(), "rlrt/test-kill");
    // The config latches the e-stop after 500 faulted ticks (1 s at 500 Hz): an outage this
    // long is meant to need a person. The restart below can take longer than that on a busy
    // machine (a new session, MuJoCo and its renderer), and this test is about the watchdog
    // and the return, so nothing latches here (tests/safety.rs covers the latch).
    rc.safety.estop_after_consecutive_faults = 0;
    let mut rt = runtime(&rc);
    let link_stats = rt.link.stats();
    let start_sim = || {
        let session = open_session(&sc.link).unwrap();
        let sim =
            SimServer::start(&session, &sc, 8, ServeMode::FreeRun { rate_hz: 1000.0 }).unwrap();
        (session, sim)
    };
    let mut sim = Some(start_sim());
    wait_for("the robot's first state", Duration::from_secs(10), || {
        link_stats.states_accepted.load(Ordering::Relaxed) > 0
    });
    let stop = Arc::new(AtomicBool::new(false));
    let report = std::thread::scope(|scope| {
        let stop2 = stop.clone();
        let control = &mut rt.control;
        let worker = scope.spawn(move || {
            // Until the test says stop (a cap of 60 s at 500 Hz against a hang): how long
            // the restarted simulator takes to connect is up to the machine.
            control.run(
                &stop2,
                RunLimit {
                    max_ticks: Some(30_000),
                },
            )
        });
        std::thread::sleep(Duration::from_millis(800));
        // Kill the simulator: its session closes and its liveliness token disappears.
        let (session, server) = sim.take().unwrap();
        drop(server);
        session.close().wait().unwrap();
        wait_for("the robot's token to go", Duration::from_secs(10), || {
            !link_stats.robot_alive.load(Ordering::Relaxed)
        });
        std::thread::sleep(Duration::from_millis(500));
        let accepted = link_stats.states_accepted.load(Ordering::Relaxed);
        sim = Some(start_sim());
        // Control resumes once the new simulator's states arrive; then let it run 1 s (500
        // ticks), room for the 50 clean ticks checked below even if the new simulator's
        // first states come unevenly (it starts its renderer too).
        wait_for(
            "the restarted robot's states",
            Duration::from_secs(20),
            || {
                link_stats.robot_alive.load(Ordering::Relaxed)
                    && link_stats.states_accepted.load(Ordering::Relaxed) > accepted + 10
            },
        );
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::Relaxed);
        worker.join().unwrap()
    });
    let mut records = Vec::new();
    rt.rx.drain(|r| records.push(*r));
    common::assert_commands_safe(&rc, &records);
    assert!(report.count(Cause::StaleObservation) > 0, "{report}");
    assert!(link_stats.robot_lost.load(Ordering::Relaxed) >= 1);
    // The fault action is on within one tick of the 50 ms timeout after the last state,
    // or sooner: the robot's liveliness token going marks its last state as stale at once.
    let first_fault = records.iter().position(|r| r.fault.is_some()).unwrap();
    let before = &records[first_fault - 1];
    let fault = &records[first_fault];
    assert!(before.fault.is_none());
    assert_eq!(fault.fault, Some(Cause::StaleObservation));
    let last_state_ns = before.start_ns - before.observation_age_ns;
    let gap_ms = (fault.start_ns - last_state_ns) as f64 / 1e6;
    // One 2 ms tick after the timeout, plus however late that tick itself started.
    let late_ms = fault.start_ns.saturating_sub(fault.deadline_ns) as f64 / 1e6;
    assert!(
        gap_ms <= 52.0 + late_ms + 0.1,
        "faulted {gap_ms} ms after the last state (tick {late_ms} ms late)"
    );
    // The restarted simulator (sequence numbers from 1 again) is accepted; control resumes.
    assert!(link_stats.robot_alive.load(Ordering::Relaxed));
    let resumed = records[first_fault..]
        .windows(50)
        .any(|w| w.iter().all(|r| r.fault.is_none()));
    let mut late_faults: Vec<(Cause, usize)> = Vec::new();
    for r in &records[records.len().saturating_sub(500)..] {
        if let Some(cause) = r.fault {
            match late_faults.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, n)) => *n += 1,
                None => late_faults.push((cause, 1)),
            }
        }
    }
    assert!(
        resumed,
        "control did not resume: no 50 clean ticks in a row after the kill; faults in the \
         last 500 ticks: {late_faults:?}"
    );
}

#[test]
fn malformed_states_are_counted_and_dropped() {
    let (rc, sc) = configs(free_port(), "rlrt/test-junk");
    let mut rt = runtime(&rc);
    let link_stats = rt.link.stats();
    let sim_session = open_session(&sc.link).unwrap();
    let sim =
        SimServer::start(&sim_session, &sc, 2, ServeMode::FreeRun { rate_hz: 500.0 }).unwrap();
    wait_for("the robot's first state", Duration::from_secs(10), || {
        link_stats.states_accepted.load(Ordering::Relaxed) > 0
    });
    // An attacker (or a broken driver) on the same key.
    let junk_session = open_session(&sc.link).unwrap();
    let key = rt.link.keys().state.clone();
    let mut good = Vec::new();
    let mut obs = rlrt_runtime::Observation::empty(3, 0);
    obs.seq = 1_000_000_000;
    protocol::encode_state(&obs, &mut good);
    let mut nan = Vec::new();
    obs.joint_positions[1] = f64::NAN;
    obs.seq += 1;
    protocol::encode_state(&obs, &mut nan);
    let mut wrong_version = good.clone();
    wrong_version[4] = 9;
    let mut absurd = good.clone();
    absurd[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut payloads: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xde, 0xad, 0xbe, 0xef],
        good[..good.len() / 2].to_vec(),
        wrong_version,
        absurd,
        vec![0u8; 1 << 20],
    ];
    let mut rng = 99u64;
    for _ in 0..50 {
        let len = (rng % 200) as usize;
        let mut p = protocol::CDR_LE.to_vec();
        for _ in 0..len {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            p.push((rng >> 40) as u8);
        }
        payloads.push(p);
    }
    let malformed = payloads.len() as u64;
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        let control = &mut rt.control;
        let stop = &stop;
        let worker = scope.spawn(move || {
            control.run(
                stop,
                RunLimit {
                    max_ticks: Some(500),
                },
            )
        });
        // Blocking congestion control: zenoh's default drops under load (as the runtime's own
        // publishers must), and every junk message has to arrive to be counted.
        for p in payloads.iter().chain([&nan]) {
            junk_session
                .put(&key, p.clone())
                .congestion_control(zenoh::qos::CongestionControl::Block)
                .wait()
                .unwrap();
        }
        worker.join().unwrap()
    });
    wait_for("all junk to arrive", Duration::from_secs(15), || {
        link_stats.states_malformed.load(Ordering::Relaxed) >= malformed
            && link_stats.states_non_finite.load(Ordering::Relaxed) >= 1
    });
    assert_eq!(report.loop_stats.ticks, 500);
    let mut records = Vec::new();
    rt.rx.drain(|r| records.push(*r));
    // Control carried on through the junk: the loop kept publishing safe commands.
    let checked = common::assert_commands_safe(&rc, &records);
    assert!(
        checked > 0,
        "no command published during the junk: {report}"
    );
    assert_eq!(sim.stats().out_of_limit_commands.load(Ordering::Relaxed), 0);
    assert_eq!(
        report.count(Cause::BadObservation),
        0,
        "NaN states never reach the loop"
    );
}

/// An e-stop message on `<prefix>/estop` stops the loop that the link feeds (the link and
/// the loop share one e-stop), and a reset message releases it.
#[test]
fn an_estop_message_on_the_link_stops_the_loop() {
    let (rc, sc) = configs(free_port(), "rlrt/test-estop");
    let mut rt = runtime(&rc);
    let sim_session = open_session(&sc.link).unwrap();
    let _sim =
        SimServer::start(&sim_session, &sc, 4, ServeMode::FreeRun { rate_hz: 1000.0 }).unwrap();
    let link_stats = rt.link.stats();
    wait_for("the robot's first state", Duration::from_secs(10), || {
        link_stats.states_accepted.load(Ordering::Relaxed) > 0
    });
    let keys = rt.link.keys().clone();
    let send = |engage: bool| {
        let mut buf = Vec::new();
        protocol::encode_estop(engage, &mut buf);
        sim_session.put(&keys.estop, buf).wait().unwrap();
    };
    let estop = rt.control.estop();
    send(true);
    wait_for("the e-stop to engage", Duration::from_secs(10), || {
        estop.is_engaged()
    });
    let report = rt.control.run(
        &AtomicBool::new(false),
        RunLimit {
            max_ticks: Some(50),
        },
    );
    assert!(report.estop_engaged, "{report}");
    assert_eq!(
        report.fault_ticks, 50,
        "every tick on the fault action: {report}"
    );
    send(false);
    wait_for("the e-stop to reset", Duration::from_secs(10), || {
        !estop.is_engaged()
    });
    assert_eq!(link_stats.estop_messages.load(Ordering::Relaxed), 2);
}
