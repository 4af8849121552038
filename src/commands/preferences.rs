//! Preference labels for offline data and the reward model fitted to them (docs/frame-rewards.md):
//!
//! - `rlrt reward label-pairs`: pairs of recorded camera frames, each shown to a teacher who
//!   says which is closer to the goal: a vision-language model behind an OpenAI-compatible
//!   chat endpoint (both frames as PNG images in one message), or the task's recorded score
//!   (the quantity its success test thresholds, such as a distance: lower is closer), which
//!   the simulator knows and which tests the rest of the pipeline. Labels are appended to a
//!   JSON-lines file one by one, so an interrupted run keeps what it has; `--append`
//!   continues it with the same pair sequence.
//! - `rlrt reward train-preferences`: a Bradley-Terry reward model on those labels, in burn,
//!   validated on pairs from held-out episodes, exported to ONNX and checked with ONNX
//!   Runtime. The file is a `kind = "preference_model"` reward source, and
//!   `rlrt relabel --reward` writes a dataset with its rewards for `rlrt train`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rlrt_rewards::classifier::{ClassifierConfig, Frames};
use rlrt_rewards::preference::{self, Pair, PairScores, Preference};
use rlrt_rewards::program::generate::{chat, ChatEndpoint};
use rlrt_runtime::recording::{CameraInfo, Dataset, FrameTrack};
use rlrt_runtime::rng::{splitmix64, uniform01};

use super::train_classifier::{is_validation, onnx_agrees, spec, write_file};
use rlrt_rewards::frame_model::OnnxClassifier;

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

/// `rlrt reward label-pairs` on the command line.
#[derive(clap::Args)]
pub struct LabelPairsCommand {
    /// The dataset folder (`rlrt record --frames`).
    pub data: PathBuf,
    /// Which recorded camera (default: the only one).
    #[arg(long)]
    pub camera: Option<String>,
    /// How many pairs to label.
    #[arg(long, default_value_t = 1000)]
    pub pairs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `vlm` or `scores`.
    #[arg(long, default_value = "vlm")]
    pub teacher: String,
    /// Scores teacher: scores this close are labelled none.
    #[arg(long, default_value_t = 0.0)]
    pub tie: f64,
    /// VLM teacher: base URL of the API, such as http://127.0.0.1:8000/v1.
    #[arg(long)]
    pub base_url: Option<String>,
    /// VLM teacher: model name the endpoint knows (one that reads images).
    #[arg(long)]
    pub model: Option<String>,
    /// VLM teacher: the task, in one sentence.
    #[arg(long)]
    pub goal: Option<String>,
    /// VLM teacher: environment variable holding the API key (sent as a bearer token).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// VLM teacher: limit for each request, reply included.
    #[arg(long, default_value_t = 60.0)]
    pub timeout_s: f64,
    /// VLM teacher: ask about each pair twice, frames swapped the second time, and keep
    /// only answers that agree (counts the pairs where the model chose by position).
    #[arg(long)]
    pub both_orders: bool,
    /// VLM teacher: requests in flight at once (servers such as vLLM batch them); labels
    /// are still written in pair order.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// The labels file (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
    /// Add to an existing labels file, continuing its sequence of pairs.
    #[arg(long)]
    pub append: bool,
    /// Ask about the pairs this reward model (`reward train-preferences`, fitted to the
    /// labels so far) is least sure of: of --candidates uniform pairs, the one whose
    /// frames it scores closest.
    #[arg(long)]
    pub reward_model: Option<PathBuf>,
    /// With --reward-model: uniform pairs drawn to choose each pair from.
    #[arg(long, default_value_t = 10, requires = "reward_model")]
    pub candidates: usize,
    #[command(flatten)]
    pub output: super::Output,
}

