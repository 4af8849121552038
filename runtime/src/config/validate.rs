//! Range and consistency checks that turn a [`RawConfig`] into a [`RobotConfig`].
//!
//! Every check reports the key path it concerns; all problems are collected so a user fixes
//! a file in one pass. Comparisons are written so that NaN fails them (`!(x > 0.0)`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::schema::*;
use super::*;

type Problems = Vec<(KeyPath, String)>;

struct Checker {
    problems: Problems,
}

impl Checker {
    fn fail(&mut self, key: KeyPath, message: impl Into<String>) {
        self.problems.push((key, message.into()));
    }

    /// A finite number strictly inside (lo, hi], or [lo, hi] when `lo_inclusive`.
    fn range(&mut self, key: KeyPath, value: f64, lo: f64, hi: f64, lo_inclusive: bool) -> bool {
        let above = if lo_inclusive {
            value >= lo
        } else {
            value > lo
        };
        if value.is_finite() && above && value <= hi {
            return true;
        }
        let open = if lo_inclusive { '[' } else { '(' };
        let what = if value.is_nan() {
            "NaN".to_owned()
        } else {
            format!("{value}")
        };
        self.fail(
            key,
            format!("got {what}, expected a finite number in {open}{lo}, {hi}]"),
        );
        false
    }

    fn positive(&mut self, key: KeyPath, value: f64) -> bool {
        if value.is_finite() && value > 0.0 {
            return true;
        }
        self.fail(
            key,
            format!("got {value}, expected a finite number above zero"),
        );
        false
    }

    fn finite(&mut self, key: KeyPath, value: f64) -> bool {
        if value.is_finite() {
            return true;
        }
        self.fail(key, format!("got {value}, expected a finite number"));
        false
    }

    fn unused<T>(&mut self, key: KeyPath, value: &Option<T>, only_when: &str) {
        if value.is_some() {
            self.fail(key, format!("only read when {only_when}; remove it"));
        }
    }
}

fn root(key: &str) -> KeyPath {
    KeyPath::root().key(key)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

const NAME_RULE: &str = "expected a non-empty name of ASCII letters, digits, '_' or '-'";

/// The control rate and the tick it gives; `period_s` is NaN when the rate is invalid, so
/// checks that derive from the tick fail quietly instead of repeating the rate's problem.
#[derive(Clone, Copy)]
struct Rate {
    hz: f64,
    ok: bool,
    period_s: f64,
}

/// Resolves a path of the config against the config's folder (see `validate`).
type Resolve<'a> = &'a dyn Fn(&str) -> PathBuf;

/// Checks every section of `raw`, read from `path` (relative paths resolve against its
/// folder), and reports every problem, section by section.
pub(super) fn validate(raw: RawConfig, path: &Path) -> Result<RobotConfig, Problems> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let resolve = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        // `hf:<owner>/<name>`: a Hugging Face Hub id (CLIP models), not a path.
        if p.is_absolute() || p.to_str().is_some_and(|s| s.starts_with("hf:")) {
            p
        } else {
            base_dir.join(p)
        }
    };

    if raw.schema_version != SCHEMA_VERSION {
        c.fail(
            root("schema_version"),
            format!(
                "got {}, this build reads schema version {SCHEMA_VERSION}",
                raw.schema_version
            ),
        );
    }
    // Section by section; a later one may lean on what an earlier one found (the rate, the
    // joints, the observation).
    let rate = validate_robot(&mut c, &raw.robot);
    let (joints, joints_ok) = validate_joints(&mut c, &raw.joints);
    let observation = validate_observation(&mut c, &raw.observation, joints.len(), rate);
    let action = if joints_ok && rate.ok {
        validate_action(&mut c, &raw.action, &joints, rate.period_s)
    } else {
        None
    };
    let link = validate_link(&mut c, &raw, rate.period_s, &resolve);
    let safety = validate_safety(&mut c, &raw.safety, raw.action.mode, rate);
    let policy = if joints_ok && rate.ok {
        validate_policy(
            &mut c,
            &raw.policy,
            &raw,
            &joints,
            &observation,
            rate.period_s,
            &resolve,
        )
    } else {
        None
    };
    let rewards = validate_rewards(&mut c, &raw.rewards, &raw.observation.cameras, &resolve);
    let scheduler = validate_scheduler(&mut c, &raw.scheduler, rate);
    let sim = validate_sim(&mut c, raw.sim.as_ref(), &resolve);

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(RobotConfig {
        source: path.to_owned(),
        name: raw.robot.name,
        kind: raw.robot.kind,
        description: raw.robot.description,
        control_rate_hz: rate.hz,
        joints,
        observation,
        action: action.expect("action is valid when no problem was reported"),
        link,
        safety,
        policy: policy.expect("policy is valid when no problem was reported"),
        rewards,
        scheduler,
        sim,
    })
}

/// `[robot]`: its name and the control rate.
fn validate_robot(c: &mut Checker, raw: &RawRobot) -> Rate {
    let robot = root("robot");
    if !valid_name(&raw.name) {
        c.fail(
            robot.key("name"),
            format!("got {:?}, {NAME_RULE}", raw.name),
        );
    }
    let hz = raw.control_rate_hz;
    let ok = c.range(robot.key("control_rate_hz"), hz, 0.0, 10_000.0, false);
    let period_s = if ok { 1.0 / hz } else { f64::NAN };
    Rate { hz, ok, period_s }
}

/// `[[joints]]`: unique names, ordered position limits, positive velocity and effort limits.
/// Also says whether all joints are valid: later sections derive defaults from the limits,
/// and with broken limits they would only repeat the same problem under other keys.
fn validate_joints(c: &mut Checker, raw: &[RawJoint]) -> (Vec<JointLimits>, bool) {
    let before = c.problems.len();
    let joints_key = root("joints");
    if raw.is_empty() {
        c.fail(joints_key.clone(), "expected at least one [[joints]] table");
    }
    if raw.len() > MAX_JOINTS {
        c.fail(
            joints_key.clone(),
            format!(
                "{} joints declared, at most {MAX_JOINTS} are supported",
                raw.len()
            ),
        );
    }
    let mut joint_names = HashSet::new();
    for (i, j) in raw.iter().enumerate() {
        let key = joints_key.index(i);
        if !valid_name(&j.name) {
            c.fail(key.key("name"), format!("got {:?}, {NAME_RULE}", j.name));
        } else if !joint_names.insert(j.name.as_str()) {
            c.fail(
                key.key("name"),
                format!(
                    "duplicate joint name {:?}; joint names must be unique",
                    j.name
                ),
            );
        }
        let lo_ok = c.finite(key.key("position_min_rad"), j.position_min_rad);
        let hi_ok = c.finite(key.key("position_max_rad"), j.position_max_rad);
        if lo_ok && hi_ok && j.position_min_rad >= j.position_max_rad {
            c.fail(
                key.key("position_min_rad"),
                format!(
                    "position_min_rad = {} is not below position_max_rad = {}",
                    j.position_min_rad, j.position_max_rad
                ),
            );
        }
        c.positive(key.key("max_velocity_rad_s"), j.max_velocity_rad_s);
        c.positive(key.key("max_effort_nm"), j.max_effort_nm);
    }
    let joints_ok = c.problems.len() == before;
    let joints = raw
        .iter()
        .map(|j| JointLimits {
            name: j.name.clone(),
            position_min_rad: j.position_min_rad,
            position_max_rad: j.position_max_rad,
            max_velocity_rad_s: j.max_velocity_rad_s,
            max_effort_nm: j.max_effort_nm,
        })
        .collect();
    (joints, joints_ok)
}

