//! The recipe: one JSON document that names the dataset, seed, model, training and the ordered
//! stages of an experiment. Parsing goes through serde (unknown fields and wrong types are errors
//! naming the field path); `validate` then checks every range. The CLI, the page, URLs and tests
//! all go through `Recipe::from_json` (the page sends its object as JSON text), so there is one
//! set of rules.

pub use crate::compress::prune::Criterion;
pub use crate::compress::quant::{Calibration, SchemeKind};
use crate::error::{Error, Result};
use crate::nn::{OptimizerConfig, OptimizerKind};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// "mnist", "fashion-mnist", or "custom" (IDX files the user loaded into the page).
    pub dataset: DatasetName,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Use only the first N training / test samples (quick runs and tests).
    #[serde(default)]
    pub limit: Limit,
    pub model: ModelConfig,
    /// Start from a model file instead of fresh weights (`{"file": "m.sqz"}`: the page's opened
    /// file of that name; the CLI's `--model PATH`, or the file beside the recipe): its
    /// parameters, quantizers, pruned zeros (kept pruned) and input normalisation. Its net must be
    /// `model` on these images. With it `train.epochs` may be 0: stage 0 then only evaluates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ModelFileRef>,
    pub train: TrainConfig,
    /// Compression and fine-tuning stages, run in order after `train`.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// What a diverging training does: stop the run with the cause (default), or go on and keep
    /// the finding as a warning on the stage's report (a non-finite loss always stops).
    #[serde(default, skip_serializing_if = "is_default")]
    pub divergence: OnDivergence,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDivergence {
    #[default]
    Stop,
    Warn,
}

fn default_seed() -> u64 {
    1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    Mnist,
    FashionMnist,
    Custom,
}

impl DatasetName {
    pub fn as_str(&self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Custom => "custom",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub train: Option<usize>,
    pub test: Option<usize>,
    /// Hold out the last N training samples (never trained on) for decisions such as greedy pruning.
    pub holdout: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    Mlp,
    /// Caffe's LeNet-5 (Han et al. 2015's conv model).
    Lenet5,
    /// Two conv-conv-pool blocks with batch norm, fc 128, classifier.
    VggMini,
    /// Stem conv and basic residual blocks with batch norm, global average pool, classifier.
    ResnetMini,
}

impl Arch {
    pub fn as_str(&self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Lenet5 => "lenet5",
            Arch::VggMini => "vgg-mini",
            Arch::ResnetMini => "resnet-mini",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Hidden layer widths of an MLP; LeNet-300-100 by default.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Channels per block of vgg-mini (default [16, 32]) or resnet-mini (default [16, 32, 64]);
    /// lenet5's [conv1 filters, conv2 filters, fc units] (default [20, 50, 500]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widths: Option<Vec<usize>>,
}

fn default_hidden() -> Vec<usize> {
    vec![300, 100]
}

impl ModelConfig {
    /// The network for images of `input` shape and `classes` classes. Errors (naming the field)
    /// when the images are too small for the architecture's windows.
    pub fn build(&self, input: crate::nn::Shape, classes: usize) -> Result<crate::nn::Net> {
        use crate::nn::Net;
        let net = match self.arch {
            Arch::Mlp => Net::mlp(input, &self.hidden, classes),
            Arch::Lenet5 => {
                check(input.h >= 16 && input.w >= 16, "model.arch", format!("lenet5 needs images of at least 16x16, these are {}x{}", input.h, input.w))?;
                let w = self.widths.as_deref().unwrap_or(&[20, 50, 500]);
                Net::lenet5_with(input, [w[0], w[1], w[2]], classes)
            }
            Arch::VggMini | Arch::ResnetMini => {
                let resnet = self.arch == Arch::ResnetMini;
                let widths = self.widths.clone().unwrap_or(if resnet { vec![16, 32, 64] } else { vec![16, 32] });
                let halvings = if resnet { widths.len() - 1 } else { widths.len() };
                let need = 1usize << halvings;
                check(input.h >= need && input.w >= need, "model.arch", format!("{} with {} blocks needs images of at least {need}x{need}, these are {}x{}", self.arch.as_str(), widths.len(), input.h, input.w))?;
                if resnet {
                    Net::resnet_mini(input, &widths, classes)
                } else {
                    Net::vgg_mini(input, &widths, classes)
                }
            }
        };
        Ok(net)
    }

    fn validate(&self) -> Result<()> {
        self.validate_at("model")
    }

    /// The same checks with the fields named under `at` (a distill stage's student).
    fn validate_at(&self, at: &str) -> Result<()> {
        check(self.hidden.len() <= 8, &format!("{at}.hidden"), format!("at most 8 hidden layers, got {}", self.hidden.len()))?;
        for (i, &h) in self.hidden.iter().enumerate() {
            check((1..=4096).contains(&h), &format!("{at}.hidden[{i}]"), format!("must be 1..=4096, got {h}"))?;
        }
        if let Some(w) = &self.widths {
            check(self.arch != Arch::Mlp, &format!("{at}.widths"), "an MLP takes hidden, not widths".into())?;
            if self.arch == Arch::Lenet5 {
                check(w.len() == 3, &format!("{at}.widths"), format!("lenet5 takes [conv1 filters, conv2 filters, fc units] (default [20, 50, 500]), got {} numbers", w.len()))?;
            } else {
                check((1..=4).contains(&w.len()), &format!("{at}.widths"), format!("needs 1..=4 blocks, got {}", w.len()))?;
            }
            let most = if self.arch == Arch::Lenet5 { 1024 } else { 256 };
            for (i, &c) in w.iter().enumerate() {
                check((1..=most).contains(&c), &format!("{at}.widths[{i}]"), format!("must be 1..={most}, got {c}"))?;
            }
        }
        Ok(())
    }

