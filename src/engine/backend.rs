//! The device whisper.cpp runs a model on: a GPU from ggml's device registry
//! (a build with `--features cuda` has one per CUDA device it sees), else the CPU.

use std::ffi::CStr;

use serde::{Deserialize, Serialize};
use whisper_rs_sys as sys;

/// Where a worker runs its model, as `/readyz` and the start-up log show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// ggml's name of the device: `CPU`, or `CUDA0` for the first CUDA GPU.
    pub device: String,
    /// What it is: the GPU's name (`NVIDIA H100 80GB HBM3`), or the CPU's.
    pub description: String,
    /// The GPU's memory in MiB; `None` on the CPU.
    pub memory_mib: Option<u64>,
}

/// One device in ggml's registry.
struct Device(sys::ggml_backend_dev_t);

impl Device {
    /// Every device ggml offers, in its order (whisper.cpp counts the GPUs in it).
    fn all() -> Vec<Device> {
        // SAFETY: the registry is built once by ggml and never freed; indices
        // below its count name valid devices.
        let count = unsafe { sys::ggml_backend_dev_count() };
        (0..count)
            .map(|i| Device(unsafe { sys::ggml_backend_dev_get(i) }))
            .collect()
    }

    fn is_gpu(&self) -> bool {
        // SAFETY: a device from the registry, valid for the life of the process.
        let kind = unsafe { sys::ggml_backend_dev_type(self.0) };
        kind == sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU
            || kind == sys::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_IGPU
    }

    /// Describes the device; `memory` asks a GPU for its size (which makes
    /// the CUDA runtime open the device: only the process that will use it asks).
    fn describe(&self, memory: bool) -> Backend {
        // SAFETY: as above; ggml returns NUL-terminated strings it owns.
        let text = |ptr: *const std::ffi::c_char| unsafe { CStr::from_ptr(ptr) }.to_string_lossy().trim().to_string();
        let (device, description) = unsafe {
            (
                text(sys::ggml_backend_dev_name(self.0)),
                text(sys::ggml_backend_dev_description(self.0)),
            )
        };
        let memory_mib = (memory && self.is_gpu()).then(|| {
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: as above; both pointers are to live locals.
            unsafe { sys::ggml_backend_dev_memory(self.0, &mut free, &mut total) };
            total as u64 >> 20
        });
        Backend {
            device,
            description,
            memory_mib,
        }
    }
}

/// The device for a model: GPU number `gpu_device` (counted as whisper.cpp
/// counts them), or when `None` the first GPU if there is one, else the CPU.
/// Returns it and the GPU number to give whisper.cpp (`None`: the CPU).
pub fn choose(gpu_device: Option<u32>) -> Result<(Backend, Option<u32>), String> {
    let devices = Device::all();
    let gpus: Vec<&Device> = devices.iter().filter(|d| d.is_gpu()).collect();
    match gpu_device {
        Some(n) => match gpus.get(n as usize) {
            Some(gpu) => Ok((gpu.describe(true), Some(n))),
            None if gpus.is_empty() => Err(no_gpu_seen(n)),
            None => Err(format!(
                "--gpu-device {n}: there are {} GPUs, numbered from 0 ({})",
                gpus.len(),
                gpus.iter()
                    .map(|g| g.describe(false).device)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        None => match gpus.first() {
            Some(gpu) => Ok((gpu.describe(true), Some(0))),
            None => {
                let cpu = devices.iter().find(|d| !d.is_gpu()).map(|d| d.describe(false));
                Ok((cpu.unwrap_or_else(|| Backend::cpu("CPU")), None))
            }
        },
    }
}

/// Why `--gpu-device n` is refused when ggml sees no GPU at all, and what would make one seen.
fn no_gpu_seen(n: u32) -> String {
    let build = if cfg!(feature = "cuda") {
        "this build has CUDA"
    } else {
        "this build is for the CPU only"
    };
    format!(
        "--gpu-device {n}: no GPU is seen ({build}); a GPU needs a build with --features cuda (make build-cuda), \
         an NVIDIA driver and CUDA_VISIBLE_DEVICES not hiding it"
    )
}

impl Backend {
    /// The CPU, described by `description` (for engines without ggml's registry).
    pub fn cpu(description: &str) -> Self {
        Self {
            device: "CPU".into(),
            description: description.into(),
            memory_mib: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_build_runs_on_the_cpu_and_refuses_a_gpu_by_number() {
        if cfg!(feature = "cuda") {
            return;
        }
        let (backend, gpu) = choose(None).unwrap();
        assert_eq!((backend.device.as_str(), gpu, backend.memory_mib), ("CPU", None, None));
        // ggml describes the CPU by its model name, as /proc/cpuinfo gives it.
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim())
            })
            .unwrap();
        assert_eq!(backend.description, model);
        let refused = choose(Some(0)).unwrap_err();
        assert!(
            refused.contains("no GPU is seen") && refused.contains("--features cuda"),
            "{refused}"
        );
    }
}
