//! The sweep stage: post-training weight quantization of the current model at every width of
//! every scheme (accuracy and bytes stored), then each weight matrix alone at each width with the
//! rest float (per-layer bit sensitivity), and a mixed-precision proposal: per layer the fewest
//! bits whose own drop stays within an even share of the budget, widened where the combination
//! still costs more than the budget. Batch norm is folded first (as the quantize stage does);
//! activations stay float. Changes nothing.

use super::quantize::tensor_sizes;
use super::trainer::{means, Trainer};
use super::{ModelState, Run, StageDetail, StageReport};
use crate::compress::quant::{Scheme, SchemeKind};
use crate::error::Result;
use crate::nn::Transforms;
use crate::recipe::SweepConfig;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// Test accuracy of the float model (batch norm folded).
    pub float_accuracy: f32,
    /// Every weight matrix at one width of one scheme.
    pub points: Vec<SweepPoint>,
    /// The first scheme, per weight matrix: (bits, test accuracy) with that matrix alone quantized.
    pub layers: Vec<Vec<(u32, f32)>>,
    /// Per-layer widths for the budget, with the accuracy and bytes they measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<SweepPoint>,
    pub budget: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    pub scheme: SchemeKind,
    /// Bits per weight matrix.
    pub layer_bits: Vec<u32>,
    pub accuracy: f32,
    /// What the model file would store: every tensor, quantized weights as their codes (Huffman
    /// where smaller), the rest f32.
    pub bytes: usize,
}

/// The model with the weight matrices quantized at `bits[l]` (None: float).
fn quantized(base: &ModelState, scheme: SchemeKind, per_channel: bool, bits: &[Option<u32>]) -> ModelState {
    let infos = base.net.tensors();
    let mut transforms = Transforms { weights: vec![None; infos.len()], ..Transforms::default() };
    for (&j, b) in base.net.weight_tensors().iter().zip(bits) {
        if let Some(bits) = b {
            transforms.weights[j] = Some(Scheme { kind: scheme, bits: *bits, per_channel }.fit(&base.params.tensors[j], infos[j].cols));
        }
    }
    ModelState { transforms, ..base.clone() }
}

/// Test accuracy (one float trainer, its weights swapped for the quantized values: activations
/// stay float, so that is the quantized model) and bytes stored.
async fn measure(t: &mut Trainer, m: &ModelState) -> Result<(f32, usize)> {
    t.set_params(&m.effective_params());
    let (_, acc) = means(t.evaluate().await?);
    let bytes = (0..m.params.tensors.len()).map(|j| tensor_sizes(m, j)[3]).sum();
    Ok((acc, bytes))
}

pub async fn run(run: &mut Run<'_>, _si: usize, cfg: &SweepConfig) -> Result<StageReport> {
    let (net, params) = run.model.params.fold_batch_norm(&run.model.net);
    let base = ModelState { net, params, masks: None, transforms: Transforms::default() };
    let layers = base.net.weight_tensors().len();
    let mut t = run.trainer_with(&base, &run.data, run.norm, &run.recipe.train);
    let (float_loss, float_accuracy) = means(t.evaluate().await?);
    let inference_us = run.time_inference(&mut t).await?;

    let mut points = vec![];
    for &scheme in &cfg.schemes {
        for b in cfg.bits_of(scheme) {
            let (accuracy, bytes) = measure(&mut t, &quantized(&base, scheme, cfg.per_channel, &vec![Some(b); layers])).await?;
            points.push(SweepPoint { scheme, layer_bits: vec![b; layers], accuracy, bytes });
        }
    }

    let scheme = cfg.schemes[0];
    let widths = cfg.bits_of(scheme);
    let mut scans = vec![];
    let mut proposal = None;
    if cfg.layers {
        for l in 0..layers {
            let mut scan = vec![];
            for &b in &widths {
                let mut bits = vec![None; layers];
                bits[l] = Some(b);
                scan.push((b, measure(&mut t, &quantized(&base, scheme, cfg.per_channel, &bits)).await?.0));
            }
            scans.push(scan);
        }
        // Per layer the fewest bits within an even share of the budget (widest if none), then
        // widen the layer that costs most alone until the combination is within the budget.
        let share = cfg.budget / layers as f32;
        let mut pick: Vec<usize> = scans.iter().map(|s| s.iter().rposition(|&(_, a)| float_accuracy - a <= share).unwrap_or(0)).collect();
        loop {
            let bits: Vec<u32> = pick.iter().map(|&i| widths[i]).collect();
            let (accuracy, bytes) = measure(&mut t, &quantized(&base, scheme, cfg.per_channel, &bits.iter().map(|&b| Some(b)).collect::<Vec<_>>())).await?;
            let within = float_accuracy - accuracy <= cfg.budget;
            let worst = (0..layers).filter(|&l| pick[l] > 0).max_by(|&x, &y| (float_accuracy - scans[x][pick[x]].1).total_cmp(&(float_accuracy - scans[y][pick[y]].1)));
            match (within, worst) {
                (false, Some(l)) => pick[l] -= 1,
                _ => {
                    proposal = Some(SweepPoint { scheme, layer_bits: bits, accuracy, bytes });
                    break;
                }
            }
        }
    }
    let mut report = StageReport::evaluated("sweep", (float_loss, float_accuracy), inference_us);
    report.detail = Some(StageDetail::Sweep(SweepReport { float_accuracy, points, layers: scans, proposal, budget: cfg.budget }));
    Ok(report)
}
