//! Runs a `Recipe` stage by stage on a backend (GPU or CPU reference) and reports progress events
//! and a final `Report`. The CLI and the wasm API both call `run`; nothing here knows about the
//! DOM or the terminal.

use crate::data::Splits;
use crate::error::{Error, Result};
use crate::gpu::{AdapterSummary, GpuContext, GpuTrainer};
use crate::nn::{MlpParams, MlpSpec};
use crate::recipe::{Recipe, Stage, TrainConfig};
use crate::reference::mlp::CpuTrainer;
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
            Backend::Gpu(ctx) => format!("gpu: {} ({}, {})", ctx.adapter.name, ctx.adapter.backend, ctx.adapter.device_type),
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
    pub model: ModelReport,
    pub stages: Vec<StageReport>,
    pub wall_s: f64,
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
    async fn params(&self) -> Result<MlpParams> {
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

/// The model a recipe asks for, on data of `pixels` inputs.
pub fn model_spec(recipe: &Recipe, pixels: usize) -> MlpSpec {
    MlpSpec { inputs: pixels, hidden: recipe.model.hidden.clone(), classes: crate::data::CLASSES }
}

/// The result of a run: the report and the trained parameters.
pub struct Outcome {
    pub report: Report,
    pub params: MlpParams,
}

/// Runs `recipe` on `data` with `backend`. `progress` receives every event and returns false to
/// cancel (the run then ends with `Error::Cancelled`).
pub async fn run(recipe: &Recipe, data: &Splits, backend: &Backend, opts: &RunOptions, progress: &mut dyn FnMut(&Event) -> bool) -> Result<Outcome> {
    recipe.validate()?;
    let t_start = now_s();
    let data = Splits {
        name: data.name.clone(),
        train: data.train.take(recipe.limit.train.unwrap_or(usize::MAX)),
        test: data.test.take(recipe.limit.test.unwrap_or(usize::MAX)),
    };
    let norm = data.train.normalization();
    let spec = model_spec(recipe, data.train.pixels());
    let mut params = MlpParams::init(&spec, recipe.seed);

    let mut stage_configs: Vec<(String, &TrainConfig)> = vec![("train".to_string(), &recipe.train)];
    for s in &recipe.stages {
        match s {
            Stage::Train(t) => stage_configs.push(("fine-tune".to_string(), t)),
        }
    }

    let mut stages = Vec::new();
    let mut epoch_counter = 0usize;
    for (si, (name, cfg)) in stage_configs.iter().enumerate() {
        let opt = cfg.optimizer_config();
        let mut trainer = match backend {
            Backend::Gpu(ctx) => Trainer::Gpu(Box::new(GpuTrainer::new(ctx, &spec, &params, opt, &data, norm, cfg.batch))),
            Backend::Cpu => Trainer::Cpu(Box::new(CpuTrainer::new(params.clone(), opt, data.clone(), norm, cfg.batch))),
        };
        let steps = data.train.n.div_ceil(cfg.batch);
        let total = steps * cfg.epochs;
        let mut epochs = Vec::new();
        let mut stage_train_s = 0.0;
        for epoch in 0..cfg.epochs {
            let order = data.train.epoch_order(recipe.seed, epoch_counter);
            epoch_counter += 1;
            trainer.begin_epoch(&order);
            let t0 = now_s();
            let mut epoch_acc = [0.0f32; 4];
            for (step, (offset, valid)) in data.train.batches(cfg.batch).enumerate() {
                trainer.train_step(offset, valid, cfg.lr_at(epoch * steps + step, total));
                let last = step + 1 == steps;
                if (step + 1) % opts.progress_every.max(1) == 0 || last {
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
                    let ev = Event::Progress {
                        stage: si,
                        epoch,
                        epochs: cfg.epochs,
                        step: step + 1,
                        steps,
                        train_loss: loss,
                        train_accuracy: accuracy,
                        elapsed_s: now_s() - t_start,
                    };
                    if !progress(&ev) {
                        return Err(Error::Cancelled);
                    }
                }
            }
            let train_s = now_s() - t0;
            stage_train_s += train_s;
            let (test_loss, test_accuracy) = means(trainer.evaluate().await?);
            let (train_loss, train_accuracy) = means(epoch_acc);
            let report = EpochReport {
                epoch: epoch + 1,
                train_loss,
                train_accuracy,
                test_loss,
                test_accuracy,
                train_s,
                samples_per_s: data.train.n as f64 / train_s.max(1e-9),
            };
            if !progress(&Event::Epoch { stage: si, report: report.clone() }) {
                return Err(Error::Cancelled);
            }
            epochs.push(report);
        }
        params = trainer.params().await?;
        let last = epochs.last().expect("epochs >= 1 is validated");
        stages.push(StageReport {
            name: name.clone(),
            test_accuracy: last.test_accuracy,
            test_loss: last.test_loss,
            train_s: stage_train_s,
            samples_per_s: (data.train.n * cfg.epochs) as f64 / stage_train_s.max(1e-9),
            epochs,
        });
    }

    let report = Report {
        dataset: data.name.clone(),
        train_samples: data.train.n,
        test_samples: data.test.n,
        seed: recipe.seed,
        backend: backend.describe(),
        adapter: match backend {
            Backend::Gpu(ctx) => Some(ctx.adapter.clone()),
            Backend::Cpu => None,
        },
        model: ModelReport {
            arch: "mlp".into(),
            layers: spec.layer_dims(),
            parameters: spec.parameter_count(),
            flops_per_sample: spec.forward_flops(),
            bytes_f32: spec.parameter_count() * 4,
        },
        stages,
        wall_s: now_s() - t_start,
    };
    Ok(Outcome { report, params })
}
