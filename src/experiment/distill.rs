//! The distill stage (Hinton et al. 2015): the model so far (trained, pruned or quantized: what
//! it computes with) becomes a frozen teacher, and a student (the teacher's architecture or the
//! recipe's) trains from a fresh start with the loss slot's distillation head: α·T²·KL of the
//! soft targets at temperature T, (1 − α)·CE of the labels, plus an optional logit MSE. The
//! teacher's forward runs inside the student's step (nn::Teacher, GpuTrainer::set_teacher).
//! Beside it, the same student from the labels alone (same start, epochs and sample order), and
//! how far student and teacher agree on the test set. The student is the model from then on.

use super::train::{train_with, NoHook};
use super::trainer::means;
use super::{ModelState, Run, StageDetail, StageReport};
use crate::compress::quant::QuantFn;
use crate::data::{Dataset, Normalization};
use crate::error::Result;
use crate::nn::{DistillParams, Net, NetParams, Teacher, Transforms};
use crate::recipe::DistillConfig;
use crate::reference::net::net_forward_with;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct DistillReport {
    pub temperature: f32,
    pub alpha: f32,
    #[serde(skip_serializing_if = "is_zero")]
    pub mse: f32,
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
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

pub async fn run(run: &mut Run<'_>, si: usize, cfg: &DistillConfig) -> Result<StageReport> {
    let teacher = Teacher { net: run.model.net.clone(), params: run.model.effective_params(), activations: run.model.transforms.activations.clone() };
    let mut t = run.trainer(&cfg.train);
    let (_, teacher_accuracy) = means(t.evaluate().await?);
    drop(t);

    let input = run.model.net.input();
    let student_net = match &cfg.student {
        Some(m) => m.build(input, teacher.net.classes)?,
        None => teacher.net.clone(),
    };
    let init = NetParams::init(&student_net, run.recipe.seed.wrapping_add(si as u64));
    let student = ModelState { net: student_net, params: init, masks: None, transforms: Transforms::default() };
    let epochs_before = run.epoch_counter;

    let baseline_accuracy = if cfg.baseline {
        run.model = student.clone();
        let trainer = run.trainer(&cfg.train);
        let report = train_with(run, trainer, si, "distill (labels-only baseline)", &cfg.train, None::<&mut NoHook>).await?;
        run.epoch_counter = epochs_before; // the distilled student sees the same sample orders
        Some(report.test_accuracy)
    } else {
        None
    };

    run.model = student;
    let mut trainer = run.trainer(&cfg.train);
    let p = DistillParams { mse: cfg.mse, ..DistillParams::soft_targets(cfg.temperature, cfg.alpha) };
    trainer.set_teacher(&teacher, p)?;
    let mut report = train_with(run, trainer, si, "distill", &cfg.train, None::<&mut NoHook>).await?;

    let student_logits = test_logits(&run.model.net, &run.model.params, &[], &run.data.test, run.norm);
    let teacher_logits = test_logits(&teacher.net, &teacher.params, &teacher.activations, &run.data.test, run.norm);
    let (agreement, mean_kl) = agreement(&student_logits, &teacher_logits, teacher.net.classes);
    report.detail = Some(StageDetail::Distillation(DistillReport {
        temperature: cfg.temperature,
        alpha: cfg.alpha,
        mse: cfg.mse,
        teacher_accuracy,
        baseline_accuracy,
        agreement,
        mean_kl,
        teacher_parameters: teacher.net.parameter_count(),
        student_parameters: run.model.net.parameter_count(),
    }));
    Ok(report)
}

/// Logits of every test image (inference mode, the CPU reference's forward in batches of 100).
pub fn test_logits(net: &Net, params: &NetParams, activations: &[Option<QuantFn>], test: &Dataset, norm: Normalization) -> Vec<f32> {
    let order: Vec<u32> = (0..test.n as u32).collect();
    let mut params = params.clone();
    let mut out = Vec::with_capacity(test.n * net.classes);
    for (offset, valid) in test.batches(100) {
        let (x, _) = test.gather(&order, offset, valid, norm);
        out.extend(net_forward_with(net, &mut params, x, valid, valid, false, activations).acts.pop().expect("logits"));
    }
    out
}

/// Top-1 agreement and mean KL(teacher ‖ student) at T = 1 of two sets of logits [n, classes].
pub fn agreement(student: &[f32], teacher: &[f32], classes: usize) -> (f32, f32) {
    let argmax = |r: &[f32]| (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0);
    let log_softmax = |r: &[f32]| -> Vec<f64> {
        let mx = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let ls = r.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln();
        r.iter().map(|&v| v as f64 - mx - ls).collect()
    };
    let n = student.len() / classes.max(1);
    let (mut same, mut kl) = (0usize, 0.0f64);
    for (s, t) in student.chunks_exact(classes).zip(teacher.chunks_exact(classes)) {
        same += (argmax(s) == argmax(t)) as usize;
        let (ls, lt) = (log_softmax(s), log_softmax(t));
        kl += lt.iter().zip(&ls).map(|(a, b)| a.exp() * (a - b)).sum::<f64>();
    }
    (same as f32 / n.max(1) as f32, (kl / n.max(1) as f64) as f32)
}
