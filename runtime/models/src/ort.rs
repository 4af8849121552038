//! ONNX Runtime sessions, shared by ONNX policies (`rlrt-policies`) and the ONNX reward models
//! that score camera frames (`rlrt-rewards`).
//!
//! ONNX Runtime is not linked: its shared library is loaded when the first model is
//! (`load-dynamic`), from `ORT_DYLIB_PATH` if set, else from the `onnxruntime` wheel that
//! `cargo xtask setup` installs into `.deps/python`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "cannot load ONNX Runtime from {} (set ORT_DYLIB_PATH to a libonnxruntime.so, or run \
         `cargo xtask setup`, which installs the onnxruntime wheel)",
        path.display()
    )]
    Runtime {
        path: PathBuf,
        /// Shared: the process loads the library once, and every caller sees the same failure.
        #[source]
        source: Shared,
    },
    #[error(
        "no ONNX Runtime library found: set ORT_DYLIB_PATH to a libonnxruntime.so, or run \
         `cargo xtask setup` (it installs the onnxruntime wheel into .deps/python)"
    )]
    NoRuntime,
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a model ONNX Runtime can run", path.display())]
    Model {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
}

/// Where libonnxruntime is: `ORT_DYLIB_PATH`, else the wheel in `.deps/python` (searched
/// from the working directory and from the executable's folder upwards).
pub fn runtime_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Some(PathBuf::from(p));
    }
    rlrt_runtime::deps::search_roots()
        .into_iter()
        .find_map(|root| {
            let capi = root.join(".deps/python/onnxruntime/capi");
            let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
                .ok()?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                })
                .collect();
            found.sort();
            found.pop()
        })
}

/// Loading the library or building the environment failed (the two are different types).
type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, Shared>> = OnceLock::new();

/// The process's ONNX Runtime environment, loading the library on first use.
fn environment() -> Result<&'static ort::environment::Environment, SessionError> {
    let path = runtime_library().ok_or(SessionError::NoRuntime)?;
    let env = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(&path).map_err(|e| std::sync::Arc::new(e) as Shared)?;
        builder
            .with_name("rlrt")
            .build()
            .map_err(|e| std::sync::Arc::new(e) as Shared)
    });
    env.as_ref().map_err(|source| SessionError::Runtime {
        path,
        source: source.clone(),
    })
}

/// Opens a session on `threads` intra-op threads (one for a policy on the tick: the tick's
/// thread budget), fully optimised.
pub fn open_session(path: &Path, threads: usize) -> Result<Session, SessionError> {
    let env = environment()?;
    let bytes = std::fs::read(path).map_err(|source| SessionError::Read {
        path: path.to_owned(),
        source,
    })?;
    let build = || -> ort::Result<Session> {
        Session::builder(env)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            .with_intra_threads(threads)?
            // Several threads (frame rewards off the tick): idle workers sleep instead of
            // spinning, so they do not take cores the control loop runs on.
            .with_intra_op_spinning(threads == 1)?
            .with_inter_threads(1)?
            .commit_from_memory(&bytes)
    };
    build().map_err(|source| SessionError::Model {
        path: path.to_owned(),
        source,
    })
}
