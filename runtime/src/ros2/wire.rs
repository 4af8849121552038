//! rmw_zenoh's wire rules (ROS 2 Jazzy and newer): data keys, the per-sample attachment,
//! liveliness tokens for the ROS graph, QoS strings, GIDs and type hashes.
//!
//! Written from rmw_zenoh's `docs/design.md` and its sources (`liveliness_utils.cpp`,
//! `attachment_helpers.cpp`, `type_support_common.cpp`, `qos.cpp`; Jazzy 0.2.4 and newer, which
//! Kilted and Rolling match for these messages). `docs/ros2.md` lists what was checked against
//! ROS 2's own code and what only against that reading.
//!
//! - Data key: `<domain>/<topic without its leading '/'>/<pkg>::msg::dds_::<Type>_/RIHS01_<hex>`.
//! - Attachment, on every sample: 33 bytes, the publisher's sequence number (i64 LE, from 1),
//!   the source time (i64 LE, ns since the Unix epoch), 0x10 (the GID's length), the 16-byte
//!   GID. rmw_zenoh drops samples without one.
//! - Tokens: `@ros2_lv/<domain>/<zid>/<node id>/<entity id>/<NN|MP|MS>/<enclave>/<namespace>/
//!   <node>[/<topic>/<type>/<hash>/<qos>]`, every '/' inside a name written as '%'.
//! - GID: XXH3-128 of the entity's token, low 64 bits first, both halves little endian.

use std::time::{SystemTime, UNIX_EPOCH};

/// A ROS 2 message type and its RIHS01 hash (Jazzy's; `tests/ros2_wire.rs` recomputes each from
/// the type description the message package ships).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgType {
    /// `pkg/msg/Type`.
    pub name: &'static str,
    pub hash: &'static str,
}

pub const BOOL: MsgType = MsgType {
    name: "std_msgs/msg/Bool",
    hash: "RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9",
};
pub const FLOAT64_MULTI_ARRAY: MsgType = MsgType {
    name: "std_msgs/msg/Float64MultiArray",
    hash: "RIHS01_1025ddc6b9552d191f89ef1a8d2f60f3d373e28b283d8891ddcc974e8c55397f",
};
pub const JOINT_STATE: MsgType = MsgType {
    name: "sensor_msgs/msg/JointState",
    hash: "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
};
pub const IMAGE: MsgType = MsgType {
    name: "sensor_msgs/msg/Image",
    hash: "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
};
pub const COMPRESSED_IMAGE: MsgType = MsgType {
    name: "sensor_msgs/msg/CompressedImage",
    hash: "RIHS01_15640771531571185e2efc8a100baf923961a4d15d5569652e6cb6691e8e371a",
};
pub const JOINT_TRAJECTORY: MsgType = MsgType {
    name: "trajectory_msgs/msg/JointTrajectory",
    hash: "RIHS01_179b33eba59d676f6d967ac71fe35e7ca2f64b2f3928f4a018cec115e213796e",
};

/// Every type the `ros2` link speaks.
pub const TYPES: [MsgType; 6] = [
    BOOL,
    FLOAT64_MULTI_ARRAY,
    JOINT_STATE,
    IMAGE,
    COMPRESSED_IMAGE,
    JOINT_TRAJECTORY,
];

impl MsgType {
    /// The DDS-style name rmw_zenoh puts in keys: `pkg::msg::dds_::Type_`.
    pub fn dds_name(&self) -> String {
        let (namespace, name) = self.name.rsplit_once('/').unwrap_or(("", self.name));
        let namespace = namespace.replace('/', "::");
        if namespace.is_empty() {
            format!("dds_::{name}_")
        } else {
            format!("{namespace}::dds_::{name}_")
        }
    }
}

/// The zenoh key of a topic's data: `<domain>/<topic>/<dds type>/<hash>`, the topic fully
/// qualified and without its leading (or a trailing) '/'.
pub fn data_key(domain: u32, topic: &str, ty: &MsgType) -> String {
    format!(
        "{domain}/{}/{}/{}",
        strip_slashes(topic),
        ty.dds_name(),
        ty.hash
    )
}

fn strip_slashes(name: &str) -> &str {
    let name = name.strip_prefix('/').unwrap_or(name);
    name.strip_suffix('/').unwrap_or(name)
}

/// A name inside a liveliness token: every '/' becomes '%'.
pub fn mangle(name: &str) -> String {
    name.replace('/', "%")
}

