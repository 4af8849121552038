//! A recorded dataset written again with its rewards computed by another reward source
//! (`rlrt relabel`), so that `rlrt train` learns from that reward instead of the one the
//! data was recorded with: a reward program (one a language model wrote, say), or a CLIP
//! reward, success classifier or reward model scoring the dataset's camera frames.
//!
//! - A program: step `t`'s reward is the program evaluated on the observation the step led
//!   to (row `t + 1`), with action `t` as `previous_action`: exactly what the same program
//!   returns in the loop on the tick after that action.
//! - A frame source: every recorded frame of its camera is scored once (same model,
//!   preprocessing and reward as in a run, through [`FrameRewards::score_frames`]); step
//!   `t`'s reward is that of the newest frame rendered at or before row `t + 1`, as a run
//!   holds a frame's reward until the next.
//! - An ensemble of several of these: each member's step rewards are standardised over the
//!   dataset (zero mean, unit deviation, so that models on different scales weigh the same),
//!   then combined step by step (mean, min, mean minus k deviations, or the log-sigmoid AND;
//!   [`crate::ensemble`]). The report ([`report`]) gives each member's own success gap, the
//!   members' pairwise correlations, their mean spread and the steps where they disagree
//!   most: a policy that exploits one reward model is rarely rewarded by all.
//!
//! Observations, actions, terminal and timeout flags, success verdicts, seeds and camera
//! frames are copied unchanged. Nothing is written unless every step was scored: a source
//! that fails on any step or frame (an evaluation error, a model error, a non-finite reward)
//! stops the run with a [`RelabelError`] naming the episode, the step or frame and the
//! cause, and the output folder is left as it was.

pub mod report;

use std::path::{Path, PathBuf};

use rlrt_runtime::config::{RewardKind, RewardSourceConfig};
use rlrt_runtime::recording::{Dataset, DatasetInfo, DatasetWriter, RecordingError};
use rlrt_runtime::{FeatureBuilder, Observation, RobotConfig};

use super::{
    checked_program, dataset_config, mean_where, pick_camera, success_gap, CameraError,
    DatasetConfigError, ProgramCheckError,
};
use crate::ensemble::{self, Aggregate};
use crate::live::frames::FrameRewards;
use crate::live::{LoadError, Unscored};
use crate::program::{EvalError, ProgramState};
use report::{
    Disagreement, EnsembleReport, LabelAgreement, MemberCorrelation, MemberSummary, RelabelOutcome,
    TermStats, TermSummary,
};

/// Where new rewards come from.
#[derive(Clone, Debug)]
pub enum RewardChoice {
    /// A reward program file.
    Program(PathBuf),
    /// A `[[rewards]]` source of the config, by name: a program, a CLIP reward, a success
    /// classifier or a reward model (the last three score the dataset's camera frames).
    Source(String),
    /// An ONNX reward model file scoring one recorded camera's frames, as a
    /// `kind = "preference_model"` source naming it would (camera: the dataset's only one
    /// when `None`).
    Model {
        path: PathBuf,
        camera: Option<String>,
    },
}

/// What to relabel, with what, and where to write it.
#[derive(Clone, Debug)]
pub struct RelabelSpec {
    /// The dataset folder.
    pub data: PathBuf,
    /// The rewards: one, or several with `ensemble`.
    pub rewards: Vec<RewardChoice>,
    /// How several rewards are combined.
    pub ensemble: Option<Aggregate>,
    /// The new dataset's folder (must not exist or be empty).
    pub out: PathBuf,
    /// Read the dataset with this hw-config instead of the one saved with it.
    pub config: Option<PathBuf>,
}

/// The name a `--model`'s source gets in the config it is added to (`model-2`, `model-3`,
/// .. for more).
const MODEL_SOURCE: &str = "model";

/// Steps listed as where an ensemble's members disagree most.
const MOST_DISAGREED: usize = 5;

