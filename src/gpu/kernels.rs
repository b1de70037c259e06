//! One typed launcher per WGSL kernel. Each `*Params` struct is its kernel's uniform block, byte
//! for byte; each launcher builds a `Launch` (pipeline + bind group + grid) once, which a program
//! replays every step. Kernel sources: shaders/*.wgsl; CPU twins: reference::ops.

use super::context::{GpuContext, MatmulKernel};
use crate::compress::quant::QuantFn;
use crate::reference::ops::Geometry;

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
    pub matmul_tiled: Kernel,
    pub split_sum: Kernel,
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
    pub gather_rows: Kernel,
    pub mask_apply: Kernel,
    pub taylor_accumulate: Kernel,
    pub shared_update: Kernel,
    pub im2col: Kernel,
    pub col2im: Kernel,
    pub conv_direct_forward: Kernel,
    pub conv_direct_dw: Kernel,
    pub conv_direct_dx: Kernel,
    pub maxpool_forward: Kernel,
    pub maxpool_backward: Kernel,
    pub avgpool_forward: Kernel,
    pub avgpool_backward: Kernel,
    pub bn_stats: Kernel,
    pub bn_forward: Kernel,
    pub bn_backward_sums: Kernel,
    pub bn_backward_input: Kernel,
    pub add_forward: Kernel,
    pub add_into: Kernel,
    pub attention_transfer: Kernel,
    pub hint_loss: Kernel,
    pub fake_quant: Kernel,
    pub fake_quant_act: Kernel,
    pub ste_clip: Kernel,
    pub fake_quant_act_raw: Kernel,
    pub lsq_backward: Kernel,
    pub lsq_sync: Kernel,
    pub act_range: Kernel,
    pub distill_loss: Kernel,
}

/// A shader file's text as compiled into the binary: shaders/<file> without comments or
/// indentation (build.rs writes it to OUT_DIR, lines kept).
macro_rules! wgsl {
    ($file:literal) => {
        include_str!(concat!(env!("OUT_DIR"), "/", $file))
    };
}

/// A shader module's source: shaders/common.wgsl (the shared structs and helpers) followed by the
/// named file; joined when the module compiles, so the binary holds common.wgsl once.
macro_rules! shader {
    ($file:literal) => {
        wgpu::ShaderModuleDescriptor { label: Some($file), source: wgpu::ShaderSource::Wgsl(format!("{}{}", wgsl!("common.wgsl"), wgsl!($file)).into()) }
    };
}

impl Kernel {
    fn new(device: &wgpu::Device, m: &wgpu::ShaderModule, entry: &str) -> Kernel {
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
    }
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Kernels {
        let module = |src: wgpu::ShaderModuleDescriptor| device.create_shader_module(src);
        let matmul = module(shader!("matmul.wgsl"));
        let dense = module(shader!("dense.wgsl"));
        let loss = module(shader!("loss.wgsl"));
        let metrics = module(shader!("metrics.wgsl"));
        let accumulate = module(shader!("accumulate.wgsl"));
        let optim = module(shader!("optim.wgsl"));
        let data = module(shader!("data.wgsl"));
        let mask = module(shader!("mask.wgsl"));
        let conv = module(shader!("conv.wgsl"));
        let pool = module(shader!("pool.wgsl"));
        let bn = module(shader!("batchnorm.wgsl"));
        let add = module(shader!("add.wgsl"));
        let quant = module(shader!("quant.wgsl"));
        let attention = module(shader!("attention.wgsl"));
        let k = |m: &wgpu::ShaderModule, entry: &str| Kernel::new(device, m, entry);
        Kernels {
            matmul: k(&matmul, "matmul"),
            matmul_tiled: k(&matmul, "matmul_tiled"),
            split_sum: k(&matmul, "split_sum"),
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
            gather_rows: k(&data, "gather_rows"),
            mask_apply: k(&mask, "mask_apply"),
            taylor_accumulate: k(&mask, "taylor_accumulate"),
            shared_update: k(&mask, "shared_update"),
            im2col: k(&conv, "im2col"),
            col2im: k(&conv, "col2im"),
            conv_direct_forward: k(&conv, "conv_direct_forward"),
            conv_direct_dw: k(&conv, "conv_direct_dw"),
            conv_direct_dx: k(&conv, "conv_direct_dx"),
            maxpool_forward: k(&pool, "maxpool_forward"),
            maxpool_backward: k(&pool, "maxpool_backward"),
            avgpool_forward: k(&pool, "avgpool_forward"),
            avgpool_backward: k(&pool, "avgpool_backward"),
            bn_stats: k(&bn, "bn_stats"),
            bn_forward: k(&bn, "bn_forward"),
            bn_backward_sums: k(&bn, "bn_backward_sums"),
            bn_backward_input: k(&bn, "bn_backward_input"),
            add_forward: k(&add, "add_forward"),
            add_into: k(&add, "add_into"),
            attention_transfer: k(&attention, "attention_transfer"),
            hint_loss: k(&attention, "hint_loss"),
            fake_quant: k(&quant, "fake_quant"),
            fake_quant_act: k(&quant, "fake_quant_act"),
            ste_clip: k(&quant, "ste_clip"),
            fake_quant_act_raw: k(&quant, "fake_quant_act_raw"),
            lsq_backward: k(&quant, "lsq_backward"),
            lsq_sync: k(&quant, "lsq_sync"),
            act_range: k(&quant, "act_range"),
            distill_loss: k(&loss, "distill_loss"),
        }
    }
}

