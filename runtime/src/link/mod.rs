//! The robot link over zenoh: robot state in, commands out, e-stop and liveliness.
//!
//! Keys (prefix = `link.key_prefix` of the hw-config), encodings in [`crate::protocol`]:
//!
//! | key | direction | payload |
//! |---|---|---|
//! | `<prefix>/state` | robot → runtime | `RobotState` |
//! | `<prefix>/command` | runtime → robot | `Command` |
//! | `<prefix>/camera/<name>` | robot → runtime | `sensor_msgs/Image` |
//! | `<prefix>/estop` | anyone → runtime | `EStop` (engage or reset) |
//! | `<prefix>/episode` | runtime → simulator | `Episode` (reset with seed, lockstep, free-run) |
//! | `<prefix>/alive/robot`, `<prefix>/alive/runtime` | liveliness tokens | — |
//! | `<prefix>/sim/evaluation` | simulator → anyone (query) | `Evaluation` (ground truth) |
//!
//! State arrives on a zenoh thread: it is decoded into a scratch message, checked (format,
//! finite values, sequence order) and only then put in the loop's mailbox. Anything rejected
//! is counted by reason and dropped; the loop's watchdog sees the silence. When the robot's
//! liveliness token disappears (its process died or its network went away) and stays away
//! for a short grace with no state arriving, the newest observation is marked as received
//! at time zero, so the next tick faults instead of waiting out the stale timeout. Camera frames are checked against the hw-config (size,
//! encoding) and the newest of each camera is kept in [`CameraFrames`]. Commands leave
//! through a publisher thread: the tick hands the newest command over without allocating and
//! wakes that thread, which encodes and puts it (zenoh allocates per put).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use zenoh::bytes::Encoding;
use zenoh::sample::SampleKind;
use zenoh::{Session, Wait};

pub(crate) mod error;
pub(crate) mod shared;

pub use error::LinkError;
pub(crate) use shared::{apply_estop, deliver, CommandSender, Endpoints, Mailbox, Shared};
pub use shared::{CameraCounts, CameraFrames, CameraSlot, Frame, LinkCounters, LinkStats, Waker};

use crate::clock::Clock;
use crate::config::{LinkConfig, LinkMode, RobotConfig};
use crate::messages::{Command, CommandSink, Observation, ObservationWriter, SinkError};
use crate::protocol;
use crate::safety::EStop;

/// The keys of one robot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    pub state: String,
    pub command: String,
    pub camera_prefix: String,
    pub estop: String,
    pub episode: String,
    pub alive_robot: String,
    pub alive_runtime: String,
    pub sim_evaluation: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            state: format!("{prefix}/state"),
            command: format!("{prefix}/command"),
            camera_prefix: format!("{prefix}/camera"),
            estop: format!("{prefix}/estop"),
            episode: format!("{prefix}/episode"),
            alive_robot: format!("{prefix}/alive/robot"),
            alive_runtime: format!("{prefix}/alive/runtime"),
            sim_evaluation: format!("{prefix}/sim/evaluation"),
        }
    }

    pub fn camera(&self, name: &str) -> String {
        format!("{}/{name}", self.camera_prefix)
    }
}

