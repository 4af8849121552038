//! rlrt's wire protocol: the byte layout of every message on the robot link.
//!
//! Messages are CDR (OMG XCDR1, little endian), the encoding ROS 2 and its rmw_zenoh use, so
//! that the shapes line up with `sensor_msgs/JointState` and `sensor_msgs/Image` and a bridge
//! is a matter of renaming. Every payload starts with the 4-byte CDR encapsulation header
//! `00 01 00 00`; rlrt's own messages then carry a `u32` protocol version. Alignment of each
//! primitive is to its size, counted from the end of the encapsulation header. See
//! `docs/protocol.md` for keys and a Python decoder.
//!
//! Decoding never panics and never allocates: it writes into caller-provided, fixed-size
//! messages and returns a [`DecodeError`] that says what was wrong and at which byte.

use crate::config::{ActionMode, MAX_ACTION, MAX_JOINTS, MAX_SENSOR_VALUES};
use crate::messages::{Command, Observation};

/// Version of rlrt's own message layouts.
pub const PROTOCOL_VERSION: u32 = 1;
/// CDR encapsulation: plain CDR, little endian.
pub const CDR_LE: [u8; 4] = [0x00, 0x01, 0x00, 0x00];
/// Largest camera frame accepted (a 4096x4096 RGBA image).
pub const MAX_IMAGE_BYTES: usize = 4096 * 4096 * 4;

/// Why a payload was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload ends at byte {at}, {needed} more bytes were needed")]
    Truncated { at: usize, needed: usize },
    #[error("not little-endian plain CDR (encapsulation header {0:02x?})")]
    Encapsulation([u8; 4]),
    #[error("protocol version {got}, this build speaks {PROTOCOL_VERSION}")]
    Version { got: u32 },
    #[error("{field} has {len} values at byte {at}, at most {max} are allowed")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
        at: usize,
    },
    #[error("{field} has {len} values, the robot config expects {expected}")]
    WrongLength {
        field: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("unknown {field} value {value}")]
    BadEnum { field: &'static str, value: u8 },
    #[error("{0} bytes left over after the message")]
    Trailing(usize),
    #[error("string at byte {at} is not valid UTF-8 or lacks its terminating zero")]
    BadString { at: usize },
    #[error(
        "image of {width}x{height} {encoding} with step {step} does not match its {len} bytes"
    )]
    ImageSize {
        width: u32,
        height: u32,
        step: u32,
        len: usize,
        encoding: ImageEncodingName,
    },
}

/// Image encodings as in sensor_msgs/Image, held without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageEncodingName {
    Rgb8,
    Mono8,
    Mono16,
    Depth32F,
}

impl ImageEncodingName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rgb8 => "rgb8",
            Self::Mono8 => "mono8",
            Self::Mono16 => "16UC1",
            Self::Depth32F => "32FC1",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "rgb8" => Self::Rgb8,
            "mono8" => Self::Mono8,
            "16UC1" | "mono16" => Self::Mono16,
            "32FC1" => Self::Depth32F,
            _ => return None,
        })
    }

    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb8 => 3,
            Self::Mono8 => 1,
            Self::Mono16 => 2,
            Self::Depth32F => 4,
        }
    }
}

