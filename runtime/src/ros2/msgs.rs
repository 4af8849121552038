//! The ROS 2 messages a `ros2` link reads and writes, in the CDR that rmw_zenoh carries
//! (XCDR1, little endian, alignment counted from the end of the 4-byte encapsulation header).
//!
//! | type | direction | use |
//! |---|---|---|
//! | `sensor_msgs/msg/JointState` | robot → runtime | state, matched to the hw-config's joints by name |
//! | `std_msgs/msg/Float64MultiArray` | runtime → robot | command for forward_command_controller and the JointGroup*Controllers |
//! | `trajectory_msgs/msg/JointTrajectory` | runtime → robot | command for joint_trajectory_controller: one point |
//! | `sensor_msgs/msg/Image` | robot → runtime | camera frames (see [`crate::protocol::decode_image`]) |
//! | `sensor_msgs/msg/CompressedImage` | robot → runtime | JPEG or PNG camera frames |
//! | `std_msgs/msg/Bool` | anyone → runtime | e-stop: true engages, false resets |
//!
//! Bytes after the message are ignored, as ROS 2's own readers ignore them (rclpy's
//! `serialize_message` returns buffers with slack after the message). Decoding never panics
//! and never allocates: joint names are compared in place, values go
//! into the caller's fixed-size [`Observation`]. Encoders write into a caller's buffer and do
//! not allocate once it has grown to the message's size.

use crate::config::{ActionMode, MAX_JOINTS};
use crate::messages::Observation;
use crate::protocol::{CdrReader, CdrWriter, DecodeError, MAX_IMAGE_BYTES};

/// Most names a JointState may carry (the robot's joints and any others it reports).
pub const MAX_STATE_NAMES: usize = 256;
/// Longest joint name read.
const MAX_NAME_BYTES: usize = 256;

/// Why a JointState was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateReject {
    #[error("malformed JointState: {0}")]
    Malformed(#[from] DecodeError),
    #[error("JointState lacks {missing} of the robot's joints (first missing: joint {first})")]
    MissingJoints { missing: usize, first: usize },
    #[error("JointState names joint {joint} twice")]
    DuplicateJoint { joint: usize },
}

/// Where each named entry of a message goes among the hw-config's joints (`u8::MAX`: not one
/// of them), for the first `len` entries.
struct NameSlots {
    slot: [u8; MAX_STATE_NAMES],
    len: usize,
}

impl NameSlots {
    fn as_slice(&self) -> &[u8] {
        &self.slot[..self.len]
    }
}

/// Reads a `string[]` of joint names and maps it onto `joints`: every joint must be named
/// once; names the hw-config lacks are skipped.
fn read_names(
    r: &mut CdrReader<'_>,
    field: &'static str,
    joints: &[String],
) -> Result<NameSlots, StateReject> {
    let dof = joints.len().min(MAX_JOINTS);
    let mut slots = NameSlots {
        slot: [u8::MAX; MAX_STATE_NAMES],
        len: 0,
    };
    let at = r.position();
    let names = r.u32()? as usize;
    if names > MAX_STATE_NAMES {
        return Err(DecodeError::TooLong {
            field,
            len: names,
            max: MAX_STATE_NAMES,
            at,
        }
        .into());
    }
    let mut seen = 0u64; // joints found so far, one bit each (MAX_JOINTS <= 32)
    for entry in slots.slot.iter_mut().take(names) {
        let name = r.string(MAX_NAME_BYTES)?;
        if let Some(j) = joints[..dof].iter().position(|n| n == name) {
            if seen & (1 << j) != 0 {
                return Err(StateReject::DuplicateJoint { joint: j });
            }
            seen |= 1 << j;
            *entry = j as u8;
        }
    }
    let missing = ((1u64 << dof) - 1) & !seen;
    if missing != 0 {
        return Err(StateReject::MissingJoints {
            missing: missing.count_ones() as usize,
            first: missing.trailing_zeros() as usize,
        });
    }
    slots.len = names;
    Ok(slots)
}

