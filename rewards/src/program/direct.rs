//! The direct path: straight-line reward programs evaluated without walking Rhai's tree.
//!
//! Most reward programs are a few `let`s of float arithmetic and helper calls followed by
//! the map of terms; reach.rhai is one. Rhai spends about 35 ns on each operation of such a
//! program, nearly all of it dynamic typing, argument cloning and dispatch. Here the
//! program's compiled AST is translated, once, into a tree of typed nodes that read the
//! state's floats directly, and a call costs a few nanoseconds per node.
//!
//! Only a small subset is translated: `let` of a float, a bool, an environment vector or
//! an array literal of floats; float literals, integer literals where Rhai turns them into
//! floats; environment names and vector elements at a literal index; `+ - * / % **`, comparisons, `! && ||` on
//! floats and bools; the helpers that return a number, Rhai's float math functions, `min`
//! and `max`; and a final map literal of terms. A program with anything else (loops, `if`,
//! strings, other arrays, script functions, integer arithmetic, methods, `print`) runs on
//! Rhai alone, exactly as before.
//!
//! Same answers: every node computes what Rhai's operator or registered function computes
//! (Rhai compares floats relative to `f64::EPSILON`, which is reproduced; the helpers share
//! their code), and the checker runs both on every sampled state and keeps the direct path
//! only if every term agrees bit for bit and every error is the same.
//!
//! Same sandbox: the subset has no loops, no calls of script functions, no strings and only
//! array literals of fixed length, so a call does a fixed amount of work, bounded by the
//! program's size times the longest vector, that the checker's Rhai run has already held
//! to the operation limit (and timed against the budget); nothing is allocated but the
//! terms, and nothing outside the state is reachable.

use rhai::{ASTFlags, EvalAltResult, Expr, Position, Stmt, Token, AST};

use super::env::Environment;
use super::helpers;
use super::sandbox::{EvalError, Limits};
use super::ProgramState;

/// A vector: a range of [`DirectProgram::inputs`], which holds the environment fields the
/// program reads and then the arrays of floats it builds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Vector {
    offset: usize,
    len: usize,
}

#[derive(Clone, Copy, Debug)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

