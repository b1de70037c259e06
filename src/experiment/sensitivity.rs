//! The sensitivity stage: each weight matrix alone pruned to each sparsity, test accuracy without
//! fine-tuning, weights restored after every point. Changes nothing; informs per-layer targets.

use super::trainer::means;
use super::{Run, StageDetail, StageReport};
use crate::compress::prune;
use crate::error::Result;
use crate::recipe::SensitivityConfig;

/// Each weight matrix alone pruned to each sparsity (scores from the current weights), test
/// accuracy without fine-tuning; the weights are restored after every point.
pub async fn run(run: &mut Run<'_>, _si: usize, cfg: &SensitivityConfig) -> Result<StageReport> {
    let mut trainer = run.trainer(&run.recipe.train);
    let base = trainer.params().await?;
    let (base_loss, base_acc) = means(trainer.evaluate().await?);
    let mut rng = crate::rng::Rng::new(run.recipe.seed, 70);
    let mut curves = Vec::new();
    for &j in &run.model.net.weight_tensors() {
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
    let inference_us_per_image = run.time_inference(&mut trainer).await?;
    let mut report = StageReport::evaluated("sensitivity", (base_loss, base_acc), inference_us_per_image);
    report.detail = Some(StageDetail::Sensitivity(curves));
    Ok(report)
}