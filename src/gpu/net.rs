//! Any `Net` on the GPU: parameters, optimizer state, the u8 datasets and every activation live
//! in GPU buffers built once; a training step is one `write_buffer` of the step uniform (and the
//! optimizer uniforms) plus one submit of a prebuilt list of launches (gather, forward node by
//! node, loss, metrics, backward node by node in reverse, optimizer, hard masks). Loss/accuracy
//! accumulate on the GPU; nothing is read back unless asked for. Mirrors reference::net.
//! Legend: B = batch rows (padded), P = pixels, R = B·H·W rows of an NHWC activation.

use super::context::GpuContext;
use super::kernels::{run, AttentionParams, BnBuffers, BnParams, GatherParams, HeadParams, Launch, MatmulParams, QuantParams, StepParams};
use crate::data::{Dataset, Normalization, Splits};
use crate::error::Result;
use crate::nn::net::{Net, NetParams, Op, Role, BN_EPS, BN_MOMENTUM};
use crate::compress::quant::QuantFn;
use crate::nn::{OptimStep, OptimizerConfig, OptimizerKind, Transforms};
use crate::reference::net::{first_tensor, geometry};
use crate::reference::ops::Geometry;

/// The two ways a convolution runs (both in shaders/conv.wgsl): im2col + matmul, or direct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvMethod {
    Im2col,
    Direct,
}

impl ConvMethod {
    pub fn parse(name: &str) -> Option<ConvMethod> {
        match name {
            "im2col" => Some(ConvMethod::Im2col),
            "direct" => Some(ConvMethod::Direct),
            _ => None,
        }
    }

    /// The faster method on this adapter, from the measurements in the README ("Convolution,
    /// two ways"): im2col + matmul trains 3-4x faster than direct on both software adapters
    /// (lavapipe natively, SwiftShader in Chromium), for lenet5, vgg-mini and resnet-mini alike.
    /// No real GPU has been measured yet; until one is, every adapter gets im2col, and `--conv` /
    /// `?conv=` select the other for comparison.
    pub fn for_adapter(adapter: &super::AdapterSummary) -> ConvMethod {
        let _ = adapter;
        ConvMethod::Im2col
    }
}

/// Largest activation/scratch buffer an evaluation batch may need: keeps every binding well under
/// WebGPU's default 128 MiB limit.
pub(crate) const EVAL_BUFFER_BYTES: usize = 48 << 20;

/// The most rows an inference program over `net` may hold (its largest scratch within EVAL_BUFFER_BYTES).
pub fn eval_rows_limit(net: &Net) -> usize {
    let per_sample = net.largest_per_sample().max(net.input().size()) * 4;
    (EVAL_BUFFER_BYTES / per_sample).max(1)
}

fn zeroed(ctx: &GpuContext, floats: usize, label: &str) -> wgpu::Buffer {
    ctx.storage_zeroed(floats.max(1) as u64 * 4, label)
}

/// Activations of one forward pass at a fixed row count, and the launches that compute them.
struct ForwardProgram {
    rows: u32,
    step: wgpu::Buffer,
    /// acts[n] = output of node n [B, H, W, C]; acts[0] = x [B, P]; the last holds the logits.
    acts: Vec<wgpu::Buffer>,
    /// Per node: im2col columns (conv), argmax (max-pool), batch statistics (BN); else a stub.
    scratch: Vec<wgpu::Buffer>,
    dlogits: wgpu::Buffer,
    acc: wgpu::Buffer,
    /// gather, the nodes, softmax_xent, argmax_correct, metrics_accumulate.
    launches: Vec<Launch>,
    /// The gather's uniform and where its launch sits in `launches` (jitter rewrites it).
    gather: GatherParams,
    gather_at: usize,
    order: wgpu::Buffer,
    n: usize,
    /// Activation-quantized nodes: 1.0 where the output was inside the range (for backward).
    keep: Vec<Option<wgpu::Buffer>>,
    /// The batch's labels and per-row loss, and where the loss launch sits in `launches` (the
    /// loss slot: a teacher replaces it with the distillation head).
    labels: wgpu::Buffer,
    row_loss: wgpu::Buffer,
    loss_at: usize,
    /// Launches of a teacher's forward pass just before the loss (0: none).
    teacher_launches: usize,
    /// The split's images and labels (u8), for a teacher's own gather.
    data: (wgpu::Buffer, wgpu::Buffer),
    /// A teacher with its own normalisation: its gather's uniform and place in `launches`.
    teacher_gather: Option<(GatherParams, usize)>,
}

/// The GPU side of a trainer's `Transforms`: per tensor the buffer forward reads (the quantized
/// copy, or the parameter itself) and the quantizer (uniform, table); per node the activation
/// quantizer's table. Where steps are learned (LSQ), the uniform carries the gradient scale and
/// `learned_*` says so.
struct Slots {
    view: Vec<wgpu::Buffer>,
    weights: Vec<Option<(QuantParams, wgpu::Buffer)>>,
    activations: Vec<Option<(QuantParams, wgpu::Buffer)>>,
    learned_weights: Vec<bool>,
    learned_activations: Vec<bool>,
    /// Activation quantizers whose range is each batch's own (QuantFn::Dynamic).
    dynamic: Vec<bool>,
}

impl Slots {
    fn new(ctx: &GpuContext, net: &Net, params: &[wgpu::Buffer], t: &Transforms) -> Slots {
        let infos = net.tensors();
        let weights: Vec<Option<(QuantParams, wgpu::Buffer)>> = infos
            .iter()
            .enumerate()
            .map(|(j, info)| {
                let q = t.weight(j)?;
                let (mut p, table) = QuantParams::of(q, info.len(), info.cols);
                p.grad_scale = q.lsq_grad_scale(info.len() / (table.len() / 3).max(1));
                Some((p, ctx.storage(&table, "weight quantizer")))
            })
            .collect();
        let view = params.iter().zip(&weights).map(|(b, q)| if q.is_some() { zeroed(ctx, b.size() as usize / 4, "quantized weight") } else { b.clone() }).collect();
        let activations = net
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let q = t.activation(n)?;
                let (mut p, table) = QuantParams::of(q, 0, node.shape.c);
                p.grad_scale = q.lsq_grad_scale(node.shape.size());
                Some((p, ctx.storage(&table, "activation quantizer")))
            })
            .collect();
        let learned_weights = (0..infos.len()).map(|j| t.learned_weight(j).is_some()).collect();
        let learned_activations = (0..net.nodes.len()).map(|n| t.learned_activation(n).is_some()).collect();
        let dynamic = (0..net.nodes.len()).map(|n| matches!(t.activation(n), Some(QuantFn::Dynamic { .. }))).collect();
        Slots { view, weights, activations, learned_weights, learned_activations, dynamic }
    }

    /// Recomputes every quantized weight copy from its master: the first launches of a program.
    fn weight_launches(&self, ctx: &GpuContext, params: &[wgpu::Buffer]) -> Vec<Launch> {
        self.weights.iter().enumerate().filter_map(|(j, q)| q.as_ref().map(|(p, table)| ctx.fake_quant(*p, table, &params[j], &self.view[j]))).collect()
    }

    /// The learned tables (weights, then activations).
    fn learned_tables(&self) -> impl Iterator<Item = &wgpu::Buffer> {
        let w = self.weights.iter().zip(&self.learned_weights);
        let a = self.activations.iter().zip(&self.learned_activations);
        w.chain(a).filter_map(|(q, &l)| q.as_ref().filter(|_| l).map(|(_, table)| table))
    }
}

