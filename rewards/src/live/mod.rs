//! Rewards evaluated while the robot runs, off the tick: the hw-config's reward programs
//! ([`programs`], on the telemetry thread) and its frame-scored sources ([`frames`]: CLIP,
//! success classifiers and reward models, on a scoring thread of their own). Both are
//! `rlrt_runtime::hub::TickConsumer`s; what they compute goes to the run's report and, when a
//! timeline is drawn, through the hub's event queue.

pub mod frames;
pub mod programs;

use std::path::PathBuf;

/// A reward source of a config that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reward {name:?} has no program_path")]
    NoProgramPath { name: String },
    #[error(transparent)]
    Environment(#[from] crate::program::EnvironmentError),
    #[error(transparent)]
    Program(Box<crate::program::ProgramError>),
    /// A frame source, with the config key that names what is wrong.
    #[error("{}: rewards[{index}].{key}", file.display())]
    Source {
        file: PathBuf,
        index: usize,
        key: &'static str,
        #[source]
        source: Box<SourceError>,
    },
}

impl From<crate::program::ProgramError> for LoadError {
    fn from(e: crate::program::ProgramError) -> Self {
        LoadError::Program(Box::new(e))
    }
}

/// What is wrong with a frame source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("missing")]
    Missing,
    #[error("no camera named {0:?}")]
    UnknownCamera(String),
    #[error("camera {camera:?} sends {encoding} frames; CLIP reads rgb8 or mono8")]
    ClipEncoding {
        camera: String,
        encoding: &'static str,
    },
    #[error(transparent)]
    Clip(#[from] crate::clip::ClipError),
    #[error(transparent)]
    Model(#[from] crate::frame_model::ModelError),
}

/// Why one frame (or one tick) got no reward: shown in reports and on the timeline.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unscored(pub String);

impl Unscored {
    pub fn new(why: impl std::fmt::Display) -> Self {
        Self(why.to_string())
    }
}
