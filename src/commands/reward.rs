//! `rlrt reward ...`: reward programs (prompt, generate, check, feedback, relabel), CLIP on one
//! frame, and the subcommands that train learned rewards (`train-classifier`, `label-pairs`,
//! `train-preferences`, in their own modules). Each program function loads and validates the
//! hw-config, builds its program environment and calls into `rlrt_rewards::program`; a
//! program or config the user must fix ends with exit code 2 (`error_exit_code`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rlrt_rewards::program::feedback::{
    feedback_prompt, read_episodes, relabel as relabel_records, summarize,
};
use rlrt_rewards::program::generate::{generate as generate_program, ChatEndpoint};
use rlrt_rewards::program::{
    check_file, prompt as program_prompt, CheckOptions, CheckReport, Environment, Limits,
    RewardProgram,
};
use rlrt_runtime::compute::{ComputeDevice, Precision};

pub use rlrt_rewards::program::generate::{GenerateOptions, Generated};

/// The program environment of a hw-config.
pub fn environment(config: &Path) -> anyhow::Result<Environment> {
    let config = rlrt_runtime::config::load(config)?;
    Environment::from_config(&config).with_context(|| format!("{}", config.source.display()))
}

fn checked(config: &Path, program: &Path) -> anyhow::Result<(RewardProgram, CheckReport)> {
    let env = environment(config)?;
    Ok(check_file(
        &env,
        program,
        &Limits::default(),
        &CheckOptions::default(),
    )?)
}

/// `rlrt reward prompt`: the full prompt for a task sentence.
pub fn prompt(config: &Path, task: &str) -> anyhow::Result<String> {
    let env = environment(config)?;
    Ok(program_prompt::prompt(
        &env,
        task,
        &Limits::default(),
        CheckOptions::default().max_abs_term,
    ))
}

/// `rlrt reward generate`.
#[derive(clap::Args, Clone, Debug)]
pub struct GenerateArgs {
    pub config: PathBuf,
    pub task: String,
    /// Base URL of the API, such as http://127.0.0.1:11434/v1 (POSTs to
    /// <base-url>/chat/completions).
    #[arg(long)]
    pub base_url: String,
    /// Model name the endpoint knows.
    #[arg(long)]
    pub model: String,
    /// Name of the environment variable that holds the API key (sent as a bearer
    /// token); none is sent without it.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// Where to write the program.
    #[arg(long)]
    pub out: PathBuf,
    /// Further requests after a rejected program, each shown the check's problems.
    #[arg(long, default_value_t = 1)]
    pub retries: u32,
    /// Limit for each request, reply included.
    #[arg(long, default_value_t = 120.0)]
    pub timeout_s: f64,
    #[arg(long, default_value_t = 0.2)]
    pub temperature: f64,
}

/// `rlrt reward generate`: ask the endpoint, check, write.
pub fn generate(args: &GenerateArgs) -> anyhow::Result<Generated> {
    let env = environment(&args.config)?;
    let api_key = match &args.api_key_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("--api-key-env {var}: the environment variable {var} is not set")
        })?),
        None => None,
    };
    anyhow::ensure!(
        args.timeout_s.is_finite() && args.timeout_s > 0.0,
        "--timeout-s must be above zero, got {}",
        args.timeout_s
    );
    let endpoint = ChatEndpoint {
        base_url: args.base_url.clone(),
        model: args.model.clone(),
        api_key,
        timeout: Duration::from_secs_f64(args.timeout_s),
        temperature: args.temperature,
    };
    let options = GenerateOptions {
        retries: args.retries,
        ..GenerateOptions::default()
    };
    Ok(generate_program(
        &env, &args.task, &endpoint, &options, &args.out,
    )?)
}

/// `rlrt reward check`: the full check; the report holds each term's range.
pub fn check(config: &Path, program: &Path) -> anyhow::Result<CheckReport> {
    Ok(checked(config, program)?.1)
}

/// `rlrt reward feedback`: per-term statistics over recorded episodes and the refinement
/// prompt built from them.
pub fn feedback(
    config: &Path,
    program: &Path,
    episodes: &Path,
    task: &str,
    user_feedback: &str,
) -> anyhow::Result<String> {
    let (mut program, _) = checked(config, program)?;
    let records = read_episodes(program.environment(), episodes)?;
    anyhow::ensure!(!records.is_empty(), "{}: no records", episodes.display());
    let stats = summarize(&mut program, &records);
    Ok(feedback_prompt(
        &program,
        task,
        &stats,
        user_feedback,
        CheckOptions::default().max_abs_term,
    ))
}

/// `rlrt reward relabel`: a recording's rewards recomputed with a program. Returns the
/// number of records written and how many of them are invalid.
pub fn relabel(
    config: &Path,
    program: &Path,
    episodes: &Path,
    out: &Path,
) -> anyhow::Result<(usize, usize)> {
    let (mut program, _) = checked(config, program)?;
    let records = read_episodes(program.environment(), episodes)?;
    let invalid = relabel_records(&mut program, &records, out)?;
    Ok((records.len(), invalid))
}