/// The integer inference kernels (shaders/int8.wgsl), compiled on first use, not with the rest:
/// the `dot4I8Packed` product only where the adapter's WGSL has packed_4x8_integer_dot_product
/// and its module compiles, so a missing feature costs that variant, never the GPU backend.
#[derive(Clone)]
pub struct Int8Kernels {
    /// The product with the four signed bytes unpacked by shifts (every adapter).
    pub gemm: Kernel,
    pub gemm_dot4: Option<Kernel>,
    pub input: Kernel,
    pub im2col: Kernel,
    pub maxpool: Kernel,
}

/// The product's `dot4`, appended to shaders/int8.wgsl: by hand (sign-extending shifts), or the
/// builtin behind its language feature (`requires` must open the module).
const DOT4_MANUAL: &str = "
fn dot4(a: u32, b: u32) -> i32 {
    let x = vec4<i32>(i32(a << 24u) >> 24u, i32(a << 16u) >> 24u, i32(a << 8u) >> 24u, i32(a) >> 24u);
    let y = vec4<i32>(i32(b << 24u) >> 24u, i32(b << 16u) >> 24u, i32(b << 8u) >> 24u, i32(b) >> 24u);
    return dot(x, y);
}
";
const DOT4_BUILTIN: &str = "
fn dot4(a: u32, b: u32) -> i32 {
    return dot4I8Packed(a, b);
}
";

impl Int8Kernels {
    /// Compiles the integer kernels; the dot4I8Packed product only if `wgsl` has the feature (and
    /// its compilation raises no validation error).
    pub async fn new(device: &wgpu::Device, wgsl: wgpu::WgslLanguageFeatures) -> crate::Result<Int8Kernels> {
        let (common, int8) = (wgsl!("common.wgsl"), wgsl!("int8.wgsl"));
        let module = |src: String| device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some("int8.wgsl"), source: wgpu::ShaderSource::Wgsl(src.into()) });
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let m = module(format!("{common}{int8}{DOT4_MANUAL}"));
        let k = |e: &str| Kernel::new(device, &m, e);
        let (gemm, input, im2col, maxpool) = (k("int8_gemm"), k("int8_input"), k("int8_im2col"), k("int8_maxpool"));
        if let Some(e) = scope.pop().await {
            return Err(crate::Error::Gpu(format!("int8 shader compilation failed: {e}")));
        }
        let mut gemm_dot4 = None;
        if wgsl.contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct) {
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let m = module(format!("requires packed_4x8_integer_dot_product;\n{common}{int8}{DOT4_BUILTIN}"));
            let kernel = Kernel::new(device, &m, "int8_gemm");
            gemm_dot4 = scope.pop().await.is_none().then_some(kernel);
        }
        Ok(Int8Kernels { gemm, gemm_dot4, input, im2col, maxpool })
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
    /// Workgroups dispatched, x·y·z.
    pub fn groups(&self) -> [u32; 3] {
        self.groups
    }
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
    grid_folded(n.div_ceil(256))
}

/// The same for a 64-wide kernel.
fn grid_64(n: u32) -> [u32; 3] {
    grid_folded(n.div_ceil(64))
}

fn grid_folded(groups: u32) -> [u32; 3] {
    let groups = groups.max(1);
    if groups <= 65535 {
        [groups, 1, 1]
    } else {
        [65535, groups.div_ceil(65535), 1]
    }
}

