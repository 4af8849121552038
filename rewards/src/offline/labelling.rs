//! Preference labels for offline data (`rlrt reward label-pairs`, docs/frame-rewards.md):
//! pairs of recorded camera frames, each shown to a [`Teacher`] who says which is closer to
//! the goal: a vision-language model behind an OpenAI-compatible chat endpoint (both frames
//! as PNG images in one message), or the task's recorded score (the quantity its success
//! test thresholds, such as a distance: lower is closer), which the simulator knows and which
//! tests the rest of the pipeline. Pairs are drawn uniformly from a seeded sequence, or with
//! a [`Selection`] model, the pair of several candidates it scores closest (uncertainty
//! sampling). Labels are appended to a JSON-lines file one by one, so an interrupted run
//! keeps what it has; `append` continues it with the same pair sequence. The labels are
//! what [`super::training::train_preferences`] fits a reward model to.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rlrt_runtime::recording::{CameraInfo, Dataset, FrameTrack, RecordingError};
use rlrt_runtime::rng::{splitmix64, uniform01};

use super::{camera_spec, pick_camera, CameraError};
use crate::frame_model::{ModelError, OnnxClassifier, ScoreError};
use crate::preference::Preference;
use crate::program::generate::{chat, ChatEndpoint, GenerateError};

/// A frame of a dataset: episode, then its index among that camera's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameRef {
    pub episode: usize,
    pub frame: usize,
}

/// One line of a labels file.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The pair's index in the seeded sequence (files written before it was recorded lack
    /// it). Pairs whose answer was unusable leave gaps; `--append` continues after the
    /// highest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<usize>,
    pub camera: String,
    pub first: FrameRef,
    pub second: FrameRef,
    pub preference: Preference,
    /// Who answered: `scores`, or `vlm <model>`.
    pub teacher: String,
    /// The teacher's words (VLM teachers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// How the pair was chosen, when not uniformly: the reward model (`--reward-model`)
    /// and the number of candidates, such as `uncertainty of 10 by models/reward-1k.onnx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
}

/// Who labels the pairs.
#[derive(Clone, Debug)]
pub enum Teacher {
    /// The recorded task scores: the lower one is closer; within `tie` of each other, none.
    Scores { tie: f64 },
    /// A vision-language model, asked with the task sentence.
    Vlm {
        endpoint: ChatEndpoint,
        goal: String,
        /// Ask about every pair twice, the second time with the frames swapped, and keep
        /// only answers that agree: a VLM that favours one position (many do) then shows up
        /// as inconsistent answers instead of as wrong labels.
        both_orders: bool,
    },
}

/// What to label, by whom, and where the labels go.
#[derive(Clone, Debug)]
pub struct LabelSpec {
    /// The dataset folder (recorded with frames).
    pub data: PathBuf,
    /// Which recorded camera (default: the only one).
    pub camera: Option<String>,
    /// How many pairs to ask about.
    pub pairs: usize,
    pub seed: u64,
    pub teacher: Teacher,
    /// The labels file (JSON lines).
    pub out: PathBuf,
    /// Add to an existing labels file (continuing its pair sequence) instead of refusing it.
    pub append: bool,
    /// Ask about the pairs a reward model is least sure of instead of uniform ones.
    pub select: Option<Selection>,
    /// VLM requests in flight at once (servers such as vLLM batch them).
    pub concurrency: usize,
}

/// A teacher's answer for one pair.
enum Answer {
    Label {
        preference: Preference,
        reply: Option<String>,
    },
    /// A reply that names no single answer.
    Unparsed(String),
    /// With both orders: the answer as shown, and the answer with the frames swapped.
    Inconsistent(Preference, Preference),
}

