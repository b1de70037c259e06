//! Runs a `Recipe`: `run` owns one run (the recipe, the data splits, the backend, the events and
//! pause/cancel, the model state and the models each stage leaves) and hands the model to each
//! stage in turn. A stage kind is a module of its own with one signature,
//! `async fn run(run: &mut Run, stage: usize, config) -> Result<StageReport>`: it reads and
//! replaces `run.model` and returns its report. Nothing here knows about the DOM or the terminal.
//!
//! Stages: `train` (also fine-tuning and the training loop every stage shares), `prune`,
//! `greedy`, `sensitivity`, `quantize`, `sweep`, `distill`, `grid` (distill-grid). Reports: `report`. Backend dispatch: `trainer`. Backend by measurement: `calibrate`. Clock: `platform`.

pub mod calibrate;
pub mod distill;
pub mod divergence;
pub mod greedy;
pub mod grid;
pub mod integer;
pub mod limits;
pub mod platform;
pub mod prune;
pub mod quantize;
pub mod report;
pub mod sensitivity;
pub mod sweep;
pub mod train;
pub mod trainer;

pub use platform::now_s;
pub use report::{EpochReport, GreedyReport, ModelReport, PruneRound, PruningReport, Report, StageDetail, StageReport};
pub use trainer::Trainer;

use crate::data::{Dataset, Normalization, Splits};
use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::inspect::StageModel;
use crate::nn::{Net, NetParams, Shape, Transforms};
use crate::recipe::{Recipe, Stage, TrainConfig};
use serde::Serialize;
use trainer::means;

/// Test images an inference timing runs over (two GPU evaluation batches of 1,000 rows).
pub const TIMED_IMAGES: usize = 2000;

/// Microseconds per image of `pass` over `images` images: the median of three after a warm-up.
pub(crate) async fn time_us<T>(images: usize, mut pass: impl AsyncFnMut() -> Result<T>) -> Result<f64> {
    pass().await?;
    let mut times = Vec::with_capacity(3);
    for _ in 0..3 {
        let t0 = now_s();
        pass().await?;
        times.push((now_s() - t0) * 1e6 / images.max(1) as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[1])
}

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
            Backend::Cpu => match crate::reference::pool::threads() {
                1 => "cpu reference, 1 thread".to_string(),
                n => format!("cpu reference, {n} threads"),
            },
        }
    }
}

/// How often to stop and report (each report reads a few bytes back from the GPU), and the
/// model files a recipe's distill stages may name as their teacher.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub progress_every: usize,
    pub files: ModelFiles,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { progress_every: 100, files: ModelFiles::new() }
    }
}

/// Loaded `.sqz` model files by name (`"teacher": {"file": name}`), each with the input
/// normalisation it was trained with (export::load).
pub type ModelFiles = std::collections::BTreeMap<String, (StageModel, Normalization)>;

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
    pub norm: Normalization,
}

/// Pruning masks in force: one per tensor (W0, b0, W1, ...; `None` = dense) and whether they are
/// hard (re-applied after every optimizer step).
#[derive(Clone)]
pub struct Masks {
    pub tensors: Vec<Option<Vec<f32>>>,
    pub hard: bool,
}

/// What a stage takes and leaves: the net, its f32 parameters, and the compression in force on
/// them (masks: post-update constraints; transforms: fake quantization of weights and activations).
#[derive(Clone)]
pub struct ModelState {
    pub net: Net,
    pub params: NetParams,
    pub masks: Option<Masks>,
    pub transforms: Transforms,
}

impl ModelState {
    /// The current weight matrices, in `Net::weight_tensors()` order.
    pub fn weights(&self) -> Vec<&[f32]> {
        self.net.weight_tensors().iter().map(|&j| &self.params.tensors[j][..]).collect()
    }

    /// The parameters as the model uses them: quantized weights replaced by their fake-quantized values.
    pub fn effective_params(&self) -> NetParams {
        let infos = self.net.tensors();
        let mut p = self.params.clone();
        for (j, t) in p.tensors.iter_mut().enumerate() {
            if let Some(q) = self.transforms.weight(j) {
                *t = q.fake(t, infos[j].cols);
            }
        }
        p
    }

    /// Hard masks that hold every weight now exactly zero at zero (greedy pruning's result; a
    /// loaded model's pruned weights).
    pub fn hold_zeros(&mut self) {
        let nonzero: Vec<Vec<f32>> = self.weights().iter().map(|w| w.iter().map(|&v| if v == 0.0 { 0.0 } else { 1.0 }).collect()).collect();
        self.masks = Some(Masks { tensors: self.weight_masks(nonzero), hard: true });
    }

