//! Serves a simulated robot over the zenoh link, so that the runtime cannot tell it from
//! hardware: state on `<prefix>/state`, camera frames on `<prefix>/camera/<name>`,
//! commands from `<prefix>/command`, episode control from `<prefix>/episode`, the task's
//! ground-truth verdict on queries to `<prefix>/sim/evaluation`, and a liveliness token on
//! `<prefix>/alive/robot`.
//!
//! One thread owns the plant (MuJoCo's renderer cannot change threads); zenoh callbacks
//! hand it commands and episode messages over a bounded channel. Two modes: free-running
//! (the thread steps at a fixed wall-clock rate and publishes every step, like hardware)
//! and lockstep (each command flagged `FLAG_LOCKSTEP_STEP` advances one control period and
//! is answered by the next state: fast and deterministic, for training loops). Cameras
//! render at their configured rate in simulated time; a frame is published before the
//! state of the same step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use image::ImageEncoder;
use rlrt_runtime::config::{ActionMode, Ros2Config};
use rlrt_runtime::link::{FramePublisher, Keys, LinkError};
use rlrt_runtime::protocol::{self, EpisodeOp, Evaluation, ImageEncodingName, FLAG_LOCKSTEP_STEP};
use rlrt_runtime::ros2;
use rlrt_runtime::{Clock, Command, Observation, RobotConfig, WallClock};
use zenoh::bytes::Encoding;
use zenoh::{Session, Wait};

use crate::{KinematicArm, Plant};

/// How the served simulator advances.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServeMode {
    FreeRun { rate_hz: f64 },
    Lockstep,
}

/// Counters of a served simulator.
#[derive(Debug, Default)]
pub struct ServeStats {
    pub commands: AtomicU64,
    pub malformed_commands: AtomicU64,
    /// Commands dropped because the simulator thread was behind.
    pub dropped_commands: AtomicU64,
    pub out_of_limit_commands: AtomicU64,
    pub states_published: AtomicU64,
    pub frames_published: AtomicU64,
    /// Of the frames published, those that went out from zenoh shared memory.
    pub frames_shared: AtomicU64,
    pub render_failures: AtomicU64,
    pub resets: AtomicU64,
    pub steps: AtomicU64,
}

// Commands travel by value (no allocation per command); 288 bytes through a channel is
// cheap next to a simulation step.
#[allow(clippy::large_enum_variant)]
enum Event {
    Command(Command, u8),
    Episode(EpisodeOp),
    Stop,
}

/// A running simulator node; dropping it stops it and withdraws its liveliness token.
pub struct SimServer {
    stats: Arc<ServeStats>,
    events: Sender<Event>,
    thread: Option<JoinHandle<()>>,
    _command: zenoh::pubsub::Subscriber<()>,
    _episode: zenoh::pubsub::Subscriber<()>,
    _evaluation: zenoh::query::Queryable<()>,
    _tokens: Vec<zenoh::liveliness::LivelinessToken>,
    /// The simulator's ROS 2 node on a ros2 link.
    _node: Option<ros2::node::Node>,
}

/// Everything the serving thread owns.
struct Served<P: Plant> {
    plant: P,
    observation: Observation,
    state_buf: Vec<u8>,
    state: StateOut,
    cameras: Vec<ServedCamera>,
    clock: WallClock,
    stats: Arc<ServeStats>,
    evaluation: Arc<Mutex<Evaluation>>,
    seed: u64,
    steps: u64,
    sim_time_s: f64,
}

struct ServedCamera {
    name: String,
    width: u32,
    height: u32,
    period_s: f64,
    next_due_s: f64,
    publisher: CameraOut,
}