impl std::fmt::Display for ImageEncodingName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appends CDR to a buffer. Writing within the buffer's capacity does not allocate.
pub struct CdrWriter<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> CdrWriter<'a> {
    /// Clears `buf` and writes the encapsulation header.
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(&CDR_LE);
        Self { buf }
    }

    fn align(&mut self, n: usize) {
        let pos = self.buf.len() - 4;
        let pad = (n - pos % n) % n;
        for _ in 0..pad {
            self.buf.push(0);
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64s(&mut self, values: &[f64]) {
        self.u32(values.len() as u32);
        if !values.is_empty() {
            self.align(8);
        }
        for v in values {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    pub fn bytes(&mut self, data: &[u8]) {
        self.u32(data.len() as u32);
        self.buf.extend_from_slice(data);
    }

    pub fn string(&mut self, s: &str) {
        self.u32(s.len() as u32 + 1);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// builtin_interfaces/Time from nanoseconds.
    pub fn time(&mut self, ns: u64) {
        self.i32((ns / 1_000_000_000).min(i32::MAX as u64) as i32);
        self.u32((ns % 1_000_000_000) as u32);
    }
}

/// Reads CDR with bounds checks.
pub struct CdrReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> CdrReader<'a> {
    /// Checks the encapsulation header.
    pub fn new(data: &'a [u8]) -> Result<Self, DecodeError> {
        if data.len() < 4 {
            return Err(DecodeError::Truncated {
                at: 0,
                needed: 4 - data.len(),
            });
        }
        let header = [data[0], data[1], data[2], data[3]];
        if header != CDR_LE {
            return Err(DecodeError::Encapsulation(header));
        }
        Ok(Self { data, pos: 4 })
    }

    /// Checks the encapsulation header as a ROS 2 reader does: little-endian plain CDR
    /// (`00 01`), whatever the two option bytes say (XCDR1 writers may put the count of
    /// trailing padding bytes there).
    pub fn new_ros(data: &'a [u8]) -> Result<Self, DecodeError> {
        if data.len() < 4 {
            return Err(DecodeError::Truncated {
                at: 0,
                needed: 4 - data.len(),
            });
        }
        let header = [data[0], data[1], data[2], data[3]];
        if header[..2] != CDR_LE[..2] {
            return Err(DecodeError::Encapsulation(header));
        }
        Ok(Self { data, pos: 4 })
    }

    /// Byte offset of the next read, counted from the start of the payload.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Reads a `sequence<double>` of at most `max` values without copying it.
    pub fn f64_seq(&mut self, max: usize) -> Result<F64Seq<'a>, DecodeError> {
        let at = self.pos;
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong {
                field: "sequence<double>",
                len,
                max,
                at,
            });
        }
        if len > 0 {
            self.align(8);
        }
        Ok(F64Seq(self.take(len * 8)?))
    }

    fn align(&mut self, n: usize) {
        let rel = self.pos - 4;
        self.pos += (n - rel % n) % n;
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated {
            at: self.data.len(),
            needed: n,
        })?;
        if end > self.data.len() {
            return Err(DecodeError::Truncated {
                at: self.data.len(),
                needed: end - self.data.len(),
            });
        }
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.align(4);
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(self.u32()? as i32)
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.align(8);
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// Reads a `sequence<double>` into `out`; returns its length.
    pub fn f64s(&mut self, field: &'static str, out: &mut [f64]) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.u32()? as usize;
        if len > out.len() {
            return Err(DecodeError::TooLong {
                field,
                len,
                max: out.len(),
                at,
            });
        }
        if len > 0 {
            self.align(8);
        }
        let bytes = self.take(len * 8)?;
        for (slot, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            *slot = f64::from_le_bytes(a);
        }
        Ok(len)
    }

    /// Reads a `sequence<uint8>` without copying.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong {
                field,
                len,
                max,
                at,
            });
        }
        self.take(len)
    }

    /// Reads a CDR string (length includes the terminating zero) without copying.
    pub fn string(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let raw = self.bytes("string", max + 1)?;
        match raw.split_last() {
            Some((0, text)) => std::str::from_utf8(text).map_err(|_| DecodeError::BadString { at }),
            _ => Err(DecodeError::BadString { at }),
        }
    }

    pub fn time(&mut self) -> Result<u64, DecodeError> {
        let sec = self.i32()?;
        let nanosec = self.u32()?;
        Ok((sec.max(0) as u64) * 1_000_000_000 + nanosec.min(999_999_999) as u64)
    }

    pub fn finish(self) -> Result<(), DecodeError> {
        match self.data.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        match self.u32()? {
            PROTOCOL_VERSION => Ok(()),
            got => Err(DecodeError::Version { got }),
        }
    }
}

/// A `sequence<double>` borrowed from a payload (little endian, aligned or not).
#[derive(Clone, Copy, Debug)]
pub struct F64Seq<'a>(&'a [u8]);

impl F64Seq<'_> {
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `i`-th value; panics past the end.
    pub fn get(&self, i: usize) -> f64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.0[8 * i..8 * i + 8]);
        f64::from_le_bytes(a)
    }
}

