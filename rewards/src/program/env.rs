//! The environment a reward program sees: typed names built from a validated hw-config.
//!
//! One [`Environment`] is the single source of three things that must agree: the compact
//! text a language model reads (`describe`), the variables bound when a program runs
//! (`bind`), and the states the checker samples (`sample_states`). A name that appears in
//! the description is exactly a name a program may use.

use rhai::{Array, Dynamic, Scope};
use rlrt_runtime::config::{ActionMode, MAX_ACTION, MAX_JOINTS, MAX_SENSOR_VALUES};
use rlrt_runtime::{Observation, RobotConfig};

use super::helpers::HELPERS;

/// Half-width (in the sensor's own unit) of the box sensor values are sampled from when a
/// program is checked. A metre around the robot's base covers the tabletop arms rlrt ships.
pub const DEFAULT_SENSOR_RANGE: f64 = 1.0;

/// What kind of value a name holds, for the description and the binding.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    JointPositions,
    JointVelocities,
    JointEfforts,
    /// Offset and length in the observation's sensor values.
    Sensor {
        offset: usize,
        len: usize,
    },
    PreviousAction,
    JointPositionMin,
    JointPositionMax,
    Dt,
}

/// One name a program can read.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The name in programs (a sensor's config name with `-` replaced by `_`).
    pub name: String,
    /// Rhai type as the description shows it, such as `array[3] of float` or `float`.
    pub type_text: String,
    /// Unit, such as `m` or `rad/s`; empty when the value has none.
    pub unit: String,
    /// One line saying what the value is.
    pub doc: String,
    source: Source,
}

/// The state a program is evaluated on: one observation and the command sent before it.
/// Fixed-size and `Copy` like the runtime's messages, so a reward thread can keep a ring of
/// them without allocating.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProgramState {
    pub observation: Observation,
    /// The previous command's values (the first `action_len` are used).
    pub previous_action: [f64; MAX_ACTION],
    pub action_len: usize,
}

impl ProgramState {
    /// A state from an observation and the values of the command sent before it.
    pub fn new(observation: Observation, previous_action: &[f64]) -> Self {
        let mut action = [0.0; MAX_ACTION];
        let len = previous_action.len().min(MAX_ACTION);
        action[..len].copy_from_slice(&previous_action[..len]);
        Self {
            observation,
            previous_action: action,
            action_len: len,
        }
    }
}

/// Why a config cannot be turned into an environment.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EnvironmentError {
    #[error(
        "sensor {sensor:?} is bound as `{name}`, which clashes with {what}; rename the sensor"
    )]
    NameClash {
        sensor: String,
        name: String,
        what: String,
    },
}

/// The typed environment of one robot config.
#[derive(Clone, Debug)]
pub struct Environment {
    robot: String,
    fields: Vec<Field>,
    dof: usize,
    sensor_values: usize,
    action_len: usize,
    dt_s: f64,
    joint_min: Vec<f64>,
    joint_max: Vec<f64>,
    joint_max_velocity: Vec<f64>,
    joint_max_effort: Vec<f64>,
    action_min: Vec<f64>,
    action_max: Vec<f64>,
    joint_names: Vec<String>,
    action_mode: ActionMode,
}