/// Decodes `sensor_msgs/msg/JointState` into the joints of `joints` by name, in any order;
/// joints the hw-config does not have are skipped. `position` must have one value per name;
/// `velocity` and `effort` one per name or none (then zeros). Writes `stamp_ns`, the joint
/// arrays and `dof` of `out`; `seq`, sensors and `received_ns` are left to the caller. On
/// error `out` may be partly written: decode into a scratch message.
pub fn decode_joint_state(
    data: &[u8],
    joints: &[String],
    out: &mut Observation,
) -> Result<(), StateReject> {
    let dof = joints.len().min(MAX_JOINTS);
    let mut r = CdrReader::new_ros(data)?;
    out.stamp_ns = r.time()?;
    let _frame_id = r.string(MAX_NAME_BYTES)?;
    let slots = read_names(&mut r, "name", joints)?;
    let slot = slots.as_slice();
    read_named(&mut r, "position", slot, false, &mut out.joint_positions)?;
    read_named(&mut r, "velocity", slot, true, &mut out.joint_velocities)?;
    read_named(&mut r, "effort", slot, true, &mut out.joint_efforts)?;
    out.dof = dof as u32;
    Ok(())
}

/// Reads a `sequence<double>` with one value per name into the named joints' slots, or
/// (when `may_be_empty`) an empty one as zeros.
fn read_named(
    r: &mut CdrReader<'_>,
    field: &'static str,
    slot: &[u8],
    may_be_empty: bool,
    out: &mut [f64; MAX_JOINTS],
) -> Result<(), DecodeError> {
    let values = r.f64_seq(MAX_STATE_NAMES)?;
    if values.is_empty() && may_be_empty {
        out.fill(0.0);
        return Ok(());
    }
    if values.len() != slot.len() {
        return Err(DecodeError::WrongLength {
            field,
            len: values.len(),
            expected: slot.len(),
        });
    }
    for (i, &j) in slot.iter().enumerate() {
        if j != u8::MAX {
            out[j as usize] = values.get(i);
        }
    }
    Ok(())
}

/// Writes `std_msgs/msg/Header`.
fn header(w: &mut CdrWriter<'_>, stamp_ns: u64, frame_id: &str) {
    w.time(stamp_ns);
    w.string(frame_id);
}

/// Encodes `sensor_msgs/msg/JointState` for `names` from `obs` (the simulator's side).
pub fn encode_joint_state(
    names: &[String],
    obs: &Observation,
    stamp_ns: u64,
    frame_id: &str,
    buf: &mut Vec<u8>,
) {
    let mut w = CdrWriter::new(buf);
    header(&mut w, stamp_ns, frame_id);
    w.u32(names.len() as u32);
    for name in names {
        w.string(name);
    }
    w.f64s(obs.positions());
    w.f64s(obs.velocities());
    w.f64s(obs.efforts());
}

/// Encodes `std_msgs/msg/Float64MultiArray` with an empty layout (no dimensions, offset 0),
/// which is what ros2_control's forward command controllers read.
pub fn encode_float64_multi_array(values: &[f64], buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.u32(0); // layout.dim: empty
    w.u32(0); // layout.data_offset
    w.f64s(values);
}

/// Decodes `std_msgs/msg/Float64MultiArray` into `out` and returns how many values it had
/// (the layout is read and checked for shape, then ignored, as ros2_control does).
pub fn decode_float64_multi_array(data: &[u8], out: &mut [f64]) -> Result<usize, DecodeError> {
    let mut r = CdrReader::new_ros(data)?;
    let at = r.position();
    let dims = r.u32()? as usize;
    if dims > 16 {
        return Err(DecodeError::TooLong {
            field: "layout.dim",
            len: dims,
            max: 16,
            at,
        });
    }
    for _ in 0..dims {
        let _label = r.string(MAX_NAME_BYTES)?;
        let _size = r.u32()?;
        let _stride = r.u32()?;
    }
    let _offset = r.u32()?;
    let n = r.f64s("data", out)?;
    Ok(n)
}

