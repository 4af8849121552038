//! The telemetry hub: the one thread that drains the control loop's telemetry and hands every
//! tick record to each consumer in turn (the fault log, reward evaluation, the run recorder,
//! rerun logging). Consumers may be slow; the loop never waits for them (the telemetry
//! channel drops the newest record when full and counts it in `telemetry_dropped`).
//!
//! Consumers that also want to show what they computed on a timeline (reward terms, events)
//! send [`Event`]s through an [`EventSender`]; whatever draws the timeline (the `rlrt-rerun`
//! crate) owns the receiving end. Nothing here knows who draws it.

pub mod fault_log;
pub mod recorder;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::telemetry::{TelemetryReceiver, TickRecord};

/// Something that wants every tick's record.
pub trait TickConsumer: Send {
    fn on_tick(&mut self, record: &TickRecord);
    /// Called when the queue is empty, before the thread sleeps (such as for hot reload).
    fn on_idle(&mut self) {}
    /// Called once after the loop's sender is gone and the queue is drained.
    fn finish(&mut self) {}
}

/// Starts the telemetry thread; it ends when the loop's telemetry sender is dropped.
pub fn spawn(
    receiver: TelemetryReceiver,
    mut consumers: Vec<Box<dyn TickConsumer>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("rlrt-telemetry".into())
        .spawn(move || {
            while let Some(n) = receiver.drain_or_closed(|record| {
                for c in consumers.iter_mut() {
                    c.on_tick(record);
                }
            }) {
                if n == 0 {
                    for c in consumers.iter_mut() {
                        c.on_idle();
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            for c in consumers.iter_mut() {
                c.finish();
            }
        })
}

/// Something worth showing on a run's timeline.
pub enum Event {
    Tick(Box<TickRecord>),
    /// A step of a recorded episode: observation, proposed and sent action only (no timing
    /// or safety: those were not recorded).
    Replayed(Box<TickRecord>),
    /// One evaluation of a reward source: its terms and their sum.
    Reward {
        tick: u64,
        time_ns: u64,
        source: Arc<str>,
        names: Arc<[String]>,
        values: Vec<f64>,
        total: f64,
    },
    /// A reward source could not score this tick (a limit, a NaN, a bad frame).
    RewardInvalid {
        tick: u64,
        time_ns: u64,
        source: Arc<str>,
        why: String,
    },
    /// A camera frame, on the first tick that could see it.
    Frame {
        camera: usize,
        tick: u64,
        time_ns: u64,
        data: Vec<u8>,
    },
    /// A line in the event log (`events`).
    Text {
        tick: u64,
        time_ns: u64,
        level: &'static str,
        text: String,
    },
}

/// The sending side of an event queue. Cloning is cheap; sending never blocks.
#[derive(Clone)]
pub struct EventSender {
    tx: Sender<Event>,
    dropped: Arc<AtomicU64>,
}

/// A bounded event queue (at least 16 events): its sender and receiver.
pub fn event_queue(len: usize) -> (EventSender, Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::bounded(len.max(16));
    (
        EventSender {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

impl EventSender {
    /// Never blocks: a full queue (or one whose receiver is gone) drops the event and counts
    /// it.
    pub fn offer(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting in the queue.
    pub fn backlog(&self) -> usize {
        self.tx.len()
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.tx.capacity().unwrap_or(usize::MAX)
    }
}

/// How wall-clock time is found for an event.
#[derive(Clone, Copy, Debug)]
pub enum WallTime {
    /// The loop's clock is the OS monotonic clock started at this Unix time (ns).
    ClockOrigin(i128),
    /// The loop's clock is simulated: use the time the event is drawn.
    OnArrival,
}

impl WallTime {
    /// The loop clock was created just now (a `WallClock` made at this instant reads about
    /// `clock_now_ns`).
    pub fn from_clock_now(clock_now_ns: u64) -> Self {
        Self::ClockOrigin(unix_ns() - clock_now_ns as i128)
    }

    /// Seconds since the Unix epoch of loop time `time_ns`.
    pub fn seconds(self, time_ns: u64) -> f64 {
        match self {
            Self::ClockOrigin(origin) => (origin + time_ns as i128) as f64 * 1e-9,
            Self::OnArrival => unix_ns() as f64 * 1e-9,
        }
    }
}

fn unix_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