impl GpuContext {
    /// Binds `uniform` at 0 and `buffers` at 1.. in order.
    fn launch<T: bytemuck::Pod>(&self, k: &Kernel, uniform: &T, buffers: &[&wgpu::Buffer], groups: [u32; 3], label: &str) -> Launch {
        let at: Vec<(u32, &wgpu::Buffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32 + 1, *b)).collect();
        self.launch_at(k, uniform, &at, groups, label)
    }

    /// Binds `uniform` at 0 and each buffer at its binding (for kernels whose layout has gaps).
    fn launch_at<T: bytemuck::Pod>(&self, k: &Kernel, uniform: &T, buffers: &[(u32, &wgpu::Buffer)], groups: [u32; 3], label: &str) -> Launch {
        let uniform = self.uniform(uniform, label);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for (i, b) in buffers {
            entries.push(wgpu::BindGroupEntry { binding: *i, resource: b.as_entire_binding() });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(label), layout: &k.layout, entries: &entries });
        Launch { pipeline: k.pipeline.clone(), bind_group, groups, uniform }
    }

    /// C[M,N] (+)= op(A)·op(B). A is stored [M,K] (or [K,M] when `trans_a`), B [K,N] (or [N,K]).
    /// Row tiles past 65,535 fold into z (the shader unfolds them). Runs this context's matmul
    /// kernel (`GpuContext::matmul`: register-blocked or tiled, picked by timing both).
    pub fn matmul(&self, p: MatmulParams, a: &wgpu::Buffer, b: &wgpu::Buffer, c: &wgpu::Buffer) -> Launch {
        let tiles = p.m.div_ceil(32).max(1);
        let groups = [p.n.div_ceil(32), tiles.min(65535), tiles.div_ceil(65535)];
        self.launch(self.matmul_kernel(), &p, &[a, b, c], groups, "matmul")
    }

    /// Each matmul kernel's speed here, GFLOP/s over LeNet-300-100's products at batch 64
    /// (forward, and both backward products of the first layer), the best of three timed passes
    /// after a warm-up one. Wall time of submit to read-back, so it holds on every backend.
    pub async fn time_matmuls(&self) -> crate::Result<Vec<(MatmulKernel, f64)>> {
        // (M, N, K, trans_a, trans_b)
        let shapes = [(64, 300, 784, false, false), (64, 100, 300, false, false), (784, 300, 64, true, false), (64, 784, 300, false, true)];
        let mut launches = Vec::new();
        let mut flops = 0.0;
        for &(m, n, k, ta, tb) in &shapes {
            let (a, b, c) = (self.storage_zeroed(4 * (m * k) as u64, "a"), self.storage_zeroed(4 * (k * n) as u64, "b"), self.storage_zeroed(4 * (m * n) as u64, "c"));
            launches.push((MatmulParams::new(m, n, k, ta, tb, false), a, b, c));
            flops += 2.0 * (m * n * k) as f64;
        }
        let sync = &launches[1].3;
        let mut speeds = Vec::new();
        for variant in [MatmulKernel::Registers, MatmulKernel::Tiled] {
            let k = match variant {
                MatmulKernel::Registers => &self.kernels.matmul,
                MatmulKernel::Tiled => &self.kernels.matmul_tiled,
            };
            let pass: Vec<Launch> = launches
                .iter()
                .map(|(p, a, b, c)| {
                    let tiles = p.m.div_ceil(32);
                    self.launch(k, p, &[a, b, c], [p.n.div_ceil(32), tiles.min(65535), tiles.div_ceil(65535)], "matmul timing")
                })
                .collect();
            speeds.push((variant, flops / self.best_time(&pass, sync, 3).await? / 1e9));
        }
        Ok(speeds)
    }

    /// K split over workgroup layers against one pass over K, with this context's matmul kernel,
    /// on a product that wants splitting (LeNet-5's first convolution's weight gradient at batch
    /// 16: C is [25, 20], K is 16·24·24): (layers, split GFLOP/s, unsplit GFLOP/s).
    pub async fn time_split_k(&self) -> crate::Result<(u32, f64, f64)> {
        let p = MatmulParams::new(25, 20, 16 * 24 * 24, true, false, false);
        let splits = p.split_k();
        let (a, b, c) = (self.storage_zeroed(4 * (p.k * p.m) as u64, "a"), self.storage_zeroed(4 * (p.k * p.n) as u64, "b"), self.storage_zeroed(4 * (p.m * p.n) as u64, "c"));
        let partial = self.storage_zeroed(4 * (splits * p.m * p.n) as u64, "split-k partial products");
        let flops = 2.0 * (p.m * p.n * p.k) as f64;
        let split = flops / self.best_time(&self.matmul_split_k(p, splits, &a, &b, &c, &partial), &c, 2).await? / 1e9;
        let unsplit = flops / self.best_time(&self.matmul_split_k(p, 1, &a, &b, &c, &partial), &c, 2).await? / 1e9;
        Ok((splits, split, unsplit))
    }

    /// The fastest of `passes` timed runs of `pass` after an untimed warm-up one, in seconds: wall
    /// time from submit to reading `sync` back, so it holds on every backend.
    async fn best_time(&self, pass: &[Launch], sync: &wgpu::Buffer, passes: usize) -> crate::Result<f64> {
        let mut best = f64::INFINITY;
        for i in 0..=passes {
            let t0 = crate::experiment::now_s();
            run(self, pass);
            self.read::<f32>(sync).await?;
            if i > 0 {
                best = best.min(crate::experiment::now_s() - t0);
            }
        }
        Ok(best.max(1e-9))
    }

    fn matmul_kernel(&self) -> &Kernel {
        match self.matmul {
            MatmulKernel::Registers => &self.kernels.matmul,
            MatmulKernel::Tiled => &self.kernels.matmul_tiled,
        }
    }

    /// The same product with K split over `splits` workgroup layers (see shaders/matmul.wgsl):
    /// partial products go to `partial` (at least splits·M·N floats), then `split_sum` adds them
    /// into C. One plain `matmul` when `splits` <= 1. Pick `splits` with `MatmulParams::split_k`.
    pub fn matmul_split_k(&self, p: MatmulParams, splits: u32, a: &wgpu::Buffer, b: &wgpu::Buffer, c: &wgpu::Buffer, partial: &wgpu::Buffer) -> Vec<Launch> {
        if splits <= 1 {
            return vec![self.matmul(p, a, b, c)];
        }
        let chunk = p.k.div_ceil(splits);
        let splits = p.k.div_ceil(chunk);
        let part = MatmulParams { k_chunk: chunk, accumulate: 0, ..p };
        let groups = [p.n.div_ceil(32), p.m.div_ceil(32), splits];
        let product = self.launch(self.matmul_kernel(), &part, &[a, b, partial], groups, "matmul split-k");
        vec![product, self.split_sum(SplitParams { len: p.m * p.n, splits, accumulate: p.accumulate, _pad: 0 }, partial, c)]
    }

    /// total[i] (+)= Σ_z partial[z·len + i].
    pub fn split_sum(&self, p: SplitParams, partial: &wgpu::Buffer, total: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.split_sum, &p, &[partial, total], grid_1d(p.len), "split_sum")
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

    /// The distillation head (shaders/loss.wgsl): row_loss and dlogits of the student's logits
    /// against the teacher's and the labels, weighed by `w`.
    #[allow(clippy::too_many_arguments)]
    pub fn distill_loss(&self, p: HeadParams, w: crate::nn::DistillParams, step: &wgpu::Buffer, logits: &wgpu::Buffer, teacher: &wgpu::Buffer, labels: &wgpu::Buffer, dlogits: &wgpu::Buffer, row_loss: &wgpu::Buffer) -> Launch {
        let weights = self.uniform(&w, "distill weights"); // kept alive by the bind group
        let at = [(1, step), (2, logits), (3, labels), (4, dlogits), (5, row_loss), (6, teacher), (7, &weights)];
        self.launch_at(&self.kernels.distill_loss, &p, &at, [p.rows.div_ceil(64), 1, 1], "distill_loss")
    }

    /// Attention transfer between a student and a teacher node output (shaders/attention.wgsl):
    /// adds each row's loss into `row_loss`, writes the student output's gradient to `grad`.
    pub fn attention_transfer(&self, p: AttentionParams, step: &wgpu::Buffer, student: &wgpu::Buffer, teacher: &wgpu::Buffer, grad: &wgpu::Buffer, row_loss: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.attention_transfer, &p, &[step, student, teacher, grad, row_loss], [p.rows, 1, 1], "attention_transfer")
    }

    /// FitNets' hint loss of a projected student output `y` against the teacher's `t` (both
    /// [B, P, Ct]; p.cs = p.ct = Ct, p.beta the weight): adds each row's loss, writes dY to `grad`.
    pub fn hint_loss(&self, p: AttentionParams, step: &wgpu::Buffer, y: &wgpu::Buffer, t: &wgpu::Buffer, grad: &wgpu::Buffer, row_loss: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.hint_loss, &p, &[step, y, t, grad, row_loss], [p.rows, 1, 1], "hint_loss")
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

    /// One optimizer update of `w` from `g` with state `m` (and `v` for Adam); p.n elements. The
    /// step's lr and eps are read from `step` (an `OptimStep` uniform the caller shares between
    /// tensors and rewrites once per step), the rest of `p` is the tensor's own.
    #[allow(clippy::too_many_arguments)]
    pub fn optimizer(&self, adam: bool, p: crate::nn::OptimParams, step: &wgpu::Buffer, w: &wgpu::Buffer, g: &wgpu::Buffer, m: &wgpu::Buffer, v: &wgpu::Buffer) -> Launch {
        if adam {
            self.launch_at(&self.kernels.adam, &p, &[(1, w), (2, g), (3, m), (4, v), (5, step)], grid_1d(p.n), "adam")
        } else {
            // sgd never touches `v`, so its auto-derived layout has no binding 4.
            self.launch_at(&self.kernels.sgd, &p, &[(1, w), (2, g), (3, m), (5, step)], grid_1d(p.n), "sgd")
        }
    }

    /// w *= mask over `n` elements (mask exactly 0/1).
    pub fn mask_apply(&self, n: u32, w: &wgpu::Buffer, mask: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.mask_apply, &MaskParams { n }, &[w, mask], grid_1d(n), "mask_apply")
    }

    /// Shared weights after an optimizer step: each cluster's centroid moves by its members' summed
    /// (or mean) update and the members take it; the last group (no cluster) is set to 0.
    /// `offsets` has groups + 2 entries (shaders/mask.wgsl).
    pub fn shared_update(&self, groups: u32, mean: bool, w: &wgpu::Buffer, centroids: &wgpu::Buffer, offsets: &wgpu::Buffer, members: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.shared_update, &SharedParams { groups, mean: mean as u32 }, &[w, centroids, offsets, members], [groups + 1, 1, 1], "shared_update")
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

    /// dst [rows, cols] = the rows perm[offset..offset + valid] of `table` [N, cols] (the step
    /// uniform's offset and valid rows; padding rows 0).
    pub fn gather_rows(&self, rows: u32, cols: u32, step: &wgpu::Buffer, perm: &wgpu::Buffer, table: &wgpu::Buffer, dst: &wgpu::Buffer) -> Launch {
        let p = GatherParams { rows, pixels: cols, scale: 1.0, shift: 0.0, height: 1, width: cols, jitter: 0, _pad: 0 };
        self.launch_at(&self.kernels.gather_rows, &p, &[(1, step), (4, perm), (7, table), (8, dst)], grid_1d(rows * cols), "gather_rows")
    }
}