/// Where states go: rlrt's own key, or a ROS 2 `sensor_msgs/msg/JointState` topic.
enum StateOut {
    Rlrt(zenoh::pubsub::Publisher<'static>),
    Ros2 {
        publisher: ros2::node::Publisher,
        names: Vec<String>,
    },
}

/// Where a camera's frames go: rlrt's own key (from shared memory when it can), or a ROS 2
/// topic as `sensor_msgs/msg/Image` or as PNG in `sensor_msgs/msg/CompressedImage`.
enum CameraOut {
    Rlrt(FramePublisher),
    Ros2 {
        publisher: ros2::node::Publisher,
        png: bool,
        buf: Vec<u8>,
        encoded: Vec<u8>,
    },
}

impl CameraOut {
    /// Publishes a frame; true when it went out from shared memory.
    fn put(&mut self, view: &protocol::ImageView<'_>) -> Result<bool, ()> {
        match self {
            CameraOut::Rlrt(publisher) => publisher.put(view).map_err(|_| ()),
            CameraOut::Ros2 {
                publisher,
                png: false,
                buf,
                ..
            } => {
                protocol::encode_image(view, buf);
                publisher.put(buf).map(|()| false).map_err(|_| ())
            }
            CameraOut::Ros2 {
                publisher,
                png: true,
                buf,
                encoded,
            } => {
                encoded.clear();
                image::codecs::png::PngEncoder::new_with_quality(
                    &mut *encoded,
                    image::codecs::png::CompressionType::Fast,
                    image::codecs::png::FilterType::NoFilter,
                )
                .write_image(
                    view.data,
                    view.width,
                    view.height,
                    image::ExtendedColorType::Rgb8,
                )
                .map_err(|_| ())?;
                ros2::msgs::encode_compressed_image(
                    &ros2::msgs::CompressedView {
                        stamp_ns: view.stamp_ns,
                        frame_id: view.camera,
                        format: "rgb8; png compressed rgb8",
                        data: encoded,
                    },
                    buf,
                );
                publisher.put(buf).map(|()| false).map_err(|_| ())
            }
        }
    }
}

impl<P: Plant> Served<P> {
    fn reset(&mut self, seed: u64) {
        self.plant.reset(seed);
        self.seed = seed;
        self.steps = 0;
        self.sim_time_s = 0.0;
        for camera in &mut self.cameras {
            camera.next_due_s = 0.0;
        }
        self.stats.resets.fetch_add(1, Ordering::Relaxed);
        self.publish();
    }

    fn step(&mut self, dt_s: f64) {
        self.plant.step(dt_s);
        self.steps += 1;
        self.sim_time_s += dt_s;
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        self.publish();
    }

