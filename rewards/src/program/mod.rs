//! Sandboxed reward programs: short Rhai scripts, usually written by a language model from a
//! task sentence, that turn one robot state into named reward terms.
//!
//! A program is a script body. The environment's names (`joint_positions`, each sensor such
//! as `ee_position`, `previous_action`, `dt`, ...) are bound as read-only variables, helper
//! functions (`distance`, `tolerance`, ...) are registered, and the script's last
//! expression is a map of named terms:
//!
//! ```rhai
//! let d = distance(ee_position, target_position);
//! #{ reach: -d, success: indicator(d < 0.03) }
//! ```
//!
//! The reward is the sum of the terms; each term is also reported on its own, which is what
//! per-term statistics, rerun plots and refinement prompts need. A script body rather than a
//! `fn reward(env)` because it is the shortest form that a model gets right: no signature to
//! match, no `env.` prefix to forget, and strict-variable compilation names every misspelt
//! input with its line and column.
//!
//! Nothing runs unchecked: [`check`] compiles a program, rejects names the environment and
//! the sandbox do not know, dry-runs it on sampled states (every term finite, bounded and
//! the same set of terms, every call within its limits) and only then hands out a
//! [`RewardProgram`]. [`ProgramWatcher`] reloads a file when it changes, through the same
//! check. A straight-line program (the usual kind: `let`s of arithmetic and helper calls,
//! then the map) is also translated for a direct path that skips Rhai's tree walk
//! (`direct.rs`); the checker keeps it only if it returns Rhai's terms, bit for bit, on
//! every sampled state. [`prompt`] and [`generate`] write programs with a language model;
//! [`feedback`] summarises recorded episodes for the next refinement.

mod check;
mod direct;
pub mod env;
pub mod feedback;
pub mod generate;
mod helpers;
pub mod prompt;
mod sandbox;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Caches, Scope, AST};

pub use check::{check, check_file, CheckOptions, CheckReport, Problem, ProgramError, TermRange};
pub use env::{Environment, EnvironmentError, ProgramState};
pub use helpers::HELPERS;
pub use sandbox::{EvalError, Limits};
pub use watch::{ProgramWatcher, Reload};

use direct::DirectProgram;
use sandbox::Sandbox;

/// The named terms of one evaluation and their sum.
#[derive(Clone, Debug, PartialEq)]
pub struct Terms {
    names: Arc<[String]>,
    values: Vec<f64>,
    total: f64,
}

impl Terms {
    /// The reward: the sum of the terms.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// Term names, sorted (the order is the same on every call of a program).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The names, shared (the same allocation on every call of one program version).
    pub fn shared_names(&self) -> Arc<[String]> {
        self.names.clone()
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.values[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().copied())
    }
}

/// How a program's calls have gone since it was loaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalCounters {
    pub evaluations: u64,
    /// Calls whose reward is invalid (any [`EvalError`]).
    pub invalid: u64,
    /// Invalid calls by [`EvalError::kind`].
    pub by_kind: std::collections::BTreeMap<&'static str, u64>,
}

/// A checked program, ready to evaluate states. Built only by [`check`] (or a watcher), so
/// a program that has not passed the dry run cannot be evaluated.
pub struct RewardProgram {
    env: Environment,
    sandbox: Sandbox,
    ast: AST,
    scope: Scope<'static>,
    /// Rhai's function-resolution cache, kept between calls (see [`Sandbox::eval`]).
    caches: Caches,
    /// The program translated for the direct path, when it is in the subset that path
    /// runs and the checker found it to agree with Rhai on every sampled state.
    direct: Option<DirectProgram>,
    /// Most operations a Rhai call took in the dry run (what a direct call reports).
    direct_operations: u64,
    /// Indices of the environment fields the program reads; only these are bound.
    bound: Vec<usize>,
    term_names: Arc<[String]>,
    source: String,
    file: PathBuf,
    counters: EvalCounters,
}

impl std::fmt::Debug for RewardProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardProgram")
            .field("file", &self.file)
            .field("terms", &self.term_names)
            .finish_non_exhaustive()
    }
}

impl RewardProgram {
    /// Evaluates the program on one state. An error marks this call's reward invalid and is
    /// counted; it never panics, and the program stays usable.
    pub fn evaluate(&mut self, state: &ProgramState) -> Result<Terms, EvalError> {
        self.counters.evaluations += 1;
        let result = self.run(state);
        if let Err(e) = &result {
            self.counters.invalid += 1;
            *self.counters.by_kind.entry(e.kind()).or_default() += 1;
        }
        result
    }

