//! MuJoCo as an rlrt robot: a task's MJCF model, driven by the commands of a hw-config,
//! reporting its joints and named sensors, rendering its cameras offscreen (EGL; Mesa's
//! software renderer works without a GPU), and judging success with the task's
//! ground-truth test.
//!
//! The hw-config and the task meet by name: every config joint must be a hinge or slide
//! joint of the model driven by a position actuator, every config sensor a task sensor,
//! every config camera a model camera. Commands map to actuator controls:
//! `joint_position` sets the targets, `joint_velocity` sets targets one control period
//! ahead, and `ee_delta` (x, y, z) moves the task's end-effector site by damped least
//! squares on its Jacobian, within the joint limits.

pub mod gymnasium;
pub mod task;

use std::sync::Arc;

use mujoco_rs::prelude::*;
use mujoco_rs::renderer::MjRenderer;
use rlrt_runtime::config::{ActionMode, ImageEncoding};
use rlrt_runtime::{Command, Observation, RobotConfig};

use rlrt_runtime::rng::uniform;

use crate::plant::{Plant, Verdict};
use gymnasium::GymEnv;
use task::{Axes, ModelSource, PointRef, TaskError, TaskSource};

/// A point of the model, resolved to an id.
#[derive(Clone, Copy, Debug)]
enum Point {
    Site(usize),
    Body(usize),
}

#[derive(Clone, Copy, Debug)]
struct JointMap {
    qpos: usize,
    dof: usize,
    actuator: usize,
    min: f64,
    max: f64,
}

/// How a reset places one body.
#[derive(Clone, Debug)]
struct Placement {
    /// Index into mocap_pos, or the qpos address of the body's free joint.
    target: PlaceTarget,
    ranges: [Option<[f64; 2]>; 3],
    away_from: Option<(usize, f64)>,
}

#[derive(Clone, Copy, Debug)]
enum PlaceTarget {
    Mocap(usize),
    FreeJoint(usize),
}

struct Camera {
    renderer: MjRenderer,
}

/// Where a sensor of the hw-config comes from.
#[derive(Clone, Copy, Debug)]
enum SensorSource {
    /// The world position of a site or body (3 values).
    Point(Point),
    /// Gymnasium's observation vector.
    Gym,
}

/// The state of a Gymnasium task between control steps.
#[derive(Clone, Debug)]
struct Gym {
    env: GymEnv,
    /// The last command, in hw-config joint order (Gymnasium's action).
    action: Vec<f64>,
    reward: f64,
    terminated: bool,
}

/// A MuJoCo model serving as the robot of a hw-config.
pub struct MujocoSim {
    model: Arc<MjModel>,
    data: MjData<Arc<MjModel>>,
    task_name: String,
    episode_seconds: f64,
    keyframe: Option<usize>,
    joints: Vec<JointMap>,
    mode: ActionMode,
    period_s: f64,
    timestep_s: f64,
    ee: Option<(usize, f64)>,
    joint_noise_rad: f64,
    placements: Vec<Placement>,
    sensors: Vec<SensorSource>,
    success: Option<(Point, Point, Axes, f64)>,
    gym: Option<Gym>,
    cameras: Vec<Camera>,
    jacobian: Vec<f64>,
    out_of_limit: u64,
}

fn find(model: &MjModel, kind: MjtObjBase, name: &str) -> Option<usize> {
    model.name_to_id(kind, name)
}

/// Names of all objects of one kind, for messages.
fn names(model: &MjModel, kind: MjtObjBase, count: usize) -> String {
    let list: Vec<String> = (0..count)
        .filter_map(|id| model.id_to_name(kind, id).map(str::to_owned))
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Why a body could not be placed by hand.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("no body {0:?}")]
    NoBody(String),
    #[error("body {0:?} is neither mocap nor free")]
    Fixed(String),
}

/// The task's MJCF model, from its file or its built-in text.
fn load_model(source: &TaskSource) -> Result<MjModel, TaskError> {
    match &source.model {
        ModelSource::Path(path) => {
            MjModel::from_xml(path).map_err(|e| source.unloadable(path.display().to_string(), e))
        }
        ModelSource::Text { name, xml } => {
            MjModel::from_xml_string(xml).map_err(|e| source.unloadable((*name).to_owned(), e))
        }
    }
}