    /// Per-tensor masks from one mask per weight matrix (other tensors unmasked).
    pub fn weight_masks(&self, masks: Vec<Vec<f32>>) -> Vec<Option<Vec<f32>>> {
        let mut tensors = vec![None; self.params.tensors.len()];
        for (&j, m) in self.net.weight_tensors().iter().zip(masks) {
            tensors[j] = Some(m);
        }
        tensors
    }
}

/// Fraction of exact zeros.
pub fn zero_fraction(w: &[f32]) -> f32 {
    w.iter().filter(|&&v| v == 0.0).count() as f32 / w.len().max(1) as f32
}

/// One run in progress: what every stage shares.
pub struct Run<'a> {
    pub recipe: &'a Recipe,
    pub data: Splits,
    pub norm: Normalization,
    pub backend: &'a Backend,
    opts: &'a RunOptions,
    progress: &'a mut dyn FnMut(&Event) -> Control,
    t_start: f64,
    /// Seconds spent paused so far (not counted as training time).
    pub paused_s: f64,
    /// Epochs trained so far in this run (seeds each epoch's sample order).
    pub epoch_counter: usize,
    pub model: ModelState,
    /// The initial weights, and those after epoch `rewind_epoch` of the first stage, for rewinding.
    pub init: NetParams,
    pub early: Option<NetParams>,
    /// Held-out training samples (limit.holdout), never trained on.
    pub holdout: Option<Dataset>,
    /// The model after training and after every stage so far that changes it.
    pub models: Vec<StageModel>,
    /// On the GPU, splits already uploaded this run (the run's own, a transfer set, the held-out
    /// split), each with what identifies its contents; trainers on them share the buffers.
    resident: std::cell::RefCell<Vec<(SplitsKey, crate::gpu::ResidentSplits)>>,
}

/// What tells one loaded split from another without reading it all: where its bytes live, its
/// size and shape, a hash of its labels and of 4,096 pixels spread over its images. Splits come
/// and go within a run (the distillation transfer set), so the address alone is not enough.
#[derive(PartialEq, Clone, Copy, Debug)]
struct SplitsKey([(usize, usize, usize, usize, u64); 2]);

impl SplitsKey {
    fn of(data: &Splits) -> SplitsKey {
        let one = |d: &Dataset| {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&d.labels, &mut h);
            let stride = (d.images.len() / 4096).max(1);
            let sample: Vec<u8> = d.images.iter().step_by(stride).copied().collect();
            std::hash::Hash::hash(&sample, &mut h);
            (d.images.as_ptr() as usize, d.n, d.rows, d.cols, std::hash::Hasher::finish(&h))
        };
        SplitsKey([one(&data.train), one(&data.test)])
    }
}

