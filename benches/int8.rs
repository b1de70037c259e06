//! Integer versus f32 inference benchmark: LeNet-300-100 and `lenet5` with 8-bit per-channel
//! weights and 8-bit activations, the 10,000 MNIST test images (www/public/data or $SQUEEZE_DATA)
//! at batch 256, on the CPU backend and on the adapter wgpu picks (lavapipe here; a real GPU where
//! there is one), every integer product the adapter has. `cargo bench --bench int8 [-- cpu|gpu]`.
//! Prints µs per image (median of three passes after a warm-up) and the ratio; figures go into
//! the README with the date. The weights are random (speed does not depend on them).

use squeeze::compress::int8::compile;
use squeeze::compress::quant::{min_max, Scheme, SchemeKind};
use squeeze::data::{Splits, CLASSES};
use squeeze::experiment::now_s;
use squeeze::experiment::quantize::quantized_activations;
use squeeze::gpu::int8::GpuIntModel;
use squeeze::gpu::{GpuContext, GpuTrainer};
use squeeze::nn::{Net, NetParams, OptimizerConfig, OptimizerKind, Shape, Transforms};
use squeeze::reference::int8::CpuIntModel;
use squeeze::reference::net::{net_forward_with, CpuTrainer};

const BATCH: usize = 256;

/// µs per image of `pass` over `n` images: the median of three after a warm-up.
fn time_us(n: usize, mut pass: impl FnMut()) -> f64 {
    pass();
    let mut t: Vec<f64> = (0..3)
        .map(|_| {
            let t0 = now_s();
            pass();
            (now_s() - t0) * 1e6 / n as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[1]
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| a == "cpu" || a == "gpu").collect();
    let want = |b: &str| which.is_empty() || which.iter().any(|w| w == b);
    let dir = squeeze::data::files::default_data_dir();
    let data: Splits = squeeze::data::files::load_named(&dir, "mnist").expect("MNIST (scripts/setup fetches it)");
    let norm = data.train.normalization();
    let test = &data.test;
    let gpu = if want("gpu") { Some(pollster::block_on(GpuContext::new()).expect("adapter")) } else { None };
    if let Some(ctx) = &gpu {
        println!("adapter: {} ({}, {})", ctx.adapter.name, ctx.adapter.backend, ctx.adapter.device_type);
    }
    let input = Shape::new(test.rows, test.cols, 1);
    for net in [Net::mlp(input, &[300, 100], CLASSES), Net::lenet5(input, CLASSES)] {
        // Random weights, 8-bit symmetric per channel; activations calibrated on 1,000 test images.
        let mut params = NetParams::init(&net, 1);
        let infos = net.tensors();
        let mut transforms = Transforms { weights: vec![None; infos.len()], activations: vec![None; net.nodes.len()], ..Transforms::default() };
        for &j in &net.weight_tensors() {
            let q = Scheme { kind: SchemeKind::Symmetric, bits: 8, per_channel: true }.fit(&params.tensors[j], infos[j].cols);
            params.tensors[j] = q.fake(&params.tensors[j], infos[j].cols);
            transforms.weights[j] = Some(q);
        }
        let calib = test.take(1000);
        let (scale, shift) = norm.scale_shift();
        let x: Vec<f32> = calib.images.iter().map(|&p| p as f32 * scale + shift).collect();
        let tape = net_forward_with(&net, &mut params.clone(), x, calib.n, calib.n, false, &[]);
        for n in quantized_activations(&net) {
            transforms.activations[n] = Some(Scheme { kind: SchemeKind::Asymmetric, bits: 8, per_channel: false }.fit_ranges(&[min_max(&tape.acts[n])]));
        }
        let model = compile(&net, &params, &transforms.weights, &transforms.activations, norm).expect("an integer model");
        let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.01, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
        if want("cpu") {
            let mut t = CpuTrainer::new(&net, params.clone(), opt.clone(), data.clone(), norm, BATCH);
            t.set_eval_rows(BATCH);
            let f32_us = time_us(test.n, || {
                t.evaluate();
            });
            let cpu = CpuIntModel::new(&model);
            let int8_us = time_us(test.n, || test.images.chunks(BATCH * test.pixels()).for_each(|c| drop(cpu.forward(c, c.len() / test.pixels()))));
            println!("{:<8} cpu     batch {BATCH}: f32 {f32_us:8.2} µs/image, int8 {int8_us:8.2} µs/image: int8 {:.2}x", net.arch, f32_us / int8_us);
        }
        if let Some(ctx) = &gpu {
            let mut t = GpuTrainer::new(ctx, &net, &params, opt.clone(), &data, norm, BATCH);
            t.set_eval_rows(BATCH);
            let f32_us = time_us(test.n, || {
                pollster::block_on(t.evaluate()).expect("evaluate");
            });
            let g = pollster::block_on(GpuIntModel::new(ctx, &model, test, BATCH)).expect("int8 model");
            for v in g.variants() {
                let int8_us = time_us(test.n, || drop(pollster::block_on(g.totals(v, usize::MAX)).expect("totals")));
                println!("{:<8} gpu     batch {BATCH}: f32 {f32_us:8.2} µs/image, int8 {int8_us:8.2} µs/image ({v:?}): int8 {:.2}x", net.arch, f32_us / int8_us);
            }
        }
    }
}