/// Resolves what a hw-config and a task name (joints, sensors, sites, bodies, keyframes,
/// cameras) to ids of the model, and checks that the model can play the hw-config. A name
/// the model lacks is reported with the names it has.
struct Lookup<'a> {
    model: &'a MjModel,
    config: &'a RobotConfig,
    source: &'a TaskSource,
}

impl Lookup<'_> {
    fn bad(&self, message: String) -> TaskError {
        self.source.invalid(message)
    }

    /// The model steps per control period: a whole number of them.
    fn control_substeps(&self, timestep_s: f64) -> Result<f64, TaskError> {
        let config = self.config;
        let period_s = config.period_s();
        let substeps = (period_s / timestep_s).round();
        if substeps < 1.0 || (substeps * timestep_s - period_s).abs() > 1e-9 * period_s.max(1.0) {
            return Err(self.bad(format!(
                "the model's timestep ({} s) does not divide the control period of {} ({} s at {} Hz); \
                 change <option timestep> or robot.control_rate_hz",
                timestep_s,
                config.source.display(),
                period_s,
                config.control_rate_hz
            )));
        }
        Ok(substeps)
    }

    /// Every hw-config joint: a hinge or slide joint of the model with an actuator on it (a
    /// `<motor>` when the config commands efforts).
    fn joints(&self) -> Result<Vec<JointMap>, TaskError> {
        let (model, config) = (self.model, self.config);
        let (njnt, nu) = (model.ffi().njnt as usize, model.ffi().nu as usize);
        let mut joints = Vec::with_capacity(config.dof());
        for (i, joint) in config.joints.iter().enumerate() {
            let id = find(model, MjtObjBase::mjOBJ_JOINT, &joint.name).ok_or_else(|| {
                self.bad(format!(
                    "{} joints[{i}] is {:?}, which the model has no joint of (joints: {})",
                    config.source.display(),
                    joint.name,
                    names(model, MjtObjBase::mjOBJ_JOINT, njnt)
                ))
            })?;
            let kind = model.jnt_type()[id];
            if !matches!(kind, MjtJoint::mjJNT_HINGE | MjtJoint::mjJNT_SLIDE) {
                return Err(self.bad(format!(
                    "joint {:?} is not a hinge or slide joint",
                    joint.name
                )));
            }
            let actuator = (0..nu)
                .find(|&a| {
                    model.actuator_trntype()[a] == MjtTrn::mjTRN_JOINT
                        && model.actuator_trnid()[a][0] as usize == id
                })
                .ok_or_else(|| {
                    self.bad(format!(
                        "joint {:?} has no actuator; add a <{}> actuator on it",
                        joint.name,
                        if config.action.mode == ActionMode::JointEffort {
                            "motor"
                        } else {
                            "position"
                        }
                    ))
                })?;
            let motor = model.actuator_gaintype()[actuator] == MjtGain::mjGAIN_FIXED
                && model.actuator_biastype()[actuator] == MjtBias::mjBIAS_NONE;
            if config.action.mode == ActionMode::JointEffort && !motor {
                return Err(self.bad(format!(
                    "{} commands joint efforts (action.mode = \"joint_effort\"), but the actuator \
                     of joint {:?} is not a <motor> (fixed gain, no bias)",
                    config.source.display(),
                    joint.name
                )));
            }
            joints.push(JointMap {
                qpos: model.jnt_qposadr()[id] as usize,
                dof: model.jnt_dofadr()[id] as usize,
                actuator,
                min: joint.position_min_rad,
                max: joint.position_max_rad,
            });
        }
        Ok(joints)
    }

    /// The site or body a task's `key` names (exactly one of them).
    fn point(&self, key: &str, r: &PointRef) -> Result<Point, TaskError> {
        let model = self.model;
        match (&r.site, &r.body) {
            (Some(site), None) => find(model, MjtObjBase::mjOBJ_SITE, site)
                .map(Point::Site)
                .ok_or_else(|| {
                    self.bad(format!(
                        "`{key}.site`: no site {site:?} in the model (sites: {})",
                        names(model, MjtObjBase::mjOBJ_SITE, model.ffi().nsite as usize)
                    ))
                }),
            (None, Some(body)) => find(model, MjtObjBase::mjOBJ_BODY, body)
                .map(Point::Body)
                .ok_or_else(|| {
                    self.bad(format!(
                        "`{key}.body`: no body {body:?} in the model (bodies: {})",
                        names(model, MjtObjBase::mjOBJ_BODY, model.ffi().nbody as usize)
                    ))
                }),
            _ => Err(self.bad(format!("`{key}`: give exactly one of site or body"))),
        }
    }

    /// A Gymnasium task runs at its own frame skip and commands every motor as efforts.
    fn check_gymnasium(
        &self,
        env: GymEnv,
        substeps: f64,
        timestep_s: f64,
    ) -> Result<(), TaskError> {
        let config = self.config;
        let nu = self.model.ffi().nu as usize;
        let frame_skip = substeps as usize;
        if frame_skip != env.frame_skip() {
            let rate = 1.0 / (env.frame_skip() as f64 * timestep_s);
            return Err(self.bad(format!(
                "{} runs {} physics steps per control step at {} Hz; {} takes {} \
                 (robot.control_rate_hz = {rate})",
                config.source.display(),
                frame_skip,
                config.control_rate_hz,
                env.id(),
                env.frame_skip()
            )));
        }
        if config.action.mode != ActionMode::JointEffort || config.dof() != nu {
            return Err(self.bad(format!(
                "{} must command every motor of {} as action.mode = \"joint_effort\" \
                 (the model has {nu} motors; the config has {} joints in mode {:?})",
                config.source.display(),
                env.id(),
                config.dof(),
                config.action.mode
            )));
        }
        Ok(())
    }

    /// Where each hw-config sensor comes from, in hw-config order: a task sensor (a 3-value
    /// position), or Gymnasium's observation in a Gymnasium task (`gym`).
    fn sensors(&self, gym: bool) -> Result<Vec<SensorSource>, TaskError> {
        let (config, task) = (self.config, &self.source.file);
        let mut sensors = Vec::new();
        for spec in &config.observation.sensors {
            if gym && spec.name == gymnasium::OBSERVATION_SENSOR {
                let ffi = self.model.ffi();
                let len = GymEnv::observation_len(ffi.nq as usize, ffi.nv as usize);
                if spec.size != len {
                    return Err(self.bad(format!(
                        "sensor {:?} is Gymnasium's observation, {len} values for this model; {} \
                         declares size {}",
                        spec.name,
                        config.source.display(),
                        spec.size
                    )));
                }
                sensors.push(SensorSource::Gym);
                continue;
            }
            let (index, sensor) = task
                .sensors
                .iter()
                .enumerate()
                .find(|(_, s)| s.name == spec.name)
                .ok_or_else(|| {
                    let mut provided: Vec<&str> =
                        task.sensors.iter().map(|s| s.name.as_str()).collect();
                    if gym {
                        provided.push(gymnasium::OBSERVATION_SENSOR);
                    }
                    self.bad(format!(
                        "{} declares sensor {:?}, which this task does not provide (task sensors: {})",
                        config.source.display(),
                        spec.name,
                        if provided.is_empty() { "none".to_owned() } else { provided.join(", ") }
                    ))
                })?;
            if spec.size != 3 {
                return Err(self.bad(format!(
                    "sensor {:?} gives 3 values (a position); {} declares size {}",
                    spec.name,
                    config.source.display(),
                    spec.size
                )));
            }
            sensors.push(SensorSource::Point(self.point(
                &format!("sensors[{index}]"),
                &PointRef {
                    site: sensor.site.clone(),
                    body: sensor.body.clone(),
                },
            )?));
        }
        Ok(sensors)
    }

    /// The task's ground-truth success test, if it has one.
    fn success(&self) -> Result<Option<(Point, Point, Axes, f64)>, TaskError> {
        match &self.source.file.success {
            Some(s) => Ok(Some((
                self.point("success.from", &s.from)?,
                self.point("success.to", &s.to)?,
                s.axes,
                s.below_m,
            ))),
            None => Ok(None),
        }
    }

    /// The end-effector site and its damping, which `ee_delta` (x, y, z) needs.
    fn end_effector(&self) -> Result<Option<(usize, f64)>, TaskError> {
        let (model, config) = (self.model, self.config);
        let ee = match &self.source.file.end_effector {
            Some(ee) => Some((
                find(model, MjtObjBase::mjOBJ_SITE, &ee.site).ok_or_else(|| {
                    self.bad(format!(
                        "`end_effector.site`: no site {:?} in the model (sites: {})",
                        ee.site,
                        names(model, MjtObjBase::mjOBJ_SITE, model.ffi().nsite as usize)
                    ))
                })?,
                ee.damping,
            )),
            None => None,
        };
        if config.action.mode == ActionMode::EeDelta {
            if ee.is_none() {
                return Err(self.bad(format!(
                    "{} uses action.mode = \"ee_delta\"; the task needs an [end_effector] site",
                    config.source.display()
                )));
            }
            if config.action.len() != 3 {
                return Err(self.bad(format!(
                    "the simulator moves the end effector in x, y, z: action.min/max in {} need 3 values, not {}",
                    config.source.display(),
                    config.action.len()
                )));
            }
        }
        Ok(ee)
    }

    /// How a reset places each `[[reset.place]]` body: a mocap body or a body with one free
    /// joint, kept away from a body placed before it.
    fn placements(&self) -> Result<Vec<Placement>, TaskError> {
        let model = self.model;
        let nbody = model.ffi().nbody as usize;
        let mut placements: Vec<Placement> = Vec::new();
        let mut placed_bodies: Vec<(String, usize)> = Vec::new();
        for (i, place) in self.source.file.reset.place.iter().enumerate() {
            let body = find(model, MjtObjBase::mjOBJ_BODY, &place.body).ok_or_else(|| {
                self.bad(format!(
                    "`reset.place[{i}].body`: no body {:?} in the model (bodies: {})",
                    place.body,
                    names(model, MjtObjBase::mjOBJ_BODY, nbody)
                ))
            })?;
            let mocap = model.body_mocapid()[body];
            let target = if mocap >= 0 {
                PlaceTarget::Mocap(mocap as usize)
            } else {
                let first = model.body_jntadr()[body];
                let count = model.body_jntnum()[body];
                if count == 1 && model.jnt_type()[first as usize] == MjtJoint::mjJNT_FREE {
                    PlaceTarget::FreeJoint(model.jnt_qposadr()[first as usize] as usize)
                } else {
                    return Err(self.bad(format!(
                        "`reset.place[{i}].body`: {:?} is neither a mocap body nor a body with one free joint",
                        place.body
                    )));
                }
            };
            let away_from = match (&place.away_from, place.min_distance_m) {
                (Some(other), Some(distance)) => {
                    let index = placed_bodies
                        .iter()
                        .position(|(name, _)| name == other)
                        .ok_or_else(|| {
                            self.bad(format!(
                                "`reset.place[{i}].away_from`: {other:?} is not placed earlier in [[reset.place]]"
                            ))
                        })?;
                    Some((index, distance))
                }
                _ => None,
            };
            placed_bodies.push((place.body.clone(), body));
            placements.push(Placement {
                target,
                ranges: [place.x, place.y, place.z],
                away_from,
            });
        }
        Ok(placements)
    }

    /// The keyframe a reset starts from, if the task names one.
    fn keyframe(&self) -> Result<Option<usize>, TaskError> {
        let model = self.model;
        match &self.source.file.keyframe {
            Some(name) => Ok(Some(find(model, MjtObjBase::mjOBJ_KEY, name).ok_or_else(
                || {
                    self.bad(format!(
                        "`keyframe`: no keyframe {name:?} in the model (keyframes: {})",
                        names(model, MjtObjBase::mjOBJ_KEY, model.ffi().nkey as usize)
                    ))
                },
            )?)),
            None => Ok(None),
        }
    }

    /// The model camera of each hw-config camera, which must want `rgb8` frames.
    fn cameras(&self) -> Result<Vec<usize>, TaskError> {
        let (model, config) = (self.model, self.config);
        let ncam = model.ffi().ncam as usize;
        let mut camera_ids = Vec::new();
        for (i, cam) in config.observation.cameras.iter().enumerate() {
            let id = find(model, MjtObjBase::mjOBJ_CAMERA, &cam.name).ok_or_else(|| {
                self.bad(format!(
                    "{} observation.cameras[{i}] is {:?}, which the model has no camera of (cameras: {})",
                    config.source.display(),
                    cam.name,
                    names(model, MjtObjBase::mjOBJ_CAMERA, ncam)
                ))
            })?;
            if cam.encoding != ImageEncoding::Rgb8 {
                return Err(self.bad(format!(
                    "camera {:?}: the simulator renders \"rgb8\", not {:?}",
                    cam.name,
                    cam.encoding.as_str()
                )));
            }
            camera_ids.push(id);
        }
        Ok(camera_ids)
    }
}