    /// One call, uncounted.
    fn run(&mut self, state: &ProgramState) -> Result<Terms, EvalError> {
        match self.run_direct(state) {
            Some(result) => result,
            None => self.run_rhai(state),
        }
    }

    /// One call on the direct path; `None` when the program does not have one.
    fn run_direct(&mut self, state: &ProgramState) -> Option<Result<Terms, EvalError>> {
        let direct = self.direct.as_mut()?;
        let mut values = Vec::with_capacity(direct.names.len());
        if let Err(e) = direct.evaluate(&self.env, state, &self.sandbox.limits, &mut values) {
            return Some(Err(e));
        }
        if let Some((name, &value)) = direct
            .names
            .iter()
            .zip(&values)
            .find(|(_, v)| !v.is_finite())
        {
            return Some(Err(EvalError::NonFinite {
                term: name.clone(),
                value,
            }));
        }
        let total = values.iter().sum();
        Some(Ok(Terms {
            names: self.term_names.clone(),
            values,
            total,
        }))
    }

    /// One call in the Rhai engine (the checker's dry run uses it for every sample).
    fn run_rhai(&mut self, state: &ProgramState) -> Result<Terms, EvalError> {
        self.env.bind(state, &self.bound, &mut self.scope);
        let value = self
            .sandbox
            .eval(&mut self.caches, &mut self.scope, &self.ast)
            .map_err(|e| EvalError::from_rhai(&e, &self.sandbox.limits))?;
        let type_name = value.type_name();
        let Some(map) = value.try_cast::<rhai::Map>() else {
            return Err(EvalError::NotAMap {
                type_name: type_name.to_owned(),
            });
        };
        if map.is_empty() {
            return Err(EvalError::NoTerms);
        }
        let same_names = map.len() == self.term_names.len()
            && map
                .keys()
                .zip(self.term_names.iter())
                .all(|(k, n)| k.as_str() == n);
        if !same_names {
            if !self.term_names.is_empty() {
                return Err(EvalError::TermsChanged {
                    expected: self.term_names.join(", "),
                    got: map
                        .keys()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            self.term_names = map.keys().map(|k| k.to_string()).collect();
        }
        let mut values = Vec::with_capacity(map.len());
        for (name, value) in &map {
            let v = if let Ok(x) = value.as_float() {
                x
            } else if let Ok(i) = value.as_int() {
                i as f64
            } else if let Ok(b) = value.as_bool() {
                f64::from(u8::from(b))
            } else {
                return Err(EvalError::NotANumber {
                    term: name.to_string(),
                    type_name: value.type_name().to_owned(),
                });
            };
            if !v.is_finite() {
                return Err(EvalError::NonFinite {
                    term: name.to_string(),
                    value: v,
                });
            }
            values.push(v);
        }
        let total = values.iter().sum();
        Ok(Terms {
            names: self.term_names.clone(),
            values,
            total,
        })
    }

    /// Names of the environment fields the program reads (such as `ee_position`).
    pub fn fields_read(&self) -> Vec<&str> {
        let fields = self.env.fields();
        self.bound
            .iter()
            .map(|&i| fields[i].name.as_str())
            .collect()
    }

    /// Names of the terms every call returns (sorted).
    pub fn term_names(&self) -> &[String] {
        &self.term_names
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The file the program came from (or the name it was checked under).
    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn environment(&self) -> &Environment {
        &self.env
    }

    pub fn limits(&self) -> &Limits {
        &self.sandbox.limits
    }

    pub fn counters(&self) -> &EvalCounters {
        &self.counters
    }

    /// `print`/`debug` calls the program made (their output goes nowhere).
    pub fn prints(&self) -> u64 {
        self.sandbox.prints()
    }

    /// Operations the most recent call used (for a program on the direct path: the most
    /// that a Rhai call of it used in the checker's dry run).
    pub fn last_operations(&self) -> u64 {
        if self.direct.is_some() {
            self.direct_operations
        } else {
            self.sandbox.operations()
        }
    }

    /// True when calls take the direct path instead of Rhai's interpreter (see
    /// `program/direct.rs`): same terms, a fraction of the time.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Drops the direct path: every later call runs in Rhai. For comparisons of the two
    /// (the bench reports both; tests hold them to the same answers).
    pub fn disable_direct_path(&mut self) {
        self.direct = None;
    }
}
