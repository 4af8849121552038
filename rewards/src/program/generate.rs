//! Writing a reward program with a language model behind an OpenAI-compatible chat endpoint
//! (`POST {base_url}/chat/completions`: OpenAI, vLLM, Ollama, llama.cpp's server, ...).
//!
//! The reply's program is extracted from its code block and goes through the full check;
//! the file is written only when the check passes, and atomically (a temporary file renamed
//! into place) so that a watcher never reads half a program. On rejection the check's
//! problems go back to the model for another try, up to `retries` times.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use super::check::{check, CheckOptions, CheckReport, ProgramError};
use super::env::Environment;
use super::prompt::prompt;
use super::sandbox::Limits;

/// Where and how to ask.
#[derive(Clone, Debug)]
pub struct ChatEndpoint {
    /// Such as `http://127.0.0.1:8000/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when present.
    pub api_key: Option<String>,
    /// For the whole request, reply included.
    pub timeout: Duration,
    pub temperature: f64,
}

/// What to check and how often to ask again.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    pub limits: Limits,
    pub check: CheckOptions,
    /// Further requests after a rejected program, each shown the problems.
    pub retries: u32,
}

/// A program that passed the check and was written.
#[derive(Debug)]
pub struct Generated {
    pub program: String,
    pub report: CheckReport,
    /// Requests made (1 when the first program passed).
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{url}: request failed")]
    Request {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: the reply is not JSON: {body}")]
    Json {
        url: String,
        body: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url}: unexpected reply: {message}")]
    Reply { url: String, message: String },
    #[error("the model's program was rejected after {attempts} attempt(s); nothing was written:\n{error}")]
    Rejected {
        attempts: u32,
        /// The last program the model wrote.
        program: String,
        error: ProgramError,
    },
    #[error("{}: cannot write the program", file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const SYSTEM: &str = "You are an expert in robot learning who writes short, correct, dense \
                      reward programs. Follow the rules exactly and answer with code only.";

/// Asks for a program for `task`, checks it and writes it to `out`.
pub fn generate(
    env: &Environment,
    task: &str,
    endpoint: &ChatEndpoint,
    options: &GenerateOptions,
    out: &Path,
) -> Result<Generated, GenerateError> {
    let first = prompt(env, task, &options.limits, options.check.max_abs_term);
    let mut messages = vec![
        json!({"role": "system", "content": SYSTEM}),
        json!({"role": "user", "content": first}),
    ];
    let mut attempts = 0;
    loop {
        attempts += 1;
        let reply = chat(endpoint, &messages)?;
        let program = extract_program(&reply);
        match check(env, &program, out, &options.limits, &options.check) {
            Ok((_, report)) => {
                write_atomically(out, &program)?;
                return Ok(Generated {
                    program,
                    report,
                    attempts,
                });
            }
            Err(error) if attempts <= options.retries => {
                messages.push(json!({"role": "assistant", "content": reply}));
                messages.push(json!({"role": "user", "content": format!(
                    "The program was rejected by the checker:\n{error}\n\nFix these problems \
                     and answer with the whole corrected program in one ```rhai code block."
                )}));
            }
            Err(error) => {
                return Err(GenerateError::Rejected {
                    attempts,
                    program,
                    error,
                })
            }
        }
    }
}

/// One chat completion; returns the assistant's text.
pub fn chat(endpoint: &ChatEndpoint, messages: &[Value]) -> Result<String, GenerateError> {
    let url = format!(
        "{}/chat/completions",
        endpoint.base_url.trim_end_matches('/')
    );
    let body = json!({
        "model": endpoint.model,
        "messages": messages,
        "temperature": endpoint.temperature,
        "stream": false,
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(endpoint.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.post(&url).header("Content-Type", "application/json");
    if let Some(key) = &endpoint.api_key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    let request_error = |e: ureq::Error| GenerateError::Request {
        url: url.clone(),
        source: Box::new(e),
    };
    let mut response = request
        .send(body.to_string().as_bytes())
        .map_err(request_error)?;
    let status = response.status();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(request_error)?;
    if !status.is_success() {
        return Err(GenerateError::Status {
            url,
            status: status.as_u16(),
            body: first_chars(&text, 500),
        });
    }
    let reply: Value = serde_json::from_str(&text).map_err(|source| GenerateError::Json {
        url: url.clone(),
        body: first_chars(&text, 200),
        source,
    })?;
    reply["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| GenerateError::Reply {
            url,
            message: format!(
                "no choices[0].message.content string in {}",
                first_chars(&text, 200)
            ),
        })
}

/// The program in a model's reply: the first ```rhai block, else the first fenced block,
/// else the whole reply. Reasoning models' `<think>...</think>` preamble is dropped first.
pub fn extract_program(reply: &str) -> String {
    let reply = match reply.rfind("</think>") {
        Some(end) => &reply[end + "</think>".len()..],
        None => reply,
    };
    let fenced = |start: usize| {
        let body = &reply[start..];
        // Skip the rest of the opening fence line (the language tag).
        let body = body.find('\n').map_or("", |nl| &body[nl + 1..]);
        let end = body.find("```").unwrap_or(body.len());
        body[..end].trim().to_owned()
    };
    if let Some(start) = reply.find("```rhai") {
        fenced(start)
    } else if let Some(start) = reply.find("```") {
        fenced(start)
    } else {
        reply.trim().to_owned()
    }
}

fn write_atomically(out: &Path, program: &str) -> Result<(), GenerateError> {
    let write_error = |source| GenerateError::Write {
        file: out.to_owned(),
        source,
    };
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{}\n", program.trim_end())).map_err(write_error)?;
    std::fs::rename(&tmp, out).map_err(write_error)
}

fn first_chars(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_taken_from_the_right_block() {
        let reply = "Here it is:\n```rhai\n#{ a: 1.0 }\n```\nand ```python\nx\n```";
        assert_eq!(extract_program(reply), "#{ a: 1.0 }");
        assert_eq!(extract_program("```\n#{ b: 2.0 }\n```"), "#{ b: 2.0 }");
        assert_eq!(extract_program("  #{ c: 3.0 }\n"), "#{ c: 3.0 }");
        assert_eq!(
            extract_program("<think>```rhai\nbad\n```</think>\n```rhai\n#{ d: 4.0 }\n```"),
            "#{ d: 4.0 }"
        );
        assert_eq!(extract_program("```rhai\n#{ e: 5.0 }"), "#{ e: 5.0 }");
    }
}