/// Grows the model's offscreen buffer to hold the largest camera image of `config`.
fn fit_offscreen_buffer(model: &mut MjModel, config: &RobotConfig) {
    let need_w = config.observation.cameras.iter().map(|c| c.width).max();
    let need_h = config.observation.cameras.iter().map(|c| c.height).max();
    if let (Some(w), Some(h)) = (need_w, need_h) {
        // SAFETY: plain integer fields of the model's visual options, written before
        // any data or renderer uses the model.
        let vis = unsafe { &mut model.ffi_mut().vis.global };
        vis.offwidth = vis.offwidth.max(w as i32);
        vis.offheight = vis.offheight.max(h as i32);
    }
}

/// An offscreen renderer for each hw-config camera, at the model camera `camera_ids` names.
fn renderers(
    model: &Arc<MjModel>,
    config: &RobotConfig,
    camera_ids: &[usize],
    source: &TaskSource,
) -> Result<Vec<Camera>, TaskError> {
    let mut cameras = Vec::new();
    for (cam, &id) in config.observation.cameras.iter().zip(camera_ids) {
        let renderer = MjRenderer::builder()
            .width(cam.width)
            .height(cam.height)
            .rgb(true)
            .depth(false)
            .camera(MjvCamera::new_fixed(id))
            .build(model)
            .map_err(|e| TaskError::Offscreen {
                origin: source.origin.clone(),
                camera: cam.name.clone(),
                source: e,
            })?;
        cameras.push(Camera { renderer });
    }
    Ok(cameras)
}

