//! One trainer over either backend: the GPU trainer or the CPU reference, same calls. Stages hold
//! a `Trainer` and never match on the backend themselves.

use crate::error::Result;
use crate::gpu::{GpuTrainer, ResidentSplits};
use crate::nn::NetParams;
use crate::reference::net::CpuTrainer;

pub enum Trainer {
    Gpu(Box<GpuTrainer>),
    Cpu(Box<CpuTrainer>),
}

impl Trainer {
    /// A trainer on `backend` for model state `m` (masks and transforms in force) with `cfg`'s
    /// optimizer, batch and augmentation.
    /// On the GPU, `resident` holds `data` already uploaded (else it is uploaded for this trainer).
    pub fn build(backend: &super::Backend, m: &super::ModelState, (data, resident): (&crate::data::Splits, Option<&ResidentSplits>), norm: crate::data::Normalization, cfg: &crate::recipe::TrainConfig) -> Trainer {
        let opt = cfg.optimizer_config();
        let mut t = match backend {
            super::Backend::Gpu(ctx) => {
                let uploaded;
                let on = match resident {
                    Some(r) => r,
                    None => {
                        uploaded = ResidentSplits::upload(ctx, data);
                        &uploaded
                    }
                };
                Trainer::Gpu(Box::new(GpuTrainer::on_resident(ctx, &m.net, &m.params, opt, on, norm, cfg.batch, &m.transforms)))
            }
            super::Backend::Cpu => {
                let mut t = CpuTrainer::new(&m.net, m.params.clone(), opt, data.clone(), norm, cfg.batch);
                t.set_transforms(&m.transforms);
                Trainer::Cpu(Box::new(t))
            }
        };
        if let Some(masks) = &m.masks {
            t.set_masks(&masks.tensors, masks.hard);
        }
        if cfg.jitter > 0 {
            t.set_jitter(cfg.jitter);
        }
        t
    }

    pub fn begin_epoch(&mut self, order: &[u32]) {
        match self {
            Trainer::Gpu(t) => t.begin_epoch(order),
            Trainer::Cpu(t) => t.begin_epoch(order),
        }
    }
    pub fn train_step(&mut self, offset: usize, valid: usize, lr: f32) {
        match self {
            Trainer::Gpu(t) => t.train_step(offset, valid, lr),
            Trainer::Cpu(t) => t.train_step(offset, valid, lr),
        }
    }
    pub async fn take_metrics(&mut self) -> Result<[f32; 4]> {
        match self {
            Trainer::Gpu(t) => t.take_metrics().await,
            Trainer::Cpu(t) => Ok(t.take_metrics()),
        }
    }
    pub async fn evaluate(&mut self) -> Result<[f32; 4]> {
        self.evaluate_first(usize::MAX).await
    }
    /// The evaluation over the first `limit` test samples only (inference timing).
    pub async fn evaluate_first(&mut self, limit: usize) -> Result<[f32; 4]> {
        match self {
            Trainer::Gpu(t) => t.evaluate_first(limit).await,
            Trainer::Cpu(t) => Ok(t.evaluate_first(limit)),
        }
    }
    pub async fn taylor_scores(&mut self, order: &[u32], batch: usize, batches: usize) -> Result<Vec<Vec<f32>>> {
        match self {
            Trainer::Gpu(t) => t.taylor_scores(order, batch, batches).await,
            Trainer::Cpu(t) => Ok(t.taylor_scores(order, batch, batches)),
        }
    }
    pub fn set_params(&mut self, p: &NetParams) {
        match self {
            Trainer::Gpu(t) => t.set_params(p),
            Trainer::Cpu(t) => t.params = p.clone(),
        }
    }
    pub fn set_masks(&mut self, masks: &[Option<Vec<f32>>], hard: bool) {
        match self {
            Trainer::Gpu(t) => t.set_masks(masks, hard),
            Trainer::Cpu(t) => t.set_masks(masks, hard),
        }
    }
    /// Activation taps: outputs of `nodes` over the first `batches` batches of `data`.
    pub async fn tap(&mut self, data: &crate::data::Dataset, batch: usize, batches: usize, nodes: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        match self {
            Trainer::Gpu(t) => t.tap(data, batch, batches, nodes).await,
            Trainer::Cpu(t) => Ok(t.tap(data, batch, batches, nodes)),
        }
    }
    /// Test samples per evaluation batch from now on.
    pub fn set_eval_rows(&mut self, rows: usize) {
        match self {
            Trainer::Gpu(t) => t.set_eval_rows(rows),
            Trainer::Cpu(t) => t.set_eval_rows(rows),
        }
    }
    /// The loss slot: distil from a frozen teacher from now on (see GpuTrainer::set_teacher),
    /// its logits cached for the split if `cache` and nothing moves the images.
    pub fn set_teacher(&mut self, teacher: &crate::nn::Teacher, p: crate::nn::DistillParams, cache: bool) -> Result<()> {
        match self {
            Trainer::Gpu(t) => {
                t.prefer_teacher_cache(cache);
                t.set_teacher(teacher, p)
            }
            Trainer::Cpu(t) => {
                t.prefer_teacher_cache(cache);
                t.set_teacher(teacher, p)
            }
        }
    }
    /// Attention transfer and hints with the teacher (after set_teacher; see GpuTrainer::set_node_losses).
    pub fn set_node_losses(&mut self, pairs: &[crate::nn::AttentionTransfer], hints: &[crate::nn::Hint]) -> Result<()> {
        match self {
            Trainer::Gpu(t) => t.set_node_losses(pairs, hints),
            Trainer::Cpu(t) => t.set_node_losses(pairs, hints),
        }
    }
    /// Augmentation: training images moved by up to `k` pixels each way (0: none).
    pub fn set_jitter(&mut self, k: usize) {
        match self {
            Trainer::Gpu(t) => t.set_jitter(k),
            Trainer::Cpu(t) => t.set_jitter(k),
        }
    }
    /// The transforms in force, with learned quantizer steps as trained so far.
    pub async fn transforms(&self) -> Result<crate::nn::Transforms> {
        match self {
            Trainer::Gpu(t) => t.transforms().await,
            Trainer::Cpu(t) => Ok(t.transforms().clone()),
        }
    }
    pub async fn params(&self) -> Result<NetParams> {
        match self {
            Trainer::Gpu(t) => t.params().await,
            Trainer::Cpu(t) => Ok(t.params.clone()),
        }
    }
}

/// (mean loss, accuracy) from an accumulator [loss_sum, correct, seen, _].
pub fn means(acc: [f32; 4]) -> (f32, f32) {
    let n = acc[2].max(1.0);
    (acc[0] / n, acc[1] / n)
}