/// `rlrt_msgs/RobotState`: version, seq, stamp, position[], velocity[], effort[], sensors[].
/// Shaped like sensor_msgs/JointState without the names (they are in the hw-config).
pub fn encode_state(obs: &Observation, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.u32(PROTOCOL_VERSION);
    w.u64(obs.seq);
    w.time(obs.stamp_ns);
    w.f64s(obs.positions());
    w.f64s(obs.velocities());
    w.f64s(obs.efforts());
    w.f64s(obs.sensor_values());
}

/// Decodes a robot state into `obs` (seq, stamp, joint values, sensors). Joint arrays must
/// have `dof` values (effort may be empty) and sensors `sensor_len`; `received_ns` is left
/// for the caller. On error `obs` may be partly written: decode into a scratch message.
pub fn decode_state(
    data: &[u8],
    dof: usize,
    sensor_len: usize,
    obs: &mut Observation,
) -> Result<(), DecodeError> {
    let mut r = CdrReader::new(data)?;
    r.version()?;
    obs.seq = r.u64()?;
    obs.stamp_ns = r.time()?;
    let check = |field, len, expected| {
        if len == expected {
            Ok(())
        } else {
            Err(DecodeError::WrongLength {
                field,
                len,
                expected,
            })
        }
    };
    let n = r.f64s("position", &mut obs.joint_positions)?;
    check("position", n, dof)?;
    let n = r.f64s("velocity", &mut obs.joint_velocities)?;
    check("velocity", n, dof)?;
    let n = r.f64s("effort", &mut obs.joint_efforts)?;
    if n == 0 {
        obs.joint_efforts[..dof].fill(0.0);
    } else {
        check("effort", n, dof)?;
    }
    let n = r.f64s("sensors", &mut obs.sensors)?;
    check("sensors", n, sensor_len)?;
    obs.dof = dof.min(MAX_JOINTS) as u32;
    obs.sensor_len = sensor_len.min(MAX_SENSOR_VALUES) as u32;
    r.finish()
}

/// Command flags.
pub const FLAG_FAULT_ACTION: u8 = 1;
/// In lockstep, asks the simulator to step once and answer with the next state.
pub const FLAG_LOCKSTEP_STEP: u8 = 2;

fn mode_code(mode: ActionMode) -> u8 {
    match mode {
        ActionMode::JointPosition => 0,
        ActionMode::JointVelocity => 1,
        ActionMode::EeDelta => 2,
        ActionMode::JointEffort => 3,
    }
}

/// `rlrt_msgs/Command`: version, seq, stamp, mode (u8), flags (u8), values[].
pub fn encode_command(cmd: &Command, flags: u8, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.u32(PROTOCOL_VERSION);
    w.u64(cmd.seq);
    w.time(cmd.stamp_ns);
    w.u8(mode_code(cmd.mode));
    let flags = flags
        | if cmd.is_fault_action {
            FLAG_FAULT_ACTION
        } else {
            0
        };
    w.u8(flags);
    w.f64s(cmd.values());
}

/// Decodes a command; returns its flags.
pub fn decode_command(data: &[u8], cmd: &mut Command) -> Result<u8, DecodeError> {
    let mut r = CdrReader::new(data)?;
    r.version()?;
    cmd.seq = r.u64()?;
    cmd.stamp_ns = r.time()?;
    cmd.mode = match r.u8()? {
        0 => ActionMode::JointPosition,
        1 => ActionMode::JointVelocity,
        2 => ActionMode::EeDelta,
        3 => ActionMode::JointEffort,
        value => {
            return Err(DecodeError::BadEnum {
                field: "mode",
                value,
            })
        }
    };
    let flags = r.u8()?;
    cmd.is_fault_action = flags & FLAG_FAULT_ACTION != 0;
    let n = r.f64s("values", &mut cmd.values[..MAX_ACTION])?;
    cmd.len = n as u32;
    r.finish()?;
    Ok(flags)
}

/// A camera frame, borrowed from the payload: sensor_msgs/Image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImageView<'a> {
    pub stamp_ns: u64,
    pub camera: &'a str,
    pub height: u32,
    pub width: u32,
    pub encoding: ImageEncodingName,
    pub step: u32,
    pub data: &'a [u8],
}

