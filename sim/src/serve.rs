//! Serves a simulated robot over the zenoh link, so that the runtime cannot tell it from
//! hardware: state on `<prefix>/state`, commands from `<prefix>/command`, episode control
//! from `<prefix>/episode`, and a liveliness token on `<prefix>/alive/robot`.
//!
//! Two modes: free-running (a thread steps the model at a fixed wall-clock rate and
//! publishes every step, like hardware) and lockstep (each command flagged
//! `FLAG_LOCKSTEP_STEP` advances the model by one control period and is answered by the
//! next state: fast and deterministic, for training loops).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rlrt_runtime::link::{Keys, LinkError};
use rlrt_runtime::protocol::{self, EpisodeOp, FLAG_LOCKSTEP_STEP};
use rlrt_runtime::{Clock, Command, Observation, RobotConfig, WallClock};
use zenoh::bytes::Encoding;
use zenoh::{Session, Wait};

use crate::KinematicArm;

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
    pub out_of_limit_commands: AtomicU64,
    pub states_published: AtomicU64,
    pub resets: AtomicU64,
}

struct Shared {
    arm: KinematicArm,
    observation: Observation,
    buf: Vec<u8>,
    period_s: f64,
    lockstep: bool,
}

/// A running simulator node; dropping it stops it and withdraws its liveliness token.
pub struct SimServer {
    stats: Arc<ServeStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _command: zenoh::pubsub::Subscriber<()>,
    _episode: zenoh::pubsub::Subscriber<()>,
    _token: zenoh::liveliness::LivelinessToken,
}

fn publish(
    shared: &mut Shared,
    publisher: &zenoh::pubsub::Publisher<'static>,
    clock: &WallClock,
    stats: &ServeStats,
) {
    shared.arm.observe(&mut shared.observation);
    shared.observation.seq += 1;
    shared.observation.stamp_ns = clock.now_ns();
    protocol::encode_state(&shared.observation, &mut shared.buf);
    if publisher.put(shared.buf.as_slice()).wait().is_ok() {
        stats.states_published.fetch_add(1, Ordering::Relaxed);
    }
}

impl SimServer {
    /// Starts serving the kinematic model of `config`'s joints on `session`.
    pub fn start(
        session: &Session,
        config: &RobotConfig,
        seed: u64,
        mode: ServeMode,
    ) -> Result<Self, LinkError> {
        let keys = Keys::new(&config.link.key_prefix);
        let stats = Arc::new(ServeStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let clock = WallClock::new();
        let control_rate_hz = config.control_rate_hz;
        let mut arm = KinematicArm::new(config);
        arm.reset(seed);
        let shared = Arc::new(Mutex::new(Shared {
            arm,
            observation: Observation::empty(config.dof(), config.observation.sensor_values),
            buf: Vec::with_capacity(1024),
            period_s: config.period_s(),
            lockstep: mode == ServeMode::Lockstep,
        }));
        let publisher = session
            .declare_publisher(keys.state.clone())
            .encoding(Encoding::APPLICATION_CDR.with_schema("rlrt_msgs/RobotState"))
            .wait()
            .map_err(|e| LinkError::declare("the state publisher", &keys.state, e))?;
        let publisher = Arc::new(publisher);

        let command = {
            let (shared, stats, publisher, clock) = (
                shared.clone(),
                stats.clone(),
                publisher.clone(),
                clock.clone(),
            );
            let mut scratch = Command::new(config.action.mode, config.action.len());
            let expected = config.action.len();
            session
                .declare_subscriber(&keys.command)
                .callback_mut(move |sample| {
                    let flags = match protocol::decode_command(
                        &sample.payload().to_bytes(),
                        &mut scratch,
                    ) {
                        Ok(flags) if scratch.len as usize == expected => flags,
                        _ => {
                            stats.malformed_commands.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    stats.commands.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut s) = shared.lock() else { return };
                    s.arm.apply(&scratch);
                    stats
                        .out_of_limit_commands
                        .store(s.arm.out_of_limit_commands(), Ordering::Relaxed);
                    if s.lockstep && flags & FLAG_LOCKSTEP_STEP != 0 {
                        let dt = s.period_s;
                        s.arm.step(dt);
                        publish(&mut s, &publisher, &clock, &stats);
                    }
                })
                .wait()
                .map_err(|e| LinkError::declare("the command subscriber", &keys.command, e))?
        };

        let episode = {
            let (shared, stats, publisher, clock) = (
                shared.clone(),
                stats.clone(),
                publisher.clone(),
                clock.clone(),
            );
            session
                .declare_subscriber(&keys.episode)
                .callback(move |sample| {
                    let Ok(op) = protocol::decode_episode(&sample.payload().to_bytes()) else {
                        return;
                    };
                    let Ok(mut s) = shared.lock() else { return };
                    match op {
                        EpisodeOp::Reset { seed } => {
                            s.arm.reset(seed);
                            stats.resets.fetch_add(1, Ordering::Relaxed);
                            publish(&mut s, &publisher, &clock, &stats);
                        }
                        EpisodeOp::Lockstep => s.lockstep = true,
                        EpisodeOp::FreeRun => s.lockstep = false,
                    }
                })
                .wait()
                .map_err(|e| LinkError::declare("the episode subscriber", &keys.episode, e))?
        };

        let token = session
            .liveliness()
            .declare_token(&keys.alive_robot)
            .wait()
            .map_err(|e| LinkError::declare("the liveliness token", &keys.alive_robot, e))?;

        // The stepper runs in both modes, so that an episode message can switch between
        // them; in lockstep it only sleeps. Free-run steps at the given rate, or at the
        // control rate after a switch from lockstep.
        let thread = {
            let (shared, stats, stop) = (shared.clone(), stats.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rlrt-sim-serve".into())
                .spawn(move || {
                    if let Ok(mut s) = shared.lock() {
                        publish(&mut s, &publisher, &clock, &stats);
                    }
                    let rate_hz = match mode {
                        ServeMode::FreeRun { rate_hz } => rate_hz,
                        ServeMode::Lockstep => control_rate_hz,
                    };
                    let period_ns = (1e9 / rate_hz) as u64;
                    let mut deadline = clock.now_ns();
                    while !stop.load(Ordering::Relaxed) {
                        deadline += period_ns;
                        clock.sleep_until(deadline, 0);
                        let Ok(mut s) = shared.lock() else { return };
                        if s.lockstep {
                            continue;
                        }
                        s.arm.step(period_ns as f64 * 1e-9);
                        publish(&mut s, &publisher, &clock, &stats);
                    }
                })?
        };
        Ok(Self {
            stats,
            stop,
            thread: Some(thread),
            _command: command,
            _episode: episode,
            _token: token,
        })
    }

    pub fn stats(&self) -> Arc<ServeStats> {
        self.stats.clone()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
