//! Where a model runs (`cpu`, `cuda`, `cuda:N`) and at what float precision (`f32`, `f16`),
//! as written in hw-configs and on the command line. This crate only names them; the crates
//! with models map them to burn backends (CUDA needs rlrt's `cuda` feature).

use std::fmt;
use std::str::FromStr;

/// The processor a model runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ComputeDevice {
    /// burn's Flex backend on the CPU: one thread, deterministic.
    #[default]
    Cpu,
    /// burn's CUDA backend on the GPU with this index.
    Cuda(usize),
}

impl ComputeDevice {
    pub fn is_cuda(self) -> bool {
        matches!(self, ComputeDevice::Cuda(_))
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Cpu => write!(f, "cpu"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected cpu, cuda or cuda:N (N the GPU's index)");
        match s.trim() {
            "cpu" => Ok(ComputeDevice::Cpu),
            "cuda" => Ok(ComputeDevice::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(index) => index
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < 64)
                    .map(ComputeDevice::Cuda)
                    .ok_or_else(bad),
                None => Err(bad()),
            },
        }
    }
}

/// Float precision of a model's weights and activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    /// IEEE half precision: CUDA only (the CPU backends compute in f32).
    F16,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(format!("{s:?}: expected f32 or f16")),
        }
    }
}

/// Both are written as their `Display` text and read through `FromStr`, so configs, flags
/// and reports spell them the same way.
macro_rules! serde_as_text {
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

serde_as_text!(ComputeDevice, Precision);

/// Refuses half precision off the GPU, with the reason.
pub fn check_pair(device: ComputeDevice, precision: Precision) -> Result<(), String> {
    if precision == Precision::F16 && !device.is_cuda() {
        return Err(format!(
            "precision f16 needs a CUDA device (the CPU backend computes in f32); got device {device}"
        ));
    }
    Ok(())
}

/// Whether the NVIDIA driver's library can be loaded, checked before any CUDA backend is
/// touched: burn's CUDA backend loads it lazily and panics when it is missing.
pub fn check_cuda_driver() -> Result<(), String> {
    for name in [c"libcuda.so.1", c"libcuda.so"] {
        // SAFETY: dlopen with a valid C string; the handle is kept (the backend loads the
        // same library again and the count keeps it mapped).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY) };
        if !handle.is_null() {
            return Ok(());
        }
    }
    Err(
        "the NVIDIA driver library (libcuda.so.1) cannot be loaded: no NVIDIA driver on this \
         machine, or it is not on the library path"
            .into(),
    )
}

/// Runs `f`, which uses CUDA device `index`, after checking that the driver loads. burn's
/// CUDA backend reports a device that cannot start (or a kernel NVRTC cannot compile) by
/// panicking; such a panic comes back as `CUDA device N: <its message>`.
///
/// With the `cuda` feature, the first call also points cubecl's kernel caches at
/// [`kernel_cache_dir`] (unless a `cubecl.toml` or `burn.toml` says otherwise), so the kernels
/// compiled and tuned on a machine's first run are reused by every later run.
pub fn on_cuda<T>(index: usize, f: impl FnOnce() -> T) -> Result<T, String> {
    check_cuda_driver()?;
    #[cfg(feature = "cuda")]
    kernel_caches();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("CUDA device {index}: {message}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_precisions() {
        assert_eq!("cpu".parse(), Ok(ComputeDevice::Cpu));
        assert_eq!("cuda".parse(), Ok(ComputeDevice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(ComputeDevice::Cuda(3)));
        assert_eq!(ComputeDevice::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CUDA", "cuda:999"] {
            let err = bad.parse::<ComputeDevice>().unwrap_err();
            assert!(err.contains("expected cpu, cuda or cuda:N"), "{bad}: {err}");
        }
        assert_eq!("f16".parse(), Ok(Precision::F16));
        assert!("fp16"
            .parse::<Precision>()
            .unwrap_err()
            .contains("f32 or f16"));
        assert!(check_pair(ComputeDevice::Cpu, Precision::F16)
            .unwrap_err()
            .contains("needs a CUDA device"));
        assert!(check_pair(ComputeDevice::Cuda(0), Precision::F16).is_ok());
        assert!(check_pair(ComputeDevice::Cpu, Precision::F32).is_ok());
    }
}