impl Run<'_> {
    /// A trainer on the current model (masks in force) with `cfg`'s optimizer and batch.
    pub fn trainer(&self, cfg: &TrainConfig) -> Trainer {
        self.trainer_on(&self.data, cfg)
    }

    /// The same on other splits (greedy pruning judges on the held-out split).
    pub fn trainer_on(&self, data: &Splits, cfg: &TrainConfig) -> Trainer {
        self.trainer_with(&self.model, data, self.norm, cfg)
    }

    /// A trainer on another model state (e.g. the same net without its quantizers; a teacher
    /// file with the normalisation it was trained with).
    pub fn trainer_with(&self, m: &ModelState, data: &Splits, norm: Normalization, cfg: &TrainConfig) -> Trainer {
        Trainer::build(self.backend, m, (data, self.resident(data).as_ref()), norm, cfg)
    }

    /// `data` on the GPU, uploaded on first use this run (the last three splits are kept).
    fn resident(&self, data: &Splits) -> Option<crate::gpu::ResidentSplits> {
        let Backend::Gpu(ctx) = self.backend else { return None };
        let key = SplitsKey::of(data);
        let mut kept = self.resident.borrow_mut();
        if let Some(i) = kept.iter().position(|(k, _)| *k == key) {
            let hit = kept.remove(i);
            kept.push(hit);
        } else {
            if kept.len() == 3 {
                kept.remove(0);
            }
            kept.push((key, crate::gpu::ResidentSplits::upload(ctx, data)));
        }
        kept.last().map(|(_, r)| r.clone())
    }

    /// Microseconds per test image of an evaluation pass (batched as the whole test split's) over
    /// the first [`TIMED_IMAGES`] test images: the median of three timed passes after a warm-up
    /// one. (Over the whole split it cost four more test passes at the end of every stage, which
    /// on the CPU backend was most of a short stage's time, for the same figure.)
    pub async fn time_inference(&self, trainer: &mut Trainer) -> Result<f64> {
        let n = self.data.test.n.min(TIMED_IMAGES);
        time_us(n, async || trainer.evaluate_first(n).await).await
    }

    /// The report of a stage that ends by evaluating `trainer` without training.
    pub async fn evaluated(&self, name: &str, trainer: &mut Trainer) -> Result<StageReport> {
        let metrics = means(trainer.evaluate().await?);
        let us = self.time_inference(trainer).await?;
        Ok(StageReport::evaluated(name, metrics, us))
    }

    /// Sends an event to the listener and obeys its answer (pause: wait; cancel: stop).
    pub async fn emit(&mut self, e: &Event) -> Result<()> {
        // In the browser, let the worker's message loop run (pause and cancel arrive there; the
        // CPU backend would otherwise never yield).
        #[cfg(target_arch = "wasm32")]
        platform::sleep_ms(0).await;
        let mut control = (self.progress)(e);
        if control == Control::Pause {
            let t0 = now_s();
            while control == Control::Pause {
                platform::sleep_ms(100).await;
                control = (self.progress)(&Event::Paused);
            }
            self.paused_s += now_s() - t0;
        }
        match control {
            Control::Cancel => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    pub fn elapsed_s(&self) -> f64 {
        now_s() - self.t_start
    }
}

/// Splits `data` as the recipe's limits ask: the first `limit.train` training samples (the last
/// `limit.holdout` of them held out) and the first `limit.test` test samples.
fn limited(recipe: &Recipe, data: &Splits) -> Result<(Splits, Option<Dataset>)> {
    let mut train = data.train.take(recipe.limit.train.unwrap_or(usize::MAX));
    let holdout = match recipe.limit.holdout {
        Some(h) if h >= train.n => return Err(Error::recipe("limit.holdout", format!("must be smaller than the {} training samples", train.n))),
        Some(h) => {
            let kept = train.n - h;
            let held = Dataset { images: train.images[kept * train.pixels()..].to_vec(), labels: train.labels[kept..].to_vec(), n: h, rows: train.rows, cols: train.cols };
            train = train.take(kept);
            Some(held)
        }
        None => None,
    };
    Ok((Splits { name: data.name.clone(), train, test: data.test.take(recipe.limit.test.unwrap_or(usize::MAX)) }, holdout))
}

/// Before any training: every teacher file is loaded and reads these images into these classes,
/// every distill stage's student builds on them, and its attention pairs name nodes of student
/// and teacher whose maps have the same size. Follows the net each stage leaves (pruning units
/// changes channels, never map sizes).
fn check_students(recipe: &Recipe, trained: &Net, files: &ModelFiles, backend: &Backend) -> Result<()> {
    use crate::recipe::TeacherRef;
    let fits = |field: String, net: &Net, batch: usize| limits::check_training(backend, &field, net, batch);
    let fits_with = |field: String, net: &Net, teacher: &Net, batch: usize| limits::check_training_with(backend, &field, net, Some(teacher), batch);
    fits("train.batch".into(), trained, recipe.train.batch)?;
    let mut nets = vec![trained.clone()]; // the net after run stage k (0: training)
    for (i, s) in recipe.stages.iter().enumerate() {
        let so_far = nets.last().expect("the trained net").clone();
        // Trainings on the model so far (pruning units only shrinks it).
        let finetune = match s {
            Stage::Train(t) => Some(("train", t)),
            Stage::Prune(p) => p.finetune.as_ref().map(|t| ("prune.finetune", t)),
            Stage::Greedy(g) => g.finetune.as_ref().map(|t| ("greedy.finetune", t)),
            Stage::Quantize(q) => q.finetune.as_ref().map(|t| ("quantize.finetune", t)),
            _ => None,
        };
        if let Some((at, t)) = finetune {
            fits(format!("stages[{i}].{at}.batch"), &so_far, t.batch)?;
        }
        let teacher_of = |t: &Option<TeacherRef>| -> Result<Net> {
            match t {
            None => Ok(so_far.clone()),
            Some(TeacherRef::Named(_)) => Ok(nets[0].clone()),
            Some(TeacherRef::Stage(k)) => Ok(nets[k + 1].clone()),
            Some(TeacherRef::File { file }) => {
                let net = &files.get(file).ok_or_else(|| distill::missing_file(recipe, i, file))?.0.net;
                let (want, got) = ((trained.input(), trained.classes), (net.input(), net.classes));
                let (input, classes) = got;
                check_file(want == got, &distill::file_field(recipe, i), format!("{file:?} reads {}x{}x{} images into {classes} classes; this dataset has {}x{}x{} images in {} classes", input.h, input.w, input.c, want.0.h, want.0.w, want.0.c, want.1))?;
                Ok(net.clone())
            }
            }
        };
        let student = |m: &Option<crate::recipe::ModelConfig>, teacher: &Net| match m {
            Some(m) => m.build(teacher.input(), teacher.classes),
            None => Ok(teacher.clone()),
        };
        let after = match s {
            Stage::Distill(d) => {
                let teacher = teacher_of(&d.teacher)?;
                let net = student(&d.student, &teacher)?;
                // The student trains with the teacher's forward at the same batch.
                fits_with(format!("stages[{i}].distill.train.batch"), &net, &teacher, d.train.batch)?;
                for (k, a) in d.attention.iter().enumerate() {
                    a.shapes(&net, &teacher).map_err(|e| Error::recipe(&format!("stages[{i}].distill.attention[{k}]"), e.to_string()))?;
                }
                for (k, h) in d.hints.iter().enumerate() {
                    h.shapes(&net, &teacher).map_err(|e| Error::recipe(&format!("stages[{i}].distill.hints[{k}]"), e.to_string()))?;
                }
                net
            }
            Stage::DistillGrid(g) => {
                let teacher = teacher_of(&g.teacher)?;
                fits_with(format!("stages[{i}].distill-grid.train.batch"), &student(&g.student, &teacher)?, &teacher, g.train.batch)?;
                so_far
            }
            _ => so_far,
        };
        nets.push(after);
    }
    Ok(())
}

fn check_file(ok: bool, field: &str, message: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::recipe(field, message))
    }
}

