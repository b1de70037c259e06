//! The quantize stage: batch norm folded into its conv, a quantizer fitted to every weight matrix
//! (scheme and bits from the recipe, per layer for mixed precision), every activation a weight
//! layer reads calibrated on sample batches through the activation taps, all installed as the
//! engine's transforms (nn::Transforms); then either evaluated (PTQ) or trained with fake
//! quantization and straight-through gradients (QAT, optionally learning the step sizes: LSQ;
//! k-means weights instead keep their clusters and fine-tune the shared centroids). Reports per layer the weights' and
//! activations' quantization error and the bytes actually encoded (compress::encoding), and
//! where the quantizers allow, the model run in integers against f32 (experiment::integer).
//! Biases stay f32 unless the recipe rounds them to f16.

use super::integer::IntegerReport;
use super::train::{train_with, NoHook};
use super::trainer::means;
use super::{Masks, ModelState, Run, StageDetail, StageReport};
use crate::compress::encoding::Encoding;
use crate::compress::quant::{calibrate, Calibration, QuantError, QuantFn, Scheme, SchemeKind};
use crate::data::Dataset;
use crate::error::Result;
use crate::nn::{Net, Op, Role, Sharing, Transforms};
use crate::recipe::{BiasQuant, CentroidUpdate, QuantMode, QuantizeConfig};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct QuantReport {
    /// "ptq" or "qat".
    pub mode: QuantMode,
    /// QAT learned the quantizers' step sizes (LSQ); the stored steps are the learned ones.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub learned_steps: bool,
    /// Test accuracy of the float model this stage started from (batch norm folded).
    pub float_accuracy: f32,
    /// Test accuracy right after quantizing, before any QAT training (= the stage's for PTQ).
    pub quantized_accuracy: f32,
    /// One entry per weight matrix, first layer first.
    pub layers: Vec<QuantLayer>,
    /// Bytes of the whole model: every tensor dense f32; and weights as packed codes (with their
    /// scales, zero points or levels), everything else f32. Lengths of real encodings.
    pub bytes_f32: usize,
    /// The same with unquantized weight matrices as the smaller of f32 and relative indices.
    pub bytes_pruned: usize,
    /// Quantized tensors as packed codes (dense or relative-indexed, whichever is smaller).
    pub bytes_quantized: usize,
    /// And with Huffman coding where it is smaller: what the model file stores (its header aside).
    pub bytes_huffman: usize,
    /// What the activation ranges were calibrated on, if activations are quantized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
    /// The model run in integers (accuracy, int8 versus f32 time), where its quantizers allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integer: Option<IntegerReport>,
    /// Why the model has no integer form, otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integer_note: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct QuantLayer {
    pub scheme: SchemeKind,
    pub bits: u32,
    /// One scale per output channel (k-means and power-of-two levels are per tensor).
    pub per_channel: bool,
    /// Distinct codes the quantizer can produce.
    pub levels: usize,
    /// The weights' quantization error: final masters against what is stored (shared k-means
    /// weights: the float weights the stage started from against what is stored).
    pub weights: QuantError,
    /// The error of the activation this layer reads (the image for the first layer: none), on
    /// the calibration samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<QuantError>,
    /// Sizes of the matrix, as in `QuantReport`: dense f32, pruned (f32 or relative indices),
    /// packed codes, Huffman-coded where smaller.
    pub bytes_f32: usize,
    pub bytes_pruned: usize,
    pub bytes: usize,
    pub bytes_huffman: usize,
    /// The values the first channel's codes stand for (at most 256; none for f16), to draw
    /// over the weight histogram.
    pub level_values: Vec<f32>,
}

/// Folds every batch norm that follows a conv or dense layer into it (inference gives the same
/// outputs); the quantized layer is the folded one. Hard masks keep their zeros (a zero column
/// entry stays zero when scaled).
fn fold(run: &mut Run<'_>) {
    let before = run.model.net.nodes.len();
    let (net, params) = run.model.params.fold_batch_norm(&run.model.net);
    if net.nodes.len() == before {
        return;
    }
    run.init = run.init.fold_batch_norm(&run.model.net).1;
    run.early = run.early.as_ref().map(|e| e.fold_batch_norm(&run.model.net).1);
    let masks = run.model.masks.as_ref().map(|m| {
        let infos = net.tensors();
        let tensors = params.tensors.iter().zip(&infos).map(|(t, i)| (i.role == Role::Weight).then(|| t.iter().map(|&v| if v == 0.0 { 0.0 } else { 1.0 }).collect())).collect();
        Masks { tensors, hard: m.hard }
    });
    run.model = ModelState { net, params, masks, transforms: Transforms::default() };
}

