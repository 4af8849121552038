//! The `ros2` link's wire format checked against sources that are not our own reading of it:
//! golden values written down from rmw_zenoh's design document and sources, type hashes
//! recomputed from the type descriptions ROS 2's message packages ship, and ROS 2 Jazzy's own
//! serialisation (`rclpy.serialization`, from PyPI) decoding what rlrt encodes and encoding
//! what rlrt decodes, field by field.

use crate::common;

use rlrt_runtime::config::{ActionMode, MAX_JOINTS};
use rlrt_runtime::protocol::{self, ImageEncodingName, ImageView};
use rlrt_runtime::ros2::msgs;
use rlrt_runtime::ros2::wire::{self, Attachment, EntityKind, MsgType, NodeName, Qos};
use rlrt_runtime::Observation;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const STRING: MsgType = MsgType {
    name: "std_msgs/msg/String",
    hash: "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
};

/// Keys and tokens exactly as rmw_zenoh's docs/design.md prints them.
#[test]
fn keys_and_tokens_match_rmw_zenoh_design_examples() {
    assert_eq!(
        wire::data_key(0, "/chatter", &STRING),
        "0/chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
    );
    assert_eq!(
        wire::data_key(0, "/robot1/chatter", &STRING),
        "0/robot1/chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
    );
    let listener = NodeName {
        domain: 2,
        zid: "aac3178e146ba6f1fc6e6a4085e77f21".into(),
        id: 0,
        enclave: "/".into(),
        namespace: "/".into(),
        name: "listener".into(),
    };
    assert_eq!(
        listener.node_token(),
        "@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/0/NN/%/%/listener"
    );
    let default_10 = Qos {
        depth: 10,
        ..Qos::DEFAULT
    };
    assert_eq!(
        listener.endpoint_token(10, EntityKind::Subscription, "/chatter", &STRING, &default_10),
        "@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/10/MS/%/%/listener/%chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,10:,:,:,,"
    );
    let talker = NodeName {
        zid: "8b20917502ee955ac4476e0266340d5c".into(),
        name: "talker".into(),
        ..listener.clone()
    };
    let depth_7 = Qos {
        depth: 7,
        ..Qos::DEFAULT
    };
    let token = talker.endpoint_token(10, EntityKind::Publisher, "/chatter", &STRING, &depth_7);
    assert_eq!(
        token,
        "@ros2_lv/2/8b20917502ee955ac4476e0266340d5c/0/10/MP/%/%/talker/%chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,7:,:,:,,"
    );
    // GIDs as rmw_zenoh's own XXH3 code (simplified_xxhash3.cpp) computes them from tokens.
    assert_eq!(hex(&wire::gid(&token)), "ac170f31eadcd9ff0cd86d7a17907d1c");
    assert_eq!(
        hex(&wire::gid(&listener.node_token())),
        "49877999dacb858702d11ac823785912"
    );
    assert_eq!(
        hex(&wire::gid(&listener.endpoint_token(
            10,
            EntityKind::Subscription,
            "/chatter",
            &STRING,
            &default_10
        ))),
        "76148a538308fe55a6c5375462ca1de6"
    );
    // A namespaced node: every '/' inside a name becomes '%'.
    let arm = NodeName {
        domain: 0,
        zid: "1".into(),
        id: 3,
        enclave: "/".into(),
        namespace: "/robot1".into(),
        name: "arm_ctrl".into(),
    };
    assert_eq!(
        arm.endpoint_token(4, EntityKind::Publisher, "/robot1/arm", &wire::BOOL, &Qos::SENSOR_DATA),
        "@ros2_lv/0/1/3/4/MP/%/%robot1/arm_ctrl/%robot1%arm/std_msgs::msg::dds_::Bool_/RIHS01_feb91e995ff9ebd09c0cb3d2aed18b11077585839fb5db80193b62d74528f6c9/2::,5:,:,:,,"
    );
    // QoS strings from rmw_zenoh's qos.cpp rules: defaults (reliable, volatile, keep last
    // 42, infinite durations) are left empty.
    for (qos, text) in [
        (default_10, "::,10:,:,:,,"),
        (Qos::SENSOR_DATA, "2::,5:,:,:,,"),
        (
            Qos {
                reliable: true,
                transient_local: true,
                depth: 1,
            },
            ":1:,1:,:,:,,",
        ),
        (
            Qos {
                depth: 42,
                ..Qos::DEFAULT
            },
            "::,:,:,:,,",
        ),
    ] {
        assert_eq!(qos.to_keyexpr(), text);
    }
}

