//! `rlrt check` against shipped and broken configs: every shipped config is accepted; every
//! broken one is rejected with exit code 2 and a message naming the file, the line and the
//! key path. Runs the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn check_text(name: &str, text: &str) -> (i32, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    let out = rlrt().arg("check").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr, file, dir)
}

fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

#[test]
fn every_shipped_config_is_accepted() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("hw-configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the reference and three robot configs"
    );
    let out = rlrt().arg("check").args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok: ")).count(),
        files.len()
    );
}

#[test]
fn shipped_robot_configs_carry_published_limits() {
    let franka = rlrt_runtime::config::load(repo("hw-configs/franka-panda.toml")).unwrap();
    assert_eq!(franka.dof(), 7);
    assert_eq!(franka.joints[3].position_max_rad, -0.0698);
    assert_eq!(franka.joints[5].position_min_rad, -0.0175);
    assert_eq!(franka.joints[6].max_effort_nm, 12.0);
    let ur = rlrt_runtime::config::load(repo("hw-configs/ur5e.toml")).unwrap();
    assert_eq!(ur.dof(), 6);
    assert!(ur
        .joints
        .iter()
        .all(|j| (j.max_velocity_rad_s - std::f64::consts::PI).abs() < 1e-3));
    // Default per-tick step for position mode is velocity limit times the tick.
    assert!((franka.action.max_delta_per_tick[0] - 2.175e-3).abs() < 1e-12);
}

struct Case {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    key: &'static str,
    /// Text whose line the message must name; None when the line is not well defined.
    line_at: Option<&'static str>,
}

const BASE: &str = include_str!("../hw-configs/reach-arm-joint-space.toml");