impl Environment {
    /// Builds the environment of a validated config.
    pub fn from_config(config: &RobotConfig) -> Result<Self, EnvironmentError> {
        let dof = config.dof();
        let joint_names: Vec<String> = config.joints.iter().map(|j| j.name.clone()).collect();
        let joints = joint_names.join(", ");
        let array = |n: usize| format!("array[{n}] of float");
        let mut fields = vec![
            Field {
                name: "joint_positions".into(),
                type_text: array(dof),
                unit: "rad".into(),
                doc: format!("measured joint angles, in order: {joints}"),
                source: Source::JointPositions,
            },
            Field {
                name: "joint_velocities".into(),
                type_text: array(dof),
                unit: "rad/s".into(),
                doc: "measured joint velocities, same order".into(),
                source: Source::JointVelocities,
            },
            Field {
                name: "joint_efforts".into(),
                type_text: array(dof),
                unit: "N m".into(),
                doc: "measured joint torques, same order".into(),
                source: Source::JointEfforts,
            },
            Field {
                name: "joint_position_min".into(),
                type_text: array(dof),
                unit: "rad".into(),
                doc: "lower joint limits (constant)".into(),
                source: Source::JointPositionMin,
            },
            Field {
                name: "joint_position_max".into(),
                type_text: array(dof),
                unit: "rad".into(),
                doc: "upper joint limits (constant)".into(),
                source: Source::JointPositionMax,
            },
        ];
        let (action_unit, action_doc) = match config.action.mode {
            ActionMode::JointPosition => ("rad", "joint position targets, one per joint"),
            ActionMode::JointVelocity => ("rad/s", "joint velocity targets, one per joint"),
            ActionMode::EeDelta => (
                "m",
                "end-effector displacement per tick: x, y, z (then rotation in rad, gripper)",
            ),
            ActionMode::JointEffort => ("N m", "joint efforts, one per joint"),
        };
        fields.push(Field {
            name: "previous_action".into(),
            type_text: array(config.action.len()),
            unit: action_unit.into(),
            doc: format!("the command sent on the previous tick: {action_doc}"),
            source: Source::PreviousAction,
        });
        fields.push(Field {
            name: "dt".into(),
            type_text: "float".into(),
            unit: "s".into(),
            doc: "control period (time between two ticks)".into(),
            source: Source::Dt,
        });
        for sensor in &config.observation.sensors {
            let name = sensor.name.replace('-', "_");
            let clash = if fields.iter().any(|f| f.name == name) {
                Some("another environment name".to_owned())
            } else if HELPERS.iter().any(|h| h.name == name) {
                Some(format!("the helper function `{name}`"))
            } else if !is_identifier(&name) {
                Some("the language's keywords or identifier rules".to_owned())
            } else {
                None
            };
            if let Some(what) = clash {
                return Err(EnvironmentError::NameClash {
                    sensor: sensor.name.clone(),
                    name,
                    what,
                });
            }
            let unit = sensor.unit.clone().unwrap_or_default();
            let doc = if sensor.size == 3 && unit == "m" {
                "position x, y, z in the world frame (z up)".to_owned()
            } else {
                format!("sensor `{}` ({} values)", sensor.name, sensor.size)
            };
            fields.push(Field {
                name,
                type_text: array(sensor.size),
                unit,
                doc,
                source: Source::Sensor {
                    offset: sensor.offset,
                    len: sensor.size,
                },
            });
        }
        Ok(Self {
            robot: config.name.clone(),
            fields,
            dof,
            sensor_values: config.observation.sensor_values,
            action_len: config.action.len(),
            dt_s: config.period_s(),
            joint_min: config.joints.iter().map(|j| j.position_min_rad).collect(),
            joint_max: config.joints.iter().map(|j| j.position_max_rad).collect(),
            joint_max_velocity: config.joints.iter().map(|j| j.max_velocity_rad_s).collect(),
            joint_max_effort: config.joints.iter().map(|j| j.max_effort_nm).collect(),
            action_min: config.action.min.clone(),
            action_max: config.action.max.clone(),
            joint_names,
            action_mode: config.action.mode,
        })
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Number of joints.
    pub fn dof(&self) -> usize {
        self.dof
    }

    /// Number of action values.
    pub fn action_len(&self) -> usize {
        self.action_len
    }

    pub fn robot(&self) -> &str {
        &self.robot
    }

    /// True when `name` is a variable this environment binds.
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// A state with every value zero (the previous action too).
    pub fn zero_state(&self) -> ProgramState {
        ProgramState::new(
            Observation::empty(self.dof, self.sensor_values),
            &vec![0.0; self.action_len],
        )
    }

    /// Sets a named sensor's values in a state; false when the name is not a sensor of this
    /// environment or the length differs.
    pub fn set_sensor(&self, state: &mut ProgramState, name: &str, values: &[f64]) -> bool {
        match self
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.source)
        {
            Some(Source::Sensor { offset, len }) if *len == values.len() => {
                state.observation.sensors[*offset..offset + len].copy_from_slice(values);
                true
            }
            _ => false,
        }
    }

