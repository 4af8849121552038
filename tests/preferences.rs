//! Preference labels and reward models (`rlrt reward label-pairs`, `reward
//! train-preferences`, `kind = "preference_model"`): recorded target-camera frames labelled by
//! their task scores, checked against the scores here; a Bradley-Terry model fitted to them
//! that orders held-out pairs and whose reward falls with the distance to the target; the
//! dataset relabelled with it as a config source, step by step against the model run here;
//! a VLM teacher behind a local OpenAI-compatible endpoint, shown both frames as PNG images,
//! its unusable replies counted and skipped; refusals that leave the labels written so far.

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use rlrt_rewards::frame_model::OnnxClassifier;
use rlrt_runtime::config::{CameraSpec, ImageEncoding};
use rlrt_runtime::recording::{Dataset, FrameTrack};
use serde_json::Value;

fn rlrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rlrt"))
}

fn ok(out: Output) -> Value {
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

fn record(dir: &Path, episodes: usize) -> PathBuf {
    let config = dir.join("record.toml");
    std::fs::write(
        &config,
        common::shipped_text("reach-arm-target-camera.toml"),
    )
    .unwrap();
    let data = dir.join("data");
    ok(rlrt()
        .arg("record")
        .arg(&config)
        .args(["--episodes", &episodes.to_string(), "--noise-std", "0.02"])
        .args(["--seed", "5", "--frames", "--json", "--out"])
        .arg(&data)
        .output()
        .unwrap());
    data
}

fn labels(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn frame_of<'a>(tracks: &'a [FrameTrack], r: &Value) -> (&'a FrameTrack, usize) {
    let e = r["episode"].as_u64().unwrap() as usize;
    (&tracks[e], r["frame"].as_u64().unwrap() as usize)
}

/// Spearman's rank correlation.
fn spearman(x: &[f64], y: &[f64]) -> f64 {
    let ranks = |v: &[f64]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
        let mut r = vec![0.0; v.len()];
        for (rank, i) in order.into_iter().enumerate() {
            r[i] = rank as f64;
        }
        r
    };
    let (rx, ry) = (ranks(x), ranks(y));
    let n = x.len() as f64;
    let mean = (n - 1.0) / 2.0;
    let cov: f64 = rx
        .iter()
        .zip(&ry)
        .map(|(a, b)| (a - mean) * (b - mean))
        .sum();
    let var: f64 = rx.iter().map(|a| (a - mean).powi(2)).sum();
    cov / var
}

