//! Runs a `Recipe` stage by stage on a backend (GPU or CPU reference) and reports progress events
//! and a final `Report`. The CLI and the wasm API both call `run`; nothing here knows about the
//! DOM or the terminal.

use crate::data::Splits;
use crate::error::{Error, Result};
use crate::gpu::{AdapterSummary, GpuContext, GpuTrainer};
use crate::inspect::StageModel;
use crate::nn::{surgery, Net, NetParams, Shape};
use crate::compress::prune::{self, Criterion};
use crate::compress::sparse;
use crate::recipe::{Granularity, GreedyConfig, MaskMode, PruneConfig, PruneScope, Recipe, Rewind, SensitivityConfig, Sparsity, Stage, TrainConfig};
use crate::reference::net::CpuTrainer;
use serde::Serialize;

/// Where the math runs.
#[derive(Clone)]
pub enum Backend {
    Gpu(GpuContext),
    /// The CPU reference (the fallback when there is no WebGPU).
    Cpu,
}

impl Backend {
    pub fn describe(&self) -> String {
        match self {
            Backend::Gpu(ctx) => format!("gpu: {} ({}, {}; conv {:?})", ctx.adapter.name, ctx.adapter.backend, ctx.adapter.device_type, ctx.conv),
            Backend::Cpu => "cpu reference".to_string(),
        }
    }
}

/// How often to stop and report (each report reads a few bytes back from the GPU).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub progress_every: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { progress_every: 100 }
    }
}

/// What a run's listener answers to each event: go on, wait (paused; asked again every 100 ms
/// with `Event::Paused`), or stop with `Error::Cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Pause,
    Cancel,
}

/// Streamed while a recipe runs. Serialized with a `kind` tag for the page.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Progress {
        stage: usize,
        epoch: usize,
        epochs: usize,
        step: usize,
        steps: usize,
        /// Mean training loss / accuracy since the previous progress event.
        train_loss: f32,
        train_accuracy: f32,
        elapsed_s: f64,
    },
    Epoch {
        stage: usize,
        #[serde(flatten)]
        report: EpochReport,
    },
    /// A stage finished (its full report: accuracy, pruning sizes and sparsities, sensitivity).
    Stage {
        stage: usize,
        report: StageReport,
    },
    /// Sent every 100 ms while the listener keeps answering `Control::Pause`.
    Paused,
}

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
    /// Measured inference time per test image at the end of the stage: one timed pass over the
    /// whole test split (batches of 1000 on the GPU, the GPU synchronised at the end).
    pub inference_us_per_image: f64,
    /// Present for pruning stages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pruning: Option<PruningReport>,
    /// Present for sensitivity stages: per weight matrix, (sparsity, test accuracy) points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Vec<Vec<(f32, f32)>>>,
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
    /// dense f32, bitmask + kept values, and relative 5-bit indices + values (compress::sparse).
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

/// Waits `ms` milliseconds without blocking the browser's event loop (natively: sleeps).
async fn sleep_ms(ms: u32) {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
            match set_timeout {
                Some(f) => drop(f.call2(&wasm_bindgen::JsValue::NULL, &resolve, &(ms as f64).into())),
                None => drop(resolve.call0(&wasm_bindgen::JsValue::NULL)),
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(std::time::Duration::from_millis(ms as u64));
}

/// Seconds since an arbitrary origin; works natively and in the browser (std's Instant does not on wasm).
pub fn now_s() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now() / 1000.0
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
    }
}

enum Trainer {
    Gpu(Box<GpuTrainer>),
    Cpu(Box<CpuTrainer>),
}

impl Trainer {
    fn begin_epoch(&mut self, order: &[u32]) {
        match self {
            Trainer::Gpu(t) => t.begin_epoch(order),
            Trainer::Cpu(t) => t.begin_epoch(order),
        }
    }
    fn train_step(&mut self, offset: usize, valid: usize, lr: f32) {
        match self {
            Trainer::Gpu(t) => t.train_step(offset, valid, lr),
            Trainer::Cpu(t) => t.train_step(offset, valid, lr),
        }
    }
    async fn take_metrics(&mut self) -> Result<[f32; 4]> {
        match self {
            Trainer::Gpu(t) => t.take_metrics().await,
            Trainer::Cpu(t) => Ok(t.take_metrics()),
        }
    }
    async fn evaluate(&mut self) -> Result<[f32; 4]> {
        match self {
            Trainer::Gpu(t) => t.evaluate().await,
            Trainer::Cpu(t) => Ok(t.evaluate()),
        }
    }
    async fn taylor_scores(&mut self, order: &[u32], batch: usize, batches: usize) -> Result<Vec<Vec<f32>>> {
        match self {
            Trainer::Gpu(t) => t.taylor_scores(order, batch, batches).await,
            Trainer::Cpu(t) => Ok(t.taylor_scores(order, batch, batches)),
        }
    }
    fn set_params(&mut self, p: &NetParams) {
        match self {
            Trainer::Gpu(t) => t.set_params(p),
            Trainer::Cpu(t) => t.params = p.clone(),
        }
    }
    fn set_masks(&mut self, masks: &[Option<Vec<f32>>], hard: bool) {
        match self {
            Trainer::Gpu(t) => t.set_masks(masks, hard),
            Trainer::Cpu(t) => t.set_masks(masks, hard),
        }
    }
    async fn params(&self) -> Result<NetParams> {
        match self {
            Trainer::Gpu(t) => t.params().await,
            Trainer::Cpu(t) => Ok(t.params.clone()),
        }
    }
}