/// Asks the VLM about one pair (and, with `both_orders`, again with the frames swapped).
fn ask_vlm(
    endpoint: &ChatEndpoint,
    goal: &str,
    both_orders: bool,
    first: &str,
    second: &str,
) -> Result<Answer, GenerateError> {
    let reply = chat(endpoint, &vlm_messages(goal, first, second))?;
    let Some(p) = parse_reply(&reply) else {
        return Ok(Answer::Unparsed(reply));
    };
    if !both_orders {
        return Ok(Answer::Label {
            preference: p,
            reply: Some(reply),
        });
    }
    let swapped = chat(endpoint, &vlm_messages(goal, second, first))?;
    Ok(match parse_reply(&swapped) {
        None => Answer::Unparsed(swapped),
        Some(q) if q == p.swapped() => Answer::Label {
            preference: p,
            reply: Some(format!("{reply} | swapped: {swapped}")),
        },
        Some(q) => Answer::Inconsistent(p, q),
    })
}

/// Uncertainty sampling: each pair is the one, of `candidates` uniform pairs, whose two
/// frames the reward model scores closest, so that its Bradley-Terry probability is nearest
/// one half. The teacher's answers then go where the model cannot yet tell the frames apart
/// rather than to pairs it already orders (most uniform pairs, once a model has some labels).
#[derive(Clone, Debug)]
pub struct Selection {
    /// An ONNX reward model of this camera (`reward train-preferences`).
    pub model: PathBuf,
    pub candidates: usize,
}

/// How selection went.
#[derive(Debug, serde::Serialize)]
pub struct SelectionSummary {
    pub model: PathBuf,
    pub candidates: usize,
    /// Mean |r(first) - r(second)| of the pairs asked, and of all candidate pairs.
    pub mean_gap_asked: f64,
    pub mean_gap_candidates: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct LabelOutcome {
    pub out: PathBuf,
    pub camera: String,
    /// Labels in the file before this run (with `--append`), and written by it.
    pub existing: usize,
    pub written: usize,
    pub first: usize,
    pub second: usize,
    pub none: usize,
    /// Answers that were not written (their fields sit beside these in the JSON).
    #[serde(flatten)]
    pub skipped: Skipped,
    /// With `--reward-model`: how the pairs were chosen.
    pub selection: Option<SelectionSummary>,
    pub seconds: f64,
}

/// Answers a teacher gave that name no preference to write: counted, with a few examples.
#[derive(Debug, Default, serde::Serialize)]
pub struct Skipped {
    /// Replies that named no single answer.
    pub unparsed: usize,
    /// A few of them, for the prompt's author.
    pub unparsed_examples: Vec<String>,
    /// With both orders: pairs whose two answers disagree (the same frame position chosen
    /// both times, or a preference one way and none the other).
    pub inconsistent: usize,
    /// How many of those chose the first-shown frame both times, and the second-shown.
    pub inconsistent_first_both: usize,
    pub inconsistent_second_both: usize,
}

impl std::fmt::Display for LabelOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} labels to {} (camera {}, {:.0} s): first {}, second {}, none {}",
            self.written,
            self.out.display(),
            self.camera,
            self.seconds,
            self.first,
            self.second,
            self.none
        )?;
        if self.existing > 0 {
            writeln!(f, "  after the {} labels it already held", self.existing)?;
        }
        if let Some(sel) = &self.selection {
            writeln!(
                f,
                "  each pair the one of {} candidates {} scores closest: mean reward gap {:.3} \
                 (all candidates {:.3})",
                sel.candidates,
                sel.model.display(),
                sel.mean_gap_asked,
                sel.mean_gap_candidates
            )?;
        }
        let skipped = &self.skipped;
        if skipped.inconsistent > 0 {
            writeln!(
                f,
                "  {} pairs got answers that disagree when the frames were swapped, and were \
                 skipped ({} chose the first-shown frame both times, {} the second-shown)",
                skipped.inconsistent,
                skipped.inconsistent_first_both,
                skipped.inconsistent_second_both
            )?;
        }
        if skipped.unparsed > 0 {
            writeln!(
                f,
                "  {} replies named no single answer and were skipped, such as {:?}",
                skipped.unparsed, skipped.unparsed_examples
            )?;
        }
        Ok(())
    }
}