/// `[observation]`: its sensors, the state fields a policy reads, and its cameras.
fn validate_observation(
    c: &mut Checker,
    raw: &RawObservation,
    dof: usize,
    rate: Rate,
) -> ObservationSpec {
    let obs_key = root("observation");
    let (sensors, sensor_values) = validate_sensors(c, &obs_key, &raw.sensors);
    let (fields, feature_len) = validate_state(c, &obs_key, &raw.state, &sensors, dof);
    let cameras = validate_cameras(c, &obs_key, &raw.cameras, rate);
    ObservationSpec {
        fields,
        sensors,
        cameras,
        feature_len,
        sensor_values,
    }
}

/// `[[observation.sensors]]`: unique names that are not built-in fields, sizes within
/// bounds. Returns the sensors, each at its offset among all sensor values, and their total.
fn validate_sensors(
    c: &mut Checker,
    obs_key: &KeyPath,
    raw: &[RawSensor],
) -> (Vec<SensorSpec>, usize) {
    let mut sensors = Vec::new();
    let mut sensor_names = HashSet::new();
    let mut sensor_values = 0;
    for (i, s) in raw.iter().enumerate() {
        let key = obs_key.key("sensors").index(i);
        if !valid_name(&s.name) {
            c.fail(key.key("name"), format!("got {:?}, {NAME_RULE}", s.name));
        } else if BUILTIN_FIELDS.contains(&s.name.as_str()) {
            c.fail(
                key.key("name"),
                format!("{:?} is a built-in state field; pick another name", s.name),
            );
        } else if !sensor_names.insert(s.name.as_str()) {
            c.fail(
                key.key("name"),
                format!("duplicate sensor name {:?}", s.name),
            );
        }
        if s.size == 0 || s.size > MAX_SENSOR_VALUES {
            c.fail(
                key.key("size"),
                format!("got {}, expected 1 to {MAX_SENSOR_VALUES}", s.size),
            );
        }
        sensors.push(SensorSpec {
            name: s.name.clone(),
            size: s.size,
            offset: sensor_values,
            unit: s.unit.clone(),
        });
        sensor_values += s.size;
    }
    if sensor_values > MAX_SENSOR_VALUES {
        c.fail(
            obs_key.key("sensors"),
            format!("sensors add up to {sensor_values} values, at most {MAX_SENSOR_VALUES} are supported"),
        );
    }
    (sensors, sensor_values)
}

/// `observation.state`: each field once, a built-in field or a declared sensor. Returns the
/// fields at their offsets in the feature vector, and its length.
fn validate_state(
    c: &mut Checker,
    obs_key: &KeyPath,
    raw: &[String],
    sensors: &[SensorSpec],
    dof: usize,
) -> (Vec<ObservationField>, usize) {
    if raw.is_empty() {
        c.fail(
            obs_key.key("state"),
            "expected at least one state field (such as \"joint_positions\")",
        );
    }
    let mut fields = Vec::new();
    let mut seen_fields = HashSet::new();
    let mut offset = 0;
    for (i, name) in raw.iter().enumerate() {
        let key = obs_key.key("state").index(i);
        if !seen_fields.insert(name.as_str()) {
            c.fail(key, format!("{name:?} is listed twice"));
            continue;
        }
        let (source, len) = match name.as_str() {
            "joint_positions" => (FieldSource::JointPositions, dof),
            "joint_velocities" => (FieldSource::JointVelocities, dof),
            "joint_efforts" => (FieldSource::JointEfforts, dof),
            other => match sensors.iter().position(|s| s.name == other) {
                Some(index) => (FieldSource::Sensor(index), sensors[index].size),
                None => {
                    c.fail(
                        key,
                        format!(
                            "unknown state field {other:?}; expected one of {} or a name from [[observation.sensors]]",
                            BUILTIN_FIELDS.join(", ")
                        ),
                    );
                    continue;
                }
            },
        };
        fields.push(ObservationField {
            source,
            offset,
            len,
        });
        offset += len;
    }
    (fields, offset)
}

/// `[[observation.cameras]]`: unique names, image sizes, and a frame rate no faster than
/// the loop.
fn validate_cameras(
    c: &mut Checker,
    obs_key: &KeyPath,
    raw: &[RawCamera],
    rate: Rate,
) -> Vec<CameraSpec> {
    let mut cameras = Vec::new();
    let mut camera_names = HashSet::new();
    for (i, cam) in raw.iter().enumerate() {
        let key = obs_key.key("cameras").index(i);
        if !valid_name(&cam.name) {
            c.fail(key.key("name"), format!("got {:?}, {NAME_RULE}", cam.name));
        } else if !camera_names.insert(cam.name.as_str()) {
            c.fail(
                key.key("name"),
                format!("duplicate camera name {:?}", cam.name),
            );
        }
        for (field, value) in [("width", cam.width), ("height", cam.height)] {
            if value == 0 || value > 8192 {
                c.fail(
                    key.key(field),
                    format!("got {value}, expected 1 to 8192 pixels"),
                );
            }
        }
        if c.positive(key.key("rate_hz"), cam.rate_hz) && rate.ok && cam.rate_hz > rate.hz {
            c.fail(
                key.key("rate_hz"),
                format!(
                    "camera rate {} Hz is faster than the control loop ({} Hz); frames beyond one per tick are never used",
                    cam.rate_hz, rate.hz
                ),
            );
        }
        cameras.push(CameraSpec {
            name: cam.name.clone(),
            width: cam.width,
            height: cam.height,
            rate_hz: cam.rate_hz,
            encoding: cam.encoding,
        });
    }
    cameras
}

