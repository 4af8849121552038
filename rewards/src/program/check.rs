//! The checks every program passes before it is evaluated for real: it compiles, it uses
//! only names the environment and the sandbox know, and a dry run on sampled states keeps
//! every term finite, within a bound and the same from call to call, within the limits.
//!
//! Problems name the program file, line and column, and say what was expected, the way a
//! compiler would; a model that is shown them (`generate`'s retry) can act on them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rhai::{ASTNode, Expr, ParseErrorType, Stmt};
use rlrt_runtime::config::render_problems;

use super::direct::DirectProgram;
use super::env::{Environment, DEFAULT_SENSOR_RANGE};
use super::sandbox::{line_col, strip_position, EvalError, Limits, Sandbox};
use super::{EvalCounters, RewardProgram, Terms};

/// How the dry run samples and what it accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOptions {
    /// States evaluated (the first four are fixed corner cases, see
    /// [`Environment::sample_states`]).
    pub samples: usize,
    pub seed: u64,
    /// Largest |term| accepted. Terms far beyond the others drown them out and make
    /// learning unstable; scale such a term down or clamp it.
    pub max_abs_term: f64,
    /// Sensor values are sampled within +/- this (in the sensor's unit).
    pub sensor_range: f64,
    /// Runs of one sample that may end by the time limit before the program is rejected
    /// (another process can pre-empt a call; an expensive program is slow every time).
    pub time_limit_retries: u32,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            samples: 256,
            seed: 0,
            max_abs_term: 1e3,
            sensor_range: DEFAULT_SENSOR_RANGE,
            time_limit_retries: 2,
        }
    }
}

/// One problem with a program; line 0 when it concerns the program as a whole.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Problem {
    fn at((line, column): (usize, usize), message: String) -> Self {
        Self {
            line,
            column,
            message,
        }
    }
}

/// Why a program was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    // Not a `source` field: the message already carries the I/O error, and anyhow would
    // print it twice.
    #[error("{}: cannot read the program: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{}", render(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render(file: &Path, problems: &[Problem]) -> String {
    render_problems(
        file,
        problems.iter().map(|p| (p.line, p.column, &p.message)),
    )
}

/// Range of one term over the dry run.
#[derive(Clone, Debug, PartialEq)]
pub struct TermRange {
    pub name: String,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

/// What the dry run saw.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    pub samples: usize,
    pub terms: Vec<TermRange>,
    /// Range of the total.
    pub total: TermRange,
    /// Most operations one call used, against the limit.
    pub max_operations: u64,
    pub operation_limit: u64,
    /// Slowest call, in microseconds (for information; the limit is the time budget).
    pub slowest_call_us: f64,
    /// Whether calls take the direct path (a straight-line program that returned Rhai's
    /// terms on every sample) rather than Rhai's interpreter.
    pub direct_path: bool,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "ok: {} sampled states, at most {} of {} operations per call, slowest call {:.1} us{}",
            self.samples,
            self.max_operations,
            self.operation_limit,
            self.slowest_call_us,
            if self.direct_path {
                " (in Rhai; runs on the direct path)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "  {:<24} {:>12} {:>12} {:>12}",
            "term", "min", "mean", "max"
        )?;
        for t in self.terms.iter().chain(std::iter::once(&self.total)) {
            writeln!(
                f,
                "  {:<24} {:>12.4} {:>12.4} {:>12.4}",
                t.name, t.min, t.mean, t.max
            )?;
        }
        Ok(())
    }
}

/// Reads a program file and checks it.
pub fn check_file(
    env: &Environment,
    path: &Path,
    limits: &Limits,
    options: &CheckOptions,
) -> Result<(RewardProgram, CheckReport), ProgramError> {
    let source = std::fs::read_to_string(path).map_err(|error| ProgramError::Read {
        file: path.to_owned(),
        error,
    })?;
    check(env, &source, path, limits, options)
}

/// Checks program text; `file` names it in problems. On success the program is ready to
/// evaluate and the report holds each term's range over the dry run.
pub fn check(
    env: &Environment,
    source: &str,
    file: &Path,
    limits: &Limits,
    options: &CheckOptions,
) -> Result<(RewardProgram, CheckReport), ProgramError> {
    let invalid = |problems: Vec<Problem>| ProgramError::Invalid {
        file: file.to_owned(),
        problems,
    };
    let mut program = compile(env, source, file, limits).map_err(invalid)?;
    let report = dry_run(&mut program, options).map_err(|p| invalid(vec![p]))?;
    Ok((program, report))
}

