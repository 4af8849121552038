//! `rlrt reward train-classifier`: a success classifier for one camera, trained in burn on
//! the frames of a dataset recorded with `rlrt record --frames` (labels: the task's
//! ground-truth success at each frame), validated on held-out episodes, exported to ONNX and
//! checked with ONNX Runtime against burn's own outputs. The file is ready for a
//! `[[rewards]] kind = "classifier"` source.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rlrt_rewards::classifier::{self, ClassifierConfig, Frames, Scores};
use rlrt_runtime::config::{CameraSpec, ImageEncoding};
use rlrt_runtime::recording::{CameraInfo, Dataset};

use rlrt_rewards::frame_model::OnnxClassifier;

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

/// `rlrt reward train-classifier`: trains with a progress bar over the epochs, then prints
/// the outcome.
pub fn execute(command: TrainClassifierCommand) -> anyhow::Result<super::Exit> {
    let progress = super::Progress::new(command.epochs);
    let outcome = run(
        &TrainClassifierArgs {
            config: command.net.config(command.epochs, command.learning_rate),
            validation_fraction: command.net.validation_fraction,
            data: command.data,
            camera: command.camera,
            out: command.out,
            drop_scores: command.drop_scores,
        },
        |epoch, loss| progress.epoch(epoch, loss),
    )?;
    drop(progress);
    command.output.print(&outcome)?;
    Ok(super::Exit::Success)
}

pub struct TrainClassifierArgs {
    pub data: PathBuf,
    pub camera: Option<String>,
    pub out: PathBuf,
    /// Every n-th episode (n = round(1 / fraction)) is held out for validation.
    pub validation_fraction: f64,
    /// Frames whose task score lies in [low, high] are left out of training and validation
    /// (the band around the success threshold where frames look alike).
    pub drop_scores: Option<(f64, f64)>,
    pub config: ClassifierConfig,
}

#[derive(Debug, serde::Serialize)]
pub struct TrainClassifierOutcome {
    pub out: PathBuf,
    pub camera: String,
    pub train_episodes: usize,
    pub validation_episodes: usize,
    /// Frames left out by `drop_scores`.
    pub dropped_frames: usize,
    pub train: Scores,
    pub validation: Scores,
    pub losses: Vec<f64>,
    /// Largest difference between ONNX Runtime's and burn's probabilities on the validation
    /// frames.
    pub onnx_max_difference: f64,
    pub seconds: f64,
    pub config: ClassifierConfig,
}

impl std::fmt::Display for TrainClassifierOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = |f: &mut std::fmt::Formatter<'_>, what: &str, s: &Scores| {
            writeln!(
                f,
                "{what}: {} frames ({} successes): accuracy {:.3}, balanced accuracy {:.3} \
                 (always guessing the commoner label: {:.3})",
                s.frames, s.positives, s.accuracy, s.balanced_accuracy, s.majority_accuracy
            )
        };
        writeln!(
            f,
            "wrote {} (camera {}, {:.0} s)",
            self.out.display(),
            self.camera,
            self.seconds
        )?;
        line(
            f,
            &format!("train ({} episodes)", self.train_episodes),
            &self.train,
        )?;
        line(
            f,
            &format!(
                "validation ({} held-out episodes)",
                self.validation_episodes
            ),
            &self.validation,
        )?;
        writeln!(
            f,
            "ONNX Runtime agrees with burn within {:.1e} on the validation frames",
            self.onnx_max_difference
        )?;
        writeln!(
            f,
            "use it: [[rewards]] kind = \"classifier\", model_path = \"{}\", camera = \"{}\"",
            self.out.display(),
            self.camera
        )
    }
}

pub(crate) fn spec(camera: &CameraInfo) -> anyhow::Result<CameraSpec> {
    let encoding = match camera.encoding.as_str() {
        "rgb8" => ImageEncoding::Rgb8,
        "mono8" => ImageEncoding::Mono8,
        other => anyhow::bail!(
            "camera {:?} recorded {other} frames; image models read rgb8 or mono8",
            camera.name
        ),
    };
    Ok(CameraSpec {
        name: camera.name.clone(),
        width: camera.width,
        height: camera.height,
        rate_hz: camera.rate_hz,
        encoding,
    })
}

/// Every round(1 / fraction)-th episode is held out.
pub(crate) fn is_validation(episode: usize, fraction: f64) -> bool {
    let every = (1.0 / fraction).round().max(2.0) as usize;
    episode % every == every - 1
}