/// The launches computing every node of `net` from `acts[0]` (already holding the input batch):
/// weight layers read `view` (the slots' quantized copies where transformed), activation quantizers
/// apply after their node's ReLU. Returns the launches and, per activation-quantized node, what
/// backward needs (its keep mask, or raw values where the step is learned).
#[allow(clippy::too_many_arguments)]
fn node_launches(ctx: &GpuContext, net: &Net, slots: &Slots, acts: &[wgpu::Buffer], scratch: &[wgpu::Buffer], step: &wgpu::Buffer, rows: u32, training: bool) -> (Vec<Launch>, Vec<Option<wgpu::Buffer>>) {
    let b = rows as usize;
    let first = first_tensor(net);
    let params = &slots.view[..];
    let mut launches = Vec::new();
    let mut keep: Vec<Option<wgpu::Buffer>> = vec![None; net.nodes.len()];
    for (n, node) in net.nodes.iter().enumerate().skip(1) {
        let (x, y) = (&acts[node.inputs[0]], &acts[n]);
        let t = first[n];
        match node.op {
            Op::Input => unreachable!("only node 0"),
            Op::Dense { outputs } => {
                let i = net.nodes[node.inputs[0]].shape.size() as u32;
                launches.push(ctx.matmul(MatmulParams::new(rows, outputs as u32, i, false, false, false), x, &params[t], y));
                launches.push(ctx.bias_add(rows, outputs as u32, &params[t + 1], y));
            }
            Op::Conv { outputs, .. } if ctx.conv == ConvMethod::Direct => {
                launches.push(ctx.conv_direct_forward(&geometry(net, n, b), outputs, x, &params[t], &params[t + 1], y));
            }
            Op::Conv { outputs, .. } => {
                let g = geometry(net, n, b);
                launches.push(ctx.im2col(&g, x, &scratch[n]));
                let m = g.positions() as u32;
                launches.push(ctx.matmul(MatmulParams::new(m, outputs as u32, g.patch() as u32, false, false, false), &scratch[n], &params[t], y));
                launches.push(ctx.bias_add(m, outputs as u32, &params[t + 1], y));
            }
            Op::BatchNorm => {
                let bufs = bn_buffers(step, x, &scratch[n], params, t);
                let p = bn_params(net, n, rows, training, false);
                if training {
                    launches.push(ctx.bn_stats(p, &bufs));
                }
                launches.push(ctx.bn_forward(p, &bufs, y));
            }
            Op::MaxPool { .. } => launches.push(ctx.maxpool_forward(&geometry(net, n, b), x, y, &scratch[n])),
            Op::AvgPool { .. } => launches.push(ctx.avgpool_forward(&geometry(net, n, b), x, y)),
            Op::Add => launches.push(ctx.add_forward(rows * node.shape.size() as u32, x, &acts[node.inputs[1]], y)),
        }
        if node.relu {
            launches.push(ctx.relu_forward(rows * node.shape.size() as u32, y));
        }
        if let Some((p, table)) = &slots.activations[n] {
            let size = rows * node.shape.size() as u32;
            let k = zeroed(ctx, size as usize, "activation keep mask");
            if slots.dynamic[n] {
                launches.push(ctx.act_range(*p, node.shape.size() as u32, step, y, table));
            }
            if training && slots.learned_activations[n] {
                // Learned step: keep the raw values lsq_backward differentiates at.
                launches.push(ctx.fake_quant_act_raw(QuantParams { n: size, ..*p }, table, y, &k));
            } else {
                launches.push(ctx.fake_quant_act(QuantParams { n: size, ..*p }, table, y, &k));
            }
            keep[n] = Some(k);
        }
    }
    (launches, keep)
}

/// A split on the GPU: its images and labels as loaded (u8) and its size.
pub type Uploaded = (wgpu::Buffer, wgpu::Buffer, usize);

fn upload(ctx: &GpuContext, data: &Dataset) -> Uploaded {
    (ctx.storage_u8(&data.images, "images u8"), ctx.storage_u8(&data.labels, "labels u8"), data.n)
}

/// Both splits on the GPU, uploaded once and shared by every trainer built on them (a run's
/// stages, passes and teachers: experiment::Run keeps them).
#[derive(Clone)]
pub struct ResidentSplits {
    pub train: Uploaded,
    pub test: Uploaded,
}

impl ResidentSplits {
    pub fn upload(ctx: &GpuContext, data: &Splits) -> ResidentSplits {
        ResidentSplits { train: upload(ctx, &data.train), test: upload(ctx, &data.test) }
    }
}

/// Activations and per-node scratch of one forward pass of `net` at `b` rows (acts[0] included).
fn activation_buffers(ctx: &GpuContext, net: &Net, b: usize) -> (Vec<wgpu::Buffer>, Vec<wgpu::Buffer>) {
    let acts = net.nodes.iter().map(|node| zeroed(ctx, b * node.shape.size(), "activation")).collect();
    let scratch = net
        .nodes
        .iter()
        .enumerate()
        .map(|(n, node)| match node.op {
            Op::Conv { .. } if ctx.conv == ConvMethod::Im2col => zeroed(ctx, geometry(net, n, b).positions() * geometry(net, n, b).patch(), "im2col"),
            Op::MaxPool { .. } => zeroed(ctx, b * node.shape.size(), "argmax"),
            Op::BatchNorm => zeroed(ctx, 2 * node.shape.c, "bn batch stats"),
            _ => zeroed(ctx, 1, "unused"),
        })
        .collect();
    (acts, scratch)
}

impl ForwardProgram {
    #[allow(clippy::too_many_arguments)]
    fn new(ctx: &GpuContext, net: &Net, params: &[wgpu::Buffer], slots: &Slots, data: &Dataset, norm: Normalization, rows: u32, order: &[u32], training: bool) -> ForwardProgram {
        ForwardProgram::on(ctx, net, params, slots, upload(ctx, data), norm, rows, order, training)
    }

