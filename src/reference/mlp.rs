//! The MLP on the CPU, built only from the `_reference` ops: forward, backward (gradients first,
//! shapes in comments), and a trainer with the same interface as the GPU one. It is the oracle of
//! the golden end-to-end test and the backend the page falls back to when there is no WebGPU.
//! Legend: B = batch, V = valid rows, I/O = layer in/out, C = classes.

use super::ops::*;
use crate::data::{Normalization, Splits};
use crate::nn::{DenseParams, MlpParams, OptimizerConfig, OptimizerKind};
use ndarray::{Array1, Array2};

/// acts[0] = x [B, I0]; acts[l+1] = output of layer l [B, O_l] (ReLU'd except the last: logits).
pub fn mlp_forward(params: &MlpParams, x: Array2<f32>) -> Vec<Array2<f32>> {
    let n = params.layers.len();
    let mut acts = vec![x];
    for (l, layer) in params.layers.iter().enumerate() {
        let mut y = matmul_reference(acts[l].view(), layer.w.view(), false, false); // [B, O] = [B, I]·[I, O]
        bias_add_reference(&mut y, &layer.b);
        if l + 1 < n {
            relu_forward_reference(&mut y);
        }
        acts.push(y);
    }
    acts
}

/// Gradients of every parameter from dlogits [B, C], given the forward activations.
///   dW_l = X_lᵀ·dY_l [I, O];  db_l = colsum dY_l [O];  dX_l = dY_l·W_lᵀ [B, I], then through ReLU.
pub fn mlp_backward(params: &MlpParams, acts: &[Array2<f32>], dlogits: Array2<f32>) -> MlpParams {
    let n = params.layers.len();
    let mut grads: Vec<DenseParams> = Vec::with_capacity(n);
    let mut dy = dlogits;
    for l in (0..n).rev() {
        let dw = matmul_reference(acts[l].view(), dy.view(), true, false);
        let db = bias_grad_reference(&dy);
        if l > 0 {
            let mut dx = matmul_reference(dy.view(), params.layers[l].w.view(), false, true);
            relu_backward_reference(&mut dx, &acts[l]);
            dy = dx;
        }
        grads.push(DenseParams { w: dw, b: db });
    }
    grads.reverse();
    MlpParams { layers: grads }
}

/// Mean cross-entropy over the first `valid` rows, its gradients, and the logits.
pub fn mlp_loss_and_grads(params: &MlpParams, x: Array2<f32>, labels: &[u32], valid: usize) -> (f32, MlpParams, Array2<f32>) {
    let acts = mlp_forward(params, x);
    let logits = acts.last().expect("at least one layer").clone();
    let (dlogits, row_loss) = softmax_xent_reference(&logits, labels, valid);
    let grads = mlp_backward(params, &acts, dlogits);
    (row_loss.iter().sum::<f32>() / valid as f32, grads, logits)
}

/// Running loss/accuracy sums: [loss_sum, correct, seen, unused], the layout of the GPU accumulator.
pub type Accumulator = [f32; 4];

/// Trains an MLP on the CPU with the reference ops; mirrors `gpu::mlp::GpuTrainer` step for step.
pub struct CpuTrainer {
    pub params: MlpParams,
    first: MlpParams,
    second: MlpParams,
    opt: OptimizerConfig,
    t: u64,
    data: Splits,
    norm: Normalization,
    batch: usize,
    order: Vec<u32>,
    acc: Accumulator,
    /// Hard pruning masks per tensor (W0, b0, W1, ...), re-applied after every step.
    hard_masks: Vec<Option<Vec<f32>>>,
}

impl CpuTrainer {
    pub fn new(params: MlpParams, opt: OptimizerConfig, data: Splits, norm: Normalization, batch: usize) -> CpuTrainer {
        let zeros = zeros_like(&params);
        CpuTrainer { first: zeros.clone(), second: zeros, params, opt, t: 0, data, norm, batch, order: Vec::new(), acc: [0.0; 4], hard_masks: Vec::new() }
    }

    pub fn begin_epoch(&mut self, order: &[u32]) {
        self.order = order.to_vec();
    }