/// (mean loss, accuracy) from an accumulator [loss_sum, correct, seen, _].
fn means(acc: [f32; 4]) -> (f32, f32) {
    let n = acc[2].max(1.0);
    (acc[0] / n, acc[1] / n)
}

/// The model a recipe asks for, on images of `rows` x `cols` pixels.
pub fn model_net(recipe: &Recipe, rows: usize, cols: usize) -> Result<Net> {
    recipe.model.build(Shape::new(rows, cols, 1), crate::data::CLASSES)
}

/// The result of a run: the report, the final network and its parameters.
pub struct Outcome {
    pub report: Report,
    pub net: Net,
    pub params: NetParams,
    /// The model after training and after every stage that changes it (not sensitivity scans).
    pub models: Vec<StageModel>,
    /// The input normalisation the models were trained with.
    pub norm: crate::data::Normalization,
}

/// Pruning masks in force: one per tensor (W0, b0, W1, ...; `None` = dense) and whether they are hard.
#[derive(Clone)]
struct Masks {
    tensors: Vec<Option<Vec<f32>>>,
    hard: bool,
}

/// A gradual pruning stage's plan and what it has done so far (see `Runner::prune_gradual`).
struct Gradual {
    cfg: PruneConfig,
    targets: Vec<f32>,
    every: usize,
    rng: crate::rng::Rng,
    rounds: Vec<PruneRound>,
}

/// What the stages of one run share.
struct Runner<'a> {
    recipe: &'a Recipe,
    data: Splits,
    norm: crate::data::Normalization,
    net: Net,
    backend: &'a Backend,
    opts: &'a RunOptions,
    progress: &'a mut dyn FnMut(&Event) -> Control,
    t_start: f64,
    /// Seconds spent paused so far (not counted as training time).
    paused_s: f64,
    epoch_counter: usize,
    params: NetParams,
    /// The initial weights, and those after epoch `rewind_epoch` of the first stage, for rewinding.
    init: NetParams,
    early: Option<NetParams>,
    /// Held-out training samples (limit.holdout), never trained on.
    holdout: Option<crate::data::Dataset>,
    masks: Option<Masks>,
}