impl MujocoSim {
    /// Loads the task's model and checks it against the hw-config. With `render`, builds
    /// an offscreen renderer per camera of the hw-config (this must happen on the thread
    /// that will render: the renderer cannot move between threads).
    pub fn new(config: &RobotConfig, source: &TaskSource, render: bool) -> Result<Self, TaskError> {
        let task = &source.file;
        let mut model = load_model(source)?;
        let timestep_s = model.ffi().opt.timestep;
        let period_s = config.period_s();
        let gym_env = task.gymnasium.as_ref().map(|g| g.env);

        // The hw-config and the task against the model, in this order (the first problem
        // is the one reported).
        let lookup = Lookup {
            model: &model,
            config,
            source,
        };
        let substeps = lookup.control_substeps(timestep_s)?;
        let joints = lookup.joints()?;
        if let Some(env) = gym_env {
            lookup.check_gymnasium(env, substeps, timestep_s)?;
        }
        let sensors = lookup.sensors(gym_env.is_some())?;
        let success = lookup.success()?;
        let ee = lookup.end_effector()?;
        let placements = lookup.placements()?;
        let keyframe = lookup.keyframe()?;
        let camera_ids = lookup.cameras()?;
        fit_offscreen_buffer(&mut model, config);

        let nv = model.ffi().nv as usize;
        let model = Arc::new(model);
        let mut data = MjData::new(model.clone());
        data.forward();
        let cameras = if render {
            renderers(&model, config, &camera_ids, source)?
        } else {
            Vec::new()
        };

        let mut sim = Self {
            data,
            model,
            task_name: task.name.clone(),
            episode_seconds: task.episode_seconds(period_s),
            keyframe,
            joints,
            mode: config.action.mode,
            period_s,
            timestep_s,
            ee,
            joint_noise_rad: task.reset.joint_noise_rad,
            placements,
            sensors,
            success,
            gym: gym_env.map(|env| Gym {
                env,
                action: vec![0.0; config.dof()],
                reward: 0.0,
                terminated: false,
            }),
            cameras,
            jacobian: vec![0.0; 3 * nv],
            out_of_limit: 0,
        };
        sim.reset(0);
        Ok(sim)
    }