#[test]
fn score_labels_fit_a_reward_model_that_relabels_a_dataset_as_a_config_source() {
    let tmp = tempfile::tempdir().unwrap();
    let data = record(tmp.path(), 40);
    let dataset = Dataset::open(&data).unwrap();
    let tracks: Vec<FrameTrack> = (0..40)
        .map(|e| dataset.frames(e).unwrap().remove(0))
        .collect();

    // Labels from the recorded scores (the reach distance): the lower one is preferred.
    let file = tmp.path().join("labels.jsonl");
    let label = |pairs: &str, append: bool| {
        let mut cmd = rlrt();
        cmd.args(["reward", "label-pairs"])
            .arg(&data)
            .args(["--teacher", "scores", "--tie", "0.002", "--pairs", pairs])
            .arg("--out")
            .arg(&file)
            .arg("--json");
        if append {
            cmd.arg("--append");
        }
        cmd.output().unwrap()
    };
    let first = ok(label("700", false));
    assert_eq!(first["written"], 700, "{first}");
    // An existing file is only ever added to.
    let e = failure(label("10", false));
    assert!(e.contains("--append"), "{e}");
    let more = ok(label("300", true));
    assert_eq!(more["existing"], 700, "{more}");
    let all = labels(&file);
    assert_eq!(all.len(), 1000);
    let mut kinds = std::collections::HashMap::new();
    for l in &all {
        let (ta, a) = frame_of(&tracks, &l["first"]);
        let (tb, b) = frame_of(&tracks, &l["second"]);
        let (sa, sb) = (ta.scores[a], tb.scores[b]);
        let want = if (sa - sb).abs() <= 0.002 {
            "none"
        } else if sa < sb {
            "first"
        } else {
            "second"
        };
        assert_eq!(l["preference"], want, "{l}: scores {sa} and {sb}");
        assert_eq!(l["camera"], "target");
        *kinds.entry(want).or_insert(0) += 1;
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    // Appending continued the sequence instead of repeating it.
    let pair = |l: &Value| (l["first"].clone(), l["second"].clone());
    assert_ne!(pair(&all[700]), pair(&all[0]));

    // The reward model: it orders held-out pairs, and ONNX Runtime agrees with burn.
    let model = tmp.path().join("reward.onnx");
    let trained = ok(rlrt()
        .args(["reward", "train-preferences", "--data"])
        .arg(&data)
        .arg("--labels")
        .arg(&file)
        .arg("--out")
        .arg(&model)
        .args(["--epochs", "12", "--json"])
        .output()
        .unwrap());
    let validation = trained["validation"]["accuracy"].as_f64().unwrap();
    assert!(validation > 0.75, "{trained}");
    assert!(
        trained["validation"]["strict"].as_u64().unwrap() > 100,
        "{trained}"
    );
    assert!(trained["onnx_max_difference"].as_f64().unwrap() <= 1e-4);

    // As a config source: relabel scores every frame with it, each step its newest frame's.
    let config = tmp.path().join("with-model.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[rewards]]\nname = \"learned\"\nkind = \"preference_model\"\nmodel_path = \
             \"{}\"\ncamera = \"target\"\n",
            common::shipped_text("reach-arm-target-camera.toml"),
            model.display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("relabelled");
    let relabelled = ok(rlrt()
        .arg("relabel")
        .arg(&data)
        .args(["--reward", "learned", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap());
    assert_eq!(
        relabelled["terms"].as_array().unwrap().len(),
        0,
        "{relabelled}"
    );
    let spec = CameraSpec {
        name: "target".into(),
        width: 84,
        height: 84,
        rate_hz: 30.0,
        encoding: ImageEncoding::Rgb8,
    };
    let mut onnx = OnnxClassifier::load_reward(&model, &spec, None).unwrap();
    let after = Dataset::open(&out).unwrap();
    let (mut rewards, mut distances) = (Vec::new(), Vec::new());
    for (e, episode) in after.episodes.iter().enumerate() {
        let track = &tracks[e];
        let scores: Vec<f64> = (0..track.len())
            .map(|i| onnx.score(track.frame(i)).unwrap())
            .collect();
        for t in 0..episode.steps() {
            let k = track
                .rows
                .iter()
                .rposition(|r| *r as usize <= t + 1)
                .unwrap();
            assert_eq!(episode.rewards[t], scores[k], "episode {e}, step {t}");
        }
        rewards.extend_from_slice(&scores);
        distances.extend_from_slice(&track.scores);
    }
    // The learned reward falls as the end effector moves away from the target.
    let rho = spearman(&rewards, &distances);
    assert!(rho < -0.6, "rank correlation of reward and distance {rho}");

    // The model file itself, with no config edit: the same rewards, step for step.
    let direct = tmp.path().join("relabelled-direct");
    let outcome = ok(rlrt()
        .arg("relabel")
        .arg(&data)
        .arg("--model")
        .arg(&model)
        .arg("--out")
        .arg(&direct)
        .arg("--json")
        .output()
        .unwrap());
    assert!(
        outcome["reward"]
            .as_str()
            .unwrap()
            .starts_with("preference_model"),
        "{outcome}"
    );
    let direct = Dataset::open(&direct).unwrap();
    for (a, b) in direct.episodes.iter().zip(&after.episodes) {
        assert_eq!(a.rewards, b.rewards);
    }
    // A camera the config does not have, and a missing model, are refused by name.
    let refused = failure(
        rlrt()
            .arg("relabel")
            .arg(&data)
            .arg("--model")
            .arg(&model)
            .args(["--camera", "wrist", "--out"])
            .arg(tmp.path().join("refused"))
            .output()
            .unwrap(),
    );
    assert!(
        refused.contains("camera \"wrist\"") && refused.contains("target"),
        "{refused}"
    );
    let refused = failure(
        rlrt()
            .arg("relabel")
            .arg(&data)
            .arg("--model")
            .arg(tmp.path().join("nowhere.onnx"))
            .arg("--out")
            .arg(tmp.path().join("refused"))
            .output()
            .unwrap(),
    );
    assert!(
        refused.contains("nowhere.onnx") && refused.contains("no such file"),
        "{refused}"
    );
    assert!(!tmp.path().join("refused").exists());

    // Uncertainty sampling: appended pairs chosen with the model are, pair for pair, ones it
    // scores at least as close as the uniform pair of the same index (its first candidate),
    // and mostly other pairs than those.
    let select = |out: &Path, model: Option<&Path>| {
        std::fs::copy(&file, out).unwrap();
        let mut cmd = rlrt();
        cmd.args(["reward", "label-pairs"])
            .arg(&data)
            .args(["--teacher", "scores", "--tie", "0.002", "--pairs", "100"])
            .arg("--out")
            .arg(out)
            .args(["--append", "--json"]);
        if let Some(model) = model {
            cmd.arg("--reward-model")
                .arg(model)
                .args(["--candidates", "8"]);
        }
        ok(cmd.output().unwrap())
    };
    let uniform_file = tmp.path().join("uniform.jsonl");
    let selected_file = tmp.path().join("selected.jsonl");
    select(&uniform_file, None);
    let chosen = select(&selected_file, Some(&model));
    assert_eq!(chosen["written"], 100, "{chosen}");
    let summary = &chosen["selection"];
    assert!(
        summary["mean_gap_asked"].as_f64().unwrap()
            < summary["mean_gap_candidates"].as_f64().unwrap(),
        "{chosen}"
    );
    let score = |onnx: &mut OnnxClassifier, l: &Value, side: &str| {
        let (t, i) = frame_of(&tracks, &l[side]);
        onnx.score(t.frame(i)).unwrap()
    };
    let (uniform, selected) = (labels(&uniform_file), labels(&selected_file));
    let mut other = 0;
    for (u, c) in uniform[1000..].iter().zip(&selected[1000..]) {
        let gap_u = (score(&mut onnx, u, "first") - score(&mut onnx, u, "second")).abs();
        let gap_c = (score(&mut onnx, c, "first") - score(&mut onnx, c, "second")).abs();
        assert!(
            gap_c <= gap_u + 1e-9,
            "{c} (gap {gap_c}) against {u} (gap {gap_u})"
        );
        other += usize::from(pair(u) != pair(c));
    }
    assert!(
        other > 50,
        "{other} of 100 selected pairs differ from the uniform ones"
    );
    // Chosen lines say so; a model fitted to the mixed file reports its validation on the
    // uniform pairs alone as well (a file of uniform pairs has nothing to report there).
    assert!(selected[..1000].iter().all(|l| l.get("chosen").is_none()));
    assert!(selected[1000..].iter().all(|l| l["chosen"]
        .as_str()
        .unwrap()
        .starts_with("uncertainty of 8 by ")));
    let fit = |labels: &Path| {
        ok(rlrt()
            .args(["reward", "train-preferences", "--data"])
            .arg(&data)
            .arg("--labels")
            .arg(labels)
            .arg("--out")
            .arg(tmp.path().join("refit.onnx"))
            .args(["--epochs", "2", "--json"])
            .output()
            .unwrap())
    };
    let mixed = fit(&selected_file);
    let (all, uniform) = (&mixed["validation"], &mixed["validation_uniform"]);
    assert!(
        uniform["pairs"].as_u64().unwrap() > 0
            && uniform["pairs"].as_u64().unwrap() < all["pairs"].as_u64().unwrap(),
        "{mixed}"
    );
    assert_eq!(fit(&uniform_file)["validation_uniform"], Value::Null);
}

/// Reads one chat-completions request's JSON body.
fn read_request(request: &mut tiny_http::Request) -> Value {
    assert_eq!(*request.method(), tiny_http::Method::Post);
    assert_eq!(request.url(), "/v1/chat/completions");
    let mut body = Vec::new();
    request.as_reader().read_to_end(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Answers a chat-completions request with `reply` as the assistant's message.
fn write_reply(request: tiny_http::Request, reply: &str) {
    let answer = serde_json::json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]
    })
    .to_string();
    let json: tiny_http::Header = "Content-Type: application/json".parse().unwrap();
    request
        .respond(tiny_http::Response::from_string(answer).with_header(json))
        .unwrap();
}

/// A local endpoint and its URL (`http://<address>/v1`).
fn chat_server() -> (tiny_http::Server, String) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", server.server_addr().to_ip().unwrap());
    (server, base_url)
}

/// A local OpenAI-compatible endpoint: answers each request with the next reply, keeps the
/// request bodies.
fn fake_vlm(replies: Vec<&'static str>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let (server, base_url) = chat_server();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for reply in replies {
            let mut request = server.recv().unwrap();
            seen.lock().unwrap().push(read_request(&mut request));
            write_reply(request, reply);
        }
    });
    (base_url, requests)
}

