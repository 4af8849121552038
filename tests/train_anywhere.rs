//! Offline RL on data with no simulator behind it: a Gymnasium task rlrt does not simulate
//! (Reacher-v5), collected by Gymnasium itself into Minari's layout, imported without a
//! hand-written hw-config, trained on with held-out diagnostics, evaluated offline, exported
//! to ONNX and run back in Gymnasium by an evaluator that knows nothing of rlrt.

use crate::common;

use std::path::Path;
use std::process::Command;

use rlrt_runtime::recording::Dataset;
use serde_json::Value;

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

fn python(script: &str, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(common::repo(script))
        .args(args)
        .env("PYTHONPATH", common::repo(".deps/python"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} (gymnasium, mujoco, h5py and onnxruntime from cargo xtask setup): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn mean(v: &Value) -> f64 {
    let a = v.as_array().unwrap();
    a.iter().map(|x| x.as_f64().unwrap()).sum::<f64>() / a.len() as f64
}

/// Reacher-v5 episodes: even ones from a noisy PD controller, odd ones random.
fn collect(dir: &Path, episodes: usize) -> Value {
    python(
        "tests/python/gymnasium_minari.py",
        &[
            "Reacher-v5",
            dir.to_str().unwrap(),
            &episodes.to_string(),
            "1",
            "0.5",
            "reacher",
        ],
    )
}

#[test]
fn reacher_trains_without_a_sim_and_its_onnx_export_acts_in_gymnasium() {
    let tmp = tempfile::tempdir().unwrap();
    let minari = tmp.path().join("reacher-mixed");
    let collected = collect(&minari, 60);
    let data = tmp.path().join("data");

    // No --config: the hw-config is written from Minari's metadata.json.
    let imported = ok(rlrt(&[
        "import",
        minari.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
        "--json",
    ]));
    assert!(
        imported["config"]
            .as_str()
            .unwrap()
            .starts_with("derived from"),
        "{imported}"
    );
    let dataset = Dataset::open(&data).unwrap();
    assert_eq!(
        (dataset.info.observation_len, dataset.info.action_len),
        (10, 2)
    );
    assert_eq!(dataset.episodes.len(), 60);
    let config = rlrt_runtime::config::parse(&dataset.config_text, &data.join("config.toml"))
        .expect("the derived config is valid");
    assert!(config.sim.is_none());
    assert_eq!(config.action.min, vec![-1.0, -1.0]);
    assert_eq!(config.action.max, vec![1.0, 1.0]);
    let behaviour_return = mean(&collected["returns"]);

    // Training refused nothing: no sim, so offline diagnostics on held-out episodes.
    let ck = tmp.path().join("ck");
    let plots = tmp.path().join("plots.rrd");
    let trained = ok(rlrt(&[
        "train",
        "iql",
        "--data",
        data.to_str().unwrap(),
        "--out",
        ck.to_str().unwrap(),
        "--steps",
        "3000",
        "--eval-every",
        "1000",
        "--rerun",
        &format!("save={}", plots.display()),
        "--json",
    ]));
    assert_eq!(trained["steps"], 3000);
    assert_eq!(trained["evaluation"], "offline", "{trained}");
    assert_eq!(trained["diagnostics_on"], "held_out");
    // 5% of 60 episodes, spread over the dataset.
    let held: Vec<u64> = trained["held_out_episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(held, vec![10, 30, 50]);
    assert_eq!(trained["training_transitions"], 57 * 50);
    assert!(trained["final_eval"].is_null());
    let h = &trained["hyperparameters"];
    assert_eq!(h["preset"], "locomotion");
    assert_eq!(h["expectile"], 0.7);
    assert_eq!(h["temperature"], 3.0);
    assert!(trained["steps_per_s"].as_f64().unwrap() > 0.0);
    let log = trained["log"].as_array().unwrap();
    assert_eq!(log.len(), 3);
    for record in log {
        let d = &record["diagnostics"];
        assert_eq!(d["transitions"], 150, "{record}");
        assert!(record["success_rate"].is_null(), "no rollouts: {record}");
        for key in [
            "td_error_rms",
            "v_mean",
            "v_std",
            "q_mean",
            "q_std",
            "expectile_loss",
            "advantage_mean",
            "weight_mean",
            "clipped_share",
        ] {
            assert!(
                d["critic"][key].as_f64().unwrap().is_finite(),
                "{key}: {record}"
            );
        }
        let clipped = d["critic"]["clipped_share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&clipped), "{record}");
    }
    // Learning happened on data it never trained on: the held-out actions became likelier
    // than under the initial actor, and the critic's TD error on them fell. (The actor's mean
    // need not come closer to those actions: they carry the behaviour's noise, which IQL is
    // meant not to copy.)
    let (first, last) = (
        &trained["initial_diagnostics"],
        &trained["final_diagnostics"],
    );
    let get = |d: &Value, key: &str| d[key].as_f64().unwrap();
    assert!(
        get(last, "log_likelihood") > get(first, "log_likelihood") + 0.2,
        "held-out log-likelihood {first} -> {last}"
    );
    assert!(
        last["critic"]["td_error_rms"].as_f64().unwrap()
            < 0.5 * first["critic"]["td_error_rms"].as_f64().unwrap(),
        "{first} -> {last}"
    );

    // The checkpoint states what it was trained with.
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(meta["config"]["preset"], "locomotion");
    assert_eq!(meta["config"]["expectile"], 0.7);

    // rlrt eval without a sim: the same held-out episodes, the same numbers, said plainly.
    let eval = ok(rlrt(&["eval", ck.to_str().unwrap(), "--json"]));
    assert!(eval["evaluation"].is_null(), "{eval}");
    let offline = &eval["offline"];
    assert!(
        offline["kind"].as_str().unwrap().contains("not a rollout"),
        "{eval}"
    );
    assert_eq!(offline["episodes"], trained["held_out_episodes"]);
    let (a, b) = (&offline["diagnostics"], &trained["final_diagnostics"]);
    for key in ["action_mse", "action_mae", "log_likelihood"] {
        let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{key}: {x} vs {y}");
    }
    let text = String::from_utf8(rlrt(&["eval", ck.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains("not a rollout"), "{text}");

    // The exported actor runs in Gymnasium with no rlrt: observations in, actions in the
    // action space's units out.
    let onnx = tmp.path().join("reacher.onnx");
    ok(rlrt(&[
        "export",
        "onnx",
        ck.to_str().unwrap(),
        "--out",
        onnx.to_str().unwrap(),
        "--json",
    ]));
    let policy = python(
        "tests/python/gym_eval_onnx.py",
        &["Reacher-v5", onnx.to_str().unwrap(), "10", "1000"],
    );
    let random = python(
        "tests/python/gym_eval_onnx.py",
        &["Reacher-v5", "random", "10", "1000"],
    );
    assert_eq!(policy["out_of_bounds"], 0, "{policy}");
    let (learned, uniform) = (mean(&policy["returns"]), mean(&random["returns"]));
    // Random episodes return about -43, the noisy controller about -32, the controller
    // without noise about -5: IQL must act better than the data it learned from.
    assert!(
        learned > behaviour_return + 5.0 && learned > uniform + 20.0,
        "policy {learned}, dataset {behaviour_return}, random {uniform}"
    );

    // The plots are on a `step` timeline in a recording rerun reads.
    let rrd = common::read_rrd(&plots, false);
    assert!(rrd["timelines"]
        .as_array()
        .unwrap()
        .contains(&Value::from("step")));
    for entity in [
        "/train/loss/q",
        "/train/loss/value",
        "/offline/td_error_rms",
        "/offline/log_likelihood",
        "/offline/clipped_share",
    ] {
        let s = &rrd["scalars"][entity];
        assert!(
            !s["values"].as_array().is_none_or(|v| v.is_empty()),
            "{entity}: {}",
            rrd["scalars"]
        );
    }
    assert_eq!(
        rrd["scalars"]["/offline/td_error_rms"]["ticks"],
        serde_json::json!([1000, 2000, 3000])
    );
}

#[test]
fn presets_and_flags_set_the_hyperparameters_and_bad_values_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let minari = tmp.path().join("reacher");
    collect(&minari, 4);
    let data = tmp.path().join("data");
    ok(rlrt(&[
        "import",
        minari.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
        "--json",
    ]));
    let train = |out: &str, extra: &[&str]| {
        let ck = tmp.path().join(out);
        let mut args = vec![
            "train",
            "iql",
            "--data",
            data.to_str().unwrap(),
            "--out",
            ck.to_str().unwrap(),
            "--steps",
            "10",
            "--batch-size",
            "16",
            "--hidden",
            "8",
            "--json",
        ];
        args.extend_from_slice(extra);
        rlrt(&args)
    };
    let navigation = ok(train("nav", &["--preset", "navigation"]));
    let h = &navigation["hyperparameters"];
    assert_eq!(
        (
            &h["preset"],
            &h["expectile"],
            &h["temperature"],
            &h["reward_scale"],
            &h["reward_shift"]
        ),
        (
            &Value::from("navigation"),
            &Value::from(0.9),
            &Value::from(10.0),
            &Value::from(1.0),
            &Value::from(-1.0)
        )
    );
    // A flag beside a preset overrides that one value; the checkpoint keeps both.
    let manipulation = ok(train(
        "manip",
        &["--preset", "manipulation", "--expectile", "0.8"],
    ));
    let h = &manipulation["hyperparameters"];
    assert_eq!(h["preset"], "manipulation");
    assert_eq!(h["expectile"], 0.8);
    assert_eq!(h["temperature"], 0.5);
    assert_eq!(h["reward_scale"], 1.0);
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("manip/checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["config"]["preset"], "manipulation");
    assert_eq!(meta["config"]["expectile"], 0.8);
    // Locomotion scales rewards to a return range of 1000 over the training episodes.
    let locomotion = ok(train("loco", &[]));
    let dataset = Dataset::open(&data).unwrap();
    let held: Vec<usize> = locomotion["held_out_episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(held.len(), 1, "at least one of 4 episodes is held out");
    let returns: Vec<f64> = (0..4)
        .filter(|i| !held.contains(i))
        .map(|i| dataset.episodes[i].total_reward())
        .collect();
    let range = returns.iter().cloned().fold(f64::MIN, f64::max)
        - returns.iter().cloned().fold(f64::MAX, f64::min);
    let scale = locomotion["hyperparameters"]["reward_scale"]
        .as_f64()
        .unwrap();
    assert!((scale - 1000.0 / range).abs() < 1e-9 * scale, "{scale}");

    for (extra, expected) in [
        (
            &["--preset", "swimming"][..],
            "expected locomotion, navigation or manipulation",
        ),
        (&["--expectile", "1.5"][..], "--expectile 1.5"),
        (&["--holdout", "1.0"][..], "--holdout 1"),
        (&["--temperature=-1"][..], "--temperature -1"),
    ] {
        let out = train("bad", extra);
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    let out = rlrt(&[
        "train",
        "bc",
        "--data",
        data.to_str().unwrap(),
        "--out",
        tmp.path().join("bc").to_str().unwrap(),
        "--preset",
        "navigation",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("behaviour cloning has no critic"));
}

#[test]
fn import_without_a_config_needs_the_datasets_own_description() {
    let tmp = tempfile::tempdir().unwrap();
    let minari = tmp.path().join("reacher");
    collect(&minari, 2);
    std::fs::remove_file(minari.join("data/metadata.json")).unwrap();
    let out = rlrt(&[
        "import",
        minari.to_str().unwrap(),
        "--out",
        tmp.path().join("data").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("main_data.hdf5") && err.contains("pass --config"),
        "{err}"
    );
    // An unbounded action space cannot scale an actor: refused, naming the key.
    collect(&tmp.path().join("second"), 2);
    let meta_path = tmp.path().join("second/data/metadata.json");
    let text = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(
        &meta_path,
        text.replace(r#"\"low\": [-1.0, -1.0]"#, r#"\"low\": [-Infinity, -1.0]"#),
    )
    .unwrap();
    let out = rlrt(&[
        "import",
        tmp.path().join("second").to_str().unwrap(),
        "--out",
        tmp.path().join("data2").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metadata.json") && err.contains("action_space bound 0"),
        "{err}"
    );
}
