//! The offline-RL path end to end with the real binary and the real MuJoCo reach task:
//! record a small noisy dataset, train behaviour cloning and IQL for a few hundred steps,
//! evaluate, load the checkpoint as the config's policy; plus the bad-input cases.

use crate::common;

use std::path::Path;
use std::process::Command;

use rlrt_runtime::recording::Dataset;

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn record(dir: &Path, episodes: usize, noise: f64) -> serde_json::Value {
    run_json(rlrt().args([
        "record",
        common::repo("hw-configs/reach-arm.toml").to_str().unwrap(),
        "--episodes",
        &episodes.to_string(),
        "--noise-std",
        &noise.to_string(),
        "--seed",
        "5",
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]))
}

/// Builds `config`'s policy, checks it acts as the checkpoint did (`action` for
/// `observation`) within 1e-5, runs it in the loop for 200 lockstep ticks without a fault,
/// and returns its name.
fn acts_like_the_checkpoint(config: &Path, observation: &[f64], action: &[f64]) -> String {
    let mut policy = rlrt_policies::build(&rlrt_runtime::config::load(config).unwrap()).unwrap();
    let mut got = vec![0.0; action.len()];
    policy.act(observation, &mut got).unwrap();
    for (a, b) in action.iter().zip(&got) {
        assert!((a - b).abs() <= 1e-5, "{action:?} vs {got:?}");
    }
    let run = run_json(rlrt().args([
        "run",
        "--sim",
        "--lockstep",
        "--ticks",
        "200",
        "--json",
        config.to_str().unwrap(),
    ]));
    assert_eq!(run["report"]["loop_stats"]["ticks"], 200, "{run}");
    assert_eq!(run["report"]["fault_ticks"], 0, "{run}");
    policy.name().to_owned()
}

