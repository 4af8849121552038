//! One module per `rlrt` command.

pub mod bench;
pub mod bench_clip;
#[cfg(feature = "sim")]
pub mod bench_iql;
#[cfg(feature = "sim")]
pub mod bench_link;
pub mod bench_loop;
pub mod bench_policy;
#[cfg(feature = "sim")]
pub mod bench_rerun;
pub mod bench_reward;
pub mod check;
#[cfg(feature = "sim")]
pub mod demo;
pub mod export;
#[cfg(feature = "datasets")]
pub mod import;
pub mod preferences;
#[cfg(feature = "sim")]
pub mod record;
pub mod relabel;
#[cfg(feature = "rerun")]
pub mod replay;
pub mod reward;
pub mod run;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "sim")]
pub mod train;
pub mod train_classifier;

use std::path::Path;

use anyhow::Context;
use rlrt_runtime::config::{self, ConfigError};

/// How a command ended, for its exit code (errors are mapped by [`error_exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Success,
    /// 2: a config, program or model the user must fix.
    InvalidConfig,
    /// 3: a run that ended unsafely or failed its own checks.
    RunFailed,
    /// 130 (128 + SIGINT), as a shell reports a command Ctrl-C stopped.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::InvalidConfig => crate::EXIT_INVALID_CONFIG as u8,
            Exit::RunFailed => crate::EXIT_RUN_FAILED as u8,
            Exit::Interrupted => 130,
        }
    }

    /// `Success` when `ok`, else `RunFailed`.
    pub fn run_failed_unless(ok: bool) -> Self {
        if ok {
            Exit::Success
        } else {
            Exit::RunFailed
        }
    }
}

/// The one mapping of errors to exit codes: 2 for input the user must fix (a config, a reward
/// program, a CLIP model folder, a language model's rejected program), 1 for anything else.
pub fn error_exit_code(error: &anyhow::Error) -> u8 {
    use rlrt_rewards::live::{LoadError, SourceError};
    use rlrt_rewards::program::generate::GenerateError;
    // Anywhere in the chain: a library error wraps the cause as its source.
    let users_input = error.chain().any(|e| {
        e.is::<ConfigError>()
            || e.is::<rlrt_rewards::program::ProgramError>()
            || e.is::<rlrt_rewards::clip::ClipError>()
            || matches!(
                e.downcast_ref::<GenerateError>(),
                Some(GenerateError::Rejected { .. })
            )
            // Transparent wrappers pass their cause's causes on, not the cause itself.
            || matches!(e.downcast_ref::<LoadError>(), Some(LoadError::Program(_)))
            || matches!(
                e.downcast_ref::<Box<SourceError>>().map(|b| &**b),
                Some(SourceError::Clip(_))
            )
    });
    if users_input {
        Exit::InvalidConfig.code()
    } else {
        1
    }
}

/// The text report's `link:` line: the non-zero link counters (none: no line).
pub fn write_link_counters(
    f: &mut std::fmt::Formatter<'_>,
    counters: &[(&'static str, u64)],
) -> std::fmt::Result {
    let nonzero: Vec<String> = counters
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if nonzero.is_empty() {
        return Ok(());
    }
    writeln!(f, "link: {}", nonzero.join(", "))
}

/// `--json` of a command: its outcome as one JSON object on stdout instead of text.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Output {
    /// Print the outcome as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl Output {
    /// A command's outcome: JSON on one line with `--json`, else its text form.
    pub fn print(
        self,
        outcome: &(impl serde::Serialize + std::fmt::Display),
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(outcome)?);
        } else {
            print!("{outcome}");
        }
        Ok(())
    }
}

/// A progress bar over `len` steps that clears itself when dropped.
pub(crate) struct Progress(indicatif::ProgressBar);

impl Progress {
    pub(crate) fn new(len: usize) -> Self {
        Self(indicatif::ProgressBar::new(len as u64))
    }

    #[cfg(feature = "sim")]
    pub(crate) fn set(&self, done: usize) {
        self.0.set_position(done as u64);
    }