    /// Weight matrices of the model (on MNIST-sized images; the count does not depend on size).
    /// The recipe model whose net is `net` (on its own images and classes), if one is: what the
    /// page fills in to go on compressing a model file. A net pruned into a shape no architecture
    /// names (channels of a residual block cut apart) has none.
    pub fn of(net: &crate::nn::Net) -> Option<ModelConfig> {
        let hidden = net.hidden();
        let distinct = |mut v: Vec<usize>| {
            v.dedup();
            Some(v)
        };
        let before_fc = hidden[..hidden.len().saturating_sub(1)].to_vec();
        [
            ModelConfig { arch: Arch::Mlp, hidden: hidden.clone(), widths: None },
            ModelConfig { arch: Arch::Lenet5, hidden: default_hidden(), widths: Some(hidden.clone()) },
            ModelConfig { arch: Arch::VggMini, hidden: default_hidden(), widths: distinct(before_fc) },
            ModelConfig { arch: Arch::ResnetMini, hidden: default_hidden(), widths: distinct(hidden.clone()) },
        ]
        .into_iter()
        .find(|c| c.validate().is_ok() && c.build(net.input(), net.classes).is_ok_and(|n| n.nodes == net.nodes))
    }

    pub fn weight_layers(&self) -> usize {
        self.build(crate::nn::Shape::new(28, 28, 1), crate::data::CLASSES).map(|n| n.layer_dims().len()).unwrap_or(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// The same learning rate every step.
    Constant,
    /// Cosine decay from `lr` to 0 over the stage's steps.
    Cosine,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    #[serde(default = "default_batch")]
    pub batch: usize,
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerKind,
    pub lr: f32,
    /// SGD momentum; Adam's beta1 (default 0.9 for Adam, 0 for SGD).
    pub momentum: Option<f32>,
    #[serde(default = "default_beta2")]
    pub beta2: f32,
    #[serde(default = "default_eps")]
    pub eps: f32,
    /// L2 regularisation (added to the gradient as weight_decay * w).
    #[serde(default)]
    pub weight_decay: f32,
    /// L1 regularisation (added as l1 * sign(w)): pushes weights toward prunability.
    #[serde(default)]
    pub l1: f32,
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// Augmentation: each training image moved by a random translation of up to this many
    /// pixels each way, fresh every epoch (Hinton's teacher: 2).
    #[serde(default, skip_serializing_if = "is_default")]
    pub jitter: usize,
}

fn default_batch() -> usize {
    64
}
fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Sgd
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-8
}
fn default_schedule() -> Schedule {
    Schedule::Constant
}

impl TrainConfig {
    pub fn optimizer_config(&self) -> OptimizerConfig {
        let default_momentum = if self.optimizer == OptimizerKind::Adam { 0.9 } else { 0.0 };
        OptimizerConfig {
            kind: self.optimizer,
            lr: self.lr,
            momentum: self.momentum.unwrap_or(default_momentum),
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            l1: self.l1,
        }
    }

    /// Learning rate at step `step` of `total` in this stage.
    pub fn lr_at(&self, step: usize, total: usize) -> f32 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                (self.lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }

