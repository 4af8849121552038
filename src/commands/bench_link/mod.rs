//! `rlrt bench link`: observation-to-command round trip through zenoh on loopback, and the
//! lockstep step rate of runtime plus simulator over the link.
//!
//! Two zenoh sessions in this process, peer mode over TCP on 127.0.0.1. The "robot" thread
//! publishes a state and waits for the command it causes: through the runtime's state
//! subscriber, the mailbox, a tick (policy and safety layer) on the control thread, the
//! command publisher thread, and back. The peer is zenoh alone: a ping echoed straight back
//! from the subscriber callback, on the same two sessions. The `ros2` row is the same
//! exchange on a `ros2` link (JointState in, Float64MultiArray out, rmw_zenoh's keys and
//! attachments on both ends), set up beside rlrt's and timed in alternating blocks of 100
//! round trips, so that drift on a shared machine falls on both alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use rlrt_runtime::bench::{BenchReport, Metric, Metrics};
use rlrt_runtime::link::open_session;
use rlrt_runtime::protocol::{self, FLAG_LOCKSTEP_STEP};
use rlrt_runtime::stats::Histogram;
use rlrt_runtime::{Observation, RobotConfig};
use rlrt_sim::ServeMode;
use zenoh::Wait;

use crate::linked::LinkedRuntime;
use crate::loopback::{free_port, loopback_configs, serve_mujoco};

mod ros2;
use ros2::Ros2Exchange;

const CONFIG_TEXT: &str = include_str!("../../../hw-configs/reach-arm-joint-space.toml");
const REACH_TEXT: &str = include_str!("../../../hw-configs/reach-arm.toml");

/// `rlrt bench link`: observation-to-command round trip through zenoh on loopback (against
/// zenoh's own ping-pong, and over a ros2 link), and the lockstep step rate of runtime plus
/// simulator over the link.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchLinkArgs {
    /// Round trips measured (after 200 warm-up ones).
    #[arg(long, default_value_t = 5000)]
    pub round_trips: u32,
    /// Camera frames timed per size (84x84, 640x480) and transport (zenoh shared memory,
    /// bytes).
    #[arg(long, default_value_t = 300)]
    pub frames: usize,
    /// Seconds of lockstep stepping to measure.
    #[arg(long, default_value_t = 3.0)]
    pub lockstep_seconds: f64,
}

fn config(port: u16, prefix: &str, listen: bool) -> anyhow::Result<RobotConfig> {
    let mut c = super::parse_with_overrides(
        CONFIG_TEXT,
        std::path::Path::new("hw-configs/reach-arm-joint-space.toml"),
        &[(
            "policy",
            Some(toml::Value::Table(toml::Table::from_iter([(
                "kind".to_owned(),
                toml::Value::String("hold".into()),
            )]))),
        )],
    )?;
    c.link.key_prefix = prefix.to_owned();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    if listen {
        c.link.listen = vec![endpoint];
    } else {
        c.link.connect = vec![endpoint];
    }
    Ok(c)
}

