//! Shared by the GPU test files: the GPU context, the `gpu_test!` macro that runs one async test
//! body natively (`cargo test`, Vulkan/lavapipe) and in the browser (`wasm-pack test`, WebGPU),
//! fresh random inputs, and a tolerance check that prints the worst element.
#![allow(dead_code)]

use squeeze::gpu::GpuContext;
use squeeze::rng::Rng;

/// The shared context. Natively it is built once per test binary; in the browser once per test.
/// No adapter fails the test: a GPU test must never pass by not running.
#[cfg(not(target_arch = "wasm32"))]
pub async fn ctx() -> GpuContext {
    use std::sync::OnceLock;
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| pollster::block_on(GpuContext::new()).unwrap_or_else(|e| panic!("GPU context for tests: {e}")))
        .clone()
}

#[cfg(target_arch = "wasm32")]
pub async fn ctx() -> GpuContext {
    GpuContext::new().await.expect("GPU tests need WebGPU in the browser")
}

/// `gpu_test!(name, body)` where `body: async fn(GpuContext)`: one body, both targets.
#[macro_export]
macro_rules! gpu_test {
    ($name:ident, $body:path) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn $name() {
            pollster::block_on(async { $body(common::ctx().await).await })
        }
        #[cfg(target_arch = "wasm32")]
        #[wasm_bindgen_test::wasm_bindgen_test]
        async fn $name() {
            $body(common::ctx().await).await
        }
    };
}

/// A seed that differs run to run (fresh inputs), printed so a failure can be replayed with
/// SQUEEZE_TEST_SEED.
pub fn fresh_rng(test: &str) -> (Rng, u64) {
    #[cfg(not(target_arch = "wasm32"))]
    let seed = std::env::var("SQUEEZE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    #[cfg(target_arch = "wasm32")]
    let seed = (js_sys::Math::random() * 1e15) as u64;
    let _ = test;
    (Rng::new(seed, 77), seed)
}

pub fn random_vec(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise; reports the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32, seed: u64) {
    assert_eq!(got.len(), want.len(), "{what}: length differs (seed {seed})");
    let mut worst = (0usize, 0.0f32);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if !(excess <= worst.1) || g.is_nan() != w.is_nan() {
            worst = (i, if excess.is_nan() { f32::INFINITY } else { excess });
        }
    }
    let (i, e) = worst;
    assert!(
        e <= 0.0,
        "{what}: element {i} is {} but the reference says {} (|diff| {:e}, rtol {rtol}, atol {atol}, seed {seed})",
        got[i],
        want[i],
        (got[i] - want[i]).abs()
    );
}

/// Parameters with non-trivial batch-norm state (as after training), seeded.
pub fn trained_like(net: &squeeze::nn::Net, rng: &mut Rng, seed: u64) -> squeeze::nn::NetParams {
    use squeeze::nn::Role;
    let mut p = squeeze::nn::NetParams::init(net, seed);
    for (t, info) in p.tensors.iter_mut().zip(net.tensors()) {
        let (lo, hi) = match info.role {
            Role::Gamma | Role::RunningVar => (0.5, 2.0),
            Role::Beta | Role::RunningMean | Role::Bias => (-0.5, 0.5),
            Role::Weight => continue,
        };
        *t = random_vec(rng, t.len(), lo, hi);
    }
    p
}


/// Random u8 images of 7x9 whose label is a function of a few pixels (so training makes progress).
pub fn synthetic(rng: &mut Rng, n: usize) -> squeeze::data::Dataset {
    synthetic_sized(rng, n, 7, 9)
}

pub fn synthetic_sized(rng: &mut Rng, n: usize, rows: usize, cols: usize) -> squeeze::data::Dataset {
    let p = rows * cols;
    let images: Vec<u8> = (0..n * p).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|i| ((images[i * p] as usize + images[i * p + p / 2] as usize) * 10 / 512) as u8).collect();
    squeeze::data::Dataset { images, labels, n, rows, cols }
}

/// `epochs` epochs of batches of `batch` at `lr`, each epoch in the same sample order, on the GPU
/// trainer and each CPU trainer.
pub fn in_lockstep(gpu: &mut squeeze::gpu::GpuTrainer, cpus: &mut [&mut squeeze::reference::net::CpuTrainer], data: &squeeze::data::Splits, seed: u64, (epochs, batch, lr): (usize, usize, f32)) {
    for epoch in 0..epochs {
        let order = data.train.epoch_order(seed, epoch);
        gpu.begin_epoch(&order);
        cpus.iter_mut().for_each(|c| c.begin_epoch(&order));
        for (offset, valid) in data.train.batches(batch) {
            gpu.train_step(offset, valid, lr);
            cpus.iter_mut().for_each(|c| c.train_step(offset, valid, lr));
        }
    }
}

/// Runs `recipe` expecting it to fail: the error's message and how many events came first
/// (0: refused before any work). `at_first_progress` runs once, at the first progress event.
pub async fn run_error(
    recipe: &squeeze::recipe::Recipe,
    data: &squeeze::data::Splits,
    backend: &squeeze::experiment::Backend,
    opts: &squeeze::experiment::RunOptions,
    mut at_first_progress: impl FnMut(),
) -> (String, usize) {
    use squeeze::experiment::{Control, Event};
    let (mut events, mut progressed) = (0, false);
    let out = squeeze::experiment::run(recipe, data, backend, opts, &mut |e| {
        events += 1;
        if matches!(e, Event::Progress { .. }) && !progressed {
            progressed = true;
            at_first_progress();
        }
        Control::Continue
    })
    .await;
    (out.err().expect("the run fails").to_string(), events)
}
