//! Where the model runs: the CPU (tract's own kernels, every build) or an NVIDIA GPU through tract-cuda
//! (builds with the `cuda` or `cuda-12060` feature).
//!
//! The GPU path is the same bundle, tokenizer, batching and pooling: only the compiled plans differ. Each
//! plan's typed graph is decluttered, translated op by op for the GPU by `tract_cuda::CudaTransform`,
//! optimised and planned, as tract-cuda's own runtime does. An op tract-cuda has no kernel for stays on
//! the CPU inside the same plan, with copies around it; [`crate::Embedder::host_ops`] names such ops.
//!
//! tract-cuda loads the CUDA libraries at run time (driver `libcuda`, then cudart, nvrtc, cuBLAS and
//! cuDNN) and drives one device per process, the first it sees. `cuda:N` is therefore selected by
//! restricting the process to device N (`CUDA_VISIBLE_DEVICES`) before the driver starts.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::model::SentenceModel;

/// A device asked for: `cpu`, `cuda`, `cuda:N` or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// tract's CPU kernels.
    #[default]
    Cpu,
    /// NVIDIA GPU number N (as `nvidia-smi` numbers them, or within `CUDA_VISIBLE_DEVICES` if it is set).
    Cuda(usize),
    /// The GPU (`cuda:0`) if it loads, else the CPU; [`crate::Embedder::device`] says which was taken.
    Auto,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: expected cpu, cuda, cuda:N or auto")),
        }
    }
}

/// The CUDA driver API level this build's GPU backend needs (`"13.0"`, `"12.6"`), or `None` for a build
/// without one.
pub const fn cuda_api() -> Option<&'static str> {
    if cfg!(feature = "cuda-12060") {
        Some("12.6")
    } else if cfg!(feature = "cuda") {
        Some("13.0")
    } else {
        None
    }
}

/// Checks that `device` can be used, without loading a model: for `cuda:N`, the driver library and its
/// API level, the CUDA libraries tract-cuda loads, and device N. The error names what is missing. `cpu`
/// and `auto` always pass (`auto` settles when the model loads).
///
/// Call it before other threads start where possible: selecting `cuda:N` sets `CUDA_VISIBLE_DEVICES`.
pub fn check(device: Device) -> Result<()> {
    match device {
        Device::Cpu | Device::Auto => Ok(()),
        Device::Cuda(n) => open_cuda(n).map(|_| ()),
    }
}

/// The error for a device that cannot be used.
pub(crate) fn device_error(device: Device, reason: impl fmt::Display) -> Error {
    Error::Device {
        device: device.to_string(),
        reason: reason.to_string(),
    }
}

/// Where a loaded model runs.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    /// [`Device::Cpu`] or [`Device::Cuda`], never [`Device::Auto`].
    pub(crate) device: Device,
    /// `cpu`, or the driver's name of the GPU.
    pub(crate) name: String,
    /// Why `auto` took the CPU.
    pub(crate) fallback: Option<String>,
}

/// Sequence length of the plan compiled at load on a GPU, so that a device that cannot run the model
/// fails at load rather than at the first request.
#[cfg(feature = "cuda-backend")]
const TRIAL_SEQ: usize = 8;

/// Loads the model for `device`: on the CPU; on GPU N, which must work (the error names what is missing);
/// or with `auto`, on GPU 0 if it opens and compiles a first plan, else on the CPU, saying why.
pub(crate) fn load_model(
    bytes: &[u8],
    manifest: &Manifest,
    plan_capacity: usize,
    device: Device,
) -> Result<(SentenceModel, Placement)> {
    let on_cpu = |fallback: Option<String>| -> Result<(SentenceModel, Placement)> {
        let model = SentenceModel::load(bytes, manifest, plan_capacity)?;
        let placement = Placement {
            device: Device::Cpu,
            name: "cpu".into(),
            fallback,
        };
        Ok((model, placement))
    };
    match device {
        Device::Cpu => on_cpu(None),
        Device::Cuda(n) => load_on_gpu(bytes, manifest, plan_capacity, n),
        Device::Auto => match load_on_gpu(bytes, manifest, plan_capacity, 0) {
            Ok(loaded) => Ok(loaded),
            Err(Error::Device { reason, .. }) => on_cpu(Some(reason)),
            Err(e) => Err(e),
        },
    }
}

