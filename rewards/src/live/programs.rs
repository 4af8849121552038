//! The hw-config's reward programs (`[[rewards]] kind = "program"`) evaluated on every tick
//! the loop ran with an observation, on the telemetry thread: never on the tick itself.
//! Each program is checked in full before the run starts (a broken one stops the run with
//! its problems), watched for edits (a new version is checked and swapped in, a broken edit
//! leaves the old one in service), and its per-term values are summarised. A call that fails
//! at run time (a limit, a NaN) marks that tick's reward invalid and is counted by kind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::program::{CheckOptions, Environment, Limits, ProgramState, ProgramWatcher, Reload};
use rlrt_runtime::config::{RewardKind, MAX_ACTION};
use rlrt_runtime::telemetry::TickRecord;
use rlrt_runtime::RobotConfig;

use rlrt_runtime::hub::{Event, EventSender, TickConsumer};

use super::LoadError;

/// How often program files are looked at for edits.
const RELOAD_POLL: Duration = Duration::from_millis(250);

/// Running minimum, mean and maximum of one series.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SeriesSummary {
    pub name: String,
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    #[serde(skip)]
    sum: f64,
}

impl SeriesSummary {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..Self::default()
        }
    }

    pub(crate) fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.mean = self.sum / self.count as f64;
    }
}

/// What one reward program did during a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProgramSummary {
    pub name: String,
    pub file: String,
    pub weight: f64,
    pub evaluations: u64,
    /// Ticks whose reward is invalid (the program hit a limit or produced a bad value).
    pub invalid: u64,
    pub invalid_by_kind: Vec<(String, u64)>,
    /// Edits checked and swapped in, and edits rejected (the old version stayed).
    pub reloads: u64,
    pub rejected_reloads: u64,
    pub total: SeriesSummary,
    pub terms: Vec<SeriesSummary>,
}

struct Source {
    watcher: ProgramWatcher,
    summary: ProgramSummary,
    /// The reward's name, as rerun's entity path segment.
    label: Arc<str>,
}

/// The telemetry consumer; [`ProgramRewards::summaries`] is readable during and after a run.
pub struct ProgramRewards {
    sources: Vec<Source>,
    shared: Arc<Mutex<Vec<ProgramSummary>>>,
    previous_action: [f64; MAX_ACTION],
    action_len: usize,
    last_poll: Instant,
    rerun: Option<EventSender>,
}

impl ProgramRewards {
    /// Loads and checks every reward program of `config`; `None` when it has none.
    pub fn load(config: &RobotConfig) -> Result<Option<Self>, LoadError> {
        let mut sources = Vec::new();
        for reward in config
            .rewards
            .iter()
            .filter(|r| r.kind == RewardKind::Program)
        {
            let path = reward
                .program_path
                .as_ref()
                .ok_or_else(|| LoadError::NoProgramPath {
                    name: reward.name.clone(),
                })?;
            let env = Environment::from_config(config)?;
            let (watcher, report) =
                ProgramWatcher::new(env, path, Limits::default(), CheckOptions::default())?;
            tracing::info!(
                reward = reward.name,
                file = %path.display(),
                terms = ?report.terms.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                "reward program checked"
            );
            sources.push(Source {
                label: Arc::from(reward.name.as_str()),
                watcher,
                summary: ProgramSummary {
                    name: reward.name.clone(),
                    file: path.display().to_string(),
                    weight: reward.weight,
                    evaluations: 0,
                    invalid: 0,
                    invalid_by_kind: Vec::new(),
                    reloads: 0,
                    rejected_reloads: 0,
                    total: SeriesSummary::new("total"),
                    terms: Vec::new(),
                },
            });
        }
        if sources.is_empty() {
            return Ok(None);
        }
        let shared = Arc::new(Mutex::new(
            sources.iter().map(|s| s.summary.clone()).collect(),
        ));
        Ok(Some(Self {
            sources,
            shared,
            previous_action: [0.0; MAX_ACTION],
            action_len: config.action.len(),
            last_poll: Instant::now(),
            rerun: None,
        }))
    }

    /// Also sends every evaluation (each term and the total) to rerun.
    pub fn with_rerun(mut self, handle: Option<EventSender>) -> Self {
        self.rerun = handle;
        self
    }

