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

/// A device name that is none of `cpu`, `cuda`, `cuda:N`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected cpu, cuda or cuda:N (N the GPU's index)")]
pub struct BadDevice(pub String);

impl FromStr for ComputeDevice {
    type Err = BadDevice;

    fn from_str(s: &str) -> Result<Self, BadDevice> {
        let bad = || BadDevice(s.to_owned());
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

/// A precision that is neither `f32` nor `f16`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected f32 or f16")]
pub struct BadPrecision(pub String);

impl FromStr for Precision {
    type Err = BadPrecision;

    fn from_str(s: &str) -> Result<Self, BadPrecision> {
        match s.trim() {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            _ => Err(BadPrecision(s.to_owned())),
        }
    }
}

/// Half precision asked for off the GPU.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("precision f16 needs a CUDA device (the CPU backend computes in f32); got device {0}")]
pub struct HalfOffGpu(pub ComputeDevice);

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
pub fn check_pair(device: ComputeDevice, precision: Precision) -> Result<(), HalfOffGpu> {
    if precision == Precision::F16 && !device.is_cuda() {
        return Err(HalfOffGpu(device));
    }
    Ok(())
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
            let err = bad.parse::<ComputeDevice>().unwrap_err().to_string();
            assert!(err.contains("expected cpu, cuda or cuda:N"), "{bad}: {err}");
        }
        assert_eq!("f16".parse(), Ok(Precision::F16));
        assert!("fp16"
            .parse::<Precision>()
            .unwrap_err()
            .to_string()
            .contains("f32 or f16"));
        assert!(check_pair(ComputeDevice::Cpu, Precision::F16)
            .unwrap_err()
            .to_string()
            .contains("needs a CUDA device"));
        assert!(check_pair(ComputeDevice::Cuda(0), Precision::F16).is_ok());
        assert!(check_pair(ComputeDevice::Cpu, Precision::F32).is_ok());
    }
}