/// Why a dataset was not relabelled (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    #[error("name a reward: --program, --reward or --model")]
    NoReward,
    #[error(
        "--ensemble {0} combines several rewards; name two or more (--program, --reward, \
         --model)"
    )]
    EnsembleOfOne(Aggregate),
    #[error(
        "{0} rewards named; relabel takes one, or several with --ensemble mean|min|\
         mean-minus-std[:K]|and[:REFERENCE]"
    )]
    SeveralWithoutEnsemble(usize),
    #[error(
        "--out {} is the dataset itself; write the relabelled dataset to a new folder",
        .0.display()
    )]
    OutIsData(PathBuf),
    #[error("--out {} exists and is not empty; relabel into a new folder", .0.display())]
    OutNotEmpty(PathBuf),
    #[error(transparent)]
    Dataset(#[from] RecordingError),
    #[error(transparent)]
    Config(#[from] DatasetConfigError),
    #[error(transparent)]
    Program(#[from] ProgramCheckError),
    #[error(transparent)]
    Camera(#[from] CameraError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("creating {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: RecordingError,
    },
    #[error(
        "{} failed on {}, episode {episode} ({}), step {step} (nothing was written)",
        program.display(),
        data.display(),
        file.display()
    )]
    ProgramFailed {
        program: PathBuf,
        data: PathBuf,
        episode: usize,
        file: PathBuf,
        step: usize,
        #[source]
        source: Box<EvalError>,
    },
    #[error(
        "{} returned {total} on episode {episode}, step {step}; nothing was written",
        program.display()
    )]
    ProgramNotFinite {
        program: PathBuf,
        total: f64,
        episode: usize,
        step: usize,
    },
    #[error(
        "{} has no [[rewards]] source named {name:?} (it has {has:?}); name one, or pass \
         --config with a hw-config that defines it",
        config.display()
    )]
    UnknownSource {
        config: PathBuf,
        name: String,
        has: Vec<String>,
    },
    #[error("reward {0:?} is a program source without program_path")]
    NoProgramPath(String),
    #[error(
        "--model {}: no such file (an ONNX reward model, such as rlrt reward \
         train-preferences writes)",
        .0.display()
    )]
    NoModelFile(PathBuf),
    #[error(
        "{} already has a [[rewards]] source named {name:?}; name it with --reward",
        config.display()
    )]
    SourceNameTaken { config: PathBuf, name: String },
    #[error("--model {}", path.display())]
    Model {
        path: PathBuf,
        #[source]
        source: Box<RelabelError>,
    },
    #[error("reward {0:?}: no frame source of that name was loaded")]
    NotLoaded(String),
    #[error("reward {name:?} scores camera {camera:?}, which the config does not describe")]
    NoCameraSpec { name: String, camera: String },
    #[error(
        "reward {name:?} scores camera {camera:?}, whose frames {} did not record (it \
         recorded {recorded:?}); record with rlrt record --frames",
        data.display()
    )]
    CameraNotRecorded {
        name: String,
        camera: String,
        data: PathBuf,
        recorded: Vec<String>,
    },
    #[error(
        "camera {camera:?}: {} recorded {} frames, {} describes {}",
        data.display(),
        recorded,
        config.display(),
        described
    )]
    CameraMismatch {
        camera: String,
        data: PathBuf,
        config: PathBuf,
        /// Width, height and encoding, as `640x480 rgb8`.
        recorded: String,
        described: String,
    },
    #[error(
        "episode {episode} ({}) has no frames of camera {camera:?}; nothing was written",
        file.display()
    )]
    NoFrames {
        episode: usize,
        file: PathBuf,
        camera: String,
    },
    #[error(
        "episode {episode} ({}): the frames of camera {camera:?} are not in row order",
        file.display()
    )]
    FramesOutOfOrder {
        episode: usize,
        file: PathBuf,
        camera: String,
    },
    #[error(
        "reward {name:?} failed on episode {episode} ({}), frame {frame} (row {row}); \
         nothing was written",
        file.display()
    )]
    FrameFailed {
        name: String,
        episode: usize,
        file: PathBuf,
        frame: usize,
        row: u32,
        #[source]
        source: Unscored,
    },
    #[error(
        "reward {name:?} returned {reward} on episode {episode}, frame {frame}; nothing was \
         written"
    )]
    FrameNotFinite {
        name: String,
        reward: f64,
        episode: usize,
        frame: usize,
    },
    #[error(
        "ensemble member {reward} is the same ({mean}) on every step; it cannot be \
         standardised and adds nothing to the ensemble; nothing was written"
    )]
    ConstantMember { reward: String, mean: f64 },
    #[error("standardised finite rewards always combine")]
    Combine,
}

/// Every step's new reward, and the terms behind them.
struct Scored {
    /// What `dataset.json`'s `reward` becomes.
    reward: String,
    rewards: Vec<Vec<f64>>,
    frames: usize,
    frame_labels: Option<LabelAgreement>,
    terms_over: &'static str,
    terms: Vec<TermSummary>,
}

