//! Kernel benchmark: times each matmul shape of a LeNet-300-100 training step (batch 64) and a
//! whole training step, on whatever adapter wgpu picks (lavapipe here, a real GPU where there is
//! one). `cargo bench --bench kernels`. Prints GFLOP/s; figures go into the README with the date.

use squeeze::data::{Dataset, Splits};
use squeeze::experiment::now_s;
use squeeze::gpu::kernels::{run, MatmulParams};
use squeeze::gpu::{GpuContext, GpuTrainer};
use squeeze::nn::{MlpParams, MlpSpec, OptimizerConfig, OptimizerKind};

fn sync(ctx: &GpuContext) {
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
}

fn main() {
    let ctx = pollster::block_on(GpuContext::new()).expect("adapter");
    println!("adapter: {} ({}, {})", ctx.adapter.name, ctx.adapter.backend, ctx.adapter.device_type);
    let b = 64u32;
    // (label, M, N, K, trans_a, trans_b)
    let shapes = [
        ("fc1 fwd  X·W", b, 300, 784, false, false),
        ("fc1 dW   Xᵀ·dY", 784, 300, b, true, false),
        ("fc2 fwd", b, 100, 300, false, false),
        ("fc2 dW", 300, 100, b, true, false),
        ("fc2 dX   dY·Wᵀ", b, 300, 100, false, true),
        ("fc3 fwd", b, 10, 100, false, false),
        ("square 512", 512, 512, 512, false, false),
    ];
    for (label, m, n, k, ta, tb) in shapes {
        let a = ctx.storage(&vec![0.5f32; (m * k) as usize], "a");
        let bb = ctx.storage(&vec![0.25f32; (k * n) as usize], "b");
        let c = ctx.storage_zeroed((m * n) as u64 * 4, "c");
        let l = ctx.matmul(MatmulParams::new(m, n, k, ta, tb, false), &a, &bb, &c);
        run(&ctx, [&l]);
        sync(&ctx);
        let reps = 50;
        let t0 = now_s();
        for _ in 0..reps {
            run(&ctx, [&l]);
        }
        sync(&ctx);
        let dt = (now_s() - t0) / reps as f64;
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        println!("{label:<16} M={m:<4} N={n:<4} K={k:<4} {:>8.3} ms {:>7.2} GFLOP/s", dt * 1e3, flops / dt / 1e9);
    }
    // A whole training step of LeNet-300-100 on synthetic data.
    let n = 4096;
    let ds = Dataset { images: (0..n * 784).map(|i| (i % 251) as u8).collect(), labels: (0..n).map(|i| (i % 10) as u8).collect(), n, rows: 28, cols: 28 };
    let data = Splits::new("synthetic", ds.clone(), ds.take(1000)).unwrap();
    let spec = MlpSpec { inputs: 784, hidden: vec![300, 100], classes: 10 };
    let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.01, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
    let mut t = GpuTrainer::new(&ctx, &spec, &MlpParams::init(&spec, 1), opt, &data, data.train.normalization(), 64);
    t.begin_epoch(&(0..n as u32).collect::<Vec<_>>());
    t.train_step(0, 64, 0.01);
    sync(&ctx);
    let steps = 60;
    let t0 = now_s();
    for s in 0..steps {
        t.train_step((s * 64) % (n - 64), 64, 0.01);
    }
    sync(&ctx);
    let dt = (now_s() - t0) / steps as f64;
    println!("train step (batch 64) {:>8.3} ms  {:>8.0} samples/s", dt * 1e3, 64.0 / dt);
}
