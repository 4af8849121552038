//! `rlrt relabel`: a recorded reach dataset written again with rewards from a reward
//! program, checked step by step against the same reward computed here by hand, with frames
//! and everything else copied; training reads the result; bad programs and folders are
//! refused before anything is written. With a classifier or CLIP source of the config, every
//! recorded frame is scored and each step gets its newest frame's reward, checked against the
//! same models run here frame by frame.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use rlrt_rewards::clip::{ClipEngine, ClipGoal, Resize, Rgb8};
use rlrt_rewards::frame_model::OnnxClassifier;
use rlrt_runtime::compute::{ComputeDevice, Precision};
use rlrt_runtime::config::{CameraSpec, ImageEncoding};
use rlrt_runtime::recording::{Dataset, FrameTrack};

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

fn ok(out: Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn failure(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn relabel(data: &Path, program: &Path, out: &Path) -> Output {
    rlrt()
        .arg("relabel")
        .arg(data)
        .arg("--program")
        .arg(program)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .output()
        .unwrap()
}

fn record(config: &Path, data: &Path, episodes: usize, frames: bool) {
    let mut cmd = rlrt();
    cmd.arg("record")
        .arg(config)
        .args(["--episodes", &episodes.to_string(), "--noise-std", "0.02"])
        .args(["--seed", "3", "--out"])
        .arg(data)
        .arg("--json");
    if frames {
        cmd.arg("--frames");
    }
    ok(cmd.output().unwrap());
}

/// Distance to the target and the size of the action: terms a hand computation can check.
const PROGRAM: &str = "#{\n    distance: -distance(ee_position, target_position),\n    \
                       effort: -0.5 * norm(previous_action),\n}\n";

#[test]
fn every_step_gets_the_program_reward_of_the_state_it_led_to() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    record(&common::repo("hw-configs/reach-arm.toml"), &data, 4, false);
    let program = tmp.path().join("reach-distance.rhai");
    std::fs::write(&program, PROGRAM).unwrap();
    let out = tmp.path().join("relabelled");
    let outcome = ok(relabel(&data, &program, &out));

    let before = Dataset::open(&data).unwrap();
    let after = Dataset::open(&out).unwrap();
    assert_eq!(after.info.reward, "program reach-distance.rhai");
    assert_eq!(
        after.info.observation_fields,
        before.info.observation_fields
    );
    assert_eq!(after.config_text, before.config_text);
    assert_eq!(outcome["episodes"], 4);
    let steps: usize = before.episodes.iter().map(|e| e.steps()).sum();
    assert_eq!(outcome["steps"], steps);
    assert_eq!(
        outcome["recorded_reward"].as_str().unwrap(),
        before.info.reward
    );

    // reach-arm's observation.state: joint positions (3), joint velocities (3), ee_position
    // (3), target_position (3); actions are end-effector displacements (3).
    let (o, a) = (before.info.observation_len, before.info.action_len);
    assert_eq!((o, a), (12, 3));
    let mut worst = 0.0f64;
    let mut total = 0.0;
    for (old, new) in before.episodes.iter().zip(&after.episodes) {
        assert_eq!(new.observations, old.observations);
        assert_eq!(new.actions, old.actions);
        assert_eq!(new.terminals, old.terminals);
        assert_eq!(new.timeouts, old.timeouts);
        assert_eq!((new.seed, new.success), (old.seed, old.success));
        assert_ne!(new.rewards, old.rewards);
        for t in 0..old.steps() {
            let next = &old.observations[(t + 1) * o..(t + 2) * o];
            let action = &old.actions[t * a..(t + 1) * a];
            let d = (0..3)
                .map(|i| (next[6 + i] - next[9 + i]).powi(2))
                .sum::<f64>()
                .sqrt();
            let effort = action.iter().map(|v| v * v).sum::<f64>().sqrt();
            let want = -d - 0.5 * effort;
            worst = worst.max((new.rewards[t] - want).abs());
            total += want;
        }
    }
    assert!(
        worst < 1e-12,
        "largest difference from the hand computation {worst}"
    );
    let mean = outcome["mean_return"].as_f64().unwrap();
    assert!(
        (mean - total / 4.0).abs() < 1e-9,
        "{mean} vs {}",
        total / 4.0
    );
    let terms: Vec<&str> = outcome["terms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(terms, ["distance", "effort"]);

    // Training reads the relabelled rewards.
    let trained = ok(rlrt()
        .args(["train", "iql", "--data"])
        .arg(&out)
        .arg("--out")
        .arg(tmp.path().join("iql"))
        .args(["--steps", "60", "--eval-every", "0", "--eval-episodes", "1"])
        .args(["--hidden", "32,32", "--batch-size", "32", "--json"])
        .output()
        .unwrap());
    let trained_return = trained["dataset_mean_return"].as_f64().unwrap();
    assert!(
        (trained_return - mean).abs() < 1e-9,
        "{trained_return} vs {mean}"
    );
}

#[test]
fn camera_frames_are_copied_with_the_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("reach-target-camera.toml");
    std::fs::write(
        &config,
        common::shipped_text("reach-arm-target-camera.toml"),
    )
    .unwrap();
    record(&config, &data, 2, true);
    let out = tmp.path().join("relabelled");
    ok(relabel(
        &data,
        &common::repo("rewards/programs/reach.rhai"),
        &out,
    ));
    let before = Dataset::open(&data).unwrap();
    let after = Dataset::open(&out).unwrap();
    assert_eq!(after.info.cameras, before.info.cameras);
    assert!(!before.info.cameras.is_empty());
    for index in 0..2 {
        let (old, new) = (before.frames(index).unwrap(), after.frames(index).unwrap());
        assert!(!old[0].is_empty());
        assert_eq!(new, old);
    }
}

#[test]
fn broken_programs_and_occupied_folders_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    record(&common::repo("hw-configs/reach-arm.toml"), &data, 1, false);
    let out = tmp.path().join("out");

    // A program that does not compile, one that reads a name the robot does not have, and
    // one whose reward is not finite on recorded states.
    for (file, text, expect) in [
        (
            "syntax.rhai",
            "#{ reach: -distance(ee_position, }",
            "syntax.rhai",
        ),
        ("unknown.rhai", "#{ grip: -gripper_width }", "gripper_width"),
        (
            "infinite.rhai",
            "#{ blowup: 1.0 / (distance(ee_position, ee_position)) }",
            "infinite.rhai",
        ),
    ] {
        let path = tmp.path().join(file);
        std::fs::write(&path, text).unwrap();
        let e = failure(relabel(&data, &path, &out));
        assert!(e.contains(expect), "{file}: {e}");
        assert!(!out.exists(), "{file}: {} was created", out.display());
    }
    // A program or a config the user must fix ends with exit code 2, as in `rlrt check`: the
    // program's and the config's errors stay in the chain of causes.
    let broken = relabel(&data, &tmp.path().join("syntax.rhai"), &out);
    assert_eq!(broken.status.code(), Some(2), "{broken:?}");
    let config = tmp.path().join("broken.toml");
    std::fs::write(&config, "[robot]\nname = 3\n").unwrap();
    let broken = rlrt()
        .arg("relabel")
        .arg(&data)
        .arg("--program")
        .arg(tmp.path().join("unknown.rhai"))
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.toml"), "{stderr}");

    // The dataset itself, and a folder that already holds something.
    let program = tmp.path().join("ok.rhai");
    std::fs::write(&program, PROGRAM).unwrap();
    let e = failure(relabel(&data, &program, &data));
    assert!(e.contains("the dataset itself"), "{e}");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let e = failure(relabel(&data, &program, &out));
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}

