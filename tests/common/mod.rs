//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rlrt_runtime::telemetry::TickRecord;
use rlrt_runtime::RobotConfig;

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A shipped config's text with its relative reward program paths made absolute, so the
/// text can be written to a config file anywhere.
pub fn shipped_text(name: &str) -> String {
    let hw = repo("hw-configs");
    std::fs::read_to_string(hw.join(name)).unwrap().replace(
        "program_path = \"../",
        &format!("program_path = \"{}/../", hw.display()),
    )
}

/// A shipped config with some `key = value` lines replaced (exact text match) and extra
/// lines appended to given tables, parsed through the real validation.
pub fn shipped_config(name: &str, replace: &[(&str, &str)]) -> RobotConfig {
    let path = repo(&format!("hw-configs/{name}"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{name} lacks {from:?}");
        text = text.replacen(from, to, 1);
    }
    rlrt_runtime::config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

/// Checks that every published command is finite, inside the action bounds and joint limits,
/// and within `max_delta_per_tick` of the previous published command. Two documented
/// exceptions to the rate limit: the position-limit guard of velocity mode (position limits
/// win) and the `zero_velocity` fault action (a stop). Returns the number of published
/// commands checked.
pub fn assert_commands_safe(config: &RobotConfig, records: &[TickRecord]) -> usize {
    let action = &config.action;
    let mut previous: Option<Vec<f64>> = None;
    let mut checked = 0;
    for r in records.iter().filter(|r| r.published) {
        let cmd = r.command();
        for (i, v) in cmd.iter().enumerate() {
            assert!(v.is_finite(), "tick {}: command[{i}] = {v}", r.tick);
            assert!(
                *v >= action.min[i] && *v <= action.max[i],
                "tick {}: command[{i}] = {v} outside [{}, {}]",
                r.tick,
                action.min[i],
                action.max[i]
            );
            if action.mode == rlrt_runtime::config::ActionMode::JointPosition {
                let j = &config.joints[i];
                assert!(v >= &j.position_min_rad && v <= &j.position_max_rad);
            }
            let guard = r.interventions & rlrt_runtime::Cause::JointPositionLimit.bit() != 0;
            let stop = r.fault.is_some()
                && config.safety.fault_action == rlrt_runtime::config::FaultAction::ZeroVelocity;
            if let (Some(prev), false, false) = (&previous, guard, stop) {
                let step = (v - prev[i]).abs();
                assert!(
                    step <= action.max_delta_per_tick[i] * (1.0 + 1e-9) + 1e-12,
                    "tick {}: command[{i}] jumped by {step} > {}",
                    r.tick,
                    action.max_delta_per_tick[i]
                );
            }
        }
        previous = Some(cmd.to_vec());
        checked += 1;
    }
    checked
}

/// Reads an `.rrd` with `tests/python/read_rrd.py` (rerun-sdk from `.deps/python`); with
/// `pixels`, image bytes too.
pub fn read_rrd(path: &Path, pixels: bool) -> serde_json::Value {
    let deps = repo(".deps/python");
    let out = std::process::Command::new("python3")
        .arg(repo("tests/python/read_rrd.py"))
        .arg(path)
        .args(pixels.then_some("--pixels"))
        .env(
            "PYTHONPATH",
            format!("{}:{}", deps.display(), deps.join("rerun_sdk").display()),
        )
        .env("RERUN_ANALYTICS", "0")
        .output()
        .expect("python3 runs (cargo xtask setup installs rerun-sdk into .deps/python)");
    assert!(
        out.status.success(),
        "read_rrd.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `python3` with ROS 2 Jazzy's Python packages (`cargo xtask setup` installs them into
/// `.deps/ros` as a prefix) and `.deps/python` (eclipse-zenoh) on its paths.
pub fn ros_python() -> std::process::Command {
    let prefix = repo(".deps/ros");
    let lib = prefix.join("lib");
    let site = std::fs::read_dir(&lib)
        .ok()
        .and_then(|dirs| {
            dirs.flatten().map(|d| d.path()).find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
            })
        })
        .map(|p| p.join("site-packages"))
        .unwrap_or_else(|| panic!("no {}/python3.*: run `cargo xtask setup`", lib.display()));
    // The wheels' own shared libraries: <prefix>/lib and the vendored site-packages/ros_*.libs.
    let mut libs = vec![lib.clone()];
    if let Ok(dirs) = std::fs::read_dir(&site) {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if name.starts_with("ros_") && name.ends_with(".libs") {
                libs.push(d.path());
            }
        }
    }
    let join = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut cmd = std::process::Command::new("python3");
    cmd.env("PYTHONPATH", join(&[site, repo(".deps/python")]))
        .env("LD_LIBRARY_PATH", join(&libs))
        .env("AMENT_PREFIX_PATH", &prefix)
        .env("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp");
    cmd
}