impl LabelPairsCommand {
    /// The teacher the flags describe (the API key read from its variable).
    fn teacher(&self) -> anyhow::Result<Teacher> {
        match self.teacher.as_str() {
            "scores" if self.both_orders => anyhow::bail!(
                "--both-orders is for a VLM teacher (the scores teacher has no favourite \
                 position)"
            ),
            "scores" => Ok(Teacher::Scores { tie: self.tie }),
            "vlm" => {
                let need = |v: &Option<String>, flag: &str| {
                    v.clone()
                        .with_context(|| format!("--teacher vlm needs {flag}"))
                };
                let api_key = match &self.api_key_env {
                    Some(var) => Some(std::env::var(var).with_context(|| {
                        format!("--api-key-env {var}: the variable is not set")
                    })?),
                    None => None,
                };
                Ok(Teacher::Vlm {
                    endpoint: ChatEndpoint {
                        base_url: need(&self.base_url, "--base-url")?,
                        model: need(&self.model, "--model")?,
                        api_key,
                        timeout: std::time::Duration::from_secs_f64(self.timeout_s.max(0.001)),
                        temperature: 0.0,
                    },
                    goal: need(&self.goal, "--goal")?,
                    both_orders: self.both_orders,
                })
            }
            other => anyhow::bail!("--teacher {other:?}: expected vlm or scores"),
        }
    }
}

/// `rlrt reward label-pairs`: labels and prints what was written.
pub fn execute_label_pairs(command: LabelPairsCommand) -> anyhow::Result<super::Exit> {
    let outcome = label_pairs(&LabelArgs {
        teacher: command.teacher()?,
        data: command.data,
        camera: command.camera,
        pairs: command.pairs,
        seed: command.seed,
        out: command.out,
        append: command.append,
        select: command.reward_model.map(|model| Selection {
            model,
            candidates: command.candidates,
        }),
        concurrency: command.concurrency,
    })?;
    command.output.print(&outcome)?;
    Ok(super::Exit::Success)
}

/// `rlrt reward train-preferences` on the command line.
#[derive(clap::Args)]
pub struct TrainPreferencesCommand {
    /// The dataset folder the labels refer to.
    #[arg(long)]
    pub data: PathBuf,
    /// The labels file.
    #[arg(long)]
    pub labels: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    #[command(flatten)]
    pub net: super::train_classifier::NetArgs,
    #[command(flatten)]
    pub output: super::Output,
}

/// `rlrt reward train-preferences`: trains with a progress bar over the epochs, then prints
/// the outcome.
pub fn execute_train_preferences(command: TrainPreferencesCommand) -> anyhow::Result<super::Exit> {
    let progress = super::Progress::new(command.epochs);
    let outcome = train_preferences(
        &TrainArgs {
            config: command.net.config(command.epochs, command.learning_rate),
            validation_fraction: command.net.validation_fraction,
            data: command.data,
            labels: command.labels,
            out: command.out,
        },
        |epoch, loss| progress.epoch(epoch, loss),
    )?;
    drop(progress);
    command.output.print(&outcome)?;
    Ok(super::Exit::Success)
}

pub struct LabelArgs {
    pub data: PathBuf,
    pub camera: Option<String>,
    pub pairs: usize,
    pub seed: u64,
    pub teacher: Teacher,
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
) -> anyhow::Result<Answer> {
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
    /// Replies that named no single answer: counted, not written.
    pub unparsed: usize,
    /// A few of them, for the prompt's author.
    pub unparsed_examples: Vec<String>,
    /// With both orders: pairs whose two answers disagree (the same frame position chosen
    /// both times, or a preference one way and none the other): counted, not written.
    pub inconsistent: usize,
    /// How many of those chose the first-shown frame both times, and the second-shown.
    pub inconsistent_first_both: usize,
    pub inconsistent_second_both: usize,
    /// With `--reward-model`: how the pairs were chosen.
    pub selection: Option<SelectionSummary>,
    pub seconds: f64,
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
        if self.inconsistent > 0 {
            writeln!(
                f,
                "  {} pairs got answers that disagree when the frames were swapped, and were \
                 skipped ({} chose the first-shown frame both times, {} the second-shown)",
                self.inconsistent, self.inconsistent_first_both, self.inconsistent_second_both
            )?;
        }
        if self.unparsed > 0 {
            writeln!(
                f,
                "  {} replies named no single answer and were skipped, such as {:?}",
                self.unparsed, self.unparsed_examples
            )?;
        }
        Ok(())
    }
}

