//! The greedy stage: remove a chunk of a layer's lowest-scoring weights, judge on the held-out
//! split, restore the chunk and freeze the layer when accuracy fell by more than the tolerance;
//! round-robin over layers until every target is met or frozen; optional fine-tuning.

use super::prune::pruning_report;
use super::train::train;
use super::trainer::means;
use super::{GreedyReport, Run, StageDetail, StageReport};
use crate::compress::prune;
use crate::data::Splits;
use crate::error::Result;
use crate::recipe::{GreedyConfig, Sparsity, TrainConfig};

/// Greedy prune-evaluate-restore on the held-out split (see recipe::Stage::Greedy).
pub async fn run(run: &mut Run<'_>, si: usize, cfg: &GreedyConfig) -> Result<StageReport> {
    let holdout = run.holdout.clone().expect("validated: limit.holdout is set");
    let wt = run.model.net.weight_tensors();
    let layers = wt.len();
    let targets = match &cfg.sparsity {
        Sparsity::All(s) => vec![*s; layers],
        Sparsity::PerLayer(v) => v.clone(),
    };
    // A trainer whose evaluation split is the held-out data.
    let judge_data = Splits { name: "holdout".into(), train: holdout.clone(), test: holdout };
    let mut judge = run.trainer_on(&judge_data, &TrainConfig { batch: 64, ..run.recipe.train.clone() });
    let (_, start) = means(judge.evaluate().await?);
    let mut rng = crate::rng::Rng::new(run.recipe.seed, 90 + si as u64);
    let orders: Vec<Vec<usize>> = run
        .model
        .weights()
        .iter()
        .map(|w| prune::order(&prune::scores(cfg.criterion, w, None, &mut rng)))
        .collect();
    let mut pruned = vec![0usize; layers];
    let mut frozen = vec![false; layers];
    let (mut accepted, mut restored) = (0usize, 0usize);
    let mut current = run.model.params.clone();
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
    run.model.params = current;
    run.model.hold_zeros();
    let mut r = match &cfg.finetune {
        Some(ft) => train(run, si, "greedy", ft).await?,
        None => {
            let mut t = run.trainer(&run.recipe.train);
            run.evaluated("greedy", &mut t).await?
        }
    };
    let greedy = GreedyReport { holdout_accuracy_start: start, chunks_accepted: accepted, chunks_restored: restored, frozen };
    r.detail = Some(StageDetail::Pruning(pruning_report(&run.model, vec![], Some(greedy))));
    Ok(r)
}
