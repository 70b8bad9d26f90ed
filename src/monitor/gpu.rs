//! GPU memory and utilization through NVML, loaded at run time. Without an
//! NVIDIA driver every reading is `None`: never an error, never a delay.

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;

/// One GPU reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuSample {
    /// GPU memory used by this process, summed over devices, in bytes.
    pub process_memory_bytes: u64,
    /// Mean utilization of the devices, 0-100.
    pub utilization_percent: f64,
}

/// All devices together, for the process-wide gauges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceSummary {
    /// Memory in use on all devices (any process), bytes.
    pub memory_used_bytes: u64,
    /// Memory on all devices, bytes.
    pub memory_total_bytes: u64,
    /// Mean utilization of the devices, 0-100.
    pub utilization_percent: f64,
}

/// NVML when the driver library is present.
pub struct GpuProbe {
    nvml: Option<Nvml>,
    device_count: u32,
}

impl GpuProbe {
    /// Loads NVML if it can; logs once why not otherwise.
    pub fn detect() -> Self {
        match Nvml::init() {
            Ok(nvml) => {
                let device_count = nvml.device_count().unwrap_or(0);
                tracing::info!(device_count, "NVML loaded: GPU metrics enabled");
                Self {
                    nvml: Some(nvml),
                    device_count,
                }
            }
            Err(e) => {
                tracing::info!(reason = %e, "no NVIDIA GPU seen: GPU metrics are 0");
                Self::absent()
            }
        }
    }

    /// A probe that never sees a GPU.
    pub fn absent() -> Self {
        Self {
            nvml: None,
            device_count: 0,
        }
    }

    /// Whether a GPU is seen.
    pub fn available(&self) -> bool {
        self.nvml.is_some() && self.device_count > 0
    }

    /// Reads memory and utilization now, if a GPU is seen.
    pub fn sample(&self) -> Option<GpuSample> {
        let nvml = self.nvml.as_ref().filter(|_| self.device_count > 0)?;
        let pid = std::process::id();
        let (mut memory, mut utilization, mut devices) = (0u64, 0.0, 0u32);
        for index in 0..self.device_count {
            let Ok(device) = nvml.device_by_index(index) else {
                continue;
            };
            devices += 1;
            utilization += device.utilization_rates().map_or(0.0, |u| u.gpu as f64);
            let processes = device.running_compute_processes().unwrap_or_default();
            memory += processes
                .iter()
                .filter(|p| p.pid == pid)
                .map(|p| match p.used_gpu_memory {
                    UsedGpuMemory::Used(bytes) => bytes,
                    UsedGpuMemory::Unavailable => 0,
                })
                .sum::<u64>();
        }
        Some(GpuSample {
            process_memory_bytes: memory,
            utilization_percent: if devices > 0 { utilization / devices as f64 } else { 0.0 },
        })
    }

    /// Memory and utilization of all devices, if a GPU is seen.
    pub fn devices(&self) -> Option<DeviceSummary> {
        let nvml = self.nvml.as_ref().filter(|_| self.device_count > 0)?;
        let mut summary = DeviceSummary {
            memory_used_bytes: 0,
            memory_total_bytes: 0,
            utilization_percent: 0.0,
        };
        let mut devices = 0u32;
        for index in 0..self.device_count {
            let Ok(device) = nvml.device_by_index(index) else {
                continue;
            };
            devices += 1;
            if let Ok(memory) = device.memory_info() {
                summary.memory_used_bytes += memory.used;
                summary.memory_total_bytes += memory.total;
            }
            summary.utilization_percent += device.utilization_rates().map_or(0.0, |u| u.gpu as f64);
        }
        summary.utilization_percent /= devices.max(1) as f64;
        Some(summary)
    }
}
