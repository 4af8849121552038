//! `cargo xtask layout`: the rules of ARCHITECTURE.md's crate map, checked.
//!
//! 1. Each workspace crate depends (normal dependencies, all its features on) only on the
//!    workspace crates its rule allows, and never pulls in the crates its rule forbids.
//! 2. The robot build of `rlrt` (`--no-default-features --features robot`) pulls in none of
//!    libhdf5, Arrow, Parquet, rerun or MuJoCo.
//! 3. No two source files of a crate import each other, directly or around a circle (`use`
//!    and paths through `crate::` or `super::`; `mod` declarations are not imports, and a
//!    file reaching its own module's `mod.rs` is not counted: a folder's files share it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// (crate, workspace crates it may depend on, crates it must never pull in).
const RULES: &[(&str, &[&str], &[&str])] = &[
    (
        "rlrt-runtime",
        &[],
        &[
            "burn",
            "cubecl",
            "ort",
            "tch",
            "rerun",
            "mujoco-rs",
            "hdf5-metno",
            "parquet",
            "rhai",
        ],
    ),
    (
        "rlrt-models",
        &["rlrt-runtime"],
        &["burn", "tch", "rerun", "mujoco-rs", "hdf5-metno", "parquet"],
    ),
    (
        "rlrt-rerun",
        &["rlrt-runtime"],
        &["burn", "ort", "tch", "mujoco-rs", "hdf5-metno", "rhai"],
    ),
    (
        "rlrt-policies",
        &["rlrt-runtime", "rlrt-models"],
        &["rerun", "mujoco-rs", "hdf5-metno", "parquet", "rhai"],
    ),
    (
        "rlrt-rewards",
        &["rlrt-runtime", "rlrt-models"],
        &["rerun", "mujoco-rs", "hdf5-metno", "parquet", "tch"],
    ),
    (
        "rlrt-datasets",
        &["rlrt-runtime"],
        &["burn", "cubecl", "ort", "tch", "rerun", "mujoco-rs", "rhai"],
    ),
    (
        "rlrt-sim",
        &["rlrt-runtime"],
        &[
            "burn",
            "ort",
            "tch",
            "rerun",
            "hdf5-metno",
            "parquet",
            "rhai",
        ],
    ),
];

/// What the robot build must not link or build.
const NOT_IN_ROBOT: &[&str] = &[
    "rlrt-datasets",
    "hdf5-metno",
    "hdf5-metno-sys",
    "arrow-array",
    "arrow-buffer",
    "arrow-schema",
    "parquet",
    "rerun",
    "re_sdk",
    "mujoco-rs",
];

/// The crates (name, source folder) whose files are checked for import circles.
const SOURCES: &[(&str, &str)] = &[
    ("rlrt", "src"),
    ("rlrt-runtime", "runtime/src"),
    ("rlrt-models", "runtime/models/src"),
    ("rlrt-rerun", "runtime/rerun/src"),
    ("rlrt-datasets", "runtime/datasets/src"),
    ("rlrt-policies", "policies/src"),
    ("rlrt-rewards", "rewards/src"),
    ("rlrt-sim", "sim/src"),
];

