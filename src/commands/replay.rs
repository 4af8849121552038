//! `rlrt replay`: a recorded dataset into rerun, with its rewards recomputed by chosen
//! reward programs, so that two programs (or two versions of one) can be compared side by
//! side on the same episodes.
//!
//! Episodes are laid end to end on the `tick` timeline (one tick per recorded step) and on
//! the `time` timeline at the dataset's control rate. Every program sees, at step `t`, the
//! observation the policy saw before action `t` and, as `previous_action`, action `t - 1`
//! (zeros at the start of an episode): what the same program sees in the loop.

use std::path::PathBuf;
use std::sync::Arc;

use rlrt_rewards::offline::{checked_program, dataset_config, mean_where};
use rlrt_rewards::program::ProgramState;
use rlrt_runtime::config::{RewardKind, MAX_ACTION};
use rlrt_runtime::recording::Dataset;
use rlrt_runtime::telemetry::TickRecord;
use rlrt_runtime::Observation;

use crate::timeline::{Destination, RerunLogger, RerunSummary, WallTime};
use rlrt_runtime::hub::Event;

/// `rlrt replay`: a recorded dataset into rerun with its rewards recomputed.
#[derive(clap::Args, Clone, Debug)]
pub struct ReplayArgs {
    /// The dataset folder.
    pub data: PathBuf,
    /// Use this hw-config instead of the one saved with the dataset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A reward program to score the episodes with, as NAME=FILE (repeat to compare
    /// several); default: the reward programs of the dataset's config.
    #[arg(long = "program", value_name = "NAME=FILE", value_parser = parse_named_program)]
    pub programs: Vec<(String, PathBuf)>,
    /// Replay at most this many episodes.
    #[arg(long)]
    pub episodes: Option<usize>,
    /// Where the recording goes: save=<file.rrd>, spawn or connect[=<host:port>].
    #[arg(long, value_name = "DESTINATION")]
    pub rerun: Destination,
}

/// What one program scored over the replayed episodes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProgramReplay {
    pub name: String,
    pub file: String,
    pub evaluations: u64,
    pub invalid: u64,
    /// Mean per-episode return (the sum of the program's totals over an episode).
    pub mean_return: f64,
    /// Mean return over successful episodes minus over failed ones (how well the program
    /// separates them; `None` when either group is empty).
    pub success_gap: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayOutcome {
    pub dataset: String,
    pub episodes: usize,
    pub steps: u64,
    pub programs: Vec<ProgramReplay>,
    pub rerun: RerunSummary,
}

impl std::fmt::Display for ReplayOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "replayed {} episodes ({} steps) of {}",
            self.episodes, self.steps, self.dataset
        )?;
        for p in &self.programs {
            writeln!(
                f,
                "  reward {} ({}): {} evaluations, {} invalid, mean return {:.3}, success gap {}",
                p.name,
                p.file,
                p.evaluations,
                p.invalid,
                p.mean_return,
                p.success_gap
                    .map_or_else(|| "n/a".to_owned(), |g| format!("{g:.3}"))
            )?;
        }
        write!(f, "{}", self.rerun)
    }
}

struct Source {
    label: Arc<str>,
    file: String,
    program: rlrt_rewards::program::RewardProgram,
    invalid: u64,
    evaluations: u64,
    returns: Vec<f64>,
}

