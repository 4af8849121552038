//! `rlrt reward clip` as a user runs it, on the small CLIP fixture of rewards/tests/fixtures/clip.
//! The printed reward is checked against the VLM-RM formula evaluated on the unit embeddings
//! that transformers computed for the same frame and prompts (reference.json).

use crate::common;

use std::process::Command;

use serde_json::Value;

const FIXTURE: &str = "rewards/tests/fixtures/clip";

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

fn reference() -> Value {
    let text = std::fs::read_to_string(common::repo(&format!("{FIXTURE}/reference.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn vector(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn run_json(extra: &[&str]) -> Value {
    let out = rlrt()
        .args(["reward", "clip", "--json", "--model"])
        .arg(common::repo(FIXTURE))
        .arg("--image")
        .arg(common::repo(&format!(
            "{FIXTURE}/images/landscape_256x192.png"
        )))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn reward_clip_matches_the_formula_on_hf_embeddings() {
    let reference = reference();
    let goal = reference["texts"][0]["prompt"].as_str().unwrap();
    let baseline = reference["texts"][2]["prompt"].as_str().unwrap();
    let g = vector(&reference["texts"][0]["embedding"]);
    let b = vector(&reference["texts"][2]["embedding"]);
    let image = &reference["images"][0];
    assert_eq!(image["name"], "landscape_256x192");

    // Goal only: the cosine similarity, centre crop by default.
    let s = vector(&image["crop"]["embedding"]);
    let report = run_json(&["--goal", goal]);
    let reward = report["reward"].as_f64().unwrap();
    assert!((reward - dot(&s, &g)).abs() < 1e-4, "{report}");
    assert_eq!(report["resize"], "centre_crop");
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(256), Some(192))
    );

    // Goal and baseline, plain resize: 1 - 0.5((1-a)^2|v|^2 + a(2-a)(d.v)^2/|d|^2).
    let s = vector(&image["plain"]["embedding"]);
    let alpha = 0.7;
    let report = run_json(&[
        "--goal",
        goal,
        "--baseline",
        baseline,
        "--alpha",
        "0.7",
        "--plain-resize",
    ]);
    let d: Vec<f64> = g.iter().zip(&b).map(|(g, b)| g - b).collect();
    let v: Vec<f64> = s.iter().zip(&g).map(|(s, g)| s - g).collect();
    let expected = 1.0
        - 0.5
            * ((1.0 - alpha) * (1.0 - alpha) * dot(&v, &v)
                + alpha * (2.0 - alpha) * dot(&d, &v).powi(2) / dot(&d, &d));
    let reward = report["reward"].as_f64().unwrap();
    assert!(
        (reward - expected).abs() < 1e-4,
        "{reward} vs {expected}: {report}"
    );
    assert!((report["baseline_similarity"].as_f64().unwrap() - dot(&s, &b)).abs() < 1e-4);
    assert_eq!(report["resize"], "plain");
}

#[test]
fn reward_clip_reports_user_errors_with_exit_code_2() {
    let image = common::repo(&format!("{FIXTURE}/images/tiny_61x97.png"));
    let out = rlrt()
        .args(["reward", "clip", "--model"])
        .arg(common::repo(FIXTURE))
        .arg("--image")
        .arg(&image)
        .args(["--goal", "   "])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("prompt is empty"));

    // A folder without a checkpoint: the error names the missing file.
    let dir = tempfile::tempdir().unwrap();
    let out = rlrt()
        .args(["reward", "clip", "--model"])
        .arg(dir.path())
        .arg("--image")
        .arg(&image)
        .args(["--goal", "a robot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json"));

    // Not a PNG.
    let out = rlrt()
        .args(["reward", "clip", "--model"])
        .arg(common::repo(FIXTURE))
        .arg("--image")
        .arg(common::repo(&format!("{FIXTURE}/config.json")))
        .args(["--goal", "a robot"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a readable PNG"));
}
