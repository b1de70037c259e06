//! The train stage (the first training, and fine-tuning stages), and the training loop every
//! stage that trains shares: epochs of steps on the current model with its compression in force,
//! progress events, divergence caught, test accuracy after each epoch, inference timed at the end.
//! A stage that must act during training (gradual pruning) passes a `StepHook`.

use super::divergence::Watch;
use super::trainer::{means, Trainer};
use super::{now_s, EpochReport, Event, Run, StageReport};
use crate::error::Result;
use crate::recipe::TrainConfig;

/// The train stage: `cfg.epochs` epochs from the current parameters, evaluating after each.
/// Stage 0 is "train"; later ones are fine-tuning.
pub async fn run(run: &mut Run<'_>, si: usize, cfg: &TrainConfig) -> Result<StageReport> {
    let trainer = run.trainer(cfg);
    let stage = if si == 0 { ("train", true) } else { ("fine-tune", false) };
    train_with(run, trainer, si, stage, cfg, None::<&mut NoHook>).await
}

/// Fine-tunes a fresh trainer on the current model; the model afterwards is the trained one.
pub async fn train(run: &mut Run<'_>, si: usize, name: &str, cfg: &TrainConfig) -> Result<StageReport> {
    let trainer = run.trainer(cfg);
    train_with(run, trainer, si, (name, false), cfg, None::<&mut NoHook>).await
}

/// Something a stage does between training steps (see prune::Gradual).
#[allow(async_fn_in_trait)]
pub trait StepHook {
    /// Called before training step `t` (counted over the whole run of `cfg.epochs` epochs).
    async fn before_step(&mut self, run: &mut Run<'_>, trainer: &mut Trainer, t: usize) -> Result<()>;
    /// The test accuracy the training ended at.
    fn finished(&mut self, test_accuracy: f32);
}

/// No hook.
pub struct NoHook;

impl StepHook for NoHook {
    async fn before_step(&mut self, _: &mut Run<'_>, _: &mut Trainer, _: usize) -> Result<()> {
        Ok(())
    }
    fn finished(&mut self, _: f32) {}
}

/// Trains `cfg.epochs` epochs with `trainer`; `hook` runs before every step. Leaves the trained
/// parameters in `run.model`. `fresh`: the model trains from scratch (the first training, a
/// distilled student), so an epoch that leaves it at chance is divergence too (divergence::Watch).
pub async fn train_with<H: StepHook>(run: &mut Run<'_>, mut trainer: Trainer, si: usize, (name, fresh): (&str, bool), cfg: &TrainConfig, mut hook: Option<&mut H>) -> Result<StageReport> {
    let arch = run.model.net.arch.clone();
    let mut watch = Watch::new(name, &arch, cfg, run.recipe.divergence, fresh, &run.data.test);
    let n = run.data.train.n;
    let steps = n.div_ceil(cfg.batch);
    let total = steps * cfg.epochs;
    let mut epochs = Vec::new();
    let mut stage_train_s = 0.0;
    for epoch in 0..cfg.epochs {
        let order = run.data.train.epoch_order(run.recipe.seed, run.epoch_counter);
        run.epoch_counter += 1;
        trainer.begin_epoch(&order);
        let (t0, paused0) = (now_s(), run.paused_s);
        let mut epoch_acc = [0.0f32; 4];
        for step in 0..steps {
            let (offset, valid) = (step * cfg.batch, cfg.batch.min(n - step * cfg.batch));
            let t = epoch * steps + step;
            if let Some(h) = hook.as_deref_mut() {
                h.before_step(run, &mut trainer, t).await?;
            }
            trainer.train_step(offset, valid, cfg.lr_at(t, total));
            if (step + 1) % run.opts.progress_every.max(1) == 0 || step + 1 == steps {
                let acc = trainer.take_metrics().await?;
                for k in 0..3 {
                    epoch_acc[k] += acc[k];
                }
                let (loss, accuracy) = means(acc);
                watch.progress(loss, (epoch + 1, step + 1))?;
                let elapsed_s = run.elapsed_s();
                run.emit(&Event::Progress { stage: si, epoch, epochs: cfg.epochs, step: step + 1, steps, train_loss: loss, train_accuracy: accuracy, elapsed_s }).await?;
            }
        }
        let train_s = now_s() - t0 - (run.paused_s - paused0);
        stage_train_s += train_s;
        let (test_loss, test_accuracy) = means(trainer.evaluate().await?);
        let (train_loss, train_accuracy) = means(epoch_acc);
        watch.epoch_end((epoch + 1, steps), train_loss, test_accuracy)?;
        let report = EpochReport { epoch: epoch + 1, train_loss, train_accuracy, test_loss, test_accuracy, train_s, samples_per_s: n as f64 / train_s.max(1e-9) };
        run.emit(&Event::Epoch { stage: si, report: report.clone() }).await?;
        epochs.push(report);
        if si == 0 && Some(epoch + 1) == run.recipe.rewind_epoch() {
            run.early = Some(trainer.params().await?);
        }
    }
    let last = epochs.last().expect("epochs >= 1 is validated");
    if let Some(h) = hook {
        h.finished(last.test_accuracy);
    }
    let inference_us_per_image = run.time_inference(&mut trainer).await?;
    run.model.params = trainer.params().await?;
    if run.model.transforms.learned {
        // LSQ: the quantizers keep the steps they learned.
        run.model.transforms = trainer.transforms().await?;
        run.model.transforms.learned = false;
    }
    Ok(StageReport {
        name: name.to_string(),
        test_accuracy: last.test_accuracy,
        test_loss: last.test_loss,
        train_s: stage_train_s,
        samples_per_s: (n * cfg.epochs) as f64 / stage_train_s.max(1e-9),
        inference_us_per_image,
        epochs,
        detail: None,
        warnings: watch.warnings,
    })
}
