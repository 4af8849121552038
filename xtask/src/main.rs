//! `cargo xtask setup | test [cargo test args...]`
//!
//! `setup` installs the pinned Python wheels the tests use into `.deps/python` (ignored by
//! git) once; `test` runs `setup` and then the workspace tests in release mode. No
//! environment variables are needed: tests find `.deps/python` from the workspace root.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Python wheels the tests need, pinned to the versions the Rust crates pair with.
const PYTHON_WHEELS: &[&str] = &["eclipse-zenoh==1.10.2"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn setup() -> Result<(), String> {
    let dir = root().join(".deps/python");
    let marker = dir.join(".installed");
    let wanted = PYTHON_WHEELS.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {} into {}",
        PYTHON_WHEELS.join(", "),
        dir.display()
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--upgrade",
            "--target",
        ])
        .arg(&dir)
        .args(PYTHON_WHEELS)
        .status()
        .map_err(|e| format!("running python3 -m pip: {e} (is Python 3 with pip installed?)"))?;
    if !status.success() {
        return Err(format!("pip install failed ({status}); is PyPI reachable?"));
    }
    std::fs::write(&marker, wanted).map_err(|e| format!("writing {}: {e}", marker.display()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("test") => setup().and_then(|()| {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(root())
                .args(["test", "--workspace", "--release"])
                .args(&args[1..])
                .status()
                .map_err(|e| format!("running cargo test: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("cargo test failed ({status})"))
            }
        }),
        _ => Err("usage: cargo xtask setup | cargo xtask test [cargo test arguments]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