impl Runner<'_> {
    fn trainer(&self, cfg: &TrainConfig) -> Trainer {
        let opt = cfg.optimizer_config();
        let mut t = match self.backend {
            Backend::Gpu(ctx) => Trainer::Gpu(Box::new(GpuTrainer::new(ctx, &self.net, &self.params, opt, &self.data, self.norm, cfg.batch))),
            Backend::Cpu => Trainer::Cpu(Box::new(CpuTrainer::new(&self.net, self.params.clone(), opt, self.data.clone(), self.norm, cfg.batch))),
        };
        if let Some(m) = &self.masks {
            t.set_masks(&m.tensors, m.hard);
        }
        t
    }

    /// Microseconds per test image of a whole evaluation pass: the median of three timed passes
    /// after a warm-up one.
    async fn time_inference(&self, trainer: &mut Trainer) -> Result<f64> {
        trainer.evaluate().await?;
        let mut times = Vec::with_capacity(3);
        for _ in 0..3 {
            let t0 = now_s();
            trainer.evaluate().await?;
            times.push((now_s() - t0) * 1e6 / self.data.test.n.max(1) as f64);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[1])
    }

    async fn emit(&mut self, e: &Event) -> Result<()> {
        // In the browser, let the worker's message loop run (pause and cancel arrive there; the
        // CPU backend would otherwise never yield).
        #[cfg(target_arch = "wasm32")]
        sleep_ms(0).await;
        let mut control = (self.progress)(e);
        if control == Control::Pause {
            let t0 = now_s();
            while control == Control::Pause {
                sleep_ms(100).await;
                control = (self.progress)(&Event::Paused);
            }
            self.paused_s += now_s() - t0;
        }
        match control {
            Control::Cancel => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    /// Trains `cfg.epochs` epochs from the current parameters (masks in force), evaluating after each.
    async fn train(&mut self, si: usize, name: &str, cfg: &TrainConfig) -> Result<StageReport> {
        let trainer = self.trainer(cfg);
        self.train_with(trainer, si, name, cfg).await
    }

    async fn train_with(&mut self, trainer: Trainer, si: usize, name: &str, cfg: &TrainConfig) -> Result<StageReport> {
        self.train_run(trainer, si, name, cfg, None).await
    }

    /// Trains `cfg.epochs` epochs; a gradual pruning `plan` re-masks every `plan.every` steps.
    async fn train_run(&mut self, mut trainer: Trainer, si: usize, name: &str, cfg: &TrainConfig, mut plan: Option<&mut Gradual>) -> Result<StageReport> {
        let n = self.data.train.n;
        let steps = n.div_ceil(cfg.batch);
        let total = steps * cfg.epochs;
        let mut epochs = Vec::new();
        let mut stage_train_s = 0.0;
        for epoch in 0..cfg.epochs {
            let order = self.data.train.epoch_order(self.recipe.seed, self.epoch_counter);
            self.epoch_counter += 1;
            trainer.begin_epoch(&order);
            let (t0, paused0) = (now_s(), self.paused_s);
            let mut epoch_acc = [0.0f32; 4];
            for step in 0..steps {
                let (offset, valid) = (step * cfg.batch, cfg.batch.min(n - step * cfg.batch));
                let t = epoch * steps + step;
                if let Some(g) = plan.as_deref_mut() {
                    if t % g.every == 0 && g.rounds.len() < g.cfg.rounds {
                        self.gradual_step(&mut trainer, g).await?;
                    }
                }
                trainer.train_step(offset, valid, cfg.lr_at(t, total));
                if (step + 1) % self.opts.progress_every.max(1) == 0 || step + 1 == steps {
                    let acc = trainer.take_metrics().await?;
                    for k in 0..3 {
                        epoch_acc[k] += acc[k];
                    }
                    let (loss, accuracy) = means(acc);
                    if !loss.is_finite() {
                        return Err(Error::Diverged(format!(
                            "training loss became {loss} in stage `{name}`, epoch {}, step {}: lower the learning rate (now {})",
                            epoch + 1,
                            step + 1,
                            cfg.lr
                        )));
                    }
                    let elapsed_s = now_s() - self.t_start;
                    self.emit(&Event::Progress { stage: si, epoch, epochs: cfg.epochs, step: step + 1, steps, train_loss: loss, train_accuracy: accuracy, elapsed_s }).await?;
                }
            }
            let train_s = now_s() - t0 - (self.paused_s - paused0);
            stage_train_s += train_s;
            let (test_loss, test_accuracy) = means(trainer.evaluate().await?);
            let (train_loss, train_accuracy) = means(epoch_acc);
            let report = EpochReport { epoch: epoch + 1, train_loss, train_accuracy, test_loss, test_accuracy, train_s, samples_per_s: n as f64 / train_s.max(1e-9) };
            self.emit(&Event::Epoch { stage: si, report: report.clone() }).await?;
            epochs.push(report);
            if si == 0 && Some(epoch + 1) == self.recipe.rewind_epoch() {
                self.early = Some(trainer.params().await?);
            }
        }
        let last = epochs.last().expect("epochs >= 1 is validated");
        if let Some(r) = plan.and_then(|g| g.rounds.last_mut()) {
            r.accuracy_after_finetune = last.test_accuracy;
        }
        let inference_us_per_image = self.time_inference(&mut trainer).await?;
        self.params = trainer.params().await?;
        Ok(StageReport {
            name: name.to_string(),
            test_accuracy: last.test_accuracy,
            test_loss: last.test_loss,
            train_s: stage_train_s,
            samples_per_s: (n * cfg.epochs) as f64 / stage_train_s.max(1e-9),
            inference_us_per_image,
            epochs,
            pruning: None,
            sensitivity: None,
        })
    }

    /// Prunes in `cfg.rounds` rounds (each: new masks from the current weights, then fine-tuning);
    /// round r reaches `cfg.schedule.at(s, r, rounds)` of each target s, so the last reaches s.
    async fn prune(&mut self, si: usize, cfg: &PruneConfig) -> Result<StageReport> {
        if let Some(every) = cfg.every {
            return self.prune_gradual(si, cfg, every).await;
        }
        let targets = cfg.targets(cfg.target_count(self.net.layer_dims().len()));
        let original = self.net.hidden();
        let mut rng = crate::rng::Rng::new(self.recipe.seed, 50 + si as u64);
        let mut report: Option<StageReport> = None;
        let mut rounds = Vec::new();
        for round in 1..=cfg.rounds {
            let now: Vec<f32> = targets.iter().map(|&s| cfg.schedule.at(s, round, cfg.rounds)).collect();
            match cfg.granularity {
                Granularity::Weight => {
                    let taylor = match cfg.criterion {
                        Criterion::Taylor => Some(self.taylor(cfg, round).await?),
                        _ => None,
                    };
                    let tensors = self.weight_prune_masks(cfg, &now, taylor, &mut rng);
                    self.masks = Some(Masks { tensors, hard: cfg.mode == MaskMode::Hard });
                }
                Granularity::Neuron | Granularity::Channel => self.prune_units(cfg, round, &now, &original, &mut rng).await?,
            }
            // Rewound weights are masked by the trainer.
            match cfg.rewind {
                Rewind::None => {}
                Rewind::Init => self.params = self.init.clone(),
                Rewind::Epoch(_) => self.params = self.early.clone().expect("the snapshot is taken in stage 0 (validated)"),
            }
            // Accuracy straight after pruning, before any fine-tuning (the trainer applies the masks).
            let ft = cfg.finetune.as_ref().unwrap_or(&self.recipe.train);
            let mut t = self.trainer(ft);
            let (loss_before, before) = means(t.evaluate().await?);
            self.params = t.params().await?;
            let per_layer: Vec<f32> = self.weights().iter().map(|w| zero_fraction(w)).collect();
            let mut r = match &cfg.finetune {
                Some(ft) => self.train_with(t, si, "prune", ft).await?,
                None => {
                    let inference_us_per_image = self.time_inference(&mut t).await?;
                    StageReport {
                        name: "prune".into(),
                        epochs: vec![],
                        test_accuracy: before,
                        test_loss: loss_before,
                        train_s: 0.0,
                        samples_per_s: 0.0,
                        inference_us_per_image,
                        pruning: None,
                        sensitivity: None,
                    }
                }
            };
            rounds.push(PruneRound { round, target: now.clone(), sparsity: per_layer, accuracy_before_finetune: before, accuracy_after_finetune: r.test_accuracy });
            r.pruning = Some(self.pruning_report(rounds.clone(), None));
            if let Some(prev) = report.take() {
                let mut all = prev.epochs;
                all.extend(r.epochs.drain(..));
                r.epochs = all;
                r.train_s += prev.train_s;
            }
            report = Some(r);
        }
        let mut report = report.expect("rounds >= 1 is validated");
        if cfg.control {
            // The same final masks on fresh random weights (a seed the run never used).
            let ticket = std::mem::replace(&mut self.params, NetParams::init(&self.net, self.recipe.seed ^ 0x5eed_c0de));
            let ft = cfg.finetune.as_ref().expect("control needs finetune (validated)");
            let control = self.train(si, "prune control", ft).await?;
            self.params = ticket;
            if let Some(p) = report.pruning.as_mut() {
                p.control_accuracy = Some(control.test_accuracy);
            }
        }
        Ok(report)
    }
}

impl Runner<'_> {
    /// Greedy prune-evaluate-restore on the held-out split (see recipe::Stage::Greedy).
    async fn greedy(&mut self, si: usize, cfg: &GreedyConfig) -> Result<StageReport> {
        let holdout = self.holdout.clone().expect("validated: limit.holdout is set");
        let wt = self.net.weight_tensors();
        let layers = wt.len();
        let targets = match &cfg.sparsity {
            Sparsity::All(s) => vec![*s; layers],
            Sparsity::PerLayer(v) => v.clone(),
        };
        // A trainer whose evaluation split is the held-out data.
        let judge_data = Splits { name: "holdout".into(), train: holdout.clone(), test: holdout };
        let opt = self.recipe.train.optimizer_config();
        let mut judge = match self.backend {
            Backend::Gpu(ctx) => Trainer::Gpu(Box::new(GpuTrainer::new(ctx, &self.net, &self.params, opt, &judge_data, self.norm, 64))),
            Backend::Cpu => Trainer::Cpu(Box::new(CpuTrainer::new(&self.net, self.params.clone(), opt, judge_data, self.norm, 64))),
        };
        let (_, start) = means(judge.evaluate().await?);
        let mut rng = crate::rng::Rng::new(self.recipe.seed, 90 + si as u64);
        let orders: Vec<Vec<usize>> = self
            .weights()
            .iter()
            .map(|w| {
                let s = prune::scores(cfg.criterion, w, None, &mut rng);
                let mut idx: Vec<usize> = (0..s.len()).collect();
                idx.sort_by(|&a, &b| s[a].total_cmp(&s[b]).then(a.cmp(&b)));
                idx
            })
            .collect();
        let mut pruned = vec![0usize; layers];
        let mut frozen = vec![false; layers];
        let (mut accepted, mut restored) = (0usize, 0usize);
        let mut current = self.params.clone();
        loop {
            let mut progressed = false;
            for l in 0..layers {
                let n = current.tensors[wt[l]].len();
                let goal = prune::pruned_count(n, targets[l]);
                if frozen[l] || pruned[l] >= goal {
                    continue;
                }
                let step = ((n as f32 * cfg.chunk).ceil() as usize).max(1).min(goal - pruned[l]);
                let mut trial = current.clone();
                let w = &mut trial.tensors[wt[l]];
                for &i in &orders[l][pruned[l]..pruned[l] + step] {
                    w[i] = 0.0;
                }
                judge.set_params(&trial);
                let (_, acc) = means(judge.evaluate().await?);
                if acc >= start - cfg.tolerance {
                    current = trial;
                    pruned[l] += step;
                    accepted += 1;
                    progressed = true;
                } else {
                    // Restore: the trial is dropped, `current` still holds the chunk's weights.
                    frozen[l] = true;
                    restored += 1;
                }
            }
            if !progressed {
                break;
            }
        }
        self.params = current;
        let nonzero: Vec<Vec<f32>> = self.weights().iter().map(|w| w.iter().map(|&v| if v == 0.0 { 0.0 } else { 1.0 }).collect()).collect();
        let tensors = self.weight_masks(nonzero);
        self.masks = Some(Masks { tensors, hard: true });
        let mut r = match &cfg.finetune {
            Some(ft) => self.train(si, "greedy", ft).await?,
            None => {
                let mut t = self.trainer(&self.recipe.train);
                let (loss, acc) = means(t.evaluate().await?);
                let inference_us_per_image = self.time_inference(&mut t).await?;
                StageReport { name: "greedy".into(), epochs: vec![], test_accuracy: acc, test_loss: loss, train_s: 0.0, samples_per_s: 0.0, inference_us_per_image, pruning: None, sensitivity: None }
            }
        };
        r.pruning = Some(self.pruning_report(vec![], Some(GreedyReport { holdout_accuracy_start: start, chunks_accepted: accepted, chunks_restored: restored, frozen })));
        Ok(r)
    }

    /// Each weight matrix alone pruned to each sparsity (scores from the current weights), test
    /// accuracy without fine-tuning; the weights are restored after every point.
    async fn sensitivity(&mut self, _si: usize, cfg: &SensitivityConfig) -> Result<StageReport> {
        let mut trainer = self.trainer(&self.recipe.train);
        let base = trainer.params().await?;
        let (base_loss, base_acc) = means(trainer.evaluate().await?);
        let mut rng = crate::rng::Rng::new(self.recipe.seed, 70);
        let mut curves = Vec::new();
        for &j in &self.net.weight_tensors() {
            let scores = prune::scores(cfg.criterion, &base.tensors[j], None, &mut rng);
            let mut points = Vec::new();
            for &s in &cfg.sparsities {
                let mask = prune::mask_by_sparsity(&scores, s);
                let mut p = base.clone();
                crate::reference::ops::mask_apply_reference(&mut p.tensors[j], &mask);
                trainer.set_params(&p);
                let (_, acc) = means(trainer.evaluate().await?);
                points.push((s, acc));
            }
            curves.push(points);
        }
        trainer.set_params(&base);
        let inference_us_per_image = self.time_inference(&mut trainer).await?;
        Ok(StageReport {
            name: "sensitivity".into(),
            epochs: vec![],
            test_accuracy: base_acc,
            test_loss: base_loss,
            train_s: 0.0,
            samples_per_s: 0.0,
            inference_us_per_image,
            pruning: None,
            sensitivity: Some(curves),
        })
    }

    /// Removes (hard) or zeroes (soft) the lowest-scoring units of each hidden layer: neurons and
    /// conv filters scored by their own weights (a column of W), or channels scored by the weights
    /// that read them (rows of every reader; channel pruning). Layers tied by a residual add are
    /// one group (mean score, the first layer's target). `now` are fractions of the stage's
    /// starting widths `original`; after a hard round the layers are narrower, so each is
    /// converted to a fraction of the current width.
    async fn prune_units(&mut self, cfg: &PruneConfig, round: usize, now: &[f32], original: &[usize], rng: &mut crate::rng::Rng) -> Result<()> {
        let infos = self.net.tensors();
        let wt = self.net.weight_tensors();
        let nodes: Vec<usize> = wt.iter().map(|&j| infos[j].node).collect();
        let current = self.net.hidden();
        let hidden = current.len();
        let now: Vec<f32> = (0..now.len())
            .map(|l| {
                let width = if cfg.scope == PruneScope::Global { original.iter().sum::<usize>() } else { original[l] };
                let cur = if cfg.scope == PruneScope::Global { current.iter().sum::<usize>() } else { current[l] };
                let keep = (width as f64 * (1.0 - now[l] as f64)).round();
                (1.0 - keep / cur as f64).max(0.0) as f32
            })
            .collect();
        let taylor = match cfg.criterion {
            Criterion::Taylor => Some(self.taylor(cfg, round).await?),
            _ => None,
        };
        let score = |j: usize, units: prune::Units, rng: &mut crate::rng::Rng| {
            // Taylor scores come one per weight matrix, in weight_tensors() order.
            let t = taylor.as_ref().map(|t| &t[wt.iter().position(|&k| k == j).expect("a weight matrix")][..]);
            prune::unit_scores(cfg.criterion, &self.params.tensors[j], t, infos[j].rows, infos[j].cols, units, rng)
        };
        let mut groups = Vec::with_capacity(hidden);
        for &node in &nodes[..hidden] {
            groups.push(surgery::channel_group(&self.net, node)?);
        }
        let mut scores: Vec<Vec<f32>> = Vec::with_capacity(hidden);
        for l in 0..hidden {
            scores.push(match cfg.granularity {
                Granularity::Channel => {
                    let mut s = vec![0.0; current[l]];
                    for &r in &groups[l].readers {
                        let j = wt[nodes.iter().position(|&n| n == r).expect("readers are weight layers")];
                        let cin = self.net.nodes[self.net.nodes[r].inputs[0]].shape.c;
                        s.iter_mut().zip(score(j, prune::Units::InputChannels(cin), rng)).for_each(|(a, b)| *a += b);
                    }
                    s
                }
                _ => score(wt[l], prune::Units::Outputs, rng),
            });
        }
        // One decision per channel group, made by its first layer on its members' mean score.
        let leaders: Vec<usize> = groups.iter().enumerate().map(|(l, g)| nodes[..hidden].iter().position(|n| g.producers.contains(n)).unwrap_or(l)).collect();
        let lead: Vec<usize> = (0..hidden).filter(|&l| leaders[l] == l).collect();
        let group_scores: Vec<Vec<f32>> = lead
            .iter()
            .map(|&g| {
                let members: Vec<usize> = (0..hidden).filter(|&l| leaders[l] == g).collect();
                (0..current[g]).map(|u| members.iter().map(|&l| scores[l][u]).sum::<f32>() / members.len() as f32).collect()
            })
            .collect();
        let group_masks: Vec<Vec<f32>> = match cfg.scope {
            PruneScope::Layer => group_scores.iter().zip(&lead).map(|(s, &g)| prune::mask_by_sparsity(s, now[g])).collect(),
            PruneScope::Global => prune::global_masks(&group_scores, now[0]),
        };
        match cfg.mode {
            MaskMode::Hard => {
                if self.masks.is_some() {
                    return Err(Error::recipe("stages", "hard neuron pruning after a weight-pruning stage is not supported yet: put it first, or use \"mode\": \"soft\""));
                }
                for (gi, m) in group_masks.iter().enumerate() {
                    let mut keep: Vec<usize> = (0..m.len()).filter(|&o| m[o] == 1.0).collect();
                    if keep.is_empty() {
                        // Never remove a whole layer: keep its best unit.
                        let s = &group_scores[gi];
                        keep.push((0..s.len()).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap_or(0));
                    }
                    // Node indices survive removal, so every group is addressed by its first layer's node.
                    let node = nodes[lead[gi]];
                    let (net, params) = surgery::remove_channels(&self.net, &self.params, node, &keep)?;
                    self.init = surgery::remove_channels(&self.net, &self.init, node, &keep)?.1;
                    self.early = match &self.early {
                        Some(e) => Some(surgery::remove_channels(&self.net, e, node, &keep)?.1),
                        None => None,
                    };
                    self.params = params;
                    self.net = net;
                }
            }
            MaskMode::Soft => {
                let mut tensors: Vec<Option<Vec<f32>>> = vec![None; infos.len()];
                for (gi, m) in group_masks.iter().enumerate() {
                    let group = &groups[lead[gi]];
                    if cfg.granularity == Granularity::Channel {
                        // The readers' rows of the pruned channels.
                        for &r in &group.readers {
                            let j = infos.iter().position(|t| t.node == r && t.role == crate::nn::Role::Weight).expect("reader has W");
                            let cin = self.net.nodes[self.net.nodes[r].inputs[0]].shape.c;
                            tensors[j] = Some((0..infos[j].len()).map(|i| m[(i / infos[j].cols) % cin]).collect());
                        }
                        continue;
                    }
                    // The producers' columns and biases, and the gamma and beta of every batch
                    // norm in the group (which would otherwise turn a zeroed channel into beta).
                    for (j, info) in infos.iter().enumerate() {
                        let masked = group.nodes.contains(&info.node) && !matches!(info.role, crate::nn::Role::RunningMean | crate::nn::Role::RunningVar);
                        if masked {
                            tensors[j] = Some((0..info.len()).map(|i| m[i % info.cols]).collect());
                        }
                    }
                }
                self.masks = Some(Masks { tensors, hard: false });
            }
        }
        Ok(())
    }

    /// Masks for single weights at sparsities `now` (per layer, or `now[0]` globally), scored by
    /// `cfg.criterion` on the current weights (`taylor`: accumulated |w·g| per weight matrix).
    fn weight_prune_masks(&self, cfg: &PruneConfig, now: &[f32], taylor: Option<Vec<Vec<f32>>>, rng: &mut crate::rng::Rng) -> Vec<Option<Vec<f32>>> {
        let scores: Vec<Vec<f32>> = match taylor {
            Some(t) => t,
            None => self.weights().iter().map(|w| prune::scores(cfg.criterion, w, None, rng)).collect(),
        };
        let weight_masks = match cfg.scope {
            PruneScope::Layer => scores.iter().zip(now).map(|(s, &t)| prune::mask_by_sparsity(s, t)).collect(),
            PruneScope::Global => prune::global_masks(&scores, now[0]),
        };
        self.weight_masks(weight_masks)
    }

    /// Gradual pruning inside one training run (Zhu & Gupta 2017): at training steps 0, Δt, 2Δt, …
    /// (`every` = Δt, `rounds` times) new masks reach the schedule's next sparsity, the last one
    /// the target; the rest of the run trains under the final masks.
    async fn prune_gradual(&mut self, si: usize, cfg: &PruneConfig, every: usize) -> Result<StageReport> {
        let ft = cfg.finetune.as_ref().expect("gradual pruning trains (validated)");
        let steps = self.data.train.n.div_ceil(ft.batch) * ft.epochs;
        if (cfg.rounds - 1) * every >= steps {
            return Err(Error::recipe(
                &format!("stages[{si}].prune.every"),
                format!("{} pruning steps {every} training steps apart need more than {} steps; the fine-tuning run has {steps} ({} epochs of {} batches)", cfg.rounds, (cfg.rounds - 1) * every, ft.epochs, steps / ft.epochs),
            ));
        }
        let targets = cfg.targets(cfg.target_count(self.net.layer_dims().len()));
        let mut plan = Gradual { cfg: cfg.clone(), targets, every, rng: crate::rng::Rng::new(self.recipe.seed, 50 + si as u64), rounds: Vec::new() };
        let trainer = self.trainer(ft);
        let mut report = self.train_run(trainer, si, "prune", ft, Some(&mut plan)).await?;
        report.pruning = Some(self.pruning_report(plan.rounds, None));
        Ok(report)
    }

    /// One pruning step of a gradual plan, on the live trainer: closes the previous step's
    /// accuracy, masks to the next sparsity, measures accuracy right after.
    async fn gradual_step(&mut self, trainer: &mut Trainer, plan: &mut Gradual) -> Result<()> {
        let k = plan.rounds.len() + 1;
        if let Some(prev) = plan.rounds.last_mut() {
            prev.accuracy_after_finetune = means(trainer.evaluate().await?).1;
        }
        self.params = trainer.params().await?;
        let now: Vec<f32> = plan.targets.iter().map(|&s| plan.cfg.schedule.at(s, k, plan.cfg.rounds)).collect();
        let taylor = match plan.cfg.criterion {
            Criterion::Taylor => {
                let order = self.data.train.epoch_order(self.recipe.seed, 10_000 + k);
                Some(trainer.taylor_scores(&order, plan.cfg.finetune.as_ref().map_or(64, |f| f.batch), 50).await?)
            }
            _ => None,
        };
        let tensors = self.weight_prune_masks(&plan.cfg, &now, taylor, &mut plan.rng);
        let hard = plan.cfg.mode == MaskMode::Hard;
        trainer.set_masks(&tensors, hard);
        // The trainer multiplies by the masks; do the same here rather than read the weights back.
        for (t, m) in self.params.tensors.iter_mut().zip(&tensors) {
            if let Some(m) = m {
                crate::reference::ops::mask_apply_reference(t, m);
            }
        }
        self.masks = Some(Masks { tensors, hard });
        let before = means(trainer.evaluate().await?).1;
        let sparsity = self.weights().iter().map(|w| zero_fraction(w)).collect();
        plan.rounds.push(PruneRound { round: k, target: now, sparsity, accuracy_before_finetune: before, accuracy_after_finetune: before });
        Ok(())
    }

    /// Accumulated |w·g| over up to 50 training batches (masks in force, no update).
    async fn taylor(&mut self, cfg: &PruneConfig, round: usize) -> Result<Vec<Vec<f32>>> {
        let ft = cfg.finetune.as_ref().unwrap_or(&self.recipe.train);
        let order = self.data.train.epoch_order(self.recipe.seed, 10_000 + round);
        self.trainer(ft).taylor_scores(&order, ft.batch, 50).await
    }

    /// The current weight matrices, in `Net::weight_tensors()` order.
    fn weights(&self) -> Vec<&[f32]> {
        self.net.weight_tensors().iter().map(|&j| &self.params.tensors[j][..]).collect()
    }

    /// Per-tensor masks from one mask per weight matrix (other tensors unmasked).
    fn weight_masks(&self, masks: Vec<Vec<f32>>) -> Vec<Option<Vec<f32>>> {
        let mut tensors = vec![None; self.params.tensors.len()];
        for (&j, m) in self.net.weight_tensors().iter().zip(masks) {
            tensors[j] = Some(m);
        }
        tensors
    }

    /// Sparsity, sizes and shape of the current model.
    fn pruning_report(&self, rounds: Vec<PruneRound>, greedy: Option<GreedyReport>) -> PruningReport {
        let infos = self.net.tensors();
        let wt = self.net.weight_tensors();
        let weights: usize = wt.iter().map(|&j| infos[j].len()).sum();
        let nonzero = |j: usize| self.params.tensors[j].iter().filter(|&&v| v != 0.0).count();
        let zeros: usize = weights - wt.iter().map(|&j| nonzero(j)).sum::<usize>();
        // A conv weight is used once per output position.
        let flops: usize = wt.iter().map(|&j| {
            let s = self.net.nodes[infos[j].node].shape;
            2 * nonzero(j) * s.h * s.w
        }).sum();
        PruningReport {
            per_layer_sparsity: self.weights().iter().map(|w| zero_fraction(w)).collect(),
            per_layer_weights: wt.iter().map(|&j| infos[j].len()).collect(),
            weight_sparsity: zeros as f32 / weights.max(1) as f32,
            weights_left: weights - zeros,
            flops_per_sample_remaining: flops,
            bytes_dense: self.params.tensors.iter().map(|t| 4 * t.len()).sum(),
            bytes_bitmask: self.stored_bytes(sparse::encode_bitmask),
            bytes_relative: self.stored_bytes(|w| sparse::encode_relative(w, 5)),
            rounds,
            hidden: self.net.hidden(),
            parameters: self.net.parameter_count(),
            greedy,
            control_accuracy: None,
        }
    }

    /// Bytes of the model with every weight matrix encoded by `encode` and the other tensors
    /// (biases, batch-norm parameters and statistics) dense f32.
    fn stored_bytes(&self, encode: impl Fn(&[f32]) -> Vec<u8>) -> usize {
        self.net
            .tensors()
            .iter()
            .zip(&self.params.tensors)
            .map(|(info, t)| if info.role == crate::nn::Role::Weight { encode(t).len() } else { 4 * t.len() })
            .sum()
    }
}