/// Integer inference launchers (shaders/int8.wgsl; twins: reference::int8).
impl GpuContext {
    /// x [B·P] = pixel − 128 of the u8 dataset from pixel `p.first` (rewrite the uniform per batch).
    pub fn int8_input(&self, k: &Int8Kernels, p: Im2colParams, images: &wgpu::Buffer, x: &wgpu::Buffer) -> Launch {
        self.launch(&k.input, &p, &[images, x], grid_1d(p.s.batch * p.s.h * p.s.w * p.s.c), "int8_input")
    }

    /// Packed cols [B·OH·OW, k4] of x [B, H, W, C] (int8 values as i32).
    pub fn int8_im2col(&self, k: &Int8Kernels, g: &Geometry, pad_value: i32, k4: u32, x: &wgpu::Buffer, cols: &wgpu::Buffer) -> Launch {
        let p = Im2colParams::new(g, pad_value, k4);
        self.launch(&k.im2col, &p, &[x, cols], grid_1d(g.positions() as u32 * k4), "int8_im2col")
    }

    /// out [M, N] = epilogue(cols · weightsᵀ + bias); `dot4`: the dot4I8Packed variant.
    #[allow(clippy::too_many_arguments)]
    pub fn int8_gemm(&self, k: &Int8Kernels, dot4: bool, p: GemmParams, cols: &wgpu::Buffer, weights: &wgpu::Buffer, bias: &wgpu::Buffer, mult: &wgpu::Buffer, shift: &wgpu::Buffer, out: &wgpu::Buffer) -> Launch {
        let kernel = if dot4 { k.gemm_dot4.as_ref().unwrap_or(&k.gemm) } else { &k.gemm };
        let tiles = p.rows.div_ceil(32);
        let groups = [p.outputs.div_ceil(32), tiles.min(65535), tiles.div_ceil(65535)];
        self.launch(kernel, &p, &[cols, weights, bias, mult, shift, out], groups, "int8_gemm")
    }