pub fn check(root: &Path) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, allowed, forbidden) in RULES {
        let tree = tree(root, &["-p", name, "--all-features"])?;
        for dep in &tree {
            let ours = dep.starts_with("rlrt");
            if ours && dep != name && !allowed.contains(&dep.as_str()) {
                problems.push(format!(
                    "{name} depends on {dep}, which its rule does not allow"
                ));
            }
            if forbidden.contains(&dep.as_str()) {
                problems.push(format!("{name} pulls in {dep}, which its rule forbids"));
            }
        }
        println!("layout: {name}: {} crates, rule kept", tree.len());
    }
    let robot = tree(
        root,
        &["-p", "rlrt", "--no-default-features", "--features", "robot"],
    )?;
    for dep in NOT_IN_ROBOT {
        if robot.contains(*dep) {
            problems.push(format!("the robot build pulls in {dep}"));
        }
    }
    println!(
        "layout: robot build: {} crates, none of {NOT_IN_ROBOT:?}",
        robot.len()
    );
    for (name, dir) in SOURCES {
        let cycles = import_cycles(&root.join(dir))?;
        for cycle in &cycles {
            problems.push(format!(
                "{name}: files import each other: {}",
                cycle.join(" -> ")
            ));
        }
        println!("layout: {name}: no import circles between files");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the layout rules are broken:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// The names of every crate in the normal dependency tree of `args`' package.
fn tree(root: &Path, args: &[&str]) -> Result<BTreeSet<String>, String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "tree", "--edges", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("running cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// A source file's module path (`a::b` for `a/b.rs` or `a/b/mod.rs`; empty for the root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The paths a file names through `crate::` and `super::`, as module paths (the longest
/// prefix that is a file of the crate decides which file).
fn references(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    // Skip the file's own tests: a `mod tests` at the bottom may use anything.
    let body = text.split("#[cfg(test)]").next().unwrap_or(text);
    for line in body.lines() {
        let line = line.trim_start();
        if line.starts_with("//") || line.starts_with("mod ") || line.starts_with("pub mod ") {
            continue;
        }
        for (start, _) in line
            .match_indices("crate::")
            .chain(line.match_indices("super::"))
        {
            // Not a path's head: `my_crate::`, or the second `super::` of `super::super::`.
            if start > 0 {
                let before = line.as_bytes()[start - 1];
                if before.is_ascii_alphanumeric() || before == b'_' || before == b':' {
                    continue;
                }
            }
            let rest = &line[start..];
            let mut path: Vec<String> = Vec::new();
            let mut segments = rest.split("::").peekable();
            let head = segments.next().unwrap_or_default();
            if head == "crate" {
                // from the root
            } else {
                let mut base = module.to_vec();
                base.pop();
                path = base;
                while segments.peek() == Some(&"super") {
                    segments.next();
                    path.pop();
                }
            }
            for seg in segments {
                let ident: String = seg
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if ident.is_empty() || ident == "self" {
                    break;
                }
                path.push(ident);
                if !seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
            }
            found.push(path);
        }
    }
    found
}

/// Circles in the graph of files that import each other.
fn import_cycles(src: &Path) -> Result<Vec<Vec<String>>, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let name = |m: &[String]| {
        if m.is_empty() {
            "(root)".to_owned()
        } else {
            m.join("::")
        }
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let from = name(module);
        for path in references(&text, module) {
            // The file that holds the item: the longest prefix of the path that is a module.
            let target = (0..=path.len())
                .rev()
                .map(|n| &path[..n])
                .find(|p| modules.contains_key(*p));
            if let Some(target) = target {
                let to = name(target);
                // A file naming its own module's ancestors through paths into a child is fine;
                // what counts is one file's items reaching another's.
                if to != from && !module.starts_with(target) {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Depth-first search for back edges.
    let mut cycles = Vec::new();
    let mut state: BTreeMap<String, u8> = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new();
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    cycles.push(cycle);
                }
                Some(_) => {}
                None => visit(next, edges, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
    }
    let nodes: Vec<String> = edges.keys().cloned().collect();
    for node in nodes {
        if !state.contains_key(&node) {
            visit(&node, &edges, &mut state, &mut stack, &mut cycles);
        }
    }
    Ok(cycles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rlrt-layout-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        dir
    }

    #[test]
    fn finds_a_circle_between_files_and_leaves_a_folder_with_its_mod_alone() {
        let dir = crate_of(&[
            (
                "lib.rs",
                "pub mod hub;\npub mod rerun_log;\npub mod live;\n",
            ),
            (
                "hub.rs",
                "use crate::rerun_log::Handle;\npub trait Consumer {}\n",
            ),
            (
                "rerun_log.rs",
                "use crate::hub::Consumer;\npub struct Handle;\n",
            ),
            ("live/mod.rs", "pub mod frames;\npub struct LoadError;\n"),
            ("live/frames.rs", "use super::LoadError;\n"),
        ]);
        let cycles = import_cycles(&dir).unwrap();
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert!(
            cycles[0].contains(&"hub".to_owned()) && cycles[0].contains(&"rerun_log".to_owned())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_of_other_crates_are_not_this_crates() {
        let refs = references("use rlrt_runtime::hub::Event;\nlet x = my_crate::a;\n", &[]);
        assert!(refs.is_empty(), "{refs:?}");
        let refs = references(
            "    use super::super::x::Y;\n",
            &["a".into(), "b".into(), "c".into()],
        );
        assert_eq!(
            refs,
            vec![vec!["a".to_owned(), "x".to_owned(), "Y".to_owned()]]
        );
    }
}