    /// Frames that are due, then the state, then the verdict for queries.
    fn publish(&mut self) {
        let stamp_ns = self.clock.now_ns();
        for index in 0..self.cameras.len().min(self.plant.cameras()) {
            let camera = &mut self.cameras[index];
            if self.sim_time_s + 1e-9 < camera.next_due_s {
                continue;
            }
            camera.next_due_s += camera.period_s;
            if camera.next_due_s <= self.sim_time_s {
                camera.next_due_s = self.sim_time_s + camera.period_s;
            }
            let (width, height) = (camera.width, camera.height);
            match self.plant.render(index) {
                Ok(pixels) => {
                    let camera = &mut self.cameras[index];
                    let view = protocol::ImageView {
                        stamp_ns,
                        camera: &camera.name,
                        height,
                        width,
                        encoding: ImageEncodingName::Rgb8,
                        step: width * 3,
                        data: pixels,
                    };
                    if let Ok(shared) = camera.publisher.put(&view) {
                        self.stats.frames_published.fetch_add(1, Ordering::Relaxed);
                        if shared {
                            self.stats.frames_shared.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(e) => {
                    if self.stats.render_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::error!(camera = %self.cameras[index].name, "rendering failed: {e}");
                    }
                }
            }
        }
        self.plant.observe(&mut self.observation);
        self.observation.seq += 1;
        self.observation.stamp_ns = stamp_ns;
        let sent = match &mut self.state {
            StateOut::Rlrt(publisher) => {
                protocol::encode_state(&self.observation, &mut self.state_buf);
                publisher.put(self.state_buf.as_slice()).wait().is_ok()
            }
            StateOut::Ros2 { publisher, names } => {
                // Stamped on the system clock, as ROS 2 drivers stamp their states.
                let stamp = ros2::wire::system_time_ns().max(0) as u64;
                ros2::msgs::encode_joint_state(
                    names,
                    &self.observation,
                    stamp,
                    "",
                    &mut self.state_buf,
                );
                publisher.put(&self.state_buf).is_ok()
            }
        };
        if sent {
            self.stats.states_published.fetch_add(1, Ordering::Relaxed);
        }
        let verdict = self.plant.verdict().unwrap_or_default();
        if let Ok(mut e) = self.evaluation.lock() {
            *e = Evaluation {
                state_seq: self.observation.seq,
                seed: self.seed,
                steps: self.steps,
                success: verdict.success,
                score: verdict.score,
            };
        }
    }
}

impl SimServer {
    /// Serves the kinematic model of `config`'s joints on `session` (no cameras, no task).
    pub fn start(
        session: &Session,
        config: &RobotConfig,
        seed: u64,
        mode: ServeMode,
    ) -> Result<Self, LinkError> {
        let config_for_plant = config.clone();
        Self::start_with(session, config, seed, mode, move || {
            Ok::<_, std::convert::Infallible>(KinematicArm::new(&config_for_plant))
        })
        .map_err(|e| match e {
            ServeError::Link(e) => e,
            ServeError::Plant(never) => match never {},
        })
    }

    /// Serves the plant that `make` builds. `make` runs on the serving thread (so the plant
    /// need not be `Send`); its error is returned from here.
    pub fn start_with<P, E, F>(
        session: &Session,
        config: &RobotConfig,
        seed: u64,
        mode: ServeMode,
        make: F,
    ) -> Result<Self, ServeError<E>>
    where
        P: Plant + 'static,
        E: Send + 'static,
        F: FnOnce() -> Result<P, E> + Send + 'static,
    {
        let keys = Keys::new(&config.link.key_prefix);
        let stats = Arc::new(ServeStats::default());
        let evaluation = Arc::new(Mutex::new(Evaluation::default()));
        let (events, inbox) = crossbeam_channel::bounded::<Event>(256);

        // On a ros2 link the simulator is a ROS 2 node of its own, named after the runtime's.
        let node = match &config.link.ros2 {
            Some(ros) => {
                let mut sim = ros.clone();
                sim.node_name = format!("{}_sim", ros.node_name);
                Some(ros2::node::Node::new(session.clone(), &sim)?)
            }
            None => None,
        };
        let ros = node.as_ref().zip(config.link.ros2.as_ref());
        let state = state_out(session, config, &keys, ros)?;
        let cameras = camera_outs(session, config, &keys, ros)?;
        let mut tokens = Vec::new();
        let command = match ros {
            Some((node, ros)) => {
                let (command, token) =
                    subscribe_ros2_commands(session, config, node, ros, &stats, &events)?;
                tokens.push(token);
                command
            }
            None => subscribe_commands(session, config, &keys, &stats, &events)?,
        };
        let episode = subscribe_episodes(session, &keys, &events)?;
        let queryable = answer_evaluations(session, &keys, &evaluation)?;

        let observation = Observation::empty(config.dof(), config.observation.sensor_values);
        let served = {
            let stats = stats.clone();
            move |plant| Served {
                plant,
                observation,
                state_buf: Vec::with_capacity(1024),
                state,
                cameras,
                clock: WallClock::new(),
                stats,
                evaluation,
                seed,
                steps: 0,
                sim_time_s: 0.0,
            }
        };
        let thread = spawn_serving(make, served, inbox, mode, config)?;

        // The liveliness token last: the robot is "alive" once it can answer.
        let token = session
            .liveliness()
            .declare_token(&keys.alive_robot)
            .wait()
            .map_err(|e| LinkError::declare("the liveliness token", &keys.alive_robot, e))?;
        tokens.push(token);
        Ok(Self {
            stats,
            events,
            thread: Some(thread),
            _command: command,
            _episode: episode,
            _evaluation: queryable,
            _tokens: tokens,
            _node: node,
        })
    }

    pub fn stats(&self) -> Arc<ServeStats> {
        self.stats.clone()
    }
}

type Subscriber = zenoh::pubsub::Subscriber<()>;

/// The node of a ros2 link and its table.
type Ros2<'a> = Option<(&'a ros2::node::Node, &'a Ros2Config)>;

/// Where states go: the JointState topic of a ros2 link, or rlrt's state key.
fn state_out(
    session: &Session,
    config: &RobotConfig,
    keys: &Keys,
    ros: Ros2<'_>,
) -> Result<StateOut, LinkError> {
    Ok(match ros {
        Some((node, ros)) => StateOut::Ros2 {
            publisher: node.publisher(
                &ros.state_topic,
                &ros2::wire::JOINT_STATE,
                &ros2::wire::Qos::DEFAULT,
            )?,
            names: config.joints.iter().map(|j| j.name.clone()).collect(),
        },
        None => StateOut::Rlrt(
            session
                .declare_publisher(keys.state.clone())
                .encoding(Encoding::APPLICATION_CDR.with_schema("rlrt_msgs/RobotState"))
                // Sent at once, not held for batching, as a robot's driver should.
                .express(true)
                .wait()
                .map_err(|e| LinkError::declare("the state publisher", &keys.state, e))?,
        ),
    })
}

/// Each hw-config camera and where its frames go: its topic on a ros2 link, or rlrt's
/// camera key.
fn camera_outs(
    session: &Session,
    config: &RobotConfig,
    keys: &Keys,
    ros: Ros2<'_>,
) -> Result<Vec<ServedCamera>, LinkError> {
    let mut cameras = Vec::new();
    for (index, spec) in config.observation.cameras.iter().enumerate() {
        let bytes = spec.width as usize * spec.height as usize * 3;
        let publisher = match ros {
            Some((node, ros)) => {
                let camera = &ros.cameras[index];
                let ty = if camera.compressed {
                    ros2::wire::COMPRESSED_IMAGE
                } else {
                    ros2::wire::IMAGE
                };
                CameraOut::Ros2 {
                    publisher: node.publisher(&camera.topic, &ty, &ros2::wire::Qos::SENSOR_DATA)?,
                    png: camera.compressed,
                    buf: Vec::with_capacity(bytes + 256),
                    encoded: Vec::new(),
                }
            }
            None => {
                let key = keys.camera(&spec.name);
                CameraOut::Rlrt(FramePublisher::new(
                    session,
                    &key,
                    config.link.shared_memory,
                    bytes,
                )?)
            }
        };
        cameras.push(ServedCamera {
            name: spec.name.clone(),
            width: spec.width,
            height: spec.height,
            period_s: 1.0 / spec.rate_hz,
            next_due_s: 0.0,
            publisher,
        });
    }
    Ok(cameras)
}

/// The ros2 link's command topic, read as the configured controller would (see
/// [`ros2_command_decoder`]); each command becomes an event. Returns the subscriber and the
/// subscription's token in the ROS graph.
fn subscribe_ros2_commands(
    session: &Session,
    config: &RobotConfig,
    node: &ros2::node::Node,
    ros: &Ros2Config,
    stats: &Arc<ServeStats>,
    events: &Sender<Event>,
) -> Result<(Subscriber, zenoh::liveliness::LivelinessToken), LinkError> {
    let (key, token) = node.subscription(
        &ros.command_topic,
        &ros2_command_type(ros.command_type),
        &ros2::wire::Qos::DEFAULT,
    )?;
    let (stats, events) = (stats.clone(), events.clone());
    let mut decode = ros2_command_decoder(config);
    let subscriber = session
        .declare_subscriber(&key)
        .callback_mut(move |sample| {
            let attachment = sample.attachment().map(|a| a.to_bytes());
            let command = match ros2::wire::Attachment::decode(attachment.as_deref()) {
                Ok(_) => decode(&sample.payload().to_bytes()),
                Err(_) => None,
            };
            // As ros2_control's controllers do, a command of the wrong shape is
            // ignored: the robot holds the last one.
            let Some(command) = command else {
                stats.malformed_commands.fetch_add(1, Ordering::Relaxed);
                return;
            };
            stats.commands.fetch_add(1, Ordering::Relaxed);
            // A ROS 2 command carries no lockstep flag: in lockstep, each one steps.
            if let Err(TrySendError::Full(_)) =
                events.try_send(Event::Command(command, FLAG_LOCKSTEP_STEP))
            {
                stats.dropped_commands.fetch_add(1, Ordering::Relaxed);
            }
        })
        .wait()
        .map_err(|e| LinkError::declare("the command subscriber", &key, e))?;
    Ok((subscriber, token))
}

/// rlrt's command key: commands of the action's length become events with their flags.
fn subscribe_commands(
    session: &Session,
    config: &RobotConfig,
    keys: &Keys,
    stats: &Arc<ServeStats>,
    events: &Sender<Event>,
) -> Result<Subscriber, LinkError> {
    let (stats, events) = (stats.clone(), events.clone());
    let mut scratch = Command::new(config.action.mode, config.action.len());
    let expected = config.action.len();
    session
        .declare_subscriber(&keys.command)
        .callback_mut(move |sample| {
            let flags = match protocol::decode_command(&sample.payload().to_bytes(), &mut scratch) {
                Ok(flags) if scratch.len as usize == expected => flags,
                _ => {
                    stats.malformed_commands.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            stats.commands.fetch_add(1, Ordering::Relaxed);
            if let Err(TrySendError::Full(_)) = events.try_send(Event::Command(scratch, flags)) {
                stats.dropped_commands.fetch_add(1, Ordering::Relaxed);
            }
        })
        .wait()
        .map_err(|e| LinkError::declare("the command subscriber", &keys.command, e))
}

/// The episode key: resets and other episode messages become events (waiting up to a
/// second for room: they are rare and must not be lost).
fn subscribe_episodes(
    session: &Session,
    keys: &Keys,
    events: &Sender<Event>,
) -> Result<Subscriber, LinkError> {
    let events = events.clone();
    session
        .declare_subscriber(&keys.episode)
        .callback(move |sample| {
            if let Ok(op) = protocol::decode_episode(&sample.payload().to_bytes()) {
                let _ = events.send_timeout(Event::Episode(op), Duration::from_secs(1));
            }
        })
        .wait()
        .map_err(|e| LinkError::declare("the episode subscriber", &keys.episode, e))
}

/// Answers queries on the evaluation key with the latest ground-truth verdict.
fn answer_evaluations(
    session: &Session,
    keys: &Keys,
    evaluation: &Arc<Mutex<Evaluation>>,
) -> Result<zenoh::query::Queryable<()>, LinkError> {
    let evaluation = evaluation.clone();
    let key = keys.sim_evaluation.clone();
    session
        .declare_queryable(&keys.sim_evaluation)
        .callback(move |query| {
            let Ok(e) = evaluation.lock().map(|e| *e) else {
                return;
            };
            let mut buf = Vec::with_capacity(64);
            protocol::encode_evaluation(&e, &mut buf);
            let _ = query
                .reply(&key, buf)
                .encoding(Encoding::APPLICATION_CDR.with_schema("rlrt_msgs/Evaluation"))
                .wait();
        })
        .wait()
        .map_err(|e| LinkError::declare("the evaluation queryable", &keys.sim_evaluation, e))
}

/// Starts the serving thread: it builds the plant with `make` (there, as a plant need not be
/// `Send`), then serves `served(plant)` until stopped. Returns once the plant is built: with
/// the thread, or with `make`'s error.
fn spawn_serving<P, E, F>(
    make: F,
    served: impl FnOnce(P) -> Served<P> + Send + 'static,
    inbox: Receiver<Event>,
    mode: ServeMode,
    config: &RobotConfig,
) -> Result<JoinHandle<()>, ServeError<E>>
where
    P: Plant + 'static,
    E: Send + 'static,
    F: FnOnce() -> Result<P, E> + Send + 'static,
{
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), E>>(1);
    let control_rate_hz = config.control_rate_hz;
    let period_s = config.period_s();
    let thread = std::thread::Builder::new()
        .name("rlrt-sim-serve".into())
        .spawn(move || {
            let plant = match make() {
                Ok(plant) => {
                    let _ = ready_tx.send(Ok(()));
                    plant
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            serve_loop(served(plant), inbox, mode, control_rate_hz, period_s);
        })
        .map_err(LinkError::Thread)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(ServeError::Plant(e))
        }
        Err(_) => {
            let _ = thread.join();
            Err(ServeError::Link(LinkError::Thread(std::io::Error::other(
                "the simulator thread died while building its plant",
            ))))
        }
    }
}

fn ros2_command_type(kind: rlrt_runtime::config::Ros2Command) -> ros2::wire::MsgType {
    match kind {
        rlrt_runtime::config::Ros2Command::Float64MultiArray => ros2::wire::FLOAT64_MULTI_ARRAY,
        rlrt_runtime::config::Ros2Command::JointTrajectory => ros2::wire::JOINT_TRAJECTORY,
    }
}

/// Reads a ROS 2 command as the configured controller would: a Float64MultiArray with one
/// value per joint, or a JointTrajectory's first point naming every joint with values for
/// the action's mode (positions, velocities or efforts). Anything else is `None`.
fn ros2_command_decoder(config: &RobotConfig) -> impl FnMut(&[u8]) -> Option<Command> + Send {
    let ros = config.link.ros2.clone().expect("a ros2 link");
    let mode = config.action.mode;
    let len = config.action.len();
    let names: Vec<String> = config.joints.iter().map(|j| j.name.clone()).collect();
    let mut command = Command::new(mode, len);
    let mut seq = 0;
    move |payload| {
        match ros.command_type {
            rlrt_runtime::config::Ros2Command::Float64MultiArray => {
                let n =
                    ros2::msgs::decode_float64_multi_array(payload, &mut command.values).ok()?;
                if n != len {
                    return None;
                }
            }
            rlrt_runtime::config::Ros2Command::JointTrajectory => {
                let point = ros2::msgs::decode_joint_trajectory(payload, &names).ok()?;
                let (values, has) = match mode {
                    ActionMode::JointPosition => (&point.positions, point.has[0]),
                    ActionMode::JointVelocity => (&point.velocities, point.has[1]),
                    ActionMode::JointEffort => (&point.efforts, point.has[2]),
                    ActionMode::EeDelta => return None,
                };
                if !has {
                    return None;
                }
                command.values[..len].copy_from_slice(&values[..len]);
            }
        }
        seq += 1;
        command.seq = seq;
        command.len = len as u32;
        command.is_fault_action = false;
        Some(command)
    }
}

/// Why a simulator could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError<E> {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("{0}")]
    Plant(E),
}

fn serve_loop<P: Plant>(
    mut served: Served<P>,
    inbox: Receiver<Event>,
    mode: ServeMode,
    control_rate_hz: f64,
    control_period_s: f64,
) {
    let seed = served.seed;
    served.reset(seed);
    let mut lockstep = mode == ServeMode::Lockstep;
    // Free-run steps at the given rate, or at the control rate after a switch from
    // lockstep; each step advances one period of that rate.
    let rate_hz = match mode {
        ServeMode::FreeRun { rate_hz } => rate_hz,
        ServeMode::Lockstep => control_rate_hz,
    };
    let period = Duration::from_secs_f64(1.0 / rate_hz);
    let mut deadline = Instant::now() + period;
    loop {
        let event = if lockstep {
            inbox.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            inbox.recv_deadline(deadline)
        };
        match event {
            Ok(Event::Command(command, flags)) => {
                served.plant.apply(&command);
                served
                    .stats
                    .out_of_limit_commands
                    .store(served.plant.out_of_limit_commands(), Ordering::Relaxed);
                if lockstep && flags & FLAG_LOCKSTEP_STEP != 0 {
                    served.step(control_period_s);
                }
            }
            Ok(Event::Episode(EpisodeOp::Reset { seed })) => served.reset(seed),
            Ok(Event::Episode(EpisodeOp::Lockstep)) => lockstep = true,
            Ok(Event::Episode(EpisodeOp::FreeRun)) => {
                if lockstep {
                    lockstep = false;
                    deadline = Instant::now() + period;
                }
            }
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                served.step(period.as_secs_f64());
                deadline += period;
                // Behind by more than a period (a stall): skip, never burst.
                let now = Instant::now();
                if deadline < now {
                    deadline = now + period;
                }
            }
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
