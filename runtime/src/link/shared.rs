//! What every flavour of the link shares (rlrt's own keys and `ros2`): the counters, the
//! camera frames, the mailbox the accepted states go to, the e-stop and the waker of a loop
//! that ticks on arrival.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use crate::clock::Clock;
use crate::config::CameraSpec;
use crate::messages::{Command, Observation, ObservationWriter};
use crate::protocol;
use crate::safety::EStop;

/// Counters of what the link received and sent, readable from any thread.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub states_received: AtomicU64,
    pub states_accepted: AtomicU64,
    /// Could not be decoded (bad header, version, sizes, truncation...).
    pub states_malformed: AtomicU64,
    /// Decoded but held NaN or infinite values.
    pub states_non_finite: AtomicU64,
    /// Sequence number not above the last accepted one (a reset to 1 is accepted).
    pub states_out_of_order: AtomicU64,
    /// ros2: a JointState that lacks one of the hw-config's joints (or names one twice).
    pub states_missing_joints: AtomicU64,
    /// ros2: samples (any topic) without rmw_zenoh's attachment, or with a malformed one.
    pub samples_bad_attachment: AtomicU64,
    /// ros2: samples on a subscribed topic with another type or type hash (another message,
    /// or another ROS 2 release's version of it).
    pub samples_wrong_type: AtomicU64,
    pub commands_sent: AtomicU64,
    pub command_send_failures: AtomicU64,
    pub estop_messages: AtomicU64,
    pub estop_malformed: AtomicU64,
    /// The robot's liveliness token is present (ros2: at least one publisher token of the
    /// state topic is in the graph).
    pub robot_alive: AtomicBool,
    /// How often the robot's token disappeared and stayed away (at most one straggling
    /// state after it).
    pub robot_lost: AtomicU64,
    /// How often the token disappeared but came back, or states kept arriving, within the
    /// grace period (zenoh replacing a transport).
    pub robot_token_flaps: AtomicU64,
}

impl LinkStats {
    /// Non-zero counters by name, for reports.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut all = self.all();
        all.retain(|(_, n)| *n > 0);
        all
    }

    /// Every counter by name, zeros included (machine-read reports: a key is always there).
    pub fn all(&self) -> Vec<(&'static str, u64)> {
        [
            ("states_received", &self.states_received),
            ("states_accepted", &self.states_accepted),
            ("states_malformed", &self.states_malformed),
            ("states_non_finite", &self.states_non_finite),
            ("states_out_of_order", &self.states_out_of_order),
            ("states_missing_joints", &self.states_missing_joints),
            ("samples_bad_attachment", &self.samples_bad_attachment),
            ("samples_wrong_type", &self.samples_wrong_type),
            ("commands_sent", &self.commands_sent),
            ("command_send_failures", &self.command_send_failures),
            ("estop_messages", &self.estop_messages),
            ("estop_malformed", &self.estop_malformed),
            ("robot_lost", &self.robot_lost),
            ("robot_token_flaps", &self.robot_token_flaps),
        ]
        .into_iter()
        .map(|(name, c)| (name, c.load(Ordering::Relaxed)))
        .collect()
    }
}

/// What one camera of the link received, for reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CameraCounts {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Frames received and accepted.
    pub frames: u64,
    /// Of the frames, those that arrived in zenoh shared memory.
    pub shared: u64,
    /// Frames that could not be decoded, or whose size or encoding differ from the
    /// hw-config: counted and dropped.
    pub rejected: u64,
}

impl std::fmt::Display for CameraCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "camera {} {}x{}: {} frames received over the link ({} in shared memory), {} rejected",
            self.name, self.width, self.height, self.frames, self.shared, self.rejected
        )
    }
}

/// Every counter of a link: its own (zeros included) and its cameras'.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkCounters {
    /// By name, as [`LinkStats::all`] gives them, followed by `camera_frames_received` and
    /// `camera_frames_rejected`, the totals over the cameras.
    pub counters: Vec<(&'static str, u64)>,
    pub cameras: Vec<CameraCounts>,
}

impl LinkCounters {
    pub fn read(stats: &LinkStats, cameras: &CameraFrames) -> Self {
        let cameras = cameras.counts();
        let mut counters = stats.all();
        counters.push((
            "camera_frames_received",
            cameras.iter().map(|c| c.frames).sum(),
        ));
        counters.push((
            "camera_frames_rejected",
            cameras.iter().map(|c| c.rejected).sum(),
        ));
        Self { counters, cameras }
    }
}

/// One camera's newest frame, as received over the link.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    /// The robot's capture time.
    pub stamp_ns: u64,
    /// The runtime's receive time (its own clock).
    pub received_ns: u64,
    /// Frames accepted from this camera so far, this one included.
    pub count: u64,
    /// Pixels, rows top first, `width * bytes_per_pixel` bytes per row.
    pub data: Vec<u8>,
}

