//! Reward programs end to end inside the crate: the shipped examples pass the check and
//! score hand-made states as intended; a hostile corpus is rejected at check time or
//! contained at run time with the limit error that stopped it; hot reload keeps the old
//! program when an edit is broken.

use std::path::{Path, PathBuf};

use rlrt_rewards::program::{
    check, check_file, CheckOptions, Environment, EvalError, Limits, ProgramError, ProgramState,
    ProgramWatcher, Reload,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn env_of(config: &str) -> Environment {
    let config = rlrt_runtime::config::load(repo(config)).unwrap();
    Environment::from_config(&config).unwrap()
}

fn reach_env() -> Environment {
    env_of("hw-configs/reach-arm.toml")
}

fn check_text(
    env: &Environment,
    text: &str,
) -> Result<rlrt_rewards::program::RewardProgram, ProgramError> {
    check(
        env,
        text,
        Path::new("test.rhai"),
        &Limits::default(),
        &CheckOptions::default(),
    )
    .map(|(p, _)| p)
}

fn state(env: &Environment, sensors: &[(&str, [f64; 3])]) -> ProgramState {
    let mut s = env.zero_state();
    for (name, v) in sensors {
        assert!(env.set_sensor(&mut s, name, v), "{name}");
    }
    s
}

#[test]
fn reach_program_passes_and_rises_as_the_end_effector_approaches() {
    let env = reach_env();
    let (mut program, report) = check_file(
        &env,
        &repo("rewards/programs/reach.rhai"),
        &Limits::default(),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(
        program.term_names(),
        ["distance", "reach", "smooth", "success"]
    );
    assert_eq!(report.samples, 256);
    // Straight-line: checked in Rhai, evaluated on the direct path.
    assert!(report.direct_path && program.is_direct());
    let target = [0.3, 0.1, 0.2];
    let mut previous = f64::NEG_INFINITY;
    for gap in [0.5, 0.3, 0.1, 0.05, 0.02, 0.0] {
        let s = state(
            &env,
            &[
                ("ee_position", [0.3 + gap, 0.1, 0.2]),
                ("target_position", target),
            ],
        );
        let terms = program.evaluate(&s).unwrap();
        assert!(terms.total() > previous, "gap {gap}: {terms:?}");
        previous = terms.total();
        assert_eq!(
            terms.get("success"),
            Some(if gap < 0.03 { 1.0 } else { 0.0 })
        );
        assert!((terms.get("distance").unwrap() + gap).abs() < 1e-12);
        let sum: f64 = terms.values().iter().sum();
        assert_eq!(terms.total(), sum);
    }
    assert_eq!(program.counters().evaluations, 6);
    assert_eq!(program.counters().invalid, 0);
}

#[test]
fn push_program_rewards_the_block_nearing_the_goal() {
    let env = env_of("hw-configs/push-arm.toml");
    let (mut program, _) = check_file(
        &env,
        &repo("rewards/programs/push.rhai"),
        &Limits::default(),
        &CheckOptions::default(),
    )
    .unwrap();
    // Straight-line, with an array literal of floats (`spot`): the direct path.
    assert!(program.is_direct());
    let goal = [0.35, 0.1, 0.02];
    let at = |block: [f64; 3], ee: [f64; 3]| {
        state(
            &env,
            &[
                ("goal_position", goal),
                ("block_position", block),
                ("ee_position", ee),
            ],
        )
    };
    let far = program
        .evaluate(&at([0.35, -0.1, 0.02], [0.0, 0.0, 0.3]))
        .unwrap();
    // Behind the block (on the side away from the goal) beats the same distance in front.
    let behind = program
        .evaluate(&at([0.35, -0.1, 0.02], [0.35, -0.16, 0.02]))
        .unwrap();
    let in_front = program
        .evaluate(&at([0.35, -0.1, 0.02], [0.35, -0.04, 0.02]))
        .unwrap();
    let done = program
        .evaluate(&at([0.35, 0.08, 0.02], [0.35, 0.02, 0.02]))
        .unwrap();
    assert!(
        behind.total() > in_front.total(),
        "{behind:?} vs {in_front:?}"
    );
    assert!(behind.total() > far.total());
    assert!(done.total() > behind.total());
    assert_eq!(done.get("success"), Some(5.0));
    assert_eq!(far.get("success"), Some(0.0));
}

#[test]
fn values_change_with_the_state_and_inputs_are_read_only() {
    // Guards against compile-time folding of the bound names and against a program
    // writing to its inputs.
    let env = reach_env();
    let mut p = check_text(&env, "#{ x: ee_position[0] + dt }").unwrap();
    let a = p
        .evaluate(&state(&env, &[("ee_position", [0.25, 0.0, 0.0])]))
        .unwrap();
    let b = p
        .evaluate(&state(&env, &[("ee_position", [-0.5, 0.0, 0.0])]))
        .unwrap();
    assert_eq!(a.get("x"), Some(0.25 + 0.01));
    assert_eq!(b.get("x"), Some(-0.5 + 0.01));
    let err = check_text(&env, "ee_position[0] = 1.0;\n#{ x: 1.0 }").unwrap_err();
    assert!(err.to_string().contains("test.rhai:1:"), "{err}");
}

/// Checks that `text` is rejected and that the message contains each of `expected`.
///
/// The time budget is 100 ms instead of 1 ms so that the limit named is the deterministic
/// one: an endless loop reaches 20,000 operations in well under 1 ms in a release build,
/// but not in a debug build on a busy machine. The budget has its own test.
fn rejected(env: &Environment, text: &str, expected: &[&str]) -> String {
    let limits = Limits {
        time_budget: std::time::Duration::from_millis(100),
        ..Limits::default()
    };
    let checked = check(
        env,
        text,
        Path::new("test.rhai"),
        &limits,
        &CheckOptions::default(),
    );
    match checked {
        Ok(_) => panic!(
            "accepted a hostile program:\n{}",
            &text[..text.len().min(300)]
        ),
        Err(e) => {
            let message = e.to_string();
            for part in expected {
                assert!(
                    message.contains(part),
                    "program:\n{}\nmessage lacks {part:?}:\n{message}",
                    &text[..text.len().min(300)]
                );
            }
            assert!(message.starts_with("test.rhai"), "{message}");
            eprintln!("{message}");
            message
        }
    }
}

#[test]
fn hostile_programs_are_rejected_at_check_time() {
    let env = reach_env();
    let ops = "more than 20000 operations";
    let size = "size-limited";
    let cases: &[(&str, &[&str])] = &[
        ("loop {}\n#{ a: 1.0 }", &["test.rhai:1:", ops]),
        ("while true { }\n#{ a: 1.0 }", &[ops]),
        (
            "let i = 0;\ndo { i += 1; } while i >= 0;\n#{ a: 1.0 }",
            &[ops],
        ),
        (
            "fn f(x) { f(x + 1) }\n#{ a: f(0) }",
            &["nested deeper than 16"],
        ),
        (
            "fn f(n) { if n == 0 { 0 } else { f(n - 1) + f(n - 1) } }\n#{ a: f(14) }",
            &[ops],
        ),
        ("let s = \"a\";\nloop { s += s; }\n#{ a: 1.0 }", &[size]),
        (
            "let s = \"a\";\ns.pad(100000000, 'x');\n#{ a: 1.0 }",
            &[size],
        ),
        ("let a = [];\na.pad(1000000000, 0);\n#{ a: 1.0 }", &[size]),
        ("let a = [1];\nloop { a += a; }\n#{ a: 1.0 }", &[size]),
        (
            "let m = #{};\nfor i in 0..100000 { m[`k${i}`] = i; }\n#{ a: 1.0 }",
            &["stopped"],
        ),
        (
            "let s = \"ab\";\nfor i in 0..40 { s = `${s}${s}`; }\n#{ a: 1.0 }",
            &[size],
        ),
        (
            "let d = distance(ee_position, goal);\n#{ a: -d }",
            &["test.rhai:1:", "unknown variable `goal`", "target_position"],
        ),
        (
            "let d = 1.0;\n#{ a: -distanse(ee_position, target_position) }",
            &["test.rhai:2:", "unknown function `distanse`"],
        ),
        ("#{ a: 0.0 / 0.0 }", &["term `a` is NaN"]),
        ("#{ a: 1.0 / 0.0 }", &["term `a` is inf"]),
        ("#{ a: 1 / 0 }", &["test.rhai:1:", "Division by zero"]),
        // Infinite only where the end effector is exactly on the target.
        (
            "#{ a: 0.001 / distance(ee_position, target_position) }",
            &["term `a` is inf"],
        ),
        (
            "#{ a: 1e9 * norm(ee_position) }",
            &["expected |term| <= 1000"],
        ),
        (
            "eval(\"loop {}\");\n#{ a: 1.0 }",
            &["test.rhai:1:1", "`eval` is not available"],
        ),
        ("import \"std\" as s;\n#{ a: 1.0 }", &["test.rhai:1:1"]),
        (
            "let f = open_file(\"/etc/passwd\");\n#{ a: 1.0 }",
            &["unknown function `open_file`"],
        ),
        (
            "let x = Fn(\"open_file\").call();\n#{ a: 1.0 }",
            &["open_file"],
        ),
        (
            "system(\"rm -rf /\");\n#{ a: 1.0 }",
            &["unknown function `system`"],
        ),
        (
            "for i in 0..1000000 { print(i); }\n#{ a: 1.0 }",
            &["stopped"],
        ),
        ("42", &["returned a i64", "map of named terms"]),
        ("\"done\"", &["returned a string"]),
        ("let d = 1.0;", &["returned a ()"]),
        ("#{}", &["empty map"]),
        ("#{ a: \"high\" }", &["term `a` is a string"]),
        (
            "let d = distance(ee_position, target_position)\n#{ a: -d }",
            &["test.rhai:2:1"],
        ),
        ("#{ a: (1.0 + }", &["test.rhai:1:"]),
        (
            "if joint_positions[0] > 0.0 { #{ a: 1.0 } } else { #{ b: 1.0 } }",
            &["expected the same terms on every call"],
        ),
        ("try { loop {} } catch (e) { }\n#{ a: 1.0 }", &[ops]),
        (
            "let a = [];\na.pad(1000, 0);\nloop { a.sort(); }\n#{ a: 1.0 }",
            &["stopped"],
        ),
    ];
    for (text, expected) in cases {
        rejected(&env, text, expected);
    }
    // Nesting that would overflow a recursive parser's stack is refused by depth.
    let deep = format!("#{{ a: {}1.0{} }}", "(".repeat(20_000), ")".repeat(20_000));
    rejected(&env, &deep, &["test.rhai:1:"]);
    let long = format!("{}#{{ a: 1.0 }}", "// padding\n".repeat(10_000));
    rejected(&env, &long, &["expected at most 65536"]);
}

#[test]
fn a_program_that_misbehaves_only_at_run_time_is_contained_and_counted() {
    let env = reach_env();
    // The trap never fires on the checker's samples, only on one exact state.
    let text = "if ee_position[0] == 0.123 { loop {} }\n\
                if ee_position[0] == 0.456 { let s = \"a\"; loop { s += s; } }\n\
                if ee_position[0] == 0.789 { return #{ a: 1.0 / 0.0 }; }\n\
                #{ a: ee_position[0] }";
    let mut program = check_text(&env, text).unwrap();
    let at = |x: f64| state(&env, &[("ee_position", [x, 0.0, 0.0])]);
    assert!(matches!(
        program.evaluate(&at(0.123)),
        Err(EvalError::OperationLimit { line: 1, .. } | EvalError::TimeLimit { .. })
    ));
    assert!(matches!(
        program.evaluate(&at(0.456)),
        Err(EvalError::SizeLimit { line: 2, .. })
    ));
    assert!(matches!(
        program.evaluate(&at(0.789)),
        Err(EvalError::NonFinite { .. })
    ));
    assert_eq!(program.evaluate(&at(0.5)).unwrap().total(), 0.5);
    let c = program.counters();
    assert_eq!((c.evaluations, c.invalid), (4, 3));
    assert_eq!(c.by_kind.get("size_limit"), Some(&1));
    assert_eq!(c.by_kind.get("non_finite"), Some(&1));
}

#[test]
fn calls_share_nothing_but_the_function_cache() {
    // A program keeps Rhai's function-resolution cache between calls; the operation count,
    // the variables and the outcome of one call must not leak into the next.
    let env = reach_env();
    let text = "fn half(v) { v / 2 }\n\
                let x = if ee_position[0] > 0.0 { 3 } else { 3.0 };\n\
                if ee_position[0] == 0.5 { half(\"text\") }\n\
                #{ a: half(x) + max(x, 0.5) + tolerance(x, 0, 2, 1), b: type_of(half(x)) == \"f64\" }";
    // A generous time budget: a call pre-empted by another process must not fail here.
    let limits = Limits {
        time_budget: std::time::Duration::from_secs(10),
        ..Limits::default()
    };
    let options = CheckOptions::default();
    let (mut program, _) = check(&env, text, Path::new("test.rhai"), &limits, &options).unwrap();
    let at = |x: f64| state(&env, &[("ee_position", [x, 0.0, 0.0])]);
    // Integer `x`: `half` does integer division and `max(int, float)` picks the helper's
    // mixed form; float `x`: float division and Rhai's own `max`.
    let int_terms = program.evaluate(&at(1.0)).unwrap();
    let ops = program.last_operations();
    let float_terms = program.evaluate(&at(-1.0)).unwrap();
    assert_eq!(int_terms.get("b"), Some(0.0));
    assert_eq!(float_terms.get("b"), Some(1.0));
    // tolerance(3, 0, 2, 1) is 0.1: one margin outside the interval.
    let close = |t: &rlrt_rewards::program::Terms, v: f64| (t.get("a").unwrap() - v).abs() < 1e-12;
    assert!(close(&int_terms, 1.0 + 3.0 + 0.1), "{int_terms:?}");
    assert!(close(&float_terms, 1.5 + 3.0 + 0.1), "{float_terms:?}");
    // A call that fails half-way leaves the next one unaffected.
    assert!(matches!(
        program.evaluate(&at(0.5)),
        Err(EvalError::Script { .. })
    ));
    // Far more calls than one call's operation limit allows in total: the count starts
    // from zero on every call.
    for i in 0..2_000 {
        let x = if i % 2 == 0 { 1.0 } else { -1.0 };
        let terms = program.evaluate(&at(x)).unwrap();
        assert_eq!(terms.get("b"), Some(if x > 0.0 { 0.0 } else { 1.0 }));
    }
    program.evaluate(&at(1.0)).unwrap();
    assert_eq!(program.last_operations(), ops);
    assert_eq!(program.counters().invalid, 1);
}

/// `text` checked twice: once on the direct path, once with every call in Rhai.
fn direct_and_rhai(
    env: &Environment,
    text: &str,
) -> (
    rlrt_rewards::program::RewardProgram,
    rlrt_rewards::program::RewardProgram,
) {
    // A generous time budget: a Rhai call pre-empted by another process must not turn
    // into a difference between the two.
    let limits = Limits {
        time_budget: std::time::Duration::from_secs(10),
        ..Limits::default()
    };
    let checked = |text: &str| {
        check(
            env,
            text,
            Path::new("test.rhai"),
            &limits,
            &CheckOptions::default(),
        )
        .unwrap()
        .0
    };
    let direct = checked(text);
    let mut rhai = checked(text);
    rhai.disable_direct_path();
    assert!(direct.is_direct(), "not on the direct path:\n{text}");
    assert!(!rhai.is_direct());
    // A script function keeps a program off the direct path altogether.
    assert!(!checked(&format!("fn unused() {{ 0 }} {text}")).is_direct());
    (direct, rhai)
}

fn same_outcome(
    a: &Result<rlrt_rewards::program::Terms, EvalError>,
    b: &Result<rlrt_rewards::program::Terms, EvalError>,
) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            let bits = |t: &rlrt_rewards::program::Terms| {
                t.values().iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            a.names() == b.names() && bits(a) == bits(b)
        }
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

#[test]
fn the_direct_path_gives_rhais_answers() {
    let env = reach_env();
    let shipped = std::fs::read_to_string(repo("rewards/programs/reach.rhai")).unwrap();
    let spot = "let spot = [ee_position[0] - 0.06, -target_position[1] * 2.0, dt];\n\
                let spot = [spot[2], spot[0], max(spot[1], 1e-6)];\n\
                #{ a: distance(spot, target_position) + spot[1], b: norm(spot) }";
    // Every construct the direct path translates, including Rhai's own semantics where
    // they are easy to get wrong: comparisons within f64::EPSILON count as equal, integer
    // literals mixed with floats, Rhai's `min`/`max` on floats against the helpers' forms
    // for a float and an integer, short-circuit `&&`/`||`, shadowing, vector aliases.
    let subset = "let p = ee_position;\n\
        let d = distance(p, target_position);\n\
        let dxy = distance_xy(ee_position, target_position);\n\
        let same = ee_position[0] == target_position[0];\n\
        let near = d < 0.3 && !(dxy > 0.2) || ee_position[2] >= 0.5;\n\
        let k = 2;\n\
        let d = d * k + 1 - dt / 4 % 3.0;\n\
        #{\n\
            z_arith: -d ** 2 + (d + 1.5) ** 0.5 - joint_positions[1] * 0.5,\n\
            same: indicator(same) + indicator(ee_position[1] != target_position[1]),\n\
            near: near,\n\
            order: indicator(d <= dxy) - indicator(dxy >= d) + indicator(d > 0),\n\
            helpers: tolerance(d, 0, 0.5, 1) + clamp(dxy, 0.1, 0.4) + dot(p, target_position)\n\
                + norm(previous_action) + norm(joint_velocities),\n\
            math: exp(-d) + sqrt(dxy) + ln(d + 1.0) + sin(d) + cos(2) + tanh(d) + abs(-d)\n\
                + floor(d) + round(dxy * 10.0),\n\
            min_max: min(d, dxy) + max(d, 0) + min(1, dxy) + max(d, dxy) + min(d, 0),\n\
            flags: true,\n\
            count: 3,\n\
        }";
    let mut states = env.sample_states(512, 11, 1.0);
    // Coordinates equal, or a rounding error apart: only a relative-epsilon comparison
    // calls the second pair equal.
    for (i, x) in [0.25, 0.1 + 0.2, 0.3, 1e-300, 0.0].iter().enumerate() {
        let mut s = env.zero_state();
        env.set_sensor(&mut s, "ee_position", &[*x, 0.3, 0.1 * i as f64]);
        env.set_sensor(&mut s, "target_position", &[0.3, 0.1 + 0.2, 0.0]);
        states.push(s);
    }
    for text in [shipped.as_str(), subset, spot] {
        let (mut direct, mut rhai) = direct_and_rhai(&env, text);
        for s in &states {
            let (a, b) = (direct.evaluate(s), rhai.evaluate(s));
            assert!(same_outcome(&a, &b), "{text}\n{a:?}\n{b:?}");
        }
        assert_eq!(direct.last_operations(), rhai.last_operations());
    }
    let push_env = env_of("hw-configs/push-arm.toml");
    let push = std::fs::read_to_string(repo("rewards/programs/push.rhai")).unwrap();
    let (mut direct, mut rhai) = direct_and_rhai(&push_env, &push);
    for s in &push_env.sample_states(512, 12, 1.0) {
        let (a, b) = (direct.evaluate(s), rhai.evaluate(s));
        assert!(same_outcome(&a, &b), "{push}\n{a:?}\n{b:?}");
    }
    // Near-equal coordinates really are compared the way Rhai compares them.
    let (mut direct, _) = direct_and_rhai(&env, subset);
    let terms = direct.evaluate(&states[513]).unwrap();
    assert_eq!(terms.get("same"), Some(1.0), "{terms:?}");
}

#[test]
fn the_direct_path_fails_where_rhai_fails_and_with_the_same_error() {
    let env = reach_env();
    // Fine on the checker's samples (sensors within a metre), wrong far away: there the
    // helpers' argument checks fail, in program order.
    let text = "let hi = ee_position[0] + 10.0;\n\
                #{\n\
                    b: clamp(1.0, 0.0, hi),\n\
                    a: tolerance(0.5, 0.0, ee_position[1] + 10.0, 0.1),\n\
                    c: 1.0 / (ee_position[2] + 10.0),\n\
                }";
    let (mut direct, mut rhai) = direct_and_rhai(&env, text);
    let at = |x: [f64; 3]| state(&env, &[("ee_position", x)]);
    for x in [
        [-20.0, 0.0, 0.0],
        [0.0, -20.0, 0.0],
        [-20.0, -20.0, 0.0],
        [0.0, 0.0, -10.0],
        [0.0, 0.0, 0.0],
    ] {
        let (a, b) = (direct.evaluate(&at(x)), rhai.evaluate(&at(x)));
        assert!(same_outcome(&a, &b), "{x:?}\n{a:?}\n{b:?}");
    }
    let err = direct.evaluate(&at([-20.0, -20.0, 0.0])).unwrap_err();
    assert!(matches!(err, EvalError::Script { line: 3, .. }), "{err:?}");
    assert!(
        err.to_string().contains("clamp: expected lo <= hi"),
        "{err}"
    );
    assert!(matches!(
        direct.evaluate(&at([0.0, 0.0, -10.0])),
        Err(EvalError::NonFinite { .. })
    ));
    assert_eq!(direct.counters().invalid, 6);
}

#[test]
fn programs_outside_the_direct_subset_run_on_rhai() {
    let env = reach_env();
    for text in [
        // An array with an integer element, or used other than through `let`.
        "let p = [ee_position[0], 0, 0.0];\n#{ a: distance(p, target_position) }",
        "#{ a: distance([ee_position[0], 1.0, 0.0], target_position) }",
        // Control flow, loops, integer arithmetic, methods, strings, output.
        "let a = if dt > 0.0 { 1.0 } else { 2.0 };\n#{ a: a }",
        "let s = 0.0;\nfor q in joint_positions { s += q; }\n#{ a: s }",
        "#{ a: 7 / 2 }",
        "#{ a: joint_positions.len() }",
        "print(\"x\");\n#{ a: 1.0 }",
        // An index outside the vector is Rhai's error to report.
        "#{ a: dt, b: indicator(dt > 1.0) * ee_position[3] }",
    ] {
        match check_text(&env, text) {
            Ok(program) => assert!(!program.is_direct(), "{text}"),
            Err(e) => assert!(text.contains("ee_position[3]"), "{text}: {e}"),
        }
    }
}

#[test]
fn the_time_budget_stops_a_call_that_stays_within_the_operation_limit() {
    let env = reach_env();
    // Each operation sorts a large array: few operations, much time.
    let limits = Limits {
        max_operations: u64::MAX / 2,
        max_array_len: 100_000,
        ..Limits::default()
    };
    let text = "let a = [];\na.pad(100000, 0.5);\nloop { a.sort(); a.reverse(); }\n#{ a: 1.0 }";
    let err = check(
        &env,
        text,
        Path::new("slow.rhai"),
        &limits,
        &CheckOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("time budget of 1000 us"), "{err}");
}

#[test]
fn print_is_counted_not_written() {
    let env = reach_env();
    let mut p = check_text(&env, "print(\"hello\");\ndebug(1);\n#{ a: 1.0 }").unwrap();
    let before = p.prints();
    p.evaluate(&env.zero_state()).unwrap();
    assert_eq!(p.prints(), before + 2);
}

#[test]
fn hot_reload_keeps_the_old_program_until_a_good_one_arrives() {
    let env = reach_env();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.rhai");
    let write = |text: &str, secs: u64| {
        std::fs::write(&file, text).unwrap();
        // Distinct modification times even on coarse-grained file systems.
        let t =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + secs);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    write("#{ a: 1.0 }", 1);
    let (mut watcher, _) = ProgramWatcher::new(
        env.clone(),
        &file,
        Limits::default(),
        CheckOptions::default(),
    )
    .unwrap();
    let s = env.zero_state();
    assert!(matches!(watcher.poll(), Reload::Unchanged));
    assert_eq!(watcher.program().evaluate(&s).unwrap().total(), 1.0);

    write("#{ a: 2.0 / 0.0 }", 2);
    match watcher.poll() {
        Reload::Rejected(e) => assert!(e.to_string().contains("is inf"), "{e}"),
        other => panic!("broken edit not rejected: {other:?}"),
    }
    assert!(
        matches!(watcher.poll(), Reload::Unchanged),
        "a rejection is reported once"
    );
    assert_eq!(watcher.program().evaluate(&s).unwrap().total(), 1.0);

    write("#{ a: 3.0, b: 1.0 }", 3);
    assert!(matches!(watcher.poll(), Reload::Swapped(_)));
    assert_eq!(watcher.program().evaluate(&s).unwrap().total(), 4.0);
    assert_eq!((watcher.swaps(), watcher.rejections()), (1, 1));
}

#[test]
fn feedback_summarises_terms_and_relabel_writes_rewards() {
    use rlrt_rewards::program::feedback::{feedback_prompt, read_episodes, relabel, summarize};
    let env = reach_env();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("episodes.jsonl");
    // Episode 0 ends on the target (success), episode 1 stays far away (failure).
    let mut lines = String::new();
    for (episode, gaps, success) in [(0, [0.3, 0.1, 0.01], true), (1, [0.5, 0.45, 0.4], false)] {
        for (i, gap) in gaps.iter().enumerate() {
            let last = i == gaps.len() - 1;
            lines.push_str(&format!(
                "{{\"episode\": {episode}, \"t\": {t}, \"success\": {s}, \"state\": {{\"joint_positions\": [0, 0, 0], \"previous_action\": [0, 0, 0], \"sensors\": {{\"ee_position\": [{x}, 0, 0.2], \"target_position\": [0.3, 0, 0.2]}}}}}}\n",
                t = i as f64 * 0.01,
                s = success && last,
                x = 0.3 + gap,
            ));
        }
    }
    std::fs::write(&recording, lines).unwrap();
    let records = read_episodes(&env, &recording).unwrap();
    assert_eq!(records.len(), 6);
    let (mut program, _) = check_file(
        &env,
        &repo("rewards/programs/reach.rhai"),
        &Limits::default(),
        &CheckOptions::default(),
    )
    .unwrap();
    let stats = summarize(&mut program, &records);
    assert_eq!((stats.episodes, stats.successes, stats.invalid), (2, 1, 0));
    let distance = stats.terms.iter().find(|t| t.name == "distance").unwrap();
    assert!((distance.min + 0.5).abs() < 1e-12 && (distance.max + 0.01).abs() < 1e-12);
    assert!(distance.success_correlation.unwrap() > 0.99);
    let prompt = feedback_prompt(&program, "reach the target", &stats, "it overshoots", 1e3);
    for part in [
        "Task: reach the target",
        "it overshoots",
        "tolerance(d, 0.0, 0.03, 0.3)",
        "corr. with success",
    ] {
        assert!(prompt.contains(part), "prompt lacks {part:?}:\n{prompt}");
    }

    let out = dir.path().join("relabelled.jsonl");
    assert_eq!(relabel(&mut program, &records, &out).unwrap(), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!((first["terms"]["distance"].as_f64().unwrap() + 0.3).abs() < 1e-12);
    let sum: f64 = first["terms"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert_eq!(first["reward"].as_f64().unwrap(), sum);
    // A relabelled file reads back.
    assert_eq!(read_episodes(&env, &out).unwrap().len(), 6);

    // A line that does not fit the robot is named by its line number.
    std::fs::write(
        &recording,
        "{\"episode\": 0, \"state\": {\"joint_positions\": [0, 0]}}\n",
    )
    .unwrap();
    let err = read_episodes(&env, &recording).unwrap_err();
    assert!(
        err.to_string()
            .contains("episodes.jsonl:1: state.joint_positions: 2 values, expected 3"),
        "{err}"
    );
}

#[test]
fn programs_and_watchers_can_move_to_a_reward_thread() {
    fn send<T: Send>() {}
    send::<rlrt_rewards::program::RewardProgram>();
    send::<ProgramWatcher>();
    let env = reach_env();
    let mut program = check_text(&env, "#{ a: dt }").unwrap();
    let total = std::thread::spawn(move || program.evaluate(&env.zero_state()).unwrap().total())
        .join()
        .unwrap();
    assert_eq!(total, 0.01);
}
