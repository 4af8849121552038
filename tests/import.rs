//! `rlrt import` on Minari and D4RL HDF5 files written by h5py (from `.deps/python`, installed
//! by `cargo xtask setup`) in those projects' layouts, from episodes rlrt recorded: the
//! imported dataset must hold the same episodes, value for value.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use rlrt_runtime::recording::{Dataset, Episode};
use serde_json::{json, Value};

fn rlrt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
        .arg("-q")
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rows(values: &[f64], width: usize) -> Vec<Vec<f64>> {
    values.chunks(width).map(<[f64]>::to_vec).collect()
}

/// `nan_action`: the first action value of the first episode becomes NaN.
#[allow(clippy::too_many_arguments)]
fn write_hdf5(
    path: &Path,
    layout: &str,
    episodes: &[Episode],
    o: usize,
    a: usize,
    next: bool,
    action_dtype: &str,
    nan_action: bool,
) {
    let spec = json!({
        "path": path,
        "layout": layout,
        "next_observations": next,
        "action_dtype": action_dtype,
        "nan_action": nan_action,
        "episodes": episodes.iter().map(|e| json!({
            "seed": e.seed,
            "success": e.success,
            "observations": rows(&e.observations, o),
            "actions": rows(&e.actions, a),
            "rewards": e.rewards,
            "terminals": e.terminals,
            "timeouts": e.timeouts,
        })).collect::<Vec<_>>(),
    });
    let deps = common::repo(".deps/python");
    let mut child = Command::new("python3")
        .arg(common::repo("tests/python/write_hdf5.py"))
        .env("PYTHONPATH", &deps)
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 runs (cargo xtask setup installs h5py into .deps/python)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "write_hdf5.py failed");
}