/// `[link]`: the key prefix, the endpoints, TLS and access control, and the ROS 2 table
/// (see [`validate_ros2`]).
fn validate_link(
    c: &mut Checker,
    raw: &RawConfig,
    period_s: f64,
    resolve: Resolve<'_>,
) -> LinkConfig {
    let link_key = root("link");
    let needs_tls = check_link_endpoints(c, &link_key, &raw.link);
    check_link_security(c, &link_key, &raw.link, needs_tls);
    let ros2 = validate_ros2(c, raw, &link_key, period_s);
    LinkConfig {
        ros2,
        mode: raw.link.mode,
        connect: raw.link.connect.clone(),
        listen: raw.link.listen.clone(),
        key_prefix: raw.link.key_prefix.clone(),
        shared_memory: raw.link.shared_memory.unwrap_or(true),
        tls: raw.link.tls.as_ref().map(|t| TlsConfig {
            root_ca_path: resolve(&t.root_ca_path),
            cert_path: t.cert_path.as_deref().map(resolve),
            key_path: t.key_path.as_deref().map(resolve),
        }),
        allow_cert_common_names: raw
            .link
            .access
            .as_ref()
            .map(|a| a.allow_cert_common_names.clone()),
    }
}

/// The key prefix is a plain zenoh key, every endpoint `<protocol>/<address>` of a transport
/// this build links, and a client has a router to connect to. Returns whether an endpoint
/// needs TLS (`tls/` or `quic/`).
fn check_link_endpoints(c: &mut Checker, link_key: &KeyPath, raw: &RawLink) -> bool {
    let prefix = &raw.key_prefix;
    if prefix.is_empty()
        || prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.contains("//")
        || prefix.contains(['*', '$', '#', '?', ' '])
    {
        c.fail(
            link_key.key("key_prefix"),
            format!("got {prefix:?}, expected a zenoh key such as \"rlrt/my-arm\": no wildcards, spaces, '#', '?', or leading, trailing or doubled '/'"),
        );
    }
    let mut needs_tls = false;
    for (list, endpoints) in [("connect", &raw.connect), ("listen", &raw.listen)] {
        for (i, endpoint) in endpoints.iter().enumerate() {
            let key = link_key.key(list).index(i);
            match endpoint.split_once('/') {
                Some((proto, addr)) if ENDPOINT_PROTOCOLS.contains(&proto) && !addr.is_empty() => {
                    needs_tls |= proto == "tls" || proto == "quic";
                }
                _ => c.fail(
                    key,
                    format!(
                        "got {endpoint:?}, expected <protocol>/<address> with protocol one of {}",
                        ENDPOINT_PROTOCOLS.join(", ")
                    ),
                ),
            }
        }
    }
    if raw.mode == LinkMode::Client && raw.connect.is_empty() {
        c.fail(
            link_key.key("connect"),
            "mode = \"client\" needs at least one router endpoint to connect to",
        );
    }
    needs_tls
}

/// `[link.tls]` is there when an endpoint needs it, with a certificate and its key together,
/// and `[link.access]` has mutual TLS to identify peers by and names to allow.
fn check_link_security(c: &mut Checker, link_key: &KeyPath, raw: &RawLink, needs_tls: bool) {
    if needs_tls && raw.tls.is_none() {
        c.fail(
            link_key.key("tls"),
            "tls/ and quic/ endpoints need a [link.tls] table with root_ca_path",
        );
    }
    if let Some(tls) = &raw.tls {
        if tls.cert_path.is_some() != tls.key_path.is_some() {
            c.fail(
                link_key.key("tls"),
                "cert_path and key_path go together: give both or neither",
            );
        }
    }
    if let Some(access) = &raw.access {
        let key = link_key.key("access").key("allow_cert_common_names");
        let mutual = raw
            .tls
            .as_ref()
            .is_some_and(|t| t.cert_path.is_some() && t.key_path.is_some());
        if !mutual {
            c.fail(
                key.clone(),
                "peers are identified by their TLS certificates: [link.access] needs [link.tls] with cert_path and key_path (mutual TLS) and quic/ or tls/ endpoints",
            );
        }
        if access.allow_cert_common_names.is_empty()
            || access
                .allow_cert_common_names
                .iter()
                .any(|n| n.trim().is_empty())
        {
            c.fail(
                key,
                "expected at least one non-empty certificate common name, such as [\"rlrt-runtime\"]",
            );
        }
    }
}

/// `[safety]`: a stale-observation timeout of at least one tick, a fault action the action
/// mode can command, and the damping time constant that `damp` needs.
fn validate_safety(c: &mut Checker, s: &RawSafety, mode: ActionMode, rate: Rate) -> SafetyConfig {
    let safety_key = root("safety");
    if c.positive(
        safety_key.key("stale_observation_timeout_ms"),
        s.stale_observation_timeout_ms,
    ) && rate.ok
        && s.stale_observation_timeout_ms * 1e-3 < rate.period_s
    {
        c.fail(
            safety_key.key("stale_observation_timeout_ms"),
            format!(
                "{} ms is shorter than one tick ({:.3} ms): every tick would fault",
                s.stale_observation_timeout_ms,
                rate.period_s * 1e3
            ),
        );
    }
    let compatible = matches!(
        (mode, s.fault_action),
        (ActionMode::JointPosition, FaultAction::HoldPosition)
            | (
                ActionMode::JointVelocity,
                FaultAction::ZeroVelocity | FaultAction::Damp
            )
            | (
                ActionMode::EeDelta,
                FaultAction::ZeroVelocity | FaultAction::HoldPosition
            )
            | (
                ActionMode::JointEffort,
                FaultAction::ZeroEffort | FaultAction::Damp
            )
    );
    if !compatible {
        let expected = match mode {
            ActionMode::JointPosition => "\"hold_position\"",
            ActionMode::JointVelocity => "\"zero_velocity\" or \"damp\"",
            ActionMode::EeDelta => "\"zero_velocity\" or \"hold_position\"",
            ActionMode::JointEffort => "\"zero_effort\" or \"damp\"",
        };
        c.fail(
            safety_key.key("fault_action"),
            format!(
                "{:?} cannot be commanded in action.mode = {:?}; expected {expected}",
                s.fault_action, mode
            ),
        );
    }
    let mut damp_time_constant_s = 0.0;
    if s.fault_action == FaultAction::Damp {
        match s.damp_time_constant_ms {
            Some(ms) => {
                if c.positive(safety_key.key("damp_time_constant_ms"), ms) {
                    damp_time_constant_s = ms * 1e-3;
                }
            }
            None => c.fail(
                safety_key.key("damp_time_constant_ms"),
                "missing: fault_action = \"damp\" needs the decay time constant in milliseconds",
            ),
        }
    } else {
        c.unused(
            safety_key.key("damp_time_constant_ms"),
            &s.damp_time_constant_ms,
            "fault_action = \"damp\"",
        );
    }
    SafetyConfig {
        stale_observation_timeout_ns: (s.stale_observation_timeout_ms * 1e6).max(0.0) as u64,
        fault_action: s.fault_action,
        damp_time_constant_s,
        estop_after_consecutive_faults: s.estop_after_consecutive_faults,
    }
}

