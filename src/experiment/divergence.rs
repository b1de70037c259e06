//! What a training loop watches for, and how it explains what it found: a loss that is not
//! finite or has blown far past where it started, or (when a model trains from scratch) a whole
//! epoch that left the model at chance with its loss no lower than at the start (by more than the
//! batch-to-batch noise of the loss itself). The explanation
//! names the likely cause (the learning rate, against the one the architecture's recipe reached
//! its README figure with) and what to try. The recipe's `divergence` chooses whether it stops
//! the run (default) or is kept as a warning on the stage's report.

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::nn::OptimizerKind;
use crate::recipe::{OnDivergence, TrainConfig};

/// The learning rate each architecture's recipe in recipes/ trained with to the README's figures
/// (read from the recipe itself, the file the page's defaults come from too), and that recipe.
pub fn recipe_lr(arch: &str) -> (f32, &'static str) {
    let (text, file) = match arch {
        "lenet5" => (include_str!("../../recipes/lenet5.json"), "recipes/lenet5.json"),
        "vgg-mini" => (include_str!("../../recipes/vgg-mini-fashion.json"), "recipes/vgg-mini-fashion.json"),
        "resnet-mini" => (include_str!("../../recipes/resnet-mini-fashion.json"), "recipes/resnet-mini-fashion.json"),
        _ => (include_str!("../../recipes/lenet-300-100.json"), "recipes/lenet-300-100.json"),
    };
    // Shipped recipes are valid (tests/recipe.rs); advice must not panic all the same.
    (crate::recipe::Recipe::from_json(text).map_or(0.05, |r| r.train.lr), file)
}

/// The standard deviation of one progress report's loss about its trend, estimated from the
/// second differences of successive reports (median |r[i+1] - 2 r[i] + r[i-1]| / 1.652, its value
/// for Gaussian noise), so that a loss falling steadily is not taken for noise. 0 with fewer than
/// three reports.
pub fn report_noise(losses: &[f32]) -> f32 {
    let mut d: Vec<f32> = losses.windows(3).map(|w| (w[2] - 2.0 * w[1] + w[0]).abs()).filter(|d| d.is_finite()).collect();
    if d.is_empty() {
        return 0.0;
    }
    d.sort_by(f32::total_cmp);
    let mid = d.len() / 2;
    let median = if d.len() % 2 == 1 { d[mid] } else { 0.5 * (d[mid - 1] + d[mid]) };
    median / 1.652
}

/// One stage's watch over its training loss and accuracy.
pub struct Watch<'a> {
    stage: &'a str,
    arch: &'a str,
    cfg: &'a TrainConfig,
    on: OnDivergence,
    /// From scratch (the first training, a distilled student): chance accuracy after an epoch is
    /// a failure. Fine-tuning a heavily pruned model may sit at chance for a reason.
    fresh: bool,
    /// Accuracy of always answering the test split's most common class.
    chance: f32,
    /// The loss of the first progress report, and how many there have been.
    first: Option<f32>,
    reports: usize,
    /// The latest reported losses (up to 256), for how much they wander by chance.
    losses: Vec<f32>,
    pub warnings: Vec<String>,
}

impl<'a> Watch<'a> {
    pub fn new(stage: &'a str, arch: &'a str, cfg: &'a TrainConfig, on: OnDivergence, fresh: bool, test: &Dataset) -> Watch<'a> {
        let mut counts = [0usize; 256];
        test.labels.iter().for_each(|&l| counts[l as usize] += 1);
        let chance = counts.iter().max().copied().unwrap_or(0) as f32 / test.n.max(1) as f32;
        Watch { stage, arch, cfg, on, fresh, chance, first: None, reports: 0, losses: Vec::new(), warnings: Vec::new() }
    }

    /// After a progress report of mean training loss `loss` at (epoch, step), both from 1.
    pub fn progress(&mut self, loss: f32, (epoch, step): (usize, usize)) -> Result<()> {
        let first = *self.first.get_or_insert(loss);
        self.reports += 1;
        if self.losses.len() == 256 {
            self.losses.remove(0);
        }
        self.losses.push(loss);
        let at = format!("in stage `{}`, epoch {epoch}, step {step}", self.stage);
        if !loss.is_finite() {
            // Nothing can go on from non-finite weights, whatever the recipe says.
            return Err(Error::Diverged(format!("the training loss became {loss} {at}. {}", self.advice())));
        }
        if first.is_finite() && loss > (20.0 * first).max(25.0) || loss > 1e6 {
            return self.found(format!("the training loss rose from {first:.3} to {loss:.3e} {at}: the run diverged. {}", self.advice()));
        }
        Ok(())
    }

    /// After epoch `epoch` (from 1) of `steps` steps: its mean training loss and the test
    /// accuracy. Judged only where the first report came early (a later one since) and the epoch
    /// was long enough to learn something (50 steps: a tiny split may not). The loss has fallen
    /// only where it fell by 5% and by more than three times the noise of one report: the first
    /// report is a single draw, and a model that learns nothing still reports losses that wander
    /// by 10% batch to batch on a small or uneven split.
    pub fn epoch_end(&mut self, (epoch, steps): (usize, usize), train_loss: f32, test_accuracy: f32) -> Result<()> {
        let Some(first) = self.first.filter(|_| self.reports >= 2 && steps >= 50) else { return Ok(()) };
        if self.fresh && test_accuracy <= self.chance + 0.02 && train_loss >= first - (0.05 * first).max(3.0 * report_noise(&self.losses)) {
            return self.found(format!(
                "after epoch {epoch} of stage `{}` the test accuracy is {:.1}%, what answering the most common class gets ({:.1}%), and the training loss ({train_loss:.3}) is no lower than where it started ({first:.3}): the model is not learning. {}",
                self.stage,
                100.0 * test_accuracy,
                100.0 * self.chance,
                self.advice()
            ));
        }
        Ok(())
    }

    fn found(&mut self, message: String) -> Result<()> {
        match self.on {
            OnDivergence::Stop => Err(Error::Diverged(message)),
            OnDivergence::Warn => {
                if !self.warnings.contains(&message) && self.warnings.len() < 8 {
                    self.warnings.push(message);
                }
                Ok(())
            }
        }
    }

    /// The likely cause and what to try.
    pub fn advice(&self) -> String {
        let (lr, cfg) = (self.cfg.lr, self.cfg);
        if cfg.optimizer == OptimizerKind::Adam {
            return if lr > 0.003 { format!("Likely cause: lr {lr} is high for Adam; try 0.001.") } else { format!("Try a lower learning rate than {lr} (e.g. {}).", lr / 3.0) };
        }
        let (good, recipe) = recipe_lr(self.arch);
        let momentum = cfg.momentum.filter(|&m| m > 0.0).map(|m| format!(" with momentum {m}")).unwrap_or_default();
        if lr > good * 1.5 {
            format!("Likely cause: lr {lr} is high for {}{momentum}; its recipe ({recipe}) uses {good}.", self.arch)
        } else {
            format!("Likely cause: the learning rate; try {} (now {lr}{momentum}), or a smaller batch than {}.", lr / 3.0, cfg.batch)
        }
    }
}
