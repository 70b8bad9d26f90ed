//! GPU memory and utilization through NVML, loaded at run time. Without an
//! NVIDIA driver every reading is `None`: never an error, never a delay.

use std::sync::Mutex;

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

/// One GPU reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuSample {
    /// GPU memory used by this process, summed over devices, in bytes.
    pub process_memory_bytes: u64,
    /// Mean utilization of the devices by this process, 0-100 (the devices'
    /// whole utilization where the driver keeps no per-process samples).
    pub utilization_percent: f64,
    /// Whether `utilization_percent` is this process's own on every device.
    pub utilization_per_process: bool,
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
    /// Per device, the timestamp (us) of the newest per-process utilization
    /// sample read, so each reading averages only the samples since the last.
    last_seen_us: Mutex<Vec<u64>>,
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
                    last_seen_us: Mutex::new(vec![0; device_count as usize]),
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
            last_seen_us: Mutex::default(),
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
        let mut last_seen = self.last_seen_us.lock().unwrap_or_else(|e| e.into_inner());
        let (mut memory, mut utilization, mut devices, mut per_process) = (0u64, 0.0, 0u32, true);
        for index in 0..self.device_count {
            let Ok(device) = nvml.device_by_index(index) else {
                continue;
            };
            devices += 1;
            match process_utilization(&device, pid, &mut last_seen[index as usize]) {
                Some(percent) => utilization += percent,
                None => {
                    per_process = false;
                    utilization += device.utilization_rates().map_or(0.0, |u| u.gpu as f64);
                }
            }
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
            utilization_per_process: per_process,
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

/// This process's mean SM utilization on `device` over the driver's samples
/// newer than `last_seen_us` (which it advances), 0-100. The driver lists
/// only processes that used the GPU, so none of ours is 0. `None` where the
/// driver keeps no per-process samples (before Maxwell, some vGPUs).
fn process_utilization(device: &Device, pid: u32, last_seen_us: &mut u64) -> Option<f64> {
    let samples = match device.process_utilization_stats(*last_seen_us) {
        Ok(samples) => samples,
        Err(NvmlError::NotFound) => return Some(0.0),
        Err(_) => return None,
    };
    *last_seen_us = samples
        .iter()
        .map(|s| s.timestamp)
        .max()
        .unwrap_or(*last_seen_us)
        .max(*last_seen_us);
    let mine: Vec<f64> = samples
        .iter()
        .filter(|s| s.pid == pid)
        .map(|s| s.sm_util as f64)
        .collect();
    Some(if mine.is_empty() {
        0.0
    } else {
        mine.iter().sum::<f64>() / mine.len() as f64
    })
}