/// Encodes `trajectory_msgs/msg/JointTrajectory` with a zero header stamp (start at once)
/// and one point reaching `values` after `time_from_start_ns`: positions for
/// `joint_position`, velocities for `joint_velocity`, efforts for `joint_effort`.
pub fn encode_joint_trajectory(
    names: &[String],
    mode: ActionMode,
    values: &[f64],
    time_from_start_ns: u64,
    buf: &mut Vec<u8>,
) {
    let mut w = CdrWriter::new(buf);
    header(&mut w, 0, "");
    w.u32(names.len() as u32);
    for name in names {
        w.string(name);
    }
    w.u32(1); // points
    let field = |m| if mode == m { values } else { &[][..] };
    w.f64s(field(ActionMode::JointPosition));
    w.f64s(field(ActionMode::JointVelocity));
    w.f64s(&[]); // accelerations
    w.f64s(field(ActionMode::JointEffort));
    duration(&mut w, time_from_start_ns);
}

/// Writes `builtin_interfaces/msg/Duration`.
fn duration(w: &mut CdrWriter<'_>, ns: u64) {
    w.i32((ns / 1_000_000_000).min(i32::MAX as u64) as i32);
    w.u32((ns % 1_000_000_000) as u32);
}

/// The first point of a `trajectory_msgs/msg/JointTrajectory`, mapped to the hw-config's
/// joints by name (the simulator's side, and the tests').
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrajectoryPoint {
    pub positions: [f64; MAX_JOINTS],
    pub velocities: [f64; MAX_JOINTS],
    pub efforts: [f64; MAX_JOINTS],
    /// Which of positions, velocities and efforts the point had (one value per joint).
    pub has: [bool; 3],
    pub time_from_start_ns: u64,
}

/// Decodes a JointTrajectory's first point for `joints` (by name, any order; every joint
/// must be named). A trajectory without points is an error.
pub fn decode_joint_trajectory(
    data: &[u8],
    joints: &[String],
) -> Result<TrajectoryPoint, StateReject> {
    let mut r = CdrReader::new_ros(data)?;
    let _stamp = r.time()?;
    let _frame_id = r.string(MAX_NAME_BYTES)?;
    let slots = read_names(&mut r, "joint_names", joints)?;
    let (slot, names) = (slots.as_slice(), slots.len);
    let points = r.u32()? as usize;
    if points == 0 {
        return Err(DecodeError::WrongLength {
            field: "points",
            len: 0,
            expected: 1,
        }
        .into());
    }
    let mut point = TrajectoryPoint {
        positions: [0.0; MAX_JOINTS],
        velocities: [0.0; MAX_JOINTS],
        efforts: [0.0; MAX_JOINTS],
        has: [false; 3],
        time_from_start_ns: 0,
    };
    for (k, field) in ["positions", "velocities", "accelerations", "effort"]
        .into_iter()
        .enumerate()
    {
        let values = r.f64_seq(MAX_STATE_NAMES)?;
        if values.is_empty() {
            continue;
        }
        if values.len() != names {
            return Err(DecodeError::WrongLength {
                field,
                len: values.len(),
                expected: names,
            }
            .into());
        }
        let out = match k {
            0 => &mut point.positions,
            1 => &mut point.velocities,
            3 => &mut point.efforts,
            _ => continue,
        };
        for (i, &j) in slot.iter().enumerate() {
            if j != u8::MAX {
                out[j as usize] = values.get(i);
            }
        }
        point.has[if k == 3 { 2 } else { k }] = true;
    }
    let sec = r.i32()?;
    let nanosec = r.u32()?;
    point.time_from_start_ns =
        (sec.max(0) as u64) * 1_000_000_000 + nanosec.min(999_999_999) as u64;
    // Further points are read for shape only: the runtime sends one.
    Ok(point)
}

/// Encodes `std_msgs/msg/Bool`.
pub fn encode_bool(value: bool, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    w.u8(value as u8);
}

/// Decodes `std_msgs/msg/Bool` (any byte but 0 and 1 is malformed).
pub fn decode_bool(data: &[u8]) -> Result<bool, DecodeError> {
    let mut r = CdrReader::new_ros(data)?;
    let value = r.u8()?;
    match value {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::BadEnum {
            field: "data",
            value,
        }),
    }
}