    /// One optimizer step on the batch order[offset..offset+valid] at learning rate `lr`.
    pub fn train_step(&mut self, offset: usize, valid: usize, lr: f32) {
        let (x, y) = self.data.train.gather(&self.order, offset, valid, self.norm);
        let x = Array2::from_shape_vec((valid, self.data.train.pixels()), x).expect("gather gives valid x P values");
        let (_, grads, logits) = mlp_loss_and_grads(&self.params, x, &y, valid);
        self.accumulate(&logits, &y, valid);
        self.t += 1;
        for ((w, g), (m, v)) in self
            .params
            .layers
            .iter_mut()
            .zip(&grads.layers)
            .zip(self.first.layers.iter_mut().zip(self.second.layers.iter_mut()))
        {
            let pw = self.opt.step_params(w.w.len(), lr, self.t);
            let pb = self.opt.step_params(w.b.len(), lr, self.t);
            let (ws, gs, ms, vs) = (slice(&mut w.w), g.w.as_slice().unwrap(), slice(&mut m.w), slice(&mut v.w));
            update(self.opt.kind, ws, gs, ms, vs, &pw);
            let (bs, gb, mb, vb) = (slice1(&mut w.b), g.b.as_slice().unwrap(), slice1(&mut m.b), slice1(&mut v.b));
            update(self.opt.kind, bs, gb, mb, vb, &pb);
        }
        let masks = std::mem::take(&mut self.hard_masks);
        self.apply_masks(&masks);
        self.hard_masks = masks;
    }

    /// Same contract as `GpuTrainer::taylor_scores`.
    pub fn taylor_scores(&mut self, order: &[u32], batch: usize, batches: usize) -> Vec<Vec<f32>> {
        let mut scores: Vec<Vec<f32>> = self.params.layers.iter().map(|l| vec![0.0; l.w.len()]).collect();
        for b in 0..batches {
            let offset = b * batch;
            if offset >= order.len() {
                break;
            }
            let valid = batch.min(order.len() - offset);
            let (x, y) = self.data.train.gather(order, offset, valid, self.norm);
            let x = Array2::from_shape_vec((valid, self.data.train.pixels()), x).expect("gather gives valid x P values");
            let (_, grads, _) = mlp_loss_and_grads(&self.params, x, &y, valid);
            for (l, s) in scores.iter_mut().enumerate() {
                taylor_accumulate_reference(s, self.params.layers[l].w.as_slice().expect("standard layout"), grads.layers[l].w.as_slice().expect("standard layout"));
            }
        }
        scores
    }

    /// Same contract as `GpuTrainer::set_masks`.
    pub fn set_masks(&mut self, masks: &[Option<Vec<f32>>], hard: bool) {
        self.apply_masks(masks);
        self.hard_masks = if hard { masks.to_vec() } else { Vec::new() };
    }

    fn apply_masks(&mut self, masks: &[Option<Vec<f32>>]) {
        for (j, m) in masks.iter().enumerate() {
            if let Some(m) = m {
                let layer = &mut self.params.layers[j / 2];
                let t = if j % 2 == 0 { slice(&mut layer.w) } else { slice1(&mut layer.b) };
                mask_apply_reference(t, m);
            }
        }
    }

    fn accumulate(&mut self, logits: &Array2<f32>, y: &[u32], valid: usize) {
        let (_, row_loss) = softmax_xent_reference(logits, y, valid);
        let correct = argmax_correct_reference(logits, y, valid);
        metrics_accumulate_reference(&mut self.acc, &row_loss, &correct, valid);
    }

    /// Returns and clears the training accumulator.
    pub fn take_metrics(&mut self) -> Accumulator {
        std::mem::replace(&mut self.acc, [0.0; 4])
    }

    /// Loss/accuracy sums over the whole test split.
    pub fn evaluate(&mut self) -> Accumulator {
        let saved = self.take_metrics();
        let test = &self.data.test;
        let order: Vec<u32> = (0..test.n as u32).collect();
        let batch = self.batch.max(256);
        let mut acc = [0.0; 4];
        for (offset, valid) in test.batches(batch) {
            let (x, y) = test.gather(&order, offset, valid, self.norm);
            let x = Array2::from_shape_vec((valid, test.pixels()), x).expect("gather gives valid x P values");
            let logits = mlp_forward(&self.params, x).pop().expect("logits");
            let (_, row_loss) = softmax_xent_reference(&logits, &y, valid);
            let correct = argmax_correct_reference(&logits, &y, valid);
            metrics_accumulate_reference(&mut acc, &row_loss, &correct, valid);
        }
        self.acc = saved;
        acc
    }
}

fn update(kind: OptimizerKind, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], p: &crate::nn::OptimParams) {
    match kind {
        OptimizerKind::Sgd => sgd_reference(w, g, m, p),
        OptimizerKind::Adam => adam_reference(w, g, m, v, p),
    }
}

fn slice(a: &mut Array2<f32>) -> &mut [f32] {
    a.as_slice_mut().expect("standard layout")
}

fn slice1(a: &mut Array1<f32>) -> &mut [f32] {
    a.as_slice_mut().expect("standard layout")
}

pub fn zeros_like(p: &MlpParams) -> MlpParams {
    MlpParams {
        layers: p
            .layers
            .iter()
            .map(|l| DenseParams { w: Array2::zeros(l.w.dim()), b: Array1::zeros(l.b.len()) })
            .collect(),
    }
}