/// Compiles and checks names; the program is not run.
fn compile(
    env: &Environment,
    source: &str,
    file: &Path,
    limits: &Limits,
) -> Result<RewardProgram, Vec<Problem>> {
    if source.len() > limits.max_source_bytes {
        return Err(vec![Problem::at(
            (0, 0),
            format!(
                "the program is {} bytes; expected at most {} (a reward is a few lines)",
                source.len(),
                limits.max_source_bytes
            ),
        )]);
    }
    let sandbox = Sandbox::new(limits);
    let ast = sandbox
        .engine
        .compile_with_scope(&env.compile_scope(), source)
        .map_err(|e| {
            let message = match e.err_type() {
                ParseErrorType::VariableUndefined(name) => format!(
                    "unknown variable `{name}`; the environment provides {}, and variables \
                     must be declared with `let` before use",
                    env.fields()
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => {
                    let message = strip_position(&other.to_string());
                    if message.contains("'eval' is disabled") {
                        "`eval` is not available in reward programs".to_owned()
                    } else {
                        message
                    }
                }
            };
            vec![Problem::at(line_col(e.position()), message)]
        })?;
    let mut problems = unknown_functions(&sandbox, &ast);
    let (read, written) = variables(&ast);
    for (name, pos) in written {
        if env.has_field(&name) {
            problems.push(Problem::at(
                line_col(pos),
                format!(
                    "`{name}` is an input of the program and read-only; copy it into a \
                     variable of your own with `let`"
                ),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let bound = env.field_indices(read.iter().map(String::as_str));
    let direct = DirectProgram::translate(env, &ast, limits);
    Ok(RewardProgram {
        env: env.clone(),
        sandbox,
        ast,
        scope: rhai::Scope::new(),
        caches: rhai::Caches::new(),
        direct,
        direct_operations: 0,
        bound,
        term_names: Arc::from(Vec::new()),
        source: source.to_owned(),
        file: file.to_owned(),
        counters: EvalCounters::default(),
    })
}

/// Every call of a function that is neither defined by the program nor callable in the
/// sandbox. Rhai only finds these when the call runs, which may be on a branch the dry run
/// never takes.
fn unknown_functions(sandbox: &Sandbox, ast: &rhai::AST) -> Vec<Problem> {
    let defined: Vec<String> = ast.iter_functions().map(|f| f.name.to_owned()).collect();
    let mut problems = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, pos)))
                if call.op_token.is_none() =>
            {
                Some((call.name.as_str(), *pos, false))
            }
            Some(ASTNode::Expr(Expr::MethodCall(call, pos))) => {
                Some((call.name.as_str(), *pos, true))
            }
            _ => None,
        };
        if let Some((name, pos, method)) = call {
            if !sandbox.known_functions.contains(name) && !defined.iter().any(|d| d == name) {
                let what = if method { "method" } else { "function" };
                problems.push(Problem::at(
                    line_col(pos),
                    format!(
                        "unknown {what} `{name}`; use the helpers listed in the environment \
                         description, the standard math functions, or define it with `fn`"
                    ),
                ));
            }
        }
        true
    });
    problems
}

/// Names of the variables the program reads, and the assignments it makes (by the root
/// variable of the target: `v`, `v[0]` and `v.x` all assign to `v`).
fn variables(ast: &rhai::AST) -> (Vec<String>, Vec<(String, rhai::Position)>) {
    fn root(expr: &Expr) -> Option<&Expr> {
        match expr {
            Expr::Variable(..) => Some(expr),
            Expr::Index(x, ..) | Expr::Dot(x, ..) => root(&x.lhs),
            _ => None,
        }
    }
    let mut read = Vec::new();
    let mut written = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::Variable(x, ..)))
                if !read.iter().any(|n: &String| n == x.1.as_str()) =>
            {
                read.push(x.1.to_string());
            }
            Some(ASTNode::Stmt(Stmt::Assignment(x))) => {
                if let Some(Expr::Variable(v, _, pos)) = root(&x.1.lhs) {
                    written.push((v.1.to_string(), *pos));
                }
            }
            _ => {}
        }
        true
    });
    (read, written)
}

