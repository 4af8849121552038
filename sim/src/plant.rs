//! What a simulated robot must do to be served over the link ([`crate::SimServer`]).

use rlrt_runtime::{Command, Observation};

/// The task's ground-truth verdict on the current state (for evaluation only).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Verdict {
    pub success: bool,
    /// The quantity the success test thresholds (such as a distance in m); for Gymnasium
    /// tasks, the x position of the root.
    pub score: f64,
    /// The task's own reward for the last control step (Gymnasium tasks); `None` where the
    /// task only has a success test.
    pub reward: Option<f64>,
    /// The episode has ended in this state (Gymnasium's `terminated`: the robot fell).
    pub terminated: bool,
}

/// A simulated robot. Implementations live on the serving thread, so they need not be
/// `Send` (MuJoCo's offscreen renderer is not).
pub trait Plant {
    /// Starts an episode from the seeded start state.
    fn reset(&mut self, seed: u64);
    /// Takes a command; it acts from the next step on.
    fn apply(&mut self, command: &Command);
    /// Advances the simulation by `dt_s`.
    fn step(&mut self, dt_s: f64);
    /// Writes joint state and sensors; `seq` and `stamp_ns` are the server's.
    fn observe(&self, observation: &mut Observation);
    /// Commands that arrived outside the joint limits (the safety layer should prevent them).
    fn out_of_limit_commands(&self) -> u64;
    /// The task's success test, if the plant has a task.
    fn verdict(&self) -> Option<Verdict> {
        None
    }
    /// Number of cameras the plant renders, in hw-config order.
    fn cameras(&self) -> usize {
        0
    }
    /// Renders camera `index` and returns its pixels (rows top first).
    fn render(&mut self, index: usize) -> Result<&[u8], RenderError> {
        Err(RenderError::NoCamera(index))
    }
}

/// Why a camera frame could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("this plant has no camera {0}")]
    NoCamera(usize),
    /// The renderer (MuJoCo's) failed; its own error is the source.
    #[error("camera {camera}: the renderer failed")]
    Renderer {
        camera: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("camera {0}: the renderer has no rgb buffer")]
    NoBuffer(usize),
}

impl Plant for crate::KinematicArm {
    fn reset(&mut self, seed: u64) {
        crate::KinematicArm::reset(self, seed)
    }
    fn apply(&mut self, command: &Command) {
        crate::KinematicArm::apply(self, command)
    }
    fn step(&mut self, dt_s: f64) {
        crate::KinematicArm::step(self, dt_s)
    }
    fn observe(&self, observation: &mut Observation) {
        crate::KinematicArm::observe(self, observation)
    }
    fn out_of_limit_commands(&self) -> u64 {
        crate::KinematicArm::out_of_limit_commands(self)
    }
}
