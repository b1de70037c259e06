//! The quantize stage's integer check: the model compiled to int8 (compress::int8) where its
//! quantizers allow, its test accuracy computed in integers on the run's backend, and inference
//! timed against the same net in f32 at one batch size on the same backend. On the GPU every
//! product the adapter has (dot4I8Packed, manual unpack) is timed and the fastest kept.

use super::{time_us, ModelState, Run, TIMED_IMAGES};
use crate::compress::int8::{compile, IntModel};
use crate::error::Result;
use crate::gpu::int8::{GpuIntModel, Int8Variant};
use crate::nn::Transforms;
use crate::recipe::TrainConfig;
use super::Backend;
use serde::Serialize;

/// Rows per inference batch of the comparison.
pub const BATCH: usize = 256;

#[derive(Clone, Debug, Serialize)]
pub struct IntegerReport {
    /// Test accuracy computed in integers (int8 weights and activations, i32 sums).
    pub accuracy: f32,
    /// Test images on which the integer model's top-1 class is the fake-quantized model's.
    pub agreement: f32,
    pub batch: usize,
    /// Microseconds per test image at `batch`, over the first `TIMED_IMAGES` test images (median
    /// of three timed passes after a warm-up): the same net in f32, and in integers with the
    /// product kept.
    pub f32_us: f64,
    pub int8_us: f64,
    /// "cpu", or the GPU product kept: "dot4" (dot4I8Packed) or "manual".
    pub kernel: String,
    /// Every product timed: (kernel, µs per image).
    pub kernels: Vec<(String, f64)>,
    /// Bytes of the integer model's parameters (int8 weights, i32 biases, requantization).
    pub bytes: usize,
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b })
}

/// The integer model of the run's current model, or why there is none.
pub fn integer_model(run: &Run<'_>) -> std::result::Result<IntModel, String> {
    let m = &run.model;
    compile(&m.net, &m.effective_params(), &m.transforms.weights, &m.transforms.activations, run.norm).map_err(|e| e.to_string().trim_start_matches("invalid input: ").to_string())
}

/// The current (fake-quantized) model's top-1 class of every test image, through the logits tap.
async fn predictions(run: &Run<'_>) -> Result<Vec<usize>> {
    let net = &run.model.net;
    let test = &run.data.test;
    let batch = 250.min(crate::gpu::net::eval_rows_limit(net));
    let taps = run.trainer(&run.recipe.train).tap(test, batch, test.n.div_ceil(batch), &[net.last()]).await?;
    Ok(taps[0].iter().flat_map(|b| b.chunks_exact(net.classes).map(argmax).collect::<Vec<_>>()).collect())
}

/// Accuracy, agreement with the fake-quantized model and the f32-versus-int8 timing of `model`.
pub async fn measure(run: &Run<'_>, model: &IntModel) -> Result<IntegerReport> {
    let test = &run.data.test;
    let cfg = TrainConfig { batch: BATCH, ..run.recipe.train.clone() };
    // The fake-quantized model's predictions, and the f32 net's speed (no quantizers).
    let predictions = predictions(run).await?;
    let float = ModelState { transforms: Transforms::default(), masks: None, ..run.model.clone() };
    let mut t = run.trainer_with(&float, &run.data, run.norm, &cfg);
    t.set_eval_rows(BATCH);
    // Timed on the first TIMED_IMAGES test images (as every stage's inference time); the
    // integer model's accuracy is one pass over the whole split.
    let timed = test.n.min(TIMED_IMAGES);
    let f32_us = time_us(timed, async || t.evaluate_first(timed).await).await?;
    drop(t);

    let mut batch = BATCH;
    let (kernels, totals) = match run.backend {
        Backend::Cpu => {
            let cpu = crate::reference::int8::CpuIntModel::new(model);
            let first = |n: usize| test.images[..n * test.pixels()].chunks(BATCH * test.pixels()).flat_map(|c| cpu.forward(c, c.len() / test.pixels())).collect::<Vec<i32>>();
            let us = time_us(timed, async || Ok(first(timed))).await?;
            (vec![("cpu".to_string(), us)], first(test.n))
        }
        Backend::Gpu(ctx) => {
            let g = GpuIntModel::new(ctx, model, test, BATCH).await?;
            batch = g.batch;
            let mut times = vec![];
            let mut best: Option<(f64, Int8Variant)> = None;
            for v in g.variants() {
                let us = time_us(timed, async || g.totals(v, timed).await).await?;
                times.push((format!("{v:?}").to_lowercase(), us));
                if best.is_none_or(|(b, _)| us < b) {
                    best = Some((us, v));
                }
            }
            times.sort_by(|a, b| a.1.total_cmp(&b.1));
            (times, g.totals(best.expect("at least the manual product").1, test.n).await?)
        }
    };
    let logits = model.logits(&totals);
    let classes = model.classes;
    let mut correct = 0;
    let mut agree = 0;
    for (i, row) in logits.chunks_exact(classes).enumerate() {
        let top = argmax(row);
        correct += (top == test.labels[i] as usize) as usize;
        agree += (top == predictions[i]) as usize;
    }
    Ok(IntegerReport {
        accuracy: correct as f32 / test.n.max(1) as f32,
        agreement: agree as f32 / test.n.max(1) as f32,
        batch,
        f32_us,
        int8_us: kernels[0].1,
        kernel: kernels[0].0.clone(),
        kernels,
        bytes: model.bytes(),
    })
}