/// Relabels the dataset as `spec` asks: scores every step with the reward (or every member
/// of the ensemble) first, then writes the new dataset, and reports on the new rewards.
pub fn relabel(spec: &RelabelSpec) -> Result<RelabelOutcome, RelabelError> {
    match (spec.rewards.len(), spec.ensemble) {
        (0, _) => return Err(RelabelError::NoReward),
        (1, Some(how)) => return Err(RelabelError::EnsembleOfOne(how)),
        (n, None) if n > 1 => return Err(RelabelError::SeveralWithoutEnsemble(n)),
        _ => {}
    }
    check_out(&spec.data, &spec.out)?;
    let dataset = Dataset::open(&spec.data)?;
    let (mut config, features) = dataset_config(&spec.data, &dataset, spec.config.as_deref())?;
    // Score every step before writing anything.
    let mut members = Vec::with_capacity(spec.rewards.len());
    let mut models = 0;
    for choice in &spec.rewards {
        members.push(score_choice(
            spec,
            &dataset,
            &mut config,
            &features,
            choice,
            &mut models,
        )?);
    }
    let mut ensemble = None;
    let scored = match spec.ensemble {
        None => members.pop().expect("one reward, checked above"),
        Some(how) => {
            let (scored, report) = combine_members(&dataset, members, how)?;
            ensemble = Some(report);
            scored
        }
    };
    write(spec, &dataset, &scored)?;

    let returns: Vec<f64> = scored.rewards.iter().map(|r| r.iter().sum()).collect();
    let recorded: Vec<f64> = dataset.episodes.iter().map(|e| e.total_reward()).collect();
    let successes: Vec<bool> = dataset.episodes.iter().map(|e| e.success).collect();
    Ok(RelabelOutcome {
        dataset: spec.data.display().to_string(),
        out: spec.out.display().to_string(),
        reward: scored.reward,
        episodes: dataset.episodes.len(),
        steps: dataset.transitions(),
        frames_scored: scored.frames,
        frame_labels: scored.frame_labels,
        recorded_reward: dataset.info.reward.clone(),
        recorded_mean_return: mean_where(&recorded, &successes, None).unwrap_or(0.0),
        mean_return: mean_where(&returns, &successes, None).unwrap_or(0.0),
        success_gap: success_gap(&returns, &successes),
        terms_over: scored.terms_over,
        terms: scored.terms,
        ensemble,
    })
}

/// `out` must be a new or empty folder, and not the dataset `data` itself.
fn check_out(data: &Path, out: &Path) -> Result<(), RelabelError> {
    let same = match (data.canonicalize(), out.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(RelabelError::OutIsData(out.to_path_buf()));
    }
    if !std::fs::read_dir(out).map_or(true, |mut entries| entries.next().is_none()) {
        return Err(RelabelError::OutNotEmpty(out.to_path_buf()));
    }
    Ok(())
}

/// Writes `dataset` to `spec.out` with `scored`'s rewards, everything else copied.
fn write(spec: &RelabelSpec, dataset: &Dataset, scored: &Scored) -> Result<(), RelabelError> {
    let info = DatasetInfo {
        reward: scored.reward.clone(),
        ..dataset.info.clone()
    };
    let mut writer =
        DatasetWriter::create(&spec.out, info, &dataset.config_text).map_err(|source| {
            RelabelError::Create {
                path: spec.out.clone(),
                source,
            }
        })?;
    for (index, (episode, episode_rewards)) in
        dataset.episodes.iter().zip(&scored.rewards).enumerate()
    {
        let mut relabelled = episode.clone();
        relabelled.rewards.clone_from(episode_rewards);
        if !dataset.info.cameras.is_empty() {
            relabelled.frames = dataset.frames(index)?;
        }
        writer.write(&relabelled)?;
    }
    Ok(())
}

/// Every step's reward from one choice. `models` counts the `--model` sources added so far.
fn score_choice(
    spec: &RelabelSpec,
    dataset: &Dataset,
    config: &mut RobotConfig,
    features: &FeatureBuilder,
    choice: &RewardChoice,
    models: &mut usize,
) -> Result<Scored, RelabelError> {
    match choice {
        RewardChoice::Program(path) => score_program(spec, dataset, config, features, path, None),
        RewardChoice::Source(name) => {
            let Some(source) = config.rewards.iter().find(|r| &r.name == name) else {
                return Err(RelabelError::UnknownSource {
                    config: config.source.clone(),
                    name: name.clone(),
                    has: config.rewards.iter().map(|r| r.name.clone()).collect(),
                });
            };
            match source.kind {
                RewardKind::Program => {
                    let path = source
                        .program_path
                        .clone()
                        .ok_or_else(|| RelabelError::NoProgramPath(name.clone()))?;
                    score_program(spec, dataset, config, features, &path, Some(name))
                }
                _ => score_frames(spec, dataset, config, name),
            }
        }
        RewardChoice::Model { path, camera } => {
            *models += 1;
            let name = match *models {
                1 => MODEL_SOURCE.to_owned(),
                n => format!("{MODEL_SOURCE}-{n}"),
            };
            add_model_source(config, dataset, &spec.data, path, camera.as_deref(), &name)?;
            score_frames(spec, dataset, config, &name).map_err(|e| RelabelError::Model {
                path: path.clone(),
                source: Box::new(e),
            })
        }
    }
}