/// The parts of a QoS profile a token carries. Values equal to rmw_zenoh's defaults
/// (reliable, volatile, keep-last 42, infinite durations, automatic liveliness) are written
/// as empty fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qos {
    pub reliable: bool,
    pub transient_local: bool,
    /// Keep-last depth; 0 means rmw_zenoh's default (42).
    pub depth: u32,
}

impl Qos {
    /// rclcpp's default profile (reliable, volatile, keep last 10): what ros2_control's
    /// controllers and joint_state_broadcaster use.
    pub const DEFAULT: Qos = Qos {
        reliable: true,
        transient_local: false,
        depth: 10,
    };
    /// ROS 2's sensor-data profile (best effort, volatile, keep last 5), as camera drivers use.
    pub const SENSOR_DATA: Qos = Qos {
        reliable: false,
        transient_local: false,
        depth: 5,
    };

    /// `<reliability>:<durability>:<history>,<depth>:<deadline>:<lifespan>:<liveliness>`, as
    /// rmw_zenoh writes it (such as `::,10:,:,:,,` for [`Qos::DEFAULT`]).
    pub fn to_keyexpr(&self) -> String {
        let reliability = if self.reliable { "" } else { "2" };
        let durability = if self.transient_local { "1" } else { "" };
        let depth = match self.depth {
            0 | 42 => String::new(),
            d => d.to_string(),
        };
        format!("{reliability}:{durability}:,{depth}:,:,:,,")
    }
}

/// What a liveliness token announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    Node,
    Publisher,
    Subscription,
}

impl EntityKind {
    pub fn code(self) -> &'static str {
        match self {
            EntityKind::Node => "NN",
            EntityKind::Publisher => "MP",
            EntityKind::Subscription => "MS",
        }
    }
}

/// Who a token belongs to: the session, the node's id and names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeName {
    pub domain: u32,
    /// The zenoh session id as zenoh prints it (lowercase hex).
    pub zid: String,
    pub id: u64,
    /// ROS names, fully qualified: "/" for the root namespace and the default enclave.
    pub enclave: String,
    pub namespace: String,
    pub name: String,
}

impl NodeName {
    fn prefix(&self, id: u64, kind: EntityKind) -> String {
        format!(
            "@ros2_lv/{}/{}/{}/{}/{}/{}/{}/{}",
            self.domain,
            self.zid,
            self.id,
            id,
            kind.code(),
            mangle(&self.enclave),
            mangle(&self.namespace),
            mangle(&self.name)
        )
    }

    /// The node's own token.
    pub fn node_token(&self) -> String {
        self.prefix(self.id, EntityKind::Node)
    }

    /// The token of the node's publisher or subscription `id` on `topic` (fully qualified).
    pub fn endpoint_token(
        &self,
        id: u64,
        kind: EntityKind,
        topic: &str,
        ty: &MsgType,
        qos: &Qos,
    ) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.prefix(id, kind),
            mangle(topic),
            mangle(&ty.dds_name()),
            mangle(ty.hash),
            qos.to_keyexpr()
        )
    }
}

/// The liveliness key that matches every publisher token of `topic` with type `ty` in
/// `domain`, from any node.
pub fn publishers_of(domain: u32, topic: &str, ty: &MsgType) -> String {
    format!(
        "@ros2_lv/{domain}/*/*/*/MP/*/*/*/{}/{}/{}/*",
        mangle(topic),
        mangle(&ty.dds_name()),
        mangle(ty.hash)
    )
}

/// An entity's GID: XXH3-128 of its token, the low 64 bits first, each half little endian.
pub fn gid(token: &str) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(token.as_bytes()).to_le_bytes()
}

/// Length of the attachment rmw_zenoh puts on every sample.
pub const ATTACHMENT_LEN: usize = 33;

/// The attachment of one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The publisher's count of samples, from 1.
    pub sequence_number: i64,
    /// When it was published, ns since the Unix epoch (the publisher's wall clock).
    pub source_timestamp_ns: i64,
    pub gid: [u8; 16],
}

/// Why an attachment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("the sample has no attachment")]
    Missing,
    #[error("the attachment has {0} bytes, rmw_zenoh's has {ATTACHMENT_LEN}")]
    Short(usize),
    #[error("the attachment's GID length is {0}, not 16")]
    GidLength(u8),
}

impl Attachment {
    /// The 33 bytes: sequence number, source time, 16 (the GID's length as zenoh's
    /// serializer writes it, one LEB128 byte), the GID.
    pub fn encode(&self) -> [u8; ATTACHMENT_LEN] {
        let mut out = [0u8; ATTACHMENT_LEN];
        out[..8].copy_from_slice(&self.sequence_number.to_le_bytes());
        out[8..16].copy_from_slice(&self.source_timestamp_ns.to_le_bytes());
        out[16] = 16;
        out[17..].copy_from_slice(&self.gid);
        out
    }

