//! `rlrt`: the command line of the rlrt robot runtime. Parses arguments and hands each command
//! to its module in `rlrt::commands`, which does the work through the library crates and
//! prints its outcome; the exit code comes from the command's `Exit` or, for an error, from
//! `commands::error_exit_code`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
#[cfg(feature = "datasets")]
use rlrt::commands::import;
#[cfg(feature = "rerun")]
use rlrt::commands::replay;
use rlrt::commands::{bench, check, export, relabel, reward, run, Output};
#[cfg(feature = "sim")]
use rlrt::commands::{demo, record, sim, train};
use rlrt_runtime::alloc_count::CountingAllocator;

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
    Check(check::CheckArgs),
    /// Run a robot config's policy in the control loop and print loop statistics.
    ///
    /// The robot is whatever answers on the config's zenoh link (its driver, or `rlrt sim`
    /// in another process or on another host). `--sim` serves the config's MuJoCo task in
    /// this process instead; `--kinematic` uses the in-process kinematic model. Ctrl-C
    /// stops at the end of a tick.
    Run {
        #[command(flatten)]
        args: run::RunArgs,
        #[command(flatten)]
        output: Output,
    },
    #[cfg(feature = "sim")]
    /// Serve a config's MuJoCo task as a robot on the zenoh link, for `rlrt run` in another
    /// process or on another host. Ctrl-C stops.
    Sim {
        #[command(flatten)]
        args: sim::SimArgs,
        #[command(flatten)]
        output: Output,
    },
    #[cfg(feature = "sim")]
    /// The built-in demo: the MuJoCo reach task served over zenoh on loopback, driven by the
    /// scripted controller for seeded episodes, with the simulator killed and restarted in
    /// the middle episode; prints success rate, loop statistics and safety interventions.
    Demo {
        #[command(flatten)]
        args: demo::DemoArgs,
        #[command(flatten)]
        output: Output,
    },
    /// Reward programs: sandboxed scripts of named reward terms, written by a language
    /// model from a task sentence (see rewards/programs/ for examples); CLIP on a frame;
    /// training success classifiers and preference reward models.
    Reward {
        #[command(subcommand)]
        what: reward::Reward,
    },
    #[cfg(feature = "sim")]
    /// Record seeded episodes of a config's sim task as an rlrt dataset (one file per
    /// episode; see docs/recordings.md): the config's scripted policy plus Gaussian noise,
    /// or uniformly random actions, every action through the safety layer.
    Record {
        #[command(flatten)]
        args: record::RecordArgs,
        #[command(flatten)]
        output: Output,
    },
    #[cfg(feature = "datasets")]
    /// Convert a Minari dataset (folder or HDF5 file) or a D4RL HDF5 file into an rlrt
    /// dataset, described by a hw-config whose observation and action sizes match the file
    /// (or, without --config, by one written from the dataset's own metadata).
    Import {
        #[command(flatten)]
        args: import::ImportArgs,
        #[command(flatten)]
        output: Output,
    },
    #[cfg(feature = "sim")]
    /// Train a policy offline on an rlrt dataset (IQL or behaviour cloning), evaluating it
    /// in the dataset's sim task as it goes; writes a checkpoint folder.
    Train {
        #[command(flatten)]
        args: train::TrainArgs,
        #[command(flatten)]
        output: Output,
    },
    #[cfg(feature = "sim")]
    /// Run a checkpoint's actor for seeded episodes in its config's sim task; prints the
    /// success rate with a 95% Wilson interval and the mean return.
    Eval {
        #[command(flatten)]
        args: train::EvalArgs,
        #[command(flatten)]
        output: Output,
    },
    /// Export a trained actor for other runtimes, or a dataset for LeRobot.
    Export {
        #[command(subcommand)]
        what: export::Export,
    },
    /// Write a dataset again with its rewards from another source, for `rlrt train`: a reward
    /// program (say one a language model wrote), scored on the observation each step led to
    /// with its action as previous_action; or a CLIP, classifier or reward-model source of
    /// the config, or an ONNX reward model file, scoring the recorded camera frames (each
    /// step gets the newest frame's reward).
    /// Observations, actions, flags and frames are copied; nothing is written unless every
    /// step is scored. With --ensemble, several of these (any mix) combined.
    Relabel {
        #[command(flatten)]
        args: relabel::RelabelArgs,
        #[command(flatten)]
        output: Output,
    },
    #[cfg(feature = "rerun")]
    /// Replay a recorded dataset (`rlrt record`) into rerun with its rewards recomputed by
    /// reward programs, to compare programs side by side on the same episodes.
    Replay {
        #[command(flatten)]
        args: replay::ReplayArgs,
        #[command(flatten)]
        output: Output,
    },
    /// Benchmarks; each prints a table, or with --json exactly one JSON object.
    Bench {
        #[command(subcommand)]
        what: bench::Bench,
    },
}

impl Command {
    /// Commands that run the real-time loop keep one core free of the global thread pool.
    fn runs_the_loop(&self) -> bool {
        match self {
            Command::Run { .. } => true,
            #[cfg(feature = "sim")]
            Command::Sim { .. } | Command::Demo { .. } => true,
            _ => false,
        }
    }

    fn execute(self) -> anyhow::Result<rlrt::commands::Exit> {
        match self {
            Command::Check(args) => check::execute(args),
            Command::Run { args, output } => run::execute(args, output),
            #[cfg(feature = "sim")]
            Command::Sim { args, output } => sim::execute(args, output),
            #[cfg(feature = "sim")]
            Command::Demo { args, output } => demo::execute(args, output),
            Command::Reward { what } => reward::execute(what),
            #[cfg(feature = "sim")]
            Command::Record { args, output } => record::execute(args, output),
            #[cfg(feature = "datasets")]
            Command::Import { args, output } => import::execute(args, output),
            #[cfg(feature = "sim")]
            Command::Train { args, output } => train::execute_train(args, output),
            #[cfg(feature = "sim")]
            Command::Eval { args, output } => train::execute_eval(args, output),
            Command::Export { what } => export::execute(what),
            Command::Relabel { args, output } => relabel::execute(args, output),
            #[cfg(feature = "rerun")]
            Command::Replay { args, output } => replay::execute(args, output),
            Command::Bench { what } => bench::execute(what),
        }
    }
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    if let Err(e) = rlrt::threads::init_global(cli.threads, cli.command.runs_the_loop()) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    match cli.command.execute() {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(rlrt::commands::error_exit_code(&error))
        }
    }
}
