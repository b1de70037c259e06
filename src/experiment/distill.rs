//! The distill stage (Hinton et al. 2015): the model so far (trained, pruned or quantized: what
//! it computes with) becomes a frozen teacher, and a student (the teacher's architecture or the
//! recipe's) trains from a fresh start with the loss slot's distillation head: α·T²·KL of the
//! soft targets at temperature T, (1 − α)·CE of the labels, plus an optional logit MSE. The
//! teacher's forward runs inside the student's step (nn::Teacher, GpuTrainer::set_teacher).
//! Beside it, the same student from the labels alone (same start, epochs and sample order), and
//! how far student and teacher agree on the test set. The student is the model from then on.
//! The teacher may be an earlier stage's model; classes may be left out of the transfer set
//! (Hinton's omitted 3s), the student's bias for them raised afterwards and measured both ways.

use super::train::{train_with, NoHook};
use super::trainer::means;
use super::{ModelState, Run, StageDetail, StageReport};
use crate::compress::quant::QuantFn;
use crate::data::{Dataset, Normalization, Splits};
use crate::error::{Error, Result};
use crate::nn::{AttentionTransfer, DistillParams, Hint, Net, NetParams, Role, Teacher, Transforms};
use crate::recipe::{DistillConfig, ModelConfig, TeacherRef, TrainConfig};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct DistillReport {
    pub temperature: f32,
    pub alpha: f32,
    #[serde(skip_serializing_if = "is_zero")]
    pub mse: f32,
    /// Which model taught: "the model so far", "the trained model", "stage k's model" or "file NAME".
    pub teacher: String,
    /// Test accuracy of the frozen teacher.
    pub teacher_accuracy: f32,
    /// The same student trained from the labels alone, if asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_accuracy: Option<f32>,
    /// Fraction of test images where student and teacher pick the same class.
    pub agreement: f32,
    /// Mean KL(teacher ‖ student) of their test-set softmaxes at T = 1, nats.
    pub mean_kl: f32,
    pub teacher_parameters: usize,
    pub student_parameters: usize,
    /// Hinton's omitted-class experiment, when classes were left out of the transfer set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omitted: Option<OmittedReport>,
    /// The first test image of each class with the teacher's logits: what the page softens at
    /// any temperature to show what T does.
    pub examples: Vec<TeacherExample>,
    /// Attention-transfer pairs and FitNets hints in the loss.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attention: Vec<AttentionTransfer>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<Hint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TeacherExample {
    /// Index in the test split.
    pub index: usize,
    pub label: u8,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
    pub logits: Vec<f32>,
}