    /// Position `epoch` with its loss.
    pub(crate) fn epoch(&self, epoch: usize, loss: f64) {
        self.0.set_position(epoch as u64);
        self.0.set_message(format!("loss {loss:.4}"));
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// The error of a `--device cuda` in an rlrt built without the `cuda` feature.
pub fn no_cuda() -> anyhow::Error {
    anyhow::anyhow!(
        "--device cuda: this rlrt was built without CUDA; rebuild with \
         `cargo build --release --features cuda` (see docs/cuda.md)"
    )
}

/// How the benches' burn CUDA backend is built, for their reports.
#[cfg(feature = "cuda")]
pub fn cuda_layers(no_fusion: bool) -> &'static str {
    if no_fusion {
        "no fusion, autotune"
    } else {
        "fusion, autotune"
    }
}

/// Runs `f` on CUDA device `index` (see `rlrt_models::cuda::on_cuda`: a missing driver or
/// a panic of burn's CUDA backend becomes an error).
#[cfg(feature = "cuda")]
pub fn with_cuda<T>(
    index: usize,
    f: impl FnOnce(burn::backend::cuda::CudaDevice) -> T,
) -> anyhow::Result<T> {
    rlrt_models::cuda::on_cuda(index, || f(burn::backend::cuda::CudaDevice::new(index)))
        .map_err(anyhow::Error::msg)
}

/// Opens CUDA device `index` for burn, checking that it starts (a first tensor made and read).
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> anyhow::Result<burn::backend::cuda::CudaDevice> {
    with_cuda(index, |device| {
        burn::tensor::Tensor::<burn::backend::Cuda, 1>::zeros([1], &device).into_data();
        device
    })
}
use rlrt_runtime::RobotConfig;

/// Parses config text after replacing some keys, so commands can override a shipped config
/// and still go through the full validation. `overrides` are (dotted key, value) pairs; a
/// value of `None` removes the key.
pub fn parse_with_overrides(
    text: &str,
    path: &Path,
    overrides: &[(&str, Option<toml::Value>)],
) -> Result<RobotConfig, ConfigError> {
    if overrides.is_empty() {
        return config::parse(text, path);
    }
    let Ok(mut table) = text.parse::<toml::Table>() else {
        // Let the real parser produce the located error.
        return config::parse(text, path);
    };
    for (key, value) in overrides {
        let parts: Vec<&str> = key.split('.').collect();
        set_key(&mut table, &parts, value.as_ref());
    }
    let text = toml::to_string(&table).unwrap_or_default();
    config::parse(&text, path)
}

fn set_key(table: &mut toml::Table, parts: &[&str], value: Option<&toml::Value>) {
    match parts {
        [] => {}
        [last] => match value {
            Some(v) => {
                table.insert((*last).to_owned(), v.clone());
            }
            None => {
                table.remove(*last);
            }
        },
        [first, rest @ ..] => {
            let entry = table
                .entry((*first).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                set_key(inner, rest, value);
            }
        }
    }
}

/// Runs `python3` with `args` (and `PYTHONPATH` when given), writes `stdin` to it and returns
/// its output once it has ended: the one way the benchmarks start their Python peers.
pub(crate) fn run_python(
    args: &[&str],
    pythonpath: Option<&std::path::Path>,
    stdin: &[u8],
) -> anyhow::Result<std::process::Output> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut command = Command::new("python3");
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = pythonpath {
        command.env("PYTHONPATH", path);
    }
    let mut child = command
        .spawn()
        .context("running python3 (is Python 3 installed?)")?;
    child
        .stdin
        .take()
        .context("python3 stdin")?
        .write_all(stdin)?;
    Ok(child.wait_with_output()?)
}

/// Runs a Python peer with [`run_python`] and parses the one JSON object it prints. A failed
/// peer is an error that says what it `needs` and ends with its last line of stderr (the
/// exception).
pub(crate) fn python_json(
    args: &[&str],
    pythonpath: Option<&std::path::Path>,
    stdin: &[u8],
    needs: &str,
) -> anyhow::Result<serde_json::Value> {
    let out = run_python(args, pythonpath, stdin)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "the Python peer failed ({}; it needs {needs}): {}",
        out.status,
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    );
    serde_json::from_slice(&out.stdout).context("the Python peer's output")
}

/// A config and its text, loaded and validated.
pub fn load_config(path: &Path) -> anyhow::Result<(RobotConfig, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config = rlrt_runtime::config::parse(&text, path)?;
    Ok((config, text))
}

/// Where a benchmark's control thread runs: a CPU and a real-time priority, as the config's
/// `[scheduler]` would set them.
#[derive(clap::Args, Clone, Debug)]
pub struct SchedulingArgs {
    /// Pin the control thread to this CPU.
    #[arg(long)]
    pub cpu_core: Option<usize>,
    /// Run the control thread under SCHED_FIFO at this priority (1-99; needs the privilege).
    #[arg(long)]
    pub realtime_priority: Option<i32>,
}

impl SchedulingArgs {
    /// The config overrides (`scheduler.cpu_core`, `scheduler.realtime_priority`) these ask.
    pub fn overrides(&self) -> Vec<(&'static str, Option<toml::Value>)> {
        let mut overrides = Vec::new();
        if let Some(core) = self.cpu_core {
            overrides.push((
                "scheduler.cpu_core",
                Some(toml::Value::Integer(core as i64)),
            ));
        }
        if let Some(priority) = self.realtime_priority {
            overrides.push((
                "scheduler.realtime_priority",
                Some(toml::Value::Integer(priority.into())),
            ));
        }
        overrides
    }
}
