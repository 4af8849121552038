//! The sandboxed Rhai engine every reward program runs in, and how its errors are named.
//!
//! Rhai has no file, network, process or clock access of its own; on top of that this
//! engine has no module loading (`import` is not even a keyword: the crate is built with
//! `no_module`), no `eval`, and `print`/`debug` only increment a counter. Work per call is
//! bounded three ways: an operation count (deterministic, the main limit), a wall-clock
//! deadline checked from the progress callback (catches a single expensive operation), and
//! size limits on strings, arrays, maps, call depth and expression depth (memory and
//! native stack).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Caches, Dynamic, Engine, EvalAltResult, OptimizationLevel, Position, Scope, AST};

use super::helpers;

/// Resource limits of one program call.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Rhai operations per call (statements, expressions, function calls). A reach reward
    /// uses about a hundred; a loop over a few joints a few hundred.
    pub max_operations: u64,
    /// Wall-clock budget per call.
    pub time_budget: Duration,
    /// Deepest nesting of script function calls (bounds recursion and native stack).
    pub max_call_levels: usize,
    /// Deepest expression nesting, at top level and inside functions.
    pub max_expr_depth: usize,
    pub max_function_expr_depth: usize,
    /// Longest string, in bytes.
    pub max_string_len: usize,
    /// Most elements of one array.
    pub max_array_len: usize,
    /// Most entries of one map (so also the most terms).
    pub max_map_len: usize,
    /// Largest program text, in bytes.
    pub max_source_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_operations: 20_000,
            time_budget: Duration::from_millis(1),
            max_call_levels: 16,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_len: 1024,
            max_array_len: 1024,
            max_map_len: 64,
            max_source_bytes: 64 * 1024,
        }
    }
}

/// The operation counter is read from the clock only every this many operations: reading
/// it on each one would cost more than most operations.
const CLOCK_EVERY_OPS: u64 = 32;

/// Token the progress callback stops a run with, so the error maps to `TimeLimit`.
const DEADLINE_TOKEN: &str = "rlrt:deadline";

/// An engine with the limits applied and the helpers registered, plus the shared counters
/// its callbacks write.
pub(crate) struct Sandbox {
    pub engine: Engine,
    pub limits: Limits,
    base: Instant,
    deadline_ns: Arc<AtomicU64>,
    /// Operations the last call used, read from its runtime state when it returns.
    operations: u64,
    prints: Arc<AtomicU64>,
    /// Every function name callable in the sandbox (helpers and Rhai's standard library).
    pub known_functions: HashSet<String>,
}

impl Sandbox {
    pub fn new(limits: &Limits) -> Self {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_levels)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
            .set_max_string_size(limits.max_string_len)
            .set_max_array_size(limits.max_array_len)
            .set_max_map_size(limits.max_map_len)
            .set_max_variables(256)
            .set_max_functions(64)
            .set_strict_variables(true)
            // Simple folds literals only; Full could inline calls across the program.
            .set_optimization_level(OptimizationLevel::Simple)
            .disable_symbol("eval");
        let prints = Arc::new(AtomicU64::new(0));
        let (p, d) = (prints.clone(), prints.clone());
        engine.on_print(move |_| {
            p.fetch_add(1, Ordering::Relaxed);
        });
        engine.on_debug(move |_, _, _| {
            d.fetch_add(1, Ordering::Relaxed);
        });
        let base = Instant::now();
        let deadline_ns = Arc::new(AtomicU64::new(u64::MAX));
        let deadline = deadline_ns.clone();
        engine.on_progress(move |count| {
            if count % CLOCK_EVERY_OPS == 0
                && base.elapsed().as_nanos() as u64 > deadline.load(Ordering::Relaxed)
            {
                Some(Dynamic::from(DEADLINE_TOKEN))
            } else {
                None
            }
        });
        helpers::register(&mut engine);
        let mut known_functions: HashSet<String> = engine
            .collect_fn_metadata(None, |info| Some(info.metadata.name.to_string()), true)
            .into_iter()
            .collect();
        // Functions the language itself provides (not registered anywhere).
        for keyword in [
            "print",
            "debug",
            "type_of",
            "Fn",
            "call",
            "curry",
            "is_def_var",
            "is_def_fn",
            "is_shared",
        ] {
            known_functions.insert(keyword.to_owned());
        }
        Self {
            engine,
            limits: limits.clone(),
            base,
            deadline_ns,
            operations: 0,
            prints,
            known_functions,
        }
    }

    /// Runs `ast` in `scope` under the limits, with a function-resolution cache that the
    /// caller keeps between calls of the same program.
    ///
    /// The same as `Engine::eval_ast_with_scope` except for the cache: that builds a fresh
    /// runtime state and a fresh cache on every call, so every call site is resolved again
    /// on every call (the largest single cost of a short program). The runtime state is
    /// still fresh here, so the operation count, the call level and everything else a limit
    /// reads start at zero. Cache entries depend only on the engine, the program's own
    /// functions and the argument types, none of which change while a program is loaded.
    pub fn eval(
        &mut self,
        caches: &mut Caches,
        scope: &mut Scope<'static>,
        ast: &AST,
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let deadline = self.base.elapsed() + self.limits.time_budget;
        self.deadline_ns
            .store(deadline.as_nanos() as u64, Ordering::Relaxed);
        let mut global = self.engine.new_global_runtime_state();
        global.lib.push(ast.shared_lib().clone());
        // Deprecated only in favour of the `eval_ast_*` family, which cannot keep a cache.
        #[allow(deprecated)]
        let result = self
            .engine
            .eval_statements_raw(&mut global, caches, scope, ast.statements());
        self.operations = global.num_operations;
        result
    }

    /// Operations the last call used.
    pub fn operations(&self) -> u64 {
        self.operations
    }

    /// `print` and `debug` calls so far (their output is dropped).
    pub fn prints(&self) -> u64 {
        self.prints.load(Ordering::Relaxed)
    }
}