/// `[[rewards]]`: unique names, then each source (see [`validate_reward`]).
fn validate_rewards(
    c: &mut Checker,
    raw: &[RawReward],
    cameras: &[RawCamera],
    resolve: Resolve<'_>,
) -> Vec<RewardSourceConfig> {
    // The cameras a reward may name: those with a valid name (an invalid one is reported
    // under [[observation.cameras]] already).
    let camera_names: HashSet<&str> = cameras
        .iter()
        .map(|cam| cam.name.as_str())
        .filter(|name| valid_name(name))
        .collect();
    let mut rewards = Vec::new();
    let mut reward_names = HashSet::new();
    for (i, r) in raw.iter().enumerate() {
        let key = root("rewards").index(i);
        if !valid_name(&r.name) {
            c.fail(key.key("name"), format!("got {:?}, {NAME_RULE}", r.name));
        } else if !reward_names.insert(r.name.as_str()) {
            c.fail(
                key.key("name"),
                format!("duplicate reward name {:?}", r.name),
            );
        }
        rewards.push(validate_reward(c, &key, r, &camera_names, resolve));
    }
    rewards
}

/// One reward source: its weight, what it reads (a program, or a model and a camera), and
/// the settings of its kind, each read only by the kinds that use it.
fn validate_reward(
    c: &mut Checker,
    key: &KeyPath,
    r: &RawReward,
    camera_names: &HashSet<&str>,
    resolve: Resolve<'_>,
) -> RewardSourceConfig {
    let weight = r.weight.unwrap_or(1.0);
    c.finite(key.key("weight"), weight);
    check_reward_inputs(c, key, r, camera_names);
    check_reward_text(c, key, r);
    if r.kind == RewardKind::Classifier {
        if let Some(t) = r.threshold {
            c.range(key.key("threshold"), t, 0.0, 1.0, false);
            if t >= 1.0 {
                c.fail(
                    key.key("threshold"),
                    "a threshold of 1 never fires; expected below 1",
                );
            }
        }
    } else {
        c.unused(key.key("threshold"), &r.threshold, "kind = \"classifier\"");
    }
    RewardSourceConfig {
        name: r.name.clone(),
        kind: r.kind,
        weight,
        program_path: r.program_path.as_deref().map(resolve),
        model_path: r.model_path.as_deref().map(resolve),
        camera: r.camera.clone(),
        goal: r.goal.clone(),
        baseline: r.baseline.clone(),
        alpha: clip_alpha(r.alpha, r.baseline.is_some()),
        threshold: r.threshold.unwrap_or(0.5),
        resize: r.resize.unwrap_or_default(),
        device: r.device.unwrap_or_default(),
        precision: r.precision.unwrap_or_default(),
    }
}

/// A program reward has a program; a model reward has a model, and a camera of the
/// observation when it scores frames.
fn check_reward_inputs(
    c: &mut Checker,
    key: &KeyPath,
    r: &RawReward,
    camera_names: &HashSet<&str>,
) {
    let kind = format!("kind = {:?}", r.kind);
    let needs_camera = matches!(
        r.kind,
        RewardKind::Clip | RewardKind::Classifier | RewardKind::PreferenceModel
    );
    match r.kind {
        RewardKind::Program => {
            if r.program_path.is_none() {
                c.fail(
                    key.key("program_path"),
                    "missing: a program reward needs the path of its program",
                );
            }
            c.unused(
                key.key("model_path"),
                &r.model_path,
                "kind is clip, classifier or preference_model",
            );
        }
        _ => {
            if r.model_path.is_none() {
                c.fail(
                    key.key("model_path"),
                    format!("missing: {kind} needs the path of its model"),
                );
            }
            c.unused(
                key.key("program_path"),
                &r.program_path,
                "kind = \"program\"",
            );
        }
    }
    if needs_camera {
        match &r.camera {
            None => c.fail(
                key.key("camera"),
                format!(
                    "missing: {kind} scores camera frames; name one of [[observation.cameras]]"
                ),
            ),
            Some(cam) if !camera_names.contains(cam.as_str()) => c.fail(
                key.key("camera"),
                format!("no camera named {cam:?} in [[observation.cameras]]"),
            ),
            Some(_) => {}
        }
    } else {
        c.unused(
            key.key("camera"),
            &r.camera,
            "kind is clip, classifier or preference_model",
        );
    }
}

/// A CLIP reward's goal and baseline sentences, their mix and where the model runs; a model
/// that reads text may have a goal sentence; other kinds have none of these.
fn check_reward_text(c: &mut Checker, key: &KeyPath, r: &RawReward) {
    if r.kind == RewardKind::Clip {
        match &r.goal {
            Some(goal) if !goal.trim().is_empty() => {}
            _ => c.fail(
                key.key("goal"),
                "missing or empty: a CLIP reward needs a goal sentence",
            ),
        }
        if let Some(baseline) = &r.baseline {
            if baseline.trim().is_empty() {
                c.fail(
                    key.key("baseline"),
                    "empty baseline sentence; remove it or write one",
                );
            }
        }
        if let Some(alpha) = r.alpha {
            c.range(key.key("alpha"), alpha, 0.0, 1.0, true);
            if r.baseline.is_none() && alpha != 0.0 {
                c.fail(
                    key.key("alpha"),
                    "alpha mixes in the baseline direction; it needs a baseline sentence",
                );
            }
        }
        if let Err(e) = crate::compute::check_pair(
            r.device.unwrap_or_default(),
            r.precision.unwrap_or_default(),
        ) {
            c.fail(key.key("precision"), e.to_string());
        }
        return;
    }
    if matches!(r.kind, RewardKind::Classifier | RewardKind::PreferenceModel) {
        // The sentence of a model that reads text; the model decides at load.
        if r.goal.as_ref().is_some_and(|g| g.trim().is_empty()) {
            c.fail(key.key("goal"), "empty sentence; remove it or write one");
        }
    } else {
        c.unused(
            key.key("goal"),
            &r.goal,
            "kind is clip, classifier or preference_model",
        );
    }
    c.unused(key.key("baseline"), &r.baseline, "kind = \"clip\"");
    c.unused(key.key("alpha"), &r.alpha, "kind = \"clip\"");
    c.unused(key.key("resize"), &r.resize, "kind = \"clip\"");
    c.unused(key.key("device"), &r.device, "kind = \"clip\"");
    c.unused(key.key("precision"), &r.precision, "kind = \"clip\"");
}