/// Why labelling stopped. Labels written before the error stay in the file.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("--pairs 0: nothing to label")]
    NoPairs,
    #[error("--concurrency 0: at least one request at a time")]
    NoConcurrency,
    #[error("--candidates 0: at least one pair to choose from")]
    NoCandidates,
    #[error(transparent)]
    Dataset(#[from] RecordingError),
    #[error(transparent)]
    Camera(#[from] CameraError),
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error(
        "{} exists; pass --append to add labels to it, or name a new file",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("{} holds labels of camera {found:?}, not {camera:?}", out.display())]
    OtherCamera {
        out: PathBuf,
        found: String,
        camera: String,
    },
    #[error("--reward-model {}", path.display())]
    SelectionModel {
        path: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
    #[error("--reward-model: episode {episode}, frame {frame}")]
    SelectionScore {
        episode: usize,
        frame: usize,
        #[source]
        source: ScoreError,
    },
    #[error("{}: camera {camera:?} has {total} frames; a pair needs two", data.display())]
    TooFewFrames {
        data: PathBuf,
        camera: String,
        total: usize,
    },
    #[error(
        "{}: every frame's task score is 0 (its task has no success test), so the scores \
         teacher cannot order them; use a VLM teacher",
        .0.display()
    )]
    NoScores(PathBuf),
    #[error(transparent)]
    Png(#[from] png::EncodingError),
    #[error(
        "asking for pair {pair}; the {written} labels written so far are kept in {} \
         (continue with --append)",
        out.display()
    )]
    Ask {
        pair: usize,
        written: usize,
        out: PathBuf,
        #[source]
        source: AskError,
    },
    #[error("creating {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening {}", path.display())]
    Open {
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
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Why a teacher gave no answer for a pair.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(transparent)]
    Chat(#[from] GenerateError),
    #[error("a request panicked")]
    Panicked,
}

/// A labels file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads a labels file: every line parsed, numbered in errors.
pub fn read_labels(path: &Path) -> Result<Vec<Label>, LabelsError> {
    let read = |source| LabelsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut labels = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(read)?;
        if line.trim().is_empty() {
            continue;
        }
        labels.push(
            serde_json::from_str::<Label>(&line).map_err(|source| LabelsError::Line {
                path: path.to_path_buf(),
                line: n + 1,
                source,
            })?,
        );
    }
    Ok(labels)
}