/// Builds a zenoh configuration from the hw-config's `[link]`.
pub fn zenoh_config(link: &LinkConfig) -> Result<zenoh::Config, LinkError> {
    let mut config = zenoh::Config::default();
    let mut set = |key: &str, value: String| {
        config
            .insert_json5(key, &value)
            .map_err(|source| LinkError::Config {
                key: key.to_owned(),
                source,
            })
    };
    let mode = match link.mode {
        LinkMode::Peer => "peer",
        LinkMode::Client => "client",
        LinkMode::Router => "router",
    };
    set("mode", format!("{mode:?}"))?;
    let list = |items: &[String]| {
        format!(
            "[{}]",
            items
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    if !link.connect.is_empty() {
        set("connect/endpoints", list(&link.connect))?;
    }
    // With explicit endpoints there is nothing to discover: no multicast traffic on the
    // robot's network, and tests stay on loopback. Listen only where told: zenoh's peer
    // default also listens on a random TCP port, which gossip then advertises, so the other
    // side opens a second, unauthenticated path next to a TLS one, and the transport zenoh
    // later replaces pauses the stream (seen in tests/tls.rs).
    if !link.connect.is_empty() || !link.listen.is_empty() {
        set("listen/endpoints", list(&link.listen))?;
        set("scouting/multicast/enabled", "false".into())?;
    }
    // Shared memory: negotiated per transport, used only when both ends enable it and can
    // map each other's segments (one host); otherwise payloads travel as bytes.
    set(
        "transport/shared_memory/enabled",
        link.shared_memory.to_string(),
    )?;
    // zenoh's "lowlatency" transport was measured (bench link: p50 126 us instead of 141)
    // but it cannot fragment, so camera frames above one batch would be lost: not enabled.
    if let Some(tls) = &link.tls {
        set(
            "transport/link/tls/root_ca_certificate",
            format!("{:?}", tls.root_ca_path.display().to_string()),
        )?;
        if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
            let cert = format!("{:?}", cert.display().to_string());
            let key = format!("{:?}", key.display().to_string());
            set("transport/link/tls/listen_certificate", cert.clone())?;
            set("transport/link/tls/listen_private_key", key.clone())?;
            set("transport/link/tls/connect_certificate", cert)?;
            set("transport/link/tls/connect_private_key", key)?;
            set("transport/link/tls/enable_mtls", "true".into())?;
        }
    }
    if let Some(names) = &link.allow_cert_common_names {
        // Deny by default; allow every message type on this robot's keys, both ways, with
        // peers that presented one of the named certificates (mutual TLS identifies them).
        let quoted = |items: &[String]| {
            items
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        set(
            "access_control",
            format!(
                r#"{{
                    enabled: true,
                    default_permission: "deny",
                    rules: [{{
                        id: "robot-keys",
                        messages: ["put", "delete", "declare_subscriber", "query", "reply",
                                   "declare_queryable", "liveliness_token",
                                   "liveliness_query", "declare_liveliness_subscriber"],
                        flows: ["egress", "ingress"],
                        permission: "allow",
                        key_exprs: [{prefix:?}, {all:?}],
                    }}],
                    subjects: [{{ id: "allowed-peers", cert_common_names: [{names}] }}],
                    policies: [{{ id: "robot", rules: ["robot-keys"], subjects: ["allowed-peers"] }}],
                }}"#,
                prefix = link.key_prefix,
                all = format!("{}/**", link.key_prefix),
                names = quoted(names),
            ),
        )?;
    }
    Ok(config)
}

/// Opens a zenoh session for a hw-config's link.
pub fn open_session(link: &LinkConfig) -> Result<Session, LinkError> {
    let config = zenoh_config(link)?;
    zenoh::open(config).wait().map_err(LinkError::Open)
}

/// Asks the simulator on `keys` for its ground-truth verdict on the current episode.
pub fn query_evaluation(
    session: &Session,
    keys: &Keys,
    timeout: Duration,
) -> Result<protocol::Evaluation, LinkError> {
    let fail = |problem: String, source: Option<zenoh::Error>| LinkError::Query {
        key: keys.sim_evaluation.clone(),
        problem,
        source,
    };
    let replies = session
        .get(&keys.sim_evaluation)
        .timeout(timeout)
        .wait()
        .map_err(|e| fail("the request failed".into(), Some(e)))?;
    match replies.recv() {
        Ok(reply) => match reply.result() {
            Ok(sample) => protocol::decode_evaluation(&sample.payload().to_bytes())
                .map_err(|e| fail("malformed reply".into(), Some(Box::new(e)))),
            Err(e) => Err(fail(format!("error reply: {e:?}"), None)),
        },
        Err(_) => Err(fail(
            format!(
                "no simulator answered within {} ms (is a simulator serving this robot?)",
                timeout.as_millis()
            ),
            None,
        )),
    }
}

/// Publishes camera frames (`sensor_msgs/Image`) on one key. With shared memory on (the
/// hw-config's `link.shared_memory`), each frame is written once, header then pixels, into a
/// buffer of zenoh's POSIX shared-memory provider and published from there: a subscriber on
/// the same host maps it instead of receiving it through the socket (zenoh falls back to
/// sending the bytes to peers that cannot map it). When the provider cannot be created or
/// is full (subscribers still hold every buffer), the frame goes out as ordinary bytes;
/// [`FramePublisher::put`] says which way each frame went.
pub struct FramePublisher {
    publisher: zenoh::pubsub::Publisher<'static>,
    provider: Option<zenoh::shm::ShmProvider<zenoh::shm::PosixShmProviderBackend>>,
    header: Vec<u8>,
    bytes: Vec<u8>,
}

/// Frames of this many bytes fit in the provider at once (subscribers hold a frame until
/// they have copied it; a few in flight is plenty).
const SHM_FRAMES_IN_FLIGHT: usize = 8;

