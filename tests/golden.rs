//! The golden end-to-end check: a tiny MLP trained a few steps on the GPU and on the CPU reference
//! from the same initial weights and sample order must give the same loss, accuracy, test metrics
//! and every parameter (within f32 tolerance), for SGD+momentum and for Adam. Natively and in the browser.

mod common;
use common::{assert_close, fresh_rng};
use squeeze::data::{Dataset, Splits};
use squeeze::gpu::{GpuContext, GpuTrainer};
use squeeze::nn::{MlpParams, MlpSpec, OptimizerConfig, OptimizerKind};
use squeeze::reference::mlp::CpuTrainer;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Random u8 images of 7x9 whose label is a function of a few pixels (so training makes progress).
fn synthetic(rng: &mut squeeze::rng::Rng, n: usize) -> Dataset {
    let (rows, cols) = (7, 9);
    let images: Vec<u8> = (0..n * rows * cols).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|i| ((images[i * 63] as usize + images[i * 63 + 31] as usize) * 10 / 512) as u8).collect();
    Dataset { images, labels, n, rows, cols }
}

async fn golden_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("golden");
    let data = Splits::new("synthetic", synthetic(&mut rng, 83), synthetic(&mut rng, 45)).unwrap();
    let norm = data.train.normalization();
    let spec = MlpSpec { inputs: 63, hidden: vec![17, 11], classes: 10 };
    let init = MlpParams::init(&spec, seed);
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let opt = OptimizerConfig { kind, lr: if kind == OptimizerKind::Adam { 0.01 } else { 0.1 }, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-4 };
        let batch = 16; // 83 = 5 x 16 + 3: the last batch is partial
        let mut gpu = GpuTrainer::new(&ctx, &spec, &init, opt.clone(), &data, norm, batch);
        let mut cpu = CpuTrainer::new(init.clone(), opt, data.clone(), norm, batch);
        for epoch in 0..2 {
            let order = data.train.epoch_order(seed, epoch);
            gpu.begin_epoch(&order);
            cpu.begin_epoch(&order);
            for (i, (offset, valid)) in data.train.batches(batch).enumerate() {
                let lr = 0.1 / (1 + i) as f32 * if kind == OptimizerKind::Adam { 0.1 } else { 1.0 };
                gpu.train_step(offset, valid, lr);
                cpu.train_step(offset, valid, lr);
            }
        }
        let what = format!("{kind:?}");
        let (g, c) = (gpu.take_metrics().await.unwrap(), cpu.take_metrics());
        assert_eq!(g[2], 166.0, "{what}: samples seen");
        assert_eq!(g[1], c[1], "{what}: correct count (seed {seed})");
        assert_close(&format!("{what} train loss sum"), &g[..1], &c[..1], 1e-4, 1e-4, seed);
        let (g, c) = (gpu.evaluate().await.unwrap(), cpu.evaluate());
        assert_eq!(g[2], 45.0, "{what}: test samples");
        assert_close(&format!("{what} test metrics"), &g, &c, 1e-4, 1e-4, seed);
        let (gp, cp) = (gpu.params().await.unwrap(), cpu.params.clone());
        for (l, (a, b)) in gp.layers.iter().zip(&cp.layers).enumerate() {
            assert_close(&format!("{what} W{l}"), a.w.as_slice().unwrap(), b.w.as_slice().unwrap(), 1e-3, 1e-5, seed);
            assert_close(&format!("{what} b{l}"), a.b.as_slice().unwrap(), b.b.as_slice().unwrap(), 1e-3, 1e-5, seed);
        }
        // Training moved the weights: a trainer that silently did nothing would fail here.
        assert!(gp.max_abs_diff(&init) > 1e-3, "{what}: weights did not change");
    }
}
gpu_test!(gpu_training_matches_cpu_reference, golden_case);