    /// The same on a split already on the GPU: (images, labels) as u8 and its size.
    #[allow(clippy::too_many_arguments)]
    fn on(ctx: &GpuContext, net: &Net, params: &[wgpu::Buffer], slots: &Slots, (images, labels_u8, n): (wgpu::Buffer, wgpu::Buffer, usize), norm: Normalization, rows: u32, order: &[u32], training: bool) -> ForwardProgram {
        let b = rows as usize;
        let step = ctx.uniform(&StepParams::default(), "step");
        let order_buf = ctx.storage(order, "sample order");
        let (acts, scratch) = activation_buffers(ctx, net, b);
        let labels = zeroed(ctx, b, "batch labels");
        let classes = net.classes as u32;
        let dlogits = zeroed(ctx, b * net.classes, "dlogits");
        let row_loss = zeroed(ctx, b, "row loss");
        let correct = zeroed(ctx, b, "row correct");
        let acc = ctx.storage_zeroed(16, "metrics accumulator");

        let (scale, shift) = norm.scale_shift();
        let input = net.input();
        let gather = GatherParams { rows, pixels: input.size() as u32, scale, shift, height: input.h as u32, width: input.w as u32, jitter: 0, _pad: 0 };
        let mut launches = slots.weight_launches(ctx, params);
        let gather_at = launches.len();
        launches.push(ctx.gather_batch(gather, &step, &images, &labels_u8, &order_buf, &acts[0], &labels));
        let (nodes, keep) = node_launches(ctx, net, slots, &acts, &scratch, &step, rows, training);
        launches.extend(nodes);
        let head = HeadParams { rows, classes };
        let logits = acts.last().expect("a net has nodes");
        let loss_at = launches.len();
        launches.push(ctx.softmax_xent(head, &step, logits, &labels, &dlogits, &row_loss));
        launches.push(ctx.argmax_correct(head, &step, logits, &labels, &correct));
        launches.push(ctx.metrics_accumulate(&step, &row_loss, &correct, &acc));
        ForwardProgram { rows, step, acts, scratch, dlogits, acc, launches, order: order_buf, keep, labels, row_loss, loss_at, teacher_launches: 0, gather, gather_at, data: (images, labels_u8), teacher_gather: None, n }
    }

    fn set_step(&self, ctx: &GpuContext, offset: usize, valid: usize) {
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&StepParams { offset: offset as u32, valid: valid as u32 }));
    }

    /// Reads the accumulator and clears it, in one submit and one map.
    async fn take_acc(&self, ctx: &GpuContext) -> Result<[f32; 4]> {
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("metrics staging"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.acc, 0, &staging, 0, 16);
        enc.clear_buffer(&self.acc, 0, None);
        ctx.queue.submit([enc.finish()]);
        let v: Vec<f32> = ctx.map_read(&staging).await?;
        Ok([v[0], v[1], v[2], v[3]])
    }
}

/// A conv layer's gradient products over its B·OH·OW positions: dW [K·K·Cin, Cout] = colsᵀ·dY
/// and db [1, Cout] = 1ᵀ·dY.
fn conv_grad_products(g: &Geometry, outputs: usize) -> (MatmulParams, MatmulParams) {
    let (m, k, o) = (g.positions() as u32, g.patch() as u32, outputs as u32);
    (MatmulParams::new(k, o, m, true, false, false), MatmulParams::new(1, o, m, false, false, false))
}

fn bn_buffers<'a>(step: &'a wgpu::Buffer, x: &'a wgpu::Buffer, stats: &'a wgpu::Buffer, params: &'a [wgpu::Buffer], t: usize) -> BnBuffers<'a> {
    BnBuffers { step, x, stats, gamma: &params[t], beta: &params[t + 1], running_mean: &params[t + 2], running_var: &params[t + 3] }
}

fn bn_params(net: &Net, n: usize, rows: u32, training: bool, accumulate: bool) -> BnParams {
    let s = net.nodes[n].shape;
    BnParams {
        rows: rows * (s.h * s.w) as u32,
        c: s.c as u32,
        per_sample: (s.h * s.w) as u32,
        use_batch_stats: training as u32,
        momentum: BN_MOMENTUM,
        eps: BN_EPS,
        accumulate: accumulate as u32,
        _pad: 0,
    }
}

/// Trains a `Net` on the GPU. Same interface as `reference::net::CpuTrainer`.
/// Tensors read back from (buffer, length) pairs (buffers may be padded past the length).
async fn read_tensors(ctx: &GpuContext, bufs: impl Iterator<Item = (&wgpu::Buffer, usize)>) -> Result<NetParams> {
    let mut tensors = Vec::new();
    for (buf, n) in bufs {
        let v: Vec<f32> = ctx.read(buf).await?;
        tensors.push(v[..n].to_vec());
    }
    Ok(NetParams { tensors })
}

pub struct GpuTrainer {
    ctx: GpuContext,
    net: Net,
    opt: OptimizerConfig,
    /// The `OptimStep` uniform every optimizer update reads (rewritten once per step).
    optim_step: wgpu::Buffer,
    t: u64,
    /// One buffer per tensor of `Net::tensors()`, and, parallel to them, gradients.
    params: Vec<wgpu::Buffer>,
    sizes: Vec<usize>,
    train: ForwardProgram,
    /// Node by node in reverse: ReLU backward, parameter gradients, input gradients.
    backward: Vec<Launch>,
    /// One update per trainable tensor (index into `params`), uniforms rewritten each step.
    updates: Vec<(usize, Launch)>,
    eval: ForwardProgram,
    /// Hard pruning: w *= mask after every update (empty when no hard masks are installed).
    mask_launches: Vec<Launch>,
    /// Shared weights (nn::Sharing): centroids updated and members tied after every update.
    shared_launches: Vec<Launch>,
    grads: Vec<wgpu::Buffer>,
    norm: Normalization,
    slots: Slots,
    transforms: Transforms,
    /// Learned quantizer steps: per learned table its optimizer update (elements, launch), then
    /// inv_step = 1/step (lsq_sync).
    step_updates: Vec<(usize, Launch)>,
    step_syncs: Vec<Launch>,
    /// The frozen teacher's parameter buffers and lengths (empty without one).
    teacher_params: Vec<(wgpu::Buffer, usize)>,
    /// The teacher's net and its activation buffers (written by its forward in each step; none
    /// when its logits are cached), the teacher and head as set, and whether the logits are cached.
    teacher: Option<(Net, Vec<wgpu::Buffer>)>,
    teacher_spec: Option<(crate::nn::Teacher, crate::nn::DistillParams)>,
    teacher_cached: bool,
    /// Whether set_teacher may cache (the default; off to measure or test the in-step forward).
    cache_teacher: bool,
    /// Losses on intermediate nodes (attention transfer, hints): how many launches follow the head
    /// in `train`; per term the backward index before which its gradient is added into the student
    /// node's output gradient, and that add; each hint projection's optimizer update and weights.
    node_loss_launches: usize,
    injected: Vec<(usize, Launch)>,
    hint_updates: Vec<(usize, Launch, wgpu::Buffer)>,
    /// Per node, its output gradient buffer and where its backward section starts in `backward`.
    dacts: Vec<Option<wgpu::Buffer>>,
    backward_at: Vec<usize>,
    _state: Vec<wgpu::Buffer>,
}

