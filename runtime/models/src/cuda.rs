//! CUDA device handling for burn's CUDA backend: the driver checked before the backend is
//! touched, a panic of the backend turned into an error, and cubecl's kernel caches kept
//! between runs.

/// Why CUDA could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error(
        "the NVIDIA driver library (libcuda.so.1) cannot be loaded: no NVIDIA driver on this \
         machine, or it is not on the library path"
    )]
    NoDriver,
    /// burn's CUDA backend panicked (a device that cannot start, a kernel NVRTC cannot
    /// compile); the panic's message.
    #[error("CUDA device {index}: {message}")]
    Device { index: usize, message: String },
}

/// Whether the NVIDIA driver's library can be loaded, checked before any CUDA backend is
/// touched: burn's CUDA backend loads it lazily and panics when it is missing.
pub fn check_cuda_driver() -> Result<(), CudaError> {
    for name in [c"libcuda.so.1", c"libcuda.so"] {
        // SAFETY: dlopen with a valid C string; the handle is kept (the backend loads the
        // same library again and the count keeps it mapped).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY) };
        if !handle.is_null() {
            return Ok(());
        }
    }
    Err(CudaError::NoDriver)
}

/// Runs `f`, which uses CUDA device `index`, after checking that the driver loads. burn's
/// CUDA backend reports a device that cannot start (or a kernel NVRTC cannot compile) by
/// panicking; such a panic comes back as `CUDA device N: <its message>`.
///
/// With the `cuda` feature, the first call also points cubecl's kernel caches at
/// [`kernel_cache_dir`] (unless a `cubecl.toml` or `burn.toml` says otherwise), so the kernels
/// compiled and tuned on a machine's first run are reused by every later run.
pub fn on_cuda<T>(index: usize, f: impl FnOnce() -> T) -> Result<T, CudaError> {
    check_cuda_driver()?;
    #[cfg(feature = "cuda")]
    kernel_caches();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        CudaError::Device { index, message }
    })
}

/// Where compiled CUDA kernels (PTX) and autotune results are kept between runs:
/// `$RLRT_KERNEL_CACHE`, else `$XDG_CACHE_HOME/rlrt/cubecl`, else `$HOME/.cache/rlrt/cubecl`.
/// Without any of them, cubecl's default (a `target` folder beside the nearest `Cargo.toml`,
/// no PTX cache).
pub fn kernel_cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("RLRT_KERNEL_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let base = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("rlrt").join("cubecl"))
}

/// Whether a cubecl configuration file sits in the working directory or above it (cubecl
/// reads the first it finds; rlrt then leaves cubecl's settings alone).
#[cfg(feature = "cuda")]
fn cubecl_config_file() -> Option<std::path::PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        for name in ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"] {
            let file = dir.join(name);
            if file.is_file() {
                return Some(file);
            }
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Sets cubecl's PTX and autotune caches to [`kernel_cache_dir`], once, before cubecl reads
/// its configuration. cubecl's environment variables (`CUBECL_DEBUG_LOG`, ...) still apply.
#[cfg(feature = "cuda")]
fn kernel_caches() {
    use cubecl::config::cache::CacheConfig;
    use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if cubecl_config_file().is_some() {
            return;
        }
        let Some(dir) = kernel_cache_dir() else {
            return;
        };
        if std::fs::create_dir_all(&dir).is_err() {
            tracing::warn!(dir = %dir.display(), "cannot create the CUDA kernel cache; kernels are compiled on every run");
            return;
        }
        let mut config = CubeClRuntimeConfig::default().override_from_env();
        config.compilation.cache = Some(CacheConfig::File(dir.clone()));
        config.autotune.cache = CacheConfig::File(dir);
        // Refused (a panic) only when cubecl has already read its configuration, in which
        // case its own settings stay.
        let _ = std::panic::catch_unwind(|| CubeClRuntimeConfig::set(config));
    });
}