    /// Values of a named sensor in a state.
    pub fn sensor<'a>(&self, state: &'a ProgramState, name: &str) -> Option<&'a [f64]> {
        match self
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.source)
        {
            Some(Source::Sensor { offset, len }) => {
                Some(&state.observation.sensors[*offset..offset + len])
            }
            _ => None,
        }
    }

    /// Names of the sensors, in config order.
    pub fn sensor_names(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|f| matches!(f.source, Source::Sensor { .. }))
            .map(|f| f.name.as_str())
    }

    /// Indices of the fields named in `names` (the ones a program reads), in field order.
    pub(crate) fn field_indices<'a>(
        &self,
        names: impl Iterator<Item = &'a str> + Clone,
    ) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|&i| names.clone().any(|n| n == self.fields[i].name))
            .collect()
    }

    /// Binds the fields `used` (indices from [`Self::field_indices`]) into `scope` for one
    /// call.
    ///
    /// Binding is most of the fixed cost of a call, so the scope is kept between calls:
    /// the first call pushes the fields, later calls drop whatever the program declared
    /// (`rewind`) and overwrite the fields' values in place, allocating nothing when the
    /// shapes are unchanged. A program cannot carry anything over: every field is
    /// rewritten, and a field whose shape the program changed is replaced.
    pub(crate) fn bind(&self, state: &ProgramState, used: &[usize], scope: &mut Scope<'static>) {
        let value = |i: usize| -> Option<&[f64]> {
            Some(self.field_values(state, i)).filter(|_| !self.field_is_scalar(i))
        };
        if scope.len() < used.len() {
            scope.clear();
            for &i in used {
                let field = &self.fields[i];
                let value = value(i).map_or(Dynamic::from_float(self.dt_s), floats);
                scope.push_dynamic(field.name.as_str(), value);
            }
            return;
        }
        scope.rewind(used.len());
        for &i in used {
            let field = &self.fields[i];
            let Some(slot) = scope.get_mut(&field.name) else {
                continue;
            };
            match value(i) {
                None => *slot = Dynamic::from_float(self.dt_s),
                Some(v) => write_floats(slot, v),
            }
        }
    }

    /// The values of field `index` in `state`; one value for a scalar (`dt`).
    pub(crate) fn field_values<'a>(&'a self, state: &'a ProgramState, index: usize) -> &'a [f64] {
        let obs = &state.observation;
        match &self.fields[index].source {
            Source::JointPositions => &obs.joint_positions[..self.dof],
            Source::JointVelocities => &obs.joint_velocities[..self.dof],
            Source::JointEfforts => &obs.joint_efforts[..self.dof],
            Source::Sensor { offset, len } => &obs.sensors[*offset..offset + len],
            Source::PreviousAction => &state.previous_action[..self.action_len],
            Source::JointPositionMin => &self.joint_min,
            Source::JointPositionMax => &self.joint_max,
            Source::Dt => std::slice::from_ref(&self.dt_s),
        }
    }

    /// True when field `index` is a float rather than an array of floats.
    pub(crate) fn field_is_scalar(&self, index: usize) -> bool {
        self.fields[index].source == Source::Dt
    }

    /// Number of values of field `index` (1 for a scalar).
    pub(crate) fn field_len(&self, index: usize) -> usize {
        match &self.fields[index].source {
            Source::JointPositions | Source::JointVelocities | Source::JointEfforts => self.dof,
            Source::JointPositionMin | Source::JointPositionMax => self.dof,
            Source::Sensor { len, .. } => *len,
            Source::PreviousAction => self.action_len,
            Source::Dt => 1,
        }
    }

    /// A scope with every name bound to a placeholder, for compiling in strict-variables
    /// mode. The names are plain variables, not constants, so that the optimizer cannot
    /// fold placeholder values into the compiled program.
    pub fn compile_scope(&self) -> Scope<'static> {
        let mut scope = Scope::new();
        for field in &self.fields {
            scope.push_dynamic(field.name.as_str(), Dynamic::UNIT);
        }
        scope
    }

    /// States for the dry run before a program is accepted, reproducible from `seed`.
    ///
    /// The first few are the corners where hand-written and generated rewards most often
    /// break: everything zero, every same-sized sensor at the same point (the end effector
    /// exactly on the target, so `1 / distance` is infinite), joints at their lower and at
    /// their upper limits. The rest are uniform: joints within their limits, velocities and
    /// efforts within theirs, sensors within `sensor_range` of the origin, previous actions
    /// within the action bounds.
    pub fn sample_states(&self, count: usize, seed: u64, sensor_range: f64) -> Vec<ProgramState> {
        let mut rng = SplitMix64(seed);
        let mut states = Vec::with_capacity(count);
        let zero = self.zero_state();
        states.push(zero);
        let random = |rng: &mut SplitMix64| {
            let mut s = zero;
            let obs = &mut s.observation;
            for j in 0..self.dof {
                obs.joint_positions[j] = rng.uniform(self.joint_min[j], self.joint_max[j]);
                let v = self.joint_max_velocity[j];
                obs.joint_velocities[j] = rng.uniform(-v, v);
                let e = self.joint_max_effort[j];
                obs.joint_efforts[j] = rng.uniform(-e, e);
            }
            for value in &mut obs.sensors[..self.sensor_values] {
                *value = rng.uniform(-sensor_range, sensor_range);
            }
            for a in 0..self.action_len {
                s.previous_action[a] = rng.uniform(self.action_min[a], self.action_max[a]);
            }
            s
        };
        // Coincident sensors: copy the first sensor of each size onto the others.
        let mut coincident = random(&mut rng);
        let sensors: Vec<(usize, usize)> = self
            .fields
            .iter()
            .filter_map(|f| match f.source {
                Source::Sensor { offset, len } => Some((offset, len)),
                _ => None,
            })
            .collect();
        for (i, &(offset, len)) in sensors.iter().enumerate() {
            if let Some(&(first, _)) = sensors[..i].iter().find(|(_, l)| *l == len) {
                coincident
                    .observation
                    .sensors
                    .copy_within(first..first + len, offset);
            }
        }
        states.push(coincident);
        for at_max in [false, true] {
            let mut s = random(&mut rng);
            let limits = if at_max {
                &self.joint_max
            } else {
                &self.joint_min
            };
            s.observation.joint_positions[..self.dof].copy_from_slice(limits);
            states.push(s);
        }
        while states.len() < count {
            states.push(random(&mut rng));
        }
        states.truncate(count.max(1));
        states
    }

    /// The compact text a language model reads: every name with its type, unit and one
    /// line, then every helper function.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "Robot `{}`: {} joints ({}), action mode {}, control period dt = {} s.\n\n",
            self.robot,
            self.dof,
            self.joint_names.join(", "),
            match self.action_mode {
                ActionMode::JointPosition => "joint_position",
                ActionMode::JointVelocity => "joint_velocity",
                ActionMode::EeDelta => "ee_delta",
                ActionMode::JointEffort => "joint_effort",
            },
            self.dt_s
        );
        text.push_str("Variables (read-only, bound on every call):\n");
        for f in &self.fields {
            let unit = if f.unit.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.unit)
            };
            text.push_str(&format!(
                "- {}: {}{} - {}\n",
                f.name, f.type_text, unit, f.doc
            ));
        }
        text.push_str("\nHelper functions (vectors are arrays of floats):\n");
        for h in HELPERS {
            text.push_str(&format!("- {} - {}\n", h.signature, h.doc));
        }
        text.push_str(
            "Also available: abs, sqrt, exp, ln, sin, cos, tanh, min(a, b), max(a, b), floor, \
             round, v.len(), a ** b (power), and the usual + - * / operators on floats.\n",
        );
        text
    }
}