/// Nodes whose outputs a weight layer reads (node 0, the 8-bit image, excluded).
pub fn quantized_activations(net: &Net) -> Vec<usize> {
    (1..net.nodes.len()).filter(|&n| net.consumers(n).iter().any(|&c| matches!(net.nodes[c].op, Op::Dense { .. } | Op::Conv { .. }))).collect()
}

/// The samples activation ranges are calibrated on: the held-out split if there is one, else the
/// first `samples` training samples.
fn calibration_data(run: &Run<'_>, samples: usize) -> (Dataset, String) {
    match &run.holdout {
        Some(h) => (h.take(samples), format!("{} held-out training samples", samples.min(h.n))),
        None => (run.data.train.take(samples), format!("the first {} training samples", samples.min(run.data.train.n))),
    }
}

pub async fn run(run: &mut Run<'_>, si: usize, cfg: &QuantizeConfig) -> Result<StageReport> {
    fold(run);
    run.model.transforms = Transforms::default();
    let mut float = run.trainer(&run.recipe.train);
    let (_, float_accuracy) = means(float.evaluate().await?);
    drop(float);

    let net = run.model.net.clone();
    let infos = net.tensors();
    let wt = net.weight_tensors();
    let mut transforms = Transforms { weights: vec![None; infos.len()], activations: vec![None; net.nodes.len()], shared: vec![None; infos.len()], learned: cfg.lsq };
    // k-means with QAT fine-tunes the centroids (Deep Compression): each weight is tied to its
    // cluster's centroid by a post-update constraint instead of a fake-quantizing transform.
    let share = cfg.weights.scheme == SchemeKind::Kmeans && cfg.mode == QuantMode::Qat;
    let start = share.then(|| run.model.params.clone());
    for (l, &j) in wt.iter().enumerate() {
        let scheme = Scheme { kind: cfg.weights.scheme, bits: cfg.weights.bits_for(l), per_channel: cfg.weights.per_channel };
        match scheme.fit(&run.model.params.tensors[j], infos[j].cols) {
            QuantFn::Levels { levels } if share => {
                let s = Sharing::new(&levels, &run.model.params.tensors[j], cfg.weights.centroids == CentroidUpdate::Mean);
                run.model.params.tensors[j] = s.values(infos[j].len());
                transforms.shared[j] = Some(s);
            }
            q => transforms.weights[j] = Some(q),
        }
    }

    if cfg.biases == BiasQuant::F16 {
        for (j, info) in infos.iter().enumerate() {
            if info.role == Role::Bias && info.trainable {
                transforms.weights[j] = Some(QuantFn::F16);
            }
        }
    }

    // Activation ranges from the taps, with the quantized weights in force.
    let mut inputs: Vec<Option<QuantError>> = vec![None; wt.len()];
    let mut calibration = None;
    if let Some(a) = &cfg.activations {
        let nodes = quantized_activations(&net);
        let (data, what) = calibration_data(run, a.samples);
        run.model.transforms = Transforms { weights: transforms.weights.clone(), ..Transforms::default() };
        // The same batches on both backends (per-batch calibration sees the same batches), small
        // enough for the GPU's inference buffers.
        let batch = 250.min(crate::gpu::net::eval_rows_limit(&net));
        let taps = run.trainer(&run.recipe.train).tap(&data, batch, data.n.div_ceil(batch), &nodes).await?;
        let scheme = Scheme { kind: a.scheme, bits: a.bits, per_channel: false };
        for (&n, batches) in nodes.iter().zip(&taps) {
            let q = match (a.calibration, scheme.fit_ranges(&[calibrate(a.calibration, batches, &scheme)])) {
                // Dynamic: each batch is quantized over its own range at inference.
                (Calibration::Dynamic, QuantFn::Affine { qmin, qmax, .. }) => QuantFn::Dynamic { qmin, qmax },
                (_, q) => q,
            };
            // The weight layers reading node n report its error (batch by batch, as quantized).
            let all: Vec<f32> = batches.iter().flatten().copied().collect();
            let fake: Vec<f32> = batches.iter().flat_map(|b| q.fake(b, 1)).collect();
            let e = QuantError::of(&all, &fake);
            for (l, &j) in wt.iter().enumerate() {
                if net.nodes[infos[j].node].inputs[0] == n {
                    inputs[l] = Some(e);
                }
            }
            transforms.activations[n] = Some(q);
        }
        calibration = Some(match a.calibration {
            Calibration::Dynamic => format!("dynamic ranges (each batch's own min-max); errors on {what} in batches of {batch}"),
            c => format!("{c:?} ranges from {what}").to_lowercase(),
        });
    }
    run.model.transforms = transforms;

    // One trainer evaluates the quantized model and, for QAT, trains it.
    let mut t = run.trainer(cfg.finetune.as_ref().unwrap_or(&run.recipe.train));
    let (_, quantized_accuracy) = means(t.evaluate().await?);
    let mut report = match (cfg.mode, &cfg.finetune) {
        (QuantMode::Qat, Some(ft)) => train_with(run, t, si, ("quantize", false), ft, None::<&mut NoHook>).await?,
        _ => run.evaluated("quantize", &mut t).await?,
    };
    // Fine-tuned centroids become the levels the tensor is stored with.
    for (j, s) in std::mem::take(&mut run.model.transforms.shared).into_iter().enumerate() {
        if let Some(s) = s {
            run.model.transforms.weights[j] = Some(QuantFn::Levels { levels: s.levels_in(&run.model.params.tensors[j]) });
        }
    }
    let sizes: Vec<[usize; 4]> = (0..infos.len()).map(|j| tensor_sizes(&run.model, j)).collect();
    let layers = wt.iter().enumerate().map(|(l, &j)| layer_report(&run.model, j, inputs[l], cfg.weights.scheme, start.as_ref().map(|p| &p.tensors[j][..]), sizes[j])).collect();
    let total = |k: usize| sizes.iter().map(|s| s[k]).sum();
    let compiled = match &cfg.activations {
        None => Err("activations are float: integer inference needs them quantized too".to_string()),
        Some(a) if a.calibration == Calibration::Dynamic => Err("activation ranges are dynamic (each batch its own): integer inference needs static scales, calibrate them".to_string()),
        Some(_) => super::integer::integer_model(run),
    };
    let (integer, integer_note) = match compiled {
        Ok(m) => (Some(super::integer::measure(run, &m).await?), None),
        Err(why) => (None, Some(why)),
    };
    report.detail = Some(StageDetail::Quantization(QuantReport {
        mode: cfg.mode,
        learned_steps: cfg.lsq,
        float_accuracy,
        quantized_accuracy,
        layers,
        bytes_f32: total(0),
        bytes_pruned: total(1),
        bytes_quantized: total(2),
        bytes_huffman: total(3),
        calibration,
        integer,
        integer_note,
    }));
    Ok(report)
}