/// Counters and the newest frame of one camera.
pub struct CameraSlot {
    pub spec: CameraSpec,
    pub received: AtomicU64,
    /// Of the frames received, those that arrived in zenoh shared memory.
    pub received_shared: AtomicU64,
    /// Could not be decoded, or size or encoding differ from the hw-config.
    pub rejected: AtomicU64,
    frame: Mutex<Frame>,
    /// Every accepted frame, for a consumer that needs all of them (a recording), once
    /// [`CameraFrames::keep_every_frame`] turned it on.
    queue: Mutex<Option<FrameQueue>>,
}

/// Accepted frames not yet taken, oldest first, bounded in bytes: when full, the oldest
/// goes and is counted.
struct FrameQueue {
    frames: std::collections::VecDeque<Frame>,
    bytes: usize,
    limit_bytes: usize,
    dropped: u64,
}

/// The newest frame of each camera of a hw-config. Receiving copies the pixels once, into a
/// buffer that is reused from frame to frame.
pub struct CameraFrames {
    slots: Vec<CameraSlot>,
}

impl CameraFrames {
    pub fn new(specs: &[CameraSpec]) -> Self {
        Self {
            slots: specs
                .iter()
                .map(|spec| CameraSlot {
                    spec: spec.clone(),
                    received: AtomicU64::new(0),
                    received_shared: AtomicU64::new(0),
                    rejected: AtomicU64::new(0),
                    frame: Mutex::new(Frame::default()),
                    queue: Mutex::new(None),
                })
                .collect(),
        }
    }

    pub fn slots(&self) -> &[CameraSlot] {
        &self.slots
    }