    pub fn task_name(&self) -> &str {
        &self.task_name
    }

    /// Whether the task has a ground-truth success test (Gymnasium's tasks have rewards
    /// instead).
    pub fn has_success_test(&self) -> bool {
        self.success.is_some()
    }

    /// The episode length the task suggests for evaluation.
    pub fn episode_seconds(&self) -> f64 {
        self.episode_seconds
    }

    /// The whole physics state: every `qpos` and `qvel` of the model (tests and tools).
    pub fn state(&self) -> (Vec<f64>, Vec<f64>) {
        (self.data.qpos().to_vec(), self.data.qvel().to_vec())
    }

    /// Simulated time since the last reset, in s.
    pub fn time(&self) -> f64 {
        self.data.time()
    }

    /// Joint positions of the hw-config's joints.
    pub fn joint_positions(&self, out: &mut [f64]) {
        let qpos = self.data.qpos();
        for (o, j) in out.iter_mut().zip(&self.joints) {
            *o = qpos[j.qpos];
        }
    }

    fn point(&self, p: Point) -> [f64; 3] {
        match p {
            Point::Site(id) => self.data.site_xpos()[id],
            Point::Body(id) => self.data.xpos()[id],
        }
    }

    /// Moves a placed body by hand (tests and tools), then recomputes positions.
    pub fn set_body_position(&mut self, body: &str, position: [f64; 3]) -> Result<(), PlaceError> {
        let id = find(&self.model, MjtObjBase::mjOBJ_BODY, body)
            .ok_or_else(|| PlaceError::NoBody(body.to_owned()))?;
        let mocap = self.model.body_mocapid()[id];
        if mocap >= 0 {
            self.data.mocap_pos_mut()[mocap as usize] = position;
        } else {
            let first = self.model.body_jntadr()[id];
            if first < 0 || self.model.jnt_type()[first as usize] != MjtJoint::mjJNT_FREE {
                return Err(PlaceError::Fixed(body.to_owned()));
            }
            let adr = self.model.jnt_qposadr()[first as usize] as usize;
            self.data.qpos_mut()[adr..adr + 3].copy_from_slice(&position);
        }
        self.data.forward();
        Ok(())
    }

