//! The golden end-to-end check: a tiny MLP trained a few steps on the GPU and on the CPU reference
//! from the same initial weights and sample order must give the same loss, accuracy, test metrics
//! and every parameter (within f32 tolerance), for SGD+momentum and for Adam. Natively and in the browser.

mod common;
use common::{assert_close, fresh_rng};
use squeeze::data::{Dataset, Splits};
use squeeze::gpu::{GpuContext, GpuTrainer};
use squeeze::nn::{MlpParams, MlpSpec, OptimizerConfig, OptimizerKind};
use squeeze::compress::prune::mask_by_sparsity;
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
        let opt = OptimizerConfig { kind, lr: if kind == OptimizerKind::Adam { 0.01 } else { 0.1 }, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-4, l1: 1e-4 };
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

async fn masks_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("masks");
    let data = Splits::new("synthetic", synthetic(&mut rng, 64), synthetic(&mut rng, 16)).unwrap();
    let norm = data.train.normalization();
    let spec = MlpSpec { inputs: 63, hidden: vec![19], classes: 10 };
    let init = MlpParams::init(&spec, seed);
    let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.1, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-3, l1: 1e-3 };
    // Prune 80% of each weight matrix by magnitude; biases stay dense.
    let masks: Vec<Option<Vec<f32>>> = init
        .tensors()
        .iter()
        .enumerate()
        .map(|(j, t)| (j % 2 == 0).then(|| mask_by_sparsity(&t.iter().map(|v| v.abs()).collect::<Vec<_>>(), 0.8)))
        .collect();
    for hard in [true, false] {
        let mut gpu = GpuTrainer::new(&ctx, &spec, &init, opt.clone(), &data, norm, 16);
        let mut cpu = CpuTrainer::new(init.clone(), opt.clone(), data.clone(), norm, 16);
        gpu.set_masks(&masks, hard);
        cpu.set_masks(&masks, hard);
        for epoch in 0..5 {
            let order = data.train.epoch_order(seed, epoch);
            gpu.begin_epoch(&order);
            cpu.begin_epoch(&order);
            for (offset, valid) in data.train.batches(16) {
                gpu.train_step(offset, valid, 0.1);
                cpu.train_step(offset, valid, 0.1);
            }
        }
        let (gp, cp) = (gpu.params().await.unwrap(), cpu.params.clone());
        for (l, (a, b)) in gp.layers.iter().zip(&cp.layers).enumerate() {
            assert_close(&format!("hard={hard} W{l}"), a.w.as_slice().unwrap(), b.w.as_slice().unwrap(), 1e-3, 1e-5, seed);
            let mask = masks[2 * l].as_ref().unwrap();
            let pruned: Vec<f32> = a.w.iter().zip(mask).filter(|(_, &m)| m == 0.0).map(|(&w, _)| w).collect();
            if hard {
                // 20 momentum steps later, every pruned weight is still exactly zero.
                assert!(pruned.iter().all(|&w| w == 0.0), "hard mask leaked (seed {seed})");
            } else {
                // Soft: pruned weights were zeroed once and have since regrown from their gradients.
                let regrown = pruned.iter().filter(|&&w| w != 0.0).count();
                assert!(regrown > pruned.len() / 2, "soft mask: only {regrown} of {} regrew (seed {seed})", pruned.len());
            }
        }
    }
}
gpu_test!(hard_masks_hold_and_soft_masks_regrow, masks_case);

async fn taylor_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("taylor");
    let data = Splits::new("synthetic", synthetic(&mut rng, 70), synthetic(&mut rng, 10)).unwrap();
    let norm = data.train.normalization();
    let spec = MlpSpec { inputs: 63, hidden: vec![13], classes: 10 };
    let init = MlpParams::init(&spec, seed);
    let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.1, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
    let mut gpu = GpuTrainer::new(&ctx, &spec, &init, opt.clone(), &data, norm, 16);
    let mut cpu = CpuTrainer::new(init.clone(), opt, data.clone(), norm, 16);
    let order = data.train.epoch_order(seed, 0);
    // 5 batches of 16 over 70 samples: the last is partial (6 rows).
    let g = gpu.taylor_scores(&order, 16, 5).await.unwrap();
    let c = cpu.taylor_scores(&order, 16, 5);
    for (l, (a, b)) in g.iter().zip(&c).enumerate() {
        assert_close(&format!("taylor scores W{l}"), a, b, 1e-3, 1e-6, seed);
        assert!(b.iter().any(|&v| v > 0.0));
    }
    // Scoring changes no weight.
    assert_eq!(gpu.params().await.unwrap().max_abs_diff(&init), 0.0);
}
gpu_test!(gpu_taylor_scores_match_cpu_reference, taylor_case);
