//! One typed launcher per WGSL kernel. Each `*Params` struct is its kernel's uniform block, byte
//! for byte; each launcher builds a `Launch` (pipeline + bind group + grid) once, which a program
//! replays every step. Kernel sources: shaders/*.wgsl; CPU twins: reference::ops.

use super::context::GpuContext;

/// A compiled compute pipeline with its (auto-derived) bind group layout.
#[derive(Clone)]
pub struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// Every pipeline, compiled once per device.
#[derive(Clone)]
pub struct Kernels {
    pub matmul: Kernel,
    pub bias_add: Kernel,
    pub bias_grad: Kernel,
    pub relu_forward: Kernel,
    pub relu_backward: Kernel,
    pub softmax_xent: Kernel,
    pub argmax_correct: Kernel,
    pub metrics_accumulate: Kernel,
    pub sgd: Kernel,
    pub adam: Kernel,
    pub gather_batch: Kernel,
    pub mask_apply: Kernel,
    pub taylor_accumulate: Kernel,
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Kernels {
        let module = |src: wgpu::ShaderModuleDescriptor| device.create_shader_module(src);
        let matmul = module(wgpu::include_wgsl!("../../shaders/matmul.wgsl"));
        let dense = module(wgpu::include_wgsl!("../../shaders/dense.wgsl"));
        let loss = module(wgpu::include_wgsl!("../../shaders/loss.wgsl"));
        let metrics = module(wgpu::include_wgsl!("../../shaders/metrics.wgsl"));
        let accumulate = module(wgpu::include_wgsl!("../../shaders/accumulate.wgsl"));
        let optim = module(wgpu::include_wgsl!("../../shaders/optim.wgsl"));
        let data = module(wgpu::include_wgsl!("../../shaders/data.wgsl"));
        let mask = module(wgpu::include_wgsl!("../../shaders/mask.wgsl"));
        let k = |m: &wgpu::ShaderModule, entry: &str| {
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: m,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            Kernel { pipeline, layout }
        };
        Kernels {
            matmul: k(&matmul, "matmul"),
            bias_add: k(&dense, "bias_add"),
            bias_grad: k(&dense, "bias_grad"),
            relu_forward: k(&dense, "relu_forward"),
            relu_backward: k(&dense, "relu_backward"),
            softmax_xent: k(&loss, "softmax_xent"),
            argmax_correct: k(&metrics, "argmax_correct"),
            metrics_accumulate: k(&accumulate, "metrics_accumulate"),
            sgd: k(&optim, "sgd"),
            adam: k(&optim, "adam"),
            gather_batch: k(&data, "gather_batch"),
            mask_apply: k(&mask, "mask_apply"),
            taylor_accumulate: k(&mask, "taylor_accumulate"),
        }
    }
}

/// A dispatch built once and recorded every step: pipeline, bind group, workgroup grid.
pub struct Launch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    /// The launch's own uniform block, kept alive with it (and rewritable by its owner).
    pub uniform: wgpu::Buffer,
}

impl Launch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// Records `launches` into one compute pass of one encoder and submits it: one submit per call.
/// Takes any iterator, so the per-step hot path chains its launch lists without allocating.
pub fn run<'a>(ctx: &GpuContext, launches: impl IntoIterator<Item = &'a Launch>) {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for l in launches {
            l.record(&mut pass);
        }
    }
    ctx.queue.submit([enc.finish()]);
}

/// Grid for `n` invocations of a 256-wide 1D kernel, folded into y past the 65535-group limit.
fn grid_1d(n: u32) -> [u32; 3] {
    let groups = n.div_ceil(256).max(1);
    if groups <= 65535 {
        [groups, 1, 1]
    } else {
        [65535, groups.div_ceil(65535), 1]
    }
}

