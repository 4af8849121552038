//! Per-tick records for everything that may be late: logging, recording, rerun, rewards.
//!
//! The tick hands a fixed-size [`TickRecord`] to a bounded crossbeam channel with
//! `try_send`. Overflow policy: **drop the newest record and count it** (in
//! [`crate::stats::LoopStats::telemetry_dropped`]); the tick never waits. Consumers must
//! poll ([`TelemetryReceiver::drain`]) rather than block on the channel, so that the tick
//! never has to wake a sleeping thread (waking takes a lock and a system call).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::MAX_ACTION;
use crate::messages::Observation;
use crate::safety::Cause;
use crate::stats::LoopStats;

/// What happened on one tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickRecord {
    pub tick: u64,
    pub deadline_ns: u64,
    pub start_ns: u64,
    pub read_ns: u64,
    pub policy_ns: u64,
    pub safety_ns: u64,
    pub publish_ns: u64,
    /// Sequence number of the observation used, 0 if none.
    pub observation_seq: u64,
    /// Age of that observation at tick start.
    pub observation_age_ns: u64,
    /// Bit mask of [`Cause`]s.
    pub interventions: u32,
    pub fault: Option<Cause>,
    pub published: bool,
    pub command_seq: u64,
    pub dof: u8,
    pub action_len: u8,
    /// The observation the tick used (`seq` 0 when there was none): joint state and
    /// sensors, for reward programs, recording and rerun.
    pub observation: Observation,
    /// What the policy asked for (zeros when it was not asked).
    pub proposed: [f64; MAX_ACTION],
    /// What was sent.
    pub command: [f64; MAX_ACTION],
}

impl TickRecord {
    pub fn empty() -> Self {
        Self {
            tick: 0,
            deadline_ns: 0,
            start_ns: 0,
            read_ns: 0,
            policy_ns: 0,
            safety_ns: 0,
            publish_ns: 0,
            observation_seq: 0,
            observation_age_ns: 0,
            interventions: 0,
            fault: None,
            published: false,
            command_seq: 0,
            dof: 0,
            action_len: 0,
            observation: Observation::empty(0, 0),
            proposed: [0.0; MAX_ACTION],
            command: [0.0; MAX_ACTION],
        }
    }

    pub fn command(&self) -> &[f64] {
        &self.command[..self.action_len as usize]
    }

    pub fn proposed(&self) -> &[f64] {
        &self.proposed[..self.action_len as usize]
    }

    pub fn positions(&self) -> &[f64] {
        &self.observation.joint_positions[..self.dof as usize]
    }
}

/// Creates the telemetry channel. The buffer is allocated here, once.
pub fn telemetry_channel(
    capacity: usize,
    stats: Arc<LoopStats>,
) -> (TelemetrySender, TelemetryReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (TelemetrySender { tx, stats }, TelemetryReceiver { rx })
}

/// The tick's end of the channel.
pub struct TelemetrySender {
    tx: Sender<TickRecord>,
    stats: Arc<LoopStats>,
}

impl TelemetrySender {
    /// Never blocks. A full or closed channel drops the record and counts it.
    #[inline]
    pub fn offer(&self, record: &TickRecord) {
        match self.tx.try_send(*record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.telemetry_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The consumers' end.
pub struct TelemetryReceiver {
    rx: Receiver<TickRecord>,
}

impl TelemetryReceiver {
    /// Calls `f` for every queued record; returns how many there were. Never blocks.
    pub fn drain(&self, mut f: impl FnMut(&TickRecord)) -> usize {
        let mut n = 0;
        while let Ok(record) = self.rx.try_recv() {
            f(&record);
            n += 1;
        }
        n
    }

    /// Calls `f` for every queued record; returns how many there were, or `None` once the
    /// sender is gone and the queue is empty. Never blocks.
    pub fn drain_or_closed(&self, mut f: impl FnMut(&TickRecord)) -> Option<usize> {
        let mut n = 0;
        loop {
            match self.rx.try_recv() {
                Ok(record) => {
                    f(&record);
                    n += 1;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return Some(n),
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    return if n == 0 { None } else { Some(n) };
                }
            }
        }
    }

    /// Polls until the sender is gone and the queue is empty, sleeping `poll` between
    /// empty polls. For consumer threads.
    pub fn run_until_closed(&self, poll: Duration, mut f: impl FnMut(&TickRecord)) {
        loop {
            if self.drain(&mut f) == 0 {
                if self.rx.is_empty() && is_disconnected(&self.rx) {
                    return;
                }
                std::thread::sleep(poll);
            }
        }
    }
}

fn is_disconnected(rx: &Receiver<TickRecord>) -> bool {
    matches!(
        rx.try_recv(),
        Err(crossbeam_channel::TryRecvError::Disconnected)
    )
}