    /// Position targets for an end-effector displacement, by damped least squares.
    fn ee_targets(&mut self, delta: &[f64]) {
        let Some((site, damping)) = self.ee else {
            return;
        };
        let nv = self.model.ffi().nv as usize;
        // SAFETY: the jacobian buffer holds 3 * nv values; the site id was checked at load.
        unsafe {
            mujoco_rs::mujoco_c::mj_jacSite(
                self.model.ffi(),
                self.data.ffi(),
                self.jacobian.as_mut_ptr(),
                std::ptr::null_mut(),
                site as i32,
            );
        }
        // A = J J^T + damping^2 I over the hw-config's joints (3 x 3), then dq = J^T A^-1 d.
        let column = |row: usize, j: &JointMap| self.jacobian[row * nv + j.dof];
        let mut a = [[0.0f64; 3]; 3];
        for (r, row) in a.iter_mut().enumerate() {
            for (c, value) in row.iter_mut().enumerate() {
                *value = self
                    .joints
                    .iter()
                    .map(|j| column(r, j) * column(c, j))
                    .sum::<f64>();
            }
            row[r] += damping * damping;
        }
        let y = solve3(a, [delta[0], delta[1], delta[2]]);
        let qpos = self.data.qpos().to_vec();
        let ctrl = self.data.ctrl_mut();
        for j in &self.joints {
            let dq: f64 = (0..3).map(|r| self.jacobian[r * nv + j.dof] * y[r]).sum();
            ctrl[j.actuator] = (qpos[j.qpos] + dq).clamp(j.min, j.max);
        }
    }
}