#[test]
fn minari_and_d4rl_files_import_as_the_episodes_they_were_made_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("arm.toml");
    std::fs::write(&config, common::shipped_text("reach-arm.toml")).unwrap();
    let c = config.to_str().unwrap();
    let recorded = dir.path().join("recorded");
    ok(rlrt(&[
        "record",
        c,
        "--episodes",
        "3",
        "--noise-std",
        "0.01",
        "--out",
        recorded.to_str().unwrap(),
        "--json",
    ]));
    let original = Dataset::open(&recorded).unwrap();
    let (o, a) = (original.info.observation_len, original.info.action_len);
    let episodes = &original.episodes;

    // Minari, actions stored as float32 as Gymnasium's Box spaces usually are.
    let minari = dir.path().join("minari");
    std::fs::create_dir_all(minari.join("data")).unwrap();
    write_hdf5(
        &minari.join("data/main_data.hdf5"),
        "minari",
        episodes,
        o,
        a,
        true,
        "float32",
        false,
    );
    let out = dir.path().join("from-minari");
    let report = ok(rlrt(&[
        "import",
        minari.to_str().unwrap(),
        "--config",
        c,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(report["layout"], "minari");
    assert_eq!(report["episodes"], 3);
    let imported = Dataset::open(&out).unwrap();
    for (got, want) in imported.episodes.iter().zip(episodes) {
        assert_eq!(got.observations, want.observations);
        let f32_actions: Vec<f64> = want.actions.iter().map(|v| f64::from(*v as f32)).collect();
        assert_eq!(got.actions, f32_actions);
        assert_eq!(got.rewards, want.rewards);
        assert_eq!(got.terminals, want.terminals);
        assert_eq!(got.timeouts, want.timeouts);
        assert_eq!((got.seed, got.success), (want.seed, want.success));
    }
    assert_eq!(
        imported.info.observation_fields,
        original.info.observation_fields
    );
    assert_eq!(imported.config_text, original.config_text);

    // D4RL with next_observations: exact (rewards are float32 there, as in D4RL files).
    let d4rl = dir.path().join("d4rl.hdf5");
    write_hdf5(&d4rl, "d4rl", episodes, o, a, true, "float64", false);
    let out = dir.path().join("from-d4rl");
    let report = ok(rlrt(&[
        "import",
        d4rl.to_str().unwrap(),
        "--config",
        c,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        (
            report["layout"].as_str(),
            report["dropped_transitions"].as_u64()
        ),
        (Some("d4rl"), Some(0))
    );
    let imported = Dataset::open(&out).unwrap();
    assert_eq!(imported.episodes.len(), 3);
    for (got, want) in imported.episodes.iter().zip(episodes) {
        assert_eq!(got.observations, want.observations);
        assert_eq!(got.actions, want.actions);
        let f32_rewards: Vec<f64> = want.rewards.iter().map(|v| f64::from(*v as f32)).collect();
        assert_eq!(got.rewards, f32_rewards);
        assert_eq!(got.timeouts, want.timeouts);
    }

    // D4RL without next_observations: each episode loses its last step, and the step before
    // it becomes the time limit.
    let bare = dir.path().join("bare.hdf5");
    write_hdf5(&bare, "d4rl", episodes, o, a, false, "float64", false);
    let out = dir.path().join("from-bare");
    let report = ok(rlrt(&[
        "import",
        bare.to_str().unwrap(),
        "--config",
        c,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(report["dropped_transitions"], 3);
    let imported = Dataset::open(&out).unwrap();
    for (got, want) in imported.episodes.iter().zip(episodes) {
        let t = want.steps() - 1;
        assert_eq!(got.steps(), t);
        assert_eq!(got.observations, want.observations[..(t + 1) * o]);
        assert!(*got.timeouts.last().unwrap());
    }
}

#[test]
fn files_that_do_not_fit_are_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("arm.toml");
    std::fs::write(&config, common::shipped_text("reach-arm.toml")).unwrap();
    let c = config.to_str().unwrap();
    let parsed = rlrt_runtime::config::load(&config).unwrap();
    let (o, a) = (parsed.observation.feature_len, parsed.action.len());
    let mut e = Episode::start(1, &vec![0.0; o + 1]);
    e.push(&vec![0.0; a], 0.0, false, true, &vec![0.0; o + 1]);
    let wide = dir.path().join("wide.hdf5");
    write_hdf5(&wide, "minari", &[e], o + 1, a, true, "float64", false);
    let out = rlrt(&[
        "import",
        wide.to_str().unwrap(),
        "--config",
        c,
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("wide.hdf5: episode_0/observations: shape [2, "),
        "{err}"
    );
    assert!(err.contains("observation.state length"), "{err}");

    let mut nan = Episode::start(1, &vec![0.0; o]);
    nan.push(&vec![0.0; a], 0.0, false, true, &vec![0.0; o]);
    let bad = dir.path().join("nan.hdf5");
    write_hdf5(&bad, "minari", &[nan], o, a, true, "float64", true);
    let out = rlrt(&[
        "import",
        bad.to_str().unwrap(),
        "--config",
        c,
        "--out",
        dir.path().join("y").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("episode_0/actions: NaN at step 0"), "{err}");

    let garbage = dir.path().join("garbage.hdf5");
    std::fs::write(&garbage, b"not hdf5").unwrap();
    let out = rlrt(&[
        "import",
        garbage.to_str().unwrap(),
        "--config",
        c,
        "--out",
        dir.path().join("z").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("garbage.hdf5: cannot open as HDF5"), "{err}");
}

/// The Minari workflow end to end: episodes collected by Gymnasium's own Hopper-v5 (random
/// actions, as Minari's random datasets are made) in Minari's layout, imported with
/// `hw-configs/hopper.toml`, trained on with IQL and evaluated in rlrt's Hopper task.
#[test]
fn gymnasium_hopper_episodes_import_train_and_evaluate_in_rlrt() {
    let dir = tempfile::tempdir().unwrap();
    let minari = dir.path().join("hopper-random");
    let out = Command::new("python3")
        .arg(common::repo("tests/python/gymnasium_minari.py"))
        .args(["Hopper-v5", minari.to_str().unwrap(), "12", "5", "0.5"])
        .env("PYTHONPATH", common::repo(".deps/python"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gymnasium_minari.py (gymnasium, mujoco and h5py from cargo xtask setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let collected: Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = common::repo("hw-configs/hopper.toml");
    let data = dir.path().join("data");
    ok(rlrt(&[
        "import",
        minari.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
        "--json",
    ]));
    // Gymnasium's rewards and terminations arrive as they were: returns and lengths match,
    // and each random episode ends by falling over (terminal), not by the time limit.
    let dataset = Dataset::open(&data).unwrap();
    assert_eq!(dataset.info.observation_len, 11);
    assert_eq!(dataset.episodes.len(), 12);
    for (i, e) in dataset.episodes.iter().enumerate() {
        let r = collected["returns"][i].as_f64().unwrap();
        assert!(
            (e.total_reward() - r).abs() < 1e-9,
            "episode {i}: {} vs {r}",
            e.total_reward()
        );
        assert_eq!(e.steps() as u64, collected["lengths"][i].as_u64().unwrap());
        assert!(
            e.terminals[e.steps() - 1] && e.steps() < 1000,
            "episode {i}"
        );
    }
    let checkpoint = dir.path().join("ck");
    let trained = ok(rlrt(&[
        "train",
        "iql",
        "--data",
        data.to_str().unwrap(),
        "--out",
        checkpoint.to_str().unwrap(),
        "--steps",
        "300",
        "--eval-every",
        "0",
        "--eval-episodes",
        "2",
        "--json",
    ]));
    assert_eq!(trained["steps"], 300);
    let evaluate = || {
        ok(rlrt(&[
            "eval",
            checkpoint.to_str().unwrap(),
            "--episodes",
            "4",
            "--json",
        ]))
    };
    let eval = evaluate();
    let e = &eval["evaluation"];
    assert_eq!(e["success_test"], false, "{eval}");
    assert_eq!(e["episodes"], 4);
    assert!(e["mean_return"].as_f64().unwrap().is_finite(), "{eval}");
    // The interval is around the mean, and evaluation is seeded: a second run agrees.
    let (low, high) = (
        e["return_low"].as_f64().unwrap(),
        e["return_high"].as_f64().unwrap(),
    );
    let mean = e["mean_return"].as_f64().unwrap();
    assert!(low <= mean && mean <= high, "{eval}");
    assert_eq!(evaluate()["evaluation"], eval["evaluation"]);
    // Every evaluation episode ends by falling over or at Gymnasium's 1000 steps.
    let steps = e["mean_steps"].as_f64().unwrap();
    assert!((1.0..=1000.0).contains(&steps), "{eval}");
}