const CASES: &[Case] = &[
    Case { what: "unknown key", from: "kind = \"sim\"", to: "kind = \"sim\"\ncolour = \"red\"", key: "robot.colour", line_at: Some("colour") },
    Case { what: "unknown table", from: "[link]", to: "[extras]\nx = 1\n[link]", key: "extras", line_at: Some("[extras]") },
    Case { what: "missing key", from: "control_rate_hz = 100.0\n", to: "", key: "robot.control_rate_hz", line_at: None },
    Case { what: "missing key in array of tables", from: "max_effort_nm = 10.0", to: "", key: "joints[2].max_effort_nm", line_at: None },
    Case { what: "missing table", from: "[safety]\nstale_observation_timeout_ms = 50.0\nfault_action = \"hold_position\"\nestop_after_consecutive_faults = 500\n", to: "", key: "safety", line_at: None },
    Case { what: "wrong type", from: "control_rate_hz = 100.0", to: "control_rate_hz = \"fast\"", key: "robot.control_rate_hz", line_at: Some("\"fast\"") },
    Case { what: "wrong type in array", from: "target_rad = [0.8, 0.4, -0.9]", to: "target_rad = [0.8, \"up\", -0.9]", key: "policy.target_rad[1]", line_at: Some("target_rad") },
    Case { what: "NaN rate", from: "control_rate_hz = 100.0", to: "control_rate_hz = nan", key: "robot.control_rate_hz", line_at: Some("= nan") },
    Case { what: "zero rate", from: "control_rate_hz = 100.0", to: "control_rate_hz = 0.0", key: "robot.control_rate_hz", line_at: Some("control_rate_hz") },
    Case { what: "negative rate", from: "control_rate_hz = 100.0", to: "control_rate_hz = -50.0", key: "robot.control_rate_hz", line_at: Some("control_rate_hz") },
    Case { what: "min above max", from: "position_min_rad = -1.57", to: "position_min_rad = 2.0", key: "joints[1].position_min_rad", line_at: Some("position_min_rad = 2.0") },
    Case { what: "NaN limit", from: "position_max_rad = 2.5", to: "position_max_rad = nan", key: "joints[2].position_max_rad", line_at: Some("= nan") },
    Case { what: "infinite effort", from: "max_effort_nm = 10.0", to: "max_effort_nm = inf", key: "joints[2].max_effort_nm", line_at: Some("= inf") },
    Case { what: "negative velocity limit", from: "max_velocity_rad_s = 2.5", to: "max_velocity_rad_s = -2.5", key: "joints[2].max_velocity_rad_s", line_at: Some("max_velocity_rad_s = -2.5") },
    Case { what: "duplicate joint name", from: "name = \"elbow_pitch\"", to: "name = \"shoulder_pitch\"\n#dup", key: "joints[2].name", line_at: Some("\"shoulder_pitch\"\n#dup") },
    Case { what: "camera faster than loop", from: "rate_hz = 30.0", to: "rate_hz = 240.0", key: "observation.cameras[0].rate_hz", line_at: Some("rate_hz = 240") },
    Case { what: "zero camera width", from: "width = 84", to: "width = 0", key: "observation.cameras[0].width", line_at: Some("width = 0") },
    Case { what: "unknown state field", from: "state = [\"joint_positions\", \"joint_velocities\"]", to: "state = [\"joint_positions\", \"joint_torques\"]", key: "observation.state[1]", line_at: Some("joint_torques") },
    Case { what: "unknown action mode", from: "mode = \"joint_position\"", to: "mode = \"joint_torque\"", key: "action.mode", line_at: Some("joint_torque") },
    Case { what: "action bound beyond joint limit", from: "mode = \"joint_position\"", to: "mode = \"joint_position\"\nmax = [4.0, 1.0, 1.0]\nmin = [-1.0, -1.0, -1.0]", key: "action.max[0]", line_at: Some("max = [4.0") },
    Case { what: "step faster than velocity limit", from: "mode = \"joint_position\"", to: "mode = \"joint_position\"\nmax_delta_per_tick = [0.5, 0.01, 0.01]", key: "action.max_delta_per_tick[0]", line_at: Some("max_delta_per_tick") },
    Case { what: "wrong number of bounds", from: "mode = \"joint_position\"", to: "mode = \"joint_position\"\nmax_delta_per_tick = [0.01, 0.01]", key: "action.max_delta_per_tick", line_at: Some("max_delta_per_tick") },
    Case { what: "fault action unfit for mode", from: "fault_action = \"hold_position\"", to: "fault_action = \"damp\"\ndamp_time_constant_ms = 10.0", key: "safety.fault_action", line_at: Some("\"damp\"") },
    Case { what: "stale timeout shorter than a tick", from: "stale_observation_timeout_ms = 50.0", to: "stale_observation_timeout_ms = 5.0", key: "safety.stale_observation_timeout_ms", line_at: Some("= 5.0") },
    Case { what: "target outside joint limits", from: "target_rad = [0.8, 0.4, -0.9]", to: "target_rad = [0.8, 3.0, -0.9]", key: "policy.target_rad[1]", line_at: Some("target_rad") },
    Case { what: "option of another policy kind", from: "speed_fraction = 0.8", to: "speed_fraction = 0.8\nfrequency_hz = 1.0", key: "policy.frequency_hz", line_at: Some("frequency_hz") },
    Case { what: "wildcard in key prefix", from: "key_prefix = \"rlrt/reach-arm\"", to: "key_prefix = \"rlrt/**\"", key: "link.key_prefix", line_at: Some("rlrt/**") },
    Case { what: "malformed endpoint", from: "mode = \"peer\"", to: "mode = \"peer\"\nconnect = [\"localhost:7447\"]", key: "link.connect[0]", line_at: Some("localhost") },
    Case { what: "client without router", from: "mode = \"peer\"", to: "mode = \"client\"", key: "link.connect", line_at: None },
    Case { what: "schema version", from: "schema_version = 1", to: "schema_version = 2", key: "schema_version", line_at: Some("schema_version") },
    Case { what: "realtime priority out of range", from: "[policy]", to: "[scheduler]\nrealtime_priority = 120\n[policy]", key: "scheduler.realtime_priority", line_at: Some("= 120") },
    Case { what: "reward on a missing camera", from: "[policy]", to: "[[rewards]]\nname = \"g\"\nkind = \"clip\"\nmodel_path = \"m\"\ncamera = \"wrist\"\ngoal = \"touch\"\n[policy]", key: "rewards[0].camera", line_at: Some("\"wrist\"") },
    Case { what: "empty classifier sentence", from: "[policy]", to: "[[rewards]]\nname = \"g\"\nkind = \"classifier\"\nmodel_path = \"m.onnx\"\ncamera = \"front\"\ngoal = \" \"\n[policy]", key: "rewards[0].goal", line_at: Some("goal = \" \"") },
    Case { what: "alpha out of range", from: "[policy]", to: "[[rewards]]\nname = \"g\"\nkind = \"clip\"\nmodel_path = \"m\"\ncamera = \"front\"\ngoal = \"touch\"\nbaseline = \"arm\"\nalpha = 1.5\n[policy]", key: "rewards[0].alpha", line_at: Some("alpha = 1.5") },
    Case { what: "half precision on the CPU", from: "[policy]", to: "[[rewards]]\nname = \"g\"\nkind = \"clip\"\nmodel_path = \"m\"\ncamera = \"front\"\ngoal = \"touch\"\nprecision = \"f16\"\n[policy]", key: "rewards[0].precision", line_at: None },
    Case { what: "unknown compute device", from: "[policy]", to: "[[rewards]]\nname = \"g\"\nkind = \"clip\"\nmodel_path = \"m\"\ncamera = \"front\"\ngoal = \"touch\"\ndevice = \"gpu\"\n[policy]", key: "rewards[0].device", line_at: Some("\"gpu\"") },
    Case { what: "device on a classifier reward", from: "[policy]", to: "[[rewards]]\nname = \"g\"\nkind = \"clip\"\nmodel_path = \"m\"\ncamera = \"front\"\ngoal = \"touch\"\n[[rewards]]\nname = \"h\"\nkind = \"classifier\"\nmodel_path = \"m.onnx\"\ncamera = \"front\"\ndevice = \"cuda\"\n[policy]", key: "rewards[1].device", line_at: Some("\"cuda\"") },
    Case { what: "checkpoint without a path", from: "kind = \"joint_target\"", to: "kind = \"checkpoint\"", key: "policy.checkpoint_path", line_at: None },
    Case { what: "checkpoint path for another kind", from: "speed_fraction = 0.8", to: "speed_fraction = 0.8\ncheckpoint_path = \"runs/x\"", key: "policy.checkpoint_path", line_at: Some("checkpoint_path") },
    Case { what: "syntax error", from: "name = \"reach-arm\"", to: "name = \"reach-arm", key: "robot.name", line_at: Some("\"reach-arm\n") },
];