/// `[scheduler]`: a CPU index, a SCHED_FIFO priority, a spin of at most one tick (by
/// default at most a fifth of one) and a telemetry queue length.
fn validate_scheduler(c: &mut Checker, sch: &RawScheduler, rate: Rate) -> SchedulerConfig {
    let sched_key = root("scheduler");
    let defaults = SchedulerConfig::default();
    if let Some(core) = sch.cpu_core {
        if core >= 1024 {
            c.fail(
                sched_key.key("cpu_core"),
                format!("got {core}, expected a CPU index below 1024"),
            );
        }
    }
    if let Some(priority) = sch.realtime_priority {
        if !(1..=99).contains(&priority) {
            c.fail(
                sched_key.key("realtime_priority"),
                format!("got {priority}, expected a SCHED_FIFO priority from 1 to 99"),
            );
        }
    }
    let mut spin_ns = defaults.spin_ns;
    if let Some(spin_us) = sch.spin_us {
        let max_us = if rate.ok {
            rate.period_s * 1e6
        } else {
            f64::INFINITY
        };
        if c.range(sched_key.key("spin_us"), spin_us, 0.0, max_us, true) {
            spin_ns = (spin_us * 1e3) as u64;
        }
    } else if rate.ok {
        // Never spin for more than a fifth of a tick by default.
        spin_ns = spin_ns.min((rate.period_s * 1e9 / 5.0) as u64);
    }
    let telemetry_queue_len = sch
        .telemetry_queue_len
        .unwrap_or(defaults.telemetry_queue_len);
    if !(16..=1_000_000).contains(&telemetry_queue_len) {
        c.fail(
            sched_key.key("telemetry_queue_len"),
            format!("got {telemetry_queue_len}, expected 16 to 1000000 records"),
        );
    }
    SchedulerConfig {
        cpu_core: sch.cpu_core,
        realtime_priority: sch.realtime_priority,
        lock_memory: sch.lock_memory.unwrap_or(false),
        spin_ns,
        telemetry_queue_len,
    }
}

/// `[sim]`: a task name, or a task file resolved against the config's folder.
fn validate_sim(c: &mut Checker, raw: Option<&RawSim>, resolve: Resolve<'_>) -> Option<SimConfig> {
    let sim = raw?;
    let key = root("sim").key("task");
    if sim.task.trim().is_empty() {
        c.fail(
            key,
            "is empty; expected a built-in task name (\"reach\", \"push\") or a task file path",
        );
        return None;
    }
    let is_file = sim.task.contains('/') || sim.task.ends_with(".toml");
    Some(SimConfig {
        task: sim.task.clone(),
        task_path: is_file.then(|| resolve(&sim.task)),
    })
}

const BUILTIN_FIELDS: [&str; 3] = ["joint_positions", "joint_velocities", "joint_efforts"];
/// zenoh transports this build links (see the zenoh features in Cargo.toml).
const ENDPOINT_PROTOCOLS: [&str; 5] = ["tcp", "udp", "tls", "quic", "unixsock-stream"];

/// `[action]`: bounds and a step limit per value, by default from the joint limits, within
/// those limits; `None` when any of it is wrong.
fn validate_action(
    c: &mut Checker,
    raw: &RawAction,
    joints: &[JointLimits],
    period_s: f64,
) -> Option<ActionSpec> {
    let key = root("action");
    let before = c.problems.len();
    let dof = joints.len();
    type Defaults = (
        Option<usize>,
        Option<Vec<f64>>,
        Option<Vec<f64>>,
        Option<Vec<f64>>,
    );
    let (expected_len, default_min, default_max, default_delta): Defaults = match raw.mode {
        ActionMode::JointPosition => (
            Some(dof),
            Some(joints.iter().map(|j| j.position_min_rad).collect()),
            Some(joints.iter().map(|j| j.position_max_rad).collect()),
            // The largest step a joint can make in one tick at its velocity limit.
            Some(
                joints
                    .iter()
                    .map(|j| j.max_velocity_rad_s * period_s)
                    .collect(),
            ),
        ),
        ActionMode::JointVelocity => (
            Some(dof),
            Some(joints.iter().map(|j| -j.max_velocity_rad_s).collect()),
            Some(joints.iter().map(|j| j.max_velocity_rad_s).collect()),
            None,
        ),
        ActionMode::EeDelta => (None, None, None, None),
        // Efforts may jump within their bounds from one tick to the next unless
        // max_delta_per_tick says otherwise (set it on hardware).
        ActionMode::JointEffort => (
            Some(dof),
            Some(joints.iter().map(|j| -j.max_effort_nm).collect()),
            Some(joints.iter().map(|j| j.max_effort_nm).collect()),
            Some(joints.iter().map(|j| 2.0 * j.max_effort_nm).collect()),
        ),
    };
    let mode_name = format!("{:?}", raw.mode);
    let mut take =
        |field: &str, given: &Option<Vec<f64>>, default: Option<Vec<f64>>| match (given, default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(d)) => Some(d),
            (None, None) => {
                c.fail(
                    key.key(field),
                    format!("missing: action.mode = {mode_name} has no default for {field}"),
                );
                None
            }
        };
    let min = take("min", &raw.min, default_min);
    let max = take("max", &raw.max, default_max);
    let delta = take("max_delta_per_tick", &raw.max_delta_per_tick, default_delta);
    let (min, max, delta) = (min?, max?, delta?);

    let len = expected_len.unwrap_or(min.len());
    if expected_len.is_none() && ![3, 4, 6, 7].contains(&len) {
        c.fail(
            key.key("min"),
            format!("ee_delta actions have 3 (xyz), 4 (+gripper), 6 (+rpy) or 7 values; got {len}"),
        );
    }
    for (field, values) in [("min", &min), ("max", &max), ("max_delta_per_tick", &delta)] {
        if values.len() != len {
            let what = if expected_len.is_some() {
                "one per joint"
            } else {
                "as many as action.min"
            };
            c.fail(
                key.key(field),
                format!("has {} values, expected {len} ({what})", values.len()),
            );
        }
    }
    if c.problems.len() > before {
        return None;
    }
    for i in 0..len {
        let lo_ok = c.finite(key.key("min").index(i), min[i]);
        let hi_ok = c.finite(key.key("max").index(i), max[i]);
        if lo_ok && hi_ok && min[i] >= max[i] {
            c.fail(
                key.key("min").index(i),
                format!("min = {} is not below max = {}", min[i], max[i]),
            );
        }
        c.positive(key.key("max_delta_per_tick").index(i), delta[i]);
        let Some(joint) = joints.get(i) else { continue };
        match raw.mode {
            ActionMode::JointPosition => {
                if min[i] < joint.position_min_rad {
                    c.fail(
                        key.key("min").index(i),
                        format!(
                            "{} is below joints[{i}].position_min_rad = {}",
                            min[i], joint.position_min_rad
                        ),
                    );
                }
                if max[i] > joint.position_max_rad {
                    c.fail(
                        key.key("max").index(i),
                        format!(
                            "{} is above joints[{i}].position_max_rad = {}",
                            max[i], joint.position_max_rad
                        ),
                    );
                }
                // Relative tolerance: the default is computed as velocity * period.
                if delta[i] > joint.max_velocity_rad_s * period_s * (1.0 + 1e-9) {
                    c.fail(
                        key.key("max_delta_per_tick").index(i),
                        format!(
                            "{} rad per tick exceeds joints[{i}].max_velocity_rad_s = {} times the tick ({:.6} rad)",
                            delta[i],
                            joint.max_velocity_rad_s,
                            joint.max_velocity_rad_s * period_s
                        ),
                    );
                }
            }
            ActionMode::JointVelocity => {
                let v = joint.max_velocity_rad_s;
                if min[i] < -v || max[i] > v {
                    c.fail(
                        key.key(if min[i] < -v { "min" } else { "max" }).index(i),
                        format!(
                            "velocity bounds [{}, {}] exceed joints[{i}].max_velocity_rad_s = {v}",
                            min[i], max[i]
                        ),
                    );
                }
            }
            ActionMode::JointEffort => {
                let e = joint.max_effort_nm;
                if min[i] < -e || max[i] > e {
                    c.fail(
                        key.key(if min[i] < -e { "min" } else { "max" }).index(i),
                        format!(
                            "effort bounds [{}, {}] exceed joints[{i}].max_effort_nm = {e}",
                            min[i], max[i]
                        ),
                    );
                }
            }
            ActionMode::EeDelta => {}
        }
    }
    if c.problems.len() > before {
        return None;
    }
    Some(ActionSpec {
        mode: raw.mode,
        min,
        max,
        max_delta_per_tick: delta,
    })
}