pub fn run(args: &BenchLinkArgs) -> anyhow::Result<BenchReport> {
    let port = free_port()?;
    let rc = config(port, "rlrt/bench-link", true)?;
    let robot_cfg = config(port, "rlrt/bench-link", false)?;

    let mut rt = LinkedRuntime::connect(&rc, 0)?;

    // Robot side.
    let robot = open_session(&robot_cfg.link)?;
    let keys = rt.link.keys().clone();
    let (tx, rx) = bounded::<()>(16);
    let _commands = robot
        .declare_subscriber(&keys.command)
        .callback(move |sample| {
            let mut cmd =
                rlrt_runtime::Command::new(rlrt_runtime::config::ActionMode::JointPosition, 0);
            if protocol::decode_command(&sample.payload().to_bytes(), &mut cmd).is_ok() {
                let _ = tx.try_send(());
            }
        })
        .wait()
        .map_err(|e| anyhow::anyhow!(e))?;
    let state_pub = robot
        .declare_publisher(keys.state.clone())
        .wait()
        .map_err(|e| anyhow::anyhow!(e))?;

    // The same exchange as a ROS 2 robot has it (rmw_zenoh's wire format), set up beside
    // it: the two are timed in alternating blocks, so drift on a shared machine falls on both.
    let mut ros2 = Ros2Exchange::new(&rc)?;
    let mut put_joint_state = ros2.putter(rc.dof());

    let stop = AtomicBool::new(false);
    let ours = Histogram::new();
    let theirs = Histogram::new();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (rt, rt2, stop_ref) = (&mut rt, &mut ros2.rt, &stop);
        let worker = scope.spawn(move || rt.tick_on_arrival(stop_ref, false));
        let worker2 = scope.spawn(move || rt2.tick_on_arrival(stop_ref, false));
        let mut obs = Observation::empty(rc.dof(), 0);
        obs.joint_positions[0] = 0.1;
        let mut buf = Vec::with_capacity(512);
        let mut seq = 0u64;
        let mut put_state = || -> anyhow::Result<Instant> {
            seq += 1;
            obs.seq = seq;
            protocol::encode_state(&obs, &mut buf);
            let t0 = Instant::now();
            state_pub
                .put(buf.as_slice())
                .wait()
                .map_err(|e| anyhow::anyhow!(e))?;
            Ok(t0)
        };
        let mut measure = || -> anyhow::Result<()> {
            answered(&mut put_state, &rx, "a state")?;
            answered(&mut put_joint_state, &ros2.rx, "a JointState")?;
            let warmup = 200;
            timed(&mut put_state, &rx, warmup, None)?;
            timed(&mut put_joint_state, &ros2.rx, warmup, None)?;
            let block = 100;
            let mut left = args.round_trips;
            while left > 0 {
                let n = left.min(block);
                timed(&mut put_state, &rx, n, Some(&ours))?;
                timed(&mut put_joint_state, &ros2.rx, n, Some(&theirs))?;
                left -= n;
            }
            Ok(())
        };
        let result = measure();
        // Stop the ticking threads on every path, or the scope would wait for them forever.
        stop.store(true, Ordering::Relaxed);
        let _ = worker.join();
        let _ = worker2.join();
        result
    })?;
    ros2.check()?;
    let ros2 = theirs;

    // Peer: zenoh alone, ping echoed from the callback on the same sessions.
    let runtime_session = rt.link.session().clone();
    let ping_key = format!("{}/bench/ping", rc.link.key_prefix);
    let pong_key = format!("{}/bench/pong", rc.link.key_prefix);
    let pong_pub = runtime_session
        .declare_publisher(pong_key.clone())
        .wait()
        .map_err(|e| anyhow::anyhow!(e))?;
    let _echo = runtime_session
        .declare_subscriber(&ping_key)
        .callback(move |sample| {
            let _ = pong_pub.put(sample.payload().clone()).wait();
        })
        .wait()
        .map_err(|e| anyhow::anyhow!(e))?;
    let (ptx, prx) = bounded::<()>(16);
    let _pong = robot
        .declare_subscriber(&pong_key)
        .callback(move |_| {
            let _ = ptx.try_send(());
        })
        .wait()
        .map_err(|e| anyhow::anyhow!(e))?;
    let ping_pub = robot
        .declare_publisher(ping_key)
        .wait()
        .map_err(|e| anyhow::anyhow!(e))?;
    let peer = Histogram::new();
    let payload = vec![0u8; buf_len_of_state(rc.dof())];
    // Declarations take a moment to reach the other session: ping until the first pong.
    let start = Instant::now();
    loop {
        ping_pub
            .put(payload.as_slice())
            .wait()
            .map_err(|e| anyhow::anyhow!(e))?;
        if prx.recv_timeout(Duration::from_millis(50)).is_ok() {
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("zenoh ping-pong never answered");
        }
    }
    while prx.recv_timeout(Duration::from_millis(100)).is_ok() {}
    for i in 0..(args.round_trips + 200) {
        let t0 = Instant::now();
        ping_pub
            .put(payload.as_slice())
            .wait()
            .map_err(|e| anyhow::anyhow!(e))?;
        if prx.recv_timeout(Duration::from_secs(2)).is_err() {
            anyhow::bail!("zenoh ping {i} got no pong within 2 s");
        }
        if i >= 200 {
            peer.record(t0.elapsed().as_nanos() as u64);
        }
    }
    drop(_commands);

    // Camera frames, from shared memory and as bytes, at two sizes.
    let mut frames = Vec::new();
    for (w, h) in [(84u32, 84u32), (640, 480)] {
        for shared_memory in [true, false] {
            let (latency, shared) = frame_latency(w, h, shared_memory, args.frames)?;
            frames.push((w, h, shared_memory, latency.summary(), shared));
        }
    }

    // Lockstep: simulator steps once per command, runtime ticks once per state.
    let lockstep_rate = lockstep(args.lockstep_seconds, None)?;
    let render_84 = lockstep(args.lockstep_seconds, Some((84, 84)))?;
    let render_224 = lockstep(args.lockstep_seconds, Some((224, 224)))?;

    let mut report = BenchReport::new("link");
    report.metrics.insert(
        "observation_to_command_round_trip".into(),
        Metric::from_ns_summary(&ours.summary()),
    );
    let mut peer_metrics = Metrics::new();
    peer_metrics.insert(
        "observation_to_command_round_trip".into(),
        Metric::from_ns_summary(&peer.summary()),
    );
    report.peers.insert("zenoh_ping_pong".into(), peer_metrics);
    report.metrics.insert(
        "ros2_observation_to_command_round_trip".into(),
        Metric::from_ns_summary(&ros2.summary()),
    );
    let mut as_bytes = Metrics::new();
    for (w, h, shared_memory, summary, shared) in &frames {
        let name = format!("camera_frame_{w}x{h}");
        if *shared_memory {
            report
                .metrics
                .insert(name.clone(), Metric::from_ns_summary(summary));
            report
                .extra
                .insert(format!("{name}_frames_in_shared_memory"), (*shared).into());
        } else {
            as_bytes.insert(name, Metric::from_ns_summary(summary));
        }
    }
    for (w, h) in [(84, 84), (640, 480)] {
        let find = |shm: bool| {
            frames
                .iter()
                .find(|f| f.0 == w && f.1 == h && f.2 == shm)
                .map(|f| f.3.p50_ns)
        };
        if let (Some(s), Some(b)) = (find(true), find(false)) {
            report.extra.insert(
                format!("camera_frame_{w}x{h}_p50_shared_over_bytes"),
                (s as f64 / b.max(1) as f64).into(),
            );
        }
    }
    report
        .peers
        .insert("camera_frames_as_bytes".into(), as_bytes);
    report
        .extra
        .insert("camera_frames".into(), args.frames.into());
    let extra = &mut report.extra;
    extra.insert("round_trips".into(), args.round_trips.into());
    extra.insert("lockstep_steps_per_s".into(), lockstep_rate.into());
    extra.insert("lockstep_steps_per_s_render_84x84".into(), render_84.into());
    extra.insert(
        "lockstep_steps_per_s_render_224x224".into(),
        render_224.into(),
    );
    extra.insert(
        "lockstep_model".into(),
        "MuJoCo reach (hw-configs/reach-arm.toml), ee_servo policy; render rows: one rgb8 frame every step".into(),
    );
    let (o, p) = (ours.summary(), peer.summary());
    if p.p50_ns > 0 {
        extra.insert(
            "p50_rlrt_over_zenoh".into(),
            (o.p50_ns as f64 / p.p50_ns as f64).into(),
        );
        extra.insert(
            "p99_rlrt_over_zenoh".into(),
            (o.p99_ns as f64 / p.p99_ns.max(1) as f64).into(),
        );
    }
    let r = ros2.summary();
    if o.p50_ns > 0 {
        extra.insert(
            "p50_ros2_over_rlrt".into(),
            (r.p50_ns as f64 / o.p50_ns as f64).into(),
        );
        extra.insert(
            "p99_ros2_over_rlrt".into(),
            (r.p99_ns as f64 / o.p99_ns.max(1) as f64).into(),
        );
    }
    extra.insert(
        "ros2_exchange".into(),
        "sensor_msgs/msg/JointState (joints by name) -> tick -> std_msgs/msg/Float64MultiArray, rmw_zenoh keys and attachments, checked on both ends".into(),
    );
    extra.insert("transport".into(), "zenoh peer, tcp/127.0.0.1".into());
    Ok(report)
}