#[derive(Clone, Copy, Debug)]
enum Compare {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// Which `min`/`max` a call resolves to in the engine: Rhai's own float version, or the
/// helper for a float and an integer (they differ when an argument is NaN).
#[derive(Clone, Copy, Debug)]
enum MinMax {
    RhaiMin,
    RhaiMax,
    HelperMin,
    HelperMax,
}

/// A float-valued node.
#[derive(Debug)]
enum Num {
    Const(f64),
    /// One input value: `dt`, or a vector element at a literal index.
    Input(usize),
    Local(usize),
    Neg(Box<Num>),
    Arith(Arith, Box<Num>, Box<Num>),
    Math(fn(f64) -> f64, Box<Num>),
    MinMax(MinMax, Box<Num>, Box<Num>),
    Distance(Vector, Vector),
    DistanceXy(Vector, Vector),
    Norm(Vector),
    Dot(Vector, Vector),
    Tolerance(Box<[Num; 4]>, Position),
    Clamp(Box<[Num; 3]>, Position),
    Indicator(Box<Cond>),
}

/// A bool-valued node.
#[derive(Debug)]
enum Cond {
    Const(bool),
    /// A local holding 1.0 for true.
    Local(usize),
    Not(Box<Cond>),
    Compare(Compare, Box<Num>, Box<Num>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

/// What an expression translated to.
enum Value {
    Float(Num),
    /// An integer literal (kept apart: Rhai does integer arithmetic on two of them).
    Int(i64),
    Bool(Cond),
    Vector(Vector),
}

/// A translated program, with the buffers one call uses.
#[derive(Debug)]
pub(crate) struct DirectProgram {
    /// Environment fields read, each with where its values go in `inputs`.
    fields: Vec<(usize, usize)>,
    inputs: Vec<f64>,
    /// `let` statements in order: the local they set (unused for a vector) and its value.
    lets: Vec<(usize, Local)>,
    locals: Vec<f64>,
    /// Term names as Rhai's map orders them (sorted).
    pub names: Vec<String>,
    /// Terms in program order (the order Rhai evaluates them, so the first failing term is
    /// the same), each with its position in `names`.
    terms: Vec<(usize, Num)>,
}

#[derive(Debug)]
enum Local {
    Float(Num),
    Bool(Cond),
    /// An array literal of floats, written into `inputs` from this offset.
    Vector(usize, Vec<Num>),
}

/// Names in scope while translating: the program's locals, newest last.
enum Binding {
    Local(usize, bool),
    Int(i64),
    Vector(Vector),
}

struct Translator<'a> {
    env: &'a Environment,
    fields: Vec<(usize, usize)>,
    inputs_len: usize,
    scope: Vec<(String, Binding)>,
    locals: usize,
}

impl DirectProgram {
    /// Translates `ast`, or `None` when the program is outside the subset.
    pub fn translate(env: &Environment, ast: &AST, limits: &Limits) -> Option<Self> {
        if ast.iter_functions().next().is_some() {
            return None;
        }
        let mut t = Translator {
            env,
            fields: Vec::new(),
            inputs_len: 0,
            scope: Vec::new(),
            locals: 0,
        };
        let (last, body) = ast.statements().split_last()?;
        let mut lets = Vec::new();
        for stmt in body {
            match stmt {
                Stmt::Noop(..) => {}
                Stmt::Var(x, flags, _) if !flags.contains(ASTFlags::EXPORTED) => {
                    let (ident, expr, _) = &**x;
                    if let Expr::Array(items, _) = expr {
                        // Only floats: an integer element would keep Rhai's integer
                        // arithmetic wherever it is read.
                        let items = items
                            .iter()
                            .map(|e| match t.value(e)? {
                                Value::Float(n) => Some(n),
                                _ => None,
                            })
                            .collect::<Option<Vec<_>>>()?;
                        if items.is_empty() || items.len() > limits.max_array_len {
                            return None;
                        }
                        let v = Vector {
                            offset: t.inputs_len,
                            len: items.len(),
                        };
                        t.inputs_len += v.len;
                        lets.push((0, Local::Vector(v.offset, items)));
                        t.scope.push((ident.name.to_string(), Binding::Vector(v)));
                        continue;
                    }
                    let binding = match t.value(expr)? {
                        Value::Float(n) => {
                            lets.push((t.locals, Local::Float(n)));
                            Binding::Local(t.locals, false)
                        }
                        Value::Bool(c) => {
                            lets.push((t.locals, Local::Bool(c)));
                            Binding::Local(t.locals, true)
                        }
                        Value::Int(i) => Binding::Int(i),
                        Value::Vector(v) => Binding::Vector(v),
                    };
                    if matches!(binding, Binding::Local(..)) {
                        t.locals += 1;
                    }
                    t.scope.push((ident.name.to_string(), binding));
                }
                _ => return None,
            }
        }
        let Stmt::Expr(expr) = last else {
            return None;
        };
        let Expr::Map(map, _) = &**expr else {
            return None;
        };
        if map.0.is_empty() || map.0.len() > limits.max_map_len {
            return None;
        }
        let mut terms: Vec<(String, Num)> = Vec::with_capacity(map.0.len());
        for (key, expr) in &map.0 {
            let num = match t.value(expr)? {
                Value::Float(n) => n,
                Value::Int(i) => Num::Const(i as f64),
                Value::Bool(c) => Num::Indicator(Box::new(c)),
                Value::Vector(_) => return None,
            };
            terms.push((key.name.to_string(), num));
        }
        let mut names: Vec<String> = terms.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        let terms = terms
            .into_iter()
            .map(|(name, num)| (names.iter().position(|n| *n == name).unwrap_or(0), num))
            .collect();
        Some(Self {
            fields: t.fields,
            inputs: vec![0.0; t.inputs_len],
            lets,
            locals: vec![0.0; t.locals],
            names,
            terms,
        })
    }

