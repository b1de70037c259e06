//! Divergence caught and explained (experiment::divergence): a loss that blows up far past its
//! start, or a model trained from scratch left at chance by an epoch with its loss no lower, stops
//! the run with the likely cause (the learning rate against the architecture's recipe), or is
//! kept as a warning when the recipe says `"divergence": "warn"`; a non-finite loss always stops.
//! The watch's rules on their own, then through a recipe on both backends.

mod common;
use common::{fresh_rng, synthetic_sized};
use squeeze::data::Splits;
use squeeze::error::Error;
use squeeze::experiment::divergence::Watch;
use squeeze::experiment::{run, Backend, Control, RunOptions};
use squeeze::gpu::GpuContext;
use squeeze::recipe::{OnDivergence, Recipe, TrainConfig};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

fn train(lr: f32, adam: bool) -> TrainConfig {
    let optimizer = if adam { "adam" } else { "sgd" };
    serde_json::from_str(&format!(r#"{{"epochs": 1, "lr": {lr}, "momentum": 0.9, "optimizer": "{optimizer}"}}"#)).unwrap()
}

fn test_split() -> squeeze::data::Dataset {
    // 40 images: 22 of class 3, so always answering 3 gets 55%.
    let labels: Vec<u8> = (0..40).map(|i| if i < 22 { 3 } else { (i % 3) as u8 }).collect();
    squeeze::data::Dataset { images: vec![0; 40 * 4], labels, n: 40, rows: 2, cols: 2 }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn blown_up_loss_is_divergence_with_the_cause() {
    let (cfg, test) = (train(0.05, false), test_split());
    let mut w = Watch::new("train", "lenet5", &cfg, OnDivergence::Stop, true, &test);
    // Rising 5x is training noise on a hard start; 20x past the start (and past 25) is not.
    for loss in [2.3, 1.9, 11.0] {
        w.progress(loss, (1, 10)).unwrap();
    }
    let Err(Error::Diverged(m)) = w.progress(47.0, (1, 40)) else { panic!("a loss 20x its start went unnoticed") };
    assert!(m.contains("rose from 2.300 to 4.700e1") && m.contains("epoch 1, step 40"), "{m}");
    assert!(m.contains("lr 0.05 is high for lenet5 with momentum 0.9; its recipe (recipes/lenet5.json) uses 0.01"), "{m}");
    // A start that is already large (a distillation head at a high temperature) is no blow-up.
    let mut w = Watch::new("distill", "mlp", &cfg, OnDivergence::Stop, true, &test);
    for loss in [400.0, 900.0, 3000.0] {
        w.progress(loss, (1, 10)).unwrap();
    }
    assert!(matches!(w.progress(1e7, (1, 20)), Err(Error::Diverged(_))), "a loss of 1e7 went unnoticed");
    // Warn: kept once per finding, the run goes on; a non-finite loss still stops.
    let mut w = Watch::new("train", "mlp", &cfg, OnDivergence::Warn, true, &test);
    w.progress(2.3, (1, 10)).unwrap();
    w.progress(500.0, (1, 20)).unwrap();
    assert_eq!(w.warnings.len(), 1);
    assert!(w.warnings[0].contains("the run diverged") && w.warnings[0].contains("try 0.0166"), "{:?}", w.warnings);
    assert!(matches!(w.progress(f32::NAN, (1, 30)), Err(Error::Diverged(m)) if m.contains("NaN")));
    // Adam has its own advice.
    let adam = train(0.05, true);
    let w = Watch::new("train", "mlp", &adam, OnDivergence::Stop, true, &test);
    assert!(w.advice().contains("lr 0.05 is high for Adam; try 0.001"), "{}", w.advice());
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn an_epoch_at_chance_is_divergence_only_when_training_from_scratch() {
    let (cfg, test) = (train(0.05, false), test_split());
    let stuck = |fresh: bool, (end_loss, accuracy, steps): (f32, f32, usize)| {
        let mut w = Watch::new("train", "mlp", &cfg, OnDivergence::Stop, fresh, &test);
        w.progress(2.30, (1, 25)).unwrap();
        w.progress(2.31, (1, 50)).unwrap();
        w.epoch_end((1, steps), end_loss, accuracy)
    };
    let Err(Error::Diverged(m)) = stuck(true, (2.31, 0.56, 60)) else { panic!("a model at chance went unnoticed") };
    assert!(m.contains("test accuracy is 56.0%, what answering the most common class gets (55.0%)") && m.contains("not learning"), "{m}");
    assert!(stuck(true, (2.31, 0.60, 60)).is_ok(), "60% is above chance (55%)");
    assert!(stuck(true, (1.9, 0.56, 60)).is_ok(), "the loss fell: it is learning, slowly");
    assert!(stuck(false, (2.31, 0.56, 60)).is_ok(), "fine-tuning a heavily pruned model may sit at chance");
    assert!(stuck(true, (2.31, 0.56, 20)).is_ok(), "20 steps are too few to judge");
}

/// The first report is one noisy draw: a model that learns nothing, on a split whose loss wanders
/// 10% batch to batch, may report its epoch 8% under it (these losses are a real run's, lr 1e-9,
/// that once slipped through as "learning"). A loss that falls steadily by as much is learning.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn a_fall_within_the_loss_noise_is_not_learning() {
    use squeeze::experiment::divergence::report_noise;
    let (cfg, test) = (train(0.05, false), test_split());
    let epoch = |reports: &[f32], mean: f32| {
        let mut w = Watch::new("train", "mlp", &cfg, OnDivergence::Stop, true, &test);
        reports.iter().enumerate().for_each(|(i, &l)| w.progress(l, (1, 10 * (i + 1))).unwrap());
        w.epoch_end((1, 60), mean, 0.55)
    };
    let stuck = [3.383, 3.005, 3.072, 3.186, 2.974, 3.025];
    assert!(report_noise(&stuck) > 0.15, "{}", report_noise(&stuck));
    assert!(matches!(epoch(&stuck, 3.108), Err(Error::Diverged(m)) if m.contains("not learning")), "noise taken for learning");
    let falling = [2.30, 2.25, 2.20, 2.15, 2.10, 2.05];
    assert!(report_noise(&falling) < 1e-3, "a steady fall is no noise: {}", report_noise(&falling));
    assert!(epoch(&falling, 2.175).is_ok(), "a steady 5.4% fall is learning");
    // Past three noise widths it is learning too, however noisy.
    assert!(epoch(&stuck, 2.70).is_ok(), "a fall of 0.68 against noise 0.18 is learning");
    assert_eq!(report_noise(&[2.3, 1.0]), 0.0, "two reports say nothing of the noise");
}

/// Through a recipe: a learning rate too small to move anything leaves the model where it
/// started, on a test split where always answering one class is right 100% of the time (so
/// its accuracy is at chance whatever it predicts): the run stops with the finding, or, with
/// `"divergence": "warn"`, finishes and keeps it on the stage's report. Every training sample is
/// the same random image and label, so the loss cannot wander batch to batch: whether noise
/// looks like learning is the test above, and here it would make the outcome a draw (it did,
/// for 1 seed in 10 before the noise was measured).
async fn recipe_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("divergence recipe");
    let mut data = Splits::new("synthetic", synthetic_sized(&mut rng, 960, 6, 5), synthetic_sized(&mut rng, 50, 6, 5)).unwrap();
    let (first, label) = (data.train.images[..30].to_vec(), data.train.labels[0]);
    data.train.images.chunks_mut(30).for_each(|im| im.copy_from_slice(&first));
    data.train.labels.iter_mut().for_each(|l| *l = label);
    data.test.labels.iter_mut().for_each(|l| *l = 7);
    let text = |on: &str| format!(r#"{{"dataset": "mnist", "model": {{"arch": "mlp", "hidden": [8]}}, "train": {{"epochs": 2, "batch": 16, "lr": 1e-9}}, "divergence": "{on}"}}"#);
    for backend in [Backend::Gpu(ctx.clone()), Backend::Cpu] {
        let what = if matches!(backend, Backend::Cpu) { "cpu" } else { "gpu" };
        let opts = RunOptions { progress_every: 10, ..Default::default() };
        let stop = run(&Recipe::from_json(&text("stop")).unwrap(), &data, &backend, &opts, &mut |_| Control::Continue).await;
        assert!(matches!(&stop, Err(Error::Diverged(m)) if m.contains("after epoch 1 of stage `train`") && m.contains("not learning")), "{what}: {:?} (seed {seed})", stop.err());
        let warned = run(&Recipe::from_json(&text("warn")).unwrap(), &data, &backend, &opts, &mut |_| Control::Continue).await.unwrap();
        let w = &warned.report.stages[0].warnings;
        assert_eq!(warned.report.stages[0].epochs.len(), 2, "{what}: warn went on");
        assert!(w.len() == 2 && w[0].contains("after epoch 1") && w[1].contains("after epoch 2"), "{what}: {w:?}");
    }
}
gpu_test!(a_recipe_stops_or_warns_on_divergence, recipe_case);
