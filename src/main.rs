//! `rlrt`: the command line of the rlrt robot runtime. Parses arguments, calls the command,
//! maps the outcome to an exit code. The work happens in the `rlrt` library and its crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rlrt::commands::{
    bench_clip, bench_iql, bench_link, bench_loop, bench_policy, bench_reward, check, demo, record,
    reward, run, sim, train,
};
use rlrt::rollout::Exploration;
use rlrt_policies::checkpoint::Algorithm;
use rlrt_policies::iql::Preset;
use rlrt_runtime::alloc_count::CountingAllocator;
use rlrt_runtime::compute::{ComputeDevice, Precision};

// Counts allocations made inside control ticks (reported by `rlrt bench loop`).
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// rlrt: a real-time runtime that runs robot policies at a fixed rate inside hard safety
/// limits, and scores behaviour with rewards nobody hand-wrote.
#[derive(Parser)]
#[command(version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v: debug, -vv: trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors in the log.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// CPU threads for training and for CPU inference of reward models (CLIP, classifiers,
    /// preference models): default all cores, or all but one for commands that run the
    /// real-time loop (the loop's own thread is never in this pool).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate hw-config files: every problem is reported with file, line and key.
    ///
    /// Exit code 0 when all files are valid, 2 when any is not.
    Check {
        /// hw-config TOML files (see hw-configs/REFERENCE.toml for every key).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a robot config's policy in the control loop and print loop statistics.
    ///
    /// The robot is whatever answers on the config's zenoh link (its driver, or `rlrt sim`
    /// in another process or on another host). `--sim` serves the config's MuJoCo task in
    /// this process instead; `--kinematic` uses the in-process kinematic model. Ctrl-C
    /// stops at the end of a tick.
    Run {
        /// The hw-config file.
        config: PathBuf,
        /// Stop after this many seconds (of loop time).
        #[arg(long, conflicts_with = "ticks")]
        seconds: Option<f64>,
        /// Stop after this many ticks.
        #[arg(long)]
        ticks: Option<u64>,
        /// Serve the config's [sim] task in MuJoCo in this process, over a loopback link.
        #[arg(long, conflicts_with = "kinematic")]
        sim: bool,
        /// Use the in-process kinematic model of the configured joints (no link).
        #[arg(long)]
        kinematic: bool,
        /// With --sim or --kinematic: step once per command, as fast as possible
        /// (deterministic); without it the simulation runs in real time.
        #[arg(long)]
        lockstep: bool,
        /// Seed of the simulated robot's start state.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Rate of the kinematic model's thread in real time (default: max(1000, control rate)).
        #[arg(long)]
        plant_rate_hz: Option<f64>,
        /// How long to wait for the robot's first state over the link.
        #[arg(long, default_value_t = 10.0)]
        wait_seconds: f64,
        /// Log frames, joints, actions, every reward term, safety events and timing to rerun:
        /// save=<file.rrd>, spawn (start a viewer) or connect[=<host:port>].
        #[arg(long, value_name = "DESTINATION")]
        rerun: Option<rlrt::rerun_log::Destination>,
        /// Record the run as an rlrt dataset in this folder (continued if it holds one of the
        /// same config): every tick's observation and command, and the camera frames, in
        /// episodes cut at faults and every --episode-seconds; rewards are left for `rlrt
        /// relabel`.
        #[arg(long, value_name = "FOLDER")]
        record: Option<PathBuf>,
        /// With --record: the longest episode, seconds (each is written when it ends, so a
        /// crash loses at most this much).
        #[arg(long, default_value_t = 30.0, requires = "record")]
        episode_seconds: f64,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Serve a config's MuJoCo task as a robot on the zenoh link, for `rlrt run` in another
    /// process or on another host. Ctrl-C stops.
    Sim {
        /// The hw-config file; its [sim] table names the task, its [link] table the session.
        config: PathBuf,
        /// Step once per command flagged lockstep (for training loops) instead of in real
        /// time at the control rate.
        #[arg(long)]
        lockstep: bool,
        /// Seed of the first episode's start state.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Do not render the cameras (no EGL needed).
        #[arg(long)]
        no_cameras: bool,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        seconds: Option<f64>,
        /// Print the final counters as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The built-in demo: the MuJoCo reach task served over zenoh on loopback, driven by the
    /// scripted controller for seeded episodes, with the simulator killed and restarted in
    /// the middle episode; prints success rate, loop statistics and safety interventions.
    Demo {
        /// Another hw-config (with a [sim] table) instead of the built-in reach arm.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        episodes: u32,
        /// Episode length (default: the task's episode_seconds).
        #[arg(long)]
        episode_seconds: Option<f64>,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// How long the simulator stays killed in the middle episode (0: never killed).
        #[arg(long, default_value_t = 300.0)]
        dropout_ms: f64,
        /// Do not render the cameras (no EGL needed).
        #[arg(long)]
        no_cameras: bool,
        /// Log frames, joints, actions, every reward term, safety events and timing to rerun:
        /// save=<file.rrd>, spawn (start a viewer) or connect[=<host:port>].
        #[arg(long, value_name = "DESTINATION")]
        rerun: Option<rlrt::rerun_log::Destination>,
        /// Print the outcome as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Reward programs: sandboxed scripts of named reward terms, written by a language
    /// model from a task sentence (see rewards/programs/ for examples).
    Reward {
        #[command(subcommand)]
        what: Reward,
    },
    /// Record seeded episodes of a config's sim task as an rlrt dataset (one file per
    /// episode; see docs/recordings.md): the config's scripted policy plus Gaussian noise,
    /// or uniformly random actions, every action through the safety layer.
    Record {
        /// The hw-config file (needs a [sim] table).
        config: PathBuf,
        #[arg(long, default_value_t = 50)]
        episodes: usize,
        /// Standard deviation of the Gaussian noise added to each action value (action
        /// units, such as m for ee_delta).
        #[arg(long, default_value_t = 0.0)]
        noise_std: f64,
        /// Uniformly random actions within the action bounds instead of the policy.
        #[arg(long, conflicts_with = "noise_std")]
        uniform: bool,
        /// Episode i resets with seed + i (numbering continues in an existing dataset).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The dataset folder (created, or continued if it holds a matching dataset).
        #[arg(long)]
        out: PathBuf,
        /// Also record every camera of the config, rendered offscreen at its rate, each frame
        /// with the task's ground-truth success (labels for `rlrt reward train-classifier`).
        #[arg(long)]
        frames: bool,
        #[arg(long)]
        json: bool,
    },
    /// Convert a Minari dataset (folder or HDF5 file) or a D4RL HDF5 file into an rlrt
    /// dataset, described by a hw-config whose observation and action sizes match the file
    /// (or, without --config, by one written from the dataset's own metadata).
    Import {
        /// Minari dataset folder (data/main_data.hdf5) or HDF5 file; D4RL HDF5 file.
        source: PathBuf,
        /// The hw-config describing the observations and actions (stored with the dataset).
        /// Without it, one is written from the dataset's own description of its spaces
        /// (Minari's metadata: a Box action space's bounds, the observation length).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The rlrt dataset folder to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Train a policy offline on an rlrt dataset (IQL or behaviour cloning), evaluating it
    /// in the dataset's sim task as it goes; writes a checkpoint folder.
    Train {
        /// iql or bc.
        #[arg(value_parser = parse_algorithm)]
        algorithm: Algorithm,
        /// The dataset folder (`rlrt record --out`).
        #[arg(long)]
        data: PathBuf,
        /// The checkpoint folder.
        #[arg(long)]
        out: PathBuf,
        /// Gradient steps (also the length of the actor's cosine schedule).
        #[arg(long, default_value_t = 100_000)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Continue the checkpoint in --out (weights, optimizer state, step, sampler).
        #[arg(long)]
        resume: bool,
        /// Evaluate (and save a checkpoint) every this many steps (0: only at the end).
        #[arg(long, default_value_t = 5000)]
        eval_every: usize,
        /// Episodes per evaluation.
        #[arg(long, default_value_t = 20)]
        eval_episodes: usize,
        /// A deterministic actor (weighted squared error) instead of the Gaussian.
        #[arg(long)]
        deterministic: bool,
        #[arg(long)]
        batch_size: Option<usize>,
        /// Hidden layer widths, such as 256,256.
        #[arg(long, value_delimiter = ',')]
        hidden: Option<Vec<usize>>,
        /// IQL's settings for a kind of task (the paper's, Appendix B): locomotion (default;
        /// expectile 0.7, temperature 3, rewards scaled to a return range of 1000),
        /// manipulation (0.7, 0.5, rewards as they are) or navigation (0.9, 10, rewards
        /// shifted by -1). The flags below override single values.
        #[arg(long)]
        preset: Option<Preset>,
        /// IQL expectile tau (the preset's by default).
        #[arg(long)]
        expectile: Option<f64>,
        /// IQL inverse temperature beta (the preset's by default).
        #[arg(long)]
        temperature: Option<f64>,
        /// Multiply every reward by this (the preset's rule by default).
        #[arg(long)]
        reward_scale: Option<f64>,
        /// Share of episodes held out of training for the offline diagnostics, spread over
        /// the dataset (default 0.05 when the config has no [sim] table, else 0).
        #[arg(long, value_name = "SHARE")]
        holdout: Option<f64>,
        /// Plot losses, rollouts and offline diagnostics on a rerun timeline `step`:
        /// save=<file.rrd>, spawn or connect[=<host:port>].
        #[arg(long, value_name = "DESTINATION")]
        rerun: Option<rlrt::rerun_log::Destination>,
        /// Where the updates run: cpu, cuda or cuda:N (CUDA needs rlrt built with `--features
        /// cuda`). Evaluation episodes run the actor on the CPU either way.
        #[arg(long, default_value = "cpu")]
        device: ComputeDevice,
        #[arg(long)]
        json: bool,
    },
    /// Run a checkpoint's actor for seeded episodes in its config's sim task; prints the
    /// success rate with a 95% Wilson interval and the mean return.
    Eval {
        /// The checkpoint folder (`rlrt train --out`).
        checkpoint: PathBuf,
        #[arg(long, default_value_t = 50)]
        episodes: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Run in this hw-config instead of the one saved in the checkpoint.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Evaluate offline on the held-out episodes of this dataset (default, when the
        /// config has no [sim] table: the dataset the checkpoint was trained on).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Export a trained actor for other runtimes.
    Export {
        #[command(subcommand)]
        what: Export,
    },
    /// Write a dataset again with its rewards from another source, for `rlrt train`: a reward
    /// program (say one a language model wrote), scored on the observation each step led to
    /// with its action as previous_action; or a CLIP, classifier or reward-model source of
    /// the config, or an ONNX reward model file, scoring the recorded camera frames (each
    /// step gets the newest frame's reward).
    /// Observations, actions, flags and frames are copied; nothing is written unless every
    /// step is scored. With --ensemble, several of these (any mix) combined.
    #[command(group(
        clap::ArgGroup::new("source")
            .required(true)
            .multiple(true)
            .args(["program", "reward", "model"])
    ))]
    Relabel {
        /// The dataset folder (`rlrt record`, `rlrt import`).
        data: PathBuf,
        /// A reward program file (checked against the dataset's config before it runs).
        /// Repeatable, with --ensemble.
        #[arg(long)]
        program: Vec<PathBuf>,
        /// A `[[rewards]]` source of the config by name: program, clip, classifier or
        /// preference_model. Repeatable, with --ensemble.
        #[arg(long)]
        reward: Vec<String>,
        /// An ONNX reward model (such as `rlrt reward train-preferences` writes) scoring the
        /// recorded frames of --camera, as a `preference_model` source would: no config
        /// edit needed. Repeatable, with --ensemble.
        #[arg(long)]
        model: Vec<PathBuf>,
        /// The camera --model scores (default: the dataset's only camera).
        #[arg(long, requires = "model")]
        camera: Option<String>,
        /// Combine several rewards (the --program, --reward and --model given, in that
        /// order), each standardised over the dataset's steps first: mean, min,
        /// mean-minus-std[:K] (K standard deviations across members, default 1) or
        /// and[:REFERENCE] (the sum of log-sigmoid(r - REFERENCE), default 0). Reports
        /// where the members disagree.
        #[arg(long, value_name = "HOW")]
        ensemble: Option<rlrt_rewards::ensemble::Aggregate>,
        /// The new dataset's folder (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Read the dataset with this hw-config instead of the one saved with it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Replay a recorded dataset (`rlrt record`) into rerun with its rewards recomputed by
    /// reward programs, to compare programs side by side on the same episodes.
    Replay {
        /// The dataset folder.
        data: PathBuf,
        /// Where the recording goes: save=<file.rrd>, spawn or connect[=<host:port>].
        #[arg(long, value_name = "DESTINATION")]
        rerun: rlrt::rerun_log::Destination,
        /// A reward program to score the episodes with, as NAME=FILE (repeat to compare
        /// several); default: the reward programs of the dataset's config.
        #[arg(long = "program", value_name = "NAME=FILE", value_parser = parse_named_program)]
        programs: Vec<(String, PathBuf)>,
        /// Use this hw-config instead of the one saved with the dataset.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Replay at most this many episodes.
        #[arg(long)]
        episodes: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks; each prints a table, or with --json exactly one JSON object.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Export {
    /// An `rlrt train` checkpoint's actor as one ONNX graph (normalisation, network, tanh,
    /// scaling to the action bounds), checked with ONNX Runtime against the checkpoint.
    Onnx {
        /// The checkpoint folder (`rlrt train --out`).
        checkpoint: PathBuf,
        /// The .onnx file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// An `rlrt train` checkpoint's actor as a TorchScript module traced by libtorch (the
    /// same graph as `export onnx`), checked with libtorch against the checkpoint. Needs rlrt
    /// built with the `tch` feature.
    Torchscript {
        /// The checkpoint folder (`rlrt train --out`).
        checkpoint: PathBuf,
        /// The .pt file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// An rlrt dataset (`rlrt record`, `rlrt import`) in LeRobot's dataset layout v3.0:
    /// parquet steps (state, action, reward, done flags, and rgb8/mono8 camera frames as PNG
    /// images), info, stats, tasks and episodes metadata. Depth cameras are not exported.
    Lerobot {
        /// The dataset folder.
        data: PathBuf,
        /// The folder to write (must not hold a LeRobot dataset yet).
        #[arg(long)]
        out: PathBuf,
        /// The task sentence of every episode (default: the robot's name in the config).
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Reward {
    /// Print the full prompt a language model gets for a task: the robot's environment
    /// (names, types, units, helpers), the rules of the language and two examples.
    Prompt {
        /// The hw-config whose observations the program reads.
        config: PathBuf,
        /// The task in one sentence, such as "bring the end effector to the target".
        task: String,
    },
    /// Ask an OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, ...) for a program,
    /// check it, and write it only if it passes. Exit code 2 when the model's program is
    /// rejected (the problems are printed).
    Generate {
        config: PathBuf,
        task: String,
        /// Base URL of the API, such as http://127.0.0.1:11434/v1 (POSTs to
        /// <base-url>/chat/completions).
        #[arg(long)]
        base_url: String,
        /// Model name the endpoint knows.
        #[arg(long)]
        model: String,
        /// Name of the environment variable that holds the API key (sent as a bearer
        /// token); none is sent without it.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Where to write the program.
        #[arg(long)]
        out: PathBuf,
        /// Further requests after a rejected program, each shown the check's problems.
        #[arg(long, default_value_t = 1)]
        retries: u32,
        /// Limit for each request, reply included.
        #[arg(long, default_value_t = 120.0)]
        timeout_s: f64,
        #[arg(long, default_value_t = 0.2)]
        temperature: f64,
    },
    /// Check a program against a config: compiles, uses only known names, and on sampled
    /// states every term is finite, bounded and within the limits. Prints each term's
    /// range. Exit code 2 when the program is rejected.
    Check { config: PathBuf, program: PathBuf },
    /// Per-term statistics of a program over recorded episodes (JSON lines, see
    /// rewards/src/program/feedback.rs) and the refinement prompt built from them, the
    /// previous program and your feedback.
    Feedback {
        config: PathBuf,
        program: PathBuf,
        episodes: PathBuf,
        /// The task sentence the program was written for.
        #[arg(long)]
        task: String,
        /// What you saw the robot do.
        #[arg(long, default_value = "")]
        feedback: String,
    },
    /// Recompute a recording's rewards with a program: each line gets `reward` (null when
    /// the evaluation failed) and `terms`.
    Relabel {
        config: PathBuf,
        program: PathBuf,
        episodes: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a success classifier for one camera on a dataset recorded with `rlrt record
    /// --frames` (labels: the task's ground-truth success at each frame), in burn on the CPU;
    /// held-out episodes validate it. Writes an ONNX model for a `kind = "classifier"` reward,
    /// checked with ONNX Runtime against burn.
    TrainClassifier {
        /// The dataset folder.
        #[arg(long)]
        data: PathBuf,
        /// Which recorded camera (default: the only one).
        #[arg(long)]
        camera: Option<String>,
        /// The ONNX file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Side of the first convolution's patches, pixels.
        #[arg(long, default_value_t = 8)]
        patch: usize,
        /// Stride of the first convolution, pixels.
        #[arg(long, default_value_t = 4)]
        stride: usize,
        /// Channels of the first convolution, then of each 1 x 1 convolution.
        #[arg(long, value_delimiter = ',', default_value = "32,32")]
        channels: Vec<usize>,
        #[arg(long, default_value_t = 2e-3)]
        learning_rate: f64,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Every round(1 / fraction)-th episode is held out for validation.
        #[arg(long, default_value_t = 0.2)]
        validation_fraction: f64,
        /// LOW,HIGH: leave out frames whose task score (such as the reach distance in m)
        /// lies in this band around the success threshold, where frames look alike.
        #[arg(long, value_parser = parse_band)]
        drop_scores: Option<(f64, f64)>,
        #[arg(long)]
        json: bool,
    },
    /// Label pairs of recorded camera frames with a preference (which is closer to the
    /// goal: first, second or none), for `reward train-preferences`. The teacher is a
    /// vision-language model behind an OpenAI-compatible chat endpoint (--base-url, --model,
    /// --goal), or the frames' recorded task scores (--teacher scores: the lower score, such
    /// as a distance, is closer). Labels are appended to a JSON-lines file as they come.
    LabelPairs {
        /// The dataset folder (`rlrt record --frames`).
        data: PathBuf,
        /// Which recorded camera (default: the only one).
        #[arg(long)]
        camera: Option<String>,
        /// How many pairs to label.
        #[arg(long, default_value_t = 1000)]
        pairs: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// `vlm` or `scores`.
        #[arg(long, default_value = "vlm")]
        teacher: String,
        /// Scores teacher: scores this close are labelled none.
        #[arg(long, default_value_t = 0.0)]
        tie: f64,
        /// VLM teacher: base URL of the API, such as http://127.0.0.1:8000/v1.
        #[arg(long)]
        base_url: Option<String>,
        /// VLM teacher: model name the endpoint knows (one that reads images).
        #[arg(long)]
        model: Option<String>,
        /// VLM teacher: the task, in one sentence.
        #[arg(long)]
        goal: Option<String>,
        /// VLM teacher: environment variable holding the API key (sent as a bearer token).
        #[arg(long)]
        api_key_env: Option<String>,
        /// VLM teacher: limit for each request, reply included.
        #[arg(long, default_value_t = 60.0)]
        timeout_s: f64,
        /// VLM teacher: ask about each pair twice, frames swapped the second time, and keep
        /// only answers that agree (counts the pairs where the model chose by position).
        #[arg(long)]
        both_orders: bool,
        /// VLM teacher: requests in flight at once (servers such as vLLM batch them); labels
        /// are still written in pair order.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// The labels file (JSON lines).
        #[arg(long)]
        out: PathBuf,
        /// Add to an existing labels file, continuing its sequence of pairs.
        #[arg(long)]
        append: bool,
        /// Ask about the pairs this reward model (`reward train-preferences`, fitted to the
        /// labels so far) is least sure of: of --candidates uniform pairs, the one whose
        /// frames it scores closest.
        #[arg(long)]
        reward_model: Option<PathBuf>,
        /// With --reward-model: uniform pairs drawn to choose each pair from.
        #[arg(long, default_value_t = 10, requires = "reward_model")]
        candidates: usize,
        #[arg(long)]
        json: bool,
    },
    /// Fit a reward model to preference labels (`reward label-pairs`) with the Bradley-Terry
    /// loss, in burn on the CPU; pairs with a frame from a held-out episode validate it.
    /// Writes an ONNX model for a `kind = "preference_model"` reward, checked with ONNX
    /// Runtime against burn.
    TrainPreferences {
        /// The dataset folder the labels refer to.
        #[arg(long)]
        data: PathBuf,
        /// The labels file.
        #[arg(long)]
        labels: PathBuf,
        /// The ONNX file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Side of the first convolution's patches, pixels.
        #[arg(long, default_value_t = 8)]
        patch: usize,
        /// Stride of the first convolution, pixels.
        #[arg(long, default_value_t = 4)]
        stride: usize,
        /// Channels of the first convolution, then of each 1 x 1 convolution.
        #[arg(long, value_delimiter = ',', default_value = "32,32")]
        channels: Vec<usize>,
        #[arg(long, default_value_t = 1e-3)]
        learning_rate: f64,
        /// Pairs per step.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Every round(1 / fraction)-th episode is held out for validation.
        #[arg(long, default_value_t = 0.2)]
        validation_fraction: f64,
        #[arg(long)]
        json: bool,
    },
    /// Zero-shot reward of one camera frame with CLIP (VLM-RM): the cosine similarity of the
    /// frame and a goal sentence, or with --baseline the goal-baseline projected reward.
    /// Exit code 2 for a model folder, prompt or image that cannot be used.
    Clip {
        /// Hugging Face CLIP folder: config.json, model.safetensors, vocab.json, merges.txt.
        #[arg(long)]
        model: PathBuf,
        /// The frame, a PNG file.
        #[arg(long)]
        image: PathBuf,
        /// The task done, in one sentence ("a humanoid robot kneeling").
        #[arg(long)]
        goal: String,
        /// The neutral sentence the goal is contrasted with ("a humanoid robot").
        #[arg(long)]
        baseline: Option<String>,
        /// Weight of the baseline-to-goal projection, in [0, 1] (default 0.5); needs
        /// --baseline.
        #[arg(long, requires = "baseline")]
        alpha: Option<f64>,
        /// Resize the frame straight to 224 x 224 (as VLM-RM did) instead of shortest side
        /// to 224 and a centre crop (Hugging Face's CLIPImageProcessor).
        #[arg(long)]
        plain_resize: bool,
        /// cpu, cuda or cuda:N (CUDA needs rlrt built with `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: ComputeDevice,
        /// f32, or f16 on CUDA.
        #[arg(long, default_value = "f32")]
        precision: Precision,
        #[arg(long)]
        json: bool,
    },
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

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    match s {
        "iql" => Ok(Algorithm::Iql),
        "bc" => Ok(Algorithm::Bc),
        other => Err(format!("{other:?}: expected iql or bc")),
    }
}

#[derive(Subcommand)]
enum Bench {
    /// Image-embedding latency of a randomly initialised CLIP ViT-B/32 at batch 1 and a larger
    /// batch: burn Flex on the CPU at one thread and at --threads, or burn CUDA with --device cuda;
    /// against PyTorch's transformers CLIP of the same config (CPU threads, or the same GPU
    /// eager and from a CUDA graph) when python3 can import torch and transformers.
    Clip {
        /// Timed calls at batch 1 (after the warm-up calls).
        #[arg(long, default_value_t = 20)]
        calls: usize,
        /// Timed calls at the larger batch.
        #[arg(long, default_value_t = 5)]
        batch_calls: usize,
        /// The larger batch (default 16 on the CPU, 64 on CUDA).
        #[arg(long)]
        batch: Option<usize>,
        /// cpu, cuda or cuda:N (CUDA needs rlrt built with `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: ComputeDevice,
        /// f32 or f16 (default f32 on the CPU, f16 on CUDA).
        #[arg(long)]
        precision: Option<Precision>,
        /// Skip the PyTorch peer.
        #[arg(long)]
        no_peer: bool,
        /// With --device cuda: burn's CUDA backend without its fusion layer (each operation
        /// its own kernel).
        #[arg(long)]
        no_fusion: bool,
        /// Added to PYTHONPATH for the PyTorch peer.
        #[arg(long)]
        python_path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// IQL update steps per second at batch 256 through `rlrt train`'s own update loop: burn
    /// Flex on the CPU at one thread and at --threads (default all cores), or burn CUDA with
    /// --device cuda; against the same update in PyTorch eager (same thread counts) and JAX
    /// jit when python3 can import them.
    Iql {
        #[arg(long, default_value_t = 17)]
        observations: usize,
        #[arg(long, default_value_t = 6)]
        actions: usize,
        #[arg(long, value_delimiter = ',', default_value = "256,256")]
        hidden: Vec<usize>,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Timed update steps per run (after a tenth as many warm-up steps).
        #[arg(long, default_value_t = 1000)]
        steps: usize,
        /// Read the losses back every this many steps (a synchronisation on a GPU), in rlrt
        /// and the peers alike (`rlrt train` reads them every 100).
        #[arg(long, default_value_t = 100)]
        readback_every: usize,
        /// cpu, cuda or cuda:N (CUDA needs rlrt built with `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: ComputeDevice,
        /// Skip the peers.
        #[arg(long)]
        no_peer: bool,
        /// With --device cuda: burn's CUDA backend without its fusion layer (each operation
        /// its own kernel).
        #[arg(long)]
        no_fusion: bool,
        /// Where the peers find torch (and jax, optax): added to PYTHONPATH; default
        /// .deps/python, which has no torch: pip install torch elsewhere and point here.
        #[arg(long)]
        python_path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Tick jitter with everything logged to rerun against the same run without rerun: the
    /// reach arm in MuJoCo over loopback zenoh, its reward program and one camera.
    Rerun {
        #[arg(long, default_value_t = 500.0)]
        rate_hz: f64,
        #[arg(long, default_value_t = 30.0)]
        camera_hz: f64,
        /// Camera width and height, pixels.
        #[arg(long, default_value_t = 84)]
        camera_size: u32,
        /// Seconds of each run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Rounds of (off, on); medians over rounds are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Pin the control thread to this core.
        #[arg(long)]
        cpu_core: Option<usize>,
        /// Run the control thread under SCHED_FIFO at this priority (needs the privilege).
        #[arg(long)]
        realtime_priority: Option<i32>,
        /// Keep the recording of the logged run here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Per-call latency of a trained actor at batch 1: the tick's path (plain arrays, no
    /// allocation) against burn's own forward pass on the same weights.
    Policy {
        #[arg(long, default_value_t = 17)]
        inputs: usize,
        #[arg(long, default_value_t = 6)]
        outputs: usize,
        #[arg(long, value_delimiter = ',', default_value = "256,256")]
        hidden: Vec<usize>,
        /// Timed calls per path (after a tenth as many warm-up calls).
        #[arg(long, default_value_t = 20_000)]
        calls: usize,
        /// Where the Python peers find torch and onnxruntime (added to PYTHONPATH; default
        /// .deps/python, which has onnxruntime but not torch: pip install torch elsewhere
        /// and point here to measure PyTorch eager).
        #[arg(long)]
        python_path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Evaluations per second and per-call latency of the reach reward program, against
    /// the same reward in Python with numpy.
    RewardProgram {
        /// Timed calls (for the throughput and again for the latency measurement).
        #[arg(long, default_value_t = 100_000)]
        calls: usize,
        /// Skip the Python peer.
        #[arg(long)]
        no_peer: bool,
        #[arg(long)]
        json: bool,
    },
    /// Observation-to-command round trip through zenoh on loopback (against zenoh's own
    /// ping-pong), and the lockstep step rate of runtime plus simulator over the link.
    Link {
        /// Round trips measured (after 200 warm-up ones).
        #[arg(long, default_value_t = 5000)]
        round_trips: u32,
        /// Seconds of lockstep stepping to measure.
        #[arg(long, default_value_t = 3.0)]
        lockstep_seconds: f64,
        /// Camera frames timed per size (84x84, 640x480) and transport (zenoh shared memory,
        /// bytes).
        #[arg(long, default_value_t = 300)]
        frames: usize,
        #[arg(long)]
        json: bool,
    },
    /// Tick punctuality of the control loop against a sleep-until-deadline loop.
    Loop {
        #[arg(long, default_value_t = 1000.0)]
        rate_hz: f64,
        /// Seconds measured for rlrt's loop (after a 0.5 s warm-up).
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Seconds measured for the peer loop.
        #[arg(long, default_value_t = 5.0)]
        peer_seconds: f64,
        /// hw-config to benchmark (default: the built-in Franka Panda, sine policy).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Pin the control thread to this CPU.
        #[arg(long)]
        cpu_core: Option<usize>,
        /// SCHED_FIFO priority (1-99) for the control thread.
        #[arg(long)]
        realtime_priority: Option<i32>,
        /// Spin this long before each deadline instead of sleeping (default 200 us).
        #[arg(long)]
        spin_us: Option<f64>,
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a log piped to a file or read by a test stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// A command's outcome: JSON on one line with `--json`, else its text form.
fn print_outcome(
    outcome: &(impl serde::Serialize + std::fmt::Display),
    json: bool,
) -> anyhow::Result<()> {
    if json {
        print_json(outcome)
    } else {
        print!("{outcome}");
        Ok(())
    }
}

fn print_bench(report: &rlrt_runtime::bench::BenchReport, json: bool) {
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let realtime = matches!(
        cli.command,
        Command::Run { .. } | Command::Sim { .. } | Command::Demo { .. }
    );
    if let Err(e) = rlrt::threads::init_global(cli.threads, realtime) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    match execute(cli.command) {
        Ok(code) => ExitCode::from(code as u8),
        Err(error) => {
            let code = if error
                .downcast_ref::<rlrt_runtime::config::ConfigError>()
                .is_some()
                || error
                    .downcast_ref::<rlrt_rewards::program::ProgramError>()
                    .is_some()
                || error
                    .downcast_ref::<rlrt_rewards::clip::ClipError>()
                    .is_some()
                || matches!(
                    error.downcast_ref::<rlrt_rewards::program::generate::GenerateError>(),
                    Some(rlrt_rewards::program::generate::GenerateError::Rejected { .. })
                ) {
                rlrt::EXIT_INVALID_CONFIG
            } else {
                1
            };
            eprintln!("error: {error:#}");
            ExitCode::from(code as u8)
        }
    }
}

fn execute(command: Command) -> anyhow::Result<i32> {
    // Commands that stop cleanly on Ctrl-C take the signals over before their set-up, so a
    // signal that arrives while they start is not lost: their loop stops at its first tick.
    if matches!(
        command,
        Command::Run { .. }
            | Command::Sim { .. }
            | Command::Demo { .. }
            | Command::Train { .. }
            | Command::Bench {
                what: Bench::Loop { .. }
            }
    ) {
        rlrt::signals::stop_flag();
    }
    match command {
        Command::Check { files } => {
            let invalid = check::run(&files);
            Ok(if invalid == 0 {
                0
            } else {
                rlrt::EXIT_INVALID_CONFIG
            })
        }
        Command::Run {
            config,
            seconds,
            ticks,
            sim,
            kinematic,
            lockstep,
            seed,
            plant_rate_hz,
            wait_seconds,
            rerun,
            record,
            episode_seconds,
            json,
        } => {
            let record = match record {
                Some(dir) => {
                    anyhow::ensure!(
                        episode_seconds.is_finite() && episode_seconds > 0.0,
                        "--episode-seconds {episode_seconds}: expected a positive number"
                    );
                    let (_, config_text) = rlrt::commands::record::load_config(&config)?;
                    Some(rlrt::run_recorder::Recording {
                        dir,
                        config_path: config.clone(),
                        config_text,
                        episode_seconds,
                    })
                }
                None => None,
            };
            let robot = match (sim, kinematic) {
                (true, _) => run::Robot::Sim,
                (_, true) => run::Robot::Kinematic,
                _ => run::Robot::Link,
            };
            let outcome = run::run(&run::RunArgs {
                config,
                seconds,
                ticks,
                robot,
                lockstep,
                seed,
                plant_rate_hz,
                wait_s: wait_seconds,
                rerun,
                record,
            })?;
            if json {
                print_json(&outcome)?;
            } else {
                println!("robot {}", outcome.robot);
                print!("{}", outcome.report);
                if let Some(n) = outcome.out_of_limit_commands {
                    println!("commands outside joint limits seen by the robot: {n}");
                }
                let mut rewards = String::new();
                rlrt::reward_programs::write_summaries(&mut rewards, &outcome.rewards)?;
                rlrt::frame_rewards::write_summaries(&mut rewards, &outcome.frame_rewards)?;
                print!("{rewards}");
                if !outcome.link.is_empty() {
                    let link: Vec<String> = outcome
                        .link
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect();
                    println!("link: {}", link.join(", "));
                }
                if let Some(rerun) = &outcome.rerun {
                    print!("{rerun}");
                }
                if let Some(recording) = &outcome.recording {
                    print!("{recording}");
                }
            }
            // A recording asked for and not written is a failed run, whatever the robot did.
            let recording_failed = outcome
                .recording
                .as_ref()
                .is_some_and(|r| r.error.is_some());
            Ok(
                if outcome.out_of_limit_commands.unwrap_or(0) == 0 && !recording_failed {
                    0
                } else {
                    rlrt::EXIT_RUN_FAILED
                },
            )
        }
        Command::Sim {
            config,
            lockstep,
            seed,
            no_cameras,
            seconds,
            json,
        } => {
            let outcome = sim::run(&sim::SimArgs {
                config,
                lockstep,
                seed,
                cameras: !no_cameras,
                seconds,
            })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Demo {
            config,
            episodes,
            episode_seconds,
            seed,
            dropout_ms,
            no_cameras,
            rerun,
            json,
        } => {
            let outcome = demo::run(&demo::DemoArgs {
                config,
                episodes,
                episode_seconds,
                seed,
                dropout_ms,
                cameras: !no_cameras,
                rerun,
            })?;
            print_outcome(&outcome, json)?;
            Ok(if outcome.passed() {
                0
            } else {
                rlrt::EXIT_RUN_FAILED
            })
        }
        Command::Reward { what } => match what {
            Reward::Clip {
                model,
                image,
                goal,
                baseline,
                alpha,
                plain_resize,
                device,
                precision,
                json,
            } => {
                let alpha = rlrt_runtime::config::clip_alpha(alpha, baseline.is_some());
                let report = reward::clip(&reward::ClipArgs {
                    model,
                    image,
                    goal,
                    baseline,
                    alpha,
                    plain_resize,
                    device,
                    precision,
                })?;
                if json {
                    print_json(&report)?;
                } else {
                    println!("reward {:.6}", report.reward.reward);
                    println!("goal similarity {:.6}", report.reward.goal_similarity);
                    if let Some(b) = report.reward.baseline_similarity {
                        println!("baseline similarity {b:.6} (alpha {})", report.reward.alpha);
                    }
                    println!(
                        "frame {} x {}, resize {}",
                        report.width, report.height, report.resize
                    );
                    println!("computed with {}", report.backend);
                }
                Ok(0)
            }
            Reward::TrainClassifier {
                data,
                camera,
                out,
                epochs,
                seed,
                patch,
                stride,
                channels,
                learning_rate,
                batch_size,
                validation_fraction,
                drop_scores,
                json,
            } => {
                let config = rlrt_rewards::classifier::ClassifierConfig {
                    patch,
                    stride,
                    channels,
                    epochs,
                    batch_size: batch_size.max(1),
                    learning_rate,
                    seed,
                };
                let bar = indicatif::ProgressBar::new(epochs as u64);
                let outcome = rlrt::commands::train_classifier::run(
                    &rlrt::commands::train_classifier::TrainClassifierArgs {
                        data,
                        camera,
                        out,
                        validation_fraction,
                        drop_scores,
                        config,
                    },
                    |epoch, loss| {
                        bar.set_position(epoch as u64);
                        bar.set_message(format!("loss {loss:.4}"));
                    },
                )?;
                bar.finish_and_clear();
                print_outcome(&outcome, json)?;
                Ok(0)
            }
            Reward::LabelPairs {
                data,
                camera,
                pairs,
                seed,
                teacher,
                tie,
                base_url,
                model,
                goal,
                api_key_env,
                timeout_s,
                both_orders,
                concurrency,
                out,
                append,
                reward_model,
                candidates,
                json,
            } => {
                use anyhow::Context;
                use rlrt::commands::preferences::{label_pairs, LabelArgs, Selection, Teacher};
                let teacher = match teacher.as_str() {
                    "scores" if both_orders => anyhow::bail!(
                        "--both-orders is for a VLM teacher (the scores teacher has no \
                         favourite position)"
                    ),
                    "scores" => Teacher::Scores { tie },
                    "vlm" => {
                        let need = |v: Option<String>, flag: &str| {
                            v.with_context(|| format!("--teacher vlm needs {flag}"))
                        };
                        let api_key = match api_key_env {
                            Some(var) => Some(std::env::var(&var).with_context(|| {
                                format!("--api-key-env {var}: the variable is not set")
                            })?),
                            None => None,
                        };
                        Teacher::Vlm {
                            endpoint: rlrt_rewards::program::generate::ChatEndpoint {
                                base_url: need(base_url, "--base-url")?,
                                model: need(model, "--model")?,
                                api_key,
                                timeout: std::time::Duration::from_secs_f64(timeout_s.max(0.001)),
                                temperature: 0.0,
                            },
                            goal: need(goal, "--goal")?,
                            both_orders,
                        }
                    }
                    other => anyhow::bail!("--teacher {other:?}: expected vlm or scores"),
                };
                let outcome = label_pairs(&LabelArgs {
                    data,
                    camera,
                    pairs,
                    seed,
                    teacher,
                    out,
                    append,
                    select: reward_model.map(|model| Selection { model, candidates }),
                    concurrency,
                })?;
                print_outcome(&outcome, json)?;
                Ok(0)
            }
            Reward::TrainPreferences {
                data,
                labels,
                out,
                epochs,
                seed,
                patch,
                stride,
                channels,
                learning_rate,
                batch_size,
                validation_fraction,
                json,
            } => {
                let config = rlrt_rewards::classifier::ClassifierConfig {
                    patch,
                    stride,
                    channels,
                    epochs,
                    batch_size: batch_size.max(1),
                    learning_rate,
                    seed,
                };
                let bar = indicatif::ProgressBar::new(epochs as u64);
                let outcome = rlrt::commands::preferences::train_preferences(
                    &rlrt::commands::preferences::TrainArgs {
                        data,
                        labels,
                        out,
                        validation_fraction,
                        config,
                    },
                    |epoch, loss| {
                        bar.set_position(epoch as u64);
                        bar.set_message(format!("loss {loss:.4}"));
                    },
                )?;
                bar.finish_and_clear();
                print_outcome(&outcome, json)?;
                Ok(0)
            }
            Reward::Prompt { config, task } => {
                print!("{}", reward::prompt(&config, &task)?);
                Ok(0)
            }
            Reward::Generate {
                config,
                task,
                base_url,
                model,
                api_key_env,
                out,
                retries,
                timeout_s,
                temperature,
            } => {
                let generated = reward::generate(&reward::GenerateArgs {
                    config,
                    task,
                    base_url,
                    model,
                    api_key_env,
                    out: out.clone(),
                    retries,
                    timeout_s,
                    temperature,
                })?;
                println!("wrote {} (attempt {})", out.display(), generated.attempts);
                print!("{}", generated.report);
                Ok(0)
            }
            Reward::Check { config, program } => {
                print!("{}", reward::check(&config, &program)?);
                Ok(0)
            }
            Reward::Feedback {
                config,
                program,
                episodes,
                task,
                feedback,
            } => {
                print!(
                    "{}",
                    reward::feedback(&config, &program, &episodes, &task, &feedback)?
                );
                Ok(0)
            }
            Reward::Relabel {
                config,
                program,
                episodes,
                out,
            } => {
                let (records, invalid) = reward::relabel(&config, &program, &episodes, &out)?;
                println!(
                    "wrote {} records to {} ({invalid} with an invalid reward)",
                    records,
                    out.display()
                );
                Ok(0)
            }
        },
        Command::Import {
            source,
            config,
            out,
            json,
        } => {
            let outcome = rlrt::commands::import::run(&rlrt::commands::import::ImportArgs {
                source,
                config,
                out,
            })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Record {
            config,
            episodes,
            noise_std,
            uniform,
            seed,
            out,
            frames,
            json,
        } => {
            let exploration = if uniform {
                Exploration::Uniform
            } else if noise_std > 0.0 {
                Exploration::Gaussian { std: noise_std }
            } else {
                Exploration::None
            };
            let bar = indicatif::ProgressBar::new(episodes as u64);
            let outcome = record::run(
                &record::RecordArgs {
                    config,
                    episodes,
                    exploration,
                    seed,
                    out,
                    frames,
                },
                |done| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Train {
            algorithm,
            data,
            out,
            steps,
            seed,
            resume,
            eval_every,
            eval_episodes,
            deterministic,
            batch_size,
            hidden,
            preset,
            expectile,
            temperature,
            reward_scale,
            holdout,
            rerun,
            device,
            json,
        } => {
            let outcome = train::train(&train::TrainArgs {
                algorithm,
                data,
                out,
                steps,
                seed,
                resume,
                eval_every,
                eval_episodes,
                deterministic,
                batch_size,
                hidden,
                preset,
                expectile,
                temperature,
                reward_scale,
                holdout,
                rerun,
                device,
            })?;
            print_outcome(&outcome, json)?;
            // 128 + SIGINT, as a shell reports a command Ctrl-C stopped.
            Ok(if outcome.interrupted { 130 } else { 0 })
        }
        Command::Eval {
            checkpoint,
            episodes,
            seed,
            config,
            data,
            json,
        } => {
            let outcome = train::eval(&train::EvalArgs {
                checkpoint,
                episodes,
                seed,
                config,
                data,
            })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Export {
            what:
                Export::Onnx {
                    checkpoint,
                    out,
                    json,
                },
        } => {
            let outcome = rlrt::commands::export::onnx(&rlrt::commands::export::ExportArgs {
                checkpoint,
                out,
            })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Export {
            what:
                Export::Torchscript {
                    checkpoint,
                    out,
                    json,
                },
        } => {
            let outcome =
                rlrt::commands::export::torchscript(&rlrt::commands::export::ExportArgs {
                    checkpoint,
                    out,
                })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Export {
            what:
                Export::Lerobot {
                    data,
                    out,
                    task,
                    json,
                },
        } => {
            let outcome = rlrt::commands::lerobot::export(&rlrt::commands::lerobot::LeRobotArgs {
                data,
                out,
                task,
            })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Relabel {
            data,
            program,
            reward,
            model,
            camera,
            ensemble,
            out,
            config,
            json,
        } => {
            use rlrt::commands::relabel::{relabel, RelabelArgs, RewardChoice};
            let mut rewards: Vec<RewardChoice> =
                program.into_iter().map(RewardChoice::Program).collect();
            rewards.extend(reward.into_iter().map(RewardChoice::Source));
            rewards.extend(model.into_iter().map(|path| RewardChoice::Model {
                path,
                camera: camera.clone(),
            }));
            let outcome = relabel(&RelabelArgs {
                data,
                rewards,
                ensemble,
                out,
                config,
            })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Replay {
            data,
            rerun,
            programs,
            config,
            episodes,
            json,
        } => {
            let outcome = rlrt::commands::replay::replay(&rlrt::commands::replay::ReplayArgs {
                data,
                config,
                programs,
                episodes,
                rerun,
            })?;
            print_outcome(&outcome, json)?;
            Ok(0)
        }
        Command::Bench { what } => match what {
            Bench::Clip {
                calls,
                batch_calls,
                batch,
                device,
                precision,
                no_peer,
                no_fusion,
                python_path,
                json,
            } => {
                let mut threads = vec![1, rayon::current_num_threads()];
                threads.dedup();
                let report = bench_clip::run(&bench_clip::BenchClipArgs {
                    calls,
                    batch_calls,
                    batch,
                    device,
                    threads,
                    precision,
                    no_peer,
                    no_fusion,
                    python_path,
                })?;
                print_bench(&report, json);
                Ok(0)
            }
            Bench::Iql {
                observations,
                actions,
                hidden,
                batch,
                steps,
                readback_every,
                device,
                no_peer,
                no_fusion,
                python_path,
                json,
            } => {
                let mut threads = vec![1, rayon::current_num_threads()];
                threads.dedup();
                let report = bench_iql::run(&bench_iql::BenchIqlArgs {
                    observations,
                    actions,
                    hidden,
                    batch,
                    steps,
                    readback_every,
                    device,
                    threads,
                    no_peer,
                    no_fusion,
                    python_path,
                })?;
                print_bench(&report, json);
                Ok(0)
            }
            Bench::Policy {
                inputs,
                outputs,
                hidden,
                calls,
                python_path,
                json,
            } => {
                let report = bench_policy::run(&bench_policy::BenchPolicyArgs {
                    inputs,
                    outputs,
                    hidden,
                    calls,
                    python_path,
                })?;
                print_bench(&report, json);
                Ok(0)
            }
            Bench::RewardProgram {
                calls,
                no_peer,
                json,
            } => {
                let report = bench_reward::run(&bench_reward::BenchRewardArgs { calls, no_peer })?;
                print_bench(&report, json);
                Ok(0)
            }
            Bench::Link {
                round_trips,
                lockstep_seconds,
                frames,
                json,
            } => {
                let report = bench_link::run(&bench_link::BenchLinkArgs {
                    round_trips,
                    frames,
                    lockstep_seconds,
                })?;
                print_bench(&report, json);
                Ok(0)
            }
            Bench::Loop {
                rate_hz,
                seconds,
                peer_seconds,
                config,
                cpu_core,
                realtime_priority,
                spin_us,
                json,
            } => {
                let report = bench_loop::run(&bench_loop::BenchLoopArgs {
                    rate_hz,
                    seconds,
                    peer_seconds,
                    config,
                    cpu_core,
                    realtime_priority,
                    spin_us,
                })?;
                print_bench(&report, json);
                Ok(0)
            }
            Bench::Rerun {
                rate_hz,
                camera_hz,
                camera_size,
                seconds,
                rounds,
                cpu_core,
                realtime_priority,
                out,
                json,
            } => {
                let report = rlrt::commands::bench_rerun::run(
                    &rlrt::commands::bench_rerun::BenchRerunArgs {
                        rate_hz,
                        camera_hz,
                        camera_size,
                        seconds,
                        rounds,
                        cpu_core,
                        realtime_priority,
                        out,
                    },
                )?;
                print_bench(&report, json);
                Ok(0)
            }
        },
    }
}

/// `NAME=FILE` of `rlrt replay --program`.
fn parse_named_program(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, file)) if !name.is_empty() && !file.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(file)))
        }
        _ => Err(format!(
            "--program {s:?}: expected NAME=FILE, such as reach=rewards/programs/reach.rhai"
        )),
    }
}
