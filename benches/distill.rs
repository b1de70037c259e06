//! Distillation step benchmark: a 784-800-800-10 student distilled from a LeNet-5 teacher on
//! synthetic 28x28 digits, three epochs, with the teacher's forward inside every step against its
//! logits cached once for the split (the default where nothing moves the images), beside the
//! student from labels alone; on the GPU (whatever adapter wgpu picks: lavapipe here) and the CPU
//! reference. `cargo bench --bench distill [-- gpu|cpu] [-- N]`. Figures go into the README.

use squeeze::data::{Dataset, Splits};
use squeeze::experiment::now_s;
use squeeze::experiment::trainer::Trainer;
use squeeze::gpu::{GpuContext, GpuTrainer};
use squeeze::nn::{DistillParams, Net, NetParams, OptimizerConfig, OptimizerKind, Shape, Teacher};
use squeeze::reference::net::CpuTrainer;

const EPOCHS: usize = 3;

/// Seconds to set the teacher (if any; cached or not), then each epoch's seconds (each ends with
/// a read-back of the metrics, so the GPU's work is done when the clock stops).
fn timed(t: &mut Trainer, teacher: Option<(&Teacher, DistillParams, bool)>, data: &Splits, orders: &[Vec<u32>], batch: usize) -> (f64, Vec<f64>) {
    let t0 = now_s();
    if let Some((teacher, p, cache)) = teacher {
        t.set_teacher(teacher, p, cache).unwrap();
        pollster::block_on(t.take_metrics()).unwrap();
    }
    let set = now_s() - t0;
    let epochs = orders
        .iter()
        .map(|order| {
            let t0 = now_s();
            t.begin_epoch(order);
            for (offset, valid) in data.train.batches(batch) {
                t.train_step(offset, valid, 0.01);
            }
            pollster::block_on(t.take_metrics()).unwrap();
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
    let ctx = want("gpu").then(|| pollster::block_on(GpuContext::new()).expect("adapter"));
    if let Some(ctx) = &ctx {
        println!("adapter: {} ({}, {})", ctx.adapter.name, ctx.adapter.backend, ctx.adapter.device_type);
    }
    let backends = [("gpu", ctx.is_some()), ("cpu", want("cpu"))];
    for (backend, _) in backends.iter().filter(|(_, on)| *on) {
        for (what, teach) in [("labels only", None), ("teacher in every step", Some(false)), ("teacher logits cached", Some(true))] {
            let mut t = match (*backend, &ctx) {
                ("gpu", Some(ctx)) => Trainer::Gpu(Box::new(GpuTrainer::new(ctx, &student, &init, opt.clone(), &data, norm, batch))),
                _ => Trainer::Cpu(Box::new(CpuTrainer::new(&student, init.clone(), opt.clone(), data.clone(), norm, batch))),
            };
            report(backend, what, timed(&mut t, teach.map(|cache| (&teacher, p, cache)), &data, &orders, batch));
        }
    }
}