fn sample_name(index: usize) -> String {
    match index {
        0 => "the all-zero state".to_owned(),
        1 => "the state where same-sized sensors coincide (e.g. end effector on target)".to_owned(),
        2 => "the state with joints at their lower limits".to_owned(),
        3 => "the state with joints at their upper limits".to_owned(),
        i => format!("random state #{i}"),
    }
}

fn dry_run(program: &mut RewardProgram, options: &CheckOptions) -> Result<CheckReport, Problem> {
    let states = program
        .env
        .sample_states(options.samples, options.seed, options.sensor_range);
    let budget = program.sandbox.limits.time_budget;
    let mut ranges: Vec<TermRange> = Vec::new();
    let mut total = TermRange {
        name: "total".to_owned(),
        min: f64::INFINITY,
        mean: 0.0,
        max: f64::NEG_INFINITY,
    };
    let mut max_operations = 0;
    let mut slowest = 0.0f64;
    for (i, state) in states.iter().enumerate() {
        let mut tries = 0;
        let (terms, elapsed) = loop {
            let start = Instant::now();
            let result = program.run_rhai(state);
            let elapsed = start.elapsed();
            let over_time = matches!(result, Err(EvalError::TimeLimit { .. }))
                || (result.is_ok() && elapsed > budget);
            if over_time && tries < options.time_limit_retries {
                tries += 1;
                continue;
            }
            match result {
                Ok(_) if elapsed > budget => {
                    return Err(Problem::at(
                        (0, 0),
                        format!(
                            "on {}: a call took {} us; expected at most {} us",
                            sample_name(i),
                            elapsed.as_micros(),
                            budget.as_micros()
                        ),
                    ))
                }
                Ok(terms) => break (terms, elapsed),
                Err(e) => {
                    return Err(Problem::at(
                        e.location().unwrap_or((0, 0)),
                        format!("on {}: {}", sample_name(i), e.message()),
                    ))
                }
            }
        };
        // The direct path is kept only if it agrees with Rhai on every sample.
        if let Some(direct) = program.run_direct(state) {
            let same_names = program
                .direct
                .as_ref()
                .is_some_and(|d| d.names == terms.names());
            if !same_names || !same_terms(&terms, &direct) {
                program.direct = None;
            }
        }
        max_operations = max_operations.max(program.sandbox.operations());
        slowest = slowest.max(elapsed.as_secs_f64() * 1e6);
        if ranges.is_empty() {
            ranges = terms
                .names()
                .iter()
                .map(|n| TermRange {
                    name: n.clone(),
                    min: f64::INFINITY,
                    mean: 0.0,
                    max: f64::NEG_INFINITY,
                })
                .collect();
        }
        for (range, (name, value)) in ranges.iter_mut().zip(terms.iter()) {
            if value.abs() > options.max_abs_term {
                return Err(Problem::at(
                    (0, 0),
                    format!(
                        "on {}: term `{name}` is {value}; expected |term| <= {} (scale it \
                         down or clamp it)",
                        sample_name(i),
                        options.max_abs_term
                    ),
                ));
            }
            range.min = range.min.min(value);
            range.max = range.max.max(value);
            range.mean += value;
        }
        total.min = total.min.min(terms.total());
        total.max = total.max.max(terms.total());
        total.mean += terms.total();
    }
    program.direct_operations = max_operations;
    let n = states.len() as f64;
    for range in &mut ranges {
        range.mean /= n;
    }
    total.mean /= n;
    Ok(CheckReport {
        samples: states.len(),
        terms: ranges,
        total,
        max_operations,
        operation_limit: program.sandbox.limits.max_operations,
        slowest_call_us: slowest,
        direct_path: program.direct.is_some(),
    })
}

/// Bit-for-bit the same values and total.
fn same_terms(rhai: &Terms, direct: &Result<Terms, EvalError>) -> bool {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    matches!(direct, Ok(d) if bits(d.values()) == bits(rhai.values())
        && d.total().to_bits() == rhai.total().to_bits())
}
