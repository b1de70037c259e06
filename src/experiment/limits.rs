//! Before any work: every training a recipe will run fits the backend. On the GPU each buffer a
//! trainer binds (a node's activations or im2col columns for the whole batch, a parameter tensor,
//! each split's pixels) within the device's binding and buffer limits, and the widest layer's
//! outputs within its workgroups per dimension (matmul rows fold); on the CPU reference
//! what a training step holds at its peak (`cpu_memory`: the tape, the gradients, the parameters
//! with their optimizer state, a distillation teacher's forward) and an evaluation's batch within
//! a memory budget. A batch that does not fit is refused naming the field and the largest batch
//! that does.
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
use crate::reference::net::EVAL_ROWS;

/// The CPU reference's working-memory budget: a wasm module addresses 4 GiB in all.
const CPU_BUDGET: u64 = if cfg!(target_arch = "wasm32") { 1 << 30 } else { 8 << 30 };

/// Bytes the CPU backend holds for one training of `net`, as upper bounds from its node shapes
/// (f32 and u32 are 4 bytes): `fixed`, whatever the batch (the parameters, their gradients, two
/// optimizer moments, and a packed copy of the largest for a matrix product); `per_sample`, at the
/// peak of a training step (the tape: every node's output, each convolution's im2col columns
/// and each max pool's argmax, and where activations are quantized their masks and unquantized
/// copies; then in backward every node's gradient and one convolution's column gradients at a
/// time); `per_row` of an evaluation (every node's output, one convolution's columns at a time,
/// the quantizers' masks). Checked against what a step really allocates in tests/cpu_memory.rs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMemory {
    pub fixed: u64,
    pub per_sample: u64,
    pub per_row: u64,
}

pub fn cpu_memory(net: &Net) -> CpuMemory {
    let sizes: Vec<u64> = net.tensors().iter().map(|t| t.rows as u64 * t.cols as u64).collect();
    let (parameters, largest) = (sizes.iter().sum::<u64>(), sizes.iter().copied().max().unwrap_or(0));
    let (mut outputs, mut columns, mut widest) = (0u64, 0u64, 0u64);
    for node in &net.nodes {
        outputs += node.shape.size() as u64;
        if let Op::Conv { k, .. } = node.op {
            let c = (node.shape.h * node.shape.w) as u64 * (k * k * net.nodes[node.inputs[0]].shape.c) as u64;
            columns += c;
            widest = widest.max(c);
        }
    }
    // A step holds the outputs five times over (the outputs, masks, unquantized copies, argmax,
    // gradients), an evaluation twice (the outputs, masks).
    CpuMemory { fixed: 4 * (4 * parameters + largest), per_sample: 4 * (5 * outputs + columns + widest), per_row: 4 * (2 * outputs + widest) }
}

/// Checks one training of `net` at `batch` (recipe field `field`) on `backend`.
pub fn check_training(backend: &Backend, field: &str, net: &Net, batch: usize) -> Result<()> {
    check_training_with(backend, field, net, None, batch)
}

/// `check_training` for a student trained beside `teacher`'s forward at the same batch
/// (distillation): on the CPU their memory adds up.
pub fn check_training_with(backend: &Backend, field: &str, net: &Net, teacher: Option<&Net>, batch: usize) -> Result<()> {
    if let (Backend::Gpu(_), Some(t)) = (backend, teacher) {
        // GPU buffers are checked one by one, so each net alone.
        check_training_with(backend, field, t, None, batch)?;
    }
    // In u64: on wasm32 a usize product of a huge model's sizes would overflow (and panic).
    let refuse = |what: String, largest: u64| {
        let fits = if largest >= 1 { format!("the largest batch that fits is {largest}") } else { "no batch fits: choose a smaller model".into() };
        Err(Error::recipe(field, format!("{batch} {what}; {fits}")))
    };
    match backend {
        Backend::Gpu(ctx) => {
            let per_sample = net.largest_per_sample().max(net.input().size()) as u64 * 4;
            let largest_tensor = net.tensors().iter().map(|t| t.rows as u64 * t.cols as u64 * 4).max().unwrap_or(0);
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
            let student = cpu_memory(net);
            let teacher = teacher.map(cpu_memory);
            let fixed = student.fixed + teacher.map_or(0, |t| t.fixed);
            // Each sample: the student's step, and the teacher's forward of it.
            let per = student.per_sample + teacher.map_or(0, |t| t.per_row);
            let mb = |b: u64| b >> 20;
            if fixed >= CPU_BUDGET {
                return Err(Error::recipe(field, format!("{} needs {} MB for its parameters and optimizer state, over the CPU backend's {} MB: choose a smaller model", net.arch, mb(fixed), mb(CPU_BUDGET))));
            }
            // Evaluation runs EVAL_ROWS rows at a time (the batch, when larger, which the step's
            // check covers). Where those do not fit, no batch does.
            let eval = fixed + student.per_row * EVAL_ROWS as u64;
            let by_step = (CPU_BUDGET - fixed) / per.max(1);
            let largest = if eval <= CPU_BUDGET { by_step } else { 0 };
            if batch as u64 > by_step {
                return refuse(format!("needs about {} MB of working memory on the CPU backend, over its {} MB", mb(fixed + per * batch as u64), mb(CPU_BUDGET)), largest);
            }
            if batch as u64 > largest {
                return refuse(format!("needs about {} MB on the CPU backend to evaluate {EVAL_ROWS} images at a time, over its {} MB", mb(eval), mb(CPU_BUDGET)), largest);
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