/// A `sensor_msgs/msg/CompressedImage`, borrowed from the payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompressedView<'a> {
    pub stamp_ns: u64,
    pub frame_id: &'a str,
    /// As image_transport writes it, such as "jpeg", "png" or "rgb8; jpeg compressed bgr8".
    pub format: &'a str,
    pub data: &'a [u8],
}

/// Encodes `sensor_msgs/msg/CompressedImage`.
pub fn encode_compressed_image(image: &CompressedView<'_>, buf: &mut Vec<u8>) {
    let mut w = CdrWriter::new(buf);
    header(&mut w, image.stamp_ns, image.frame_id);
    w.string(image.format);
    w.bytes(image.data);
}

/// Decodes `sensor_msgs/msg/CompressedImage` without copying its bytes.
pub fn decode_compressed_image(data: &[u8]) -> Result<CompressedView<'_>, DecodeError> {
    let mut r = CdrReader::new_ros(data)?;
    let stamp_ns = r.time()?;
    let frame_id = r.string(MAX_NAME_BYTES)?;
    let format = r.string(MAX_NAME_BYTES)?;
    let data = r.bytes("data", MAX_IMAGE_BYTES)?;
    Ok(CompressedView {
        stamp_ns,
        frame_id,
        format,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn joint_state_maps_by_name_and_skips_extra_joints() {
        let sent = names(&["finger", "elbow", "shoulder"]);
        let mut obs = Observation::empty(3, 0);
        obs.joint_positions[..3].copy_from_slice(&[0.01, 2.0, 1.0]);
        obs.joint_velocities[..3].copy_from_slice(&[0.0, 20.0, 10.0]);
        obs.joint_efforts[..3].copy_from_slice(&[0.5, 200.0, 100.0]);
        let mut buf = Vec::new();
        encode_joint_state(&sent, &obs, 1_500_000_000, "base", &mut buf);
        let mut out = Observation::empty(2, 0);
        decode_joint_state(&buf, &names(&["shoulder", "elbow"]), &mut out).unwrap();
        assert_eq!(out.positions(), &[1.0, 2.0]);
        assert_eq!(out.velocities(), &[10.0, 20.0]);
        assert_eq!(out.efforts(), &[100.0, 200.0]);
        assert_eq!(out.stamp_ns, 1_500_000_000);
    }

    #[test]
    fn joint_state_rejections_say_why() {
        let mut buf = Vec::new();
        let obs = Observation::empty(2, 0);
        encode_joint_state(&names(&["a", "b"]), &obs, 0, "", &mut buf);
        let mut out = Observation::empty(3, 0);
        assert_eq!(
            decode_joint_state(&buf, &names(&["a", "c", "b"]), &mut out),
            Err(StateReject::MissingJoints {
                missing: 1,
                first: 1
            })
        );
        encode_joint_state(&names(&["a", "a"]), &obs, 0, "", &mut buf);
        assert_eq!(
            decode_joint_state(&buf, &names(&["a"]), &mut out),
            Err(StateReject::DuplicateJoint { joint: 0 })
        );
        encode_joint_state(&names(&["a", "b"]), &obs, 0, "", &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_joint_state(&buf[..cut], &names(&["a", "b"]), &mut out).is_err());
        }
    }

    #[test]
    fn commands_round_trip() {
        let mut buf = Vec::new();
        encode_float64_multi_array(&[1.0, -2.0, 3.5], &mut buf);
        let mut out = [0.0; 8];
        assert_eq!(decode_float64_multi_array(&buf, &mut out), Ok(3));
        assert_eq!(&out[..3], &[1.0, -2.0, 3.5]);

        let joints = names(&["j1", "j2"]);
        encode_joint_trajectory(
            &joints,
            ActionMode::JointPosition,
            &[0.5, -0.5],
            20_000_000,
            &mut buf,
        );
        let point = decode_joint_trajectory(&buf, &names(&["j2", "j1"])).unwrap();
        assert_eq!(&point.positions[..2], &[-0.5, 0.5]);
        assert_eq!(point.has, [true, false, false]);
        assert_eq!(point.time_from_start_ns, 20_000_000);

        encode_bool(true, &mut buf);
        assert_eq!(decode_bool(&buf), Ok(true));
        buf[4] = 7;
        assert!(decode_bool(&buf).is_err());
    }
}