#[test]
fn record_train_eval_and_run_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let outcome = record(&data, 6, 0.01);
    assert_eq!(outcome["episodes_in_dataset"], 6);

    // What was recorded is what the loop would have sent: inside the bounds and rate limits.
    let config = common::shipped_config("reach-arm.toml", &[]);
    let dataset = Dataset::open(&data).unwrap();
    assert_eq!(dataset.episodes.len(), 6);
    assert_eq!(dataset.info.observation_len, 12);
    assert!(dataset.config_text.contains("reach-arm"));
    for e in &dataset.episodes {
        assert_eq!(e.steps(), 300);
        assert!(*e.timeouts.last().unwrap() && !e.terminals.iter().any(|&t| t));
        for (t, a) in e.actions.chunks(3).enumerate() {
            for i in 0..3 {
                assert!(
                    a[i].abs() <= config.action.max[i] + 1e-12,
                    "step {t}: {a:?}"
                );
            }
            if t > 0 {
                let prev = &e.actions[(t - 1) * 3..t * 3];
                for i in 0..3 {
                    assert!(
                        (a[i] - prev[i]).abs() <= 0.005 + 1e-12,
                        "step {t}: rate limit"
                    );
                }
            }
        }
        // The recorded target position (features 9..12) stays where the reset put it.
        let first = &e.observations[9..12];
        let last = &e.observations[300 * 12 + 9..300 * 12 + 12];
        assert_eq!(first, last);
    }
    // Continuing the dataset numbers new episodes after the old ones.
    let again = record(&data, 1, 0.01);
    assert_eq!(again["episodes_in_dataset"], 7);

    // Behaviour cloning, few steps, small network: it must learn (the actor's loss falls)
    // and produce a checkpoint that evaluates.
    let ckpt = tmp.path().join("bc");
    let trained = run_json(rlrt().args([
        "train",
        "bc",
        "--data",
        data.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
        "--steps",
        "300",
        "--eval-every",
        "150",
        "--eval-episodes",
        "2",
        "--hidden",
        "64,64",
        "--batch-size",
        "64",
        "--deterministic",
        "--json",
    ]));
    let log = trained["log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    let initial = trained["initial_actor_mse"].as_f64().unwrap();
    let mse = |i: usize| log[i]["actor_mse"].as_f64().unwrap();
    assert!(mse(1) < mse(0) && mse(0) < initial, "{initial} {log:?}");
    for file in [
        "checkpoint.json",
        "actor.bin",
        "critic.bin",
        "config.toml",
        "train_log.json",
    ] {
        assert!(ckpt.join(file).exists(), "{file}");
    }

    // Resume refuses to start over silently, and continues when asked.
    let out = rlrt()
        .args([
            "train",
            "bc",
            "--data",
            data.to_str().unwrap(),
            "--out",
            ckpt.to_str().unwrap(),
        ])
        .args([
            "--steps",
            "350",
            "--hidden",
            "64,64",
            "--batch-size",
            "64",
            "--deterministic",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    let resumed = run_json(
        rlrt()
            .args([
                "train",
                "bc",
                "--data",
                data.to_str().unwrap(),
                "--out",
                ckpt.to_str().unwrap(),
            ])
            .args([
                "--steps",
                "350",
                "--eval-every",
                "0",
                "--eval-episodes",
                "1",
            ])
            .args([
                "--hidden",
                "64,64",
                "--batch-size",
                "64",
                "--deterministic",
                "--resume",
                "--json",
            ]),
    );
    assert_eq!(resumed["steps"], 350);
    assert_eq!(resumed["log"].as_array().unwrap().len(), 3);

    let eval = run_json(rlrt().args(["eval", ckpt.to_str().unwrap(), "--episodes", "2", "--json"]));
    assert_eq!(eval["step"], 350);
    assert_eq!(eval["evaluation"]["episodes"], 2);
    // The rate is a count of the 2 episodes, and the interval is Wilson's for that count.
    let e = &eval["evaluation"];
    let rate = e["success_rate"].as_f64().unwrap();
    let successes = (rate * 2.0).round() as usize;
    assert_eq!(rate, successes as f64 / 2.0, "{eval}");
    let (low, high) = rlrt_runtime::evaluation::wilson(successes, 2);
    assert_eq!(e["success_low"].as_f64().unwrap(), low, "{eval}");
    assert_eq!(e["success_high"].as_f64().unwrap(), high, "{eval}");
    // Evaluation is seeded: a second run of the same checkpoint reports the same.
    let again =
        run_json(rlrt().args(["eval", ckpt.to_str().unwrap(), "--episodes", "2", "--json"]));
    assert_eq!(again["evaluation"], eval["evaluation"]);

    // The checkpoint as the config's policy, through the real config validation.
    let config_path = tmp.path().join("reach-checkpoint.toml");
    let text = std::fs::read_to_string(common::repo("hw-configs/reach-arm.toml")).unwrap();
    let start = text.find("[policy]").unwrap();
    let end = text.find("[sim]").unwrap();
    let text = format!(
        "{}[policy]\nkind = \"checkpoint\"\ncheckpoint_path = \"bc\"\n\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&config_path, &text).unwrap();
    let config = rlrt_runtime::config::load(&config_path).unwrap();
    assert_eq!(
        config.policy.checkpoint_path.as_deref(),
        Some(ckpt.as_path())
    );
    let mut policy = rlrt_policies::build(&config).unwrap();
    assert_eq!((policy.input_len(), policy.output_len()), (12, 3));
    let mut action = [0.0; 3];
    policy
        .act(&dataset.episodes[0].observations[..12], &mut action)
        .unwrap();
    assert!(action.iter().all(|a| a.abs() <= 0.01 + 1e-12), "{action:?}");

    // The actor exported to ONNX, checked by ONNX Runtime against the checkpoint, then run
    // as the config's policy (policy.kind = "onnx") with the same actions.
    let onnx_file = tmp.path().join("bc.onnx");
    let export = run_json(rlrt().args([
        "export",
        "onnx",
        ckpt.to_str().unwrap(),
        "--out",
        onnx_file.to_str().unwrap(),
        "--json",
    ]));
    assert!(
        export["max_abs_difference"].as_f64().unwrap() <= 1e-5,
        "{export}"
    );
    let onnx_config = tmp.path().join("reach-onnx.toml");
    std::fs::write(
        &onnx_config,
        text.replace(
            "kind = \"checkpoint\"\ncheckpoint_path = \"bc\"",
            "kind = \"onnx\"\nmodel_path = \"bc.onnx\"",
        )
        .replace(
            "program_path = \"../rewards",
            &format!("program_path = \"{}", common::repo("rewards").display()),
        ),
    )
    .unwrap();
    let observation = &dataset.episodes[0].observations[..12];
    let name = acts_like_the_checkpoint(&onnx_config, observation, &action);
    assert_eq!(name, "onnx:bc.onnx");
    // The same actor traced to TorchScript, checked by libtorch against the checkpoint, then
    // run as the config's policy (policy.kind = "torchscript") with the same actions and in
    // the loop.
    #[cfg(feature = "tch")]
    {
        let pt_file = tmp.path().join("bc.pt");
        let export = run_json(rlrt().args([
            "export",
            "torchscript",
            ckpt.to_str().unwrap(),
            "--out",
            pt_file.to_str().unwrap(),
            "--json",
        ]));
        assert!(
            export["max_abs_difference"].as_f64().unwrap() <= 1e-5,
            "{export}"
        );
        assert!(
            export["check"].as_str().unwrap().contains("libtorch"),
            "{export}"
        );
        let pt_config = tmp.path().join("reach-torchscript.toml");
        std::fs::write(
            &pt_config,
            std::fs::read_to_string(&onnx_config).unwrap().replace(
                "kind = \"onnx\"\nmodel_path = \"bc.onnx\"",
                "kind = \"torchscript\"\nmodel_path = \"bc.pt\"",
            ),
        )
        .unwrap();
        let name = acts_like_the_checkpoint(&pt_config, observation, &action);
        assert_eq!(name, "torchscript:bc.pt");
        // An ONNX file given as TorchScript is refused before the loop starts, naming it.
        let wrong = tmp.path().join("reach-wrong-format.toml");
        std::fs::write(
            &wrong,
            std::fs::read_to_string(&pt_config)
                .unwrap()
                .replace("model_path = \"bc.pt\"", "model_path = \"bc.onnx\""),
        )
        .unwrap();
        let out = rlrt()
            .args(["run", "--sim", "--lockstep", "--ticks", "10"])
            .arg(&wrong)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("bc.onnx") && stderr.contains("not a TorchScript module"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // kind = "onnx" without a model, or a model key on another kind: located config errors.
    let no_model = text.replace(
        "kind = \"checkpoint\"\ncheckpoint_path = \"bc\"",
        "kind = \"onnx\"",
    );
    let e = rlrt_runtime::config::parse(&no_model, &onnx_config)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("policy.model_path"), "{e}");
    let e = rlrt_runtime::config::parse(
        &no_model.replace("kind = \"onnx\"", "kind = \"torchscript\""),
        &onnx_config,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("policy.model_path") && e.contains("TorchScript file"),
        "{e}"
    );
    let stray = text.replace(
        "checkpoint_path = \"bc\"",
        "checkpoint_path = \"bc\"\nmodel_path = \"bc.onnx\"",
    );
    let e = rlrt_runtime::config::parse(&stray, &onnx_config)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("policy.model_path"), "{e}");

    // A config whose observation differs is refused at load, naming both sides.
    let wrong = text.replace(
        "state = [\"joint_positions\", \"joint_velocities\", \"ee_position\", \"target_position\"]",
        "state = [\"joint_positions\", \"ee_position\", \"joint_velocities\", \"target_position\"]",
    );
    std::fs::write(&config_path, wrong).unwrap();
    let config = rlrt_runtime::config::load(&config_path).unwrap();
    let err = rlrt_policies::build(&config).err().unwrap().to_string();
    assert!(err.contains("trained on observation.state"), "{err}");

    // A truncated actor record is a clear error, not a panic.
    let bytes = std::fs::read(ckpt.join("actor.bin")).unwrap();
    std::fs::write(ckpt.join("actor.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let out = rlrt()
        .args(["eval", ckpt.to_str().unwrap(), "--episodes", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("actor.bin") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn iql_learns_from_a_small_reach_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    record(&data, 4, 0.01);
    let ckpt = tmp.path().join("iql");
    let trained = run_json(rlrt().args([
        "train",
        "iql",
        "--data",
        data.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
        "--steps",
        "400",
        "--eval-every",
        "200",
        "--eval-episodes",
        "1",
        "--hidden",
        "64,64",
        "--batch-size",
        "64",
        "--json",
    ]));
    let log = trained["log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    // The advantage-weighted actor moves onto the dataset's actions (not onto all of them
    // equally: its error need not fall monotonically), and every loss stays finite. (Q's
    // correlation with return is checked in policies/src/iql.rs.)
    let initial = trained["initial_actor_mse"].as_f64().unwrap();
    let mse = |i: usize| log[i]["actor_mse"].as_f64().unwrap();
    assert!(mse(1) < 0.8 * initial, "{initial} {log:?}");
    for r in log {
        for k in ["value_loss", "q_loss", "actor_loss"] {
            assert!(r[k].as_f64().unwrap().is_finite(), "{k}: {r:?}");
        }
    }
}

#[test]
fn corrupt_datasets_are_refused_with_file_episode_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    record(&data, 2, 0.0);
    let file = data.join("episode-000001.rlep");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 100]).unwrap();
    let out = rlrt()
        .args(["train", "iql", "--data", data.to_str().unwrap(), "--out"])
        .arg(tmp.path().join("ck"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("episode-000001.rlep (episode 1), field `length`"),
        "{stderr}"
    );
}

#[test]
fn bench_policy_prints_one_json_object_and_both_paths_agree() {
    let report = run_json(rlrt().args(["bench", "policy", "--calls", "300", "--json"]));
    assert_eq!(report["bench"], "policy");
    assert_eq!(report["layers"], serde_json::json!([17, 256, 256, 6]));
    assert!(report["metrics"]["batch1_act"]["p99"].as_f64().unwrap() > 0.0);
    assert!(
        report["peers"]["burn_flex"]["forward"]["p50"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The batch-1 path computes what burn computes, and what ONNX Runtime computes on the
    // exported actor (from .deps/python's onnxruntime wheel, in process and from Python).
    let differences = &report["max_abs_difference_from_rlrt"];
    let mut peers = vec!["burn_flex", "onnxruntime", "onnxruntime_python"];
    // And libtorch on the actor traced to TorchScript.
    if cfg!(feature = "tch") {
        peers.push("libtorch");
    }
    for peer in peers {
        assert!(
            differences[peer].as_f64().unwrap() < 1e-5,
            "{peer}: {report}"
        );
        if peer != "burn_flex" {
            assert!(report["peers"][peer]["act"]["p50"].as_f64().unwrap() > 0.0);
        }
    }
}

#[test]
fn bench_iql_times_both_backends_and_they_compute_the_same_update() {
    let report = run_json(rlrt().args([
        "bench",
        "iql",
        "--steps",
        "20",
        "--batch",
        "64",
        "--readback-every",
        "5",
        "--threads",
        "2",
        "--no-peer",
        "--json",
    ]));
    assert_eq!(report["bench"], "iql");
    // One sample per block of five updates ending with the losses read back, at one thread
    // and at two (the headline), each through train's own update loop.
    assert_eq!(report["metrics"]["update_step"]["count"], 4);
    assert_eq!(report["metrics"]["update_step_rlrt_1thread"]["count"], 4);
    assert_eq!(report["readback_every"], 5);
    assert!(report["rlrt_steps_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["rlrt_1thread_steps_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["rlrt_2thread_steps_per_s"].as_f64().unwrap() > 0.0);
    // The same seed, data and first minibatch on Flex and NdArray: the first update's losses
    // agree to float rounding.
    let losses = &report["first_update_losses"];
    for key in ["value", "q", "actor", "advantage"] {
        let (a, b) = (
            losses["rlrt"][key].as_f64().unwrap(),
            losses["burn_ndarray"][key].as_f64().unwrap(),
        );
        assert!(
            a.is_finite() && (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
            "{key}: {a} vs {b}"
        );
    }
    assert!(report["peer"].as_str().unwrap().starts_with("skipped"));
}

/// Without the `cuda` feature, every `--device cuda` says how to get CUDA instead of failing
/// somewhere inside burn; half precision off the GPU is refused with the reason.
#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    for args in [
        &[
            "bench",
            "iql",
            "--steps",
            "10",
            "--no-peer",
            "--device",
            "cuda",
        ][..],
        &["bench", "clip", "--no-peer", "--device", "cuda:1"][..],
        &[
            "train",
            "iql",
            "--data",
            "no-such-data",
            "--out",
            "x",
            "--device",
            "cuda",
        ][..],
    ] {
        let out = rlrt().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        // Before anything else is read (the dataset here does not exist).
        assert!(
            stderr.contains("built without CUDA") && stderr.contains("--features cuda"),
            "{args:?}: {stderr}"
        );
    }
    let out = rlrt()
        .args(["bench", "clip", "--no-peer", "--precision", "f16"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("f16 needs --device cuda"),
        "{stderr}"
    );
    let out = rlrt()
        .args(["bench", "iql", "--device", "gpu"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("expected cpu, cuda or cuda:N"),
        "{stderr}"
    );
}

/// `rlrt export lerobot` writes what LeRobot's v3.0 loader reads: the checker loads it with
/// Hugging Face `datasets` and pandas as LeRobot does (tests/python/lerobot_check.py), and
/// every value must be the recorded one (as f32); every step's image is the newest recorded
/// camera frame at or before its observation, pixel for pixel.
#[test]
fn lerobot_export_loads_as_the_recorded_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_json(rlrt().args([
        "record",
        common::repo("hw-configs/reach-arm.toml").to_str().unwrap(),
        "--episodes",
        "3",
        "--noise-std",
        "0.02",
        "--seed",
        "5",
        "--frames",
        "--out",
        data.to_str().unwrap(),
        "--json",
    ]));
    let out = dir.path().join("lerobot");
    let outcome = run_json(rlrt().args([
        "export",
        "lerobot",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--task",
        "move the fingertip to the target",
        "--json",
    ]));
    assert_eq!(outcome["episodes"], 3);
    assert_eq!(outcome["fps"], 100);
    assert_eq!(outcome["cameras"], serde_json::json!(["front"]));

    // What each step's image must be: the newest frame rendered at or before observation t.
    let dataset = Dataset::open(&data).unwrap();
    let mut expected = Vec::new();
    for (e, episode) in dataset.episodes.iter().enumerate() {
        let track = dataset.frames(e).unwrap().remove(0);
        for t in 0..episode.steps() {
            let k = track.rows.iter().rposition(|r| *r as usize <= t).unwrap();
            expected.extend_from_slice(track.frame(k));
        }
    }
    let expected_file = dir.path().join("front.raw");
    std::fs::write(&expected_file, &expected).unwrap();

    let deps = common::repo(".deps/python");
    let check = std::process::Command::new("python3")
        .arg(common::repo("tests/python/lerobot_check.py"))
        .arg(&out)
        .arg("--images")
        .arg(format!(
            "observation.images.front={}",
            expected_file.display()
        ))
        .env("PYTHONPATH", &deps)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HOME", dir.path().join("hf"))
        .output()
        .expect("python3 runs (cargo xtask setup installs datasets and pandas into .deps/python)");
    assert!(
        check.status.success(),
        "lerobot_check.py: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(read["task"], "move the fingertip to the target");
    assert_eq!(
        read["images"]["observation.images.front"],
        serde_json::json!([expected.len() / (84 * 84 * 3), 84, 84, 3])
    );

    let (o, a) = (dataset.info.observation_len, dataset.info.action_len);
    let (mut row, mut lengths) = (0usize, Vec::new());
    for episode in &dataset.episodes {
        let steps = episode.steps();
        lengths.push(steps);
        for t in 0..steps {
            // Compared as f32: serde_json may parse the last digit of an f64 one ulp off.
            let got = |key: &str, i: usize| read[key][row][i].as_f64().unwrap() as f32;
            for i in 0..o {
                assert_eq!(
                    got("observation_state", i),
                    episode.observations[t * o + i] as f32
                );
            }
            for i in 0..a {
                assert_eq!(got("action", i), episode.actions[t * a + i] as f32);
            }
            assert_eq!(
                read["reward"][row].as_f64().unwrap() as f32,
                episode.rewards[t] as f32
            );
            let last = t + 1 == steps;
            assert_eq!(read["done"][row].as_bool().unwrap(), last);
            assert_eq!(
                read["success"][row].as_bool().unwrap(),
                last && episode.success
            );
            row += 1;
        }
    }
    assert_eq!(read["frames"].as_u64().unwrap() as usize, row);
    assert_eq!(read["lengths"], serde_json::json!(lengths));

    // An existing export is never overwritten.
    let again = rlrt()
        .args([
            "export",
            "lerobot",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a LeRobot dataset"));
}