/// Sends states until the first command comes back (declarations take a moment to reach
/// the other session), then drains.
fn answered(
    put: &mut dyn FnMut() -> anyhow::Result<Instant>,
    rx: &crossbeam_channel::Receiver<()>,
    what: &str,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        put()?;
        if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("the runtime never answered {what} within 10 s");
        }
    }
    while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
    Ok(())
}

/// `n` round trips, one at a time, recorded in `hist` when given (warm-up otherwise).
fn timed(
    put: &mut dyn FnMut() -> anyhow::Result<Instant>,
    rx: &crossbeam_channel::Receiver<()>,
    n: u32,
    hist: Option<&Histogram>,
) -> anyhow::Result<()> {
    for i in 0..n {
        let t0 = put()?;
        if rx.recv_timeout(Duration::from_secs(2)).is_err() {
            anyhow::bail!("no command came back within 2 s (round trip {i} of a block)");
        }
        if let Some(hist) = hist {
            hist.record(t0.elapsed().as_nanos() as u64);
        }
    }
    Ok(())
}

/// Camera frame latency: a `width` x `height` rgb8 frame published by `FramePublisher` on one
/// session until the other session's subscriber has decoded it and copied its pixels into
/// `CameraFrames` (the runtime's receive path), one frame at a time. Returns the latencies
/// (ns) and how many frames arrived in shared memory.
fn frame_latency(
    width: u32,
    height: u32,
    shared_memory: bool,
    frames: usize,
) -> anyhow::Result<(Histogram, u64)> {
    use rlrt_runtime::config::{CameraSpec, ImageEncoding};
    use rlrt_runtime::link::{CameraFrames, FramePublisher};
    use rlrt_runtime::{Clock, WallClock};
    use std::sync::Arc;

    let port = free_port()?;
    let prefix = format!("rlrt/bench-frames-{}", u8::from(shared_memory));
    let mut a = config(port, &prefix, true)?;
    let mut b = config(port, &prefix, false)?;
    a.link.shared_memory = shared_memory;
    b.link.shared_memory = shared_memory;
    let (publisher_session, subscriber_session) = (open_session(&a.link)?, open_session(&b.link)?);
    let key = format!("{prefix}/camera/front");
    let spec = CameraSpec {
        name: "front".into(),
        width,
        height,
        rate_hz: 30.0,
        encoding: ImageEncoding::Rgb8,
    };
    let cameras = Arc::new(CameraFrames::new(std::slice::from_ref(&spec)));
    let clock = WallClock::new();
    let (tx, rx) = bounded::<u64>(16);
    let _sub = {
        let (cameras, clock) = (cameras.clone(), clock.clone());
        subscriber_session
            .declare_subscriber(&key)
            .callback(move |sample| {
                let payload = sample.payload();
                cameras.receive_payload(0, payload, clock.now_ns());
                if let Ok(image) = protocol::decode_image(&payload.to_bytes()) {
                    let _ = tx.try_send(clock.now_ns().saturating_sub(image.stamp_ns));
                }
            })
            .wait()
            .map_err(|e| anyhow::anyhow!(e))?
    };
    let bytes = width as usize * height as usize * 3;
    let mut publisher = FramePublisher::new(&publisher_session, &key, shared_memory, bytes)?;
    let pixels: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let put = |publisher: &mut FramePublisher| -> anyhow::Result<()> {
        let view = protocol::ImageView {
            stamp_ns: clock.now_ns(),
            camera: "front",
            height,
            width,
            encoding: protocol::ImageEncodingName::Rgb8,
            step: width * 3,
            data: &pixels,
        };
        publisher
            .put(&view)
            .map(drop)
            .map_err(|e| anyhow::anyhow!(e))
    };
    // Declarations take a moment to reach the other session: publish until one arrives.
    let start = Instant::now();
    loop {
        put(&mut publisher)?;
        if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(10),
            "no camera frame arrived within 10 s"
        );
    }
    while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
    let shared_before = cameras.slots()[0].received_shared.load(Ordering::Relaxed);
    let latencies = Histogram::new();
    for i in 0..frames {
        put(&mut publisher)?;
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(ns) => latencies.record(ns),
            Err(_) => anyhow::bail!("frame {i} did not arrive within 2 s"),
        }
    }
    let shared = cameras.slots()[0].received_shared.load(Ordering::Relaxed) - shared_before;
    Ok((latencies, shared))
}