pub fn replay(args: &ReplayArgs) -> anyhow::Result<ReplayOutcome> {
    let dataset = Dataset::open(&args.data)?;
    let (config, features) = dataset_config(&args.data, &dataset, args.config.as_deref())?;

    let programs: Vec<(String, PathBuf)> = if args.programs.is_empty() {
        config
            .rewards
            .iter()
            .filter(|r| r.kind == RewardKind::Program)
            .filter_map(|r| Some((r.name.clone(), r.program_path.clone()?)))
            .collect()
    } else {
        args.programs.clone()
    };
    let mut sources = Vec::new();
    for (name, path) in &programs {
        let program = checked_program(name, path, &config, &args.data, &dataset)?;
        sources.push(Source {
            label: Arc::from(name.as_str()),
            file: path.display().to_string(),
            program,
            invalid: 0,
            evaluations: 0,
            returns: Vec::new(),
        });
    }

    let rerun = RerunLogger::start(
        &args.rerun,
        &config,
        &format!("rlrt replay {}", args.data.display()),
        WallTime::OnArrival,
        crate::timeline::DEFAULT_QUEUE_LEN,
    )?;
    let handle = rerun.events();
    let (obs_len, act_len) = (dataset.info.observation_len, dataset.info.action_len);
    let period_ns = config.period_ns();
    let episodes: Vec<_> = dataset
        .episodes
        .iter()
        .take(args.episodes.unwrap_or(usize::MAX))
        .collect();
    let mut tick = 0u64;
    let mut record = TickRecord::empty();
    record.dof = config.dof() as u8;
    record.action_len = act_len as u8;
    record.published = true;
    let mut obs = Observation::empty(config.dof(), config.observation.sensor_values);
    for (index, episode) in episodes.iter().enumerate() {
        let mut previous = [0.0; MAX_ACTION];
        for s in &mut sources {
            s.returns.push(0.0);
        }
        let mut recorded_return = 0.0;
        for t in 0..episode.steps() {
            tick += 1;
            let time_ns = tick * period_ns;
            features.read(
                &episode.observations[t * obs_len..(t + 1) * obs_len],
                &mut obs,
            );
            obs.seq = t as u64 + 1;
            obs.stamp_ns = time_ns;
            obs.received_ns = time_ns;
            let action = &episode.actions[t * act_len..(t + 1) * act_len];
            record.tick = tick;
            record.deadline_ns = time_ns;
            record.start_ns = time_ns;
            record.observation = obs;
            record.observation_seq = obs.seq;
            record.proposed[..act_len].copy_from_slice(action);
            record.command[..act_len].copy_from_slice(action);
            handle.offer(Event::Replayed(Box::new(record)));
            let reward = episode.rewards[t];
            recorded_return += reward;
            handle.offer(Event::Reward {
                tick,
                time_ns,
                source: Arc::from("recorded"),
                names: Arc::from(Vec::<String>::new()),
                values: Vec::new(),
                total: reward,
            });
            let state = ProgramState::new(obs, &previous[..act_len]);
            for s in &mut sources {
                s.evaluations += 1;
                match s.program.evaluate(&state) {
                    Ok(terms) => {
                        *s.returns.last_mut().expect("pushed above") += terms.total();
                        handle.offer(Event::Reward {
                            tick,
                            time_ns,
                            source: s.label.clone(),
                            names: terms.shared_names(),
                            values: terms.values().to_vec(),
                            total: terms.total(),
                        });
                    }
                    Err(e) => {
                        s.invalid += 1;
                        handle.offer(Event::RewardInvalid {
                            tick,
                            time_ns,
                            source: s.label.clone(),
                            why: e.to_string(),
                        });
                    }
                }
            }
            previous[..act_len].copy_from_slice(action);
            // The queue is bounded; a replay has no deadline, so wait instead of dropping.
            while handle_backlog(&handle) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        handle.offer(Event::Text {
            tick,
            time_ns: tick * period_ns,
            level: if episode.success { "INFO" } else { "WARN" },
            text: format!(
                "episode {index} (seed {}) ended after {} steps: {}, recorded return {recorded_return:.3}",
                episode.seed,
                episode.steps(),
                if episode.success { "success" } else { "failure" }
            ),
        });
    }
    drop(handle);
    let rerun = rerun.finish();
    let successes: Vec<bool> = episodes.iter().map(|e| e.success).collect();
    let programs = sources
        .into_iter()
        .map(|s| {
            let mean = |want: Option<bool>| mean_where(&s.returns, &successes, want);
            ProgramReplay {
                name: s.label.to_string(),
                file: s.file,
                evaluations: s.evaluations,
                invalid: s.invalid,
                mean_return: mean(None).unwrap_or(0.0),
                success_gap: mean(Some(true)).zip(mean(Some(false))).map(|(a, b)| a - b),
            }
        })
        .collect();
    Ok(ReplayOutcome {
        dataset: args.data.display().to_string(),
        episodes: episodes.len(),
        steps: tick,
        programs,
        rerun,
    })
}

/// True while the rerun queue is more than half full.
fn handle_backlog(handle: &rlrt_runtime::hub::EventSender) -> bool {
    handle.backlog() > crate::timeline::DEFAULT_QUEUE_LEN / 2
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

/// `rlrt replay`: replays and prints what went to rerun.
pub fn execute(args: ReplayArgs, output: super::Output) -> anyhow::Result<super::Exit> {
    output.print(&replay(&args)?)?;
    Ok(super::Exit::Success)
}