fn relabel_source(data: &Path, config: &Path, reward: &str, out: &Path) -> Output {
    rlrt()
        .arg("relabel")
        .arg(data)
        .args(["--reward", reward, "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("--json")
        .output()
        .unwrap()
}

/// The target-camera reach config with `extra` (reward sources) appended.
fn target_camera_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("with-sources.toml");
    let text = common::shipped_text("reach-arm-target-camera.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

/// Step t's reward as `rlrt relabel` must place it: the score of the newest frame rendered
/// at or before observation row t + 1.
fn newest_frame_rewards(track: &FrameTrack, scores: &[f64], steps: usize) -> Vec<f64> {
    (0..steps)
        .map(|t| {
            let k = track
                .rows
                .iter()
                .rposition(|r| *r as usize <= t + 1)
                .unwrap_or(0);
            scores[k]
        })
        .collect()
}

#[test]
fn a_classifier_source_gives_each_step_its_newest_frames_sparse_reward() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let recording = target_camera_config(tmp.path(), "");
    record(&recording, &data, 2, true);
    let before = Dataset::open(&data).unwrap();

    // The fixture classifier (checked against PyTorch in tests/frame_rewards.rs) on every
    // frame, here; the threshold is the median probability, so both rewards occur.
    let model = common::repo("tests/fixtures/classifier/nhwc_u8.onnx");
    let spec = CameraSpec {
        name: "target".into(),
        width: 84,
        height: 84,
        rate_hz: 30.0,
        encoding: ImageEncoding::Rgb8,
    };
    let mut classifier = OnnxClassifier::load(&model, &spec, None).unwrap();
    let tracks: Vec<FrameTrack> = (0..2)
        .map(|i| before.frames(i).unwrap().remove(0))
        .collect();
    let probabilities: Vec<Vec<f64>> = tracks
        .iter()
        .map(|t| {
            (0..t.len())
                .map(|i| classifier.probability(t.frame(i)).unwrap())
                .collect()
        })
        .collect();
    let mut all: Vec<f64> = probabilities.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let threshold = all[all.len() / 2];
    assert!(all[0] < threshold, "the frames all score {threshold}");

    let config = target_camera_config(
        tmp.path(),
        &format!(
            "[[rewards]]\nname = \"success\"\nkind = \"classifier\"\nmodel_path = \"{}\"\n\
             camera = \"target\"\nthreshold = {threshold:?}\n",
            model.display()
        ),
    );
    let out = tmp.path().join("relabelled");
    let outcome = ok(relabel_source(&data, &config, "success", &out));
    assert_eq!(outcome["frames_scored"], all.len(), "{outcome}");
    assert_eq!(outcome["terms_over"], "frames");
    assert_eq!(outcome["terms"][0]["name"], "probability");
    let max = outcome["terms"][0]["max"].as_f64().unwrap();
    assert!((max - all[all.len() - 1]).abs() < 1e-12, "{outcome}");

    // Against the frames' ground-truth labels, counted here.
    let labels: Vec<bool> = tracks.iter().flat_map(|t| t.success.clone()).collect();
    let rewarded: Vec<bool> = probabilities
        .iter()
        .flatten()
        .map(|p| *p >= threshold)
        .collect();
    let both = rewarded
        .iter()
        .zip(&labels)
        .filter(|(r, l)| **r && **l)
        .count();
    let positives = labels.iter().filter(|l| **l).count();
    let agreement = &outcome["frame_labels"];
    assert_eq!(agreement["positives"], positives, "{outcome}");
    assert_eq!(
        agreement["negatives"],
        labels.len() - positives,
        "{outcome}"
    );
    let precision = both as f64 / rewarded.iter().filter(|r| **r).count() as f64;
    assert!(
        (agreement["precision"].as_f64().unwrap() - precision).abs() < 1e-12,
        "{outcome}"
    );
    if positives > 0 {
        let recall = both as f64 / positives as f64;
        assert!(
            (agreement["recall"].as_f64().unwrap() - recall).abs() < 1e-12,
            "{outcome}"
        );
    }

    let after = Dataset::open(&out).unwrap();
    assert!(
        after.info.reward.starts_with("classifier success"),
        "{}",
        after.info.reward
    );
    let mut seen = [false; 2];
    for (index, episode) in after.episodes.iter().enumerate() {
        let sparse: Vec<f64> = probabilities[index]
            .iter()
            .map(|p| if *p >= threshold { 1.0 } else { 0.0 })
            .collect();
        let expected = newest_frame_rewards(&tracks[index], &sparse, episode.steps());
        assert_eq!(episode.rewards, expected, "episode {index}");
        for r in &episode.rewards {
            seen[*r as usize] = true;
        }
        let old = &before.episodes[index];
        assert_eq!(episode.observations, old.observations);
        assert_eq!(episode.actions, old.actions);
        assert_eq!(after.frames(index).unwrap()[0], tracks[index]);
    }
    assert_eq!(seen, [true, true], "both rewards occur");

    // An ensemble of two kinds from one command: this frame source and a program. Each is
    // standardised, then averaged step by step.
    let program = tmp.path().join("near.rhai");
    std::fs::write(
        &program,
        "#{ distance: -distance(ee_position, target_position) }\n",
    )
    .unwrap();
    let alone = tmp.path().join("program-alone");
    ok(relabel(&data, &program, &alone));
    let mixed = tmp.path().join("mixed");
    let outcome = ok(rlrt()
        .arg("relabel")
        .arg(&data)
        .args(["--reward", "success", "--config"])
        .arg(&config)
        .arg("--program")
        .arg(&program)
        .args(["--ensemble", "mean", "--out"])
        .arg(&mixed)
        .arg("--json")
        .output()
        .unwrap());
    let members = outcome["ensemble"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{outcome}");
    // --program members come first, then --reward, then --model.
    assert_eq!(members[0]["reward"], "program near.rhai", "{outcome}");
    assert!(members[1]["frame_labels"].is_object(), "{outcome}");
    assert_eq!(outcome["frames_scored"], all.len(), "{outcome}");
    let (z_program, z_frames) = (
        standardised(&step_rewards(&alone)),
        standardised(&step_rewards(&out)),
    );
    for (t, got) in step_rewards(&mixed).iter().enumerate() {
        let want = (z_program[t] + z_frames[t]) / 2.0;
        assert!((got - want).abs() < 1e-9, "step {t}: {got} vs {want}");
    }
}

#[test]
fn a_clip_source_scores_every_frame_as_the_model_does_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let recording = target_camera_config(tmp.path(), "");
    record(&recording, &data, 2, true);
    let before = Dataset::open(&data).unwrap();

    let clip_dir = common::repo("rewards/tests/fixtures/clip");
    let config = target_camera_config(
        tmp.path(),
        &format!(
            "[[rewards]]\nname = \"touch\"\nkind = \"clip\"\nmodel_path = \"{}\"\n\
             camera = \"target\"\ngoal = \"a robot arm touching the red ball\"\n\
             baseline = \"a robot arm\"\nalpha = 0.5\n",
            clip_dir.display()
        ),
    );
    let out = tmp.path().join("relabelled");
    let outcome = ok(relabel_source(&data, &config, "touch", &out));
    assert_eq!(outcome["terms"][0]["name"], "goal_similarity", "{outcome}");
    assert_eq!(
        outcome["terms"][1]["name"], "baseline_similarity",
        "{outcome}"
    );

    let clip = ClipEngine::load(&clip_dir, ComputeDevice::Cpu, Precision::F32).unwrap();
    let goal = ClipGoal::new(
        &clip,
        "a robot arm touching the red ball",
        Some("a robot arm"),
        0.5,
    )
    .unwrap();
    let after = Dataset::open(&out).unwrap();
    let mut frames = 0;
    for (index, episode) in after.episodes.iter().enumerate() {
        let track = before.frames(index).unwrap().remove(0);
        let scores: Vec<f64> = (0..track.len())
            .map(|i| {
                let e = clip
                    .embed_frames(
                        &[Rgb8 {
                            data: track.frame(i),
                            width: 84,
                            height: 84,
                        }],
                        Resize::CentreCrop,
                    )
                    .unwrap();
                goal.score(&e[0]).unwrap().reward
            })
            .collect();
        frames += scores.len();
        let expected = newest_frame_rewards(&track, &scores, episode.steps());
        for (t, (got, want)) in episode.rewards.iter().zip(&expected).enumerate() {
            assert!(
                (got - want).abs() < 1e-5,
                "episode {index} step {t}: {got} vs {want}"
            );
        }
        // Frames change along an episode, and so does the reward.
        assert!(
            episode
                .rewards
                .iter()
                .any(|r| (r - episode.rewards[0]).abs() > 1e-6),
            "episode {index}: one reward throughout"
        );
    }
    assert_eq!(outcome["frames_scored"], frames);
}

#[test]
fn frame_sources_are_refused_without_the_frames_they_score() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let model = common::repo("tests/fixtures/classifier/nhwc_u8.onnx");
    let config = target_camera_config(
        tmp.path(),
        &format!(
            "[[rewards]]\nname = \"success\"\nkind = \"classifier\"\nmodel_path = \"{}\"\n\
             camera = \"target\"\n",
            model.display()
        ),
    );
    // Recorded without frames.
    record(&config, &data, 1, false);
    let out = tmp.path().join("out");
    let e = failure(relabel_source(&data, &config, "success", &out));
    assert!(
        e.contains("did not record") && e.contains("--frames"),
        "{e}"
    );
    // A name the config does not define: the message lists the ones it does.
    let e = failure(relabel_source(&data, &config, "sucess", &out));
    assert!(
        e.contains("\"sucess\"") && e.contains("reach-program"),
        "{e}"
    );
    // A program source by name works like --program.
    let outcome = ok(relabel_source(&data, &config, "reach-program", &out));
    assert_eq!(outcome["reward"], "program reach.rhai", "{outcome}");
    // --program and --reward together, without --ensemble.
    let e = failure(
        rlrt()
            .arg("relabel")
            .arg(&data)
            .args(["--reward", "success", "--program", "x.rhai", "--out"])
            .arg(tmp.path().join("other"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("2 rewards named"), "{e}");
    assert!(e.contains("several with --ensemble"), "{e}");
    assert!(!tmp.path().join("other").exists());
}

fn relabel_ensemble(data: &Path, programs: &[&Path], ensemble: Option<&str>, out: &Path) -> Output {
    let mut cmd = rlrt();
    cmd.arg("relabel").arg(data);
    for p in programs {
        cmd.arg("--program").arg(p);
    }
    if let Some(how) = ensemble {
        cmd.args(["--ensemble", how]);
    }
    cmd.arg("--out").arg(out).arg("--json").output().unwrap()
}

/// Every step's reward of a relabelled dataset, episode after episode.
fn step_rewards(data: &Path) -> Vec<f64> {
    let d = Dataset::open(data).unwrap();
    d.episodes.iter().flat_map(|e| e.rewards.clone()).collect()
}

/// (v - mean) / std over all values, std of the population.
fn standardised(values: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    values.iter().map(|v| (v - mean) / std).collect()
}

#[test]
fn an_ensemble_combines_standardised_members_and_reports_where_they_disagree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    record(&common::repo("hw-configs/reach-arm.toml"), &data, 4, false);
    let write = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let near = write(
        "near.rhai",
        "#{ distance: -distance(ee_position, target_position) }\n",
    );
    // The same reward on another scale and offset: standardised, it is `near` exactly.
    let scaled = write(
        "scaled.rhai",
        "#{ distance: 3.0 - 10.0 * distance(ee_position, target_position) }\n",
    );
    let calm = write("calm.rhai", "#{ effort: -norm(previous_action) }\n");
    let single = |program: &Path, name: &str| {
        let out = tmp.path().join(name);
        ok(relabel(&data, program, &out));
        step_rewards(&out)
    };
    let z_near = standardised(&single(&near, "near"));
    let z_calm = standardised(&single(&calm, "calm"));

    // min of two different rewards, step by step.
    let out = tmp.path().join("min");
    let outcome = ok(relabel_ensemble(&data, &[&near, &calm], Some("min"), &out));
    let got = step_rewards(&out);
    assert_eq!(got.len(), z_near.len());
    for (t, g) in got.iter().enumerate() {
        let want = z_near[t].min(z_calm[t]);
        assert!((g - want).abs() < 1e-9, "step {t}: {g} vs {want}");
    }
    assert_eq!(
        Dataset::open(&out).unwrap().info.reward,
        "ensemble min of standardised [program near.rhai; program calm.rhai]"
    );
    let e = &outcome["ensemble"];
    assert_eq!(e["aggregate"], "min");
    assert_eq!(e["members"].as_array().unwrap().len(), 2);
    // Each member keeps its own terms; the ensemble has none of its own.
    assert_eq!(e["members"][0]["terms"][0]["name"], "distance", "{e}");
    assert_eq!(e["members"][1]["terms"][0]["name"], "effort", "{e}");
    assert_eq!(outcome["terms"].as_array().unwrap().len(), 0);
    let r = e["correlations"][0]["r"].as_f64().unwrap();
    let want_r = z_near.iter().zip(&z_calm).map(|(a, b)| a * b).sum::<f64>() / z_near.len() as f64;
    assert!((r - want_r).abs() < 1e-9, "{r} vs {want_r}");
    assert!(r.abs() < 0.99, "two different rewards: {r}");
    // The most disagreed step has the largest spread of any step.
    let top = &e["most_disagreed"][0];
    let spread = |t: usize| (z_near[t] - z_calm[t]).abs() / 2.0;
    let largest = (0..z_near.len()).map(spread).fold(0.0, f64::max);
    assert!(
        (top["spread"].as_f64().unwrap() - largest).abs() < 1e-9,
        "{top}"
    );
    assert!(e["mean_spread"].as_f64().unwrap() > 0.0);

    // Two members that agree up to scale: correlation 1, no spread, and mean minus one
    // spread is the member itself.
    let out = tmp.path().join("same");
    let outcome = ok(relabel_ensemble(
        &data,
        &[&near, &scaled],
        Some("mean-minus-std:1"),
        &out,
    ));
    let e = &outcome["ensemble"];
    assert!(
        (e["correlations"][0]["r"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{e}"
    );
    assert!(e["mean_spread"].as_f64().unwrap() < 1e-9, "{e}");
    for (g, want) in step_rewards(&out).iter().zip(&z_near) {
        assert!((g - want).abs() < 1e-9);
    }

    // Misuse is refused before anything is written.
    let refused = |programs: &[&Path], how: Option<&str>, name: &str, says: &str| {
        let out = tmp.path().join(name);
        let e = failure(relabel_ensemble(&data, programs, how, &out));
        assert!(e.contains(says), "{e}");
        assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    };
    refused(&[&near], Some("mean"), "one", "name two or more");
    refused(&[&near, &calm], None, "two", "several with --ensemble");
    refused(&[&near, &calm], Some("max"), "max", "expected mean, min");
    let constant = write("constant.rhai", "#{ one: 1.0 }\n");
    refused(&[&near, &constant], Some("mean"), "constant", "the same");
}
