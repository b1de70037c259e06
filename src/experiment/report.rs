//! What a run reports: per epoch, per stage (the fields every stage has, plus one kind-specific
//! detail), and for the whole run. Serialized as the CLI's `--json` and the page's results; the
//! detail is flattened, so a pruning stage's JSON has `"pruning": {...}` beside `test_accuracy`.

use crate::gpu::AdapterSummary;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    /// Training time of this epoch (GPU synchronised at the end), evaluation excluded.
    pub train_s: f64,
    pub samples_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub name: String,
    pub epochs: Vec<EpochReport>,
    pub test_accuracy: f32,
    pub test_loss: f32,
    pub train_s: f64,
    pub samples_per_s: f64,
    /// Measured inference time per test image at the end of the stage: the median of three timed
    /// passes over the whole test split (batches of up to 1000 on the GPU, synchronised at the end).
    pub inference_us_per_image: f64,
    /// What only this kind of stage reports.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub detail: Option<StageDetail>,
    /// Divergence found while it trained, kept because the recipe says `"divergence": "warn"`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The kind-specific part of a stage report (one variant per stage kind that has one).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageDetail {
    /// Pruning and greedy stages.
    Pruning(PruningReport),
    /// Sensitivity scans: per weight matrix, (sparsity, test accuracy) points.
    Sensitivity(Vec<Vec<(f32, f32)>>),
    /// Bit-width sweeps: accuracy and bytes per scheme and width, per-layer bit sensitivity.
    Sweep(crate::experiment::sweep::SweepReport),
    /// Quantize stages.
    Quantization(crate::experiment::quantize::QuantReport),
    /// Distill stages.
    Distillation(crate::experiment::distill::DistillReport),
    /// Temperature × alpha grids.
    DistillGrid(crate::experiment::grid::GridReport),
}

impl StageReport {
    /// A stage that only evaluated (no training).
    pub fn evaluated(name: &str, (test_loss, test_accuracy): (f32, f32), inference_us_per_image: f64) -> StageReport {
        StageReport { name: name.into(), epochs: vec![], test_accuracy, test_loss, train_s: 0.0, samples_per_s: 0.0, inference_us_per_image, detail: None, warnings: Vec::new() }
    }

    pub fn pruning(&self) -> Option<&PruningReport> {
        match &self.detail {
            Some(StageDetail::Pruning(p)) => Some(p),
            _ => None,
        }
    }

    pub fn pruning_mut(&mut self) -> Option<&mut PruningReport> {
        match &mut self.detail {
            Some(StageDetail::Pruning(p)) => Some(p),
            _ => None,
        }
    }

    pub fn distillation(&self) -> Option<&crate::experiment::distill::DistillReport> {
        match &self.detail {
            Some(StageDetail::Distillation(d)) => Some(d),
            _ => None,
        }
    }

    pub fn distill_grid(&self) -> Option<&crate::experiment::grid::GridReport> {
        match &self.detail {
            Some(StageDetail::DistillGrid(g)) => Some(g),
            _ => None,
        }
    }

    pub fn quantization(&self) -> Option<&crate::experiment::quantize::QuantReport> {
        match &self.detail {
            Some(StageDetail::Quantization(q)) => Some(q),
            _ => None,
        }
    }

    pub fn sweep(&self) -> Option<&crate::experiment::sweep::SweepReport> {
        match &self.detail {
            Some(StageDetail::Sweep(s)) => Some(s),
            _ => None,
        }
    }

    pub fn sensitivity(&self) -> Option<&Vec<Vec<(f32, f32)>>> {
        match &self.detail {
            Some(StageDetail::Sensitivity(s)) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PruningReport {
    /// Fraction of exactly-zero weights per layer (biases are not pruned).
    pub per_layer_sparsity: Vec<f32>,
    /// Weights per layer (the sizes the sparsities are fractions of).
    pub per_layer_weights: Vec<usize>,
    /// Over all weight matrices.
    pub weight_sparsity: f32,
    pub weights_left: usize,
    /// Multiply-adds x2 per image that touch a nonzero weight (what a sparse kernel would do).
    pub flops_per_sample_remaining: usize,
    /// Bytes actually stored for the whole model (weights as encoded, biases as dense f32):
    /// dense f32, bitmask + kept values, and relative 5-bit indices + values (compress::encoding).
    pub bytes_dense: usize,
    pub bytes_bitmask: usize,
    pub bytes_relative: usize,
    pub rounds: Vec<PruneRound>,
    /// Hidden-layer widths after pruning (smaller after hard neuron pruning) and the parameter count.
    pub hidden: Vec<usize>,
    pub parameters: usize,
    /// Greedy stages: what the search did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greedy: Option<GreedyReport>,
    /// With `control`: the final masks trained from fresh random weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_accuracy: Option<f32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GreedyReport {
    pub holdout_accuracy_start: f32,
    pub chunks_accepted: usize,
    pub chunks_restored: usize,
    /// Layers whose last chunk was restored (they stopped short of their target).
    pub frozen: Vec<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PruneRound {
    pub round: usize,
    pub target: Vec<f32>,
    pub sparsity: Vec<f32>,
    pub accuracy_before_finetune: f32,
    pub accuracy_after_finetune: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    pub arch: String,
    pub layers: Vec<(usize, usize)>,
    pub parameters: usize,
    pub flops_per_sample: usize,
    /// Dense f32 storage of all parameters.
    pub bytes_f32: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub dataset: String,
    pub train_samples: usize,
    pub test_samples: usize,
    pub seed: u64,
    pub backend: String,
    pub adapter: Option<AdapterSummary>,
    /// The model as it ends the run (narrower after hard neuron/filter/channel pruning).
    pub model: ModelReport,
    pub stages: Vec<StageReport>,
    pub wall_s: f64,
}
