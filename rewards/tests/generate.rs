//! `generate` against a local HTTP server that answers like an OpenAI-compatible chat
//! endpoint: a good program is written, a broken or hostile one is rejected and nothing is
//! written, and a retry shows the model the checker's problems.

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rlrt_rewards::program::generate::{generate, ChatEndpoint, GenerateError, GenerateOptions};
use rlrt_rewards::program::Environment;

/// Serves each reply in turn (one per request), records every request body.
struct FakeChat {
    base_url: String,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
}

fn fake_chat(replies: Vec<String>) -> FakeChat {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", server.server_addr().to_ip().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for reply in replies {
            let mut request = server.recv().unwrap();
            assert_eq!(*request.method(), tiny_http::Method::Post);
            assert_eq!(request.url(), "/v1/chat/completions");
            if let Some(auth) = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
            {
                assert_eq!(
                    auth.value.as_str().to_ascii_lowercase(),
                    "bearer secret-key"
                );
            }
            let mut body = Vec::new();
            request.as_reader().read_to_end(&mut body).unwrap();
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            let answer = serde_json::json!({
                "id": "x", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply}}]
            })
            .to_string();
            let json: tiny_http::Header = "Content-Type: application/json".parse().unwrap();
            request
                .respond(tiny_http::Response::from_string(answer).with_header(json))
                .unwrap();
        }
    });
    FakeChat { base_url, requests }
}

fn env() -> Environment {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hw-configs/reach-arm.toml");
    Environment::from_config(&rlrt_runtime::config::load(path).unwrap()).unwrap()
}

fn endpoint(chat: &FakeChat) -> ChatEndpoint {
    ChatEndpoint {
        base_url: chat.base_url.clone(),
        model: "test-model".into(),
        api_key: Some("secret-key".into()),
        timeout: Duration::from_secs(30),
        temperature: 0.2,
    }
}

const GOOD: &str = "Sure.\n```rhai\nlet d = distance(ee_position, target_position);\n#{ reach: -d, success: indicator(d < 0.03) }\n```\n";
const BROKEN: &str = "```rhai\nlet d = distance(ee_position, goal_position);\n#{ reach: -d }\n```";
const HOSTILE: &str = "```rhai\nloop { }\n#{ reach: 1.0 }\n```";

#[test]
fn a_good_program_is_checked_and_written() {
    let chat = fake_chat(vec![GOOD.into()]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reach.rhai");
    let generated = generate(
        &env(),
        "touch the target",
        &endpoint(&chat),
        &GenerateOptions::default(),
        &out,
    )
    .unwrap();
    assert_eq!(generated.attempts, 1);
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with("let d = distance"), "{written}");
    assert!(!written.contains("```"));
    let names: Vec<&str> = generated
        .report
        .terms
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["reach", "success"]);
    let requests = chat.requests.lock().unwrap();
    assert_eq!(requests[0]["model"], "test-model");
    let prompt = requests[0]["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("Task: touch the target") && prompt.contains("target_position"));
}

#[test]
fn broken_and_hostile_programs_are_rejected_and_nothing_is_written() {
    for (reply, expected) in [
        (BROKEN, "unknown variable `goal_position`"),
        (HOSTILE, "operations"),
    ] {
        let chat = fake_chat(vec![reply.into()]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("reach.rhai");
        let err = generate(
            &env(),
            "touch the target",
            &endpoint(&chat),
            &GenerateOptions::default(),
            &out,
        )
        .unwrap_err();
        assert!(
            matches!(err, GenerateError::Rejected { attempts: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(expected), "{err}");
        assert!(!out.exists(), "a rejected program was written");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn a_retry_shows_the_problems_and_accepts_the_fix() {
    let chat = fake_chat(vec![BROKEN.into(), GOOD.into()]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reach.rhai");
    let options = GenerateOptions {
        retries: 1,
        ..GenerateOptions::default()
    };
    let generated = generate(&env(), "touch the target", &endpoint(&chat), &options, &out).unwrap();
    assert_eq!(generated.attempts, 2);
    assert!(out.exists());
    let requests = chat.requests.lock().unwrap();
    let messages = requests[1]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    let correction = messages[3]["content"].as_str().unwrap();
    assert!(
        correction.contains("reach.rhai:1:") && correction.contains("goal_position"),
        "{correction}"
    );
}

#[test]
fn an_unreachable_endpoint_is_a_request_error() {
    // Bind and drop: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let chat = FakeChat {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        requests: Arc::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let err = generate(
        &env(),
        "x",
        &endpoint(&chat),
        &GenerateOptions::default(),
        &dir.path().join("r.rhai"),
    )
    .unwrap_err();
    assert!(matches!(err, GenerateError::Request { .. }), "{err}");
}
