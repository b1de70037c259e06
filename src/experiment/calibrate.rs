//! Backend by measurement: a few timed training steps of a recipe's model (its first training's
//! batch and optimizer) on each backend, on random images of the data's shape, and the faster one
//! chosen. What the page does when it starts or the model changes, and `squeeze run --backend auto`.

use super::{model_net, platform::now_s, Backend, ModelState, Trainer};
use crate::data::{Dataset, Splits};
use crate::error::Result;
use crate::nn::{NetParams, Transforms};
use crate::recipe::Recipe;
use serde::Serialize;

/// Training samples per second of one backend, and what it was measured on.
#[derive(Clone, Debug, Serialize)]
pub struct Speed {
    pub samples_per_s: f64,
    /// Timed steps (after one untimed warm-up step).
    pub steps: usize,
}

/// Both backends' speeds, the one chosen and the sentence that says so.
#[derive(Clone, Debug, Serialize)]
pub struct Choice {
    pub cpu: Speed,
    /// None where there is no GPU.
    pub gpu: Option<Speed>,
    /// "cpu" or "gpu".
    pub chosen: &'static str,
    pub summary: String,
}

/// Times training steps of `recipe`'s model on `backend` for about `budget_s` seconds (at least
/// one step after a warm-up one, at most `max_steps`), on `rows`×`cols` random images.
pub async fn training_speed(recipe: &Recipe, (rows, cols): (usize, usize), backend: &Backend, budget_s: f64, max_steps: usize) -> Result<Speed> {
    let net = model_net(recipe, rows, cols)?;
    let cfg = &recipe.train;
    let batch = cfg.batch;
    // A training this backend cannot hold (buffers, bindings, the CPU's memory budget) is refused
    // before anything is allocated, with the message a run would give.
    super::limits::check_training(backend, "train.batch", &net, batch)?;
    // Random pixels and labels, enough for the warm-up and the timed steps without repeating.
    let n = batch * (max_steps + 1);
    let mut rng = crate::rng::Rng::new(recipe.seed, 0xca1b);
    let images: Vec<u8> = (0..n * rows * cols).map(|_| (rng.next_u32() >> 24) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.below(net.classes as u32) as u8).collect();
    let train = Dataset { images, labels, n, rows, cols };
    let test = train.take(batch.min(n));
    let data = Splits::new("calibration", train, test)?;
    let norm = data.train.normalization();
    let model = ModelState { params: NetParams::init(&net, recipe.seed), net, masks: None, transforms: Transforms::default() };
    let mut trainer = Trainer::build(backend, &model, (&data, None), norm, cfg);
    let order: Vec<u32> = (0..n as u32).collect();
    trainer.begin_epoch(&order);
    // The warm-up step pays for pipelines, first allocations and (in the browser) tier-up.
    trainer.train_step(0, batch, cfg.lr);
    trainer.take_metrics().await?;
    let t0 = now_s();
    let (mut steps, mut round) = (0, 1);
    // Rounds of doubling length, each ended by a read-back (on the GPU, the only way to know the
    // work is done), until the budget is spent.
    while steps < max_steps {
        for _ in 0..round.min(max_steps - steps) {
            steps += 1;
            trainer.train_step(steps * batch, batch, cfg.lr);
        }
        trainer.take_metrics().await?;
        if now_s() - t0 >= budget_s {
            break;
        }
        round *= 2;
    }
    let seconds = (now_s() - t0).max(1e-9);
    Ok(Speed { samples_per_s: (steps * batch) as f64 / seconds, steps })
}

/// Measures the CPU backend and, when there is one, the GPU (each for about `budget_s`) and picks
/// the faster. A GPU that fails to train here is reported and not chosen.
/// A backend whose limits refuse the training is not timed: the GPU is then not chosen; the CPU
/// refusing is an error (the CPU's budget is the looser one, so the run could not go anywhere).
pub async fn choose(recipe: &Recipe, shape: (usize, usize), gpu: Option<&Backend>, budget_s: f64) -> Result<Choice> {
    const MAX_STEPS: usize = 64;
    let cpu = training_speed(recipe, shape, &Backend::Cpu, budget_s, MAX_STEPS).await?;
    let (gpu_speed, adapter) = match gpu {
        Some(b @ Backend::Gpu(ctx)) => {
            // The trial's buffers are freed as soon as it ends (as a run's are).
            ctx.begin_run();
            let speed = training_speed(recipe, shape, b, budget_s, MAX_STEPS).await;
            ctx.end_run();
            (speed.ok(), Some(&ctx.adapter))
        }
        _ => (None, None),
    };
    let gpu_wins = gpu_speed.as_ref().is_some_and(|g| g.samples_per_s > cpu.samples_per_s);
    let per_s = |s: &Speed| format!("{}/s", thousands(s.samples_per_s));
    let gpu_text = match (&gpu_speed, adapter) {
        (Some(g), Some(a)) => format!("WebGPU {} ({}{})", per_s(g), a.name, if a.software { ", a software adapter" } else { "" }),
        (None, Some(a)) => format!("WebGPU cannot train this model here ({})", a.name),
        _ => "no WebGPU".to_string(),
    };
    let summary = format!("CPU {}, {}: using the {}", per_s(&cpu), gpu_text, if gpu_wins { "GPU" } else { "CPU" });
    Ok(Choice { cpu, gpu: gpu_speed, chosen: if gpu_wins { "gpu" } else { "cpu" }, summary })
}

/// 12345.6 -> "12,346".
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
