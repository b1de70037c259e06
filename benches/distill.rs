//! Distillation step benchmark: a 784-800-800-10 student distilled from a LeNet-5 teacher on
//! synthetic 28x28 digits, three epochs, with the teacher's forward inside every step against its
//! logits cached once for the split (the default where nothing moves the images), beside the
//! student from labels alone; on the GPU (whatever adapter wgpu picks: lavapipe here) and the CPU
//! reference. `cargo bench --bench distill [-- gpu|cpu] [-- N]`. Figures go into the README.

use squeeze::data::{Dataset, Splits};
use squeeze::experiment::now_s;
use squeeze::gpu::{GpuContext, GpuTrainer};
use squeeze::nn::{DistillParams, Net, NetParams, OptimizerConfig, OptimizerKind, Shape, Teacher};
use squeeze::reference::net::CpuTrainer;

const EPOCHS: usize = 3;

fn sync(ctx: &GpuContext) {
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
}

/// Seconds to set the teacher, then each epoch's seconds.
fn timed<T>(t: &mut T, mut setup: impl FnMut(&mut T), mut epoch: impl FnMut(&mut T, usize)) -> (f64, Vec<f64>) {
    let t0 = now_s();
    setup(t);
    let set = now_s() - t0;
    let epochs = (0..EPOCHS)
        .map(|e| {
            let t0 = now_s();
            epoch(t, e);
            now_s() - t0
        })
        .collect();
    (set, epochs)
}

fn report(backend: &str, what: &str, (set, epochs): (f64, Vec<f64>)) {
    let total = set + epochs.iter().sum::<f64>();
    let each: Vec<String> = epochs.iter().map(|s| format!("{s:.2}")).collect();
    println!("{backend:<4} {what:<22} set {set:>6.2} s | epochs {} s | total {total:>7.2} s", each.join(" "));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(6000);
    let ds = Dataset { images: (0..n * 784).map(|i| ((i * 7919) % 251) as u8).collect(), labels: (0..n).map(|i| (i % 10) as u8).collect(), n, rows: 28, cols: 28 };
    let data = Splits::new("synthetic", ds.clone(), ds.take(500)).unwrap();
    let norm = data.train.normalization();
    let input = Shape::new(28, 28, 1);
    let tnet = Net::lenet5(input, 10);
    let teacher = Teacher { params: NetParams::init(&tnet, 2), net: tnet, activations: vec![], norm: None };
    let student = Net::mlp(input, &[800, 800], 10);
    let init = NetParams::init(&student, 1);
    let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.01, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
    let p = DistillParams::soft_targets(4.0, 0.9);
    let batch = 64;
    let orders: Vec<Vec<u32>> = (0..EPOCHS).map(|e| data.train.epoch_order(1, e)).collect();
    let want = |b: &str| args.iter().all(|a| a.parse::<usize>().is_ok()) || args.iter().any(|a| a == b);
    println!("{n} training images, batch {batch}, {EPOCHS} epochs; teacher lenet5 ({} parameters), student 784-800-800-10", teacher.net.parameter_count());
    if want("gpu") {
        let ctx = pollster::block_on(GpuContext::new()).expect("adapter");
        println!("adapter: {} ({}, {})", ctx.adapter.name, ctx.adapter.backend, ctx.adapter.device_type);
        for (what, teach, cache) in [("labels only", false, false), ("teacher in every step", true, false), ("teacher logits cached", true, true)] {
            let mut t = GpuTrainer::new(&ctx, &student, &init, opt.clone(), &data, norm, batch);
            t.prefer_teacher_cache(cache);
            let times = timed(
                &mut t,
                |t| {
                    if teach {
                        t.set_teacher(&teacher, p).unwrap();
                    }
                    sync(&ctx);
                },
                |t, e| {
                    t.begin_epoch(&orders[e]);
                    for (offset, valid) in data.train.batches(batch) {
                        t.train_step(offset, valid, 0.01);
                    }
                    sync(&ctx);
                },
            );
            report("gpu", what, times);
        }
    }
    if want("cpu") {
        for (what, teach, cache) in [("labels only", false, false), ("teacher in every step", true, false), ("teacher logits cached", true, true)] {
            let mut t = CpuTrainer::new(&student, init.clone(), opt.clone(), data.clone(), norm, batch);
            t.prefer_teacher_cache(cache);
            let times = timed(
                &mut t,
                |t| {
                    if teach {
                        t.set_teacher(&teacher, p).unwrap();
                    }
                },
                |t, e| {
                    t.begin_epoch(&orders[e]);
                    for (offset, valid) in data.train.batches(batch) {
                        t.train_step(offset, valid, 0.01);
                    }
                },
            );
            report("cpu", what, times);
        }
    }
}