/// The camera of `dataset` named `camera` (or its only one), with its index.
pub(crate) fn pick_camera<'a>(
    data: &Path,
    dataset: &'a Dataset,
    camera: Option<&str>,
) -> anyhow::Result<(usize, &'a CameraInfo)> {
    let cameras = &dataset.info.cameras;
    anyhow::ensure!(
        !cameras.is_empty(),
        "{}: recorded without camera frames; record with `rlrt record --frames`",
        data.display()
    );
    let names = || cameras.iter().map(|c| c.name.as_str()).collect::<Vec<_>>();
    let index = match camera {
        Some(name) => cameras
            .iter()
            .position(|c| c.name == name)
            .with_context(|| format!("camera {name:?}: {} has {:?}", data.display(), names()))?,
        None if cameras.len() == 1 => 0,
        None => anyhow::bail!(
            "{} has several cameras ({:?}); pick one with --camera",
            data.display(),
            names()
        ),
    };
    Ok((index, &cameras[index]))
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
fn png_data_url(pixels: &[u8], camera: &CameraInfo) -> anyhow::Result<String> {
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

/// Reads a labels file: every line parsed, numbered in errors.
pub fn read_labels(path: &Path) -> anyhow::Result<Vec<Label>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut labels = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        labels.push(
            serde_json::from_str::<Label>(&line)
                .with_context(|| format!("{}: line {}", path.display(), n + 1))?,
        );
    }
    Ok(labels)
}

