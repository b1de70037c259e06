//! Any `Net` on the CPU, built only from the `_reference` ops: forward (keeping what backward
//! needs on a tape), backward (gradients first, shapes in comments), and a trainer with the same
//! interface as the GPU one. It is the oracle of the golden end-to-end tests and the backend the
//! page falls back to when there is no WebGPU.
//! Legend: B = batch rows, V = valid rows (rows past V are padding), I/O = dense in/out,
//! R = B·H·W rows of an NHWC activation seen as [R, C].

use super::ops::*;
use crate::data::{Normalization, Splits};
use crate::nn::net::{Net, NetParams, Op, BN_EPS, BN_MOMENTUM};
use crate::compress::quant::QuantFn;
use crate::nn::{AttentionTransfer, DistillParams, Hint, OptimizerConfig, OptimizerKind, Teacher, Transforms};

/// Rows evaluated at once unless the batch is larger or `set_eval_rows` says otherwise (the CPU
/// backend's memory check counts on it: experiment::limits).
pub const EVAL_ROWS: usize = 256;

/// What a forward pass keeps for backward: every node's output and each op's extras.
pub struct Tape {
    pub rows: usize,
    pub valid: usize,
    /// acts[n] = output of node n ([B, H, W, C] flattened); acts[0] is the input batch.
    pub acts: Vec<Vec<f32>>,
    /// Conv: the im2col matrix; MaxPool: argmax; BN: batch (mean, var).
    cols: Vec<Vec<f32>>,
    argmax: Vec<Vec<u32>>,
    stats: Vec<(Vec<f32>, Vec<f32>)>,
    /// Activation-quantized nodes: 1.0 where the output was inside the range (gradient passes),
    /// and where the step is learned the output before quantization.
    keep: Vec<Vec<f32>>,
    raw: Vec<Vec<f32>>,
}

impl Tape {
    pub fn logits(&self) -> &[f32] {
        self.acts.last().expect("a net has nodes")
    }
}

/// The conv/pool geometry of node `n` at `rows` samples.
pub fn geometry(net: &Net, n: usize, rows: usize) -> Geometry {
    let x = net.nodes[net.nodes[n].inputs[0]].shape;
    match net.nodes[n].op {
        Op::Conv { k, stride, pad, .. } => Geometry::new(rows, x.h, x.w, x.c, k, stride, pad),
        Op::MaxPool { k, stride } | Op::AvgPool { k, stride } => Geometry::new(rows, x.h, x.w, x.c, k, stride, 0),
        _ => panic!("node {n} has no window"),
    }
}

/// C [M, N] = op(A)·op(B) on flat row-major slices (A is [M, K] or [K, M] when `ta`). In the
/// browser the packed SIMD GEMM (gemm.rs); natively ndarray's (matrixmultiply's AVX kernels), or
/// for a narrow output read from A in place (narrow.rs: conv forward products, a classifier), a
/// large product in bands on the pool (reference::pool).
#[cfg(target_arch = "wasm32")]
fn mm(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    super::gemm::gemm(a, b, &mut c, m, n, k, ta, tb, false);
    c
}

/// Rows of A from which a narrow product goes to narrow.rs (below, either path is quick).
#[cfg(not(target_arch = "wasm32"))]
const NARROW_MIN_ROWS: usize = 64;