pub fn run(
    args: &TrainClassifierArgs,
    progress: impl FnMut(usize, f64),
) -> anyhow::Result<TrainClassifierOutcome> {
    let start = Instant::now();
    if !(args.validation_fraction > 0.0 && args.validation_fraction < 1.0) {
        anyhow::bail!(
            "--validation-fraction {}: expected a fraction in (0, 1)",
            args.validation_fraction
        );
    }
    let dataset = Dataset::open(&args.data)?;
    let cameras = &dataset.info.cameras;
    if cameras.is_empty() {
        anyhow::bail!(
            "{}: recorded without camera frames; record with `rlrt record --frames`",
            args.data.display()
        );
    }
    let names = || {
        cameras
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let index = match &args.camera {
        Some(name) => cameras
            .iter()
            .position(|c| &c.name == name)
            .with_context(|| format!("--camera {name:?}: the dataset has {}", names()))?,
        None if cameras.len() == 1 => 0,
        None => anyhow::bail!(
            "the dataset has several cameras ({}); pick one with --camera",
            names()
        ),
    };
    let camera = &cameras[index];
    let spec = spec(camera)?;
    let channels = camera.frame_bytes() / (camera.width as usize * camera.height as usize);
    let (w, h) = (camera.width as usize, camera.height as usize);
    let (mut train, mut validation) = (Frames::new(w, h, channels), Frames::new(w, h, channels));
    let (mut train_episodes, mut validation_episodes) = (0, 0);
    let mut dropped = 0;
    for e in 0..dataset.episodes.len() {
        let tracks = dataset.frames(e)?;
        let track = &tracks[index];
        let held_out = is_validation(e, args.validation_fraction);
        let into = if held_out {
            validation_episodes += 1;
            &mut validation
        } else {
            train_episodes += 1;
            &mut train
        };
        for i in 0..track.len() {
            if args
                .drop_scores
                .is_some_and(|(low, high)| (low..=high).contains(&track.scores[i]))
            {
                dropped += 1;
                continue;
            }
            into.push(track.frame(i), track.success[i]);
        }
    }
    if validation_episodes == 0 || train_episodes == 0 {
        anyhow::bail!(
            "{}: {} episodes leave none for {} with --validation-fraction {}; record more",
            args.data.display(),
            dataset.episodes.len(),
            if train_episodes == 0 {
                "training"
            } else {
                "validation"
            },
            args.validation_fraction
        );
    }
    let trained = classifier::train(&train, &validation, &args.config, progress)?;
    let bytes = classifier::export_onnx(&trained);
    write_file(&args.out, &bytes)?;
    // The exported file, through ONNX Runtime as the runtime will run it, against burn.
    let mut onnx = OnnxClassifier::load(&args.out, &spec, None)
        .with_context(|| format!("checking the exported {}", args.out.display()))?;
    let burn = classifier::probabilities(
        &trained.model,
        &validation,
        trained.patch,
        trained.stride,
        &Default::default(),
    );
    let worst = onnx_agrees(&args.out, &mut onnx, &validation, &burn)?;
    Ok(TrainClassifierOutcome {
        out: args.out.clone(),
        camera: camera.name.clone(),
        train_episodes,
        validation_episodes,
        dropped_frames: dropped,
        train: trained.train,
        validation: trained.validation,
        losses: trained.losses,
        onnx_max_difference: worst,
        seconds: start.elapsed().as_secs_f64(),
        config: args.config.clone(),
    })
}

/// The largest difference between the exported model in `path`, run by ONNX Runtime, and
/// burn's outputs `burn` for `frames`; more than 1e-4 is an error (the export is wrong).
pub(crate) fn onnx_agrees(
    path: &Path,
    onnx: &mut OnnxClassifier,
    frames: &Frames,
    burn: &[f32],
) -> anyhow::Result<f64> {
    let mut worst = 0.0f64;
    for (i, b) in burn.iter().enumerate() {
        let q = onnx
            .score(frames.frame(i))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        worst = rlrt_models::compare::worse(worst, (q - f64::from(*b)).abs());
    }
    anyhow::ensure!(
        worst <= 1e-4,
        "{}: ONNX Runtime differs from burn by {worst:.2e} (more than 1e-4); the export is wrong",
        path.display()
    );
    Ok(worst)
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
