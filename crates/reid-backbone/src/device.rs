//! What compute devices libtorch sees from this process.

use serde::Serialize;

/// A summary of the devices libtorch can use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// `torch::cuda::is_available()`.
    pub cuda_available: bool,
    /// Number of CUDA devices visible.
    pub cuda_devices: usize,
    /// Whether cuDNN is available.
    pub cudnn_available: bool,
    /// Threads libtorch uses for intra-op parallelism on CPU.
    pub cpu_threads: i32,
}

impl DeviceInfo {
    /// Queries libtorch.
    pub fn query() -> Self {
        DeviceInfo {
            cuda_available: tch::Cuda::is_available(),
            cuda_devices: usize::try_from(tch::Cuda::device_count()).unwrap_or(0),
            cudnn_available: tch::Cuda::cudnn_is_available(),
            cpu_threads: tch::get_num_threads(),
        }
    }

    /// The best device: the first CUDA device when available, else the CPU.
    pub fn best_device(&self) -> tch::Device {
        if self.cuda_available {
            tch::Device::Cuda(0)
        } else {
            tch::Device::Cpu
        }
    }
}

/// The variable naming the device the benchmarks run on.
pub const BENCH_DEVICE_ENV: &str = "ANIMAL_REID_BENCH_DEVICE";

/// The device the criterion benches run on: `$ANIMAL_REID_BENCH_DEVICE`
/// (`cpu`, `cuda`, `cuda:N`, `auto`, as [`crate::backbone::parse_device`]
/// reads it), the CPU when unset or empty; an unknown or absent device is an
/// error naming it (`scripts/gpu_check.sh` sets `cuda`).
///
/// ```
/// // Unset in doctests: the CPU.
/// if std::env::var_os(reid_backbone::device::BENCH_DEVICE_ENV).is_none() {
///     assert_eq!(reid_backbone::device::bench_device()?, tch::Device::Cpu);
/// }
/// # Ok::<(), reid_backbone::BackboneError>(())
/// ```
pub fn bench_device() -> crate::Result<tch::Device> {
    match std::env::var(BENCH_DEVICE_ENV) {
        Ok(d) if !d.is_empty() => crate::backbone::parse_device(&d),
        _ => Ok(tch::Device::Cpu),
    }
}