/// What a policy kind reads besides its files, with the defaults of the kinds that do not.
struct PolicySettings {
    amplitude_fraction: f64,
    frequency_hz: f64,
    speed_fraction: f64,
    servo: Option<ServoConfig>,
}

/// `[policy]`: a time budget within the tick, a kind the action mode can carry, the settings
/// and files of that kind (and none of another's), and the observation it starts from.
fn validate_policy(
    c: &mut Checker,
    raw: &RawPolicy,
    config: &RawConfig,
    joints: &[JointLimits],
    observation: &ObservationSpec,
    period_s: f64,
    resolve: Resolve<'_>,
) -> Option<PolicyConfig> {
    let key = root("policy");
    let before = c.problems.len();
    let period_us = period_s * 1e6;
    let budget_us = raw.time_budget_us.unwrap_or(period_us * 0.5);
    if raw.time_budget_us.is_some() && period_us.is_finite() {
        c.range(key.key("time_budget_us"), budget_us, 0.0, period_us, false);
    }
    let mode = config.action.mode;
    check_policy_mode(c, &key, raw.kind, mode);
    let observes_positions = observation
        .offset_of(&FieldSource::JointPositions)
        .is_some();
    let kind = format!("policy.kind = {:?}", raw.kind);
    let settings = policy_settings(c, &key, raw, joints, observation, period_s, mode);
    check_unused_model_keys(c, &key, raw);
    // Hold needs positions only to hold them: in the other modes it commands zero.
    let needs_positions = match raw.kind {
        PolicyKind::JointTarget => true,
        PolicyKind::Hold => mode == ActionMode::JointPosition,
        _ => false,
    };
    if needs_positions && !observes_positions {
        c.fail(
            root("observation").key("state"),
            format!("{kind} starts from the measured joint positions; add \"joint_positions\""),
        );
    }
    check_unused_script_keys(c, &key, raw);
    if c.problems.len() > before {
        return None;
    }
    Some(PolicyConfig {
        kind: raw.kind,
        time_budget_ns: (budget_us * 1e3).max(0.0) as u64,
        amplitude_fraction: settings.amplitude_fraction,
        frequency_hz: settings.frequency_hz,
        target_rad: raw.target_rad.clone(),
        speed_fraction: settings.speed_fraction,
        servo: settings.servo,
        checkpoint_path: raw.checkpoint_path.as_deref().map(resolve),
        model_path: raw.model_path.as_deref().map(resolve),
    })
}

/// The scripted joint-space controllers cannot command end-effector displacements, and
/// those that compute positions or velocities cannot command efforts.
fn check_policy_mode(c: &mut Checker, key: &KeyPath, kind: PolicyKind, mode: ActionMode) {
    if mode == ActionMode::EeDelta
        && !matches!(
            kind,
            PolicyKind::EeServo
                | PolicyKind::Checkpoint
                | PolicyKind::Onnx
                | PolicyKind::Torchscript
        )
    {
        c.fail(
            key.key("kind"),
            format!(
                "{kind:?} is a scripted joint-space controller; it needs action.mode = \"joint_position\" or \"joint_velocity\""
            ),
        );
    }
    // The scripted sweeps and targets compute positions or velocities; sent as efforts they
    // would mean something else entirely.
    if mode == ActionMode::JointEffort
        && matches!(
            kind,
            PolicyKind::Sine | PolicyKind::JointTarget | PolicyKind::EeServo
        )
    {
        c.fail(
            key.key("kind"),
            format!(
                "{kind:?} commands joint positions or velocities, not efforts; with action.mode = \"joint_effort\" use \"hold\" (zero effort), \"checkpoint\" or \"onnx\""
            ),
        );
    }
}