impl FramePublisher {
    /// A publisher for frames of at most `max_frame_bytes` pixels on `key`.
    pub fn new(
        session: &Session,
        key: &str,
        shared_memory: bool,
        max_frame_bytes: usize,
    ) -> Result<Self, LinkError> {
        let publisher = session
            .declare_publisher(key.to_owned())
            .encoding(Encoding::APPLICATION_CDR.with_schema("sensor_msgs/Image"))
            .wait()
            .map_err(|e| LinkError::declare("a camera publisher", key, e))?;
        let provider = if shared_memory {
            // Header (stamp, names, sizes) plus pixels, rounded up to whole pages.
            let frame = (max_frame_bytes + 1024).next_multiple_of(4096);
            match zenoh::shm::ShmProviderBuilder::default_backend(frame * SHM_FRAMES_IN_FLIGHT)
                .wait()
            {
                Ok(provider) => Some(provider),
                Err(e) => {
                    tracing::warn!(
                        key,
                        "no zenoh shared memory for camera frames ({e}); sending them as bytes"
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            publisher,
            provider,
            header: Vec::with_capacity(128),
            bytes: Vec::new(),
        })
    }

    /// Publishes one frame; true when it went out from shared memory.
    pub fn put(&mut self, image: &protocol::ImageView<'_>) -> Result<bool, LinkError> {
        let fail = LinkError::Publish;
        if let Some(provider) = &self.provider {
            protocol::encode_image_header(image, &mut self.header);
            let len = self.header.len() + image.data.len();
            // An allocation fails when subscribers still hold every buffer: then this frame
            // goes as bytes.
            if let Ok(mut buffer) = provider
                .alloc(len)
                .with_policy::<zenoh::shm::GarbageCollect>()
                .wait()
            {
                buffer[..self.header.len()].copy_from_slice(&self.header);
                buffer[self.header.len()..].copy_from_slice(image.data);
                self.publisher.put(buffer).wait().map_err(fail)?;
                return Ok(true);
            }
        }
        protocol::encode_image(image, &mut self.bytes);
        self.publisher
            .put(self.bytes.as_slice())
            .wait()
            .map_err(fail)?;
        Ok(false)
    }
}

/// The runtime's side of the link to one robot. Dropping it undeclares everything.
pub struct RobotLink {
    keys: Keys,
    stats: Arc<LinkStats>,
    session: Session,
    _subscribers: Vec<zenoh::pubsub::Subscriber<()>>,
    cameras: Arc<CameraFrames>,
    _tokens: Vec<zenoh::liveliness::LivelinessToken>,
    /// The ROS 2 node of a `ros2` link (its command publisher is declared on it).
    ros2: Option<Arc<crate::ros2::node::Node>>,
}

/// Starts the thread that decides, after a short grace, whether a robot whose token went is
/// really gone (see the comment inside), and returns its sender.
fn spawn_loss_watch(
    config: &RobotConfig,
    stats: &Arc<LinkStats>,
    mailbox: &Mailbox,
) -> Result<crossbeam_channel::Sender<u64>, LinkError> {
    // A token can vanish for a moment while zenoh replaces a transport (seen with TLS),
    // so a disappearance counts as a loss only if, after a short grace, the token has not
    // come back and the states have stopped. One state after the token's end is no sign of
    // life: zenoh may deliver the token's end (a declaration) ahead of the last state the
    // robot sent (data), so it takes two. Then the newest state is marked stale at once (the
    // next tick faults) instead of waiting out the stale timeout.
    let grace = Duration::from_nanos(
        (2 * config.period_ns())
            .max(5_000_000)
            .min(config.safety.stale_observation_timeout_ns / 2),
    );
    let (gone_tx, gone_rx) = crossbeam_channel::bounded::<u64>(16);
    let stats = stats.clone();
    let mailbox = mailbox.clone();
    std::thread::Builder::new()
        .name("rlrt-link-liveliness".into())
        .spawn(move || {
            // Ends when the callbacks (holding the sender) are undeclared.
            while let Ok(accepted_then) = gone_rx.recv() {
                std::thread::sleep(grace);
                let since = stats
                    .states_accepted
                    .load(Ordering::Acquire)
                    .saturating_sub(accepted_then);
                let still_gone = !stats.robot_alive.load(Ordering::Acquire) && since < 2;
                if !still_gone {
                    stats.robot_token_flaps.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                stats.robot_lost.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut mailbox) = mailbox.lock() {
                    if mailbox.1.seq != 0 {
                        let mut gone = mailbox.1;
                        gone.received_ns = 0;
                        mailbox.0.publish(&gone);
                    }
                }
            }
        })?;
    Ok(gone_tx)
}

/// rlrt's own keys under `link.key_prefix`.
fn rlrt_endpoints<C: Clock + Clone + Sync + 'static>(
    session: &Session,
    config: &RobotConfig,
    keys: &Keys,
    shared: Shared,
    clock: C,
    estop: EStop,
) -> Result<Endpoints, LinkError> {
    let dof = config.dof();
    let sensor_len = config.observation.sensor_values;
    let shared = Arc::new(shared);
    let state = {
        let shared = shared.clone();
        let clock = clock.clone();
        let mut scratch = Observation::empty(dof, sensor_len);
        let mut last_seq = 0u64;
        session
            .declare_subscriber(&keys.state)
            .callback_mut(move |sample| {
                let stats = &shared.stats;
                stats.states_received.fetch_add(1, Ordering::Relaxed);
                let payload = sample.payload().to_bytes();
                if protocol::decode_state(&payload, dof, sensor_len, &mut scratch).is_err() {
                    stats.states_malformed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if !scratch.is_finite() {
                    stats.states_non_finite.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if scratch.seq <= last_seq && scratch.seq != 1 {
                    stats.states_out_of_order.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                last_seq = scratch.seq;
                deliver(&shared, &clock, &mut scratch);
            })
            .wait()
            .map_err(|e| LinkError::declare("the state subscriber", &keys.state, e))?
    };

    let estop_sub = {
        let stats = shared.stats.clone();
        session
            .declare_subscriber(&keys.estop)
            .callback(move |sample| {
                apply_estop(
                    protocol::decode_estop(&sample.payload().to_bytes()),
                    &stats,
                    &estop,
                )
            })
            .wait()
            .map_err(|e| LinkError::declare("the e-stop subscriber", &keys.estop, e))?
    };

    let alive = {
        let shared = shared.clone();
        session
            .liveliness()
            .declare_subscriber(&keys.alive_robot)
            .history(true)
            .callback(move |sample| {
                let stats = &shared.stats;
                match sample.kind() {
                    SampleKind::Put => stats.robot_alive.store(true, Ordering::Release),
                    SampleKind::Delete => {
                        stats.robot_alive.store(false, Ordering::Release);
                        let accepted = stats.states_accepted.load(Ordering::Acquire);
                        let _ = shared.gone.try_send(accepted);
                    }
                }
            })
            .wait()
            .map_err(|e| LinkError::declare("the liveliness subscriber", &keys.alive_robot, e))?
    };

    let mut subscribers = vec![state, estop_sub, alive];
    for (index, spec) in config.observation.cameras.iter().enumerate() {
        let key = keys.camera(&spec.name);
        let cameras = shared.cameras.clone();
        let clock = clock.clone();
        let sub = session
            .declare_subscriber(&key)
            .callback(move |sample| {
                cameras.receive_payload(index, sample.payload(), clock.now_ns());
            })
            .wait()
            .map_err(|e| LinkError::declare("a camera subscriber", &key, e))?;
        subscribers.push(sub);
    }

    let token = session
        .liveliness()
        .declare_token(&keys.alive_runtime)
        .wait()
        .map_err(|e| LinkError::declare("the liveliness token", &keys.alive_runtime, e))?;
    Ok(Endpoints {
        subscribers,
        tokens: vec![token],
        node: None,
    })
}

impl RobotLink {
    /// Connects to the robot named by `config`: accepted states go to `writer`, stamped with
    /// `clock`; e-stop messages act on `estop`.
    pub fn connect<C: Clock + Clone + Sync + 'static>(
        session: Session,
        config: &RobotConfig,
        writer: ObservationWriter,
        clock: C,
        estop: EStop,
        waker: Waker,
    ) -> Result<Self, LinkError> {
        let keys = Keys::new(&config.link.key_prefix);
        let stats = Arc::new(LinkStats::default());
        let dof = config.dof();
        let sensor_len = config.observation.sensor_values;

        // The writer and the newest accepted state, shared by the state callback and the
        // liveliness callback (which invalidates the newest state when the robot goes).
        let mailbox: Mailbox = Arc::new(Mutex::new((writer, Observation::empty(dof, sensor_len))));
        let gone = spawn_loss_watch(config, &stats, &mailbox)?;
        let cameras = Arc::new(CameraFrames::new(&config.observation.cameras));
        let shared = Shared {
            stats: stats.clone(),
            mailbox,
            waker,
            gone,
            cameras: cameras.clone(),
        };
        let endpoints = match &config.link.ros2 {
            None => rlrt_endpoints(&session, config, &keys, shared, clock, estop)?,
            Some(ros) => {
                crate::ros2::link::endpoints(session.clone(), config, ros, shared, clock, estop)?
            }
        };
        Ok(Self {
            keys,
            stats,
            session,
            _subscribers: endpoints.subscribers,
            cameras,
            _tokens: endpoints.tokens,
            ros2: endpoints.node,
        })
    }

    /// The newest frame of each camera of the hw-config.
    pub fn cameras(&self) -> Arc<CameraFrames> {
        self.cameras.clone()
    }

    /// Asks the simulator for its ground-truth verdict on the current episode.
    pub fn query_evaluation(&self, timeout: Duration) -> Result<protocol::Evaluation, LinkError> {
        query_evaluation(&self.session, &self.keys, timeout)
    }

    pub fn stats(&self) -> Arc<LinkStats> {
        self.stats.clone()
    }

    /// Every counter of the link and of its cameras, now.
    pub fn counters(&self) -> LinkCounters {
        LinkCounters::read(&self.stats, &self.cameras)
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The command sink for the control loop, with its publisher thread. `flags` are added
    /// to every command of rlrt's own protocol (such as [`protocol::FLAG_LOCKSTEP_STEP`]); a
    /// `ros2` link sends the command as its `command_type` instead.
    pub fn command_sink(
        &self,
        config: &RobotConfig,
        flags: u8,
    ) -> Result<LinkCommandSink, LinkError> {
        let send: CommandSender = match (&self.ros2, &config.link.ros2) {
            (Some(node), Some(ros)) => crate::ros2::link::command_sender(node, config, ros)?,
            _ => {
                let publisher = self
                    .session
                    .declare_publisher(self.keys.command.clone())
                    .encoding(Encoding::APPLICATION_CDR.with_schema("rlrt_msgs/Command"))
                    // Sent at once, not held for batching: a command is late the moment it
                    // waits.
                    .express(true)
                    .wait()
                    .map_err(|e| {
                        LinkError::declare("the command publisher", &self.keys.command, e)
                    })?;
                Box::new(move |command: &Command, buf: &mut Vec<u8>| {
                    protocol::encode_command(command, flags, buf);
                    publisher.put(buf.as_slice()).wait().is_ok()
                })
            }
        };
        let (input, mut output) =
            triple_buffer::triple_buffer(&Command::new(config.action.mode, config.action.len()));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = self.stats.clone();
        let thread = {
            let stop = stop.clone();
            let mut send = send;
            std::thread::Builder::new()
                .name("rlrt-link-publish".into())
                .spawn(move || {
                    let mut buf = Vec::with_capacity(1024 + 8 * crate::config::MAX_ACTION);
                    let mut last_seq = 0;
                    while !stop.load(Ordering::Acquire) {
                        let command = *output.read();
                        if command.seq != last_seq {
                            last_seq = command.seq;
                            if send(&command, &mut buf) {
                                stats.commands_sent.fetch_add(1, Ordering::Relaxed);
                            } else {
                                stats.command_send_failures.fetch_add(1, Ordering::Relaxed);
                            }
                            // Check again before sleeping: another command may have arrived.
                            continue;
                        }
                        std::thread::park();
                    }
                })?
        };
        Ok(LinkCommandSink {
            input,
            thread: Some(thread),
            stop,
        })
    }

    /// Sends an episode-control message to a simulator.
    pub fn send_episode(&self, op: protocol::EpisodeOp) -> Result<(), LinkError> {
        let mut buf = Vec::with_capacity(32);
        protocol::encode_episode(op, &mut buf);
        self.session
            .put(&self.keys.episode, buf)
            .encoding(Encoding::APPLICATION_CDR.with_schema("rlrt_msgs/Episode"))
            .wait()
            .map_err(|e| LinkError::declare("an episode message", &self.keys.episode, e))
    }
}

/// The loop's sink for the link: hands the newest command to the publisher thread.
pub struct LinkCommandSink {
    input: triple_buffer::Input<Command>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl CommandSink for LinkCommandSink {
    fn send(&mut self, command: &Command) -> Result<(), SinkError> {
        self.input.write(*command);
        match &self.thread {
            Some(thread) => {
                thread.thread().unpark();
                Ok(())
            }
            None => Err(SinkError::Disconnected),
        }
    }
}

impl Drop for LinkCommandSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