/// True for a name the language accepts as a variable.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
}

/// Words the language reserves; a sensor must not be named like one.
const KEYWORDS: &[&str] = &[
    "true",
    "false",
    "let",
    "const",
    "if",
    "else",
    "switch",
    "do",
    "while",
    "until",
    "loop",
    "for",
    "in",
    "continue",
    "break",
    "return",
    "throw",
    "try",
    "catch",
    "fn",
    "private",
    "import",
    "export",
    "as",
    "this",
    "is_shared",
    "global",
    "Fn",
    "call",
    "curry",
    "type_of",
    "print",
    "debug",
    "eval",
    "is_def_fn",
    "is_def_var",
    "var",
    "static",
    "shared",
    "with",
    "module",
    "package",
    "spawn",
    "thread",
    "go",
    "sync",
    "async",
    "await",
    "yield",
    "new",
    "use",
    "super",
    "public",
    "protected",
    "match",
    "case",
    "default",
    "void",
    "null",
    "nil",
    "goto",
    "exit",
];

/// Overwrites an array of floats in place when it still has the right length.
fn write_floats(slot: &mut Dynamic, values: &[f64]) {
    if let Some(mut array) = slot.write_lock::<Array>() {
        if array.len() == values.len() {
            for (d, v) in array.iter_mut().zip(values) {
                *d = Dynamic::from_float(*v);
            }
            return;
        }
    }
    *slot = floats(values);
}