#[cfg(not(feature = "cuda-backend"))]
fn load_on_gpu(_: &[u8], _: &Manifest, _: usize, index: usize) -> Result<(SentenceModel, Placement)> {
    Err(open_cuda(index).expect_err("no GPU without the CUDA backend"))
}

#[cfg(feature = "cuda-backend")]
fn load_on_gpu(
    bytes: &[u8],
    manifest: &Manifest,
    plan_capacity: usize,
    index: usize,
) -> Result<(SentenceModel, Placement)> {
    let gpu = open_cuda(index)?;
    let model = SentenceModel::load(bytes, manifest, plan_capacity)?.on_gpu();
    model
        .plan(1, TRIAL_SEQ.min(manifest.max_seq_length))
        .map_err(|e| {
            device_error(
                Device::Cuda(index),
                format!("{} cannot run the model: {e}", gpu.name),
            )
        })?;
    let placement = Placement {
        device: Device::Cuda(index),
        name: gpu.name,
        fallback: None,
    };
    Ok((model, placement))
}

/// A usable GPU: its number as asked and the driver's name for it.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "cuda-backend"), allow(dead_code))]
pub(crate) struct CudaDevice {
    pub(crate) index: usize,
    pub(crate) name: String,
}

#[cfg(not(feature = "cuda-backend"))]
pub(crate) fn open_cuda(index: usize) -> Result<CudaDevice> {
    Err(device_error(
        Device::Cuda(index),
        "this akidb was built without CUDA support (build it with the `cuda` feature, or `cuda-12060` for JetPack 6)",
    ))
}

#[cfg(feature = "cuda-backend")]
pub(crate) use cuda::{compile_plan, host_ops, open_cuda};

#[cfg(feature = "cuda-backend")]
mod cuda {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::{Arc, Mutex};

    use tract_gpu::fact::DeviceTypedFactExt;
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::konst::Const;
    use tract_onnx::tract_core::ops::source::TypedSource;
    use tract_onnx::tract_core::transform::ModelTransform;

    use super::{device_error, CudaDevice, Device};
    use crate::error::Result;

    /// The device this process was restricted to, once one was opened: tract-cuda has one CUDA context
    /// per process, on the first visible device.
    static OPENED: Mutex<Option<CudaDevice>> = Mutex::new(None);

    const VISIBLE: &str = "CUDA_VISIBLE_DEVICES";