    /// Evaluates one state into `values` (cleared first), in the order of `names`.
    pub fn evaluate(
        &mut self,
        env: &Environment,
        state: &ProgramState,
        limits: &Limits,
        values: &mut Vec<f64>,
    ) -> std::result::Result<(), EvalError> {
        for &(field, offset) in &self.fields {
            let v = env.field_values(state, field);
            self.inputs[offset..offset + v.len()].copy_from_slice(v);
        }
        let fail = |e: Box<EvalAltResult>| EvalError::from_rhai(&e, limits);
        for (slot, local) in &self.lets {
            let value = match local {
                Local::Float(n) => num(n, &self.inputs, &self.locals).map_err(fail)?,
                Local::Bool(c) => {
                    f64::from(u8::from(cond(c, &self.inputs, &self.locals).map_err(fail)?))
                }
                Local::Vector(offset, items) => {
                    for (i, item) in items.iter().enumerate() {
                        let x = num(item, &self.inputs, &self.locals).map_err(fail)?;
                        self.inputs[offset + i] = x;
                    }
                    continue;
                }
            };
            self.locals[*slot] = value;
        }
        values.clear();
        values.resize(self.names.len(), 0.0);
        for (at, term) in &self.terms {
            values[*at] = num(term, &self.inputs, &self.locals).map_err(fail)?;
        }
        Ok(())
    }
}

impl Translator<'_> {
    fn lookup(&mut self, name: &str) -> Option<Value> {
        if let Some((_, b)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Some(match *b {
                Binding::Local(i, false) => Value::Float(Num::Local(i)),
                Binding::Local(i, true) => Value::Bool(Cond::Local(i)),
                Binding::Int(i) => Value::Int(i),
                Binding::Vector(v) => Value::Vector(v),
            });
        }
        let field = self.env.fields().iter().position(|f| f.name == name)?;
        let offset = match self.fields.iter().find(|(f, _)| *f == field) {
            Some(&(_, offset)) => offset,
            None => {
                let offset = self.inputs_len;
                self.fields.push((field, offset));
                self.inputs_len += self.env.field_len(field);
                offset
            }
        };
        Some(if self.env.field_is_scalar(field) {
            Value::Float(Num::Input(offset))
        } else {
            Value::Vector(Vector {
                offset,
                len: self.env.field_len(field),
            })
        })
    }