/// Labels `spec.pairs` pairs of frames and appends them to `spec.out`, one line each as it
/// comes: pairs whose answer names no single preference (or, with both orders, disagrees
/// with itself) are counted and skipped.
pub fn label_pairs(spec: &LabelSpec) -> Result<LabelOutcome, LabelError> {
    let start = Instant::now();
    if spec.pairs == 0 {
        return Err(LabelError::NoPairs);
    }
    let dataset = Dataset::open(&spec.data)?;
    let (track, camera) = pick_camera(&spec.data, &dataset, spec.camera.as_deref())?;
    let (existing, next) = existing_labels(spec, &camera.name)?;
    if spec.concurrency == 0 {
        return Err(LabelError::NoConcurrency);
    }
    // With a selection model: checked on a black frame before anything else is read.
    let mut model = selection_model(spec.select.as_ref(), camera)?;
    let table = FrameTable::read(&dataset, track, model.as_mut())?;
    if table.total < 2 {
        return Err(LabelError::TooFewFrames {
            data: spec.data.clone(),
            camera: camera.name.clone(),
            total: table.total,
        });
    }
    if matches!(spec.teacher, Teacher::Scores { .. })
        && table.scores.iter().flatten().all(|s| *s == 0.0)
    {
        return Err(LabelError::NoScores(spec.data.clone()));
    }
    let mut file = open_labels(&spec.out)?;
    let mut outcome = LabelOutcome {
        out: spec.out.clone(),
        camera: camera.name.clone(),
        existing,
        written: 0,
        first: 0,
        second: 0,
        none: 0,
        skipped: Skipped::default(),
        selection: None,
        seconds: 0.0,
    };
    // Every pair of this run first (cheap), so that a VLM can be asked about several at once.
    let (drawn, gaps) = draw_pairs(spec, next, &table);
    let teacher = match &spec.teacher {
        Teacher::Scores { .. } => "scores".to_owned(),
        Teacher::Vlm { endpoint, .. } => format!("vlm {}", endpoint.model),
    };
    let chosen = spec.select.as_ref().map(|sel| {
        format!(
            "uncertainty of {} by {}",
            sel.candidates,
            sel.model.display()
        )
    });
    // The newest episode read for a VLM, kept for the next pair.
    let mut cached: Option<(usize, FrameTrack)> = None;
    let mut frame_url = |r: FrameRef| -> Result<String, LabelError> {
        if cached.as_ref().is_none_or(|(e, _)| *e != r.episode) {
            cached = Some((r.episode, dataset.frames(r.episode)?.swap_remove(track)));
        }
        let (_, t) = cached.as_ref().expect("filled above");
        Ok(png_data_url(t.frame(r.frame), camera)?)
    };
    let write_error = |source| LabelError::Write {
        path: spec.out.clone(),
        source,
    };
    // Up to `concurrency` requests in flight; labels are written in pair order all the same.
    for chunk in drawn.chunks(spec.concurrency) {
        let answers = answer_chunk(&spec.teacher, chunk, &table.scores, &mut frame_url)?;
        for (&(i, a, b), answer) in chunk.iter().zip(answers) {
            let answer = answer.map_err(|source| LabelError::Ask {
                pair: i,
                written: outcome.written,
                out: spec.out.clone(),
                source,
            })?;
            let Some((preference, reply)) = outcome.skipped.take(answer) else {
                continue;
            };
            let label = Label {
                pair: Some(i),
                camera: camera.name.clone(),
                first: a,
                second: b,
                preference,
                teacher: teacher.clone(),
                reply,
                chosen: chosen.clone(),
            };
            let mut line = serde_json::to_string(&label)?;
            line.push('\n');
            file.write_all(line.as_bytes())
                .and_then(|()| file.flush())
                .map_err(write_error)?;
            outcome.written += 1;
            match preference {
                Preference::First => outcome.first += 1,
                Preference::Second => outcome.second += 1,
                Preference::None => outcome.none += 1,
            }
        }
    }
    file.sync_all().map_err(write_error)?;
    if let Some(sel) = &spec.select {
        outcome.selection = Some(SelectionSummary {
            model: sel.model.clone(),
            candidates: sel.candidates,
            mean_gap_asked: gaps.asked / spec.pairs as f64,
            mean_gap_candidates: gaps.candidates / gaps.drawn.max(1) as f64,
        });
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    Ok(outcome)
}

impl Skipped {
    /// The preference (and the teacher's words) of an answer to write; an answer that is
    /// not one is counted instead.
    fn take(&mut self, answer: Answer) -> Option<(Preference, Option<String>)> {
        match answer {
            Answer::Label { preference, reply } => Some((preference, reply)),
            Answer::Unparsed(reply) => {
                self.unparsed += 1;
                if self.unparsed_examples.len() < 3 {
                    self.unparsed_examples
                        .push(reply.chars().take(200).collect());
                }
                None
            }
            Answer::Inconsistent(p, q) => {
                self.inconsistent += 1;
                if p == q {
                    match p {
                        Preference::First => self.inconsistent_first_both += 1,
                        Preference::Second => self.inconsistent_second_both += 1,
                        Preference::None => unreachable!("none twice agrees"),
                    }
                }
                None
            }
        }
    }
}

/// How many labels `spec.out` holds already, and the pair to continue after: refused
/// unless `spec.append`, and then only for the same camera.
fn existing_labels(spec: &LabelSpec, camera: &str) -> Result<(usize, usize), LabelError> {
    match std::fs::metadata(&spec.out) {
        Ok(m) if m.len() > 0 => {
            if !spec.append {
                return Err(LabelError::Exists(spec.out.clone()));
            }
            let old = read_labels(&spec.out)?;
            if let Some(l) = old.iter().find(|l| l.camera != camera) {
                return Err(LabelError::OtherCamera {
                    out: spec.out.clone(),
                    found: l.camera.clone(),
                    camera: camera.to_owned(),
                });
            }
            // Continue after the highest pair asked about (older files: one line per pair).
            let next = old
                .iter()
                .filter_map(|l| l.pair)
                .max()
                .map_or(old.len(), |p| p + 1);
            Ok((old.len(), next))
        }
        _ => Ok((0, 0)),
    }
}

/// The selection model, loaded for `camera` (which checks it on a black frame).
fn selection_model(
    select: Option<&Selection>,
    camera: &CameraInfo,
) -> Result<Option<OnnxClassifier>, LabelError> {
    let Some(sel) = select else {
        return Ok(None);
    };
    if sel.candidates == 0 {
        return Err(LabelError::NoCandidates);
    }
    let spec = camera_spec(camera)?;
    OnnxClassifier::load_reward(&sel.model, &spec, None)
        .map(Some)
        .map_err(|source| LabelError::SelectionModel {
            path: sel.model.clone(),
            source: Box::new(source),
        })
}

/// Opens the labels file for appending, creating its folder.
fn open_labels(out: &Path) -> Result<std::fs::File, LabelError> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| LabelError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .map_err(|source| LabelError::Open {
            path: out.to_path_buf(),
            source,
        })
}