/// Solves a symmetric positive definite 3 x 3 system by Cramer's rule.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> [f64; 3] {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    let mut x = [0.0; 3];
    for (i, xi) in x.iter_mut().enumerate() {
        let mut m = a;
        for r in 0..3 {
            m[r][i] = b[r];
        }
        *xi = det(m) / d;
    }
    x
}

impl Plant for MujocoSim {
    fn reset(&mut self, seed: u64) {
        if let Some(gym) = &mut self.gym {
            self.data.reset();
            let mut rng = seed ^ 0x6779_6D6E_6173_0001;
            let mut qpos = self.data.qpos().to_vec();
            let mut qvel = self.data.qvel().to_vec();
            gym.env.reset_noise(&mut rng, &mut qpos, &mut qvel);
            self.data.qpos_mut().copy_from_slice(&qpos);
            self.data.qvel_mut().copy_from_slice(&qvel);
            self.data.ctrl_mut().fill(0.0);
            gym.action.fill(0.0);
            gym.reward = 0.0;
            gym.terminated = !gym.env.is_healthy(&qpos, &qvel);
            self.data.forward();
            return;
        }
        match self.keyframe {
            Some(key) => {
                let _ = self.data.reset_keyframe(key);
            }
            None => self.data.reset(),
        }
        let mut rng = seed ^ 0x6D75_6A6F_636F_0001;
        let noise = self.joint_noise_rad;
        for j in &self.joints {
            let q = {
                let qpos = self.data.qpos_mut();
                qpos[j.qpos] =
                    (qpos[j.qpos] + uniform(&mut rng, -noise, noise)).clamp(j.min, j.max);
                qpos[j.qpos]
            };
            // Position actuators start at where the joint is; motors start at zero effort.
            self.data.ctrl_mut()[j.actuator] = if self.mode == ActionMode::JointEffort {
                0.0
            } else {
                q
            };
        }
        let mut placed: Vec<[f64; 3]> = Vec::with_capacity(self.placements.len());
        for place in &self.placements {
            let current = match place.target {
                PlaceTarget::Mocap(i) => self.data.mocap_pos()[i],
                PlaceTarget::FreeJoint(adr) => {
                    let q = self.data.qpos();
                    [q[adr], q[adr + 1], q[adr + 2]]
                }
            };
            let mut position = current;
            // Redraw until far enough from the other body (bounded: the box may be tight).
            for _ in 0..1000 {
                for (axis, range) in place.ranges.iter().enumerate() {
                    if let Some([lo, hi]) = range {
                        position[axis] = uniform(&mut rng, *lo, *hi);
                    }
                }
                match place.away_from {
                    Some((other, distance)) => {
                        let o = placed[other];
                        if (position[0] - o[0]).hypot(position[1] - o[1]) >= distance {
                            break;
                        }
                    }
                    None => break,
                }
            }
            match place.target {
                PlaceTarget::Mocap(i) => self.data.mocap_pos_mut()[i] = position,
                PlaceTarget::FreeJoint(adr) => {
                    self.data.qpos_mut()[adr..adr + 3].copy_from_slice(&position)
                }
            }
            placed.push(position);
        }
        self.data.forward();
    }