fn buf_len_of_state(dof: usize) -> usize {
    let mut buf = Vec::new();
    protocol::encode_state(&Observation::empty(dof, 0), &mut buf);
    buf.len()
}

/// Lockstep steps per second of MuJoCo reach + link + runtime; with `camera` = (width,
/// height), the camera renders on every step.
fn lockstep(seconds: f64, camera: Option<(u32, u32)>) -> anyhow::Result<f64> {
    let mut overrides = Vec::new();
    if let Some((w, h)) = camera {
        overrides.push((
            "observation.cameras",
            Some(toml::Value::Array(vec![toml::Value::Table(
                toml::Table::from_iter([
                    ("name".to_owned(), toml::Value::String("front".into())),
                    ("width".to_owned(), toml::Value::Integer(w.into())),
                    ("height".to_owned(), toml::Value::Integer(h.into())),
                    ("rate_hz".to_owned(), toml::Value::Float(100.0)),
                    ("encoding".to_owned(), toml::Value::String("rgb8".into())),
                ]),
            )])),
        ));
    } else {
        overrides.push(("observation.cameras", None));
    }
    let mut config = super::parse_with_overrides(
        REACH_TEXT,
        std::path::Path::new("hw-configs/reach-arm.toml"),
        &overrides,
    )?;
    config.link.key_prefix = "rlrt/bench-lockstep".into();
    let (rc, sc) = loopback_configs(&config, free_port()?);
    let mut rt = LinkedRuntime::connect(&rc, FLAG_LOCKSTEP_STEP)?;
    let sim_session = open_session(&sc.link)?;
    let sim = serve_mujoco(&sim_session, &sc, 1, ServeMode::Lockstep, camera.is_some())?;
    let stats = rt.link.stats();
    // Wait for the simulator's first state; it re-publishes it on reset.
    let start = Instant::now();
    while stats.states_accepted.load(Ordering::Relaxed) == 0 {
        rt.link
            .send_episode(protocol::EpisodeOp::Reset { seed: 1 })?;
        std::thread::sleep(Duration::from_millis(50));
        if start.elapsed() > Duration::from_secs(10) {
            anyhow::bail!("the lockstep simulator never answered");
        }
    }
    let stop = AtomicBool::new(false);
    let ticks = rt.control.stats();
    let rate = std::thread::scope(|scope| {
        let (rt, stop_ref) = (&mut rt, &stop);
        let worker = scope.spawn(move || rt.lockstep_from_reset(stop_ref, 1, u64::MAX));
        let t0 = Instant::now();
        let before = ticks.ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let n = ticks.ticks.load(Ordering::Relaxed) - before;
        let dt = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        worker
            .join()
            .expect("the lockstep worker panicked")
            .map(|()| n as f64 / dt)
    })?;
    if camera.is_some() && sim.stats().frames_published.load(Ordering::Relaxed) == 0 {
        anyhow::bail!("the simulator rendered no frame");
    }
    drop(sim);
    Ok(rate)
}