/// Standardises each member over the dataset's steps, combines them step by step and reports
/// where they disagree.
fn combine_members(
    dataset: &Dataset,
    members: Vec<Scored>,
    how: Aggregate,
) -> Result<(Scored, EnsembleReport), RelabelError> {
    let flat: Vec<Vec<f64>> = members
        .iter()
        .map(|m| m.rewards.iter().flatten().copied().collect())
        .collect();
    let steps = flat[0].len().max(1) as f64;
    let mut summaries = Vec::with_capacity(members.len());
    let mut standardised = Vec::with_capacity(members.len());
    let successes: Vec<bool> = dataset.episodes.iter().map(|e| e.success).collect();
    for (m, values) in members.iter().zip(&flat) {
        let mean = values.iter().sum::<f64>() / steps;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / steps).sqrt();
        if std.is_nan() || std <= 1e-12 {
            return Err(RelabelError::ConstantMember {
                reward: m.reward.clone(),
                mean,
            });
        }
        let returns: Vec<f64> = m.rewards.iter().map(|r| r.iter().sum()).collect();
        summaries.push(MemberSummary {
            reward: m.reward.clone(),
            mean,
            std,
            success_gap: success_gap(&returns, &successes),
            frame_labels: m.frame_labels.clone(),
            terms_over: m.terms_over,
            terms: m.terms.clone(),
        });
        standardised.push(
            values
                .iter()
                .map(|v| (v - mean) / std)
                .collect::<Vec<f64>>(),
        );
    }

    let mut correlations = Vec::new();
    for a in 0..standardised.len() {
        for b in a + 1..standardised.len() {
            // Standardised series: the correlation is the mean product.
            let r = standardised[a]
                .iter()
                .zip(&standardised[b])
                .map(|(x, y)| x * y)
                .sum::<f64>()
                / steps;
            correlations.push(MemberCorrelation { a, b, r });
        }
    }

    let mut rewards = Vec::with_capacity(dataset.episodes.len());
    let mut spreads = Vec::new();
    let mut row = vec![0.0; members.len()];
    for e in &dataset.episodes {
        let mut episode_rewards = Vec::with_capacity(e.steps());
        for _ in 0..e.steps() {
            let index = spreads.len();
            for (slot, z) in row.iter_mut().zip(&standardised) {
                *slot = z[index];
            }
            let combined = ensemble::combine(&row, how).ok_or(RelabelError::Combine)?;
            episode_rewards.push(combined.value);
            spreads.push(combined.std);
        }
        rewards.push(episode_rewards);
    }
    // Step `index` of the flattened dataset as (episode, step).
    let locate = |mut index: usize| {
        let mut episode = 0;
        while index >= dataset.episodes[episode].steps() {
            index -= dataset.episodes[episode].steps();
            episode += 1;
        }
        (episode, index)
    };
    let mean_spread = spreads.iter().sum::<f64>() / steps;
    let mut order: Vec<usize> = (0..spreads.len()).collect();
    order.sort_by(|&a, &b| spreads[b].total_cmp(&spreads[a]).then(a.cmp(&b)));
    let most_disagreed = order
        .into_iter()
        .take(MOST_DISAGREED)
        .map(|i| Disagreement {
            episode: locate(i).0,
            step: locate(i).1,
            spread: spreads[i],
            standardised: standardised.iter().map(|z| z[i]).collect(),
        })
        .collect();
    let described: Vec<&str> = members.iter().map(|m| m.reward.as_str()).collect();
    let scored = Scored {
        reward: format!("ensemble {how} of standardised [{}]", described.join("; ")),
        rewards,
        frames: members.iter().map(|m| m.frames).sum(),
        frame_labels: None,
        // Each member's own terms are in its summary.
        terms_over: "steps",
        terms: Vec::new(),
    };
    let report = EnsembleReport {
        aggregate: how.to_string(),
        members: summaries,
        correlations,
        mean_spread,
        most_disagreed,
    };
    Ok((scored, report))
}