    /// y = window maxima of x (int8 values as i32).
    pub fn int8_maxpool(&self, k: &Int8Kernels, g: &Geometry, x: &wgpu::Buffer, y: &wgpu::Buffer) -> Launch {
        self.launch(&k.maxpool, &SpatialParams::new(g, false), &[x, y], grid_1d((g.positions() * g.c) as u32), "int8_maxpool")
    }
}

/// Convolution and pooling launchers (shaders/conv.wgsl, shaders/pool.wgsl). `g` gives the shape;
/// `accumulate` makes a backward kernel add into dX instead of overwriting it.
impl GpuContext {
    /// cols [B·OH·OW, K·K·C] = im2col(x).
    pub fn im2col(&self, g: &Geometry, x: &wgpu::Buffer, cols: &wgpu::Buffer) -> Launch {
        let n = (g.positions() * g.patch()) as u32;
        self.launch(&self.kernels.im2col, &SpatialParams::new(g, false), &[x, cols], grid_1d(n), "im2col")
    }

    /// dx [B,H,W,C] (+)= col2im(dcols).
    pub fn col2im(&self, g: &Geometry, dcols: &wgpu::Buffer, dx: &wgpu::Buffer, accumulate: bool) -> Launch {
        let n = (g.batch * g.h * g.w * g.c) as u32;
        self.launch(&self.kernels.col2im, &SpatialParams::new(g, accumulate), &[dcols, dx], grid_1d(n), "col2im")
    }

    /// y [B·OH·OW, Cout] = bias + direct convolution of x with w [K·K·C, Cout] (no patch matrix).
    pub fn conv_direct_forward(&self, g: &Geometry, outputs: usize, x: &wgpu::Buffer, w: &wgpu::Buffer, bias: &wgpu::Buffer, y: &wgpu::Buffer) -> Launch {
        let n = (g.positions() * outputs.div_ceil(4)) as u32;
        self.launch(&self.kernels.conv_direct_forward, &SpatialParams::new(g, false).with_outputs(outputs), &[x, w, bias, y], grid_64(n), "conv_direct_forward")
    }

    /// dw [K·K·C, Cout] = the weight gradient from x and dy, directly.
    pub fn conv_direct_dw(&self, g: &Geometry, outputs: usize, x: &wgpu::Buffer, dy: &wgpu::Buffer, dw: &wgpu::Buffer) -> Launch {
        let n = (g.patch() * outputs) as u32;
        self.launch(&self.kernels.conv_direct_dw, &SpatialParams::new(g, false).with_outputs(outputs), &[x, dy, dw], grid_64(n), "conv_direct_dw")
    }

