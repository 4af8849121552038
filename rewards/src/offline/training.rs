//! Training runs of the image reward models on recorded datasets: a success classifier on a
//! camera's frames (`rlrt reward train-classifier`; labels: the task's ground-truth success
//! at each frame) and a Bradley-Terry reward model on preference labels
//! (`rlrt reward train-preferences`, labels from [`super::labelling`]). Both train in burn on
//! the CPU ([`crate::classifier::train`], [`crate::preference::train`]), validate on
//! held-out episodes (every round(1 / fraction)-th), export to ONNX and check the file with
//! ONNX Runtime against burn's own outputs before reporting: the file is ready for a
//! `[[rewards]] kind = "classifier"` or `kind = "preference_model"` source.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rlrt_runtime::recording::{CameraInfo, Dataset, RecordingError};

use super::labelling::{read_labels, FrameRef, Label, LabelsError};
use super::{camera_spec, pick_camera, CameraError};
use crate::classifier::{self, ClassifierConfig, ClassifierError, Frames, Scores};
use crate::frame_model::{ModelError, OnnxClassifier, ScoreError};
use crate::preference::{self, Pair, PairScores};

/// ONNX Runtime may differ from burn by this much on an exported model's outputs.
const ONNX_TOLERANCE: f64 = 1e-4;

/// Why a model was not trained, written or accepted.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error("--validation-fraction {0}: expected a fraction in (0, 1)")]
    ValidationFraction(f64),
    #[error(transparent)]
    Dataset(#[from] RecordingError),
    #[error(transparent)]
    Camera(#[from] CameraError),
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error(
        "{}: {episodes} episodes leave none for {starved} with --validation-fraction \
         {fraction}; record more",
        data.display()
    )]
    TooFewEpisodes {
        data: PathBuf,
        episodes: usize,
        /// `training` or `validation`.
        starved: &'static str,
        fraction: f64,
    },
    #[error("{}: no labels", .0.display())]
    NoLabels(PathBuf),
    #[error(
        "{}: line {line} labels camera {camera:?}, line 1 {first:?}; one model is for one \
         camera",
        labels.display()
    )]
    MixedCameras {
        labels: PathBuf,
        line: usize,
        camera: String,
        first: String,
    },
    #[error(
        "{}: a label names episode {episode}; {} has {episodes}",
        labels.display(),
        data.display()
    )]
    NoEpisode {
        labels: PathBuf,
        episode: usize,
        data: PathBuf,
        episodes: usize,
    },
    #[error(
        "{}: a label names frame {} of episode {}, which has {frames} frames of camera \
         {camera:?}",
        labels.display(),
        frame.frame,
        frame.episode
    )]
    NoFrame {
        labels: PathBuf,
        frame: FrameRef,
        frames: usize,
        camera: String,
    },
    #[error(
        "{}: every pair touches a held-out episode; label more pairs or lower \
         --validation-fraction",
        .0.display()
    )]
    AllHeldOut(PathBuf),
    #[error(transparent)]
    Train(#[from] ClassifierError),
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checking the exported {}", path.display())]
    Exported {
        path: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
    #[error("{}", path.display())]
    OnnxRun {
        path: PathBuf,
        #[source]
        source: ScoreError,
    },
    #[error(
        "{}: ONNX Runtime differs from burn by {worst:.2e} (more than 1e-4); the export is \
         wrong",
        path.display()
    )]
    OnnxDiffers { path: PathBuf, worst: f64 },
}

/// A success classifier to train.
#[derive(Clone, Debug)]
pub struct ClassifierSpec {
    /// The dataset folder (recorded with frames).
    pub data: PathBuf,
    /// Which recorded camera (default: the only one).
    pub camera: Option<String>,
    /// The ONNX file to write.
    pub out: PathBuf,
    /// Every n-th episode (n = round(1 / fraction)) is held out for validation.
    pub validation_fraction: f64,
    /// Frames whose task score lies in [low, high] are left out of training and validation
    /// (the band around the success threshold where frames look alike).
    pub drop_scores: Option<(f64, f64)>,
    pub config: ClassifierConfig,
}