#[cfg(not(target_arch = "wasm32"))]
fn mm(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f32> {
    if !ta && n <= super::narrow::MAX_N && m >= NARROW_MIN_ROWS {
        return super::narrow::narrow_gemm(a, b, m, n, k, tb);
    }
    super::ops::matmul_parts(a, b, m, n, k, ta, tb, super::pool::threads_for(m * n * k))
}

fn add_bias(y: &mut [f32], b: &[f32]) {
    for row in y.chunks_exact_mut(b.len()) {
        row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
    }
}

fn col_sums(dy: &[f32], cols: usize) -> Vec<f32> {
    let mut s = vec![0.0; cols];
    for row in dy.chunks_exact(cols) {
        s.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    s
}

/// Index of each node's first tensor in `Net::tensors()` order.
pub fn first_tensor(net: &Net) -> Vec<usize> {
    let mut at = vec![usize::MAX; net.nodes.len()];
    for (i, t) in net.tensors().iter().enumerate().rev() {
        at[t.node] = i;
    }
    at
}

/// Forward pass of `rows` samples (the first `valid` real). `training`: batch norm uses (and the
/// running statistics in `params` follow) the batch statistics; otherwise the running ones.
pub fn net_forward(net: &Net, params: &mut NetParams, x: Vec<f32>, rows: usize, valid: usize, training: bool) -> Tape {
    net_forward_with(net, params, x, rows, valid, training, &[])
}

/// `net_forward` with activation transforms: node n's output (after its ReLU) fake-quantized by
/// `acts[n]` (fake_quant_act_reference), its keep mask on the tape for backward.
pub fn net_forward_with(net: &Net, params: &mut NetParams, x: Vec<f32>, rows: usize, valid: usize, training: bool, acts: &[Option<QuantFn>]) -> Tape {
    net_forward_keeping(net, params, x, rows, valid, training, acts, &[])
}

/// `net_forward_with` that also keeps, for the nodes with a `learned` step, their output before
/// quantization (what LSQ's backward differentiates at).
#[allow(clippy::too_many_arguments)]
fn net_forward_keeping(net: &Net, params: &mut NetParams, x: Vec<f32>, rows: usize, valid: usize, training: bool, acts: &[Option<QuantFn>], learned: &[Option<(QuantFn, f32)>]) -> Tape {
    let first = first_tensor(net);
    let count = net.nodes.len();
    let mut tape = Tape { rows, valid, acts: Vec::with_capacity(count), cols: vec![vec![]; count], argmax: vec![vec![]; count], stats: vec![(vec![], vec![]); count], keep: vec![vec![]; count], raw: vec![vec![]; count] };
    tape.acts.push(x);
    for n in 1..count {
        let node = &net.nodes[n];
        let t = first[n];
        let xin = &tape.acts[node.inputs[0]];
        let mut y = match node.op {
            Op::Input => unreachable!("only node 0"),
            Op::Dense { outputs } => {
                // Y [B, O] = X [B, I]·W [I, O] + b
                let i = xin.len() / rows;
                let mut y = mm(xin, &params.tensors[t], rows, outputs, i, false, false);
                add_bias(&mut y, &params.tensors[t + 1]);
                y
            }
            Op::Conv { outputs, .. } => {
                // Y [B·OH·OW, Cout] = im2col(X) [B·OH·OW, K·K·Cin]·W [K·K·Cin, Cout] + b
                let g = geometry(net, n, rows);
                let cols = im2col_reference(xin, &g);
                let mut y = mm(&cols, &params.tensors[t], g.positions(), outputs, g.patch(), false, false);
                add_bias(&mut y, &params.tensors[t + 1]);
                if training {
                    tape.cols[n] = cols;
                }
                y
            }
            Op::BatchNorm => {
                let s = node.shape;
                let (mean, var) = if training {
                    let (head, tail) = params.tensors.split_at_mut(t + 3);
                    bn_stats_reference(xin, s.c, valid * s.h * s.w, &mut head[t + 2], &mut tail[0], BN_MOMENTUM)
                } else {
                    (params.tensors[t + 2].clone(), params.tensors[t + 3].clone())
                };
                let y = bn_forward_reference(xin, s.c, &mean, &var, &params.tensors[t], &params.tensors[t + 1], BN_EPS);
                tape.stats[n] = (mean, var);
                y
            }
            Op::MaxPool { .. } => {
                let (y, arg) = maxpool_forward_reference(xin, &geometry(net, n, rows));
                tape.argmax[n] = arg;
                y
            }
            Op::AvgPool { .. } => avgpool_forward_reference(xin, &geometry(net, n, rows)),
            Op::Add => add_forward_reference(xin, &tape.acts[node.inputs[1]]),
        };
        if node.relu {
            y.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        if let Some(Some(q)) = acts.get(n) {
            if matches!(learned.get(n), Some(Some(_))) {
                tape.raw[n] = y.clone();
            }
            tape.keep[n] = fake_quant_act_reference(q, &mut y, node.shape.c);
        }
        tape.acts.push(y);
    }
    tape
}

/// Adds `g` into the gradient slot of node `i` (the first contribution sets it).
fn contribute(dacts: &mut [Option<Vec<f32>>], i: usize, g: Vec<f32>) {
    match &mut dacts[i] {
        Some(d) => add_into_reference(d, &g, true),
        slot => *slot = Some(g),
    }
}

/// Gradients of every tensor (zeros for the running statistics) from dlogits [B, classes].
pub fn net_backward(net: &Net, params: &NetParams, tape: &Tape, dlogits: Vec<f32>) -> NetParams {
    net_backward_with(net, params, tape, dlogits, &[], Vec::new()).0
}

/// `net_backward` where the activation quantizers of some nodes have learned steps (`learned[n]`:
/// the quantizer and LSQ's gradient scale): their step gradients per node come back beside
/// (lsq_backward_reference, which also passes dY straight through).
pub fn net_backward_with(net: &Net, params: &NetParams, tape: &Tape, dlogits: Vec<f32>, learned: &[Option<(QuantFn, f32)>], injected: Vec<(usize, Vec<f32>)>) -> (NetParams, Vec<Option<Vec<f32>>>) {
    let first = first_tensor(net);
    let rows = tape.rows;
    // Each gradient is the product or sum that computes it; the tensors no gradient reaches (the
    // running statistics, a branch cut off) are zeros, filled in at the end.
    let infos = net.tensors();
    let mut grads = NetParams { tensors: vec![Vec::new(); infos.len()] };
    let mut steps = vec![None; net.nodes.len()];
    let mut dacts: Vec<Option<Vec<f32>>> = vec![None; net.nodes.len()];
    dacts[net.last()] = Some(dlogits);
    // Gradients of extra loss terms on intermediate outputs (attention transfer) add to what the
    // node's readers send back.
    for (n, g) in injected {
        contribute(&mut dacts, n, g);
    }
    for n in (1..net.nodes.len()).rev() {
        let node = &net.nodes[n];
        let Some(mut dy) = dacts[n].take() else { continue };
        if let (Some(Some((q, scale))), false) = (learned.get(n), tape.raw[n].is_empty()) {
            steps[n] = Some(lsq_backward_reference(q, &tape.raw[n], &mut dy, node.shape.c, *scale));
        } else if !tape.keep[n].is_empty() {
            // Straight through the activation quantizer, zero where it clipped.
            mask_apply_reference(&mut dy, &tape.keep[n]);
        }
        if node.relu {
            // dY *= (Y > 0), Y the node's (post-ReLU) output
            for (d, &y) in dy.iter_mut().zip(&tape.acts[n]) {
                if y <= 0.0 {
                    *d = 0.0;
                }
            }
        }
        let t = first[n];
        let src = node.inputs[0];
        let xin = &tape.acts[src];
        let need_dx = src != 0;
        match node.op {
            Op::Input => unreachable!(),
            Op::Dense { outputs } => {
                let i = xin.len() / rows;
                grads.tensors[t] = mm(xin, &dy, i, outputs, rows, true, false); // dW [I, O] = Xᵀ·dY
                grads.tensors[t + 1] = col_sums(&dy, outputs); // db [O]
                if need_dx {
                    contribute(&mut dacts, src, mm(&dy, &params.tensors[t], rows, i, outputs, false, true)); // dX [B, I] = dY·Wᵀ
                }
            }
            Op::Conv { outputs, .. } => {
                let g = geometry(net, n, rows);
                grads.tensors[t] = mm(&tape.cols[n], &dy, g.patch(), outputs, g.positions(), true, false); // dW = colsᵀ·dY
                grads.tensors[t + 1] = col_sums(&dy, outputs);
                if need_dx {
                    let dcols = mm(&dy, &params.tensors[t], g.positions(), g.patch(), outputs, false, true); // dcols = dY·Wᵀ
                    let mut dx = vec![0.0; xin.len()];
                    col2im_reference(&dcols, &g, &mut dx, false);
                    contribute(&mut dacts, src, dx);
                }
            }
            Op::BatchNorm => {
                let s = node.shape;
                let (mean, var) = &tape.stats[n];
                let mut dx = vec![0.0; xin.len()];
                let (dg, db) = bn_backward_reference(&dy, xin, s.c, tape.valid * s.h * s.w, mean, var, &params.tensors[t], BN_EPS, &mut dx, false);
                grads.tensors[t] = dg;
                grads.tensors[t + 1] = db;
                if need_dx {
                    contribute(&mut dacts, src, dx);
                }
            }
            Op::MaxPool { .. } => {
                let mut dx = vec![0.0; xin.len()];
                maxpool_backward_reference(&dy, &tape.argmax[n], &mut dx, false);
                contribute(&mut dacts, src, dx);
            }
            Op::AvgPool { .. } => {
                let mut dx = vec![0.0; xin.len()];
                avgpool_backward_reference(&dy, &geometry(net, n, rows), &mut dx, false);
                contribute(&mut dacts, src, dx);
            }
            Op::Add => {
                contribute(&mut dacts, node.inputs[1], dy.clone());
                contribute(&mut dacts, src, dy);
            }
        }
    }
    for (g, info) in grads.tensors.iter_mut().zip(&infos) {
        if g.is_empty() {
            g.resize(info.len(), 0.0);
        }
    }
    (grads, steps)
}

/// Mean cross-entropy over the first `valid` rows, the gradients, and the tape (logits last).
/// Trains batch norm as the trainer does (batch statistics; running statistics move).
pub fn net_loss_and_grads(net: &Net, params: &mut NetParams, x: Vec<f32>, labels: &[u32], rows: usize, valid: usize) -> (f32, NetParams, Tape) {
    let (loss, grads, tape, _, _) = net_loss_and_grads_with(net, params, x, labels, rows, valid, &[], &[], None);
    (loss, grads, tape)
}

/// The loss slot of the CPU reference: cross-entropy against the labels (None), or the
/// distillation head against a teacher's logits [rows, classes] (distill_loss_reference) with
/// any attention-transfer terms on intermediate nodes.
pub type Head<'a> = Option<(&'a [f32], &'a DistillParams, &'a [AttentionIn<'a>], &'a [HintIn<'a>])>;

/// One FitNets hint term: student node, the teacher node's output [rows, positions, ct], the
/// shapes, weight and the projection [cs, ct] in use.
pub struct HintIn<'a> {
    pub node: usize,
    pub teacher: &'a [f32],
    pub positions: usize,
    pub cs: usize,
    pub ct: usize,
    pub weight: f32,
    pub projection: &'a [f32],
}

/// One attention-transfer term (attention_transfer_reference): student node, the teacher node's
/// output [rows, positions, ct], and the pair's shapes and weight.
pub struct AttentionIn<'a> {
    pub node: usize,
    pub teacher: &'a [f32],
    pub positions: usize,
    pub cs: usize,
    pub ct: usize,
    pub beta: f32,
}

/// `net_loss_and_grads` with activation transforms (see `net_forward_with`), the step
/// gradients of the learned ones (see `net_backward_with`), and the loss in `head`.
#[allow(clippy::too_many_arguments)]
/// Returns (mean loss, gradients, tape, learned activation steps' gradients, hint projections' gradients).
pub fn net_loss_and_grads_with(net: &Net, params: &mut NetParams, x: Vec<f32>, labels: &[u32], rows: usize, valid: usize, acts: &[Option<QuantFn>], learned: &[Option<(QuantFn, f32)>], head: Head) -> (f32, NetParams, Tape, Vec<Option<Vec<f32>>>, Vec<Vec<f32>>) {
    let tape = net_forward_keeping(net, params, x, rows, valid, true, acts, learned);
    let logits = logits_array(tape.logits(), rows, net.classes);
    let (dlogits, mut row_loss) = match head {
        None => softmax_xent_reference(&logits, labels, valid),
        Some((teacher, p, _, _)) => distill_loss_reference(&logits, &logits_array(teacher, rows, net.classes), labels, valid, p),
    };
    // Attention transfer: its loss joins the rows', its gradient enters the student node's output.
    let mut injected = Vec::new();
    for a in head.map(|h| h.2).unwrap_or(&[]) {
        let (grad, loss) = attention_transfer_reference(&tape.acts[a.node], a.teacher, rows, valid, a.positions, a.cs, a.ct, a.beta);
        for (r, l) in row_loss.iter_mut().zip(&loss) {
            *r += l;
        }
        injected.push((a.node, grad));
    }
    // Hints: Y = S·W per position, the loss of Y against the teacher; dW = Sᵀ·dY, dS = dY·Wᵀ.
    let mut projection_grads = Vec::new();
    for h in head.map(|h| h.3).unwrap_or(&[]) {
        let s = &tape.acts[h.node];
        let m = rows * h.positions;
        let y = mm(s, h.projection, m, h.ct, h.cs, false, false);
        let (dy, loss) = hint_loss_reference(&y, h.teacher, rows, valid, h.positions * h.ct, h.weight);
        for (r, l) in row_loss.iter_mut().zip(&loss) {
            *r += l;
        }
        projection_grads.push(mm(s, &dy, h.cs, h.ct, m, true, false));
        injected.push((h.node, mm(&dy, h.projection, m, h.cs, h.ct, false, true)));
    }
    let (grads, steps) = net_backward_with(net, params, &tape, dlogits.into_raw_vec_and_offset().0, learned, injected);
    (row_loss.iter().sum::<f32>() / valid as f32, grads, tape, steps, projection_grads)
}

pub fn logits_array(logits: &[f32], rows: usize, classes: usize) -> ndarray::Array2<f32> {
    ndarray::Array2::from_shape_vec((rows, classes), logits.to_vec()).expect("logits are [B, C]")
}

/// Running loss/accuracy sums: [loss_sum, correct, seen, unused], the layout of the GPU accumulator.
pub type Accumulator = [f32; 4];

/// Trains a `Net` on the CPU with the reference ops; mirrors `gpu::net::GpuTrainer` step for step.
pub struct CpuTrainer {
    pub net: Net,
    pub params: NetParams,
    first: NetParams,
    second: NetParams,
    opt: OptimizerConfig,
    t: u64,
    data: Splits,
    norm: Normalization,
    batch: usize,
    /// Rows per evaluation batch (default: the training batch, at least 256).
    eval_rows: Option<usize>,
    order: Vec<u32>,
    acc: Accumulator,
    /// Hard pruning masks per tensor (`Net::tensors()` order), re-applied after every step.
    hard_masks: Vec<Option<Vec<f32>>>,
    /// Weight and activation transforms (fake quantization) in force.
    transforms: Transforms,
    /// Learned quantizer steps: the optimizer's (first, second) moments of each learned table,
    /// per tensor and per node.
    step_moments: (Vec<Option<Moments>>, Vec<Option<Moments>>),
    /// The loss slot: a frozen teacher and the distillation head (None: cross-entropy); its
    /// logits for the whole training split when cached (see `GpuTrainer::set_teacher`), and
    /// whether set_teacher may cache them.
    teacher: Option<(Teacher, DistillParams)>,
    teacher_logits: Option<Vec<f32>>,
    cache_teacher: bool,
    /// Augmentation: training images moved by up to this many pixels (data::jitter_shift).
    jitter: usize,
    /// Attention-transfer terms with the teacher: (pair, positions, student and teacher channels).
    attention: Vec<(AttentionTransfer, (usize, usize, usize))>,
    /// Hint terms: the pair, its shapes, and its projection with the optimizer's moments.
    hints: Vec<(Hint, (usize, usize, usize), [Vec<f32>; 3])>,
}

type Moments = (Vec<f32>, Vec<f32>);

/// Logits [n, classes] of every image of `ds` in order (inference mode, `activations` applied),
/// in batches of `batch`.
pub fn split_logits(net: &Net, params: &mut NetParams, activations: &[Option<QuantFn>], ds: &crate::data::Dataset, norm: Normalization, batch: usize) -> Vec<f32> {
    let order: Vec<u32> = (0..ds.n as u32).collect();
    let mut out = Vec::with_capacity(ds.n * net.classes);
    for (offset, valid) in ds.batches(batch) {
        let (x, _) = ds.gather(&order, offset, valid, norm);
        out.extend(net_forward_with(net, params, x, valid, valid, false, activations).acts.pop().expect("logits"));
    }
    out
}

/// What a step's teacher reads: the student's batch, the batch gathered with its own
/// normalisation, or its cached logits' rows (then no forward runs; no node loss is set).
enum TeacherBatch {
    Same,
    Input(Vec<f32>),
    Logits(Vec<f32>),
}

/// One optimizer update of `w` (sgd_reference or adam_reference). In the threaded build a large
/// tensor is updated in chunks on the pool (`update_parts`).
fn update_reference(kind: OptimizerKind, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], p: &crate::nn::OptimParams) {
    update_parts(kind, w, g, m, v, p, super::pool::threads_for_elements(w.len()));
}

/// `update_reference` on `parts` consecutive chunks of the tensor, on rayon's pool in the threaded
/// build and one after another elsewhere. The update is element-wise, so the result is the same
/// (bit for bit) however it is cut. `v` (Adam's second moments) is not read by SGD and may be empty.
pub fn update_parts(kind: OptimizerKind, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], p: &crate::nn::OptimParams, parts: usize) {
    let one = |w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| match kind {
        OptimizerKind::Sgd => sgd_reference(w, g, m, p),
        OptimizerKind::Adam => adam_reference(w, g, m, v, p),
    };
    if parts <= 1 || w.is_empty() {
        return one(w, g, m, v);
    }
    let per = w.len().div_ceil(parts);
    let mut vs: Vec<&mut [f32]> = if v.is_empty() { Vec::new() } else { v.chunks_mut(per).collect() };
    vs.resize_with(w.len().div_ceil(per), Default::default);
    let chunks: Vec<_> = w.chunks_mut(per).zip(g.chunks(per)).zip(m.chunks_mut(per)).zip(vs).collect();
    super::pool::each(chunks, |(((w, g), m), v)| one(w, g, m, v));
}

/// Gradients of one step: every tensor's, and the step gradients of the learned weight
/// quantizers (per tensor) and activation quantizers (per node).
struct StepGrads {
    /// The mean loss the step minimised (the loss slot's: cross-entropy or the distillation head).
    loss: f32,
    params: NetParams,
    weight_steps: Vec<Option<Vec<f32>>>,
    act_steps: Vec<Option<Vec<f32>>>,
    /// Gradients of the hint projections.
    projections: Vec<Vec<f32>>,
}

impl CpuTrainer {
    pub fn new(net: &Net, params: NetParams, opt: OptimizerConfig, data: Splits, norm: Normalization, batch: usize) -> CpuTrainer {
        let zeros = NetParams::zeros(net);
        CpuTrainer { net: net.clone(), first: zeros.clone(), second: zeros, params, opt, t: 0, data, norm, batch, eval_rows: None, order: Vec::new(), acc: [0.0; 4], hard_masks: Vec::new(), transforms: Transforms::default(), step_moments: (vec![], vec![]), teacher: None, teacher_logits: None, cache_teacher: true, jitter: 0, attention: Vec::new(), hints: Vec::new() }
    }

    pub fn begin_epoch(&mut self, order: &[u32]) {
        self.order = order.to_vec();
    }

    /// Installs weight and activation transforms (same contract as `GpuTrainer::with_transforms`).
    pub fn set_transforms(&mut self, t: &Transforms) {
        self.transforms = t.clone();
        let moments = |q: Option<&QuantFn>| q.map(|q| (vec![0.0; q.table().len()], vec![0.0; q.table().len()]));
        self.step_moments = ((0..t.weights.len()).map(|j| moments(t.learned_weight(j))).collect(), (0..t.activations.len()).map(|n| moments(t.learned_activation(n))).collect());
    }

    /// Same contract as `GpuTrainer::set_teacher`: every training step's loss is the distillation
    /// head against the teacher's logits on the same batch (inference mode).
    pub fn set_teacher(&mut self, teacher: &Teacher, p: DistillParams) -> crate::error::Result<()> {
        teacher.check_student(&self.net)?;
        self.teacher = Some((teacher.clone(), p));
        self.attention.clear();
        self.hints.clear();
        self.teacher_logits = (self.cache_teacher && self.jitter == 0).then(|| self.teacher_table());
        Ok(())
    }

    /// Same contract as `GpuTrainer::prefer_teacher_cache`.
    pub fn prefer_teacher_cache(&mut self, on: bool) {
        self.cache_teacher = on;
    }

    /// Whether the teacher's logits are cached.
    pub fn teacher_cached(&self) -> bool {
        self.teacher_logits.is_some()
    }

    /// The teacher's logits [N, classes] for the training split in sample order (inference mode,
    /// its normalisation), in training-sized batches (faster here than larger ones).
    fn teacher_table(&mut self) -> Vec<f32> {
        let Some((teacher, _)) = self.teacher.as_mut() else { return Vec::new() };
        split_logits(&teacher.net, &mut teacher.params, &teacher.activations, &self.data.train, teacher.norm.unwrap_or(self.norm), self.batch.max(1))
    }

    /// Attention transfer alone (see `set_node_losses`).
    pub fn set_attention(&mut self, pairs: &[AttentionTransfer]) -> crate::error::Result<()> {
        self.set_node_losses(pairs, &[])
    }

    /// Same contract as `GpuTrainer::set_node_losses`.
    pub fn set_node_losses(&mut self, pairs: &[AttentionTransfer], hints: &[Hint]) -> crate::error::Result<()> {
        let Some((teacher, _)) = &self.teacher else {
            return Err(crate::error::Error::Invalid("attention transfer and hints need a teacher: set it first".into()));
        };
        let attention = pairs.iter().map(|a| Ok((*a, a.shapes(&self.net, &teacher.net)?))).collect::<crate::error::Result<_>>()?;
        let hints = hints
            .iter()
            .enumerate()
            .map(|(k, h)| {
                let (p, cs, ct) = h.shapes(&self.net, &teacher.net)?;
                let moments = if self.opt.kind == OptimizerKind::Adam { cs * ct } else { 1 };
                Ok((*h, (p, cs, ct), [Hint::init(cs, ct, k), vec![0.0; cs * ct], vec![0.0; moments]]))
            })
            .collect::<crate::error::Result<_>>()?;
        (self.attention, self.hints) = (attention, hints);
        if !(self.attention.is_empty() && self.hints.is_empty()) {
            self.teacher_logits = None; // the terms read the teacher's inner outputs
        }
        Ok(())
    }

    /// The hint projections as trained so far.
    pub fn projections(&self) -> Vec<Vec<f32>> {
        self.hints.iter().map(|(_, _, [w, _, _])| w.clone()).collect()
    }

    /// Same contract as `GpuTrainer::set_jitter`.
    pub fn set_jitter(&mut self, k: usize) {
        self.jitter = k;
        if k > 0 {
            self.teacher_logits = None;
        }
    }

    /// The transforms in force, with the steps learned so far.
    pub fn transforms(&self) -> &Transforms {
        &self.transforms
    }

    /// Swaps the fake-quantized copy of every transformed weight in for its master (the f32
    /// master is returned, to be swapped back with `restore_masters`).
    fn swap_in_transformed(&mut self, infos: &[crate::nn::TensorInfo]) -> Vec<(usize, Vec<f32>)> {
        let mut masters = Vec::new();
        for (j, q) in self.transforms.weights.iter().enumerate() {
            if let Some(q) = q {
                let wq = fake_quant_reference(q, &self.params.tensors[j], infos[j].cols);
                masters.push((j, std::mem::replace(&mut self.params.tensors[j], wq)));
            }
        }
        masters
    }

    fn restore_masters(&mut self, masters: Vec<(usize, Vec<f32>)>) {
        for (j, w) in masters {
            self.params.tensors[j] = w;
        }
    }

    /// Gradients of every tensor on one batch, as a step sees them: forward and backward read the
    /// transformed weights and activations, and each master weight's gradient is clipped by the
    /// straight-through estimator (by lsq_backward where the step is learned, which also gives the
    /// step's gradient). The masters are what `self.params` holds afterwards.
    fn step_grads(&mut self, infos: &[crate::nn::TensorInfo], (x, teacher_in): (Vec<f32>, TeacherBatch), y: &[u32], valid: usize) -> (StepGrads, Tape) {
        let masters = self.swap_in_transformed(infos);
        let t = &self.transforms;
        let learned: Vec<Option<(QuantFn, f32)>> = self.net.nodes.iter().enumerate().map(|(n, node)| t.learned_activation(n).map(|q| (q.clone(), q.lsq_grad_scale(node.shape.size())))).collect();
        // The teacher's outputs on this batch: its cached logits alone, or its forward.
        let teacher_acts = self.teacher.as_mut().map(|(teacher, _)| match teacher_in {
            TeacherBatch::Logits(logits) => vec![logits],
            TeacherBatch::Input(tx) => net_forward_with(&teacher.net, &mut teacher.params, tx, valid, valid, false, &teacher.activations).acts,
            TeacherBatch::Same => net_forward_with(&teacher.net, &mut teacher.params, x.clone(), valid, valid, false, &teacher.activations).acts,
        });
        let t = &self.transforms;
        let attention: Vec<AttentionIn> = match &teacher_acts {
            Some(acts) => self.attention.iter().map(|(a, (positions, cs, ct))| AttentionIn { node: a.student, teacher: &acts[a.teacher], positions: *positions, cs: *cs, ct: *ct, beta: a.beta }).collect(),
            None => Vec::new(),
        };
        let hints: Vec<HintIn> = match &teacher_acts {
            Some(acts) => self.hints.iter().map(|(h, (positions, cs, ct), [w, _, _])| HintIn { node: h.student, teacher: &acts[h.teacher], positions: *positions, cs: *cs, ct: *ct, weight: h.weight, projection: w }).collect(),
            None => Vec::new(),
        };
        let head = teacher_acts.as_ref().and_then(|a| a.last()).zip(self.teacher.as_ref()).map(|(logits, (_, p))| (&logits[..], p, &attention[..], &hints[..]));
        let (loss, mut grads, tape, act_steps, projections) = net_loss_and_grads_with(&self.net, &mut self.params, x, y, valid, valid, &t.activations, &learned, head);
        self.restore_masters(masters);
        let mut weight_steps = vec![None; infos.len()];
        for (j, q) in self.transforms.weights.iter().enumerate() {
            let Some(q) = q else { continue };
            let (w, g) = (&self.params.tensors[j], &mut grads.tensors[j]);
            if self.transforms.learned_weight(j).is_some() {
                let per_step = w.len() / (q.table().len() / 3).max(1);
                weight_steps[j] = Some(lsq_backward_reference(q, w, g, infos[j].cols, q.lsq_grad_scale(per_step)));
            } else {
                ste_clip_reference(q, w, g, infos[j].cols);
            }
        }
        (StepGrads { loss, params: grads, weight_steps, act_steps, projections }, tape)
    }

    /// A training step's batch, as the GPU's gather: the student's input, and the teacher's
    /// where the teacher was trained with another normalisation (the same pixels, moved alike).
    /// Or the batch's rows of the teacher's cached logits (gather_rows).
    fn gather_step(&self, order: &[u32], offset: usize, valid: usize) -> ((Vec<f32>, TeacherBatch), Vec<u32>) {
        let train = &self.data.train;
        let (x, y) = train.gather_jittered(order, offset, valid, self.norm, self.jitter);
        let own = self.teacher.as_ref().and_then(|(t, _)| t.norm).filter(|&n| n != self.norm);
        let teacher = match (&self.teacher_logits, own) {
            (Some(table), _) => TeacherBatch::Logits(gather_rows_reference(table, self.net.classes, order, offset, valid, valid)),
            (None, Some(n)) => TeacherBatch::Input(train.gather_jittered(order, offset, valid, n, self.jitter).0),
            (None, None) => TeacherBatch::Same,
        };
        ((x, teacher), y)
    }

    /// One optimizer step on the batch order[offset..offset+valid] at learning rate `lr`.
    /// Forward and backward read the transformed weights; the masters take the update, then
    /// learned quantizer steps theirs.
    pub fn train_step(&mut self, offset: usize, valid: usize, lr: f32) {
        let (x, y) = self.gather_step(&self.order, offset, valid);
        let infos = self.net.tensors();
        let (grads, tape) = self.step_grads(&infos, x, &y, valid);
        // The loss the step minimised (as the GPU's accumulator), the accuracy of its logits.
        let correct = argmax_correct_reference(&logits_array(tape.logits(), valid, self.net.classes), &y, valid);
        metrics_accumulate_reference(&mut self.acc, &vec![grads.loss; valid], &correct, valid);
        self.t += 1;
        for (j, info) in infos.iter().enumerate() {
            if !info.trainable {
                continue;
            }
            let p = self.opt.step_params(info.len(), lr, self.t);
            let (w, g, m, v) = (&mut self.params.tensors[j], &grads.params.tensors[j], &mut self.first.tensors[j], &mut self.second.tensors[j]);
            update_reference(self.opt.kind, w, g, m, v, &p);
        }
        let steps = self.opt.without_decay();
        let learn = |q: &mut Option<QuantFn>, g: &Option<Vec<f32>>, moments: &mut Option<Moments>| {
            let (Some(quant), Some(g), Some((m, v))) = (q.as_mut(), g, moments) else { return };
            let mut table = quant.table();
            let p = steps.step_params(table.len(), lr, self.t);
            update_reference(steps.kind, &mut table, g, m, v, &p);
            lsq_sync_reference(&mut table);
            *quant = quant.with_table(&table);
        };
        let (wm, am) = &mut self.step_moments;
        for ((q, g), m) in self.transforms.weights.iter_mut().zip(&grads.weight_steps).zip(wm.iter_mut()) {
            learn(q, g, m);
        }
        for ((q, g), m) in self.transforms.activations.iter_mut().zip(&grads.act_steps).zip(am.iter_mut()) {
            learn(q, g, m);
        }
        // Hint projections: the student's optimizer without decay (as the learned steps).
        for ((_, _, [w, m, v]), g) in self.hints.iter_mut().zip(&grads.projections) {
            let p = steps.step_params(w.len(), lr, self.t);
            update_reference(steps.kind, w, g, m, v, &p);
        }
        let masks = std::mem::take(&mut self.hard_masks);
        self.apply_masks(&masks);
        self.hard_masks = masks;
        for (j, s) in self.transforms.shared.iter_mut().enumerate() {
            if let Some(s) = s {
                shared_update_reference(&mut self.params.tensors[j], &mut s.centroids, &s.offsets, &s.members, s.mean);
            }
        }
    }

    /// Same contract as `GpuTrainer::taylor_scores`: |w·∂L/∂w| of every weight matrix (in
    /// `Net::weight_tensors()` order), summed over `batches` batches, nothing updated.
    pub fn taylor_scores(&mut self, order: &[u32], batch: usize, batches: usize) -> Vec<Vec<f32>> {
        let infos = self.net.tensors();
        let weights = self.net.weight_tensors();
        let mut scores: Vec<Vec<f32>> = weights.iter().map(|&j| vec![0.0; self.params.tensors[j].len()]).collect();
        let saved = self.params.clone(); // scoring must not move the running statistics
        for b in 0..batches {
            let offset = b * batch;
            if offset >= order.len() {
                break;
            }
            let valid = batch.min(order.len() - offset);
            let (x, y) = self.gather_step(order, offset, valid);
            let (grads, _) = self.step_grads(&infos, x, &y, valid);
            for (s, &j) in scores.iter_mut().zip(&weights) {
                taylor_accumulate_reference(s, &saved.tensors[j], &grads.params.tensors[j]);
            }
        }
        self.params = saved;
        scores
    }

    /// Same contract as `GpuTrainer::set_masks`.
    pub fn set_masks(&mut self, masks: &[Option<Vec<f32>>], hard: bool) {
        self.apply_masks(masks);
        self.hard_masks = if hard { masks.to_vec() } else { Vec::new() };
    }

    fn apply_masks(&mut self, masks: &[Option<Vec<f32>>]) {
        for (t, m) in self.params.tensors.iter_mut().zip(masks) {
            if let Some(m) = m {
                mask_apply_reference(t, m);
            }
        }
    }

    /// Returns and clears the training accumulator.
    pub fn take_metrics(&mut self) -> Accumulator {
        std::mem::replace(&mut self.acc, [0.0; 4])
    }

    /// Evaluates `rows` test samples per batch from now on.
    pub fn set_eval_rows(&mut self, rows: usize) {
        self.eval_rows = Some(rows.max(1));
    }

    /// Loss/accuracy sums over the whole test split (running batch-norm statistics).
    pub fn evaluate(&mut self) -> Accumulator {
        self.evaluate_first(usize::MAX)
    }

    /// [`Self::evaluate`] over the first `limit` test samples only (inference timing).
    pub fn evaluate_first(&mut self, limit: usize) -> Accumulator {
        let masters = self.swap_in_transformed(&self.net.tensors());
        let test = &self.data.test;
        let order: Vec<u32> = (0..test.n as u32).collect();
        let batch = self.eval_rows.unwrap_or(self.batch.max(EVAL_ROWS));
        let mut acc = [0.0; 4];
        for (offset, valid) in test.batches(batch).take_while(|&(offset, _)| offset < limit) {
            let valid = valid.min(limit - offset);
            let (x, y) = test.gather(&order, offset, valid, self.norm);
            let tape = net_forward_with(&self.net, &mut self.params, x, valid, valid, false, &self.transforms.activations);
            accumulate_logits(&mut acc, tape.logits(), self.net.classes, &y, valid);
        }
        self.restore_masters(masters);
        acc
    }

    /// Logits of `x` ([rows, pixels], normalised) in inference mode.
    pub fn predict(&mut self, x: Vec<f32>, rows: usize) -> Vec<f32> {
        let masters = self.swap_in_transformed(&self.net.tensors());
        let logits = net_forward_with(&self.net, &mut self.params, x, rows, rows, false, &self.transforms.activations).acts.pop().expect("logits");
        self.restore_masters(masters);
        logits
    }

    /// Activation taps: the outputs of `nodes` (inference mode, transforms in force) for the first
    /// `batches` batches of `batch` samples of `data`, per node per batch, valid rows only.
    pub fn tap(&mut self, data: &crate::data::Dataset, batch: usize, batches: usize, nodes: &[usize]) -> Vec<Vec<Vec<f32>>> {
        let masters = self.swap_in_transformed(&self.net.tensors());
        let order: Vec<u32> = (0..data.n as u32).collect();
        let mut out = vec![Vec::new(); nodes.len()];
        for (offset, valid) in data.batches(batch.max(1)).take(batches) {
            let (x, _) = data.gather(&order, offset, valid, self.norm);
            let tape = net_forward_with(&self.net, &mut self.params, x, valid, valid, false, &self.transforms.activations);
            for (o, &n) in out.iter_mut().zip(nodes) {
                o.push(tape.acts[n].clone());
            }
        }
        self.restore_masters(masters);
        out
    }
}

fn accumulate_logits(acc: &mut Accumulator, logits: &[f32], classes: usize, y: &[u32], valid: usize) {
    let logits = logits_array(logits, valid, classes);
    let (_, row_loss) = softmax_xent_reference(&logits, y, valid);
    let correct = argmax_correct_reference(&logits, y, valid);
    metrics_accumulate_reference(acc, &row_loss, &correct, valid);
}