/// A local OpenAI-compatible endpoint that answers `first` to each request on its own
/// thread after `delay`; returns the URL and the most requests it had in flight at once.
fn concurrent_vlm(
    requests: usize,
    delay: std::time::Duration,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (server, base_url) = chat_server();
    let (in_flight, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen_peak = peak.clone();
    std::thread::spawn(move || {
        for _ in 0..requests {
            let mut request = server.recv().unwrap();
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            std::thread::spawn(move || {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                read_request(&mut request);
                std::thread::sleep(delay);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                write_reply(request, "first");
            });
        }
    });
    (base_url, seen_peak)
}

fn png_pixels(data_url: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = data_url.strip_prefix("data:image/png;base64,").unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (84, 84));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    buf
}

#[test]
fn a_vlm_teacher_sees_both_frames_and_its_unusable_replies_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = record(tmp.path(), 3);
    let dataset = Dataset::open(&data).unwrap();
    let tracks: Vec<FrameTrack> = (0..3)
        .map(|e| dataset.frames(e).unwrap().remove(0))
        .collect();
    let (base_url, requests) = fake_vlm(vec![
        "first",
        "The second image is closer.",
        "I like bananas",
        "Neither.",
    ]);
    let file = tmp.path().join("vlm.jsonl");
    let goal = "the gripper touches the red ball";
    let outcome = ok(rlrt()
        .args(["reward", "label-pairs"])
        .arg(&data)
        .args([
            "--pairs",
            "4",
            "--base-url",
            &base_url,
            "--model",
            "tiny-vlm",
        ])
        .args(["--goal", goal, "--json", "--out"])
        .arg(&file)
        .output()
        .unwrap());
    assert_eq!(outcome["written"], 3, "{outcome}");
    assert_eq!(outcome["unparsed"], 1, "{outcome}");
    assert_eq!(outcome["unparsed_examples"][0], "I like bananas");
    let written = labels(&file);
    let got: Vec<&str> = written
        .iter()
        .map(|l| l["preference"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["first", "second", "none"]);
    // Each line names its pair; the unusable reply left a gap.
    let pairs: Vec<u64> = written
        .iter()
        .map(|l| l["pair"].as_u64().unwrap())
        .collect();
    assert_eq!(pairs, [0, 1, 3]);
    assert_eq!(written[0]["teacher"], "vlm tiny-vlm");
    assert_eq!(written[1]["reply"], "The second image is closer.");

    // Each request shows the goal and both frames, exactly as recorded, in pair order.
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 4);
    let skipped = 2; // the pair whose reply was unusable
    for (r, l) in requests
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != skipped)
        .map(|(_, r)| r)
        .zip(&written)
    {
        assert_eq!(r["model"], "tiny-vlm");
        let content = r["messages"][1]["content"].as_array().unwrap();
        let text: String = content.iter().filter_map(|c| c["text"].as_str()).collect();
        assert!(text.contains(goal), "{text}");
        let images: Vec<&str> = content
            .iter()
            .filter_map(|c| c["image_url"]["url"].as_str())
            .collect();
        assert_eq!(images.len(), 2);
        for (url, which) in images.iter().zip(["first", "second"]) {
            let (track, i) = frame_of(&tracks, &l[which]);
            assert_eq!(png_pixels(url), track.frame(i), "{which} frame of {l}");
        }
    }
    drop(requests);

    // An endpoint that is gone: the command fails, naming what it kept, and the file keeps
    // every label written before.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let e = failure(
        rlrt()
            .args(["reward", "label-pairs"])
            .arg(&data)
            .args(["--pairs", "2", "--base-url", &dead_url, "--model", "m"])
            .args(["--goal", goal, "--append", "--timeout-s", "5", "--out"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert!(e.contains("kept") && e.contains("--append"), "{e}");
    assert_eq!(labels(&file), written);
    // Appending continues after the highest pair (4, not the line count 3): the same two
    // frames as pair 4 of the uniform sequence, which the scores teacher writes here.
    let (base_url, _requests) = fake_vlm(vec!["second"]);
    ok(rlrt()
        .args(["reward", "label-pairs"])
        .arg(&data)
        .args([
            "--pairs",
            "1",
            "--base-url",
            &base_url,
            "--model",
            "tiny-vlm",
        ])
        .args(["--goal", goal, "--append", "--json", "--out"])
        .arg(&file)
        .output()
        .unwrap());
    let uniform = tmp.path().join("uniform.jsonl");
    ok(rlrt()
        .args(["reward", "label-pairs"])
        .arg(&data)
        .args(["--teacher", "scores", "--pairs", "5", "--json", "--out"])
        .arg(&uniform)
        .output()
        .unwrap());
    let (appended, uniform) = (labels(&file).pop().unwrap(), labels(&uniform));
    assert_eq!(appended["pair"], 4, "{appended}");
    assert_eq!(appended["first"], uniform[4]["first"]);
    assert_eq!(appended["second"], uniform[4]["second"]);
    // Without a goal, a VLM teacher is refused before anything is asked.
    let e = failure(
        rlrt()
            .args(["reward", "label-pairs"])
            .arg(&data)
            .args(["--base-url", &dead_url, "--model", "m", "--out"])
            .arg(tmp.path().join("other.jsonl"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("--goal"), "{e}");
}

#[test]
fn asking_both_orders_keeps_only_answers_that_agree_and_counts_position_bias() {
    let tmp = tempfile::tempdir().unwrap();
    let data = record(tmp.path(), 3);
    // Two requests per pair: as drawn, then swapped.
    let (base_url, requests) = fake_vlm(vec![
        "first",
        "second", // agree: the first frame
        "first",
        "first", // the first-shown frame both times
        "Second.",
        "second", // the second-shown frame both times
        "none",
        "Neither.", // agree: no preference
        "second",
        "I like bananas", // the swapped answer is unusable
    ]);
    let file = tmp.path().join("vlm.jsonl");
    let outcome = ok(rlrt()
        .args(["reward", "label-pairs"])
        .arg(&data)
        .args(["--pairs", "5", "--both-orders", "--base-url", &base_url])
        .args([
            "--model",
            "biased-vlm",
            "--goal",
            "reach the ball",
            "--json",
        ])
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap());
    assert_eq!(outcome["written"], 2, "{outcome}");
    assert_eq!(outcome["inconsistent"], 2, "{outcome}");
    assert_eq!(outcome["inconsistent_first_both"], 1, "{outcome}");
    assert_eq!(outcome["inconsistent_second_both"], 1, "{outcome}");
    assert_eq!(outcome["unparsed"], 1, "{outcome}");
    assert_eq!(outcome["unparsed_examples"][0], "I like bananas");
    let written = labels(&file);
    let got: Vec<&str> = written
        .iter()
        .map(|l| l["preference"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["first", "none"]);
    assert_eq!(written[0]["reply"], "first | swapped: second");
    // The second request of each pair shows the same two frames the other way round.
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 10);
    let images = |r: &Value| -> Vec<String> {
        r["messages"][1]["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["image_url"]["url"].as_str().map(str::to_owned))
            .collect()
    };
    for pair in requests.chunks(2) {
        let (asked, swapped) = (images(&pair[0]), images(&pair[1]));
        assert_eq!(asked.len(), 2);
        assert_eq!((&asked[0], &asked[1]), (&swapped[1], &swapped[0]));
    }
    drop(requests);
    // The scores teacher has no favourite position: the flag is refused for it.
    let e = failure(
        rlrt()
            .args(["reward", "label-pairs"])
            .arg(&data)
            .args(["--teacher", "scores", "--both-orders", "--out"])
            .arg(tmp.path().join("scores.jsonl"))
            .output()
            .unwrap(),
    );
    assert!(e.contains("--both-orders"), "{e}");
}

#[test]
fn concurrent_requests_are_in_flight_together_and_labels_stay_in_pair_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = record(tmp.path(), 3);
    let (base_url, peak) = concurrent_vlm(12, std::time::Duration::from_millis(300));
    let file = tmp.path().join("vlm.jsonl");
    let outcome = ok(rlrt()
        .args(["reward", "label-pairs"])
        .arg(&data)
        .args([
            "--pairs",
            "12",
            "--concurrency",
            "4",
            "--base-url",
            &base_url,
        ])
        .args(["--model", "m", "--goal", "reach", "--json", "--out"])
        .arg(&file)
        .output()
        .unwrap());
    assert_eq!(outcome["written"], 12, "{outcome}");
    assert!(
        peak.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "requests never overlapped"
    );
    assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 4);
    // The same pairs, in the same order, as the uniform sequence.
    let uniform = tmp.path().join("uniform.jsonl");
    ok(rlrt()
        .args(["reward", "label-pairs"])
        .arg(&data)
        .args(["--teacher", "scores", "--pairs", "12", "--json", "--out"])
        .arg(&uniform)
        .output()
        .unwrap());
    for (k, (l, u)) in labels(&file).iter().zip(labels(&uniform)).enumerate() {
        assert_eq!(l["pair"], k, "{l}");
        assert_eq!((&l["first"], &l["second"]), (&u["first"], &u["second"]));
        assert_eq!(l["preference"], "first");
    }
}

#[test]
fn labels_that_do_not_fit_the_dataset_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = record(tmp.path(), 2);
    let train = |labels: &Path| {
        rlrt()
            .args(["reward", "train-preferences", "--data"])
            .arg(&data)
            .arg("--labels")
            .arg(labels)
            .arg("--out")
            .arg(tmp.path().join("m.onnx"))
            .output()
            .unwrap()
    };
    let line = |camera: &str, episode: usize, frame: usize| {
        format!(
            "{{\"camera\":\"{camera}\",\"first\":{{\"episode\":0,\"frame\":0}},\"second\":\
             {{\"episode\":{episode},\"frame\":{frame}}},\"preference\":\"first\",\
             \"teacher\":\"scores\"}}\n"
        )
    };
    for (text, expect) in [
        (line("target", 0, 5000), "frame 5000 of episode 0"),
        (line("target", 9, 1), "episode 9"),
        (line("front", 0, 1), "camera \"front\""),
        (
            line("target", 0, 1).replace("\"preference\":\"first\"", "\"preference\":\"maybe\""),
            "line 1",
        ),
    ] {
        let path = tmp.path().join("labels.jsonl");
        std::fs::write(&path, text).unwrap();
        let e = failure(train(&path));
        assert!(e.contains(expect), "{expect}: {e}");
        assert!(!tmp.path().join("m.onnx").exists());
    }

    // A selection model that is not an ONNX model of this camera is refused before any pair
    // is asked about, and the labels file is not touched.
    let labels = tmp.path().join("selected.jsonl");
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let e = failure(
        rlrt()
            .args(["reward", "label-pairs"])
            .arg(&data)
            .args(["--teacher", "scores", "--pairs", "5", "--reward-model"])
            .arg(&junk)
            .arg("--out")
            .arg(&labels)
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("--reward-model") && e.contains("junk.onnx"),
        "{e}"
    );
    assert!(!labels.exists());
}