    /// Reads an attachment; bytes after the 33 are ignored, as rmw_zenoh ignores them.
    pub fn decode(bytes: Option<&[u8]>) -> Result<Self, AttachmentError> {
        let bytes = bytes.ok_or(AttachmentError::Missing)?;
        if bytes.len() < ATTACHMENT_LEN {
            return Err(AttachmentError::Short(bytes.len()));
        }
        if bytes[16] != 16 {
            return Err(AttachmentError::GidLength(bytes[16]));
        }
        let word = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes[at..at + 8]);
            i64::from_le_bytes(a)
        };
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&bytes[17..33]);
        Ok(Self {
            sequence_number: word(0),
            source_timestamp_ns: word(8),
            gid,
        })
    }
}

/// Nanoseconds since the Unix epoch on the system clock, as rmw_zenoh stamps samples.
pub fn system_time_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// Checks a ROS 2 name (a topic or a namespace): '/'-separated tokens of letters, digits and
/// '_', none starting with a digit, no empty token, no trailing '/' (but "/" itself). Names
/// without a leading '/' are relative to the node's namespace.
pub fn check_name(name: &str) -> Result<(), BadName> {
    if name == "/" {
        return Ok(());
    }
    if name.is_empty() {
        return Err(BadName::Empty);
    }
    let body = name.strip_prefix('/').unwrap_or(name);
    for token in body.split('/') {
        if token.is_empty() {
            return Err(BadName::EmptyToken);
        }
        if token.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(BadName::LeadingDigit(token.to_owned()));
        }
        if let Some(c) = token
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(BadName::Character(c));
        }
    }
    Ok(())
}

/// What is wrong with a ROS 2 name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadName {
    #[error("an empty name")]
    Empty,
    #[error("an empty token (a doubled or trailing '/')")]
    EmptyToken,
    #[error("token {0:?} starts with a digit")]
    LeadingDigit(String),
    #[error("character {0:?} (ROS names hold letters, digits, '_' and '/')")]
    Character(char),
}

/// `name` made fully qualified in `namespace` ("/" or "/a/b").
pub fn qualify(namespace: &str, name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else if namespace == "/" {
        format!("/{name}")
    } else {
        format!("{namespace}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dds_names_and_keys() {
        assert_eq!(
            JOINT_STATE.dds_name(),
            "sensor_msgs::msg::dds_::JointState_"
        );
        assert_eq!(
            data_key(0, "/joint_states", &JOINT_STATE),
            "0/joint_states/sensor_msgs::msg::dds_::JointState_/RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"
        );
        assert_eq!(qualify("/", "joint_states"), "/joint_states");
        assert_eq!(qualify("/arm", "joint_states"), "/arm/joint_states");
        assert_eq!(qualify("/arm", "/joint_states"), "/joint_states");
    }

    #[test]
    fn qos_strings() {
        assert_eq!(Qos::DEFAULT.to_keyexpr(), "::,10:,:,:,,");
        assert_eq!(Qos::SENSOR_DATA.to_keyexpr(), "2::,5:,:,:,,");
        let latched = Qos {
            reliable: true,
            transient_local: true,
            depth: 1,
        };
        assert_eq!(latched.to_keyexpr(), ":1:,1:,:,:,,");
        let system_default = Qos {
            depth: 0,
            ..Qos::DEFAULT
        };
        assert_eq!(system_default.to_keyexpr(), "::,:,:,:,,");
    }

    #[test]
    fn attachment_round_trip_and_rejects() {
        let a = Attachment {
            sequence_number: 7,
            source_timestamp_ns: 1_700_000_000_123_456_789,
            gid: [3; 16],
        };
        let bytes = a.encode();
        assert_eq!(Attachment::decode(Some(&bytes)), Ok(a));
        assert_eq!(
            Attachment::decode(Some(&bytes[..32])),
            Err(AttachmentError::Short(32))
        );
        assert_eq!(Attachment::decode(None), Err(AttachmentError::Missing));
        let mut bad = bytes;
        bad[16] = 15;
        assert_eq!(
            Attachment::decode(Some(&bad)),
            Err(AttachmentError::GidLength(15))
        );
    }

    #[test]
    fn names_are_checked() {
        for good in ["/", "/joint_states", "joint_states", "/arm_1/cmd", "a/b"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "//a", "/a/", "/1a", "/a b", "/a-b", "~/a"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
