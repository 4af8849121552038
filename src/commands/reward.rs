//! `rlrt reward prompt | generate | check | feedback | relabel`: reward programs from the
//! command line. Each function loads and validates the hw-config, builds its program
//! environment and calls into `rlrt_rewards::program`; `main.rs` prints and picks the exit
//! code (2 for a program or config the user must fix).

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

#[derive(Clone, Debug)]
pub struct GenerateArgs {
    pub config: PathBuf,
    pub task: String,
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable that holds the API key, if the endpoint needs one.
    pub api_key_env: Option<String>,
    pub out: PathBuf,
    pub retries: u32,
    pub timeout_s: f64,
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

/// `rlrt reward clip`: arguments.
#[derive(Clone, Debug)]
pub struct ClipArgs {
    /// A Hugging Face CLIP folder (config.json, model.safetensors, vocab.json, merges.txt).
    pub model: PathBuf,
    /// A PNG frame.
    pub image: PathBuf,
    pub goal: String,
    pub baseline: Option<String>,
    pub alpha: f64,
    pub plain_resize: bool,
    pub device: ComputeDevice,
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
    let goal = ClipGoal::new(&model, &args.goal, args.baseline.as_deref(), args.alpha)?;
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
