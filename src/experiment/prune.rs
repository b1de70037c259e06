//! The prune stage: masks (weights) or unit removal (neurons, filters, channels) in rounds with
//! fine-tuning after each, or gradually inside one training run (Zhu & Gupta); lottery-ticket
//! rewinding and its random-reinit control. Scores and masks come from compress::prune; this
//! module decides when and on what, and reports sizes (pruning_report).

use super::train::{train, train_with, StepHook};
use super::trainer::{means, Trainer};
use super::{zero_fraction, GreedyReport, Masks, ModelState, PruneRound, PruningReport, Run, StageDetail, StageReport};
use crate::compress::encoding::Encoding;
use crate::compress::prune::{self, Criterion};
use crate::error::{Error, Result};
use crate::nn::{surgery, NetParams, Role};
use crate::recipe::{Granularity, MaskMode, PruneConfig, PruneScope, Rewind};
use crate::rng::Rng;

/// Prunes in `cfg.rounds` rounds (each: new masks from the current weights, then fine-tuning);
/// round r reaches `cfg.schedule.at(s, r, rounds)` of each target s, so the last reaches s.
pub async fn run(run: &mut Run<'_>, si: usize, cfg: &PruneConfig) -> Result<StageReport> {
    if let Some(every) = cfg.every {
        return gradual(run, si, cfg, every).await;
    }
    let targets = cfg.targets(cfg.target_count(run.model.net.layer_dims().len()));
    let original = run.model.net.hidden();
    let mut rng = Rng::new(run.recipe.seed, 50 + si as u64);
    let mut report: Option<StageReport> = None;
    let mut rounds = Vec::new();
    for round in 1..=cfg.rounds {
        let now: Vec<f32> = targets.iter().map(|&s| cfg.schedule.at(s, round, cfg.rounds)).collect();
        match cfg.granularity {
            Granularity::Weight => {
                let taylor = match cfg.criterion {
                    Criterion::Taylor => Some(taylor_scores(run, cfg, round).await?),
                    _ => None,
                };
                let tensors = weight_prune_masks(&run.model, cfg, &now, taylor, &mut rng);
                run.model.masks = Some(Masks { tensors, hard: cfg.mode == MaskMode::Hard });
            }
            Granularity::Neuron | Granularity::Channel => prune_units(run, cfg, round, &now, &original, &mut rng).await?,
        }
        // Rewound weights are masked by the trainer.
        match cfg.rewind {
            Rewind::None => {}
            Rewind::Init => run.model.params = run.init.clone(),
            Rewind::Epoch(_) => run.model.params = run.early.clone().expect("the snapshot is taken in stage 0 (validated)"),
        }
        // Accuracy straight after pruning, before any fine-tuning (the trainer applies the masks).
        let ft = cfg.finetune.as_ref().unwrap_or(&run.recipe.train);
        let mut t = run.trainer(ft);
        let (_, before) = means(t.evaluate().await?);
        run.model.params = t.params().await?;
        let per_layer: Vec<f32> = run.model.weights().iter().map(|w| zero_fraction(w)).collect();
        let mut r = match &cfg.finetune {
            Some(ft) => train_with(run, t, si, ("prune", false), ft, None::<&mut Gradual>).await?,
            None => run.evaluated("prune", &mut t).await?,
        };
        rounds.push(PruneRound { round, target: now.clone(), sparsity: per_layer, accuracy_before_finetune: before, accuracy_after_finetune: r.test_accuracy });
        r.detail = Some(StageDetail::Pruning(pruning_report(&run.model, rounds.clone(), None)));
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
        let ticket = std::mem::replace(&mut run.model.params, NetParams::init(&run.model.net, run.recipe.seed ^ 0x5eed_c0de));
        let ft = cfg.finetune.as_ref().expect("control needs finetune (validated)");
        let control = train(run, si, "prune control", ft).await?;
        run.model.params = ticket;
        if let Some(p) = report.pruning_mut() {
            p.control_accuracy = Some(control.test_accuracy);
        }
    }
    Ok(report)
}