/// The camera's frames, episode by episode, without their pixels (read again only for a
/// VLM): how many, their task scores, and the selection model's reward of each.
struct FrameTable {
    counts: Vec<usize>,
    scores: Vec<Vec<f64>>,
    /// Empty without a selection model.
    rewards: Vec<Vec<f64>>,
    total: usize,
}

impl FrameTable {
    fn read(
        dataset: &Dataset,
        track: usize,
        mut model: Option<&mut OnnxClassifier>,
    ) -> Result<Self, LabelError> {
        let mut counts = Vec::with_capacity(dataset.episodes.len());
        let mut scores: Vec<Vec<f64>> = Vec::with_capacity(dataset.episodes.len());
        let mut rewards: Vec<Vec<f64>> = Vec::new();
        for e in 0..dataset.episodes.len() {
            let tracks = dataset.frames(e)?;
            let t = &tracks[track];
            counts.push(t.len());
            scores.push(t.scores.clone());
            if let Some(model) = model.as_mut() {
                let episode = (0..t.len())
                    .map(|i| {
                        model
                            .score(t.frame(i))
                            .map_err(|source| LabelError::SelectionScore {
                                episode: e,
                                frame: i,
                                source,
                            })
                    })
                    .collect::<Result<Vec<f64>, _>>()?;
                rewards.push(episode);
            }
        }
        let total = counts.iter().sum();
        Ok(Self {
            counts,
            scores,
            rewards,
            total,
        })
    }
}

/// Sums of the selection model's reward gap |r(first) - r(second)|: over the pairs asked,
/// and over every candidate drawn.
#[derive(Default)]
struct Gaps {
    asked: f64,
    candidates: f64,
    drawn: usize,
}