/// The settings of `raw.kind`: a sweep's amplitude and a frequency below Nyquist, a target
/// within the joint limits and its speed, a servo's points and gain, a model's file.
fn policy_settings(
    c: &mut Checker,
    key: &KeyPath,
    raw: &RawPolicy,
    joints: &[JointLimits],
    observation: &ObservationSpec,
    period_s: f64,
    mode: ActionMode,
) -> PolicySettings {
    let kind = format!("policy.kind = {:?}", raw.kind);
    let mut settings = PolicySettings {
        amplitude_fraction: 0.25,
        frequency_hz: 0.2,
        speed_fraction: 0.5,
        servo: None,
    };
    match raw.kind {
        PolicyKind::Sine => {
            if let Some(a) = raw.amplitude_fraction {
                if c.range(key.key("amplitude_fraction"), a, 0.0, 1.0, false) {
                    settings.amplitude_fraction = a;
                }
            }
            if let Some(f) = raw.frequency_hz {
                let nyquist = 0.5 / period_s;
                if c.range(key.key("frequency_hz"), f, 0.0, nyquist, false) {
                    settings.frequency_hz = f;
                }
            }
        }
        PolicyKind::JointTarget => {
            check_joint_target(c, key, raw.target_rad.as_deref(), joints, &kind);
            if let Some(s) = raw.speed_fraction {
                if c.range(key.key("speed_fraction"), s, 0.0, 1.0, false) {
                    settings.speed_fraction = s;
                }
            }
        }
        PolicyKind::Hold => {}
        PolicyKind::Checkpoint => {
            if raw.checkpoint_path.is_none() {
                c.fail(
                    key.key("checkpoint_path"),
                    format!("missing: {kind} needs the folder `rlrt train` wrote"),
                );
            }
        }
        PolicyKind::Onnx | PolicyKind::Torchscript => {
            if raw.model_path.is_none() {
                let file = if raw.kind == PolicyKind::Onnx {
                    "the .onnx file"
                } else {
                    "the TorchScript file (.pt)"
                };
                c.fail(
                    key.key("model_path"),
                    format!("missing: {kind} needs {file} of the policy"),
                );
            }
        }
        PolicyKind::EeServo => {
            settings.servo = validate_servo(c, key, raw, observation, mode, &kind);
        }
    }
    settings
}

/// `target_rad`: one target per joint, each within its joint's limits.
fn check_joint_target(
    c: &mut Checker,
    key: &KeyPath,
    target_rad: Option<&[f64]>,
    joints: &[JointLimits],
    kind: &str,
) {
    match target_rad {
        None => c.fail(
            key.key("target_rad"),
            format!("missing: {kind} needs one target per joint"),
        ),
        Some(t) if t.len() != joints.len() => c.fail(
            key.key("target_rad"),
            format!(
                "has {} values, expected {} (one per joint)",
                t.len(),
                joints.len()
            ),
        ),
        Some(t) => {
            for (i, (value, joint)) in t.iter().zip(joints).enumerate() {
                if !(value.is_finite()
                    && *value >= joint.position_min_rad
                    && *value <= joint.position_max_rad)
                {
                    c.fail(
                        key.key("target_rad").index(i),
                        format!(
                            "{value} is outside joints[{i}] limits [{}, {}]",
                            joint.position_min_rad, joint.position_max_rad
                        ),
                    );
                }
            }
        }
    }
}

/// `ee_servo`: end-effector mode, `from` and `to` naming observed 3-value sensors, a gain
/// in (0, 1]. The servo's offsets in the feature vector when all of that holds.
fn validate_servo(
    c: &mut Checker,
    key: &KeyPath,
    raw: &RawPolicy,
    observation: &ObservationSpec,
    mode: ActionMode,
    kind: &str,
) -> Option<ServoConfig> {
    if mode != ActionMode::EeDelta {
        c.fail(
            key.key("kind"),
            format!(
                "{kind} commands end-effector displacements; it needs action.mode = \"ee_delta\""
            ),
        );
    }
    let mut point = |name: &str, value: &Option<String>| -> Option<usize> {
        let Some(sensor) = value else {
            c.fail(
                key.key(name),
                format!("missing: {kind} needs the name of an observed 3-value sensor"),
            );
            return None;
        };
        let found = observation.sensors.iter().position(|s| &s.name == sensor);
        let offset = found.and_then(|i| observation.offset_of(&FieldSource::Sensor(i)));
        match (found, offset) {
            (Some(i), Some(offset)) if observation.sensors[i].size == 3 => Some(offset),
            (Some(i), Some(_)) => {
                c.fail(
                    key.key(name),
                    format!(
                        "sensor {sensor:?} has {} values, expected 3 (x, y, z)",
                        observation.sensors[i].size
                    ),
                );
                None
            }
            _ => {
                c.fail(
                    key.key(name),
                    format!("{sensor:?} is not a sensor listed in observation.state"),
                );
                None
            }
        }
    };
    let from = point("from", &raw.from);
    let to = point("to", &raw.to);
    let gain = raw.gain.unwrap_or(0.1);
    let gain_ok = raw.gain.is_none() || c.range(key.key("gain"), gain, 0.0, 1.0, false);
    match (from, to, gain_ok) {
        (Some(from_offset), Some(to_offset), true) => Some(ServoConfig {
            from_offset,
            to_offset,
            gain,
        }),
        _ => None,
    }
}

/// The files of the kinds that load a model, and the points of `ee_servo`, given to
/// another kind.
fn check_unused_model_keys(c: &mut Checker, key: &KeyPath, raw: &RawPolicy) {
    if raw.kind != PolicyKind::Checkpoint {
        c.unused(
            key.key("checkpoint_path"),
            &raw.checkpoint_path,
            "policy.kind = \"checkpoint\"",
        );
    }
    if !matches!(raw.kind, PolicyKind::Onnx | PolicyKind::Torchscript) {
        c.unused(
            key.key("model_path"),
            &raw.model_path,
            "policy.kind = \"onnx\" or \"torchscript\"",
        );
    }
    if raw.kind != PolicyKind::EeServo {
        c.unused(key.key("from"), &raw.from, "policy.kind = \"ee_servo\"");
        c.unused(key.key("to"), &raw.to, "policy.kind = \"ee_servo\"");
        c.unused(key.key("gain"), &raw.gain, "policy.kind = \"ee_servo\"");
    }
}

/// The settings of the `sine` and `joint_target` scripts, given to another kind.
fn check_unused_script_keys(c: &mut Checker, key: &KeyPath, raw: &RawPolicy) {
    if raw.kind != PolicyKind::Sine {
        c.unused(
            key.key("amplitude_fraction"),
            &raw.amplitude_fraction,
            "policy.kind = \"sine\"",
        );
        c.unused(
            key.key("frequency_hz"),
            &raw.frequency_hz,
            "policy.kind = \"sine\"",
        );
    }
    if raw.kind != PolicyKind::JointTarget {
        c.unused(
            key.key("target_rad"),
            &raw.target_rad,
            "policy.kind = \"joint_target\"",
        );
        c.unused(
            key.key("speed_fraction"),
            &raw.speed_fraction,
            "policy.kind = \"joint_target\"",
        );
    }
}