/// Line and column of a Rhai position (0 when it has none).
pub(crate) fn line_col(pos: Position) -> (usize, usize) {
    (pos.line().unwrap_or(0), pos.position().unwrap_or(0))
}

/// Why one call of a program failed. The reward of that call is invalid; the program stays
/// loaded and the next call runs normally.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("stopped: more than {limit} operations in one call (endless loop?){}", at(*.line, *.column))]
    OperationLimit {
        limit: u64,
        line: usize,
        column: usize,
    },
    #[error("stopped after the time budget of {budget_us} us per call{}", at(*.line, *.column))]
    TimeLimit {
        budget_us: u64,
        line: usize,
        column: usize,
    },
    #[error("stopped: calls nested deeper than {limit} (endless recursion?){}", at(*.line, *.column))]
    CallDepth {
        limit: usize,
        line: usize,
        column: usize,
    },
    #[error("stopped: {what} (strings, arrays and maps are size-limited){}", at(*.line, *.column))]
    SizeLimit {
        what: String,
        line: usize,
        column: usize,
    },
    #[error("term `{term}` is {value}, expected a finite number")]
    NonFinite { term: String, value: f64 },
    #[error("term `{term}` is a {type_name}, expected a number")]
    NotANumber { term: String, type_name: String },
    #[error(
        "the program returned a {type_name}; expected it to end with a map of named terms, \
         such as #{{ distance: -d, bonus: 1.0 }}"
    )]
    NotAMap { type_name: String },
    #[error("the program returned an empty map; expected at least one named term")]
    NoTerms,
    #[error(
        "the program returned terms [{got}], expected the same terms on every call: [{expected}]"
    )]
    TermsChanged { expected: String, got: String },
    #[error("{message}{}", at(*.line, *.column))]
    Script {
        message: String,
        line: usize,
        column: usize,
    },
}

/// The location suffix of an error message ("" when unknown).
fn at(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}

impl EvalError {
    /// Short name of the kind of failure, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OperationLimit { .. } => "operation_limit",
            Self::TimeLimit { .. } => "time_limit",
            Self::CallDepth { .. } => "call_depth",
            Self::SizeLimit { .. } => "size_limit",
            Self::NonFinite { .. } => "non_finite",
            Self::NotANumber { .. } | Self::NotAMap { .. } | Self::NoTerms => "bad_result",
            Self::TermsChanged { .. } => "terms_changed",
            Self::Script { .. } => "script_error",
        }
    }

    /// The message without its location suffix (for callers that print the location first).
    pub fn message(&self) -> String {
        let text = self.to_string();
        match self.location() {
            Some((line, column)) => text
                .strip_suffix(&at(line, column))
                .unwrap_or(&text)
                .to_owned(),
            None => text,
        }
    }

    /// Where in the program the failure happened, if known.
    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            Self::OperationLimit { line, column, .. }
            | Self::TimeLimit { line, column, .. }
            | Self::CallDepth { line, column, .. }
            | Self::SizeLimit { line, column, .. }
            | Self::Script { line, column, .. }
                if *line > 0 =>
            {
                Some((*line, *column))
            }
            _ => None,
        }
    }

    pub(crate) fn from_rhai(error: &EvalAltResult, limits: &Limits) -> Self {
        // Errors inside script functions arrive wrapped; the cause is innermost, the
        // position worth showing is the outermost call site in the program's own text.
        let outer = error.position();
        let mut inner = error;
        while let EvalAltResult::ErrorInFunctionCall(_, _, cause, _) = inner {
            inner = cause;
        }
        let pos = if inner.position().is_none() {
            outer
        } else {
            inner.position()
        };
        let (line, column) = line_col(pos);
        match inner {
            EvalAltResult::ErrorTooManyOperations(_) => Self::OperationLimit {
                limit: limits.max_operations,
                line,
                column,
            },
            EvalAltResult::ErrorTerminated(token, _)
                if token.clone().into_immutable_string().ok().as_deref()
                    == Some(DEADLINE_TOKEN) =>
            {
                Self::TimeLimit {
                    budget_us: limits.time_budget.as_micros() as u64,
                    line,
                    column,
                }
            }
            EvalAltResult::ErrorStackOverflow(_) => Self::CallDepth {
                limit: limits.max_call_levels,
                line,
                column,
            },
            EvalAltResult::ErrorDataTooLarge(what, _) => Self::SizeLimit {
                what: format!("{what} too large"),
                line,
                column,
            },
            EvalAltResult::ErrorTooManyVariables(_) | EvalAltResult::ErrorTooManyModules(_) => {
                Self::SizeLimit {
                    what: inner.to_string(),
                    line,
                    column,
                }
            }
            other => Self::Script {
                message: strip_position(&other.to_string()),
                line,
                column,
            },
        }
    }
}

/// Rhai appends " (line L, position C)" to messages; the error shows the location itself.
pub(crate) fn strip_position(message: &str) -> String {
    match message.rfind(" (line ") {
        Some(at) if message.ends_with(')') => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}