/// Pairs `next..next + spec.pairs` of the sequence: uniform, or each the candidate the
/// selection model scores closest.
fn draw_pairs(
    spec: &LabelSpec,
    next: usize,
    table: &FrameTable,
) -> (Vec<(usize, FrameRef, FrameRef)>, Gaps) {
    let (counts, total) = (&table.counts, table.total);
    let mut gaps = Gaps::default();
    let mut drawn = Vec::with_capacity(spec.pairs);
    for i in next..next + spec.pairs {
        let (a, b) = match &spec.select {
            None => draw_pair(spec.seed, i, counts, total),
            Some(sel) => {
                let gap = |(a, b): &(FrameRef, FrameRef)| {
                    (table.rewards[a.episode][a.frame] - table.rewards[b.episode][b.frame]).abs()
                };
                // Candidate 0 is the uniform pair i; the others come from seeds of their own.
                let mut best: Option<((FrameRef, FrameRef), f64)> = None;
                for k in 0..sel.candidates {
                    let seed = spec.seed.wrapping_add((k as u64).wrapping_mul(0x9E37_79B9));
                    let pair = draw_pair(seed, i, counts, total);
                    let g = gap(&pair);
                    gaps.candidates += g;
                    gaps.drawn += 1;
                    if best.is_none_or(|(_, b)| g < b) {
                        best = Some((pair, g));
                    }
                }
                let (pair, g) = best.expect("at least one candidate");
                gaps.asked += g;
                pair
            }
        };
        drawn.push((i, a, b));
    }
    (drawn, gaps)
}

/// The teacher's answers for `chunk`, in order: the scores teacher compares the recorded
/// scores, a VLM is asked about every pair of the chunk at once.
fn answer_chunk(
    teacher: &Teacher,
    chunk: &[(usize, FrameRef, FrameRef)],
    scores: &[Vec<f64>],
    frame_url: &mut impl FnMut(FrameRef) -> Result<String, LabelError>,
) -> Result<Vec<Result<Answer, AskError>>, LabelError> {
    Ok(match teacher {
        Teacher::Scores { tie } => chunk
            .iter()
            .map(|(_, a, b)| {
                let (sa, sb) = (scores[a.episode][a.frame], scores[b.episode][b.frame]);
                let preference = if (sa - sb).abs() <= *tie {
                    Preference::None
                } else if sa < sb {
                    Preference::First
                } else {
                    Preference::Second
                };
                Ok(Answer::Label {
                    preference,
                    reply: None,
                })
            })
            .collect(),
        Teacher::Vlm {
            endpoint,
            goal,
            both_orders,
        } => {
            let mut urls = Vec::with_capacity(chunk.len());
            for (_, a, b) in chunk {
                urls.push((frame_url(*a)?, frame_url(*b)?));
            }
            std::thread::scope(|scope| {
                let asking: Vec<_> = urls
                    .iter()
                    .map(|(x, y)| scope.spawn(|| ask_vlm(endpoint, goal, *both_orders, x, y)))
                    .collect();
                asking
                    .into_iter()
                    .map(|h| match h.join() {
                        Ok(answer) => answer.map_err(AskError::from),
                        Err(_) => Err(AskError::Panicked),
                    })
                    .collect()
            })
        }
    })
}