#[derive(Debug, serde::Serialize)]
pub struct ClassifierOutcome {
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

impl std::fmt::Display for ClassifierOutcome {
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
        let (checked, kind) = (" on the validation frames", "classifier");
        write_export(
            f,
            self.onnx_max_difference,
            checked,
            kind,
            &self.out,
            &self.camera,
        )
    }
}

/// Trains the classifier `spec` asks for (`progress` gets each epoch and its loss), writes
/// it as ONNX and checks the file with ONNX Runtime on the validation frames.
pub fn train_classifier(
    spec: &ClassifierSpec,
    progress: impl FnMut(usize, f64),
) -> Result<ClassifierOutcome, TrainingError> {
    let start = Instant::now();
    let dataset = open_dataset(&spec.data, spec.validation_fraction)?;
    let (index, camera) = pick_camera(&spec.data, &dataset, spec.camera.as_deref())?;
    let camera_spec = camera_spec(camera)?;
    let (mut train, mut validation) = (frames_of(camera), frames_of(camera));
    let (mut train_episodes, mut validation_episodes) = (0, 0);
    let mut dropped = 0;
    for e in 0..dataset.episodes.len() {
        let tracks = dataset.frames(e)?;
        let track = &tracks[index];
        let held_out = is_validation(e, spec.validation_fraction);
        let into = if held_out {
            validation_episodes += 1;
            &mut validation
        } else {
            train_episodes += 1;
            &mut train
        };
        for i in 0..track.len() {
            if spec
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
        return Err(TrainingError::TooFewEpisodes {
            data: spec.data.clone(),
            episodes: dataset.episodes.len(),
            starved: if train_episodes == 0 {
                "training"
            } else {
                "validation"
            },
            fraction: spec.validation_fraction,
        });
    }
    let trained = classifier::train(&train, &validation, &spec.config, progress)?;
    write_file(&spec.out, &classifier::export_onnx(&trained))?;
    // The exported file, through ONNX Runtime as the runtime will run it, against burn.
    let mut onnx =
        OnnxClassifier::load(&spec.out, &camera_spec, None).map_err(exported(&spec.out))?;
    let burn = classifier::probabilities(
        &trained.model,
        &validation,
        trained.patch,
        trained.stride,
        &Default::default(),
    );
    let worst = onnx_agrees(&spec.out, &mut onnx, &validation, &burn)?;
    Ok(ClassifierOutcome {
        out: spec.out.clone(),
        camera: camera.name.clone(),
        train_episodes,
        validation_episodes,
        dropped_frames: dropped,
        train: trained.train,
        validation: trained.validation,
        losses: trained.losses,
        onnx_max_difference: worst,
        seconds: start.elapsed().as_secs_f64(),
        config: spec.config.clone(),
    })
}

/// A preference reward model to fit.
#[derive(Clone, Debug)]
pub struct PreferenceSpec {
    /// The dataset folder the labels refer to.
    pub data: PathBuf,
    /// The labels file ([`super::labelling::label_pairs`]).
    pub labels: PathBuf,
    /// The ONNX file to write.
    pub out: PathBuf,
    /// Every round(1 / fraction)-th episode is held out: pairs with a frame from one validate.
    pub validation_fraction: f64,
    pub config: ClassifierConfig,
}

#[derive(Debug, serde::Serialize)]
pub struct PreferenceOutcome {
    pub out: PathBuf,
    pub camera: String,
    pub frames: usize,
    pub train: PairScores,
    pub validation: PairScores,
    /// The validation pairs that were drawn uniformly (not chosen with `--reward-model`),
    /// when some were chosen: chosen pairs are the hard ones, so only this score compares
    /// with that of a model fitted to uniform labels.
    pub validation_uniform: Option<PairScores>,
    pub losses: Vec<f64>,
    /// Largest difference between ONNX Runtime's and burn's rewards on the frames.
    pub onnx_max_difference: f64,
    pub seconds: f64,
    pub config: ClassifierConfig,
}

impl std::fmt::Display for PreferenceOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} (camera {}, {} frames, {:.0} s)",
            self.out.display(),
            self.camera,
            self.frames,
            self.seconds
        )?;
        for (what, s) in [("train", &self.train), ("validation", &self.validation)] {
            writeln!(
                f,
                "{what}: {} pairs ({} with a preference): the model orders {:.3} of those as \
                 the teacher did (chance: 0.5)",
                s.pairs, s.strict, s.accuracy
            )?;
        }
        if let Some(s) = &self.validation_uniform {
            writeln!(
                f,
                "validation, uniform pairs only: {} pairs ({} with a preference): {:.3} (the \
                 chosen pairs are harder by design)",
                s.pairs, s.strict, s.accuracy
            )?;
        }
        let kind = "preference_model";
        write_export(
            f,
            self.onnx_max_difference,
            "",
            kind,
            &self.out,
            &self.camera,
        )
    }
}