    /// The summaries, updated while the run goes and final after it.
    pub fn summaries(&self) -> Arc<Mutex<Vec<ProgramSummary>>> {
        self.shared.clone()
    }

    fn publish(&mut self) {
        for source in &mut self.sources {
            source.summary.reloads = source.watcher.swaps();
            source.summary.rejected_reloads = source.watcher.rejections();
        }
        if let Ok(mut shared) = self.shared.lock() {
            *shared = self.sources.iter().map(|s| s.summary.clone()).collect();
        }
    }
}

impl TickConsumer for ProgramRewards {
    fn on_tick(&mut self, record: &TickRecord) {
        if record.observation.seq != 0 {
            let state =
                ProgramState::new(record.observation, &self.previous_action[..self.action_len]);
            for source in &mut self.sources {
                // Counted here rather than by the program, whose counters restart when an
                // edit is swapped in. An error leaves this tick without a reward from this
                // source.
                source.summary.evaluations += 1;
                let terms = match source.watcher.program().evaluate(&state) {
                    Ok(terms) => terms,
                    Err(e) => {
                        if let Some(rerun) = &self.rerun {
                            rerun.offer(Event::RewardInvalid {
                                tick: record.tick,
                                time_ns: record.start_ns,
                                source: source.label.clone(),
                                why: e.to_string(),
                            });
                        }
                        let summary = &mut source.summary;
                        summary.invalid += 1;
                        match summary
                            .invalid_by_kind
                            .iter_mut()
                            .find(|(k, _)| k == e.kind())
                        {
                            Some((_, n)) => *n += 1,
                            None => summary.invalid_by_kind.push((e.kind().to_owned(), 1)),
                        }
                        continue;
                    }
                };
                if let Some(rerun) = &self.rerun {
                    rerun.offer(Event::Reward {
                        tick: record.tick,
                        time_ns: record.start_ns,
                        source: source.label.clone(),
                        names: terms.shared_names(),
                        values: terms.values().to_vec(),
                        total: terms.total(),
                    });
                }
                {
                    let summary = &mut source.summary;
                    summary.total.add(terms.total());
                    for (name, value) in terms.iter() {
                        match summary.terms.iter_mut().find(|t| t.name == name) {
                            Some(t) => t.add(value),
                            None => {
                                let mut t = SeriesSummary::new(name);
                                t.add(value);
                                summary.terms.push(t);
                            }
                        }
                    }
                }
            }
        }
        let len = self.action_len;
        self.previous_action[..len].copy_from_slice(record.command());
    }

    fn on_idle(&mut self) {
        if self.last_poll.elapsed() < RELOAD_POLL {
            return;
        }
        self.last_poll = Instant::now();
        for source in &mut self.sources {
            match source.watcher.poll() {
                Reload::Unchanged => {}
                Reload::Swapped(report) => tracing::info!(
                    reward = source.summary.name,
                    terms = ?report.terms.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                    "reward program edited: checked and swapped in"
                ),
                Reload::Rejected(e) => tracing::warn!(
                    reward = source.summary.name,
                    "reward program edit rejected, the previous version stays in service: {e}"
                ),
            }
        }
        self.publish();
    }

    fn finish(&mut self) {
        self.publish();
    }
}

/// Prints summaries as a table.
pub fn write_summaries(
    f: &mut impl std::fmt::Write,
    summaries: &[ProgramSummary],
) -> std::fmt::Result {
    for s in summaries {
        writeln!(
            f,
            "reward {} ({}): {} evaluations, {} invalid{}, {} reloads, {} rejected edits",
            s.name,
            s.file,
            s.evaluations,
            s.invalid,
            if s.invalid_by_kind.is_empty() {
                String::new()
            } else {
                format!(" {:?}", s.invalid_by_kind)
            },
            s.reloads,
            s.rejected_reloads
        )?;
        writeln!(
            f,
            "  {:<24} {:>12} {:>12} {:>12}",
            "term", "min", "mean", "max"
        )?;
        for t in s.terms.iter().chain(std::iter::once(&s.total)) {
            if t.count > 0 {
                writeln!(
                    f,
                    "  {:<24} {:>12.4} {:>12.4} {:>12.4}",
                    t.name, t.min, t.mean, t.max
                )?;
            }
        }
    }
    Ok(())
}