/// Pair `i` of the sequence for `seed`: two distinct frames drawn uniformly from all frames.
fn draw_pair(seed: u64, i: usize, counts: &[usize], total: usize) -> (FrameRef, FrameRef) {
    // Pair i's own stream: the seed and i hashed together, so that neighbouring pairs'
    // streams do not overlap (splitmix64 steps its state by a fixed constant).
    let mut s = seed;
    let mut t = splitmix64(&mut s).wrapping_add((i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut rng = splitmix64(&mut t);
    let at = |k: usize| {
        let mut k = k;
        for (episode, n) in counts.iter().enumerate() {
            if k < *n {
                return FrameRef { episode, frame: k };
            }
            k -= n;
        }
        unreachable!("k < total")
    };
    let a = ((uniform01(&mut rng) * total as f64) as usize).min(total - 1);
    let mut b = ((uniform01(&mut rng) * (total - 1) as f64) as usize).min(total - 2);
    if b >= a {
        b += 1;
    }
    (at(a), at(b))
}

/// A VLM's reply as a preference: its first word if that is an answer (first, second, none
/// or neither), else the one answer it names (a reply naming two is not used).
pub fn parse_reply(reply: &str) -> Option<Preference> {
    let reply = match reply.rfind("</think>") {
        Some(end) => &reply[end + "</think>".len()..],
        None => reply,
    };
    let words: Vec<String> = reply
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let answer = |w: &str| match w {
        "first" => Some(Preference::First),
        "second" => Some(Preference::Second),
        "none" | "neither" => Some(Preference::None),
        _ => None,
    };
    if let Some(p) = words.first().and_then(|w| answer(w)) {
        return Some(p);
    }
    let named = |options: &[&str]| words.iter().any(|w| options.contains(&w.as_str()));
    let found = [
        (named(&["first"]), Preference::First),
        (named(&["second"]), Preference::Second),
        (named(&["none", "neither"]), Preference::None),
    ];
    let mut hits = found.iter().filter(|(hit, _)| *hit);
    match (hits.next(), hits.next()) {
        (Some((_, p)), None) => Some(*p),
        _ => None,
    }
}

/// A frame as a PNG data URL.
fn png_data_url(pixels: &[u8], camera: &CameraInfo) -> Result<String, png::EncodingError> {
    use base64::Engine;
    let channels = if camera.encoding == "mono8" { 1 } else { 3 };
    let png = rlrt_runtime::recording::encode_png(pixels, camera.width, camera.height, channels)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// What the VLM is asked, with both frames.
fn vlm_messages(goal: &str, first: &str, second: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!({
            "role": "system",
            "content": "You compare two camera images of a robot and judge which one is closer \
                        to completing a task. Answer with one word: first, second, or none \
                        (when you cannot tell)."
        }),
        json!({
            "role": "user",
            "content": [
                {"type": "text", "text": format!("The task: {goal}\nThe first image:")},
                {"type": "image_url", "image_url": {"url": first}},
                {"type": "text", "text": "The second image:"},
                {"type": "image_url", "image_url": {"url": second}},
                {"type": "text", "text": "Which image shows the robot closer to completing the \
                                          task? Answer first, second, or none."}
            ]
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_name_one_answer_or_none_is_taken() {
        assert_eq!(parse_reply("first"), Some(Preference::First));
        assert_eq!(parse_reply("The second image."), Some(Preference::Second));
        assert_eq!(
            parse_reply("Neither: they look alike"),
            Some(Preference::None)
        );
        assert_eq!(
            parse_reply("<think>the first or the second?</think>Second"),
            Some(Preference::Second)
        );
        assert_eq!(
            parse_reply("First. It is closer than the second."),
            Some(Preference::First)
        );
        assert_eq!(parse_reply("I think first, no, second"), None);
        assert_eq!(parse_reply("banana"), None);
        assert_eq!(parse_reply(""), None);
    }

    #[test]
    fn pairs_are_two_distinct_frames_and_the_sequence_is_fixed_by_the_seed() {
        let counts = [3, 0, 4];
        for i in 0..200 {
            let (a, b) = draw_pair(7, i, &counts, 7);
            assert_ne!(a, b);
            for r in [a, b] {
                assert!(r.frame < counts[r.episode], "{r:?}");
            }
            assert_eq!(draw_pair(7, i, &counts, 7), (a, b));
        }
        // Neighbouring pairs are independent: with 1000 frames, pair i + 1 shares a frame
        // with pair i about 4 times in 1000.
        let many = [1000];
        let shared = (0..1000)
            .filter(|i| {
                let (a, b) = draw_pair(0, *i, &many, 1000);
                let (c, d) = draw_pair(0, i + 1, &many, 1000);
                [a, b].iter().any(|r| *r == c || *r == d)
            })
            .count();
        assert!(shared < 15, "{shared} neighbouring pairs share a frame");
        assert_ne!(
            (0..20)
                .map(|i| draw_pair(7, i, &counts, 7))
                .collect::<Vec<_>>(),
            (0..20)
                .map(|i| draw_pair(8, i, &counts, 7))
                .collect::<Vec<_>>()
        );
    }
}