    /// Restricts the process to device `index` (see the module doc), checks the driver and libraries
    /// and that the device exists, and returns its name.
    pub(crate) fn open_cuda(index: usize) -> Result<CudaDevice> {
        let err = |reason: String| device_error(Device::Cuda(index), reason);
        let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dev) = &*opened {
            return if dev.index == index {
                Ok(dev.clone())
            } else {
                Err(err(format!(
                    "this process already runs on cuda:{}; tract-cuda drives one GPU per process",
                    dev.index
                )))
            };
        }
        let restricted = match std::env::var(VISIBLE) {
            Ok(list) => {
                let entries: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                let Some(entry) = entries.get(index) else {
                    return Err(err(format!(
                        "no CUDA device {index}: {VISIBLE}={list} makes {} visible",
                        entries.len()
                    )));
                };
                Some(entry.to_string())
            }
            Err(_) if index > 0 => Some(index.to_string()),
            Err(_) => None,
        };
        if let Some(entry) = &restricted {
            // Before the driver's first call (cuInit), which reads it once. The CLI checks the device
            // before it starts any other thread.
            std::env::set_var(VISIBLE, entry);
        }
        tract_cuda::utils::ensure_cuda_runtime_dependencies("the CUDA backend cannot start")
            .map_err(|e| err(format!("{e:#}")))?;
        let found = (|| {
            cudarc::driver::result::init()?;
            let count = cudarc::driver::result::device::get_count()?;
            if count < 1 {
                return Ok(None);
            }
            let dev = cudarc::driver::result::device::get(0)?;
            cudarc::driver::result::device::get_name(dev).map(Some)
        })()
        .map_err(|e: cudarc::driver::DriverError| err(format!("querying the CUDA devices failed: {e}")))?;
        let Some(name) = found else {
            let under = restricted.map_or(String::new(), |v| format!(" (with {VISIBLE}={v})"));
            return Err(err(format!(
                "no CUDA device {index}: the driver found none{under}"
            )));
        };
        let dev = CudaDevice { index, name };
        *opened = Some(dev.clone());
        Ok(dev)
    }

    /// Compiles a concrete-shape typed graph into a GPU plan, as tract-cuda's runtime does. tract-cuda
    /// panics where its CUDA context cannot be made (a kernel that NVRTC cannot compile for this GPU, say):
    /// that becomes an error here.
    pub(crate) fn compile_plan(model: TypedModel) -> TractResult<Arc<TypedRunnableModel>> {
        let compile = || -> TractResult<Arc<TypedRunnableModel>> {
            let mut model = model.into_decluttered()?;
            tract_cuda::CudaTransform.transform(&mut model)?;
            model.optimize()?;
            let options = RunOptions {
                skip_order_opt_ram: true,
                ..RunOptions::default()
            };
            let mut plan = TypedSimplePlan::build(model, &options)?;
            if let Some(handler) = tract_gpu::turn_handler::DeviceTurnHandler::for_plan(&plan, None)? {
                plan = plan.with_turn_handler(handler);
            }
            // The weights go up asynchronously on this thread's stream; the worker threads run on their
            // own streams, so the uploads must be done before any of them reads them.
            tract_gpu::device::get_context()?.synchronize()?;
            Ok(Arc::new(plan))
        };
        match catch_unwind(AssertUnwindSafe(compile)) {
            Ok(plan) => plan,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(TractError::msg(format!("tract-cuda failed: {what}")))
            }
        }
    }

    /// Ops of a GPU plan that run on the CPU: every node whose output stays in host memory, except the
    /// inputs, host constants and the copies to and from the GPU.
    pub(crate) fn host_ops(plan: &TypedRunnableModel) -> Vec<String> {
        plan.model()
            .nodes()
            .iter()
            .filter(|node| {
                !(node.op_is::<TypedSource>()
                    || node.op_is::<Const>()
                    || node.op_is::<tract_gpu::sync::DeviceSync>()
                    || node.outputs.iter().all(|o| o.fact.as_device_fact().is_some()))
            })
            .map(|node| format!("{} ({})", node.op.name(), node.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for (text, device) in [
            ("cpu", Device::Cpu),
            ("auto", Device::Auto),
            ("cuda", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
        ] {
            assert_eq!(text.parse::<Device>(), Ok(device));
        }
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""] {
            let e = bad.parse::<Device>().unwrap_err();
            assert!(e.contains("expected cpu, cuda, cuda:N or auto"), "{bad}: {e}");
        }
    }

    #[test]
    fn cpu_and_auto_always_check() {
        check(Device::Cpu).unwrap();
        check(Device::Auto).unwrap();
    }

    #[cfg(not(feature = "cuda-backend"))]
    #[test]
    fn cuda_without_the_feature_says_so() {
        let e = check(Device::Cuda(0)).unwrap_err().to_string();
        assert!(
            e.contains("cuda:0") && e.contains("built without CUDA support"),
            "{e}"
        );
        assert_eq!(cuda_api(), None);
    }
}