/// The data a recipe will be checked against before it runs: image size and split sizes.
#[derive(Clone, Copy, Debug)]
pub struct DataShape {
    pub rows: usize,
    pub cols: usize,
    pub train: usize,
    pub test: usize,
}

impl DataShape {
    /// The shipped datasets' shape (MNIST and Fashion-MNIST: 60,000 + 10,000 28x28 images); none
    /// for the user's own files until they are loaded.
    pub fn known(dataset: crate::recipe::DatasetName) -> Option<DataShape> {
        use crate::recipe::DatasetName;
        matches!(dataset, DatasetName::Mnist | DatasetName::FashionMnist).then_some(DataShape { rows: 28, cols: 28, train: 60_000, test: 10_000 })
    }
}

/// Everything `run` checks before any work, on its own (`squeeze check`, the page's
/// `validateRecipe`): the recipe's fields, the model for these images, the training split and every
/// training the recipe will run (batches, fine-tuning, students with their teachers' in-step
/// forward, teacher files) against `backend`'s buffer, binding and grid limits or the CPU
/// backend's memory budget. A recipe that passes here is not refused by `run` for these reasons.
pub fn check(recipe: &Recipe, data: DataShape, files: &ModelFiles, backend: &Backend) -> Result<()> {
    recipe.validate()?;
    let net = model_net(recipe, data.rows, data.cols)?;
    start_file(recipe, files, &net)?;
    let train = recipe.limit.train.map_or(data.train, |n| n.min(data.train)).saturating_sub(recipe.limit.holdout.unwrap_or(0));
    let test = recipe.limit.test.map_or(data.test, |n| n.min(data.test));
    check_fits(recipe, &net, data.rows * data.cols, (train, test), files, backend)
}