fn floats(values: &[f64]) -> Dynamic {
    let array: Array = values.iter().map(|&v| Dynamic::from_float(v)).collect();
    Dynamic::from_array(array)
}

/// A small seeded generator (SplitMix64), enough for reproducible dry-run states without a
/// dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        rlrt_runtime::rng::uniform(&mut self.0, lo, hi)
    }
}

// The runtime's fixed sizes bound what an environment binds.
const _: () = assert!(MAX_JOINTS <= 1024 && MAX_SENSOR_VALUES <= 1024);

#[cfg(test)]
mod tests {
    use super::*;

    fn reach() -> RobotConfig {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../hw-configs/reach-arm.toml");
        rlrt_runtime::config::load(path).unwrap()
    }

    #[test]
    fn fields_follow_the_config() {
        let env = Environment::from_config(&reach()).unwrap();
        for name in ["joint_positions", "ee_position", "target_position", "dt"] {
            assert!(env.has_field(name), "{name}");
        }
        assert!(!env.has_field("block_position"));
        let text = env.describe();
        assert!(
            text.contains("- ee_position: array[3] of float [m]"),
            "{text}"
        );
        assert!(text.contains("distance(a, b)"), "{text}");
    }

    #[test]
    fn samples_are_reproducible_and_within_limits() {
        let config = reach();
        let env = Environment::from_config(&config).unwrap();
        let a = env.sample_states(50, 7, 1.0);
        assert_eq!(a, env.sample_states(50, 7, 1.0));
        assert_ne!(a, env.sample_states(50, 8, 1.0));
        for s in &a {
            for (q, j) in s.observation.positions().iter().zip(&config.joints) {
                assert!((j.position_min_rad..=j.position_max_rad).contains(q));
            }
        }
        // The coincident case puts the target on the end effector.
        assert_eq!(
            env.sensor(&a[1], "ee_position"),
            env.sensor(&a[1], "target_position")
        );
    }
}