/// The first test image of each class, with its row of `logits` [n, classes].
pub fn examples(test: &Dataset, logits: &[f32], classes: usize) -> Vec<TeacherExample> {
    (0..classes as u8)
        .filter_map(|c| test.labels.iter().position(|&l| l == c))
        .map(|i| TeacherExample {
            index: i,
            label: test.labels[i],
            rows: test.rows,
            cols: test.cols,
            pixels: test.images[i * test.pixels()..(i + 1) * test.pixels()].to_vec(),
            logits: logits[i * classes..(i + 1) * classes].to_vec(),
        })
        .collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct OmittedReport {
    pub classes: Vec<u8>,
    /// Training images the student learned from (the training split less the omitted classes).
    pub transfer_samples: usize,
    /// Added to each omitted class's classifier bias.
    pub bias_shift: f32,
    /// Accuracy on the test images of the omitted classes before and after the bias shift.
    pub omitted_accuracy_before: f32,
    pub omitted_accuracy: f32,
    /// Accuracy on the whole test set before the shift (the stage's test accuracy is after).
    pub test_accuracy_before: f32,
    pub test_samples_omitted: usize,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// The teacher a distill (or grid) stage names: the model so far, the first training's, an
/// earlier stage's, or a loaded model file (with its own normalisation where it differs); with
/// its test (loss, accuracy).
pub async fn teacher_of(run: &Run<'_>, si: usize, which: &Option<TeacherRef>, cfg: &TrainConfig) -> Result<(Teacher, (f32, f32))> {
    let from = |m: &crate::inspect::StageModel, norm: Option<Normalization>| Teacher { net: m.net.clone(), params: m.params.clone(), activations: m.activations.clone(), norm };
    let teacher = match which {
        None => Teacher { net: run.model.net.clone(), params: run.model.effective_params(), activations: run.model.transforms.activations.clone(), norm: None },
        Some(TeacherRef::File { file }) => {
            let (m, norm) = run.opts.files.get(file).ok_or_else(|| missing_file(run.recipe, si - 1, file))?;
            from(m, Some(*norm).filter(|&n| n != run.norm))
        }
        Some(r) => {
            // "trained" is stage 0 of the run; stages[k] left the model of run stage k + 1.
            let stage = match r {
                TeacherRef::Stage(k) => k + 1,
                _ => 0,
            };
            let m = run.models.iter().find(|m| m.stage == stage).ok_or_else(|| Error::recipe(&format!("stages[{}].teacher", si - 1), format!("stage {stage} left no model")))?;
            from(m, None)
        }
    };
    let state = ModelState { net: teacher.net.clone(), params: teacher.params.clone(), masks: None, transforms: Transforms { activations: teacher.activations.clone(), ..Transforms::default() } };
    let metrics = means(run.trainer_with(&state, &run.data, teacher.norm.unwrap_or(run.norm), cfg).evaluate().await?);
    Ok((teacher, metrics))
}

/// The recipe field of stage `i`'s teacher file ("stages[i].distill.teacher.file", or the grid's).
pub fn file_field(recipe: &crate::recipe::Recipe, i: usize) -> String {
    let kind = if matches!(recipe.stages.get(i), Some(crate::recipe::Stage::DistillGrid(_))) { "distill-grid" } else { "distill" };
    format!("stages[{i}].{kind}.teacher.file")
}

/// The error for a teacher file the run was not given (stage `i` of the recipe's list).
pub fn missing_file(recipe: &crate::recipe::Recipe, i: usize, file: &str) -> Error {
    Error::recipe(&file_field(recipe, i), format!("the model file {file:?} is not loaded (the page: choose it under the Distill stage's teacher; the CLI: --teacher PATH, or put it beside the recipe)"))
}

/// A fresh student: `spec` (default: the teacher's architecture), seeded by the stage.
pub fn student_of(run: &Run<'_>, si: usize, teacher: &Teacher, spec: &Option<ModelConfig>) -> Result<ModelState> {
    let net = match spec {
        Some(m) => m.build(teacher.net.input(), teacher.net.classes)?,
        None => teacher.net.clone(),
    };
    let params = NetParams::init(&net, run.recipe.seed.wrapping_add(si as u64));
    Ok(ModelState { net, params, masks: None, transforms: Transforms::default() })
}

/// Trains `student` with the distillation head against `teacher` (run.model is the student
/// afterwards), from sample order `epoch0` on.
#[allow(clippy::too_many_arguments)]
pub async fn distil(run: &mut Run<'_>, si: usize, name: &str, teacher: &Teacher, student: ModelState, p: DistillParams, (attention, hints): (&[AttentionTransfer], &[Hint]), cfg: &TrainConfig, epoch0: usize) -> Result<StageReport> {
    run.epoch_counter = epoch0;
    run.model = student;
    let mut trainer = run.trainer(cfg);
    // Caching the teacher's logits costs about one epoch of its forward up front (benches/distill.rs):
    // a gain from the second epoch on, and none where node losses need its forward in every step
    // anyway (asking for it would fill the cache only to drop it).
    let cache = cfg.epochs >= 2 && attention.is_empty() && hints.is_empty();
    trainer.set_teacher(teacher, p, cache)?;
    trainer.set_node_losses(attention, hints)?;
    train_with(run, trainer, si, (name, true), cfg, None::<&mut NoHook>).await
}

pub async fn run(run: &mut Run<'_>, si: usize, cfg: &DistillConfig) -> Result<StageReport> {
    let (teacher, (_, teacher_accuracy)) = teacher_of(run, si, &cfg.teacher, &cfg.train).await?;
    let student = student_of(run, si, &teacher, &cfg.student)?;
    let epochs_before = run.epoch_counter;

    // The transfer set: the training split, less any omitted classes (the test split is whole).
    let transfer = Splits { name: run.data.name.clone(), train: run.data.train.without_classes(&cfg.omit), test: run.data.test.clone() };
    let full = std::mem::replace(&mut run.data, transfer);
    let transfer_samples = run.data.train.n;

    let baseline_accuracy = if cfg.baseline {
        run.model = student.clone();
        let trainer = run.trainer(&cfg.train);
        let report = train_with(run, trainer, si, ("distill (labels-only baseline)", true), &cfg.train, None::<&mut NoHook>).await?;
        Some(report.test_accuracy) // the distilled student then sees the same sample orders
    } else {
        None
    };

    let p = DistillParams { mse: cfg.mse, ..DistillParams::soft_targets(cfg.temperature, cfg.alpha) };
    let trained = distil(run, si, "distill", &teacher, student, p, (&cfg.attention, &cfg.hints), &cfg.train, epochs_before).await;
    run.data = full;
    let mut report = trained?;

    let mut student_logits = test_logits(&run.model.net, &run.model.params, &[], &run.data.test, run.norm);
    let teacher_logits = test_logits(&teacher.net, &teacher.params, &teacher.activations, &run.data.test, teacher.norm.unwrap_or(run.norm));
    let omitted = if cfg.omit.is_empty() {
        None
    } else {
        // Hinton's correction: the student never saw these classes, so its bias for them is too
        // low; raise it (the model keeps the raised bias) and measure before and after.
        let classes = teacher.net.classes;
        let labels = &run.data.test.labels;
        let before = class_accuracy(&student_logits, labels, classes, &cfg.omit);
        let shift = cfg.bias_shift();
        shift_class_bias(&run.model.net, &mut run.model.params, &cfg.omit, shift);
        for row in student_logits.chunks_exact_mut(classes) {
            for &c in &cfg.omit {
                row[c as usize] += shift;
            }
        }
        let after = class_accuracy(&student_logits, labels, classes, &cfg.omit);
        let (loss, accuracy) = logits_loss_accuracy(&student_logits, labels, classes);
        report.test_loss = loss;
        report.test_accuracy = accuracy;
        Some(OmittedReport { classes: cfg.omit.clone(), transfer_samples, bias_shift: shift, omitted_accuracy_before: before.0, omitted_accuracy: after.0, test_accuracy_before: before.1, test_samples_omitted: before.2 })
    };
    let (agreement, mean_kl) = agreement(&student_logits, &teacher_logits, teacher.net.classes);
    report.detail = Some(StageDetail::Distillation(DistillReport {
        temperature: cfg.temperature,
        alpha: cfg.alpha,
        mse: cfg.mse,
        teacher: match &cfg.teacher {
            None => "the model so far".into(),
            Some(TeacherRef::Named(_)) => "the trained model".into(),
            Some(TeacherRef::Stage(k)) => format!("stage {}'s model", k + 1),
            Some(TeacherRef::File { file }) => format!("file {file}"),
        },
        teacher_accuracy,
        baseline_accuracy,
        agreement,
        mean_kl,
        teacher_parameters: teacher.net.parameter_count(),
        student_parameters: run.model.net.parameter_count(),
        omitted,
        examples: examples(&run.data.test, &teacher_logits, teacher.net.classes),
        attention: cfg.attention.clone(),
        hints: cfg.hints.clone(),
    }));
    Ok(report)
}

/// Adds `shift` to the classifier's bias (the last node's) of each class in `classes`.
pub fn shift_class_bias(net: &Net, params: &mut NetParams, classes: &[u8], shift: f32) {
    let last = net.nodes.len() - 1;
    if let Some(j) = net.tensors().iter().position(|t| t.node == last && t.role == Role::Bias) {
        for &c in classes {
            params.tensors[j][c as usize] += shift;
        }
    }
}

/// (accuracy on the test images of `classes`, accuracy on all, how many of `classes` there are).
fn class_accuracy(logits: &[f32], labels: &[u8], classes: usize, of: &[u8]) -> (f32, f32, usize) {
    let (mut hit, mut n, mut all) = (0usize, 0usize, 0usize);
    for (row, &y) in logits.chunks_exact(classes).zip(labels) {
        let right = argmax(row) == y as usize;
        all += right as usize;
        if of.contains(&y) {
            n += 1;
            hit += right as usize;
        }
    }
    (hit as f32 / n.max(1) as f32, all as f32 / labels.len().max(1) as f32, n)
}

/// Mean cross-entropy and accuracy of logits [n, classes] against the labels.
fn logits_loss_accuracy(logits: &[f32], labels: &[u8], classes: usize) -> (f32, f32) {
    let (mut loss, mut right) = (0.0f64, 0usize);
    for (row, &y) in logits.chunks_exact(classes).zip(labels) {
        loss -= log_softmax(row)[y as usize];
        right += (argmax(row) == y as usize) as usize;
    }
    let n = labels.len().max(1);
    ((loss / n as f64) as f32, right as f32 / n as f32)
}

fn argmax(r: &[f32]) -> usize {
    (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0)
}

fn log_softmax(r: &[f32]) -> Vec<f64> {
    let mx = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let ls = r.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
    r.iter().map(|&v| v as f64 - mx - ls).collect()
}

/// Logits of every test image (inference mode, the CPU reference's forward in batches of 100).
pub fn test_logits(net: &Net, params: &NetParams, activations: &[Option<QuantFn>], test: &Dataset, norm: Normalization) -> Vec<f32> {
    crate::reference::net::split_logits(net, &mut params.clone(), activations, test, norm, 100)
}

/// Top-1 agreement and mean KL(teacher ‖ student) at T = 1 of two sets of logits [n, classes].
pub fn agreement(student: &[f32], teacher: &[f32], classes: usize) -> (f32, f32) {
    let n = student.len() / classes.max(1);
    let (mut same, mut kl) = (0usize, 0.0f64);
    for (s, t) in student.chunks_exact(classes).zip(teacher.chunks_exact(classes)) {
        same += (argmax(s) == argmax(t)) as usize;
        let (ls, lt) = (log_softmax(s), log_softmax(t));
        kl += lt.iter().zip(&ls).map(|(a, b)| a.exp() * (a - b)).sum::<f64>();
    }
    (same as f32 / n.max(1) as f32, (kl / n.max(1) as f64) as f32)
}