/// The attachment of rmw_zenoh's design: sequence number, source time, GID length, GID.
#[test]
fn attachment_bytes_match_rmw_zenoh() {
    let gid = wire::gid("@ros2_lv/2/8b20917502ee955ac4476e0266340d5c/0/10/MP/%/%/talker/%chatter/std_msgs::msg::dds_::String_/RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18/::,7:,:,:,,");
    let a = Attachment {
        sequence_number: 1,
        source_timestamp_ns: 1_700_000_000_123_456_789,
        gid,
    };
    assert_eq!(
        hex(&a.encode()),
        "0100000000000000\
         15cd853dfe9c9717\
         10\
         ac170f31eadcd9ff0cd86d7a17907d1c"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A JSON string as Python's `json.dumps(ensure_ascii=True)` writes it.
fn json_string(s: &str) -> String {
    assert!(s.is_ascii(), "{s:?}");
    serde_json::to_string(s).unwrap()
}

/// One type's description without default values, keys in rosidl's order.
fn individual(description: &Value) -> String {
    let fields: Vec<String> = description["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let t = &f["type"];
            format!(
                "{{\"name\": {}, \"type\": {{\"type_id\": {}, \"capacity\": {}, \"string_capacity\": {}, \"nested_type_name\": {}}}}}",
                json_string(f["name"].as_str().unwrap()),
                t["type_id"].as_u64().unwrap(),
                t["capacity"].as_u64().unwrap(),
                t["string_capacity"].as_u64().unwrap(),
                json_string(t["nested_type_name"].as_str().unwrap()),
            )
        })
        .collect();
    format!(
        "{{\"type_name\": {}, \"fields\": [{}]}}",
        json_string(description["type_name"].as_str().unwrap()),
        fields.join(", ")
    )
}

/// RIHS01 of a shipped type description (`share/<pkg>/msg/<Type>.json`): SHA-256 of the
/// description and its referenced types (sorted by name) as one line of JSON with ", " and
/// ": " separators and no default values.
fn rihs01(file: &Value) -> String {
    let d = &file["type_description_msg"];
    let mut referenced: Vec<&Value> = d["referenced_type_descriptions"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    referenced.sort_by_key(|r| r["type_name"].as_str().unwrap().to_owned());
    let text = format!(
        "{{\"type_description\": {}, \"referenced_type_descriptions\": [{}]}}",
        individual(&d["type_description"]),
        referenced
            .iter()
            .map(|r| individual(r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    format!("RIHS01_{}", hex(&Sha256::digest(text.as_bytes())))
}

#[test]
fn type_hashes_match_the_shipped_type_descriptions() {
    for ty in wire::TYPES {
        let mut parts = ty.name.split('/');
        let (pkg, kind, name) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let path = common::repo(&format!(".deps/ros/share/{pkg}/{kind}/{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (ROS 2's message packages: run `cargo xtask setup`)",
                path.display()
            )
        });
        let file: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(rihs01(&file), ty.hash, "{}: recomputed", ty.name);
        assert_eq!(
            file["type_hashes"][0]["hash_string"], ty.hash,
            "{}: as rosidl recorded it",
            ty.name
        );
        assert_eq!(file["type_hashes"][0]["type_name"], ty.name);
    }
}

/// Runs `tests/python/ros2_cdr_oracle.py` (rclpy) on `input` and returns its output.
fn oracle(mode: &str, input: &Value) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.json"), dir.path().join("out.json"));
    std::fs::write(&inp, input.to_string()).unwrap();
    let run = common::ros_python()
        .arg(common::repo("tests/python/ros2_cdr_oracle.py"))
        .arg(mode)
        .arg(&inp)
        .arg(&out)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "ros2_cdr_oracle.py {mode} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_str::<Value>(&std::fs::read_to_string(&out).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[test]
fn rclpy_decodes_what_rlrt_encodes() {
    let mut obs = Observation::empty(3, 0);
    obs.joint_positions[..3].copy_from_slice(&[0.5, -1.25, 2.0]);
    obs.joint_velocities[..3].copy_from_slice(&[0.1, 0.2, -0.3]);
    obs.joint_efforts[..3].copy_from_slice(&[10.0, -20.0, 0.0]);
    let joints = names(&["shoulder_pan_joint", "elbow_joint", "wrist_1_joint"]);
    let mut cases = Vec::new();
    let mut push = |ty: &str, buf: &[u8]| cases.push(json!({"type": ty, "hex": hex(buf)}));
    let mut buf = Vec::new();
    msgs::encode_joint_state(
        &joints,
        &obs,
        1_700_000_001_250_000_000,
        "base_link",
        &mut buf,
    );
    push("sensor_msgs/msg/JointState", &buf);
    msgs::encode_float64_multi_array(&[1.0, -2.5, 3.25], &mut buf);
    push("std_msgs/msg/Float64MultiArray", &buf);
    msgs::encode_joint_trajectory(
        &joints,
        ActionMode::JointPosition,
        &[0.1, 0.2, 0.3],
        1_500_000_000,
        &mut buf,
    );
    push("trajectory_msgs/msg/JointTrajectory", &buf);
    msgs::encode_joint_trajectory(
        &joints,
        ActionMode::JointVelocity,
        &[-0.1, 0.0, 0.1],
        10_000_000,
        &mut buf,
    );
    push("trajectory_msgs/msg/JointTrajectory", &buf);
    msgs::encode_bool(true, &mut buf);
    push("std_msgs/msg/Bool", &buf);
    msgs::encode_bool(false, &mut buf);
    push("std_msgs/msg/Bool", &buf);
    let pixels: Vec<u8> = (0..2 * 3 * 3).map(|i| i as u8 * 7).collect();
    protocol::encode_image(
        &ImageView {
            stamp_ns: 42_000_000_123,
            camera: "front",
            height: 3,
            width: 2,
            encoding: ImageEncodingName::Rgb8,
            step: 6,
            data: &pixels,
        },
        &mut buf,
    );
    push("sensor_msgs/msg/Image", &buf);
    msgs::encode_compressed_image(
        &msgs::CompressedView {
            stamp_ns: 7,
            frame_id: "cam",
            format: "png",
            data: &[0x89, b'P', b'N', b'G', 1, 2, 3],
        },
        &mut buf,
    );
    push("sensor_msgs/msg/CompressedImage", &buf);

    let decoded = oracle("decode", &Value::Array(cases));
    let fields = |i: usize| -> &Value {
        let d = &decoded[i];
        assert!(
            d.get("error").is_none(),
            "rclpy could not decode case {i}: {d}"
        );
        &d["fields"]
    };
    let js = fields(0);
    assert_eq!(
        js["header"]["stamp"],
        json!({"sec": 1_700_000_001, "nanosec": 250_000_000})
    );
    assert_eq!(js["header"]["frame_id"], "base_link");
    assert_eq!(js["name"], json!(joints));
    assert_eq!(js["position"], json!([0.5, -1.25, 2.0]));
    assert_eq!(js["velocity"], json!([0.1, 0.2, -0.3]));
    assert_eq!(js["effort"], json!([10.0, -20.0, 0.0]));
    let fa = fields(1);
    assert_eq!(fa["layout"], json!({"dim": [], "data_offset": 0}));
    assert_eq!(fa["data"], json!([1.0, -2.5, 3.25]));
    let jt = fields(2);
    assert_eq!(jt["joint_names"], json!(joints));
    assert_eq!(jt["header"]["stamp"], json!({"sec": 0, "nanosec": 0}));
    let point = &jt["points"][0];
    assert_eq!(jt["points"].as_array().unwrap().len(), 1);
    assert_eq!(point["positions"], json!([0.1, 0.2, 0.3]));
    assert_eq!(point["velocities"], json!([]));
    assert_eq!(
        point["time_from_start"],
        json!({"sec": 1, "nanosec": 500_000_000})
    );
    let point = &fields(3)["points"][0];
    assert_eq!(point["positions"], json!([]));
    assert_eq!(point["velocities"], json!([-0.1, 0.0, 0.1]));
    assert_eq!(
        point["time_from_start"],
        json!({"sec": 0, "nanosec": 10_000_000})
    );
    assert_eq!(fields(4)["data"], true);
    assert_eq!(fields(5)["data"], false);
    let im = fields(6);
    assert_eq!(im["header"]["stamp"], json!({"sec": 42, "nanosec": 123}));
    assert_eq!(im["header"]["frame_id"], "front");
    assert_eq!(
        (im["height"].clone(), im["width"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(im["encoding"], "rgb8");
    assert_eq!(im["is_bigendian"], 0);
    assert_eq!(im["step"], 6);
    assert_eq!(im["data"], json!(pixels));
    let ci = fields(7);
    assert_eq!(ci["format"], "png");
    assert_eq!(ci["data"], json!([0x89, b'P', b'N', b'G', 1, 2, 3]));
}

#[test]
fn rlrt_decodes_what_rclpy_encodes() {
    let cases = json!([
        {"type": "sensor_msgs/msg/JointState", "fields": {
            "header": {"stamp": {"sec": 12, "nanosec": 345}, "frame_id": ""},
            // Another order than the hw-config's, an extra joint, no efforts.
            "name": ["wrist_1_joint", "gripper_finger", "shoulder_pan_joint", "elbow_joint"],
            "position": [3.0, 0.04, 1.0, 2.0],
            "velocity": [-3.0, 0.0, -1.0, -2.0],
            "effort": []}},
        {"type": "std_msgs/msg/Float64MultiArray", "fields": {
            "layout": {"dim": [{"label": "joints", "size": 3, "stride": 3}], "data_offset": 0},
            "data": [0.25, 0.5, 0.75]}},
        {"type": "trajectory_msgs/msg/JointTrajectory", "fields": {
            "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": ""},
            "joint_names": ["elbow_joint", "wrist_1_joint", "shoulder_pan_joint"],
            "points": [
                {"positions": [2.5, 3.5, 1.5], "velocities": [], "accelerations": [],
                 "effort": [], "time_from_start": {"sec": 0, "nanosec": 20000000}},
                {"positions": [0.0, 0.0, 0.0], "velocities": [0.1, 0.1, 0.1],
                 "accelerations": [], "effort": [], "time_from_start": {"sec": 1, "nanosec": 0}}]}},
        {"type": "std_msgs/msg/Bool", "fields": {"data": true}},
        {"type": "sensor_msgs/msg/Image", "fields": {
            "header": {"stamp": {"sec": 5, "nanosec": 6}, "frame_id": "camera_optical_frame"},
            "height": 2, "width": 2, "encoding": "mono8", "is_bigendian": 0,
            // Rows padded to 4 bytes.
            "step": 4, "data": [1, 2, 0, 0, 3, 4, 0, 0]}},
        {"type": "sensor_msgs/msg/CompressedImage", "fields": {
            "header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": "cam"},
            "format": "jpeg", "data": [255, 216, 255, 224]}}
    ]);
    let encoded = oracle("encode", &cases);
    let bytes = |i: usize| unhex(encoded[i]["hex"].as_str().unwrap());
    let joints = names(&["shoulder_pan_joint", "elbow_joint", "wrist_1_joint"]);

    let mut obs = Observation::empty(3, 0);
    msgs::decode_joint_state(&bytes(0), &joints, &mut obs).unwrap();
    assert_eq!(obs.positions(), &[1.0, 2.0, 3.0]);
    assert_eq!(obs.velocities(), &[-1.0, -2.0, -3.0]);
    assert_eq!(obs.efforts(), &[0.0, 0.0, 0.0]);
    assert_eq!(obs.stamp_ns, 12_000_000_345);

    let mut values = [0.0; MAX_JOINTS];
    assert_eq!(
        msgs::decode_float64_multi_array(&bytes(1), &mut values),
        Ok(3)
    );
    assert_eq!(&values[..3], &[0.25, 0.5, 0.75]);

    let point = msgs::decode_joint_trajectory(&bytes(2), &joints).unwrap();
    assert_eq!(&point.positions[..3], &[1.5, 2.5, 3.5]);
    assert_eq!(point.has, [true, false, false]);
    assert_eq!(point.time_from_start_ns, 20_000_000);

    assert_eq!(msgs::decode_bool(&bytes(3)), Ok(true));

    let image_bytes = bytes(4);
    let image = protocol::decode_ros_image(&image_bytes).unwrap();
    assert_eq!((image.width, image.height, image.step), (2, 2, 4));
    assert_eq!(image.encoding, ImageEncodingName::Mono8);
    assert_eq!(image.camera, "camera_optical_frame");
    assert_eq!(image.data, &[1, 2, 0, 0, 3, 4, 0, 0]);
    assert_eq!(image.stamp_ns, 5_000_000_006);

    let compressed_bytes = bytes(5);
    let compressed = msgs::decode_compressed_image(&compressed_bytes).unwrap();
    assert_eq!(compressed.format, "jpeg");
    assert_eq!(compressed.data, &[255, 216, 255, 224]);
    assert_eq!(compressed.frame_id, "cam");

    // Every cut of a real message is refused, never misread.
    let state = bytes(0);
    for cut in 4..state.len() {
        let mut scratch = Observation::empty(3, 0);
        assert!(
            msgs::decode_joint_state(&state[..cut], &joints, &mut scratch).is_err(),
            "cut at {cut} of {}",
            state.len()
        );
    }
}