impl GpuTrainer {
    pub fn new(ctx: &GpuContext, net: &Net, init: &NetParams, opt: OptimizerConfig, data: &Splits, norm: Normalization, batch: usize) -> GpuTrainer {
        Self::with_transforms(ctx, net, init, opt, data, norm, batch, &Transforms::default())
    }

    /// A trainer whose forward and input-gradient products read transformed weights and whose
    /// nodes' outputs are transformed (nn::Transforms): per step, the quantized weight copies are
    /// recomputed from the masters first, activation quantizers record where they clipped, and
    /// backward passes gradients straight through (zero where clipped) to the f32 masters.
    #[allow(clippy::too_many_arguments)]
    pub fn with_transforms(ctx: &GpuContext, net: &Net, init: &NetParams, opt: OptimizerConfig, data: &Splits, norm: Normalization, batch: usize, transforms: &Transforms) -> GpuTrainer {
        Self::on_resident(ctx, net, init, opt, &ResidentSplits::upload(ctx, data), norm, batch, transforms)
    }

    /// The same on splits already on the GPU.
    #[allow(clippy::too_many_arguments)]
    pub fn on_resident(ctx: &GpuContext, net: &Net, init: &NetParams, opt: OptimizerConfig, data: &ResidentSplits, norm: Normalization, batch: usize, transforms: &Transforms) -> GpuTrainer {
        let infos = net.tensors();
        let sizes: Vec<usize> = infos.iter().map(|t| t.len()).collect();
        let params: Vec<wgpu::Buffer> = init.tensors.iter().map(|t| ctx.storage(t, "parameter")).collect();
        let slots = Slots::new(ctx, net, &params, transforms);
        let grads: Vec<wgpu::Buffer> = sizes.iter().map(|&n| zeroed(ctx, n, "gradient")).collect();
        let adam = opt.kind == OptimizerKind::Adam;
        let first: Vec<wgpu::Buffer> = sizes.iter().map(|&n| zeroed(ctx, n, "momentum / m")).collect();
        let second: Vec<wgpu::Buffer> = sizes.iter().map(|&n| zeroed(ctx, if adam { n } else { 1 }, "adam v")).collect();

        let rows = batch as u32;
        let b = batch;
        let identity: Vec<u32> = (0..data.train.2 as u32).collect();
        let train = ForwardProgram::on(ctx, net, &params, &slots, data.train.clone(), norm, rows, &identity, true);

        // dacts[n]: gradient w.r.t. node n's output (none for the input); the last is dlogits.
        let last = net.last();
        let dacts: Vec<Option<wgpu::Buffer>> = net
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| match n {
                0 => None,
                n if n == last => Some(train.dlogits.clone()),
                _ => Some(zeroed(ctx, b * node.shape.size(), "activation gradient")),
            })
            .collect();
        // Conv weight and bias gradients reduce over all B·OH·OW positions: split-K products
        // sharing one scratch buffer (layers run one after another), bias sums as 1ᵀ·dY.
        let (mut partial_len, mut ones_len) = (1, 1);
        for (n, node) in net.nodes.iter().enumerate() {
            if let Op::Conv { outputs, .. } = node.op {
                let g = geometry(net, n, b);
                let (dw, db) = conv_grad_products(&g, outputs);
                partial_len = partial_len.max((ctx.split_k(&dw) * dw.m * dw.n).max(ctx.split_k(&db) * db.n) as usize);
                ones_len = ones_len.max(g.positions());
            }
        }
        let partial = zeroed(ctx, partial_len, "split-k partial products");
        let ones = ctx.storage(&vec![1.0f32; ones_len], "ones");
        let first_t = first_tensor(net);
        // Learned steps (LSQ): a gradient per learned table, laid out like it.
        let step_grad = |q: &Option<(QuantParams, wgpu::Buffer)>, learned: bool| q.as_ref().filter(|_| learned).map(|(_, t)| zeroed(ctx, t.size() as usize / 4, "step gradient"));
        let weight_steps: Vec<Option<wgpu::Buffer>> = slots.weights.iter().zip(&slots.learned_weights).map(|(q, &l)| step_grad(q, l)).collect();
        let act_steps: Vec<Option<wgpu::Buffer>> = slots.activations.iter().zip(&slots.learned_activations).map(|(q, &l)| step_grad(q, l)).collect();
        // A node read by several others receives its gradient in pieces: the first overwrites, the
        // rest accumulate. Launch order is reverse node order, so this is known when building.
        let mut written = vec![false; net.nodes.len()];
        let mut backward = Vec::new();
        let mut backward_at = vec![0; net.nodes.len()];
        for n in (1..net.nodes.len()).rev() {
            backward_at[n] = backward.len(); // dacts[n] is complete here (its readers came first)
            let node = &net.nodes[n];
            let dy = dacts[n].as_ref().expect("gradient buffer");
            let size = rows * node.shape.size() as u32;
            match (&train.keep[n], &slots.activations[n], &act_steps[n]) {
                // A learned step: its gradient, and dY straight through (zero where clipped).
                (Some(raw), Some((p, table)), Some(g)) => backward.push(ctx.lsq_backward(QuantParams { n: size, ..*p }, table, raw, dy, g)),
                // Straight through the activation quantizer, zero where it clipped.
                (Some(k), _, _) => backward.push(ctx.mask_apply(size, dy, k)),
                _ => {}
            }
            if node.relu {
                backward.push(ctx.relu_backward(size, &train.acts[n], dy));
            }
            let src = node.inputs[0];
            let x = &train.acts[src];
            let t = first_t[n];
            let acc = written[src];
            match node.op {
                Op::Input => unreachable!(),
                Op::Dense { outputs } => {
                    let i = net.nodes[src].shape.size() as u32;
                    let o = outputs as u32;
                    // dW [I,O] = Xᵀ·dY;  db = colsum dY;  dX [B,I] (+)= dY·Wᵀ
                    backward.push(ctx.matmul(MatmulParams::new(i, o, rows, true, false, false), x, dy, &grads[t]));
                    backward.push(ctx.bias_grad(rows, o, dy, &grads[t + 1]));
                    if let Some(dx) = &dacts[src] {
                        backward.push(ctx.matmul(MatmulParams::new(rows, i, o, false, true, acc), dy, &slots.view[t], dx));
                    }
                }
                Op::Conv { outputs, .. } if ctx.conv == ConvMethod::Direct => {
                    let g = geometry(net, n, b);
                    backward.push(ctx.conv_direct_dw(&g, outputs, x, dy, &grads[t]));
                    let (_, db) = conv_grad_products(&g, outputs);
                    backward.extend(ctx.matmul_split_k(db, ctx.split_k(&db), &ones, dy, &grads[t + 1], &partial));
                    if let Some(dx) = &dacts[src] {
                        backward.push(ctx.conv_direct_dx(&g, outputs, dy, &slots.view[t], dx, acc));
                    }
                }
                Op::Conv { outputs, .. } => {
                    let g = geometry(net, n, b);
                    let (m, k, o) = (g.positions() as u32, g.patch() as u32, outputs as u32);
                    let cols = &train.scratch[n];
                    // dW [K·K·C, Cout] = colsᵀ·dY;  db = 1ᵀ·dY;  then cols is reused for
                    // dcols = dY·Wᵀ and dX (+)= col2im(dcols)
                    let (dw, db) = conv_grad_products(&g, outputs);
                    backward.extend(ctx.matmul_split_k(dw, ctx.split_k(&dw), cols, dy, &grads[t], &partial));
                    backward.extend(ctx.matmul_split_k(db, ctx.split_k(&db), &ones, dy, &grads[t + 1], &partial));
                    if let Some(dx) = &dacts[src] {
                        backward.push(ctx.matmul(MatmulParams::new(m, k, o, false, true, false), dy, &slots.view[t], cols));
                        backward.push(ctx.col2im(&g, cols, dx, acc));
                    }
                }
                Op::BatchNorm => {
                    let bufs = bn_buffers(&train.step, x, &train.scratch[n], &params, t);
                    let p = bn_params(net, n, rows, true, acc);
                    backward.push(ctx.bn_backward_sums(p, &bufs, dy, &grads[t], &grads[t + 1]));
                    if let Some(dx) = &dacts[src] {
                        backward.push(ctx.bn_backward_input(p, &bufs, dy, &grads[t], &grads[t + 1], dx));
                    }
                }
                Op::MaxPool { .. } => {
                    if let Some(dx) = &dacts[src] {
                        backward.push(ctx.maxpool_backward(&geometry(net, n, b), dy, dx, &train.scratch[n], acc));
                    }
                }
                Op::AvgPool { .. } => {
                    if let Some(dx) = &dacts[src] {
                        backward.push(ctx.avgpool_backward(&geometry(net, n, b), dy, dx, acc));
                    }
                }
                Op::Add => {
                    let other = node.inputs[1];
                    if let Some(d) = &dacts[other] {
                        backward.push(ctx.add_into(size, dy, d, written[other]));
                        written[other] = true;
                    }
                    if let Some(dx) = &dacts[src] {
                        backward.push(ctx.add_into(size, dy, dx, written[src]));
                    }
                }
            }
            written[src] = true;
        }
        // The straight-through estimator: no gradient for a master weight outside its quantizer's range.
        // Where the step is learned, lsq_backward clips the same way and gives the step's gradient.
        for (j, q) in slots.weights.iter().enumerate() {
            match (q, &weight_steps[j]) {
                (Some((p, table)), Some(g)) => backward.push(ctx.lsq_backward(*p, table, &params[j], &grads[j], g)),
                (Some((p, table)), None) => backward.push(ctx.ste_clip(*p, table, &params[j], &grads[j])),
                _ => {}
            }
        }
        let step_opt = opt.without_decay();
        // One uniform of the step's lr and eps for every update (tensors, learned steps, hints).
        let optim_step = ctx.uniform(&OptimStep::of(&opt.step_params(1, opt.lr, 1)), "optimizer step");
        let mut step_updates = Vec::new();
        let mut step_syncs = Vec::new();
        for (table, g) in slots.learned_tables().zip(weight_steps.iter().chain(&act_steps).flatten()) {
            let len = table.size() as usize / 4;
            let (m, v) = (zeroed(ctx, len, "step momentum / m"), zeroed(ctx, if adam { len } else { 1 }, "step adam v"));
            step_updates.push((len, ctx.optimizer(adam, step_opt.step_params(len, opt.lr, 1), &optim_step, table, g, &m, &v)));
            step_syncs.push(ctx.lsq_sync((len / 3) as u32, table));
        }
        let updates = infos
            .iter()
            .enumerate()
            .filter(|(_, t)| t.trainable)
            .map(|(j, _)| (j, ctx.optimizer(adam, opt.step_params(sizes[j], opt.lr, 1), &optim_step, &params[j], &grads[j], &first[j], &second[j])))
            .collect();