/// `rlrt reward clip`.
#[derive(clap::Args, Clone, Debug)]
pub struct ClipArgs {
    /// Hugging Face CLIP folder: config.json, model.safetensors, vocab.json, merges.txt.
    #[arg(long)]
    pub model: PathBuf,
    /// The frame, a PNG file.
    #[arg(long)]
    pub image: PathBuf,
    /// The task done, in one sentence ("a humanoid robot kneeling").
    #[arg(long)]
    pub goal: String,
    /// The neutral sentence the goal is contrasted with ("a humanoid robot").
    #[arg(long)]
    pub baseline: Option<String>,
    /// Weight of the baseline-to-goal projection, in [0, 1] (default 0.5); needs
    /// --baseline.
    #[arg(long, requires = "baseline")]
    pub alpha: Option<f64>,
    /// Resize the frame straight to 224 x 224 (as VLM-RM did) instead of shortest side
    /// to 224 and a centre crop (Hugging Face's CLIPImageProcessor).
    #[arg(long)]
    pub plain_resize: bool,
    /// cpu, cuda or cuda:N (CUDA needs rlrt built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// f32, or f16 on CUDA.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
}

/// What `rlrt reward clip` prints.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClipReport {
    #[serde(flatten)]
    pub reward: rlrt_rewards::clip::ClipReward,
    pub resize: &'static str,
    pub width: usize,
    pub height: usize,
    /// The backend, precision and device that computed the embeddings.
    pub backend: String,
}

/// `rlrt reward clip`: the VLM-RM reward of one PNG frame, on the CPU (burn's Flex backend)
/// or on CUDA.
pub fn clip(args: &ClipArgs) -> anyhow::Result<ClipReport> {
    use rlrt_rewards::clip::{preprocess, ClipEngine, ClipGoal, Resize, Rgb8};
    let model = ClipEngine::load(&args.model, args.device, args.precision)?;
    let (rgb, width, height) = preprocess::read_png(&args.image)?;
    let mode = if args.plain_resize {
        Resize::Plain
    } else {
        Resize::CentreCrop
    };
    let frame = Rgb8 {
        data: &rgb,
        width,
        height,
    };
    let alpha = rlrt_runtime::config::clip_alpha(args.alpha, args.baseline.is_some());
    let goal = ClipGoal::new(&model, &args.goal, args.baseline.as_deref(), alpha)?;
    let reward = goal.score(&model.embed_frames(&[frame], mode)?.remove(0))?;
    Ok(ClipReport {
        reward,
        resize: if args.plain_resize {
            "plain"
        } else {
            "centre_crop"
        },
        width,
        height,
        backend: model.describe(),
    })
}

impl std::fmt::Display for ClipReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "reward {:.6}", self.reward.reward)?;
        writeln!(f, "goal similarity {:.6}", self.reward.goal_similarity)?;
        if let Some(b) = self.reward.baseline_similarity {
            writeln!(
                f,
                "baseline similarity {b:.6} (alpha {})",
                self.reward.alpha
            )?;
        }
        writeln!(
            f,
            "frame {} x {}, resize {}",
            self.width, self.height, self.resize
        )?;
        writeln!(f, "computed with {}", self.backend)
    }
}

/// `rlrt reward ...`.
#[derive(clap::Subcommand)]
pub enum Reward {
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
    Generate(GenerateArgs),
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
    TrainClassifier(super::train_classifier::TrainClassifierCommand),
    /// Label pairs of recorded camera frames with a preference (which is closer to the
    /// goal: first, second or none), for `reward train-preferences`. The teacher is a
    /// vision-language model behind an OpenAI-compatible chat endpoint (--base-url, --model,
    /// --goal), or the frames' recorded task scores (--teacher scores: the lower score, such
    /// as a distance, is closer). Labels are appended to a JSON-lines file as they come.
    LabelPairs(super::preferences::LabelPairsCommand),
    /// Fit a reward model to preference labels (`reward label-pairs`) with the Bradley-Terry
    /// loss, in burn on the CPU; pairs with a frame from a held-out episode validate it.
    /// Writes an ONNX model for a `kind = "preference_model"` reward, checked with ONNX
    /// Runtime against burn.
    TrainPreferences(super::preferences::TrainPreferencesCommand),
    /// Zero-shot reward of one camera frame with CLIP (VLM-RM): the cosine similarity of the
    /// frame and a goal sentence, or with --baseline the goal-baseline projected reward.
    /// Exit code 2 for a model folder, prompt or image that cannot be used.
    Clip {
        #[command(flatten)]
        args: ClipArgs,
        #[command(flatten)]
        output: super::Output,
    },
}

/// `rlrt reward ...`: runs the subcommand and prints what it made.
pub fn execute(reward: Reward) -> anyhow::Result<super::Exit> {
    match reward {
        Reward::Prompt { config, task } => print!("{}", prompt(&config, &task)?),
        Reward::Generate(args) => {
            let generated = generate(&args)?;
            println!(
                "wrote {} (attempt {})",
                args.out.display(),
                generated.attempts
            );
            print!("{}", generated.report);
        }
        Reward::Check { config, program } => print!("{}", check(&config, &program)?),
        Reward::Feedback {
            config,
            program,
            episodes,
            task,
            feedback: said,
        } => print!("{}", feedback(&config, &program, &episodes, &task, &said)?),
        Reward::Relabel {
            config,
            program,
            episodes,
            out,
        } => {
            let (records, invalid) = relabel(&config, &program, &episodes, &out)?;
            println!(
                "wrote {records} records to {} ({invalid} with an invalid reward)",
                out.display()
            );
        }
        Reward::TrainClassifier(command) => return super::train_classifier::execute(command),
        Reward::LabelPairs(command) => return super::preferences::execute_label_pairs(command),
        Reward::TrainPreferences(command) => {
            return super::preferences::execute_train_preferences(command)
        }
        Reward::Clip { args, output } => output.print(&clip(&args)?)?,
    }
    Ok(super::Exit::Success)
}