    /// dx [B,H,W,C] (+)= the input gradient from dy and w, directly.
    pub fn conv_direct_dx(&self, g: &Geometry, outputs: usize, dy: &wgpu::Buffer, w: &wgpu::Buffer, dx: &wgpu::Buffer, accumulate: bool) -> Launch {
        let n = (g.batch * g.h * g.w * g.c) as u32;
        self.launch(&self.kernels.conv_direct_dx, &SpatialParams::new(g, accumulate).with_outputs(outputs), &[dy, w, dx], grid_64(n), "conv_direct_dx")
    }

    /// y, argmax [B,OH,OW,C] = window maxima of x.
    pub fn maxpool_forward(&self, g: &Geometry, x: &wgpu::Buffer, y: &wgpu::Buffer, argmax: &wgpu::Buffer) -> Launch {
        let n = (g.positions() * g.c) as u32;
        self.launch(&self.kernels.maxpool_forward, &SpatialParams::new(g, false), &[x, y, argmax], grid_1d(n), "maxpool_forward")
    }

    /// dx (+)= dy routed to each window's argmax.
    pub fn maxpool_backward(&self, g: &Geometry, dy: &wgpu::Buffer, dx: &wgpu::Buffer, argmax: &wgpu::Buffer, accumulate: bool) -> Launch {
        let n = (g.batch * g.h * g.w * g.c) as u32;
        self.launch(&self.kernels.maxpool_backward, &SpatialParams::new(g, accumulate), &[dy, dx, argmax], grid_1d(n), "maxpool_backward")
    }

    /// y [B,OH,OW,C] = window means of x.
    pub fn avgpool_forward(&self, g: &Geometry, x: &wgpu::Buffer, y: &wgpu::Buffer) -> Launch {
        let n = (g.positions() * g.c) as u32;
        self.launch(&self.kernels.avgpool_forward, &SpatialParams::new(g, false), &[x, y], grid_1d(n), "avgpool_forward")
    }

    /// dx (+)= dy / K² over each window.
    pub fn avgpool_backward(&self, g: &Geometry, dy: &wgpu::Buffer, dx: &wgpu::Buffer, accumulate: bool) -> Launch {
        let n = (g.batch * g.h * g.w * g.c) as u32;
        self.launch(&self.kernels.avgpool_backward, &SpatialParams::new(g, accumulate), &[dy, dx], grid_1d(n), "avgpool_backward")
    }

    /// y = a + b over `n` elements.
    pub fn add_forward(&self, n: u32, a: &wgpu::Buffer, b: &wgpu::Buffer, y: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.add_forward, &AddParams { n, accumulate: 0 }, &[a, b, y], grid_1d(n), "add_forward")
    }

    /// dst (+)= src over `n` elements.
    pub fn add_into(&self, n: u32, src: &wgpu::Buffer, dst: &wgpu::Buffer, accumulate: bool) -> Launch {
        self.launch(&self.kernels.add_into, &AddParams { n, accumulate: accumulate as u32 }, &[src, dst], grid_1d(n), "add_into")
    }
}

/// Fake-quantization launchers (shaders/quant.wgsl). `table` holds the quantizer's numbers
/// (`QuantParams::of`); `p.n` elements.
impl GpuContext {
    /// dst = fq(src): the quantized copy of a weight that forward and dX products read.
    pub fn fake_quant(&self, p: QuantParams, table: &wgpu::Buffer, src: &wgpu::Buffer, dst: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.fake_quant, &p, &[table, src, dst], grid_1d(p.n), "fake_quant")
    }

    /// y = fq(y) in place, keep = 1 where y was inside the range (its gradient passes), else 0.
    pub fn fake_quant_act(&self, p: QuantParams, table: &wgpu::Buffer, y: &wgpu::Buffer, keep: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.fake_quant_act, &p, &[table, y, keep], grid_1d(p.n), "fake_quant_act")
    }

    /// grad = 0 where the master weight w is outside the range (straight-through estimator).
    pub fn ste_clip(&self, p: QuantParams, table: &wgpu::Buffer, w: &wgpu::Buffer, grad: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.ste_clip, &p, &[table, w, grad], grid_1d(p.n), "ste_clip")
    }

    /// y = fq(y) in place, raw = y before (what lsq_backward differentiates at).
    pub fn fake_quant_act_raw(&self, p: QuantParams, table: &wgpu::Buffer, y: &wgpu::Buffer, raw: &wgpu::Buffer) -> Launch {
        self.launch(&self.kernels.fake_quant_act_raw, &p, &[table, y, raw], grid_1d(p.n), "fake_quant_act_raw")
    }

    /// LSQ backward at x (a master weight, or an activation's raw value) with d = ∂L/∂fq(x):
    /// gtable = each step's gradient (times `p.grad_scale`), then d clipped where x was outside.
    pub fn lsq_backward(&self, p: QuantParams, table: &wgpu::Buffer, x: &wgpu::Buffer, d: &wgpu::Buffer, gtable: &wgpu::Buffer) -> Launch {
        let channels = if p.per_channel == 1 { p.cols } else { 1 };
        self.launch(&self.kernels.lsq_backward, &p, &[table, x, d, gtable], [channels, 1, 1], "lsq_backward")
    }

    /// A dynamic quantizer's table = the affine fit of this batch's range of y (`per_row` elements
    /// per sample, the step uniform's valid rows; `q`: the quantizer's own uniform, for qmin/qmax).
    pub fn act_range(&self, q: QuantParams, per_row: u32, step: &wgpu::Buffer, y: &wgpu::Buffer, table: &wgpu::Buffer) -> Launch {
        let p = QuantParams { n: per_row, ..q };
        self.launch_at(&self.kernels.act_range, &p, &[(1, table), (2, y), (5, step)], [1, 1, 1], "act_range")
    }

    /// inv_step = 1/step for each of `channels` channels of an affine table, after an optimizer step.
    pub fn lsq_sync(&self, channels: u32, table: &wgpu::Buffer) -> Launch {
        let p = QuantParams { n: channels, cols: 1, per_channel: 0, mode: 0, qmin: 0, qmax: 0, levels: 0, grad_scale: 0.0 };
        self.launch(&self.kernels.lsq_sync, &p, &[table], grid_64(channels), "lsq_sync")
    }
}