    fn apply(&mut self, command: &Command) {
        let values = command.values();
        match self.mode {
            ActionMode::JointPosition | ActionMode::JointVelocity => {
                let qpos = self.data.qpos().to_vec();
                let period = self.period_s;
                let mode = self.mode;
                let mut outside = false;
                let ctrl = self.data.ctrl_mut();
                for (j, &v) in self.joints.iter().zip(values) {
                    let target = if mode == ActionMode::JointPosition {
                        v
                    } else {
                        qpos[j.qpos] + v * period
                    };
                    if mode == ActionMode::JointPosition
                        && !(target >= j.min - 1e-9 && target <= j.max + 1e-9)
                    {
                        outside = true;
                    }
                    ctrl[j.actuator] = target.clamp(j.min, j.max);
                }
                self.out_of_limit += outside as u64;
            }
            ActionMode::JointEffort => {
                let ctrl = self.data.ctrl_mut();
                for (i, (j, &v)) in self.joints.iter().zip(values).enumerate() {
                    // A non-finite effort (the safety layer never sends one) leaves the
                    // joint limp rather than poisoning the simulation.
                    let v = if v.is_finite() { v } else { 0.0 };
                    ctrl[j.actuator] = v;
                    if let Some(gym) = &mut self.gym {
                        gym.action[i] = v;
                    }
                }
            }
            ActionMode::EeDelta => {
                if values.len() >= 3 && values[..3].iter().all(|v| v.is_finite()) {
                    let mut delta = [0.0; 3];
                    delta.copy_from_slice(&values[..3]);
                    self.ee_targets(&delta);
                }
            }
        }
    }

    fn step(&mut self, dt_s: f64) {
        let steps = (dt_s / self.timestep_s).round().max(1.0) as usize;
        let x_before = self.data.qpos()[0];
        for _ in 0..steps {
            self.data.step();
        }
        // Positions, sites and Jacobians of the new state (mj_step leaves them one step old).
        self.data.forward();
        if let Some(gym) = &mut self.gym {
            let (qpos, qvel) = (self.data.qpos(), self.data.qvel());
            let healthy = gym.env.is_healthy(qpos, qvel);
            let dt = steps as f64 * self.timestep_s;
            gym.reward = gym.env.reward(x_before, qpos[0], dt, &gym.action, healthy);
            gym.terminated = gym.env.terminated(healthy);
        }
    }

    fn observe(&self, observation: &mut Observation) {
        let (qpos, qvel, force) = (
            self.data.qpos(),
            self.data.qvel(),
            self.data.actuator_force(),
        );
        for (i, j) in self.joints.iter().enumerate() {
            observation.joint_positions[i] = qpos[j.qpos];
            observation.joint_velocities[i] = qvel[j.dof];
            observation.joint_efforts[i] = force[j.actuator];
        }
        let mut at = 0;
        for &source in &self.sensors {
            match (source, &self.gym) {
                (SensorSource::Point(p), _) => {
                    observation.sensors[at..at + 3].copy_from_slice(&self.point(p));
                    at += 3;
                }
                (SensorSource::Gym, Some(gym)) => {
                    let len = qpos.len() - 1 + qvel.len();
                    gym.env
                        .observe(qpos, qvel, &mut observation.sensors[at..at + len]);
                    at += len;
                }
                (SensorSource::Gym, None) => unreachable!("checked at load"),
            }
        }
    }

    fn out_of_limit_commands(&self) -> u64 {
        self.out_of_limit
    }

    fn verdict(&self) -> Option<Verdict> {
        if let Some(gym) = &self.gym {
            return Some(Verdict {
                success: false,
                score: self.data.qpos()[0],
                reward: Some(gym.reward),
                terminated: gym.terminated,
            });
        }
        let (from, to, axes, below) = self.success?;
        let (a, b) = (self.point(from), self.point(to));
        let n = if axes == Axes::Xy { 2 } else { 3 };
        let score = (0..n).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt();
        Some(Verdict {
            success: score < below,
            score,
            reward: None,
            terminated: false,
        })
    }

    fn cameras(&self) -> usize {
        self.cameras.len()
    }

    fn render(&mut self, index: usize) -> Result<&[u8], crate::plant::RenderError> {
        use crate::plant::RenderError;
        let camera = self
            .cameras
            .get_mut(index)
            .ok_or(RenderError::NoCamera(index))?;
        let failed = |e: mujoco_rs::renderer::RendererError| RenderError::Renderer {
            camera: index,
            source: Box::new(e),
        };
        camera.renderer.sync_data(&mut self.data).map_err(failed)?;
        camera.renderer.render().map_err(failed)?;
        camera
            .renderer
            .rgb_flat()
            .ok_or(RenderError::NoBuffer(index))
    }
}
