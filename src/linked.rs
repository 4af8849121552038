//! A control loop wired to a robot over the zenoh link: the assembly `bench link` and the
//! link tests share (and that `run` will use once it drives robots over the link).

use std::sync::atomic::{AtomicBool, Ordering};

use rlrt_runtime::link::{open_session, RobotLink, Waker};
use rlrt_runtime::{observation_mailbox, Clock, ControlLoop, EStop, RobotConfig, WallClock};

/// The loop, its link and the waker the link uses to signal new states.
pub struct LinkedRuntime {
    pub control: ControlLoop<WallClock>,
    pub link: RobotLink,
    pub waker: Waker,
}

impl LinkedRuntime {
    /// Opens a session from `config.link`, connects to the robot and builds the loop with the
    /// config's policy. `command_flags` are added to every command (such as
    /// `protocol::FLAG_LOCKSTEP_STEP`).
    pub fn connect(config: &RobotConfig, command_flags: u8) -> anyhow::Result<Self> {
        let clock = WallClock::new();
        let (writer, reader) = observation_mailbox(config.dof(), config.observation.sensor_values);
        let waker = Waker::default();
        // One e-stop for the link's e-stop subscriber and the loop's safety layer.
        let estop = EStop::default();
        let link = RobotLink::connect(
            open_session(&config.link)?,
            config,
            writer,
            clock.clone(),
            estop.clone(),
            waker.clone(),
        )?;
        let sink = link.command_sink(config, command_flags)?;
        let policy = rlrt_policies::build(config)?;
        let control =
            ControlLoop::new(config, clock, reader, policy, Box::new(sink))?.with_estop(estop);
        Ok(Self {
            control,
            link,
            waker,
        })
    }

    /// Ticks once per accepted state until `stop` is set, sleeping in between (for lockstep
    /// simulation and latency measurement). With `kick`, ticks once first: a lockstep
    /// simulator waits for a command before it sends its next state.
    pub fn tick_on_arrival(&mut self, stop: &AtomicBool, kick: bool) {
        self.waker.register_current();
        let seen = self.link.stats().states_accepted.load(Ordering::Acquire);
        if kick {
            let t = self.control.clock().now_ns();
            self.control.tick(t);
        }
        self.tick_after(stop, seen, u64::MAX);
    }

    /// Drives a lockstep simulator from a fresh start state: asks it to reset to `seed` (it
    /// publishes its start state again) and ticks once per accepted state from that one on,
    /// until `stop` is set or the loop has run `max_ticks` ticks in all. However long set-up
    /// took since the first state, the first tick's observation is current, so the safety
    /// layer never sees it as stale.
    pub fn lockstep_from_reset(
        &mut self,
        stop: &AtomicBool,
        seed: u64,
        max_ticks: u64,
    ) -> anyhow::Result<()> {
        self.waker.register_current();
        let seen = self.link.stats().states_accepted.load(Ordering::Acquire);
        self.link
            .send_episode(rlrt_runtime::protocol::EpisodeOp::Reset { seed })?;
        self.tick_after(stop, seen, max_ticks);
        Ok(())
    }

    /// Ticks whenever the count of accepted states moves past `seen`, until `stop` is set or
    /// the loop's tick count reaches `max_ticks`.
    fn tick_after(&mut self, stop: &AtomicBool, mut seen: u64, max_ticks: u64) {
        let accepted = self.link.stats();
        let ticks = self.control.stats();
        while !stop.load(Ordering::Relaxed) && ticks.ticks.load(Ordering::Relaxed) < max_ticks {
            let now = accepted.states_accepted.load(Ordering::Acquire);
            if now != seen {
                seen = now;
                let t = self.control.clock().now_ns();
                self.control.tick(t);
            } else {
                std::thread::park_timeout(std::time::Duration::from_millis(5));
            }
        }
    }
}