/// sensor_msgs/Image: header (stamp, frame_id = camera name), height, width, encoding,
/// is_bigendian, step, data.
pub fn encode_image(image: &ImageView<'_>, buf: &mut Vec<u8>) {
    encode_image_header(image, buf);
    buf.extend_from_slice(image.data);
}

/// Everything of [`encode_image`] but the pixels, which follow it byte for byte (no
/// padding): a publisher can write the header and then the pixels straight into a
/// shared-memory buffer of `header.len() + image.data.len()` bytes.
pub fn encode_image_header(image: &ImageView<'_>, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.time(image.stamp_ns);
    w.string(image.camera);
    w.u32(image.height);
    w.u32(image.width);
    w.string(image.encoding.as_str());
    w.u8(0);
    w.u32(image.step);
    w.u32(image.data.len() as u32);
}

/// Decodes a frame without copying its pixels.
pub fn decode_image(data: &[u8]) -> Result<ImageView<'_>, DecodeError> {
    read_image(CdrReader::new(data)?, true)
}

/// Decodes a ROS 2 `sensor_msgs/msg/Image` as a ROS 2 reader does: any option bytes in the
/// encapsulation header, bytes after the message ignored. `camera` is its frame id.
pub fn decode_ros_image(data: &[u8]) -> Result<ImageView<'_>, DecodeError> {
    read_image(CdrReader::new_ros(data)?, false)
}

fn read_image(mut r: CdrReader<'_>, exact: bool) -> Result<ImageView<'_>, DecodeError> {
    let stamp_ns = r.time()?;
    let camera = r.string(256)?;
    let height = r.u32()?;
    let width = r.u32()?;
    let at = r.pos;
    let name = r.string(32)?;
    let encoding = ImageEncodingName::from_name(name).ok_or(DecodeError::BadString { at })?;
    let _big_endian = r.u8()?;
    let step = r.u32()?;
    let pixels = r.bytes("data", MAX_IMAGE_BYTES)?;
    if exact {
        r.finish()?;
    }
    let row = width as usize * encoding.bytes_per_pixel();
    if (step as usize) < row
        || pixels.len() != step as usize * height as usize
        || width == 0
        || height == 0
    {
        return Err(DecodeError::ImageSize {
            width,
            height,
            step,
            len: pixels.len(),
            encoding,
        });
    }
    Ok(ImageView {
        stamp_ns,
        camera,
        height,
        width,
        encoding,
        step,
        data: pixels,
    })
}

/// Episode control for simulators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpisodeOp {
    /// Reset to the seeded start state and publish it.
    Reset { seed: u64 },
    /// Step once per command (flag [`FLAG_LOCKSTEP_STEP`]).
    Lockstep,
    /// Step at wall-clock rate, like hardware.
    FreeRun,
}

/// `rlrt_msgs/Episode`: version, op (u8: 0 reset, 1 lockstep, 2 free-run), seed (u64).
pub fn encode_episode(op: EpisodeOp, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.u32(PROTOCOL_VERSION);
    let (code, seed) = match op {
        EpisodeOp::Reset { seed } => (0, seed),
        EpisodeOp::Lockstep => (1, 0),
        EpisodeOp::FreeRun => (2, 0),
    };
    w.u8(code);
    w.u64(seed);
}

pub fn decode_episode(data: &[u8]) -> Result<EpisodeOp, DecodeError> {
    let mut r = CdrReader::new(data)?;
    r.version()?;
    let code = r.u8()?;
    let seed = r.u64()?;
    r.finish()?;
    match code {
        0 => Ok(EpisodeOp::Reset { seed }),
        1 => Ok(EpisodeOp::Lockstep),
        2 => Ok(EpisodeOp::FreeRun),
        value => Err(DecodeError::BadEnum { field: "op", value }),
    }
}

/// A simulator's ground-truth verdict on the current episode, answered on
/// `<prefix>/sim/evaluation`. It is for evaluation only and never reaches a policy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Sequence number of the last state the simulator published.
    pub state_seq: u64,
    /// Seed of the episode's reset.
    pub seed: u64,
    /// Control steps since the reset.
    pub steps: u64,
    /// Whether the task's success test holds now.
    pub success: bool,
    /// The quantity the success test thresholds (such as a distance in m).
    pub score: f64,
}