pub fn label_pairs(args: &LabelArgs) -> anyhow::Result<LabelOutcome> {
    let start = Instant::now();
    anyhow::ensure!(args.pairs > 0, "--pairs 0: nothing to label");
    let dataset = Dataset::open(&args.data)?;
    let (track, camera) = pick_camera(&args.data, &dataset, args.camera.as_deref())?;
    let (existing, next) = match std::fs::metadata(&args.out) {
        Ok(m) if m.len() > 0 => {
            anyhow::ensure!(
                args.append,
                "{} exists; pass --append to add labels to it, or name a new file",
                args.out.display()
            );
            let old = read_labels(&args.out)?;
            if let Some(l) = old.iter().find(|l| l.camera != camera.name) {
                anyhow::bail!(
                    "{} holds labels of camera {:?}, not {:?}",
                    args.out.display(),
                    l.camera,
                    camera.name
                );
            }
            // Continue after the highest pair asked about (older files: one line per pair).
            let next = old
                .iter()
                .filter_map(|l| l.pair)
                .max()
                .map_or(old.len(), |p| p + 1);
            (old.len(), next)
        }
        _ => (0, 0),
    };

    anyhow::ensure!(
        args.concurrency >= 1,
        "--concurrency 0: at least one request at a time"
    );
    // With a selection model: checked on a black frame before anything else is read.
    let mut model = match &args.select {
        Some(sel) => {
            anyhow::ensure!(
                sel.candidates >= 1,
                "--candidates 0: at least one pair to choose from"
            );
            Some(
                OnnxClassifier::load_reward(&sel.model, &spec(camera)?, None)
                    .with_context(|| format!("--reward-model {}", sel.model.display()))?,
            )
        }
        None => None,
    };
    // Frame counts and scores per episode, and the selection model's reward of every frame
    // (pixels are read again only for a VLM).
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
                    model.score(t.frame(i)).map_err(|why| {
                        anyhow::anyhow!("--reward-model: episode {e}, frame {i}: {why}")
                    })
                })
                .collect::<anyhow::Result<Vec<f64>>>()?;
            rewards.push(episode);
        }
    }
    let total: usize = counts.iter().sum();
    anyhow::ensure!(
        total >= 2,
        "{}: camera {:?} has {total} frames; a pair needs two",
        args.data.display(),
        camera.name
    );
    if matches!(args.teacher, Teacher::Scores { .. }) {
        anyhow::ensure!(
            scores.iter().flatten().any(|s| *s != 0.0),
            "{}: every frame's task score is 0 (its task has no success test), so the scores \
             teacher cannot order them; use a VLM teacher",
            args.data.display()
        );
    }

    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("opening {}", args.out.display()))?;
    let mut outcome = LabelOutcome {
        out: args.out.clone(),
        camera: camera.name.clone(),
        existing,
        written: 0,
        first: 0,
        second: 0,
        none: 0,
        unparsed: 0,
        unparsed_examples: Vec::new(),
        inconsistent: 0,
        inconsistent_first_both: 0,
        inconsistent_second_both: 0,
        selection: None,
        seconds: 0.0,
    };
    let (mut gap_asked, mut gap_candidates, mut drawn) = (0.0, 0.0, 0usize);
    // The newest episode read for a VLM, kept for the next pair.
    let mut cached: Option<(usize, FrameTrack)> = None;
    let mut frame_url = |r: FrameRef| -> anyhow::Result<String> {
        if cached.as_ref().is_none_or(|(e, _)| *e != r.episode) {
            cached = Some((r.episode, dataset.frames(r.episode)?.swap_remove(track)));
        }
        let (_, t) = cached.as_ref().expect("filled above");
        png_data_url(t.frame(r.frame), camera)
    };
    // Every pair of this run first (cheap), so that a VLM can be asked about several at once.
    let mut drawn_pairs = Vec::with_capacity(args.pairs);
    for i in next..next + args.pairs {
        let (a, b) = match &args.select {
            None => draw_pair(args.seed, i, &counts, total),
            Some(sel) => {
                let gap = |(a, b): &(FrameRef, FrameRef)| {
                    (rewards[a.episode][a.frame] - rewards[b.episode][b.frame]).abs()
                };
                // Candidate 0 is the uniform pair i; the others come from seeds of their own.
                let mut best: Option<((FrameRef, FrameRef), f64)> = None;
                for k in 0..sel.candidates {
                    let seed = args.seed.wrapping_add((k as u64).wrapping_mul(0x9E37_79B9));
                    let pair = draw_pair(seed, i, &counts, total);
                    let g = gap(&pair);
                    gap_candidates += g;
                    drawn += 1;
                    if best.is_none_or(|(_, b)| g < b) {
                        best = Some((pair, g));
                    }
                }
                let (pair, g) = best.expect("at least one candidate");
                gap_asked += g;
                pair
            }
        };
        drawn_pairs.push((i, a, b));
    }
    let teacher = match &args.teacher {
        Teacher::Scores { .. } => "scores".to_owned(),
        Teacher::Vlm { endpoint, .. } => format!("vlm {}", endpoint.model),
    };
    let chosen = args.select.as_ref().map(|sel| {
        format!(
            "uncertainty of {} by {}",
            sel.candidates,
            sel.model.display()
        )
    });
    // Up to `concurrency` requests in flight; labels are written in pair order all the same.
    for chunk in drawn_pairs.chunks(args.concurrency) {
        let answers: Vec<anyhow::Result<Answer>> = match &args.teacher {
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
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err(anyhow::anyhow!("a request panicked")))
                        })
                        .collect()
                })
            }
        };
        for (&(i, a, b), answer) in chunk.iter().zip(answers) {
            let answer = answer.with_context(|| {
                format!(
                    "asking for pair {i}; the {} labels written so far are kept in {} \
                     (continue with --append)",
                    outcome.written,
                    args.out.display()
                )
            })?;
            let (preference, reply) = match answer {
                Answer::Label { preference, reply } => (preference, reply),
                Answer::Unparsed(reply) => {
                    outcome.unparsed += 1;
                    if outcome.unparsed_examples.len() < 3 {
                        outcome
                            .unparsed_examples
                            .push(reply.chars().take(200).collect());
                    }
                    continue;
                }
                Answer::Inconsistent(p, q) => {
                    outcome.inconsistent += 1;
                    if p == q {
                        match p {
                            Preference::First => outcome.inconsistent_first_both += 1,
                            Preference::Second => outcome.inconsistent_second_both += 1,
                            Preference::None => unreachable!("none twice agrees"),
                        }
                    }
                    continue;
                }
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
                .with_context(|| format!("writing {}", args.out.display()))?;
            outcome.written += 1;
            match preference {
                Preference::First => outcome.first += 1,
                Preference::Second => outcome.second += 1,
                Preference::None => outcome.none += 1,
            }
        }
    }
    file.sync_all()
        .with_context(|| format!("writing {}", args.out.display()))?;
    if let Some(sel) = &args.select {
        outcome.selection = Some(SelectionSummary {
            model: sel.model.clone(),
            candidates: sel.candidates,
            mean_gap_asked: gap_asked / args.pairs as f64,
            mean_gap_candidates: gap_candidates / drawn.max(1) as f64,
        });
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    Ok(outcome)
}

pub struct TrainArgs {
    pub data: PathBuf,
    pub labels: PathBuf,
    pub out: PathBuf,
    /// Every round(1 / fraction)-th episode is held out: pairs with a frame from one validate.
    pub validation_fraction: f64,
    pub config: ClassifierConfig,
}