        let eval_rows = data.test.2.clamp(1, 1000).min(eval_rows_limit(net)) as u32;
        let test_order: Vec<u32> = (0..data.test.2 as u32).collect();
        let eval = ForwardProgram::on(ctx, net, &params, &slots, data.test.clone(), norm, eval_rows, &test_order, false);

        let mut state = grads.clone();
        state.extend(first);
        state.extend(second);
        state.extend(dacts.iter().flatten().cloned());
        state.extend([partial, ones]);
        state.extend(weight_steps.into_iter().chain(act_steps).flatten());
        // Shared weights: the centroids move and the members follow after every update.
        let shared_launches = (0..infos.len())
            .filter_map(|j| {
                let s = transforms.sharing(j)?;
                let (c, o, m) = (ctx.storage(&s.centroids, "centroids"), ctx.storage(&s.offsets, "cluster offsets"), ctx.storage(&s.members, "cluster members"));
                Some(ctx.shared_update(s.centroids.len() as u32, s.mean, &params[j], &c, &o, &m))
            })
            .collect();
        GpuTrainer { ctx: ctx.clone(), net: net.clone(), opt, optim_step, t: 0, params, sizes, train, backward, updates, eval, mask_launches: Vec::new(), shared_launches, grads, norm, slots, transforms: transforms.clone(), step_updates, step_syncs, teacher_params: Vec::new(), teacher: None, teacher_spec: None, teacher_cached: false, cache_teacher: true, node_loss_launches: 0, injected: Vec::new(), hint_updates: Vec::new(), dacts, backward_at, _state: state }
    }

    /// Uploads this epoch's sample order (the only per-epoch upload).
    pub fn begin_epoch(&mut self, order: &[u32]) {
        self.ctx.queue.write_buffer(&self.train.order, 0, bytemuck::cast_slice(order));
    }

    /// One optimizer step on order[offset..offset+valid]: one write of the step uniform, the
    /// optimizer uniforms, and one submit.
    pub fn train_step(&mut self, offset: usize, valid: usize, lr: f32) {
        self.t += 1;
        self.train.set_step(&self.ctx, offset, valid);
        // The step's lr (and Adam's corrections): one write for every update, not one per tensor
        // (each write is a call from wasm into JS in the browser). Learned steps and hints train
        // without decay, which changes neither.
        self.ctx.queue.write_buffer(&self.optim_step, 0, bytemuck::bytes_of(&OptimStep::of(&self.opt.step_params(1, lr, self.t))));
        run(&self.ctx, self.step_launches());
    }

    /// What one training step submits, in order: the forward pass (gather, loss head), the
    /// backward pass, every update, the hard masks and the tied copies. (The kernel benchmark
    /// times each alone against the whole step.)
    pub fn step_launches(&self) -> impl Iterator<Item = &Launch> {
        let updates = self.updates.iter().map(|(_, l)| l).chain(self.step_updates.iter().map(|(_, l)| l)).chain(&self.step_syncs).chain(self.hint_updates.iter().map(|(_, l, _)| l));
        self.train.launches.iter().chain(self.backward_pass()).chain(updates).chain(&self.mask_launches).chain(&self.shared_launches)
    }

    /// Installs pruning masks, one per tensor in `Net::tensors()` order (`None`: unpruned), and
    /// applies them now. `hard`: re-applied after every optimizer step, so pruned weights stay
    /// exactly zero; soft: applied once, pruned weights keep training and may regrow.
    pub fn set_masks(&mut self, masks: &[Option<Vec<f32>>], hard: bool) {
        let launches: Vec<Launch> = masks
            .iter()
            .enumerate()
            .filter_map(|(j, m)| {
                let m = m.as_ref()?;
                let buf = self.ctx.storage(m, "mask"); // kept alive by the launch's bind group
                Some(self.ctx.mask_apply(self.sizes[j] as u32, &self.params[j], &buf))
            })
            .collect();
        run(&self.ctx, &launches);
        self.mask_launches = if hard { launches } else { Vec::new() };
    }

    /// The loss slot: a frozen teacher's logits on every training batch, and the distillation head
    /// (weighed by `p`) in place of cross-entropy, reading them on the GPU: no read-back.
    /// Evaluation keeps cross-entropy against the labels. A second call replaces the teacher.
    /// Where the batches are the split's images as they are (no jitter) and no node loss needs
    /// the teacher's inner outputs, its logits for the whole training split are computed once
    /// here (inference mode, its activation quantizers and normalisation) and each step gathers
    /// its rows (gather_rows): one teacher forward per image per stage instead of per epoch.
    /// Otherwise its forward runs inside each step on the student's batch (its input buffer
    /// shared, or gathered again with its own normalisation). Jitter or node losses set later
    /// switch to the in-step forward.
    pub fn set_teacher(&mut self, teacher: &crate::nn::Teacher, p: crate::nn::DistillParams) -> Result<()> {
        teacher.check_student(&self.net)?;
        self.teacher_spec = Some((teacher.clone(), p));
        self.install_teacher(self.cache_teacher && self.train.gather.jitter == 0);
        Ok(())
    }

    /// Whether a teacher set from now on may have its logits cached (default: yes). For
    /// measuring and testing the in-step forward.
    pub fn prefer_teacher_cache(&mut self, on: bool) {
        self.cache_teacher = on;
    }

    /// Whether the teacher's logits are cached (see `set_teacher`).
    pub fn teacher_cached(&self) -> bool {
        self.teacher_cached
    }

    fn install_teacher(&mut self, cached: bool) {
        let Some((teacher, p)) = self.teacher_spec.clone() else { return };
        let ctx = &self.ctx;
        let rows = self.train.rows;
        let classes = self.net.classes as u32;
        let params: Vec<wgpu::Buffer> = teacher.params.tensors.iter().map(|t| ctx.storage(t, "teacher parameter")).collect();
        self.teacher_params = params.iter().zip(&teacher.params.tensors).map(|(b, t)| (b.clone(), t.len())).collect();
        let slots = Slots::new(ctx, &teacher.net, &params, &Transforms { activations: teacher.activations.clone(), ..Transforms::default() });
        let at = self.train.loss_at;
        let from = at - self.train.teacher_launches;
        let own = teacher.norm.filter(|&n| n != self.norm);
        let mut launches = Vec::new();
        let (acts, logits) = if cached {
            let table = self.teacher_table(&teacher.net, &params, &slots, own.unwrap_or(self.norm));
            let batch = zeroed(ctx, (rows * classes) as usize, "teacher logits of the batch");
            launches.push(ctx.gather_rows(rows, classes, &self.train.step, &self.train.order, &table, &batch));
            self.train.teacher_gather = None;
            (Vec::new(), batch)
        } else {
            let (mut acts, scratch) = activation_buffers(ctx, &teacher.net, rows as usize);
            // The student's input, or the same pixels gathered again with the teacher's
            // normalisation (its labels land where the student's did, the same values).
            self.train.teacher_gather = match own {
                None => {
                    acts[0] = self.train.acts[0].clone();
                    None
                }
                Some(n) => {
                    let (scale, shift) = n.scale_shift();
                    let g = GatherParams { scale, shift, ..self.train.gather };
                    let t = &self.train;
                    launches.push(ctx.gather_batch(g, &t.step, &t.data.0, &t.data.1, &t.order, &acts[0], &t.labels));
                    Some((g, from))
                }
            };
            launches.extend(node_launches(ctx, &teacher.net, &slots, &acts, &scratch, &self.train.step, rows, false).0);
            let logits = acts.last().expect("a net has nodes").clone();
            (acts, logits)
        };
        let student = self.train.acts.last().expect("a net has nodes");
        let count = launches.len();
        let head = HeadParams { rows, classes };
        launches.push(ctx.distill_loss(head, p, &self.train.step, student, &logits, &self.train.labels, &self.train.dlogits, &self.train.row_loss));
        // Replaces the previous teacher's launches, head and node losses.
        self.train.launches.splice(from..=at + self.node_loss_launches, launches);
        self.train.loss_at = from + count;
        self.train.teacher_launches = count;
        self.teacher = Some((teacher.net.clone(), acts));
        self.teacher_cached = cached;
        (self.node_loss_launches, self.injected, self.hint_updates) = (0, Vec::new(), Vec::new());
    }

    /// A teacher's logits [N, classes] for the whole training split in sample order, computed in
    /// inference batches on the GPU and copied into one resident buffer.
    fn teacher_table(&self, net: &Net, params: &[wgpu::Buffer], slots: &Slots, norm: Normalization) -> wgpu::Buffer {
        let (ctx, n, classes) = (&self.ctx, self.train.n, net.classes);
        let table = zeroed(ctx, n * classes, "teacher logits of the split");
        let rows = eval_rows_limit(net).min(500).min(n.max(1));
        let order: Vec<u32> = (0..n as u32).collect();
        let data = (self.train.data.0.clone(), self.train.data.1.clone(), n);
        let program = ForwardProgram::on(ctx, net, params, slots, data, norm, rows as u32, &order, false);
        let logits = program.acts.last().expect("a net has nodes");
        for offset in (0..n).step_by(rows) {
            let valid = rows.min(n - offset);
            program.set_step(ctx, offset, valid);
            run(ctx, &program.launches);
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(logits, 0, &table, (offset * classes * 4) as u64, (valid * classes * 4) as u64);
            ctx.queue.submit([enc.finish()]);
        }
        table
    }

    /// Losses on intermediate nodes with the teacher (set_teacher first; a later set_teacher
    /// clears them): attention transfer pairs and FitNets hints. Each term's loss joins the rows'
    /// after the distillation head, in the same submit, and its gradient enters the student node's
    /// output gradient before that node's backward. A hint's projection Y = S·W [B·P, Ct] is a
    /// matmul, then hint_loss gives dY, then dW = Sᵀ·dY and dS = dY·Wᵀ (all in the forward part);
    /// W trains with the student's optimizer (no decay). Replaces earlier terms. A pair whose
    /// outputs cannot be matched is refused before anything changes.
    pub fn set_node_losses(&mut self, pairs: &[crate::nn::AttentionTransfer], hints: &[crate::nn::Hint]) -> Result<()> {
        if self.teacher_cached && !(pairs.is_empty() && hints.is_empty()) {
            // The terms read the teacher's inner outputs: its forward goes back into the step.
            if let Some((t, _)) = &self.teacher {
                pairs.iter().map(|a| a.shapes(&self.net, t).map(|_| ())).chain(hints.iter().map(|h| h.shapes(&self.net, t).map(|_| ()))).collect::<Result<()>>()?;
            }
            self.install_teacher(false);
        }
        let Some((teacher_net, teacher_acts)) = &self.teacher else {
            return Err(crate::Error::Invalid("attention transfer and hints need a teacher: set it first".into()));
        };
        let shapes: Vec<(usize, usize, usize)> = pairs.iter().map(|a| a.shapes(&self.net, teacher_net)).collect::<Result<_>>()?;
        let hint_shapes: Vec<(usize, usize, usize)> = hints.iter().map(|h| h.shapes(&self.net, teacher_net)).collect::<Result<_>>()?;
        let (ctx, rows) = (&self.ctx, self.train.rows);
        let adam = self.opt.kind == crate::nn::OptimizerKind::Adam;
        let (mut forward, mut injected, mut updates) = (Vec::new(), Vec::new(), Vec::new());
        let mut inject = |node: usize, len: u32, grad: &wgpu::Buffer| {
            let dy = self.dacts[node].as_ref().expect("an inner node has a gradient buffer");
            injected.push((self.backward_at[node], ctx.add_into(len, grad, dy, true)));
        };
        for (a, &(positions, cs, ct)) in pairs.iter().zip(&shapes) {
            let grad = zeroed(ctx, rows as usize * positions * cs, "attention gradient"); // kept alive by both launches
            let p = AttentionParams { rows, positions: positions as u32, cs: cs as u32, ct: ct as u32, beta: a.beta, _pad: [0; 3] };
            forward.push(ctx.attention_transfer(p, &self.train.step, &self.train.acts[a.student], &teacher_acts[a.teacher], &grad, &self.train.row_loss));
            inject(a.student, rows * (positions * cs) as u32, &grad);
        }
        for (k, (h, &(positions, cs, ct))) in hints.iter().zip(&hint_shapes).enumerate() {
            let m = rows * positions as u32;
            let (cs32, ct32) = (cs as u32, ct as u32);
            let w = ctx.storage(&crate::nn::Hint::init(cs, ct, k), "hint projection");
            let (gw, first, second) = (zeroed(ctx, cs * ct, "hint projection gradient"), zeroed(ctx, cs * ct, "hint momentum / m"), zeroed(ctx, if adam { cs * ct } else { 1 }, "hint adam v"));
            let (y, dy, ds) = (zeroed(ctx, (m * ct32) as usize, "hint projection output"), zeroed(ctx, (m * ct32) as usize, "hint dY"), zeroed(ctx, (m * cs32) as usize, "hint dS"));
            let s = &self.train.acts[h.student];
            let p = AttentionParams { rows, positions: positions as u32, cs: ct32, ct: ct32, beta: h.weight, _pad: [0; 3] };
            forward.push(ctx.matmul(MatmulParams::new(m, ct32, cs32, false, false, false), s, &w, &y)); // Y [M, Ct] = S·W
            forward.push(ctx.hint_loss(p, &self.train.step, &y, &teacher_acts[h.teacher], &dy, &self.train.row_loss));
            forward.push(ctx.matmul(MatmulParams::new(cs32, ct32, m, true, false, false), s, &dy, &gw)); // dW [Cs, Ct] = Sᵀ·dY
            forward.push(ctx.matmul(MatmulParams::new(m, cs32, ct32, false, true, false), &dy, &w, &ds)); // dS [M, Cs] = dY·Wᵀ
            inject(h.student, m * cs32, &ds);
            let step_opt = self.opt.without_decay();
            updates.push((cs * ct, ctx.optimizer(adam, step_opt.step_params(cs * ct, self.opt.lr, 1), &self.optim_step, &w, &gw, &first, &second), w));
        }
        let at = self.train.loss_at;
        let count = forward.len();
        self.train.launches.splice(at + 1..at + 1 + self.node_loss_launches, forward);
        self.node_loss_launches = count;
        injected.sort_by_key(|(i, _)| *i);
        self.injected = injected;
        self.hint_updates = updates;
        Ok(())
    }

    /// Attention transfer alone (see `set_node_losses`).
    pub fn set_attention(&mut self, pairs: &[crate::nn::AttentionTransfer]) -> Result<()> {
        self.set_node_losses(pairs, &[])
    }

    /// The hint projections as trained so far.
    pub async fn projections(&self) -> Result<Vec<Vec<f32>>> {
        Ok(read_tensors(&self.ctx, self.hint_updates.iter().map(|(n, _, w)| (w, *n))).await?.tensors)
    }

    /// The backward launches with the node losses' gradients added where they belong (no
    /// allocation per step: the few adds are looked up by their backward index).
    fn backward_pass(&self) -> impl Iterator<Item = &Launch> {
        self.backward.iter().enumerate().flat_map(move |(i, l)| self.injected.iter().filter(move |(at, _)| *at == i).map(|(_, e)| e).chain(std::iter::once(l)))
    }

    /// Augmentation: every training image moved by up to `k` pixels each way from now on
    /// (data::jitter_shift; the teacher, if any, sees the same moved batch). 0 turns it off.
    pub fn set_jitter(&mut self, k: usize) {
        if k > 0 && self.teacher_cached {
            self.install_teacher(false); // a moved image's logits are not the cached ones
        }
        let t = &mut self.train;
        t.gather.jitter = k as u32;
        self.ctx.queue.write_buffer(&t.launches[t.gather_at].uniform, 0, bytemuck::bytes_of(&t.gather));
        if let Some((g, at)) = &mut t.teacher_gather {
            g.jitter = k as u32;
            self.ctx.queue.write_buffer(&t.launches[*at].uniform, 0, bytemuck::bytes_of(g));
        }
    }

    /// Returns and clears the training accumulator [loss_sum, correct, seen, 0].
    pub async fn take_metrics(&mut self) -> Result<[f32; 4]> {
        self.train.take_acc(&self.ctx).await
    }

    /// Loss/accuracy sums over the whole test split: one submit per evaluation batch.
    pub async fn evaluate(&mut self) -> Result<[f32; 4]> {
        self.evaluate_first(usize::MAX).await
    }

    /// [`Self::evaluate`] over the first `limit` test samples only (inference timing).
    pub async fn evaluate_first(&mut self, limit: usize) -> Result<[f32; 4]> {
        let rows = self.eval.rows as usize;
        let n = self.eval.n.min(limit);
        let mut offset = 0;
        while offset < n {
            let valid = rows.min(n - offset);
            self.eval.set_step(&self.ctx, offset, valid);
            run(&self.ctx, &self.eval.launches);
            offset += valid;
        }
        self.eval.take_acc(&self.ctx).await
    }

    /// First-order Taylor importance |w·∂L/∂w| of every weight matrix (`Net::weight_tensors()`
    /// order), summed over the batches `order[offset..]` of `batch` samples (`batches` of them),
    /// without updating anything (batch-norm running statistics are restored afterwards).
    /// One submit per batch (forward, backward, accumulate); one read-back at the end.
    pub async fn taylor_scores(&mut self, order: &[u32], batch: usize, batches: usize) -> Result<Vec<Vec<f32>>> {
        let running = self.running_stats().await?;
        self.begin_epoch(order);
        let weights = self.net.weight_tensors();
        let scores: Vec<wgpu::Buffer> = weights.iter().map(|&j| zeroed(&self.ctx, self.sizes[j], "taylor scores")).collect();
        let acc: Vec<Launch> = weights.iter().zip(&scores).map(|(&j, s)| self.ctx.taylor_accumulate(self.sizes[j] as u32, &self.params[j], &self.grads[j], s)).collect();
        let n = order.len();
        for b in 0..batches {
            let offset = b * batch;
            if offset >= n {
                break;
            }
            self.train.set_step(&self.ctx, offset, batch.min(n - offset));
            run(&self.ctx, self.train.launches.iter().chain(self.backward_pass()).chain(&acc));
        }
        self.take_metrics().await?; // the scoring batches are not training progress
        for (j, v) in running {
            self.ctx.queue.write_buffer(&self.params[j], 0, bytemuck::cast_slice(&v));
        }
        let mut out = Vec::with_capacity(weights.len());
        for (&j, buf) in weights.iter().zip(&scores) {
            let v: Vec<f32> = self.ctx.read(buf).await?;
            out.push(v[..self.sizes[j]].to_vec());
        }
        Ok(out)
    }

    async fn running_stats(&self) -> Result<Vec<(usize, Vec<f32>)>> {
        let mut out = Vec::new();
        for (j, t) in self.net.tensors().iter().enumerate() {
            if matches!(t.role, Role::RunningMean | Role::RunningVar) {
                let v: Vec<f32> = self.ctx.read(&self.params[j]).await?;
                out.push((j, v[..self.sizes[j]].to_vec()));
            }
        }
        Ok(out)
    }

    /// Overwrites the parameters (same shapes as at creation); optimizer state is kept.
    pub fn set_params(&mut self, p: &NetParams) {
        for (buf, t) in self.params.iter().zip(&p.tensors) {
            self.ctx.queue.write_buffer(buf, 0, bytemuck::cast_slice(t));
        }
    }

    /// The transforms in force, with the steps learned so far read back.
    pub async fn transforms(&self) -> Result<Transforms> {
        let mut t = self.transforms.clone();
        let slots = self.slots.weights.iter().zip(&self.slots.learned_weights).zip(t.weights.iter_mut());
        let acts = self.slots.activations.iter().zip(&self.slots.learned_activations).zip(t.activations.iter_mut());
        for ((slot, &learned), q) in slots.chain(acts) {
            if let (Some((_, table)), true, Some(quant)) = (slot, learned, q.as_mut()) {
                let v: Vec<f32> = self.ctx.read(table).await?;
                *quant = quant.with_table(&v[..quant.table().len()]);
            }
        }
        Ok(t)
    }

    /// Copies the parameters back to the host.
    pub async fn params(&self) -> Result<NetParams> {
        read_tensors(&self.ctx, self.params.iter().zip(self.sizes.iter().copied())).await
    }

    /// The teacher's parameters as they are on the GPU now (they must never change).
    pub async fn teacher_params(&self) -> Result<NetParams> {
        read_tensors(&self.ctx, self.teacher_params.iter().map(|(b, n)| (b, *n))).await
    }

    /// Activation taps: the outputs of `nodes` (inference mode, transforms in force) for the first
    /// `batches` batches of `batch` samples of `data`, per node per batch, valid rows only. Builds an
    /// inference program over `data` (uploaded once) and reads the tapped buffers after each batch.
    /// A batch over `eval_rows_limit` (what keeps every binding within the device's limits) is an error.
    pub async fn tap(&mut self, data: &Dataset, batch: usize, batches: usize, nodes: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        if batch > eval_rows_limit(&self.net) {
            return Err(crate::Error::Invalid(format!("a tap batch of {batch} rows is over this model's limit of {}", eval_rows_limit(&self.net))));
        }
        let rows = batch.clamp(1, data.n.max(1)) as u32;
        let order: Vec<u32> = (0..data.n as u32).collect();
        let program = ForwardProgram::new(&self.ctx, &self.net, &self.params, &self.slots, data, self.norm, rows, &order, false);
        let mut out = vec![Vec::new(); nodes.len()];
        for (offset, valid) in data.batches(rows as usize).take(batches) {
            program.set_step(&self.ctx, offset, valid);
            run(&self.ctx, &program.launches);
            for (o, &n) in out.iter_mut().zip(nodes) {
                let v: Vec<f32> = self.ctx.read(&program.acts[n]).await?;
                o.push(v[..valid * self.net.nodes[n].shape.size()].to_vec());
            }
        }
        Ok(out)
    }

    /// Evaluates `rows` test samples per submit from now on (at most `eval_rows_limit`): the
    /// inference program is rebuilt for that batch over the test split already on the GPU.
    pub fn set_eval_rows(&mut self, rows: usize) {
        let rows = rows.clamp(1, eval_rows_limit(&self.net).min(self.eval.n.max(1))) as u32;
        let order: Vec<u32> = (0..self.eval.n as u32).collect();
        let test = (self.eval.data.0.clone(), self.eval.data.1.clone(), self.eval.n);
        self.eval = ForwardProgram::on(&self.ctx, &self.net, &self.params, &self.slots, test, self.norm, rows, &order, false);
    }

    /// Logits of the last evaluation batch (for tests and the draw-a-digit view).
    pub async fn last_eval_logits(&self) -> Result<Vec<f32>> {
        self.ctx.read(self.eval.acts.last().expect("logits")).await
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }
}