/// `rlrt_msgs/Evaluation`: version, state_seq (u64), seed (u64), steps (u64), success
/// (u8), score (double).
pub fn encode_evaluation(e: &Evaluation, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.u32(PROTOCOL_VERSION);
    w.u64(e.state_seq);
    w.u64(e.seed);
    w.u64(e.steps);
    w.u8(e.success as u8);
    w.f64(e.score);
}

pub fn decode_evaluation(data: &[u8]) -> Result<Evaluation, DecodeError> {
    let mut r = CdrReader::new(data)?;
    r.version()?;
    let state_seq = r.u64()?;
    let seed = r.u64()?;
    let steps = r.u64()?;
    let success = match r.u8()? {
        0 => false,
        1 => true,
        value => {
            return Err(DecodeError::BadEnum {
                field: "success",
                value,
            })
        }
    };
    let score = r.f64()?;
    r.finish()?;
    Ok(Evaluation {
        state_seq,
        seed,
        steps,
        success,
        score,
    })
}

/// `rlrt_msgs/EStop`: version, engage (u8: 1 engage, 0 reset).
pub fn encode_estop(engage: bool, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.u32(PROTOCOL_VERSION);
    w.u8(engage as u8);
}

pub fn decode_estop(data: &[u8]) -> Result<bool, DecodeError> {
    let mut r = CdrReader::new(data)?;
    r.version()?;
    let engage = r.u8()?;
    r.finish()?;
    match engage {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::BadEnum {
            field: "engage",
            value,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dof: usize, sensors: usize) -> Observation {
        let mut o = Observation::empty(dof, sensors);
        o.seq = 42;
        o.stamp_ns = 3_000_000_123;
        for i in 0..dof {
            o.joint_positions[i] = i as f64 * 0.1;
            o.joint_velocities[i] = -(i as f64);
            o.joint_efforts[i] = 2.5;
        }
        for i in 0..sensors {
            o.sensors[i] = 7.0 + i as f64;
        }
        o
    }

    #[test]
    fn state_round_trips_with_known_layout() {
        let o = state(2, 1);
        let mut buf = Vec::with_capacity(512);
        encode_state(&o, &mut buf);
        // header 4 | version 4 | pad 4 | seq 8 | sec 4 nsec 4 | len 4 pad 4 | 2 doubles ...
        assert_eq!(&buf[..4], &CDR_LE);
        assert_eq!(u32::from_le_bytes(buf[4..8].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(buf[12..20].try_into().unwrap()), 42);
        assert_eq!(i32::from_le_bytes(buf[20..24].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(buf[24..28].try_into().unwrap()), 123);
        assert_eq!(u32::from_le_bytes(buf[28..32].try_into().unwrap()), 2);
        assert_eq!(f64::from_le_bytes(buf[36..44].try_into().unwrap()), 0.0);
        let mut back = Observation::empty(2, 1);
        decode_state(&buf, 2, 1, &mut back).unwrap();
        assert_eq!(
            back,
            Observation {
                received_ns: 0,
                ..o
            }
        );
    }

    #[test]
    fn command_and_control_messages_round_trip() {
        let mut c = Command::new(ActionMode::JointVelocity, 3);
        c.seq = 9;
        c.stamp_ns = 5;
        c.values[..3].copy_from_slice(&[0.5, -1.0, 2.0]);
        c.is_fault_action = true;
        let mut buf = Vec::new();
        encode_command(&c, FLAG_LOCKSTEP_STEP, &mut buf);
        let mut back = Command::new(ActionMode::JointPosition, 0);
        let flags = decode_command(&buf, &mut back).unwrap();
        assert_eq!(back, c);
        assert_eq!(flags, FLAG_LOCKSTEP_STEP | FLAG_FAULT_ACTION);
        for op in [
            EpisodeOp::Reset { seed: 77 },
            EpisodeOp::Lockstep,
            EpisodeOp::FreeRun,
        ] {
            encode_episode(op, &mut buf);
            assert_eq!(decode_episode(&buf).unwrap(), op);
        }
        encode_estop(true, &mut buf);
        assert!(decode_estop(&buf).unwrap());
    }

    #[test]
    fn image_round_trips_without_copy() {
        let pixels: Vec<u8> = (0..2 * 3 * 3).map(|i| i as u8).collect();
        let view = ImageView {
            stamp_ns: 10,
            camera: "front",
            height: 2,
            width: 3,
            encoding: ImageEncodingName::Rgb8,
            step: 9,
            data: &pixels,
        };
        let mut buf = Vec::new();
        encode_image(&view, &mut buf);
        let back = decode_image(&buf).unwrap();
        assert_eq!(back, view);
        assert!(std::ptr::eq(
            back.data.as_ptr(),
            buf[buf.len() - 18..].as_ptr()
        ));
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let o = state(3, 0);
        let mut buf = Vec::new();
        encode_state(&o, &mut buf);
        let mut scratch = Observation::empty(3, 0);
        // Every truncation is an error, never a panic.
        for cut in 0..buf.len() {
            assert!(
                decode_state(&buf[..cut], 3, 0, &mut scratch).is_err(),
                "cut {cut}"
            );
        }
        // Wrong dof, wrong version, wrong encapsulation, trailing bytes.
        assert!(matches!(
            decode_state(&buf, 4, 0, &mut scratch),
            Err(DecodeError::WrongLength { .. })
        ));
        let mut v2 = buf.clone();
        v2[4] = 2;
        assert_eq!(
            decode_state(&v2, 3, 0, &mut scratch),
            Err(DecodeError::Version { got: 2 })
        );
        let mut be = buf.clone();
        be[1] = 0;
        assert!(matches!(
            decode_state(&be, 3, 0, &mut scratch),
            Err(DecodeError::Encapsulation(_))
        ));
        let mut long = buf.clone();
        long.push(0);
        assert_eq!(
            decode_state(&long, 3, 0, &mut scratch),
            Err(DecodeError::Trailing(1))
        );
        // An absurd length is rejected before any read.
        let mut absurd = buf.clone();
        absurd[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_state(&absurd, 3, 0, &mut scratch),
            Err(DecodeError::TooLong {
                field: "position",
                ..
            })
        ));
        // Random bytes with a valid header.
        let mut rng = 1u64;
        for _ in 0..2000 {
            let mut junk = CDR_LE.to_vec();
            let len = (rng % 300) as usize;
            for _ in 0..len {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                junk.push((rng >> 33) as u8);
            }
            let _ = decode_state(&junk, 3, 0, &mut scratch);
            let _ = decode_image(&junk);
            let _ = decode_command(&junk, &mut Command::new(ActionMode::JointPosition, 0));
        }
    }

    #[test]
    fn image_sizes_must_agree() {
        let pixels = vec![0u8; 10];
        let view = ImageView {
            stamp_ns: 0,
            camera: "c",
            height: 2,
            width: 3,
            encoding: ImageEncodingName::Rgb8,
            step: 9,
            data: &pixels,
        };
        let mut buf = Vec::new();
        encode_image(&view, &mut buf);
        assert!(matches!(
            decode_image(&buf),
            Err(DecodeError::ImageSize { .. })
        ));
    }

    #[test]
    fn evaluation_round_trips_with_known_layout() {
        let e = Evaluation {
            state_seq: 9,
            seed: 7,
            steps: 300,
            success: true,
            score: 0.0125,
        };
        let mut buf = Vec::new();
        encode_evaluation(&e, &mut buf);
        // header 4; then, aligned from the header's end: version 0..4, pad, state_seq 8..16,
        // seed 16..24, steps 24..32, success 32, pad, score 40..48.
        assert_eq!(buf.len(), 52);
        assert_eq!(&buf[20..28], &7u64.to_le_bytes());
        assert_eq!(&buf[44..52], &0.0125f64.to_le_bytes());
        assert_eq!(decode_evaluation(&buf).unwrap(), e);
        buf[36] = 2;
        assert!(decode_evaluation(&buf).is_err());
        assert!(decode_evaluation(&buf[..44]).is_err());
    }
}