    fn validate(&self, at: &str) -> Result<()> {
        let f = |name: &str| format!("{at}.{name}");
        check(self.epochs >= 1 && self.epochs <= 1000, &f("epochs"), format!("must be 1..=1000, got {}", self.epochs))?;
        check(self.batch >= 1 && self.batch <= 8192, &f("batch"), format!("must be 1..=8192, got {}", self.batch))?;
        check(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0, &f("lr"), format!("must be > 0 and <= 10, got {}", self.lr))?;
        if let Some(m) = self.momentum {
            check(m.is_finite() && (0.0..1.0).contains(&m), &f("momentum"), format!("must be in [0, 1), got {m}"))?;
        }
        check(self.beta2.is_finite() && self.beta2 > 0.0 && self.beta2 < 1.0, &f("beta2"), format!("must be in (0, 1), got {}", self.beta2))?;
        check(self.eps.is_finite() && self.eps > 0.0 && self.eps < 1.0, &f("eps"), format!("must be in (0, 1), got {}", self.eps))?;
        check(
            self.weight_decay.is_finite() && (0.0..1.0).contains(&self.weight_decay),
            &f("weight_decay"),
            format!("must be in [0, 1), got {}", self.weight_decay),
        )?;
        check(self.l1.is_finite() && (0.0..1.0).contains(&self.l1), &f("l1"), format!("must be in [0, 1), got {}", self.l1))?;
        check(self.jitter <= 8, &f("jitter"), format!("must be 0..=8 pixels, got {}", self.jitter))
    }
}

/// One stage after the initial training. More kinds (quantize, distill) join this enum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Stage {
    /// More training (fine-tuning) with its own settings.
    Train(TrainConfig),
    /// Weight pruning (see compress::prune), optionally in rounds with fine-tuning after each.
    Prune(PruneConfig),
    /// Sensitivity analysis: each weight matrix pruned alone to each sparsity, test accuracy
    /// measured without fine-tuning, weights restored. Changes nothing; informs per-layer targets.
    Sensitivity(SensitivityConfig),
    /// Greedy pruning: remove a chunk of a layer's lowest-scoring weights, evaluate on the held-out
    /// split (`limit.holdout`), restore the chunk and stop pruning that layer if accuracy fell by
    /// more than `tolerance`; repeat round-robin over layers until every target is met or frozen.
    Greedy(GreedyConfig),
    /// Quantization of weights (and optionally activations), post-training or with
    /// quantization-aware training (see experiment::quantize).
    Quantize(QuantizeConfig),
    /// Bit-width sweep: post-training weight quantization at each width of each scheme, and
    /// each layer alone at each width; proposes per-layer widths for an accuracy budget.
    /// Changes nothing (see experiment::sweep).
    Sweep(SweepConfig),
    /// Knowledge distillation: the model so far becomes a frozen teacher and a student (its own
    /// architecture or another) trains against its soft targets (see experiment::distill); the
    /// student is the model from then on.
    Distill(DistillConfig),
    /// One student distilled per cell of temperatures × alphas, from the same teacher, start and
    /// sample orders; test accuracy per cell. Changes nothing (see experiment::grid).
    DistillGrid(DistillGridConfig),
}

impl Stage {
    /// A scan: measures and leaves the model as it was (no model of its own to teach or keep).
    pub fn is_scan(&self) -> bool {
        matches!(self, Stage::Sensitivity(_) | Stage::Sweep(_) | Stage::DistillGrid(_))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillGridConfig {
    /// The students' architecture (default: the teacher's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<ModelConfig>,
    /// Temperatures T (columns of the grid).
    pub temperatures: Vec<f32>,
    /// Soft-target weights α (rows; α = 0 is the student from labels alone).
    pub alphas: Vec<f32>,
    /// Each student's training.
    pub train: TrainConfig,
    /// Which model teaches (as a distill stage's `teacher`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The student's architecture (default: the teacher's), trained from a fresh initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<ModelConfig>,
    /// Softmax temperature T of the soft targets.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Weight α of the soft-target term α·T²·KL; the labels' cross-entropy gets 1 − α.
    #[serde(default = "default_alpha")]
    pub alpha: f32,
    /// Weight of the mean squared difference of student and teacher logits (combined loss).
    #[serde(default, skip_serializing_if = "is_default")]
    pub mse: f32,
    /// The student's training.
    pub train: TrainConfig,
    /// Also train the same student from the labels alone (same start, epochs and sample order)
    /// and report it beside the distilled one.
    #[serde(default = "default_true")]
    pub baseline: bool,
    /// Which model teaches (default: the model so far): `"trained"` (the first training's) or
    /// the index of an earlier stage in `stages` (the model that stage left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<TeacherRef>,
    /// Classes left out of the transfer set (Hinton's omitted-3 experiment): the student (and
    /// the baseline) never sees an image of them; the teacher has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omit: Vec<u8>,
    /// Added to the student's classifier bias of each omitted class after training (Hinton et
    /// al. 2015: +3.5 for the 3s). Default 3.5 when classes are omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_correction: Option<f32>,
    /// Attention transfer (Zagoruyko & Komodakis 2017) between node pairs of student and teacher
    /// (indices into each net's nodes, 0 = the input), each with its weight β.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<crate::nn::AttentionTransfer>,
    /// FitNets hints (Romero et al. 2015): student node → learned projection → teacher node,
    /// weight × mean squared difference (node indices as for `attention`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<crate::nn::Hint>,
}

/// A model file a recipe names (`{"file": "m.sqz"}`): a `.sqz` or ONNX file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFileRef {
    pub file: String,
}

/// A model file's name: `.sqz` or `.onnx`, at most 255 bytes.
fn check_model_file(field: &str, file: &str) -> Result<()> {
    let named = [".sqz", ".onnx"].iter().any(|x| file.len() > x.len() && file.ends_with(x));
    check(named && file.len() <= 255, field, format!("must name a .sqz or .onnx model file, got {file:?}"))
}

/// A distill stage's teacher: the first training's model, the model an earlier stage left, or
/// a `.sqz` or ONNX model file (`{"file": "teacher.sqz"}`: the page's uploaded file of that name; the
/// CLI's `--teacher PATH`, or the path relative to the recipe's folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TeacherRef {
    Stage(usize),
    Named(String),
    File { file: String },
}

impl DistillConfig {
    /// The bias added to each omitted class after training (0 when none is omitted).
    pub fn bias_shift(&self) -> f32 {
        if self.omit.is_empty() {
            0.0
        } else {
            self.bias_correction.unwrap_or(3.5)
        }
    }
}

fn default_temperature() -> f32 {
    4.0
}
fn default_alpha() -> f32 {
    0.9
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Weight schemes to sweep; each at the widths of `bits` it accepts (binary, ternary and f16
    /// once, at their own width). The first scheme also runs the per-layer scan.
    #[serde(default = "default_sweep_schemes")]
    pub schemes: Vec<SchemeKind>,
    #[serde(default = "default_sweep_bits")]
    pub bits: Vec<u32>,
    #[serde(default = "default_true")]
    pub per_channel: bool,
    /// Per-layer bit sensitivity: each weight matrix alone at each width, the rest float.
    #[serde(default = "default_true")]
    pub layers: bool,
    /// Largest accepted test-accuracy drop of the proposed mixed-precision widths (0.005 = half a point).
    #[serde(default = "default_tolerance")]
    pub budget: f32,
}

fn default_sweep_schemes() -> Vec<SchemeKind> {
    vec![SchemeKind::Symmetric]
}
fn default_sweep_bits() -> Vec<u32> {
    vec![8, 6, 4, 3, 2]
}

impl SweepConfig {
    /// The widths scheme `kind` is swept at, widest first.
    pub fn bits_of(&self, kind: SchemeKind) -> Vec<u32> {
        let (_, ok) = scheme_bits(kind);
        let mut b: Vec<u32> = match kind {
            SchemeKind::Binary => vec![1],
            SchemeKind::Ternary => vec![2],
            SchemeKind::F16 => vec![16],
            _ => self.bits.iter().copied().filter(|&b| ok(b)).collect(),
        };
        b.sort_unstable_by(|x, y| y.cmp(x));
        b.dedup();
        b
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuantMode {
    /// Post-training quantization: quantize, calibrate, evaluate; no training.
    Ptq,
    /// Quantization-aware training: fake quantization in forward, straight-through backward,
    /// `finetune` epochs with the f32 masters updated.
    Qat,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizeConfig {
    #[serde(default = "default_weight_quant")]
    pub weights: WeightQuant,
    /// Quantize every activation a weight layer reads (the input image is 8-bit data already).
    #[serde(default)]
    pub activations: Option<ActivationQuant>,
    #[serde(default = "default_quant_mode")]
    pub mode: QuantMode,
    /// QAT's training run.
    pub finetune: Option<TrainConfig>,
    /// Biases kept in f32 (default) or rounded to and stored as f16.
    #[serde(default, skip_serializing_if = "is_default")]
    pub biases: BiasQuant,
    /// QAT with learned step sizes (LSQ): every uniform quantizer's steps (weights per channel,
    /// activations per tensor) train with the weights, starting from the fitted ones.
    #[serde(default, skip_serializing_if = "is_default")]
    pub lsq: bool,
}

/// How a quantize stage stores biases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BiasQuant {
    #[default]
    Float,
    F16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightQuant {
    #[serde(default = "default_weight_scheme")]
    pub scheme: SchemeKind,
    /// Bits per weight (default: 8; binary 1, ternary 2 and f16 16 by definition).
    pub bits: Option<u32>,
    /// One scale (and zero point) per output channel rather than per tensor (affine schemes:
    /// uniform, fixed point, binary, ternary; k-means and power-of-two levels are per tensor).
    #[serde(default = "default_true")]
    pub per_channel: bool,
    /// Mixed precision: bits per weight matrix, first layer first (overrides `bits`).
    pub layer_bits: Option<Vec<u32>>,
    /// k-means with QAT: how the shared centroids are fine-tuned (each weight keeps its cluster).
    #[serde(default, skip_serializing_if = "is_default")]
    pub centroids: CentroidUpdate,
}

/// How QAT moves k-means centroids: by the summed gradient of their members (Deep Compression)
/// or by the mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CentroidUpdate {
    #[default]
    Sum,
    Mean,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationQuant {
    #[serde(default = "default_activation_scheme")]
    pub scheme: SchemeKind,
    #[serde(default = "default_activation_bits")]
    pub bits: u32,
    #[serde(default = "default_calibration")]
    pub calibration: Calibration,
    /// Calibration samples: the held-out split when `limit.holdout` is set, else the first N
    /// training samples.
    #[serde(default = "default_calibration_samples")]
    pub samples: usize,
}

fn default_weight_quant() -> WeightQuant {
    WeightQuant { scheme: default_weight_scheme(), bits: None, per_channel: true, layer_bits: None, centroids: CentroidUpdate::Sum }
}
fn default_weight_scheme() -> SchemeKind {
    SchemeKind::Symmetric
}
fn default_activation_scheme() -> SchemeKind {
    SchemeKind::Asymmetric
}
fn default_activation_bits() -> u32 {
    8
}
fn default_calibration() -> Calibration {
    Calibration::Minmax
}
fn default_calibration_samples() -> usize {
    1000
}
fn default_quant_mode() -> QuantMode {
    QuantMode::Ptq
}
fn default_true() -> bool {
    true
}

impl WeightQuant {
    /// The width a scheme has by definition, or the one asked for.
    pub fn bits_for(&self, layer: usize) -> u32 {
        match self.scheme {
            SchemeKind::Binary => 1,
            SchemeKind::Ternary => 2,
            SchemeKind::F16 => 16,
            _ => self.layer_bits.as_ref().and_then(|b| b.get(layer).copied()).or(self.bits).unwrap_or(8),
        }
    }
}

/// The widths a scheme accepts.
fn scheme_bits(kind: SchemeKind) -> (&'static str, fn(u32) -> bool) {
    match kind {
        SchemeKind::Asymmetric | SchemeKind::Symmetric => ("2..=16", |b| (2..=16).contains(&b)),
        SchemeKind::PowerOfTwo => ("2..=8", |b| (2..=8).contains(&b)),
        SchemeKind::Kmeans => ("1..=8", |b| (1..=8).contains(&b)),
        SchemeKind::FixedPoint => ("8 or 16", |b| b == 8 || b == 16),
        SchemeKind::Binary => ("1", |b| b == 1),
        SchemeKind::Ternary => ("2", |b| b == 2),
        SchemeKind::F16 => ("16", |b| b == 16),
    }
}

impl QuantizeConfig {
    fn validate(&self, at: &str, weights: usize) -> Result<()> {
        let f = |name: &str| format!("{at}.{name}");
        let (accepted, ok) = scheme_bits(self.weights.scheme);
        if let Some(b) = self.weights.bits {
            check(ok(b), &f("weights.bits"), format!("{:?} weights take {accepted} bits, got {b}", self.weights.scheme))?;
        }
        if let Some(v) = &self.weights.layer_bits {
            check(v.len() == weights, &f("weights.layer_bits"), format!("the model has {weights} weight matrices, so the list needs {weights} values, got {}", v.len()))?;
            for (i, &b) in v.iter().enumerate() {
                check(ok(b), &f(&format!("weights.layer_bits[{i}]")), format!("{:?} weights take {accepted} bits, got {b}", self.weights.scheme))?;
            }
        }
        if self.weights.centroids != CentroidUpdate::Sum {
            check(self.weights.scheme == SchemeKind::Kmeans && self.mode == QuantMode::Qat, &f("weights.centroids"), "only k-means weights fine-tuned with \"mode\": \"qat\" have centroids to update".into())?;
        }
        if let Some(a) = &self.activations {
            check(matches!(a.scheme, SchemeKind::Asymmetric | SchemeKind::Symmetric), &f("activations.scheme"), "activations take \"asymmetric\" or \"symmetric\"".into())?;
            check((2..=16).contains(&a.bits), &f("activations.bits"), format!("must be 2..=16, got {}", a.bits))?;
            check((1..=60_000).contains(&a.samples), &f("activations.samples"), format!("must be 1..=60000, got {}", a.samples))?;
        }
        if self.lsq {
            check(self.mode == QuantMode::Qat, &f("lsq"), "learned step sizes are trained: use \"mode\": \"qat\" with \"finetune\"".into())?;
            if let Some(a) = &self.activations {
                check(a.calibration != Calibration::Dynamic, &f("activations.calibration"), "dynamic ranges are recomputed every batch: there is no step for LSQ to learn (use a static calibration with \"lsq\")".into())?;
            }
            check(matches!(self.weights.scheme, SchemeKind::Symmetric | SchemeKind::Asymmetric), &f("lsq"), format!("LSQ learns the step of a uniform quantizer: weights must be \"symmetric\" or \"asymmetric\", got {:?}", self.weights.scheme))?;
        }
        match (self.mode, &self.finetune) {
            (QuantMode::Qat, None) => return Err(Error::recipe(&f("finetune"), "quantization-aware training (\"mode\": \"qat\") trains: give it \"finetune\"")),
            (QuantMode::Ptq, Some(_)) => return Err(Error::recipe(&f("finetune"), "post-training quantization does not train: use \"mode\": \"qat\" to train with quantization")),
            (_, Some(t)) => t.validate(&f("finetune"))?,
            _ => {}
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreedyConfig {
    #[serde(default = "default_criterion")]
    pub criterion: Criterion,
    /// Target sparsity, one for all weight matrices or one per matrix.
    pub sparsity: Sparsity,
    /// Fraction of a layer's weights removed per step.
    #[serde(default = "default_chunk")]
    pub chunk: f32,
    /// Largest accepted drop in held-out accuracy (0.005 = half a point) below the stage's start.
    #[serde(default = "default_tolerance")]
    pub tolerance: f32,
    pub finetune: Option<TrainConfig>,
}

fn default_chunk() -> f32 {
    0.05
}
fn default_tolerance() -> f32 {
    0.005
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitivityConfig {
    #[serde(default = "default_criterion")]
    pub criterion: Criterion,
    #[serde(default = "default_sensitivity_points")]
    pub sparsities: Vec<f32>,
}

fn default_sensitivity_points() -> Vec<f32> {
    vec![0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneScope {
    /// Each weight matrix reaches its own target sparsity.
    Layer,
    /// One threshold across all weight matrices (Han et al.'s global magnitude pruning).
    Global,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskMode {
    /// Pruned weights stay exactly zero for good (re-masked after every optimizer step).
    Hard,
    /// Pruned weights are zeroed once and keep training; they may regrow.
    Soft,
}

/// One target for every weight matrix, or one per matrix (first layer first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sparsity {
    All(f32),
    PerLayer(Vec<f32>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    #[serde(default = "default_criterion")]
    pub criterion: Criterion,
    /// What one pruning decision removes: single weights, or whole neurons/filters/channels.
    #[serde(default = "default_granularity")]
    pub granularity: Granularity,
    #[serde(default = "default_scope")]
    pub scope: PruneScope,
    /// Fraction of weights removed (0.92 leaves 8%), one per weight matrix; with neuron, filter or
    /// channel granularity, the fraction of units removed, one per hidden layer.
    pub sparsity: Sparsity,
    #[serde(default = "default_mode")]
    pub mode: MaskMode,
    /// Prune-then-fine-tune rounds (Han et al. 2015's iterative pruning); 1 = one-shot.
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// How the target grows over the rounds.
    #[serde(default = "default_schedule_kind")]
    pub schedule: PruneSchedule,
    /// Training after each round (usually at a lower learning rate); none = prune only.
    pub finetune: Option<TrainConfig>,
    /// Gradual pruning during training (Zhu & Gupta 2017): prune `rounds` times, `every` training
    /// steps apart (Δt), inside one `finetune` run, the k-th time to the schedule's k-th sparsity
    /// (with `"schedule": "polynomial"`, s_f(1 − (1 − k/n)³)). Single weights only.
    #[serde(default)]
    pub every: Option<usize>,
    /// Before each round's training, reset the surviving weights to their initial values
    /// (lottery-ticket rewinding, Frankle & Carbin 2019), or keep the trained ones.
    #[serde(default = "default_rewind")]
    pub rewind: Rewind,
    /// After the last round, also train the final masks from fresh random weights and report that
    /// accuracy beside the ticket's (the lottery-ticket control experiment).
    #[serde(default)]
    pub control: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rewind {
    /// Fine-tune the pruned weights as they are (Han et al.).
    None,
    /// Reset the survivors to their initialisation (Frankle & Carbin's winning tickets).
    Init,
    /// Reset the survivors to their values after this epoch of the first training stage
    /// (`{"epoch": 1}`; rewinding, Frankle et al. 2020), which works where rewinding to init fails.
    Epoch(usize),
}

fn default_rewind() -> Rewind {
    Rewind::None
}

fn default_criterion() -> Criterion {
    Criterion::Magnitude
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Granularity {
    /// Individual weights (unstructured).
    Weight,
    /// Hidden units scored by their own weights: a dense layer's neurons, a conv layer's filters
    /// (`"filter"` names the same thing). Hard mode removes them physically, with the rows that
    /// read them and the batch-norm entries on them (nn::surgery: a smaller dense model); soft
    /// mode zeroes them.
    #[serde(alias = "filter")]
    Neuron,
    /// Input channels scored by the weights that read them (the rows of every next layer, He et
    /// al. 2017's channel pruning); removing a channel removes the filter producing it.
    Channel,
}

/// Sparsity after round r of R, for a final target s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneSchedule {
    /// 1 − (1 − s)^(r/R): the same fraction of the survivors each round (Han et al.; lottery tickets).
    Geometric,
    /// s (1 − (1 − r/R)³): Zhu & Gupta's gradual pruning, fast early and gentle late, with the
    /// fine-tuning epochs of each round as the interval Δt.
    Polynomial,
}

impl PruneSchedule {
    pub fn at(&self, target: f32, round: usize, rounds: usize) -> f32 {
        match self {
            PruneSchedule::Geometric => (1.0 - (1.0 - target as f64).powf(round as f64 / rounds as f64)) as f32,
            PruneSchedule::Polynomial => crate::compress::prune::polynomial_sparsity(0.0, target, round, 0, rounds, 1),
        }
    }
}

fn default_schedule_kind() -> PruneSchedule {
    PruneSchedule::Geometric
}
fn default_granularity() -> Granularity {
    Granularity::Weight
}
fn default_scope() -> PruneScope {
    PruneScope::Layer
}
fn default_mode() -> MaskMode {
    MaskMode::Hard
}
fn default_rounds() -> usize {
    1
}

impl PruneConfig {
    /// The final sparsity of each of `layers` weight matrices.
    pub fn targets(&self, layers: usize) -> Vec<f32> {
        match &self.sparsity {
            Sparsity::All(s) => vec![*s; layers],
            Sparsity::PerLayer(v) => v.clone(),
        }
    }

    /// How many sparsity targets this stage takes for a model with `weights` weight matrices
    /// (neuron granularity: all but the classifier).
    pub fn target_count(&self, weights: usize) -> usize {
        match self.granularity {
            Granularity::Weight => weights,
            Granularity::Neuron | Granularity::Channel => weights - 1,
        }
    }

    fn validate(&self, at: &str, weights: usize) -> Result<()> {
        let f = |name: &str| format!("{at}.{name}");
        let layers = self.target_count(weights);
        let what = if self.granularity == Granularity::Weight { "weight matrices" } else { "hidden layers" };
        check(layers >= 1, &f("granularity"), "neuron, filter and channel pruning need at least one hidden layer".into())?;
        let values = match &self.sparsity {
            Sparsity::All(s) => vec![*s],
            Sparsity::PerLayer(v) => {
                check(self.scope == PruneScope::Layer, &f("sparsity"), "a per-layer list needs \"scope\": \"layer\"; a global threshold takes one number".into())?;
                check(v.len() == layers, &f("sparsity"), format!("the model has {layers} {what}, so the list needs {layers} values, got {}", v.len()))?;
                v.clone()
            }
        };
        for (i, s) in values.iter().enumerate() {
            let name = if values.len() > 1 { format!("sparsity[{i}]") } else { "sparsity".into() };
            check(s.is_finite() && (0.0..1.0).contains(s), &f(&name), format!("must be in [0, 1), got {s}"))?;
        }
        let max_rounds = if self.every.is_some() { 1000 } else { 50 };
        check((1..=max_rounds).contains(&self.rounds), &f("rounds"), format!("must be 1..={max_rounds}, got {}", self.rounds))?;
        if let Some(every) = self.every {
            check(every >= 1, &f("every"), "must be at least 1 training step".into())?;
            check(self.finetune.is_some(), &f("finetune"), "gradual pruning (\"every\") prunes during a training run: give it \"finetune\"".into())?;
            check(self.granularity == Granularity::Weight, &f("every"), "gradual pruning during training works on single weights (\"granularity\": \"weight\")".into())?;
            check(self.rewind == Rewind::None && !self.control, &f("every"), "gradual pruning does not rewind; lottery tickets use rounds without \"every\"".into())?;
        }
        check(
            self.finetune.is_some() || (self.rewind == Rewind::None && !self.control),
            &f("finetune"),
            "rewinding and the control experiment train after pruning, so they need \"finetune\"".into(),
        )?;
        if let Some(t) = &self.finetune {
            t.validate(&f("finetune"))?;
        }
        Ok(())
    }
}

fn check(ok: bool, path: &str, message: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::recipe(path, message))
    }
}

impl Recipe {
    /// Parses and validates a recipe from JSON text.
    pub fn from_json(text: &str) -> Result<Recipe> {
        let r: Recipe = serde_json::from_str(text).map_err(|e| crate::json_path::error(text, &e, ""))?;
        r.validate()?;
        Ok(r)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a recipe always serializes")
    }

    /// Checks a distill stage's `teacher` (stage `i`, fields under `at`) and returns the weight
    /// matrices of the model it names (`so_far` when it names none).
    fn teacher_weights(&self, teacher: &Option<TeacherRef>, i: usize, at: &str, so_far: usize, trained: usize, left: &[usize]) -> Result<usize> {
        match teacher {
            None => Ok(so_far),
            Some(TeacherRef::Named(n)) => {
                check(n == "trained", &format!("{at}.teacher"), format!("must be \"trained\" or the index of an earlier stage, got \"{n}\""))?;
                Ok(trained)
            }
            Some(TeacherRef::Stage(k)) => {
                check(*k < i, &format!("{at}.teacher"), format!("must name an earlier stage (0..={}), got {k}", i as isize - 1))?;
                check(!self.stages[*k].is_scan(), &format!("{at}.teacher"), format!("stages[{k}] is a scan that leaves no model of its own; name the stage before it or \"trained\""))?;
                Ok(left[*k])
            }
            Some(TeacherRef::File { file }) => {
                check_model_file(&format!("{at}.teacher.file"), file)?;
                // Its weight matrices are known once it is loaded; a stage that keeps the
                // teacher's architecture names it (see the distill stage's `student`).
                Ok(so_far)
            }
        }
    }

    /// Every model file the recipe names, each once: the one it starts from, then its teachers.
    pub fn model_files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = self.from.iter().map(|f| f.file.as_str()).collect();
        for (_, t) in self.teacher_files() {
            if !files.contains(&t) {
                files.push(t);
            }
        }
        files
    }

    /// The model files the recipe's distill stages name as teachers, each once, in order, with
    /// the first stage naming it.
    pub fn teacher_files(&self) -> Vec<(usize, &str)> {
        let mut files: Vec<(usize, &str)> = Vec::new();
        for (i, s) in self.stages.iter().enumerate() {
            let t = match s {
                Stage::Distill(d) => &d.teacher,
                Stage::DistillGrid(g) => &g.teacher,
                _ => continue,
            };
            if let Some(TeacherRef::File { file }) = t {
                if files.iter().all(|&(_, f)| f != file) {
                    files.push((i, file));
                }
            }
        }
        files
    }

    /// The epoch of the first training stage whose weights a prune stage rewinds to, if any.
    pub fn rewind_epoch(&self) -> Option<usize> {
        self.stages.iter().find_map(|s| match s {
            Stage::Prune(PruneConfig { rewind: Rewind::Epoch(k), .. }) => Some(*k),
            _ => None,
        })
    }

    /// Range checks that types cannot express. Every error names the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(n) = self.limit.train {
            check(n >= 1, "limit.train", format!("must be at least 1, got {n}"))?;
        }
        if let Some(n) = self.limit.holdout {
            check(n >= 1, "limit.holdout", format!("must be at least 1, got {n}"))?;
        }
        if let Some(n) = self.limit.test {
            check(n >= 1, "limit.test", format!("must be at least 1, got {n}"))?;
        }
        self.model.validate()?;
        // Weight matrices of the model each stage starts from (a distill stage's student changes
        // it), and of the model each stage left (a teacher chosen by index).
        let mut weights = self.model.weight_layers();
        let trained_weights = weights;
        let mut left: Vec<usize> = Vec::with_capacity(self.stages.len());
        match &self.from {
            // A loaded model may go straight to the stages: 0 epochs evaluates it.
            Some(f) => {
                check_model_file("from.file", &f.file)?;
                TrainConfig { epochs: self.train.epochs.max(1), ..self.train.clone() }.validate("train")?;
            }
            None => self.train.validate("train")?,
        }
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                left.push(weights);
            }
            match s {
                Stage::Train(t) => t.validate(&format!("stages[{i}].train"))?,
                Stage::Prune(p) => {
                    p.validate(&format!("stages[{i}].prune"), weights)?;
                    // Masks left by weight pruning, soft unit pruning or greedy pruning, since the
                    // last distill stage (whose student starts without any).
                    let since = self.stages[..i].iter().rposition(|s| matches!(s, Stage::Distill(_))).map_or(0, |k| k + 1);
                    let masked_before = self.stages[since..i].iter().any(|s| match s {
                        Stage::Prune(q) => q.granularity == Granularity::Weight || q.mode == MaskMode::Soft,
                        Stage::Greedy(_) => true,
                        _ => false,
                    });
                    check(
                        !(masked_before && p.granularity != Granularity::Weight && p.mode == MaskMode::Hard),
                        &format!("stages[{i}].prune.mode"),
                        "hard neuron, filter or channel pruning after a stage that masks weights (weight, soft or greedy pruning) is not supported yet: put it first, or use \"mode\": \"soft\"".into(),
                    )?;
                    let quantized_before = self.stages[..i].iter().any(|s| matches!(s, Stage::Quantize(_)));
                    check(
                        !(quantized_before && p.granularity != Granularity::Weight && p.mode == MaskMode::Hard),
                        &format!("stages[{i}].prune.granularity"),
                        "hard neuron, filter or channel pruning changes the layers a quantize stage before it has quantized: prune units first, then quantize".into(),
                    )?;
                    if let Rewind::Epoch(k) = p.rewind {
                        let at = format!("stages[{i}].prune.rewind.epoch");
                        check(k >= 1 && k <= self.train.epochs, &at, format!("must be 1..={} (an epoch of \"train\"), got {k}", self.train.epochs))?;
                        check(Some(k) == self.rewind_epoch(), &at, "every prune stage must rewind to the same epoch".into())?;
                    }
                }
                Stage::Greedy(g) => {
                    let at = format!("stages[{i}].greedy");
                    let layers = weights;
                    let values = match &g.sparsity {
                        Sparsity::All(s) => vec![*s],
                        Sparsity::PerLayer(v) => {
                            check(v.len() == layers, &format!("{at}.sparsity"), format!("the model has {layers} weight matrices, so the list needs {layers} values, got {}", v.len()))?;
                            v.clone()
                        }
                    };
                    for s in values {
                        check(s.is_finite() && (0.0..1.0).contains(&s), &format!("{at}.sparsity"), format!("must be in [0, 1), got {s}"))?;
                    }
                    check(g.criterion != Criterion::Taylor, &format!("{at}.criterion"), "`taylor` is not available in recipes yet".into())?;
                    check(g.chunk > 0.0 && g.chunk <= 0.5, &format!("{at}.chunk"), format!("must be in (0, 0.5], got {}", g.chunk))?;
                    check(g.tolerance.is_finite() && (0.0..1.0).contains(&g.tolerance), &format!("{at}.tolerance"), format!("must be in [0, 1), got {}", g.tolerance))?;
                    check(self.limit.holdout.is_some(), "limit.holdout", "greedy pruning evaluates on held-out training samples: set limit.holdout (e.g. 5000)".into())?;
                    if let Some(t) = &g.finetune {
                        t.validate(&format!("{at}.finetune"))?;
                    }
                }
                Stage::Quantize(q) => q.validate(&format!("stages[{i}].quantize"), weights)?,
                Stage::Sweep(c) => {
                    let at = format!("stages[{i}].sweep");
                    check((1..=8).contains(&c.schemes.len()), &format!("{at}.schemes"), format!("needs 1..=8 schemes, got {}", c.schemes.len()))?;
                    check((1..=16).contains(&c.bits.len()), &format!("{at}.bits"), format!("needs 1..=16 widths, got {}", c.bits.len()))?;
                    for (k, &b) in c.bits.iter().enumerate() {
                        check((1..=16).contains(&b), &format!("{at}.bits[{k}]"), format!("must be 1..=16, got {b}"))?;
                    }
                    for (k, &kind) in c.schemes.iter().enumerate() {
                        check(!c.bits_of(kind).is_empty(), &format!("{at}.schemes[{k}]"), format!("{kind:?} takes {} bits, none of which is in `bits`", scheme_bits(kind).0))?;
                    }
                    check(c.budget.is_finite() && (0.0..1.0).contains(&c.budget), &format!("{at}.budget"), format!("must be in [0, 1), got {}", c.budget))?;
                }
                Stage::Distill(d) => {
                    let at = format!("stages[{i}].distill");
                    check(d.temperature.is_finite() && (0.1..=100.0).contains(&d.temperature), &format!("{at}.temperature"), format!("must be in [0.1, 100], got {}", d.temperature))?;
                    check(d.alpha.is_finite() && (0.0..=1.0).contains(&d.alpha), &format!("{at}.alpha"), format!("must be in [0, 1], got {}", d.alpha))?;
                    check(d.mse.is_finite() && (0.0..=10.0).contains(&d.mse), &format!("{at}.mse"), format!("must be in [0, 10], got {}", d.mse))?;
                    d.train.validate(&format!("{at}.train"))?;
                    weights = self.teacher_weights(&d.teacher, i, &at, weights, trained_weights, &left)?;
                    let mut seen = [false; 256];
                    for (k, &c) in d.omit.iter().enumerate() {
                        check((c as usize) < crate::data::CLASSES && !seen[c as usize], &format!("{at}.omit[{k}]"), format!("must be a class 0..={} named once, got {c}", crate::data::CLASSES - 1))?;
                        seen[c as usize] = true;
                    }
                    check(d.omit.len() < crate::data::CLASSES, &format!("{at}.omit"), "cannot leave out every class".into())?;
                    check(d.attention.len() <= 8, &format!("{at}.attention"), format!("at most 8 pairs, got {}", d.attention.len()))?;
                    for (k, a) in d.attention.iter().enumerate() {
                        check(a.beta.is_finite() && a.beta > 0.0 && a.beta <= 1e5, &format!("{at}.attention[{k}].beta"), format!("must be in (0, 100000], got {}", a.beta))?;
                    }
                    check(d.hints.len() <= 8, &format!("{at}.hints"), format!("at most 8 hints, got {}", d.hints.len()))?;
                    for (k, h) in d.hints.iter().enumerate() {
                        check(h.weight.is_finite() && h.weight > 0.0 && h.weight <= 1e5, &format!("{at}.hints[{k}].weight"), format!("must be in (0, 100000], got {}", h.weight))?;
                    }
                    if let Some(b) = d.bias_correction {
                        check(b.is_finite() && b.abs() <= 100.0, &format!("{at}.bias_correction"), format!("must be in [-100, 100], got {b}"))?;
                        check(!d.omit.is_empty(), &format!("{at}.bias_correction"), "corrects the bias of omitted classes: set omit too".into())?;
                    }
                    if let Some(m) = &d.student {
                        m.validate_at(&format!("{at}.student"))?;
                        weights = m.weight_layers();
                    } else {
                        let from_file = matches!(d.teacher, Some(TeacherRef::File { .. }));
                        check(!from_file, &format!("{at}.student"), "a teacher from a model file needs the student's architecture named (e.g. {\"arch\": \"lenet5\", \"widths\": [3, 8, 60]})".into())?;
                    }
                }
                Stage::DistillGrid(g) => {
                    let at = format!("stages[{i}].distill-grid");
                    check((1..=8).contains(&g.temperatures.len()), &format!("{at}.temperatures"), format!("needs 1..=8 values, got {}", g.temperatures.len()))?;
                    check((1..=8).contains(&g.alphas.len()), &format!("{at}.alphas"), format!("needs 1..=8 values, got {}", g.alphas.len()))?;
                    for (k, &t) in g.temperatures.iter().enumerate() {
                        check(t.is_finite() && (0.1..=100.0).contains(&t), &format!("{at}.temperatures[{k}]"), format!("must be in [0.1, 100], got {t}"))?;
                    }
                    for (k, &a) in g.alphas.iter().enumerate() {
                        check(a.is_finite() && (0.0..=1.0).contains(&a), &format!("{at}.alphas[{k}]"), format!("must be in [0, 1], got {a}"))?;
                    }
                    g.train.validate(&format!("{at}.train"))?;
                    // A scan: the model after it is the one before, whatever teaches.
                    self.teacher_weights(&g.teacher, i, &at, weights, trained_weights, &left)?;
                    if let Some(m) = &g.student {
                        m.validate_at(&format!("{at}.student"))?;
                    }
                }
                Stage::Sensitivity(c) => {
                    let at = format!("stages[{i}].sensitivity");
                    check(c.criterion != Criterion::Taylor, &format!("{at}.criterion"), "`taylor` is not available in recipes yet".into())?;
                    check(!c.sparsities.is_empty() && c.sparsities.len() <= 50, &format!("{at}.sparsities"), format!("needs 1..=50 values, got {}", c.sparsities.len()))?;
                    for (k, s) in c.sparsities.iter().enumerate() {
                        check(s.is_finite() && (0.0..1.0).contains(s), &format!("{at}.sparsities[{k}]"), format!("must be in [0, 1), got {s}"))?;
                    }
                }
            }
        }
        Ok(())
    }
}
