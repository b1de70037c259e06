//! Before any work: every training a recipe will run fits the backend. On the GPU each buffer a
//! trainer binds (a node's activations or im2col columns for the whole batch, a parameter tensor,
//! each split's pixels) within the device's binding and buffer limits, and the widest layer's
//! outputs within its workgroups per dimension (matmul rows fold); on the CPU reference
//! the batch's activations, tape and gradients and the parameters with their optimizer state
//! within a memory budget. A batch that does not fit is refused naming the field and the largest
//! batch that does.
//!
//! What these checks bound is what lets src/gpu cast sizes to u32 and leave some grids unfolded:
//! every buffer a trainer binds (so every element count derived from a node size times the batch,
//! a parameter tensor or a split) is at most the binding size (< 2^32 bytes), and evaluation runs
//! at most 1,000 rows at a time. The 1D kernels fold their grids past 65,535 workgroups
//! (gpu::kernels::grid_folded), the matmuls fold their row tiles into z and the int8 GEMM its
//! tiles; the others are bounded: a layer's outputs (a matmul's N / 32, bias_grad's N / 64, batch
//! norm's and LSQ's one workgroup per channel) by the widest-layer check here, the per-row
//! losses, attention and hint terms by the batch (at most 8,192), a k-means update by its 256
//! centroids. A
//! dispatch that still exceeded a limit would be a validation error, which GpuContext::check
//! turns into an `Error`.

use super::Backend;
use crate::error::{Error, Result};
use crate::nn::{Net, Op};

/// The CPU reference's working-memory budget: a wasm module addresses 4 GiB in all.
const CPU_BUDGET: u64 = if cfg!(target_arch = "wasm32") { 1 << 30 } else { 8 << 30 };

/// Checks one training of `net` at `batch` (recipe field `field`) on `backend`.
pub fn check_training(backend: &Backend, field: &str, net: &Net, batch: usize) -> Result<()> {
    // In u64: on wasm32 a usize product of a huge model's sizes would overflow (and panic).
    let per_sample = net.largest_per_sample().max(net.input().size()) as u64 * 4;
    let sizes: Vec<u64> = net.tensors().iter().map(|t| t.rows as u64 * t.cols as u64 * 4).collect();
    let largest_tensor = sizes.iter().copied().max().unwrap_or(0);
    let parameters: u64 = sizes.iter().sum();
    let refuse = |what: String, largest: u64| {
        let fits = if largest >= 1 { format!("the largest batch that fits is {largest}") } else { "no batch fits: choose a smaller model".into() };
        Err(Error::recipe(field, format!("{batch} {what}; {fits}")))
    };
    match backend {
        Backend::Gpu(ctx) => {
            let limits = ctx.device.limits();
            let binding = limits.max_storage_buffer_binding_size as u64;
            let binding = binding.min(limits.max_buffer_size);
            if largest_tensor > binding {
                return Err(Error::recipe(field, format!("{} has a parameter tensor of {largest_tensor} bytes, over this adapter's {binding}-byte buffers: choose a smaller model", net.arch)));
            }
            // The widest layer's outputs: a matmul's N / 32 workgroups, bias_grad's N / 64, and
            // one workgroup per channel for batch norm and LSQ's per-channel steps.
            let widest = net.nodes.iter().filter_map(|n| match n.op { Op::Dense { outputs } | Op::Conv { outputs, .. } => Some(outputs as u64), _ => None }).max().unwrap_or(0);
            if widest > limits.max_compute_workgroups_per_dimension as u64 {
                return Err(Error::recipe(field, format!("{} has a layer of {widest} outputs, over this adapter's {} workgroups per dimension (one per channel): choose a smaller model", net.arch, limits.max_compute_workgroups_per_dimension)));
            }
            let by_buffer = binding / per_sample;
            if batch as u64 > by_buffer {
                return refuse(format!("needs a {} MB buffer for one node's batch (activations or im2col columns), over this adapter's {} MB", batch as u64 * per_sample >> 20, binding >> 20), by_buffer);
            }
        }
        Backend::Cpu => {
            // Parameters, gradients and two moments; per sample the tape of every node and its
            // gradient (a generous bound: twice the largest node per node).
            let fixed = parameters * 4;
            let per = per_sample * 2 * net.nodes.len() as u64;
            if fixed >= CPU_BUDGET {
                return Err(Error::recipe(field, format!("{} needs {} MB for its parameters and optimizer state, over the CPU backend's {} MB: choose a smaller model", net.arch, fixed >> 20, CPU_BUDGET >> 20)));
            }
            let largest = (CPU_BUDGET - fixed) / per.max(1);
            if batch as u64 > largest {
                return refuse(format!("needs about {} MB of working memory on the CPU backend, over its {} MB", (fixed + per * batch as u64) >> 20, CPU_BUDGET >> 20), largest);
            }
        }
    }
    Ok(())
}

/// Each split's pixels live on the GPU as one buffer (the training split while training, the
/// test split while evaluating).
pub fn check_data(backend: &Backend, pixels: usize, train: usize, test: usize) -> Result<()> {
    if let Backend::Gpu(ctx) = backend {
        let limits = ctx.device.limits();
        let binding = (limits.max_storage_buffer_binding_size as u64).min(limits.max_buffer_size);
        for (field, split, n) in [("limit.train", "training", train), ("limit.test", "test", test)] {
            let bytes = pixels as u64 * n as u64;
            if bytes > binding {
                return Err(Error::recipe(field, format!("the {split} split's {n} images of {pixels} pixels take {} MB, over this adapter's {} MB buffers; the most that fit is {}", bytes >> 20, binding >> 20, binding / pixels.max(1) as u64)));
            }
        }
    }
    Ok(())
}