/// Fits the reward model `spec` asks for to its labels (`progress` gets each epoch and its
/// loss), writes it as ONNX and checks the file with ONNX Runtime on every labelled frame.
pub fn train_preferences(
    spec: &PreferenceSpec,
    progress: impl FnMut(usize, f64),
) -> Result<PreferenceOutcome, TrainingError> {
    let start = Instant::now();
    let dataset = open_dataset(&spec.data, spec.validation_fraction)?;
    let labels = read_labels(&spec.labels)?;
    if labels.is_empty() {
        return Err(TrainingError::NoLabels(spec.labels.clone()));
    }
    let (track, camera) = pick_camera(&spec.data, &dataset, Some(&labels[0].camera))?;
    if let Some((n, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| l.camera != camera.name)
    {
        return Err(TrainingError::MixedCameras {
            labels: spec.labels.clone(),
            line: n + 1,
            camera: l.camera.clone(),
            first: camera.name.clone(),
        });
    }
    let (frames, index) = labelled_frames(spec, &dataset, track, camera, &labels)?;
    let (mut train, mut validation, mut uniform) = (Vec::new(), Vec::new(), Vec::new());
    for l in &labels {
        let pair = Pair {
            first: index[&l.first],
            second: index[&l.second],
            preference: l.preference,
        };
        if is_validation(l.first.episode, spec.validation_fraction)
            || is_validation(l.second.episode, spec.validation_fraction)
        {
            validation.push(pair);
            if l.chosen.is_none() {
                uniform.push(pair);
            }
        } else {
            train.push(pair);
        }
    }
    if train.is_empty() {
        return Err(TrainingError::AllHeldOut(spec.labels.clone()));
    }
    let trained = preference::train(&frames, &train, &validation, &spec.config, progress)?;
    write_file(&spec.out, &preference::export_onnx(&trained))?;
    // The file through ONNX Runtime, as a run will use it, against burn.
    let camera_spec = camera_spec(camera)?;
    let mut onnx =
        OnnxClassifier::load_reward(&spec.out, &camera_spec, None).map_err(exported(&spec.out))?;
    let rewards = trained.rewards(&frames);
    let worst = onnx_agrees(&spec.out, &mut onnx, &frames, &rewards)?;
    let validation_uniform =
        (uniform.len() < validation.len()).then(|| PairScores::of(&rewards, &uniform));
    Ok(PreferenceOutcome {
        out: spec.out.clone(),
        camera: camera.name.clone(),
        frames: frames.len(),
        train: trained.train,
        validation: trained.validation,
        validation_uniform,
        losses: trained.losses,
        onnx_max_difference: worst,
        seconds: start.elapsed().as_secs_f64(),
        config: spec.config.clone(),
    })
}

/// Every frame a label names, each once (read episode by episode), and where each is.
fn labelled_frames(
    spec: &PreferenceSpec,
    dataset: &Dataset,
    track: usize,
    camera: &CameraInfo,
    labels: &[Label],
) -> Result<(Frames, HashMap<FrameRef, usize>), TrainingError> {
    let mut needed: Vec<FrameRef> = labels.iter().flat_map(|l| [l.first, l.second]).collect();
    needed.sort_unstable_by_key(|r| (r.episode, r.frame));
    needed.dedup();
    let mut frames = frames_of(camera);
    let mut index = HashMap::with_capacity(needed.len());
    let mut at = 0;
    while at < needed.len() {
        let episode = needed[at].episode;
        if episode >= dataset.episodes.len() {
            return Err(TrainingError::NoEpisode {
                labels: spec.labels.clone(),
                episode,
                data: spec.data.clone(),
                episodes: dataset.episodes.len(),
            });
        }
        let tracks = dataset.frames(episode)?;
        let t = &tracks[track];
        while at < needed.len() && needed[at].episode == episode {
            let r = needed[at];
            if r.frame >= t.len() {
                return Err(TrainingError::NoFrame {
                    labels: spec.labels.clone(),
                    frame: r,
                    frames: t.len(),
                    camera: camera.name.clone(),
                });
            }
            index.insert(r, frames.len());
            frames.push(t.frame(r.frame), false);
            at += 1;
        }
    }
    Ok((frames, index))
}

/// An empty set of `camera`'s frames.
fn frames_of(camera: &CameraInfo) -> Frames {
    let (w, h) = (camera.width as usize, camera.height as usize);
    Frames::new(w, h, camera.frame_bytes() / (w * h))
}

/// The dataset in `data`, once `fraction` (the share of episodes held out) is checked.
fn open_dataset(data: &Path, fraction: f64) -> Result<Dataset, TrainingError> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(TrainingError::ValidationFraction(fraction));
    }
    Ok(Dataset::open(data)?)
}