/// Removes (hard) or zeroes (soft) the lowest-scoring units of each hidden layer: neurons and
/// conv filters scored by their own weights (a column of W), or channels scored by the weights
/// that read them (rows of every reader; channel pruning). Layers tied by a residual add are
/// one group (mean score, the first layer's target). `now` are fractions of the stage's
/// starting widths `original`; after a hard round the layers are narrower, so each is
/// converted to a fraction of the current width.
async fn prune_units(run: &mut Run<'_>, cfg: &PruneConfig, round: usize, now: &[f32], original: &[usize], rng: &mut Rng) -> Result<()> {
    let taylor = match cfg.criterion {
        Criterion::Taylor => Some(taylor_scores(run, cfg, round).await?),
        _ => None,
    };
    let model = &run.model;
    let net = &model.net;
    let infos = net.tensors();
    let wt = net.weight_tensors();
    let nodes: Vec<usize> = wt.iter().map(|&j| infos[j].node).collect();
    let current = net.hidden();
    let hidden = current.len();
    let now: Vec<f32> = (0..now.len())
        .map(|l| {
            let width = if cfg.scope == PruneScope::Global { original.iter().sum::<usize>() } else { original[l] };
            let cur = if cfg.scope == PruneScope::Global { current.iter().sum::<usize>() } else { current[l] };
            let keep = (width as f64 * (1.0 - now[l] as f64)).round();
            (1.0 - keep / cur as f64).max(0.0) as f32
        })
        .collect();
    let score = |j: usize, units: prune::Units, rng: &mut Rng| {
        // Taylor scores come one per weight matrix, in weight_tensors() order.
        let t = taylor.as_ref().map(|t| &t[wt.iter().position(|&k| k == j).expect("a weight matrix")][..]);
        prune::unit_scores(cfg.criterion, &model.params.tensors[j], t, infos[j].rows, infos[j].cols, units, rng)
    };
    let mut groups = Vec::with_capacity(hidden);
    for &node in &nodes[..hidden] {
        groups.push(surgery::channel_group(net, node)?);
    }
    let mut scores: Vec<Vec<f32>> = Vec::with_capacity(hidden);
    for l in 0..hidden {
        scores.push(match cfg.granularity {
            Granularity::Channel => {
                let mut s = vec![0.0; current[l]];
                for &r in &groups[l].readers {
                    let j = wt[nodes.iter().position(|&n| n == r).expect("readers are weight layers")];
                    let cin = net.nodes[net.nodes[r].inputs[0]].shape.c;
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
            if model.masks.is_some() {
                return Err(Error::recipe("stages", "hard neuron pruning after a weight-pruning stage is not supported yet: put it first, or use \"mode\": \"soft\""));
            }
            if !model.transforms.is_empty() {
                return Err(Error::recipe("stages", "hard neuron pruning after a quantize stage is not supported: prune units first, then quantize"));
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
                let net = &run.model.net;
                let (shrunk, params) = surgery::remove_channels(net, &run.model.params, node, &keep)?;
                run.init = surgery::remove_channels(net, &run.init, node, &keep)?.1;
                run.early = match &run.early {
                    Some(e) => Some(surgery::remove_channels(net, e, node, &keep)?.1),
                    None => None,
                };
                run.model.params = params;
                run.model.net = shrunk;
            }
        }
        MaskMode::Soft => {
            let mut tensors: Vec<Option<Vec<f32>>> = vec![None; infos.len()];
            for (gi, m) in group_masks.iter().enumerate() {
                let group = &groups[lead[gi]];
                if cfg.granularity == Granularity::Channel {
                    // The readers' rows of the pruned channels.
                    for &r in &group.readers {
                        let j = infos.iter().position(|t| t.node == r && t.role == Role::Weight).expect("reader has W");
                        let cin = net.nodes[net.nodes[r].inputs[0]].shape.c;
                        tensors[j] = Some((0..infos[j].len()).map(|i| m[(i / infos[j].cols) % cin]).collect());
                    }
                    continue;
                }
                // The producers' columns and biases, and the gamma and beta of every batch
                // norm in the group (which would otherwise turn a zeroed channel into beta).
                for (j, info) in infos.iter().enumerate() {
                    let masked = group.nodes.contains(&info.node) && !matches!(info.role, Role::RunningMean | Role::RunningVar);
                    if masked {
                        tensors[j] = Some((0..info.len()).map(|i| m[i % info.cols]).collect());
                    }
                }
            }
            run.model.masks = Some(Masks { tensors, hard: false });
        }
    }
    Ok(())
}

/// Masks for single weights at sparsities `now` (per layer, or `now[0]` globally), scored by
/// `cfg.criterion` on the current weights (`taylor`: accumulated |w·g| per weight matrix).
fn weight_prune_masks(model: &ModelState, cfg: &PruneConfig, now: &[f32], taylor: Option<Vec<Vec<f32>>>, rng: &mut Rng) -> Vec<Option<Vec<f32>>> {
    let scores: Vec<Vec<f32>> = match taylor {
        Some(t) => t,
        None => model.weights().iter().map(|w| prune::scores(cfg.criterion, w, None, rng)).collect(),
    };
    let weight_masks = match cfg.scope {
        PruneScope::Layer => scores.iter().zip(now).map(|(s, &t)| prune::mask_by_sparsity(s, t)).collect(),
        PruneScope::Global => prune::global_masks(&scores, now[0]),
    };
    model.weight_masks(weight_masks)
}

/// A gradual pruning stage's plan and what it has done so far: at training steps 0, Δt, 2Δt, …
/// (`every` = Δt, `rounds` times) new masks reach the schedule's next sparsity, the last one the
/// target; the rest of the run trains under the final masks.
pub struct Gradual {
    cfg: PruneConfig,
    targets: Vec<f32>,
    every: usize,
    rng: Rng,
    rounds: Vec<PruneRound>,
}

/// Gradual pruning inside one training run (Zhu & Gupta 2017).
async fn gradual(run: &mut Run<'_>, si: usize, cfg: &PruneConfig, every: usize) -> Result<StageReport> {
    let ft = cfg.finetune.as_ref().expect("gradual pruning trains (validated)");
    let steps = run.data.train.n.div_ceil(ft.batch) * ft.epochs;
    if (cfg.rounds - 1) * every >= steps {
        return Err(Error::recipe(
            &format!("stages[{si}].prune.every"),
            format!("{} pruning steps {every} training steps apart need more than {} steps; the fine-tuning run has {steps} ({} epochs of {} batches)", cfg.rounds, (cfg.rounds - 1) * every, ft.epochs, steps / ft.epochs),
        ));
    }
    let targets = cfg.targets(cfg.target_count(run.model.net.layer_dims().len()));
    let mut plan = Gradual { cfg: cfg.clone(), targets, every, rng: Rng::new(run.recipe.seed, 50 + si as u64), rounds: Vec::new() };
    let trainer = run.trainer(ft);
    let mut report = train_with(run, trainer, si, ("prune", false), ft, Some(&mut plan)).await?;
    report.detail = Some(StageDetail::Pruning(pruning_report(&run.model, plan.rounds, None)));
    Ok(report)
}

impl StepHook for Gradual {
    /// One pruning step of the plan, on the live trainer: closes the previous step's accuracy,
    /// masks to the next sparsity, measures accuracy right after.
    async fn before_step(&mut self, run: &mut Run<'_>, trainer: &mut Trainer, t: usize) -> Result<()> {
        if t % self.every != 0 || self.rounds.len() >= self.cfg.rounds {
            return Ok(());
        }
        let k = self.rounds.len() + 1;
        if let Some(prev) = self.rounds.last_mut() {
            prev.accuracy_after_finetune = means(trainer.evaluate().await?).1;
        }
        run.model.params = trainer.params().await?;
        let now: Vec<f32> = self.targets.iter().map(|&s| self.cfg.schedule.at(s, k, self.cfg.rounds)).collect();
        let taylor = match self.cfg.criterion {
            Criterion::Taylor => {
                let order = run.data.train.epoch_order(run.recipe.seed, 10_000 + k);
                Some(trainer.taylor_scores(&order, self.cfg.finetune.as_ref().map_or(64, |f| f.batch), 50).await?)
            }
            _ => None,
        };
        let tensors = weight_prune_masks(&run.model, &self.cfg, &now, taylor, &mut self.rng);
        let hard = self.cfg.mode == MaskMode::Hard;
        trainer.set_masks(&tensors, hard);
        // The trainer multiplies by the masks; do the same here rather than read the weights back.
        for (t, m) in run.model.params.tensors.iter_mut().zip(&tensors) {
            if let Some(m) = m {
                crate::reference::ops::mask_apply_reference(t, m);
            }
        }
        run.model.masks = Some(Masks { tensors, hard });
        let before = means(trainer.evaluate().await?).1;
        let sparsity = run.model.weights().iter().map(|w| zero_fraction(w)).collect();
        self.rounds.push(PruneRound { round: k, target: now, sparsity, accuracy_before_finetune: before, accuracy_after_finetune: before });
        Ok(())
    }

    fn finished(&mut self, test_accuracy: f32) {
        if let Some(r) = self.rounds.last_mut() {
            r.accuracy_after_finetune = test_accuracy;
        }
    }
}

/// Accumulated |w·g| over up to 50 training batches (masks in force, no update).
async fn taylor_scores(run: &mut Run<'_>, cfg: &PruneConfig, round: usize) -> Result<Vec<Vec<f32>>> {
    let ft = cfg.finetune.as_ref().unwrap_or(&run.recipe.train);
    let order = run.data.train.epoch_order(run.recipe.seed, 10_000 + round);
    run.trainer(ft).taylor_scores(&order, ft.batch, 50).await
}

/// Sparsity, sizes and shape of `model`.
pub fn pruning_report(model: &ModelState, rounds: Vec<PruneRound>, greedy: Option<GreedyReport>) -> PruningReport {
    let net = &model.net;
    let infos = net.tensors();
    let wt = net.weight_tensors();
    let weights: usize = wt.iter().map(|&j| infos[j].len()).sum();
    let nonzero = |j: usize| model.params.tensors[j].iter().filter(|&&v| v != 0.0).count();
    let zeros: usize = weights - wt.iter().map(|&j| nonzero(j)).sum::<usize>();
    // A conv weight is used once per output position.
    let flops: usize = wt
        .iter()
        .map(|&j| {
            let s = net.nodes[infos[j].node].shape;
            2 * nonzero(j) * s.h * s.w
        })
        .sum();
    PruningReport {
        per_layer_sparsity: model.weights().iter().map(|w| zero_fraction(w)).collect(),
        per_layer_weights: wt.iter().map(|&j| infos[j].len()).collect(),
        weight_sparsity: zeros as f32 / weights.max(1) as f32,
        weights_left: weights - zeros,
        flops_per_sample_remaining: flops,
        bytes_dense: stored_bytes(model, Encoding::F32),
        bytes_bitmask: stored_bytes(model, Encoding::Bitmask),
        bytes_relative: stored_bytes(model, Encoding::Relative { bits: 5 }),
        rounds,
        hidden: net.hidden(),
        parameters: net.parameter_count(),
        greedy,
        control_accuracy: None,
    }
}

/// Bytes of the model with every weight matrix stored in `encoding` and the other tensors
/// (biases, batch-norm parameters and statistics) dense f32: lengths of real encodings.
fn stored_bytes(model: &ModelState, encoding: Encoding) -> usize {
    model
        .net
        .tensors()
        .iter()
        .zip(&model.params.tensors)
        .map(|(info, t)| if info.role == Role::Weight { encoding.encode(t, None, 1).map_or(0, |b| b.len()) } else { 4 * t.len() })
        .sum()
}