/// Step `t`'s reward: the program on observation row `t + 1`, action `t` as
/// `previous_action`. `source`: the config's source name, when it came from one.
fn score_program(
    spec: &RelabelSpec,
    dataset: &Dataset,
    config: &RobotConfig,
    features: &FeatureBuilder,
    path: &Path,
    source: Option<&str>,
) -> Result<Scored, RelabelError> {
    let file = path.file_name().map_or_else(
        || "program".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let name = source.unwrap_or(&file);
    let mut program = checked_program(name, path, config, &spec.data, dataset)?;
    let (obs_len, act_len) = (dataset.info.observation_len, dataset.info.action_len);
    let mut obs = Observation::empty(config.dof(), config.observation.sensor_values);
    let mut rewards: Vec<Vec<f64>> = Vec::with_capacity(dataset.episodes.len());
    let mut stats = TermStats::default();
    for (index, episode) in dataset.episodes.iter().enumerate() {
        let mut episode_rewards = Vec::with_capacity(episode.steps());
        for t in 0..episode.steps() {
            features.read(
                &episode.observations[(t + 1) * obs_len..(t + 2) * obs_len],
                &mut obs,
            );
            let action = &episode.actions[t * act_len..(t + 1) * act_len];
            let state = ProgramState::new(obs, action);
            let terms = program
                .evaluate(&state)
                .map_err(|source| RelabelError::ProgramFailed {
                    program: path.to_path_buf(),
                    data: spec.data.clone(),
                    episode: index,
                    file: dataset.files[index].clone(),
                    step: t,
                    source: Box::new(source),
                })?;
            let total = terms.total();
            if !total.is_finite() {
                return Err(RelabelError::ProgramNotFinite {
                    program: path.to_path_buf(),
                    total,
                    episode: index,
                    step: t,
                });
            }
            stats.add(terms.names(), terms.values());
            episode_rewards.push(total);
        }
        rewards.push(episode_rewards);
    }
    Ok(Scored {
        reward: format!("program {file}"),
        rewards,
        frames: 0,
        frame_labels: None,
        terms_over: "steps",
        terms: stats.summaries(),
    })
}

/// Adds a `preference_model` source for `--model` to the config the dataset is read with,
/// on `camera` (or the dataset's only recorded one).
fn add_model_source(
    config: &mut RobotConfig,
    dataset: &Dataset,
    data: &Path,
    path: &Path,
    camera: Option<&str>,
    name: &str,
) -> Result<(), RelabelError> {
    if !path.is_file() {
        return Err(RelabelError::NoModelFile(path.to_path_buf()));
    }
    let (_, camera) = pick_camera(data, dataset, camera)?;
    if config.rewards.iter().any(|r| r.name == name) {
        return Err(RelabelError::SourceNameTaken {
            config: config.source.clone(),
            name: name.to_owned(),
        });
    }
    config.rewards.push(RewardSourceConfig {
        name: name.to_owned(),
        kind: RewardKind::PreferenceModel,
        weight: 1.0,
        program_path: None,
        model_path: Some(path.to_path_buf()),
        camera: Some(camera.name.clone()),
        goal: None,
        baseline: None,
        alpha: 0.0,
        threshold: 0.5,
        resize: Default::default(),
        device: Default::default(),
        precision: Default::default(),
    });
    Ok(())
}

/// What `dataset.json` will say made the rewards of frame source `name`: the kind, the
/// source, its model.
fn describe_source(config: &RobotConfig, name: &str) -> String {
    let Some(r) = config.rewards.iter().find(|r| r.name == name) else {
        return name.to_owned();
    };
    let model = r
        .model_path
        .as_ref()
        .map_or_else(String::new, |p| p.display().to_string());
    match r.kind {
        RewardKind::Classifier => {
            format!("classifier {name} ({model}, threshold {})", r.threshold)
        }
        RewardKind::PreferenceModel => format!("preference_model {name} ({model})"),
        _ => format!("clip {name} ({model})"),
    }
}

/// Every recorded frame of the source's camera scored once; step `t`'s reward is the
/// reward of the newest frame rendered at or before observation row `t + 1` (the state the
/// step led to), as the loop holds a frame reward until the next frame is scored.
fn score_frames(
    spec: &RelabelSpec,
    dataset: &Dataset,
    config: &RobotConfig,
    name: &str,
) -> Result<Scored, RelabelError> {
    let mut model = FrameRewards::load_named(config, name)?
        .ok_or_else(|| RelabelError::NotLoaded(name.to_owned()))?;
    let (_, camera, term_names) = model.describe(0);
    let (camera, term_names) = (camera.to_owned(), term_names.to_vec());
    let (track, camera_spec) = recorded_camera(spec, dataset, config, name, &camera)?;
    let sparse = config
        .rewards
        .iter()
        .any(|r| r.name == name && r.kind == RewardKind::Classifier);
    let (mut frame_rewards, mut frame_labels) = (Vec::new(), Vec::new());

    let mut rewards: Vec<Vec<f64>> = Vec::with_capacity(dataset.episodes.len());
    let mut stats = TermStats::default();
    let mut frames = 0usize;
    for (index, episode) in dataset.episodes.iter().enumerate() {
        let tracks = dataset.frames(index)?;
        let frames_of = &tracks[track];
        let file = || dataset.files[index].clone();
        if frames_of.is_empty() {
            return Err(RelabelError::NoFrames {
                episode: index,
                file: file(),
                camera,
            });
        }
        if !frames_of.rows.windows(2).all(|w| w[0] <= w[1]) {
            return Err(RelabelError::FramesOutOfOrder {
                episode: index,
                file: file(),
                camera,
            });
        }
        let pixels: Vec<&[u8]> = (0..frames_of.len()).map(|i| frames_of.frame(i)).collect();
        let mut scores = Vec::with_capacity(pixels.len());
        for (i, result) in model
            .score_frames(0, camera_spec, &pixels)
            .into_iter()
            .enumerate()
        {
            let (reward, terms) = result.map_err(|source| RelabelError::FrameFailed {
                name: name.to_owned(),
                episode: index,
                file: file(),
                frame: i,
                row: frames_of.rows[i],
                source,
            })?;
            if !reward.is_finite() {
                return Err(RelabelError::FrameNotFinite {
                    name: name.to_owned(),
                    reward,
                    episode: index,
                    frame: i,
                });
            }
            stats.add(&term_names, &terms);
            scores.push(reward);
        }
        frames += scores.len();
        frame_rewards.extend_from_slice(&scores);
        frame_labels.extend_from_slice(&frames_of.success);
        // The newest frame at or before row t + 1; before the first frame, the first.
        let mut k = 0usize;
        let episode_rewards = (0..episode.steps())
            .map(|t| {
                while k + 1 < scores.len() && frames_of.rows[k + 1] as usize <= t + 1 {
                    k += 1;
                }
                scores[k]
            })
            .collect();
        rewards.push(episode_rewards);
    }
    Ok(Scored {
        reward: format!("{}, camera {camera}", describe_source(config, name)),
        rewards,
        frames,
        frame_labels: Some(LabelAgreement::of(&frame_rewards, &frame_labels, sparse)),
        terms_over: "frames",
        terms: stats.summaries(),
    })
}

/// The track of `camera` (read by frame source `name`) among the dataset's recorded cameras,
/// and the config's description of it, which the recording must match.
fn recorded_camera<'a>(
    spec: &RelabelSpec,
    dataset: &Dataset,
    config: &'a RobotConfig,
    name: &str,
    camera: &str,
) -> Result<(usize, &'a rlrt_runtime::config::CameraSpec), RelabelError> {
    let described = config
        .observation
        .cameras
        .iter()
        .find(|c| c.name == camera)
        .ok_or_else(|| RelabelError::NoCameraSpec {
            name: name.to_owned(),
            camera: camera.to_owned(),
        })?;
    let recorded = &dataset.info.cameras;
    let Some(track) = recorded.iter().position(|c| c.name == camera) else {
        return Err(RelabelError::CameraNotRecorded {
            name: name.to_owned(),
            camera: camera.to_owned(),
            data: spec.data.clone(),
            recorded: recorded.iter().map(|c| c.name.clone()).collect(),
        });
    };
    let info = &recorded[track];
    if info.width != described.width
        || info.height != described.height
        || info.encoding != described.encoding.as_str()
    {
        return Err(RelabelError::CameraMismatch {
            camera: camera.to_owned(),
            data: spec.data.clone(),
            config: config.source.clone(),
            recorded: format!("{}x{} {}", info.width, info.height, info.encoding),
            described: format!(
                "{}x{} {}",
                described.width,
                described.height,
                described.encoding.as_str()
            ),
        });
    }
    Ok((track, described))
}