/// The model file a recipe starts from (`from`), checked against the recipe's model on these
/// images: the same net, or an error naming both.
fn start_file<'f>(recipe: &Recipe, files: &'f ModelFiles, net: &Net) -> Result<Option<&'f (StageModel, Normalization)>> {
    let Some(from) = &recipe.from else { return Ok(None) };
    let loaded = files.get(&from.file).ok_or_else(|| {
        Error::recipe("from.file", format!("the model file {:?} is not loaded (the page: open it under Try the models; the CLI: --model PATH, or put it beside the recipe)", from.file))
    })?;
    let m = &loaded.0.net;
    if m.nodes != net.nodes || m.classes != net.classes {
        let (a, b) = (m.input(), net.input());
        return Err(Error::recipe(
            "model",
            format!(
                "the file {:?} holds a {} of {} parameters (weight layers {:?}, {}x{}x{} images); the recipe's model is a {} of {} parameters (weight layers {:?}, {}x{}x{} images): name the file's model",
                from.file,
                m.arch,
                m.parameter_count(),
                m.layer_dims(),
                a.h,
                a.w,
                a.c,
                net.arch,
                net.parameter_count(),
                net.layer_dims(),
                b.h,
                b.w,
                b.c
            ),
        ));
    }
    // Its pruned zeros start the run under masks and its quantizers in force: hard unit pruning
    // cannot follow either (as after a weight-pruning or quantize stage), until a distill stage
    // starts a fresh student.
    let (pruned, quantized) = (m.weight_tensors().iter().any(|&j| loaded.0.params.tensors[j].contains(&0.0)), loaded.0.weights.iter().chain(&loaded.0.activations).any(Option::is_some));
    if pruned || quantized {
        for (i, s) in recipe.stages.iter().enumerate() {
            match s {
                Stage::Distill(_) => break,
                Stage::Prune(p) if p.granularity != crate::recipe::Granularity::Weight && p.mode == crate::recipe::MaskMode::Hard => {
                    let what = if pruned { "pruned weights (held at zero by masks)" } else { "quantizers" };
                    return Err(Error::recipe(&format!("stages[{i}].prune.mode"), format!("the model file {:?} has {what}: hard neuron, filter or channel pruning after them is not supported yet: use \"mode\": \"soft\", or start from the model before it was pruned or quantized", from.file)));
                }
                _ => {}
            }
        }
    }
    Ok(Some(loaded))
}

/// The state a run starts in from a model file: its parameters and quantizers, its pruned zeros
/// held by hard masks (none when it has no exact zero), its normalisation.
fn state_of_file(net: Net, (m, norm): &(StageModel, Normalization)) -> (ModelState, Normalization) {
    let mut state = ModelState { net, params: m.params.clone(), masks: None, transforms: Transforms { weights: m.weights.clone(), activations: m.activations.clone(), ..Default::default() } };
    if state.weights().iter().any(|w| w.contains(&0.0)) {
        state.hold_zeros();
    }
    (state, *norm)
}

fn check_fits(recipe: &Recipe, net: &Net, pixels: usize, (train, test): (usize, usize), files: &ModelFiles, backend: &Backend) -> Result<()> {
    limits::check_data(backend, pixels, train, test)?;
    check_students(recipe, net, files, backend)
}

/// Runs `recipe` on `data` with `backend`. `progress` receives every event and answers with a
/// `Control` (cancel ends the run with `Error::Cancelled`). On the GPU, a device error nobody
/// scoped or the device's loss ends the run with an `Error` (`GpuContext::check`).
pub async fn run(recipe: &Recipe, data: &Splits, backend: &Backend, opts: &RunOptions, progress: &mut dyn FnMut(&Event) -> Control) -> Result<Outcome> {
    if let Backend::Gpu(ctx) = backend {
        // A lost device refuses at once; an error left from outside a run is not this run's.
        if ctx.is_lost() {
            ctx.check()?;
        }
        let _ = ctx.check();
        ctx.begin_run();
    }
    let out = run_stages(recipe, data, backend, opts, progress).await;
    if let Backend::Gpu(ctx) = backend {
        // In the browser a device's loss arrives from the event loop, after the failed read-back
        // it caused: give it a moment, since it explains the failure better than the failure does.
        if matches!(out, Err(Error::Gpu(_))) {
            for _ in 0..25 {
                if ctx.is_lost() {
                    break;
                }
                platform::sleep_ms(20).await;
            }
        }
        // Every buffer the run made is garbage now (its models are on the host): freed at once.
        ctx.end_run();
        // An error no read-back met (the last commands) still ends the run.
        ctx.check()?;
    }
    out
}