#[test]
fn broken_configs_are_rejected_with_file_line_and_key() {
    let mut failures = Vec::new();
    for case in CASES {
        assert!(
            BASE.contains(case.from),
            "case {:?}: base lacks {:?}",
            case.what,
            case.from
        );
        let text = BASE.replacen(case.from, case.to, 1);
        let (code, stderr, file, _dir) = check_text("broken.toml", &text);
        let mut problems = Vec::new();
        if code != 2 {
            problems.push(format!("exit code {code}, expected 2"));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".to_owned());
        }
        let first = stderr.lines().next().unwrap_or_default();
        if !first.starts_with(&file.display().to_string()) {
            problems.push("message does not start with the file name".to_owned());
        }
        if !stderr.contains(&format!("`{}`", case.key)) {
            problems.push(format!("message does not name key `{}`", case.key));
        }
        if let Some(needle) = case.line_at {
            let line = line_of(&text, needle);
            if !stderr.contains(&format!("{}:{line}:", file.display())) {
                problems.push(format!("message does not name line {line}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    stderr: {}",
                case.what,
                problems.join("; "),
                stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn all_problems_of_a_file_are_reported_in_one_pass() {
    let text = BASE
        .replacen("control_rate_hz = 100.0", "control_rate_hz = 0.0", 1)
        .replacen("max_velocity_rad_s = 2.5", "max_velocity_rad_s = -1.0", 1);
    let (code, stderr, _, _dir) = check_text("two.toml", &text);
    assert_eq!(code, 2);
    assert!(stderr.contains("`robot.control_rate_hz`"), "{stderr}");
    assert!(
        stderr.contains("`joints[2].max_velocity_rad_s`"),
        "{stderr}"
    );
}

#[test]
fn missing_file_and_binary_garbage_are_errors_not_panics() {
    let out = rlrt()
        .args(["check", "/nonexistent/robot.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/robot.toml"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("garbage.toml");
    std::fs::write(&file, [0xff, 0xfe, 0x00, 0x80, b'[', b'[']).unwrap();
    let out = rlrt().arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn check_also_checks_the_reward_programs_a_config_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.rhai"),
        "#{ reach: -distance(ee_position, target) }\n",
    )
    .unwrap();
    let file = dir.path().join("arm.toml");
    let text = std::fs::read_to_string(repo("hw-configs/reach-arm.toml"))
        .unwrap()
        .replace("\"../rewards/programs/reach.rhai\"", "\"typo.rhai\"");
    std::fs::write(&file, text).unwrap();
    let out = rlrt().arg("check").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reward program") && stderr.contains("typo.rhai:1:"),
        "{stderr}"
    );
}

#[test]
fn check_also_loads_the_frame_reward_models_a_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo("hw-configs/reach-arm.toml"))
        .unwrap()
        .replace(
            "\"../rewards/",
            &format!("\"{}/rewards/", repo("").display()),
        );
    let source = |kind: &str, model: &str| {
        format!("{base}\n[[rewards]]\nname = \"seen\"\nkind = \"{kind}\"\nmodel_path = {model:?}\ncamera = \"front\"\n")
    };
    let fixture = repo("tests/fixtures/classifier/nhwc_u8.onnx")
        .display()
        .to_string();
    for (kind, model, expect) in [
        ("classifier", "missing.onnx", Some("missing.onnx")),
        ("preference_model", "missing.onnx", Some("missing.onnx")),
        // A model that fits the 84 x 84 camera.
        ("classifier", fixture.as_str(), None),
        ("preference_model", fixture.as_str(), None),
    ] {
        let file = dir.path().join("arm.toml");
        std::fs::write(&file, source(kind, model)).unwrap();
        let out = rlrt().arg("check").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match expect {
            Some(name) => {
                assert_eq!(out.status.code(), Some(2), "{kind}: {stderr}");
                assert!(
                    stderr.contains("frame reward")
                        && stderr.contains("rewards[1].model_path")
                        && stderr.contains(name),
                    "{kind}: {stderr}"
                );
            }
            None => assert!(out.status.success(), "{kind}: {stderr}"),
        }
    }
}

#[test]
fn check_also_loads_the_policy_a_config_runs() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("hw-configs/reach-arm.toml"))
        .unwrap()
        .replace(
            "\"../rewards/programs/reach.rhai\"",
            &format!("{:?}", repo("rewards/programs/reach.rhai")),
        );
    let policy = |body: &str| {
        let start = text.find("[policy]").unwrap();
        let end = text.find("[sim]").unwrap();
        format!("{}[policy]\n{body}\n\n{}", &text[..start], &text[end..])
    };
    let fixture = |name: &str| repo("policies/tests/fixtures").join(name);
    // A model file that is not there, a checkpoint folder that is not there, and an ONNX
    // model for 17 observation values where the config has 12.
    let mut cases = vec![
        (
            "kind = \"onnx\"\nmodel_path = \"missing.onnx\"".to_owned(),
            vec!["policy", "missing.onnx", "cannot read"],
        ),
        (
            "kind = \"checkpoint\"\ncheckpoint_path = \"no-such-run\"".to_owned(),
            vec!["policy", "no-such-run"],
        ),
        (
            format!("kind = \"onnx\"\nmodel_path = {:?}", fixture("mlp.onnx")),
            vec!["policy", "mlp.onnx", "[batch, 12]", "observation.state"],
        ),
    ];
    if cfg!(feature = "tch") {
        cases.push((
            format!(
                "kind = \"torchscript\"\nmodel_path = {:?}",
                fixture("mlp.pt")
            ),
            vec!["policy", "mlp.pt", "[1, 12]", "1x12 and 17x32"],
        ));
    }
    for (body, expect) in cases {
        let file = dir.path().join("arm.toml");
        std::fs::write(&file, policy(&body)).unwrap();
        let out = rlrt().arg("check").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {stderr}");
        for e in expect {
            assert!(stderr.contains(e), "{body}: expected {e:?} in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn effort_configs_refuse_position_controllers_fault_actions_and_bounds() {
    let base = std::fs::read_to_string(repo("hw-configs/hopper.toml")).unwrap();
    for (from, to, key) in [
        ("kind = \"hold\"", "kind = \"sine\"", "policy.kind"),
        (
            "fault_action = \"zero_effort\"",
            "fault_action = \"hold_position\"",
            "safety.fault_action",
        ),
        (
            "mode = \"joint_effort\"",
            "mode = \"joint_effort\"\nmax = [1.0, 1.0, 2.0]",
            "action.max[2]",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let (code, stderr, _, _dir) = check_text("hopper.toml", &base.replacen(from, to, 1));
        assert_eq!(code, 2, "{to}: {stderr}");
        assert!(stderr.contains(&format!("`{key}`")), "{to}: {stderr}");
    }
}

const ROS2_BASE: &str = include_str!("../hw-configs/reach-arm-ros2.toml");

/// The `[link.ros2]` table: every wrong value names its key and what was expected.
#[test]
fn ros2_link_mistakes_name_the_key() {
    let table = "[link.ros2]\nnode_name = \"rlrt\"\ncommand_topic = \"/forward_position_controller/commands\"\ncommand_type = \"std_msgs/msg/Float64MultiArray\"\nestop_topic = \"/rlrt/estop\"\n";
    let camera = "[[link.ros2.cameras]]\nname = \"front\"\ntopic = \"/camera/front/image_raw\"\ntype = \"sensor_msgs/msg/Image\"\n";
    let both = format!("{table}\n{camera}");
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("unknown command type", "command_type = \"std_msgs/msg/Float64MultiArray\"", "command_type = \"std_msgs/msg/Float64\"", "link.ros2.command_type", "Float64MultiArray"),
        ("topic with a space", "command_topic = \"/forward_position_controller/commands\"", "command_topic = \"/forward position\"", "link.ros2.command_topic", "letters, digits"),
        ("domain beyond ROS's range", "node_name = \"rlrt\"", "node_name = \"rlrt\"\ndomain_id = 300", "link.ros2.domain_id", "0 to 232"),
        ("node name with a dash", "node_name = \"rlrt\"", "node_name = \"rl-rt\"", "link.ros2.node_name", "ROS node name"),
        ("relative namespace", "node_name = \"rlrt\"", "node_name = \"rlrt\"\nnamespace = \"arm\"", "link.ros2.namespace", "absolute"),
        ("unknown key", "node_name = \"rlrt\"", "node_name = \"rlrt\"\nstate_type = \"x\"", "link.ros2.state_type", ""),
        ("camera type", "type = \"sensor_msgs/msg/Image\"", "type = \"sensor_msgs/msg/PointCloud2\"", "link.ros2.cameras[0].type", "CompressedImage"),
        ("camera without a topic", camera, "", "observation.cameras[0]", "[[link.ros2.cameras]]"),
        ("ros2 flavour without its table", &both, "", "link.ros2", "command_topic"),
        ("table without the flavour", "flavour = \"ros2\"\n", "", "link.ros2", "link.flavour = \"ros2\""),
        ("end-effector actions", "mode = \"joint_position\"", "mode = \"ee_delta\"\nmin = [-0.01, -0.01, -0.01]\nmax = [0.01, 0.01, 0.01]\nmax_delta_per_tick = [0.005, 0.005, 0.005]", "action.mode", "joint controller"),
        ("time from start without a trajectory", "node_name = \"rlrt\"", "node_name = \"rlrt\"\ntrajectory_time_from_start_ms = 20.0", "link.ros2.trajectory_time_from_start_ms", "JointTrajectory"),
    ];
    let mut failures = Vec::new();
    for (what, from, to, key, expected) in cases {
        assert!(
            ROS2_BASE.contains(from),
            "case {what:?}: base lacks {from:?}"
        );
        let text = ROS2_BASE.replacen(from, to, 1);
        let (code, stderr, file, _dir) = check_text("ros2.toml", &text);
        let mut problems = Vec::new();
        if code != 2 {
            problems.push(format!("exit code {code}, expected 2"));
        }
        if !stderr.starts_with(&file.display().to_string()) {
            problems.push("message does not start with the file name".to_owned());
        }
        if !stderr.contains(&format!("`{key}`")) {
            problems.push(format!("message does not name key `{key}`"));
        }
        if !stderr.contains(expected) {
            problems.push(format!("message does not say {expected:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{what}: {}\n    stderr: {}",
                problems.join("; "),
                stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The shipped configs themselves pass, with topics qualified in their namespace.
    let config = rlrt_runtime::config::load(repo("hw-configs/ur5e-ros2.toml")).unwrap();
    let ros = config.link.ros2.unwrap();
    assert_eq!(ros.state_topic, "/joint_states");
    assert_eq!(ros.command_topic, "/forward_velocity_controller/commands");
    assert_eq!(config.link.mode, rlrt_runtime::config::LinkMode::Client);
}
