//! IQL's hyperparameters and the paper's presets per kind of task (Appendix B), recorded in
//! every checkpoint (`checkpoint.json`).

/// Which learner produced a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Implicit Q-Learning.
    Iql,
    /// Behaviour cloning.
    Bc,
}

/// What the actor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// N(tanh(f(s)), exp(log_std)) with a learned, state-independent log-std; trained by
    /// weighted log-likelihood. Acts with its mean.
    Gaussian,
    /// a = tanh(f(s)); trained by weighted squared error (the Gaussian with a fixed std).
    Deterministic,
}

/// Hyperparameters. Defaults are the paper's (Appendix B, MuJoCo locomotion).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IqlConfig {
    pub algorithm: Algorithm,
    /// The task kind whose settings the values below started from (`None`: behaviour cloning,
    /// or a checkpoint written before presets were recorded). Flags given beside a preset
    /// override its values; the fields below are what was actually used.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// tau of the expectile loss (eq. 5): 0.7 locomotion, 0.9 navigation (AntMaze).
    pub expectile: f64,
    /// beta of the advantage weights (eq. 7): 3 locomotion, 10 navigation, 0.5 manipulation.
    pub temperature: f64,
    /// gamma.
    pub discount: f64,
    /// Polyak rate of the target Q networks.
    pub target_update_rate: f64,
    pub learning_rate: f64,
    /// Adam's epsilon (PyTorch's and JAX's default; burn's own default is 1e-5).
    pub adam_epsilon: f64,
    pub batch_size: usize,
    /// Hidden widths of every MLP.
    pub hidden: Vec<usize>,
    /// exp(beta * A) is clipped at this value.
    pub advantage_clip: f64,
    pub actor: ActorKind,
    /// Cosine decay of the actor's learning rate over `steps` (the paper's schedule).
    pub cosine_actor_lr: bool,
    /// Rewards are multiplied by this; `None`: 1000 / (max return - min return) of the
    /// dataset's episodes (the paper's locomotion scaling).
    pub reward_scale: Option<f64>,
    /// Added to every reward after scaling (AntMaze uses -1).
    pub reward_shift: f64,
    /// Total gradient steps (sets the length of the cosine schedule).
    pub steps: usize,
    pub seed: u64,
}

impl Default for IqlConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Iql,
            preset: Some(Preset::Locomotion),
            expectile: 0.7,
            temperature: 3.0,
            discount: 0.99,
            target_update_rate: 0.005,
            learning_rate: 3e-4,
            adam_epsilon: 1e-8,
            batch_size: 256,
            hidden: vec![256, 256],
            advantage_clip: 100.0,
            actor: ActorKind::Gaussian,
            cosine_actor_lr: true,
            reward_scale: None,
            reward_shift: 0.0,
            steps: 1_000_000,
            seed: 0,
        }
    }
}

/// The paper's per-domain settings (Appendix B, and the authors' code for the reward
/// transformations): which one fits is a question of the task's kind of reward and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Gym locomotion (dense rewards, long returns): tau 0.7, beta 3, rewards multiplied by
    /// 1000 / (max return - min return) of the dataset's episodes.
    Locomotion,
    /// AntMaze-style navigation (sparse goal rewards): tau 0.9, beta 10, rewards shifted by
    /// -1 and not scaled.
    Navigation,
    /// Kitchen and Adroit manipulation (narrow, often human data): tau 0.7, beta 0.5,
    /// rewards as they are.
    Manipulation,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Locomotion, Preset::Navigation, Preset::Manipulation];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Locomotion => "locomotion",
            Preset::Navigation => "navigation",
            Preset::Manipulation => "manipulation",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A preset name that is none of `locomotion`, `navigation`, `manipulation`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected locomotion, navigation or manipulation")]
pub struct BadPreset(pub String);

impl std::str::FromStr for Preset {
    type Err = BadPreset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| BadPreset(s.to_owned()))
    }
}

impl IqlConfig {
    pub fn preset(preset: Preset) -> Self {
        let base = Self {
            preset: Some(preset),
            ..Self::default()
        };
        match preset {
            Preset::Locomotion => base,
            Preset::Navigation => Self {
                expectile: 0.9,
                temperature: 10.0,
                reward_scale: Some(1.0),
                reward_shift: -1.0,
                ..base
            },
            Preset::Manipulation => Self {
                temperature: 0.5,
                reward_scale: Some(1.0),
                ..base
            },
        }
    }

    /// Behaviour cloning: the actor alone, every dataset action weighted 1.
    pub fn behaviour_cloning() -> Self {
        Self {
            algorithm: Algorithm::Bc,
            preset: None,
            ..Self::default()
        }
    }
}