/// Uniform of shaders/quant.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QuantParams {
    pub n: u32,
    pub cols: u32,
    pub per_channel: u32,
    pub mode: u32,
    pub qmin: i32,
    pub qmax: i32,
    pub levels: u32,
    /// lsq_backward: LSQ's gradient scale (`QuantFn::lsq_grad_scale`).
    pub grad_scale: f32,
}

impl QuantParams {
    /// The uniform and the table for `q` over `n` elements of `cols` columns.
    pub fn of(q: &QuantFn, n: usize, cols: usize) -> (QuantParams, Vec<f32>) {
        let base = QuantParams { n: n as u32, cols: cols.max(1) as u32, per_channel: 0, mode: 0, qmin: 0, qmax: 0, levels: 0, grad_scale: 0.0 };
        match q {
            QuantFn::Affine { qmin, qmax, channels } => {
                (QuantParams { per_channel: (channels.len() > 1) as u32, qmin: *qmin, qmax: *qmax, ..base }, channels.iter().flatten().copied().collect())
            }
            QuantFn::Levels { levels } => (QuantParams { mode: 1, levels: levels.len() as u32, ..base }, levels.clone()),
            QuantFn::F16 => (QuantParams { mode: 2, ..base }, vec![0.0]),
            // Affine, its one-channel table rewritten per batch by act_range.
            QuantFn::Dynamic { qmin, qmax } => (QuantParams { qmin: *qmin, qmax: *qmax, ..base }, vec![1.0, 1.0, 0.0]),
        }
    }
}

/// The buffers of one batch-norm node: X [R, C] in, batch statistics [2C] (mean, var), the
/// node's parameter tensors, and the step uniform (valid rows).
pub struct BnBuffers<'a> {
    pub step: &'a wgpu::Buffer,
    pub x: &'a wgpu::Buffer,
    pub stats: &'a wgpu::Buffer,
    pub gamma: &'a wgpu::Buffer,
    pub beta: &'a wgpu::Buffer,
    pub running_mean: &'a wgpu::Buffer,
    pub running_var: &'a wgpu::Buffer,
}

/// Batch-norm launchers (shaders/batchnorm.wgsl).
impl GpuContext {
    /// Batch statistics of the valid rows, and the running statistics moved toward them.
    pub fn bn_stats(&self, p: BnParams, b: &BnBuffers) -> Launch {
        self.launch_at(&self.kernels.bn_stats, &p, &[(1, b.step), (2, b.x), (3, b.stats), (4, b.running_mean), (5, b.running_var)], [p.c, 1, 1], "bn_stats")
    }

    /// y = gamma·x̂ + beta with batch (p.use_batch_stats) or running statistics.
    pub fn bn_forward(&self, p: BnParams, b: &BnBuffers, y: &wgpu::Buffer) -> Launch {
        let at = [(2, b.x), (3, b.stats), (4, b.running_mean), (5, b.running_var), (6, b.gamma), (7, b.beta), (8, y)];
        self.launch_at(&self.kernels.bn_forward, &p, &at, grid_1d(p.rows * p.c), "bn_forward")
    }

    /// dgamma, dbeta from dy (batch statistics).
    pub fn bn_backward_sums(&self, p: BnParams, b: &BnBuffers, dy: &wgpu::Buffer, dgamma: &wgpu::Buffer, dbeta: &wgpu::Buffer) -> Launch {
        let at = [(1, b.step), (2, b.x), (3, b.stats), (4, dy), (5, dgamma), (6, dbeta)];
        self.launch_at(&self.kernels.bn_backward_sums, &p, &at, [p.c, 1, 1], "bn_backward_sums")
    }