/// The `[link.ros2]` table, read when `link.flavour = "ros2"`.
fn validate_ros2(
    c: &mut Checker,
    raw: &RawConfig,
    link_key: &KeyPath,
    period_s: f64,
) -> Option<Ros2Config> {
    use crate::ros2::wire::{check_name, qualify};
    let flavour = raw.link.flavour.unwrap_or(LinkFlavour::Rlrt);
    let table = link_key.key("ros2");
    let r = match (flavour, &raw.link.ros2) {
        (LinkFlavour::Rlrt, None) => return None,
        (LinkFlavour::Rlrt, Some(_)) => {
            c.fail(
                table,
                "only read when link.flavour = \"ros2\"; set it or remove the table",
            );
            return None;
        }
        (LinkFlavour::Ros2, None) => {
            c.fail(
                table,
                "missing: link.flavour = \"ros2\" needs a [link.ros2] table with command_topic and command_type",
            );
            return None;
        }
        (LinkFlavour::Ros2, Some(r)) => r,
    };
    let domain_id = r.domain_id.unwrap_or(0);
    if domain_id > 232 {
        c.fail(
            table.key("domain_id"),
            format!("got {domain_id}, expected a ROS domain id from 0 to 232"),
        );
    }
    let node_name = r.node_name.clone().unwrap_or_else(|| "rlrt".into());
    let node_ok = !node_name.is_empty()
        && !node_name.starts_with(|ch: char| ch.is_ascii_digit())
        && node_name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !node_ok {
        c.fail(
            table.key("node_name"),
            format!("got {node_name:?}, expected a ROS node name: letters, digits and '_', not starting with a digit"),
        );
    }
    let namespace = r.namespace.clone().unwrap_or_else(|| "/".into());
    if !namespace.starts_with('/') {
        c.fail(
            table.key("namespace"),
            format!(
                "got {namespace:?}, expected \"/\" or an absolute ROS namespace such as \"/arm\""
            ),
        );
    } else if let Err(why) = check_name(&namespace) {
        c.fail(table.key("namespace"), format!("got {namespace:?}: {why}"));
    }
    let topic = |c: &mut Checker, key: &str, name: &str| -> String {
        if name.starts_with('~') {
            c.fail(
                table.key(key),
                format!(
                    "got {name:?}: private names ('~') are not supported; give the topic in full"
                ),
            );
        } else if let Err(why) = check_name(name) {
            c.fail(table.key(key), format!("got {name:?}: {why}"));
        } else if name == "/" {
            c.fail(table.key(key), "got \"/\", expected a topic name");
        }
        qualify(&namespace, name)
    };
    let state_topic = topic(
        c,
        "state_topic",
        r.state_topic.as_deref().unwrap_or("joint_states"),
    );
    let command_topic = topic(c, "command_topic", &r.command_topic);
    let estop_topic = r.estop_topic.as_deref().map(|t| topic(c, "estop_topic", t));
    let command_type = match r.command_type.as_str() {
        "std_msgs/msg/Float64MultiArray" => Some(Ros2Command::Float64MultiArray),
        "trajectory_msgs/msg/JointTrajectory" => Some(Ros2Command::JointTrajectory),
        other => {
            c.fail(
                table.key("command_type"),
                format!("got {other:?}, expected \"std_msgs/msg/Float64MultiArray\" (forward_command_controller, JointGroup*Controller) or \"trajectory_msgs/msg/JointTrajectory\" (joint_trajectory_controller)"),
            );
            None
        }
    };
    let mut time_from_start_ns = if period_s.is_finite() {
        (period_s * 1e9).round() as u64
    } else {
        0
    };
    if let Some(ms) = r.trajectory_time_from_start_ms {
        if command_type != Some(Ros2Command::JointTrajectory) {
            c.unused(
                table.key("trajectory_time_from_start_ms"),
                &Some(ms),
                "command_type = \"trajectory_msgs/msg/JointTrajectory\"",
            );
        } else if c.range(
            table.key("trajectory_time_from_start_ms"),
            ms,
            0.0,
            10_000.0,
            false,
        ) {
            time_from_start_ns = (ms * 1e6).round() as u64;
        }
    }
    if raw.action.mode == ActionMode::EeDelta {
        c.fail(
            root("action").key("mode"),
            "action.mode = \"ee_delta\" cannot drive a ros2_control joint controller; use joint_position, joint_velocity or joint_effort with a ros2 link",
        );
    }
    if command_type == Some(Ros2Command::JointTrajectory)
        && raw.action.mode == ActionMode::JointEffort
    {
        c.fail(
            table.key("command_type"),
            "joint_trajectory_controller does not take effort-only points; command action.mode = \"joint_effort\" with \"std_msgs/msg/Float64MultiArray\" (an effort controller)",
        );
    }
    if !raw.observation.sensors.is_empty() {
        c.fail(
            root("observation").key("sensors"),
            "a ros2 link carries joint states and cameras only: sensor values have no topic yet; remove [[observation.sensors]]",
        );
    }
    let mut cameras = Vec::new();
    for (i, cam) in r.cameras.iter().enumerate() {
        let key = table.key("cameras").index(i);
        if !raw.observation.cameras.iter().any(|o| o.name == cam.name) {
            c.fail(
                key.key("name"),
                format!("no camera named {:?} in [[observation.cameras]]", cam.name),
            );
        }
        let compressed = match cam.msg_type.as_str() {
            "sensor_msgs/msg/Image" => false,
            "sensor_msgs/msg/CompressedImage" => true,
            other => {
                c.fail(
                    key.key("type"),
                    format!("got {other:?}, expected \"sensor_msgs/msg/Image\" or \"sensor_msgs/msg/CompressedImage\" (JPEG or PNG)"),
                );
                false
            }
        };
        let topic = topic(c, "cameras", &cam.topic);
        cameras.push((
            cam.name.clone(),
            Ros2Camera {
                name: cam.name.clone(),
                topic,
                compressed,
            },
        ));
    }
    // In the observation's order, each camera once.
    let mut ordered = Vec::new();
    for (i, o) in raw.observation.cameras.iter().enumerate() {
        let mut found = cameras.iter().filter(|(n, _)| *n == o.name);
        match (found.next(), found.next()) {
            (Some((_, cam)), None) => ordered.push(cam.clone()),
            (None, _) => c.fail(
                root("observation").key("cameras").index(i),
                format!(
                    "camera {:?} has no topic: add a [[link.ros2.cameras]] entry with name = {:?}",
                    o.name, o.name
                ),
            ),
            (Some(_), Some(_)) => c.fail(
                table.key("cameras"),
                format!("camera {:?} is given two topics", o.name),
            ),
        }
    }
    Some(Ros2Config {
        domain_id,
        node_name,
        namespace,
        state_topic,
        command_topic,
        command_type: command_type.unwrap_or(Ros2Command::Float64MultiArray),
        trajectory_time_from_start_ns: time_from_start_ns,
        estop_topic,
        cameras: ordered,
    })
}
