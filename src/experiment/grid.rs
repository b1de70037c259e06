//! The distill-grid stage: what temperature and soft-target weight do, measured. One student per
//! cell of temperatures × alphas, each distilled from the same teacher from the same start on the
//! same sample orders; the report holds each cell's test accuracy (a heat map in the page) and
//! which cells diverged. A scan: the model afterwards is the one before it.

use super::distill::{distil, student_of, teacher_of};
use super::trainer::means;
use super::{Run, StageDetail, StageReport};
use crate::error::{Error, Result};
use crate::nn::DistillParams;
use crate::recipe::DistillGridConfig;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct GridReport {
    pub temperatures: Vec<f32>,
    pub alphas: Vec<f32>,
    /// Test accuracy per cell, [alpha][temperature]; null where the student diverged.
    pub accuracy: Vec<Vec<Option<f32>>>,
    pub teacher_accuracy: f32,
    pub student_parameters: usize,
    /// The best cell: (temperature, alpha, test accuracy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best: Option<(f32, f32, f32)>,
}

pub async fn run(run: &mut Run<'_>, si: usize, cfg: &DistillGridConfig) -> Result<StageReport> {
    let (teacher, teacher_metrics) = teacher_of(run, si, &cfg.teacher, &cfg.train).await?;
    let student = student_of(run, si, &teacher, &cfg.student)?;
    let before = run.model.clone();
    let epoch0 = run.epoch_counter;
    let (mut accuracy, mut best, mut train_s) = (Vec::new(), None::<(f32, f32, f32)>, 0.0);
    for &alpha in &cfg.alphas {
        let mut row = Vec::new();
        for &t in &cfg.temperatures {
            let name = format!("distill grid (T {t}, alpha {alpha})");
            let cell = match distil(run, si, &name, &teacher, student.clone(), DistillParams::soft_targets(t, alpha), (&[], &[]), &cfg.train, epoch0).await {
                Ok(r) => {
                    train_s += r.train_s;
                    Some(r.test_accuracy)
                }
                Err(Error::Diverged(_)) => None, // a cell that diverged is a result, not a failure
                Err(e) => return Err(e),
            };
            if let Some(a) = cell.filter(|&a| best.is_none_or(|b| a > b.2)) {
                best = Some((t, alpha, a));
            }
            row.push(cell);
        }
        accuracy.push(row);
    }
    let student_parameters = run.model.net.parameter_count();
    run.model = before;
    run.epoch_counter = epoch0 + cfg.train.epochs; // later stages do not replay the cells' orders
    let teacher_accuracy = teacher_metrics.1;
    // The stage's own figures are the model it leaves: the one before it (the teacher unless
    // the stage names another).
    let left = match cfg.teacher {
        None => teacher_metrics,
        Some(_) => means(run.trainer(&cfg.train).evaluate().await?),
    };
    let mut report = StageReport::evaluated("distill grid", left, 0.0);
    report.train_s = train_s;
    report.detail = Some(StageDetail::DistillGrid(GridReport { temperatures: cfg.temperatures.clone(), alphas: cfg.alphas.clone(), accuracy, teacher_accuracy, student_parameters, best }));
    Ok(report)
}