#[derive(Debug, serde::Serialize)]
pub struct TrainOutcome {
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

impl std::fmt::Display for TrainOutcome {
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
        writeln!(
            f,
            "ONNX Runtime agrees with burn within {:.1e}",
            self.onnx_max_difference
        )?;
        writeln!(
            f,
            "use it: [[rewards]] kind = \"preference_model\", model_path = \"{}\", camera = \"{}\"",
            self.out.display(),
            self.camera
        )
    }
}

pub fn train_preferences(
    args: &TrainArgs,
    progress: impl FnMut(usize, f64),
) -> anyhow::Result<TrainOutcome> {
    let start = Instant::now();
    anyhow::ensure!(
        args.validation_fraction > 0.0 && args.validation_fraction < 1.0,
        "--validation-fraction {}: expected a fraction in (0, 1)",
        args.validation_fraction
    );
    let dataset = Dataset::open(&args.data)?;
    let labels = read_labels(&args.labels)?;
    anyhow::ensure!(!labels.is_empty(), "{}: no labels", args.labels.display());
    let (track, camera) = pick_camera(&args.data, &dataset, Some(&labels[0].camera))?;
    if let Some((n, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, l)| l.camera != camera.name)
    {
        anyhow::bail!(
            "{}: line {} labels camera {:?}, line 1 {:?}; one model is for one camera",
            args.labels.display(),
            n + 1,
            l.camera,
            camera.name
        );
    }
    // Every frame a label names, each once, read episode by episode.
    let mut needed: Vec<FrameRef> = labels.iter().flat_map(|l| [l.first, l.second]).collect();
    needed.sort_unstable_by_key(|r| (r.episode, r.frame));
    needed.dedup();
    let channels = camera.frame_bytes() / (camera.width as usize * camera.height as usize);
    let mut frames = Frames::new(camera.width as usize, camera.height as usize, channels);
    let mut index = std::collections::HashMap::with_capacity(needed.len());
    let mut at = 0;
    while at < needed.len() {
        let episode = needed[at].episode;
        anyhow::ensure!(
            episode < dataset.episodes.len(),
            "{}: a label names episode {episode}; {} has {}",
            args.labels.display(),
            args.data.display(),
            dataset.episodes.len()
        );
        let tracks = dataset.frames(episode)?;
        let t = &tracks[track];
        while at < needed.len() && needed[at].episode == episode {
            let r = needed[at];
            anyhow::ensure!(
                r.frame < t.len(),
                "{}: a label names frame {} of episode {episode}, which has {} frames of \
                 camera {:?}",
                args.labels.display(),
                r.frame,
                t.len(),
                camera.name
            );
            index.insert(r, frames.len());
            frames.push(t.frame(r.frame), false);
            at += 1;
        }
    }
    let (mut train, mut validation, mut uniform) = (Vec::new(), Vec::new(), Vec::new());
    for l in &labels {
        let pair = Pair {
            first: index[&l.first],
            second: index[&l.second],
            preference: l.preference,
        };
        if is_validation(l.first.episode, args.validation_fraction)
            || is_validation(l.second.episode, args.validation_fraction)
        {
            validation.push(pair);
            if l.chosen.is_none() {
                uniform.push(pair);
            }
        } else {
            train.push(pair);
        }
    }
    anyhow::ensure!(
        !train.is_empty(),
        "{}: every pair touches a held-out episode; label more pairs or lower \
         --validation-fraction",
        args.labels.display()
    );
    let trained = preference::train(&frames, &train, &validation, &args.config, progress)?;
    write_file(&args.out, &preference::export_onnx(&trained))?;
    // The file through ONNX Runtime, as a run will use it, against burn.
    let spec = spec(camera)?;
    let mut onnx = OnnxClassifier::load_reward(&args.out, &spec, None)
        .with_context(|| format!("checking the exported {}", args.out.display()))?;
    let rewards = trained.rewards(&frames);
    let worst = onnx_agrees(&args.out, &mut onnx, &frames, &rewards)?;
    let validation_uniform =
        (uniform.len() < validation.len()).then(|| PairScores::of(&rewards, &uniform));
    Ok(TrainOutcome {
        out: args.out.clone(),
        camera: camera.name.clone(),
        frames: frames.len(),
        train: trained.train,
        validation: trained.validation,
        validation_uniform,
        losses: trained.losses,
        onnx_max_difference: worst,
        seconds: start.elapsed().as_secs_f64(),
        config: args.config.clone(),
    })
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
