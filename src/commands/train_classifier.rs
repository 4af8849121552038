//! `rlrt reward train-classifier`: a success classifier for one camera, trained on the frames
//! of a dataset recorded with `rlrt record --frames`, exported to ONNX and checked with ONNX
//! Runtime (`rlrt_rewards::offline::training`). Also the network flags and the progress bar
//! that `reward train-preferences` shares.

use std::path::PathBuf;

use rlrt_rewards::classifier::ClassifierConfig;
use rlrt_rewards::offline::training::{train_classifier, ClassifierSpec};

/// `rlrt reward train-classifier` on the command line.
#[derive(clap::Args)]
pub struct TrainClassifierCommand {
    /// The dataset folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Which recorded camera (default: the only one).
    #[arg(long)]
    pub camera: Option<String>,
    /// The ONNX file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    #[command(flatten)]
    pub net: NetArgs,
    /// LOW,HIGH: leave out frames whose task score (such as the reach distance in m)
    /// lies in this band around the success threshold, where frames look alike.
    #[arg(long, value_parser = parse_band)]
    pub drop_scores: Option<(f64, f64)>,
    #[command(flatten)]
    pub output: super::Output,
}

/// The image network and its training, as the classifier and the preference reward model
/// share them (their epochs and learning rates differ).
#[derive(clap::Args, Clone, Debug)]
pub struct NetArgs {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Side of the first convolution's patches, pixels.
    #[arg(long, default_value_t = 8)]
    pub patch: usize,
    /// Stride of the first convolution, pixels.
    #[arg(long, default_value_t = 4)]
    pub stride: usize,
    /// Channels of the first convolution, then of each 1 x 1 convolution.
    #[arg(long, value_delimiter = ',', default_value = "32,32")]
    pub channels: Vec<usize>,
    /// Frames (classifier) or pairs (reward model) per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Every round(1 / fraction)-th episode is held out for validation.
    #[arg(long, default_value_t = 0.2)]
    pub validation_fraction: f64,
}

impl NetArgs {
    /// The training settings, with `epochs` and `learning_rate` of the command.
    pub fn config(&self, epochs: usize, learning_rate: f64) -> ClassifierConfig {
        ClassifierConfig {
            patch: self.patch,
            stride: self.stride,
            channels: self.channels.clone(),
            epochs,
            batch_size: self.batch_size.max(1),
            learning_rate,
            seed: self.seed,
        }
    }
}

fn parse_band(s: &str) -> Result<(f64, f64), String> {
    let bad = || format!("{s:?}: expected LOW,HIGH with LOW <= HIGH, such as 0.015,0.06");
    let (low, high) = s.split_once(',').ok_or_else(bad)?;
    let (low, high): (f64, f64) = (
        low.trim().parse().map_err(|_| bad())?,
        high.trim().parse().map_err(|_| bad())?,
    );
    if !(low.is_finite() && high.is_finite() && low <= high) {
        return Err(bad());
    }
    Ok((low, high))
}

/// Runs `train` (a training of `epochs` epochs, told each epoch's loss) under a progress bar
/// that clears itself when it ends, then prints the outcome.
pub(crate) fn train_and_print<T, E>(
    epochs: usize,
    output: super::Output,
    train: impl FnOnce(&dyn Fn(usize, f64)) -> Result<T, E>,
) -> anyhow::Result<super::Exit>
where
    T: serde::Serialize + std::fmt::Display,
    E: std::error::Error + Send + Sync + 'static,
{
    let progress = super::Progress::new(epochs);
    let outcome = train(&|epoch, loss| progress.epoch(epoch, loss))?;
    drop(progress);
    output.print(&outcome)?;
    Ok(super::Exit::Success)
}

/// `rlrt reward train-classifier`: trains with a progress bar over the epochs, then prints
/// the outcome.
pub fn execute(command: TrainClassifierCommand) -> anyhow::Result<super::Exit> {
    let spec = ClassifierSpec {
        config: command.net.config(command.epochs, command.learning_rate),
        validation_fraction: command.net.validation_fraction,
        data: command.data,
        camera: command.camera,
        out: command.out,
        drop_scores: command.drop_scores,
    };
    train_and_print(command.epochs, command.output, |progress| {
        train_classifier(&spec, progress)
    })
}