async fn run_stages(recipe: &Recipe, data: &Splits, backend: &Backend, opts: &RunOptions, progress: &mut dyn FnMut(&Event) -> Control) -> Result<Outcome> {
    recipe.validate()?;
    let t_start = now_s();
    let (data, holdout) = limited(recipe, data)?;
    let net = model_net(recipe, data.train.rows, data.train.cols)?;
    check_fits(recipe, &net, data.train.pixels(), (data.train.n, data.test.n), &opts.files, backend)?;
    // Fresh weights, or a model file's state (`from`: its own input normalisation with it).
    let (model, norm) = match start_file(recipe, &opts.files, &net)? {
        Some(file) => state_of_file(net, file),
        None => {
            let params = NetParams::init(&net, recipe.seed);
            (ModelState { net, params, masks: None, transforms: Transforms::default() }, data.train.normalization())
        }
    };
    let init = model.params.clone();
    let mut run = Run { recipe, data, norm, backend, opts, progress, t_start, paused_s: 0.0, epoch_counter: 0, model, init, early: None, holdout, models: Vec::new(), resident: Default::default() };

    let first = match &recipe.from {
        // A loaded model with no training first: stage 0 evaluates it as it came.
        Some(_) if recipe.train.epochs == 0 => {
            let mut trainer = run.trainer(&recipe.train);
            run.evaluated("loaded", &mut trainer).await?
        }
        _ => train::run(&mut run, 0, &recipe.train).await?,
    };
    run.emit(&Event::Stage { stage: 0, report: first.clone() }).await?;
    let snapshot = |r: &Run, stage: usize, name: String| StageModel {
        stage,
        name,
        net: r.model.net.clone(),
        params: r.model.effective_params(),
        weights: r.model.transforms.weights.clone(),
        activations: r.model.transforms.activations.clone(),
    };
    let first_name = recipe.from.as_ref().map_or("trained".to_string(), |f| format!("from {}", f.file));
    run.models.push(snapshot(&run, 0, first_name));
    let mut stages = vec![first];
    for (i, s) in recipe.stages.iter().enumerate() {
        let si = i + 1;
        let report = match s {
            Stage::Train(t) => train::run(&mut run, si, t).await?,
            Stage::Prune(p) => prune::run(&mut run, si, p).await?,
            Stage::Sensitivity(c) => sensitivity::run(&mut run, si, c).await?,
            Stage::Greedy(g) => greedy::run(&mut run, si, g).await?,
            Stage::Quantize(q) => quantize::run(&mut run, si, q).await?,
            Stage::Sweep(c) => sweep::run(&mut run, si, c).await?,
            Stage::Distill(d) => distill::run(&mut run, si, d).await?,
            Stage::DistillGrid(g) => grid::run(&mut run, si, g).await?,
        };
        run.emit(&Event::Stage { stage: si, report: report.clone() }).await?;
        if !s.is_scan() {
            let m = snapshot(&run, si, format!("{si}. {}", report.name));
            run.models.push(m);
        }
        stages.push(report);
    }

    let net = &run.model.net;
    let report = Report {
        dataset: run.data.name.clone(),
        train_samples: run.data.train.n,
        test_samples: run.data.test.n,
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
    let params = run.model.effective_params();
    Ok(Outcome { report, net: run.model.net, params, models: run.models, norm: run.norm })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: usize, seed: u32) -> Dataset {
        let images = (0..n * 12).map(|i| (i as u32).wrapping_mul(2654435761).wrapping_add(seed) as u8).collect();
        let labels = (0..n).map(|i| (i as u32 + seed) as u8 % 10).collect();
        Dataset { images, labels, n, rows: 3, cols: 4 }
    }

    /// A run's GPU uploads are shared only between the same splits: the same object matches, a copy
    /// elsewhere in memory, changed labels or changed pixels do not.
    #[test]
    fn splits_key_tells_loaded_splits_apart() {
        let data = Splits::new("a", split(5000, 1), split(700, 2)).unwrap();
        assert_eq!(SplitsKey::of(&data), SplitsKey::of(&data));
        let copy = data.clone();
        assert_ne!(SplitsKey::of(&data), SplitsKey::of(&copy));
        let mut relabelled = data.clone();
        let before = SplitsKey::of(&relabelled);
        relabelled.train.labels[4321] ^= 1;
        assert_ne!(SplitsKey::of(&relabelled), before);
        let mut repainted = data.clone();
        let before = SplitsKey::of(&repainted);
        let stride = repainted.test.images.len() / 4096;
        repainted.test.images[stride * 7] ^= 0x80;
        assert_ne!(SplitsKey::of(&repainted), before);
    }
}