impl GpuContext {
    /// Binds `uniform` at 0 and `buffers` at 1.. in order.
    fn launch<T: bytemuck::Pod>(&self, k: &Kernel, uniform: &T, buffers: &[&wgpu::Buffer], groups: [u32; 3], label: &str) -> Launch {
        let uniform = self.uniform(uniform, label);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout: &k.layout, entries: &entries });
        Launch { pipeline: k.pipeline.clone(), bind_group, groups, uniform }
    }

    /// C[M,N] (+)= op(A)·op(B). A is stored [M,K] (or [K,M] when `trans_a`), B [K,N] (or [N,K]).
    pub fn matmul(&self, p: MatmulParams, a: &wgpu::Buffer, b: &wgpu::Buffer, c: &wgpu::Buffer) -> Launch {
        let groups = [p.n.div_ceil(32), p.m.div_ceil(32), 1];
        self.launch(&self.kernels.matmul, &p, &[a, b, c], groups, "matmul")
    }

    /// Y[B,O] += bias[O].
    pub fn bias_add(&self, rows: u32, cols: u32, bias: &wgpu::Buffer, y: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.bias_add, &DenseParams { rows, cols }, &[bias, y], grid_1d(rows * cols), "bias_add")
    }

    /// dbias[O] = colsum dY[B,O].
    pub fn bias_grad(&self, rows: u32, cols: u32, dy: &wgpu::Buffer, dbias: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.bias_grad, &DenseParams { rows, cols }, &[dy, dbias], [cols.div_ceil(64), 1, 1], "bias_grad")
    }

    /// Y = max(Y, 0) in place over `n` elements.
    pub fn relu_forward(&self, n: u32, y: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.relu_forward, &DenseParams { rows: 1, cols: n }, &[y], grid_1d(n), "relu_forward")
    }

    /// dY *= (Y > 0) in place over `n` elements; `relu_out` is Y.
    pub fn relu_backward(&self, n: u32, relu_out: &wgpu::Buffer, grad: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.relu_backward, &DenseParams { rows: 1, cols: n }, &[relu_out, grad], grid_1d(n), "relu_backward")
    }

    /// dlogits, row_loss from logits [B,C] and labels [B]; `step` holds StepParams (V).
    pub fn softmax_xent(&self, p: HeadParams, step: &wgpu::Buffer, logits: &wgpu::Buffer, labels: &wgpu::Buffer, dlogits: &wgpu::Buffer, row_loss: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.softmax_xent, &p, &[step, logits, labels, dlogits, row_loss], [p.rows.div_ceil(64), 1, 1], "softmax_xent")
    }

    /// correct[B] = argmax(logits[b]) == labels[b] for b < V.
    pub fn argmax_correct(&self, p: HeadParams, step: &wgpu::Buffer, logits: &wgpu::Buffer, labels: &wgpu::Buffer, correct: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.argmax_correct, &p, &[step, logits, labels, correct], [p.rows.div_ceil(64), 1, 1], "argmax_correct")
    }

    /// acc[4] += [sum row_loss, sum correct, V]. Its uniform is the step buffer itself.
    pub fn metrics_accumulate(&self, step: &wgpu::Buffer, row_loss: &wgpu::Buffer, correct: &wgpu::Buffer, acc: &wgpu::Buffer) -> Launch {
        let k = &self.kernels.metrics_accumulate;
        let entries = [step, row_loss, correct, acc]
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect::<Vec<_>>();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some("metrics_accumulate"), layout: &k.layout, entries: &entries });
        Launch { pipeline: k.pipeline.clone(), bind_group, groups: [1, 1, 1], uniform: step.clone() }
    }

    /// One optimizer update of `w` from `g` with state `m` (and `v` for Adam); p.n elements.
    pub fn optimizer(&self, adam: bool, p: crate::nn::OptimParams, w: &wgpu::Buffer, g: &wgpu::Buffer, m: &wgpu::Buffer, v: &wgpu::Buffer) -> Launch {
        if adam {
            self.launch(&self.kernels.adam, &p, &[w, g, m, v], grid_1d(p.n), "adam")
        } else {
            // sgd never touches `v`, so its auto-derived layout has no binding 4.
            self.launch(&self.kernels.sgd, &p, &[w, g, m], grid_1d(p.n), "sgd")
        }
    }

    /// w *= mask over `n` elements (mask exactly 0/1).
    pub fn mask_apply(&self, n: u32, w: &wgpu::Buffer, mask: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.mask_apply, &MaskParams { n }, &[w, mask], grid_1d(n), "mask_apply")
    }

    /// score += |w * g| over `n` elements.
    pub fn taylor_accumulate(&self, n: u32, w: &wgpu::Buffer, g: &wgpu::Buffer, score: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.taylor_accumulate, &MaskParams { n }, &[w, g, score], grid_1d(n), "taylor_accumulate")
    }

    /// x [B,P], y [B] from the u8 dataset on the GPU, in the order of `perm`, offset/V from `step`.
    #[allow(clippy::too_many_arguments)]
    pub fn gather_batch(&self, p: GatherParams, step: &wgpu::Buffer, images: &wgpu::Buffer, labels: &wgpu::Buffer, perm: &wgpu::Buffer, x: &wgpu::Buffer, y: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.gather_batch, &p, &[step, images, labels, perm, x, y], grid_1d(p.rows * p.pixels), "gather_batch")
    }
}

/// Uniform of shaders/mask.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MaskParams {
    pub n: u32,
}

/// Uniform of shaders/matmul.wgsl. Build with `MatmulParams::new`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub a_row: u32,
    pub a_col: u32,
    pub b_row: u32,
    pub b_col: u32,
    pub accumulate: u32,
}

impl MatmulParams {
    /// C[M,N] = op(A)[M,K]·op(B)[K,N]; the strides follow from which operand is stored transposed.
    pub fn new(m: u32, n: u32, k: u32, trans_a: bool, trans_b: bool, accumulate: bool) -> MatmulParams {
        let (a_row, a_col) = if trans_a { (1, m) } else { (k, 1) };
        let (b_row, b_col) = if trans_b { (1, k) } else { (n, 1) };
        MatmulParams { m, n, k, a_row, a_col, b_row, b_col, accumulate: accumulate as u32 }
    }
}

/// Uniform of shaders/dense.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DenseParams {
    pub rows: u32,
    pub cols: u32,
}

/// Uniform of the classifier head kernels (shaders/loss.wgsl, shaders/metrics.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct HeadParams {
    pub rows: u32,
    pub classes: u32,
}

/// The per-step uniform shared by gather, loss and metrics: which rows this batch holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    pub offset: u32,
    pub valid: u32,
}

/// Uniform of shaders/data.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    pub rows: u32,
    pub pixels: u32,
    pub scale: f32,
    pub shift: f32,
}