    /// Each camera's counters, in the hw-config's order.
    pub fn counts(&self) -> Vec<CameraCounts> {
        self.slots
            .iter()
            .map(|slot| CameraCounts {
                name: slot.spec.name.clone(),
                width: slot.spec.width,
                height: slot.spec.height,
                frames: slot.received.load(Ordering::Relaxed),
                shared: slot.received_shared.load(Ordering::Relaxed),
                rejected: slot.rejected.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Index of the camera called `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.spec.name == name)
    }

    /// [`Self::receive`] on a zenoh payload, counting an accepted frame that arrived in
    /// shared memory in `received_shared` (the pixels are read in place either way).
    pub fn receive_payload(&self, index: usize, payload: &zenoh::bytes::ZBytes, received_ns: u64) {
        let shared = payload.as_shm().is_some();
        if self.receive(index, &payload.to_bytes(), received_ns) && shared {
            self.slots[index]
                .received_shared
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Checks a payload against camera `index`'s spec and keeps it as its newest frame;
    /// false when it was rejected.
    pub fn receive(&self, index: usize, payload: &[u8], received_ns: u64) -> bool {
        match protocol::decode_image(payload) {
            Ok(image) => self.accept(index, &image, true, received_ns),
            Err(_) => self.reject(index),
        }
    }

    /// Counts a frame of camera `index` that could not be decoded; returns false.
    pub fn reject(&self, index: usize) -> bool {
        self.slots[index].rejected.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Keeps a decoded frame as camera `index`'s newest if its size and encoding are the
    /// hw-config's (and, with `check_name`, its frame id is the camera's name, as rlrt's
    /// own protocol sends it); false when it was rejected.
    pub fn accept(
        &self,
        index: usize,
        image: &protocol::ImageView<'_>,
        check_name: bool,
        received_ns: u64,
    ) -> bool {
        let slot = &self.slots[index];
        let fits = match image {
            image
                if image.width == slot.spec.width
                    && image.height == slot.spec.height
                    && image.encoding.as_str() == slot.spec.encoding.as_str()
                    && (!check_name || image.camera == slot.spec.name) =>
            {
                let Ok(mut frame) = slot.frame.lock() else {
                    return false;
                };
                frame.stamp_ns = image.stamp_ns;
                frame.received_ns = received_ns;
                frame.count += 1;
                copy_rows(image, &mut frame.data);
                let count = frame.count;
                // The copy for a queue is made after the newest-frame lock is released.
                drop(frame);
                if let Ok(mut queue) = slot.queue.lock() {
                    if let Some(queue) = queue.as_mut() {
                        let mut data = Vec::new();
                        copy_rows(image, &mut data);
                        queue.push(Frame {
                            stamp_ns: image.stamp_ns,
                            received_ns,
                            count,
                            data,
                        });
                    }
                }
                true
            }
            _ => false,
        };
        if fits {
            slot.received.fetch_add(1, Ordering::Relaxed);
        } else {
            slot.rejected.fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    /// From now on, also keeps every frame camera `index` accepts until
    /// [`Self::take_every_frame`] takes it, up to `limit_bytes` of pixels (beyond that the
    /// oldest are dropped and counted). For a consumer that must not miss frames between its
    /// looks, such as a recording of a run stepped faster than real time.
    pub fn keep_every_frame(&self, index: usize, limit_bytes: usize) {
        if let Ok(mut queue) = self.slots[index].queue.lock() {
            queue.get_or_insert(FrameQueue {
                frames: std::collections::VecDeque::new(),
                bytes: 0,
                limit_bytes,
                dropped: 0,
            });
        }
    }

    /// Moves the frames camera `index` kept since the last call to the end of `out`, oldest
    /// first, and returns how many were dropped for want of room in that time.
    pub fn take_every_frame(&self, index: usize, out: &mut Vec<Frame>) -> u64 {
        let Ok(mut queue) = self.slots[index].queue.lock() else {
            return 0;
        };
        let Some(queue) = queue.as_mut() else {
            return 0;
        };
        out.extend(queue.frames.drain(..));
        queue.bytes = 0;
        std::mem::take(&mut queue.dropped)
    }

    /// Copies camera `index`'s newest frame into `out` (reusing its buffer); false when
    /// none has arrived yet.
    pub fn latest(&self, index: usize, out: &mut Frame) -> bool {
        let Ok(frame) = self.slots[index].frame.lock() else {
            return false;
        };
        if frame.count == 0 {
            return false;
        }
        out.stamp_ns = frame.stamp_ns;
        out.received_ns = frame.received_ns;
        out.count = frame.count;
        out.data.clear();
        out.data.extend_from_slice(&frame.data);
        true
    }
}

/// Copies an image's pixels into `out` without row padding (a `step` longer than a row).
fn copy_rows(image: &protocol::ImageView<'_>, out: &mut Vec<u8>) {
    let row = image.width as usize * image.encoding.bytes_per_pixel();
    out.clear();
    if image.step as usize == row {
        out.extend_from_slice(image.data);
    } else {
        for r in image.data.chunks(image.step as usize) {
            out.extend_from_slice(&r[..row]);
        }
    }
}

impl FrameQueue {
    fn push(&mut self, frame: Frame) {
        while self.bytes + frame.data.len() > self.limit_bytes {
            let Some(old) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= old.data.len();
            self.dropped += 1;
        }
        self.bytes += frame.data.len();
        self.frames.push_back(frame);
    }
}

/// Encodes a command into the buffer and sends it; false when sending failed. Runs on the
/// link's publisher thread.
pub(crate) type CommandSender = Box<dyn FnMut(&Command, &mut Vec<u8>) -> bool + Send>;

/// The newest accepted state and the loop's writer, shared by the state callback and the
/// loss watch (which marks the newest state stale when the robot goes).
pub(crate) type Mailbox = Arc<Mutex<(ObservationWriter, Observation)>>;

/// What every flavour's callbacks share.
pub(crate) struct Shared {
    pub stats: Arc<LinkStats>,
    pub mailbox: Mailbox,
    pub waker: Waker,
    /// Tells the loss watch that the robot's token went (with the count of accepted states
    /// then).
    pub gone: crossbeam_channel::Sender<u64>,
    pub cameras: Arc<CameraFrames>,
}

/// What a flavour declared; dropping them undeclares it.
pub(crate) struct Endpoints {
    pub subscribers: Vec<zenoh::pubsub::Subscriber<()>>,
    pub tokens: Vec<zenoh::liveliness::LivelinessToken>,
    pub node: Option<Arc<crate::ros2::node::Node>>,
}

/// Acts on a decoded e-stop message (true engages, false resets) or counts a malformed one.
pub(crate) fn apply_estop(
    message: Result<bool, protocol::DecodeError>,
    stats: &LinkStats,
    estop: &EStop,
) {
    match message {
        Ok(engage) => {
            stats.estop_messages.fetch_add(1, Ordering::Relaxed);
            if engage {
                estop.engage();
            } else {
                estop.reset();
            }
        }
        Err(_) => {
            stats.estop_malformed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Hands an accepted state (finite, in order) to the loop: stamps its arrival, publishes it
/// to the mailbox, counts it and wakes a loop that ticks on arrival.
pub(crate) fn deliver<C: Clock>(shared: &Shared, clock: &C, state: &mut Observation) {
    state.received_ns = clock.now_ns();
    let Ok(mut mailbox) = shared.mailbox.lock() else {
        return;
    };
    mailbox.0.publish(state);
    mailbox.1 = *state;
    shared.stats.states_accepted.fetch_add(1, Ordering::Relaxed);
    shared.waker.wake();
}

/// Where state callbacks may wake the control thread (for loops that tick on arrival).
#[derive(Clone, Default)]
pub struct Waker {
    thread: Arc<std::sync::OnceLock<Thread>>,
}

impl Waker {
    /// Registers the thread to wake (once; later calls are ignored).
    pub fn register_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}