    fn value(&mut self, expr: &Expr) -> Option<Value> {
        Some(match expr {
            Expr::FloatConstant(x, _) => Value::Float(Num::Const(**x)),
            Expr::IntegerConstant(i, _) => Value::Int(*i),
            Expr::BoolConstant(b, _) => Value::Bool(Cond::Const(*b)),
            Expr::Variable(x, ..) => self.lookup(x.1.as_str())?,
            Expr::Index(x, _, _) => {
                let (Value::Vector(v), Value::Int(i)) = (self.value(&x.lhs)?, self.value(&x.rhs)?)
                else {
                    return None;
                };
                let i = usize::try_from(i).ok().filter(|&i| i < v.len)?;
                Value::Float(Num::Input(v.offset + i))
            }
            Expr::And(x, _) | Expr::Or(x, _) => {
                let conds = x
                    .iter()
                    .map(|e| match self.value(e)? {
                        Value::Bool(c) => Some(c),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Value::Bool(if matches!(expr, Expr::And(..)) {
                    Cond::And(conds)
                } else {
                    Cond::Or(conds)
                })
            }
            Expr::FnCall(call, pos) if !call.capture_parent_scope => {
                let args = call
                    .args
                    .iter()
                    .map(|a| self.value(a))
                    .collect::<Option<Vec<_>>>()?;
                match &call.op_token {
                    Some(op) => operator(op, args)?,
                    None => function(call.name.as_str(), args, *pos)?,
                }
            }
            _ => return None,
        })
    }
}

/// A number as a float argument: floats, and integer literals that Rhai converts.
fn float(v: Value) -> Option<Num> {
    match v {
        Value::Float(n) => Some(n),
        Value::Int(i) => Some(Num::Const(i as f64)),
        _ => None,
    }
}

/// Two numbers of which at least one is a float (two integers do integer arithmetic).
fn mixed(a: Value, b: Value) -> Option<(Box<Num>, Box<Num>)> {
    if matches!((&a, &b), (Value::Int(_), Value::Int(_))) {
        return None;
    }
    Some((Box::new(float(a)?), Box::new(float(b)?)))
}

fn operator(op: &Token, args: Vec<Value>) -> Option<Value> {
    let mut args = args.into_iter();
    let (a, b) = (args.next()?, args.next());
    let Some(b) = b else {
        return match (op, a) {
            (Token::Minus | Token::UnaryMinus, Value::Float(n)) => {
                Some(Value::Float(Num::Neg(Box::new(n))))
            }
            (Token::Bang, Value::Bool(c)) => Some(Value::Bool(Cond::Not(Box::new(c)))),
            _ => None,
        };
    };
    let arith = match op {
        Token::Plus => Some(Arith::Add),
        Token::Minus => Some(Arith::Sub),
        Token::Multiply => Some(Arith::Mul),
        Token::Divide => Some(Arith::Div),
        Token::Modulo => Some(Arith::Rem),
        Token::PowerOf => Some(Arith::Pow),
        _ => None,
    };
    if let Some(arith) = arith {
        let (a, b) = mixed(a, b)?;
        return Some(Value::Float(Num::Arith(arith, a, b)));
    }
    let compare = match op {
        Token::LessThan => Compare::Lt,
        Token::LessThanEqualsTo => Compare::Le,
        Token::GreaterThan => Compare::Gt,
        Token::GreaterThanEqualsTo => Compare::Ge,
        Token::EqualsTo => Compare::Eq,
        Token::NotEqualsTo => Compare::Ne,
        _ => return None,
    };
    let (a, b) = mixed(a, b)?;
    Some(Value::Bool(Cond::Compare(compare, a, b)))
}

fn function(name: &str, args: Vec<Value>, pos: Position) -> Option<Value> {
    let mut it = args.into_iter();
    let mut next = || it.next();
    let n = match name {
        "distance" | "distance_xy" | "dot" => {
            let (Some(Value::Vector(a)), Some(Value::Vector(b)), None) = (next(), next(), next())
            else {
                return None;
            };
            // Rhai reports the mismatch (or a too-short vector) at run time.
            if a.len != b.len || (name == "distance_xy" && a.len < 2) {
                return None;
            }
            match name {
                "distance" => Num::Distance(a, b),
                "distance_xy" => Num::DistanceXy(a, b),
                _ => Num::Dot(a, b),
            }
        }
        "norm" => match (next(), next()) {
            (Some(Value::Vector(v)), None) => Num::Norm(v),
            _ => return None,
        },
        "tolerance" => {
            let args = [next()?, next()?, next()?, next()?];
            if next().is_some() {
                return None;
            }
            let [x, lo, hi, m] = args.map(float);
            Num::Tolerance(Box::new([x?, lo?, hi?, m?]), pos)
        }
        "clamp" => {
            let args = [next()?, next()?, next()?];
            if next().is_some() {
                return None;
            }
            let [x, lo, hi] = args.map(float);
            Num::Clamp(Box::new([x?, lo?, hi?]), pos)
        }
        "indicator" => match (next(), next()) {
            (Some(Value::Bool(c)), None) => Num::Indicator(Box::new(c)),
            _ => return None,
        },
        "min" | "max" => {
            let (Some(a), Some(b), None) = (next(), next(), next()) else {
                return None;
            };
            let which = match (&a, &b, name) {
                (Value::Float(_), Value::Float(_), "min") => MinMax::RhaiMin,
                (Value::Float(_), Value::Float(_), _) => MinMax::RhaiMax,
                (Value::Int(_), Value::Int(_), _) => return None,
                (_, _, "min") => MinMax::HelperMin,
                _ => MinMax::HelperMax,
            };
            let (a, b) = mixed(a, b)?;
            Num::MinMax(which, a, b)
        }
        _ => {
            let f: fn(f64) -> f64 = match name {
                "exp" => f64::exp,
                "sqrt" => f64::sqrt,
                "ln" => f64::ln,
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tanh" => f64::tanh,
                "abs" => f64::abs,
                "floor" => f64::floor,
                "round" => f64::round,
                _ => return None,
            };
            let arg = match (next(), next()) {
                (Some(Value::Float(n)), None) => n,
                // The helpers' integer forms of the functions that have one.
                (Some(Value::Int(i)), None)
                    if matches!(name, "exp" | "sqrt" | "ln" | "sin" | "cos" | "tanh") =>
                {
                    Num::Const(i as f64)
                }
                _ => return None,
            };
            Num::Math(f, Box::new(arg))
        }
    };
    Some(Value::Float(n))
}

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// A helper's error placed at its call, as Rhai places a native function's error.
fn at(pos: Position) -> impl Fn(Box<EvalAltResult>) -> Box<EvalAltResult> {
    move |mut e| {
        e.set_position(pos);
        e
    }
}

fn num(n: &Num, inputs: &[f64], locals: &[f64]) -> Result<f64> {
    let slice = |v: &Vector| &inputs[v.offset..v.offset + v.len];
    Ok(match n {
        Num::Const(x) => *x,
        Num::Input(i) => inputs[*i],
        Num::Local(i) => locals[*i],
        Num::Neg(a) => -num(a, inputs, locals)?,
        Num::Arith(op, a, b) => {
            let (x, y) = (num(a, inputs, locals)?, num(b, inputs, locals)?);
            match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div => x / y,
                Arith::Rem => x % y,
                Arith::Pow => x.powf(y),
            }
        }
        Num::Math(f, a) => f(num(a, inputs, locals)?),
        Num::MinMax(which, a, b) => {
            let (x, y) = (num(a, inputs, locals)?, num(b, inputs, locals)?);
            match which {
                MinMax::RhaiMin => {
                    if x <= y {
                        x
                    } else {
                        y
                    }
                }
                MinMax::RhaiMax => {
                    if x >= y {
                        x
                    } else {
                        y
                    }
                }
                MinMax::HelperMin => x.min(y),
                MinMax::HelperMax => x.max(y),
            }
        }
        Num::Distance(a, b) => helpers::distance_of(slice(a), slice(b)),
        Num::DistanceXy(a, b) => helpers::distance_of(&slice(a)[..2], &slice(b)[..2]),
        Num::Norm(v) => helpers::norm_of(slice(v)),
        Num::Dot(a, b) => helpers::dot_of(slice(a), slice(b)),
        Num::Tolerance(args, pos) => {
            let [x, lo, hi, m] = &**args;
            helpers::tolerance(
                num(x, inputs, locals)?,
                num(lo, inputs, locals)?,
                num(hi, inputs, locals)?,
                num(m, inputs, locals)?,
            )
            .map_err(at(*pos))?
        }
        Num::Clamp(args, pos) => {
            let [x, lo, hi] = &**args;
            helpers::clamp(
                num(x, inputs, locals)?,
                num(lo, inputs, locals)?,
                num(hi, inputs, locals)?,
            )
            .map_err(at(*pos))?
        }
        Num::Indicator(c) => {
            if cond(c, inputs, locals)? {
                1.0
            } else {
                0.0
            }
        }
    })
}

fn cond(c: &Cond, inputs: &[f64], locals: &[f64]) -> Result<bool> {
    Ok(match c {
        Cond::Const(b) => *b,
        Cond::Local(i) => locals[*i] != 0.0,
        Cond::Not(a) => !cond(a, inputs, locals)?,
        Cond::Compare(op, a, b) => compare(*op, num(a, inputs, locals)?, num(b, inputs, locals)?),
        Cond::And(all) => {
            for c in all {
                if !cond(c, inputs, locals)? {
                    return Ok(false);
                }
            }
            true
        }
        Cond::Or(any) => {
            for c in any {
                if cond(c, inputs, locals)? {
                    return Ok(true);
                }
            }
            false
        }
    })
}

/// Rhai's float comparisons (`func/builtin.rs`, checked builds): relative to the larger
/// magnitude, with differences within `f64::EPSILON` counting as equal.
fn compare(op: Compare, x: f64, y: f64) -> bool {
    let max = if x * y == 0.0 {
        1.0
    } else {
        x.abs().max(y.abs())
    };
    if max == 0.0 {
        return matches!(op, Compare::Eq | Compare::Ge | Compare::Le);
    }
    match op {
        Compare::Eq => (x - y).abs() / max <= f64::EPSILON,
        Compare::Ne => (x - y).abs() / max > f64::EPSILON,
        Compare::Gt => (x - y) / max > f64::EPSILON,
        Compare::Ge => (x - y) / max > -f64::EPSILON,
        Compare::Lt => (y - x) / max > f64::EPSILON,
        Compare::Le => (y - x) / max > -f64::EPSILON,
    }
}