fn layer_report(model: &ModelState, j: usize, input: Option<QuantError>, scheme: SchemeKind, float: Option<&[f32]>, sizes: [usize; 4]) -> QuantLayer {
    let info = model.net.tensors()[j];
    let w = &model.params.tensors[j];
    let q = model.transforms.weight(j).expect("every weight matrix is quantized");
    let mut levels = q.level_values(0);
    levels.truncate(256);
    let [bytes_f32, bytes_pruned, bytes, bytes_huffman] = sizes;
    QuantLayer {
        scheme,
        bits: q.bits(),
        per_channel: matches!(q, QuantFn::Affine { channels, .. } if channels.len() > 1),
        levels: q.levels(),
        weights: QuantError::of(float.unwrap_or(w), &q.fake(w, info.cols)),
        input,
        bytes_f32,
        bytes_pruned,
        bytes,
        bytes_huffman,
        level_values: levels,
    }
}

/// Bytes of tensor `j`: dense f32; pruned (as the model file would store it unquantized); its
/// packed codes if quantized (dense or relative-indexed); and as the model file stores it
/// (Huffman-coded where that is smaller).
pub fn tensor_sizes(model: &ModelState, j: usize) -> [usize; 4] {
    let info = model.net.tensors()[j];
    let w = &model.params.tensors[j];
    let weight = info.role == Role::Weight;
    let pruned = Encoding::stored(w, None, info.cols, weight).1.len();
    match model.transforms.weight(j) {
        Some(q) => [4 * w.len(), pruned, Encoding::smallest(w, Some(q), info.cols, &Encoding::quantized(false)).1.len(), Encoding::stored(w, Some(q), info.cols, weight).1.len()],
        None => [4 * w.len(), pruned, pruned, pruned],
    }
}