    /// dx (+)= the input gradient, given bn_backward_sums' dgamma, dbeta.
    pub fn bn_backward_input(&self, p: BnParams, b: &BnBuffers, dy: &wgpu::Buffer, dgamma: &wgpu::Buffer, dbeta: &wgpu::Buffer, dx: &wgpu::Buffer) -> Launch {
        let at = [(1, b.step), (2, b.x), (3, b.stats), (4, dy), (5, dgamma), (6, dbeta), (7, b.gamma), (8, dx)];
        self.launch_at(&self.kernels.bn_backward_input, &p, &at, grid_1d(p.rows * p.c), "bn_backward_input")
    }
}

/// Uniform of shaders/conv.wgsl and shaders/pool.wgsl (declared in shaders/common.wgsl).
/// Uniform of shaders/int8.wgsl's int8_gemm.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    pub rows: u32,
    pub outputs: u32,
    pub k4: u32,
    pub last: u32,
    pub zero_out: i32,
    pub lo: i32,
    pub hi: i32,
    /// Where row 0's outputs go in `out` (elements): batches of a pass side by side.
    pub out_offset: u32,
}

/// Uniform of shaders/int8.wgsl's int8_im2col and int8_input: a geometry and what packing needs.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Im2colParams {
    pub s: SpatialParams,
    pub pad_value: i32,
    pub k4: u32,
    pub first: u32,
    pub _pad: u32,
}

impl Im2colParams {
    pub fn new(g: &Geometry, pad_value: i32, k4: u32) -> Im2colParams {
        Im2colParams { s: SpatialParams::new(g, false), pad_value, k4, first: 0, _pad: 0 }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SpatialParams {
    pub batch: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub k: u32,
    pub stride: u32,
    pub pad: u32,
    pub accumulate: u32,
    pub outputs: u32,
    pub _pad: u32,
}

impl SpatialParams {
    pub fn new(g: &Geometry, accumulate: bool) -> SpatialParams {
        let u = |v: usize| v as u32;
        SpatialParams {
            batch: u(g.batch),
            h: u(g.h),
            w: u(g.w),
            c: u(g.c),
            oh: u(g.oh),
            ow: u(g.ow),
            k: u(g.k),
            stride: u(g.stride),
            pad: u(g.pad),
            accumulate: accumulate as u32,
            outputs: 0,
            _pad: 0,
        }
    }

    pub fn with_outputs(self, outputs: usize) -> SpatialParams {
        SpatialParams { outputs: outputs as u32, ..self }
    }
}

/// Uniform of shaders/batchnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BnParams {
    pub rows: u32,
    pub c: u32,
    pub per_sample: u32,
    pub use_batch_stats: u32,
    pub momentum: f32,
    pub eps: f32,
    pub accumulate: u32,
    pub _pad: u32,
}

/// Uniform of shaders/add.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AddParams {
    pub n: u32,
    pub accumulate: u32,
}

/// Uniform of shaders/mask.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MaskParams {
    pub n: u32,
}

/// Uniform of shaders/mask.wgsl's shared_update.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SharedParams {
    pub groups: u32,
    pub mean: u32,
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
    pub k_chunk: u32,
}

/// Uniform of split_sum in shaders/matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SplitParams {
    pub len: u32,
    pub splits: u32,
    pub accumulate: u32,
    pub _pad: u32,
}

impl MatmulParams {
    /// C[M,N] = op(A)[M,K]·op(B)[K,N]; the strides follow from which operand is stored transposed.
    pub fn new(m: u32, n: u32, k: u32, trans_a: bool, trans_b: bool, accumulate: bool) -> MatmulParams {
        let (a_row, a_col) = if trans_a { (1, m) } else { (k, 1) };
        let (b_row, b_col) = if trans_b { (1, k) } else { (n, 1) };
        MatmulParams { m, n, k, a_row, a_col, b_row, b_col, accumulate: accumulate as u32, k_chunk: k }
    }

    /// How many K splits this product wants: one unless C has too few 32x32 tiles to fill a GPU
    /// and K is long (conv weight gradients: C is [K·K·Cin, Cout], K is B·OH·OW). Then enough
    /// layers for about 256 workgroups, each still walking at least 512 K rows.
    pub fn split_k(&self) -> u32 {
        let tiles = self.m.div_ceil(32) * self.n.div_ceil(32);
        if tiles >= 64 || self.k < 2048 {
            return 1;
        }
        256u32.div_ceil(tiles).min(self.k / 512).max(1)
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

/// Uniform of shaders/attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    pub rows: u32,
    pub positions: u32,
    pub cs: u32,
    pub ct: u32,
    pub beta: f32,
    pub _pad: [u32; 3],
}

/// Uniform of shaders/data.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    pub rows: u32,
    pub pixels: u32,
    pub scale: f32,
    pub shift: f32,
    /// Image height and width (pixels = height · width · channels, stored [H, W, C]).
    pub height: u32,
    pub width: u32,
    /// Random translation by up to this many pixels each way (0: none).
    pub jitter: u32,
    pub _pad: u32,
}