fn zero_fraction(w: &[f32]) -> f32 {
    w.iter().filter(|&&v| v == 0.0).count() as f32 / w.len().max(1) as f32
}

/// Runs `recipe` on `data` with `backend`. `progress` receives every event and returns false to
/// cancel (the run then ends with `Error::Cancelled`).
pub async fn run(recipe: &Recipe, data: &Splits, backend: &Backend, opts: &RunOptions, progress: &mut dyn FnMut(&Event) -> Control) -> Result<Outcome> {
    recipe.validate()?;
    let t_start = now_s();
    let mut train = data.train.take(recipe.limit.train.unwrap_or(usize::MAX));
    let holdout = match recipe.limit.holdout {
        Some(h) if h >= train.n => return Err(Error::recipe("limit.holdout", format!("must be smaller than the {} training samples", train.n))),
        Some(h) => {
            let kept = train.n - h;
            let held = crate::data::Dataset {
                images: train.images[kept * train.pixels()..].to_vec(),
                labels: train.labels[kept..].to_vec(),
                n: h,
                rows: train.rows,
                cols: train.cols,
            };
            train = train.take(kept);
            Some(held)
        }
        None => None,
    };
    let data = Splits { name: data.name.clone(), train, test: data.test.take(recipe.limit.test.unwrap_or(usize::MAX)) };
    let norm = data.train.normalization();
    let net = model_net(recipe, data.train.rows, data.train.cols)?;
    let params = NetParams::init(&net, recipe.seed);
    let mut runner = Runner { recipe, data, norm, net, backend, opts, progress, t_start, paused_s: 0.0, epoch_counter: 0, init: params.clone(), early: None, params, masks: None, holdout };

    let first = runner.train(0, "train", &recipe.train).await?;
    runner.emit(&Event::Stage { stage: 0, report: first.clone() }).await?;
    let snapshot = |r: &Runner, stage: usize, name: String| StageModel { stage, name, net: r.net.clone(), params: r.params.clone() };
    let mut models = vec![snapshot(&runner, 0, "trained".into())];
    let mut stages = vec![first];
    for (i, s) in recipe.stages.iter().enumerate() {
        let report = match s {
            Stage::Train(t) => runner.train(i + 1, "fine-tune", t).await?,
            Stage::Prune(p) => runner.prune(i + 1, p).await?,
            Stage::Sensitivity(c) => runner.sensitivity(i + 1, c).await?,
            Stage::Greedy(g) => runner.greedy(i + 1, g).await?,
        };
        runner.emit(&Event::Stage { stage: i + 1, report: report.clone() }).await?;
        if !matches!(s, Stage::Sensitivity(_)) {
            models.push(snapshot(&runner, i + 1, format!("{}. {}", i + 1, report.name)));
        }
        stages.push(report);
    }

    let net = &runner.net;
    let report = Report {
        dataset: runner.data.name.clone(),
        train_samples: runner.data.train.n,
        test_samples: runner.data.test.n,
        seed: recipe.seed,
        backend: backend.describe(),
        adapter: match backend {
            Backend::Gpu(ctx) => Some(ctx.adapter.clone()),
            Backend::Cpu => None,
        },
        model: ModelReport {
            arch: net.arch.clone(),
            layers: net.layer_dims(),
            parameters: net.parameter_count(),
            flops_per_sample: net.forward_flops(),
            bytes_f32: net.tensors().iter().map(|t| 4 * t.len()).sum(),
        },
        stages,
        wall_s: now_s() - t_start,
    };
    Ok(Outcome { report, net: runner.net, params: runner.params, models, norm: runner.norm })
}