/// The end of a training report: how closely ONNX Runtime agrees with burn (on what it was
/// `checked` on), and the `[[rewards]]` source of `kind` that uses the model.
fn write_export(
    f: &mut std::fmt::Formatter<'_>,
    onnx_max_difference: f64,
    checked: &str,
    kind: &str,
    out: &Path,
    camera: &str,
) -> std::fmt::Result {
    writeln!(
        f,
        "ONNX Runtime agrees with burn within {onnx_max_difference:.1e}{checked}"
    )?;
    writeln!(
        f,
        "use it: [[rewards]] kind = \"{kind}\", model_path = \"{}\", camera = \"{camera}\"",
        out.display()
    )
}

/// Every round(1 / fraction)-th episode is held out.
fn is_validation(episode: usize, fraction: f64) -> bool {
    let every = (1.0 / fraction).round().max(2.0) as usize;
    episode % every == every - 1
}

/// The error of an exported model in `path` that ONNX Runtime cannot load.
fn exported(path: &Path) -> impl FnOnce(ModelError) -> TrainingError {
    let path = path.to_path_buf();
    move |source| TrainingError::Exported {
        path,
        source: Box::new(source),
    }
}

/// The largest difference between the exported model in `path`, run by ONNX Runtime, and
/// burn's outputs `burn` for `frames`; more than 1e-4 is an error (the export is wrong).
fn onnx_agrees(
    path: &Path,
    onnx: &mut OnnxClassifier,
    frames: &Frames,
    burn: &[f32],
) -> Result<f64, TrainingError> {
    let mut worst = 0.0f64;
    for (i, b) in burn.iter().enumerate() {
        let q = onnx
            .score(frames.frame(i))
            .map_err(|source| TrainingError::OnnxRun {
                path: path.to_path_buf(),
                source,
            })?;
        worst = rlrt_models::compare::worse(worst, (q - f64::from(*b)).abs());
    }
    if worst.is_nan() || worst > ONNX_TOLERANCE {
        return Err(TrainingError::OnnxDiffers {
            path: path.to_path_buf(),
            worst,
        });
    }
    Ok(worst)
}

/// Writes `bytes` to `path`, creating its folder.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrainingError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TrainingError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| TrainingError::Write {
        path: path.to_path_buf(),
        source,
    })
}
