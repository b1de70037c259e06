//! Integer inference: shaders/int8.wgsl (both products: dot4I8Packed where the adapter has it,
//! the manual unpack everywhere) bit-exact against its CPU twins (reference::int8) on fresh
//! random inputs of awkward shapes, including the int8 extremes and requantization shifts on
//! both sides of 32; whole compiled models (an MLP, a small conv net with padding, max pools and
//! ReLU) give the same totals on the GPU, the CPU twins and the CPU backend's executor, and logits
//! close to the fake-quantized float model's. Natively and in the browser.

mod common;
use common::{fresh_rng, random_vec};
use squeeze::compress::int8::{compile, fixed_point, IntLayer};
use squeeze::compress::quant::{min_max, QuantFn, Scheme, SchemeKind};
use squeeze::data::{Dataset, Normalization};
use squeeze::experiment::quantize::quantized_activations;
use squeeze::gpu::int8::GpuIntModel;
use squeeze::gpu::kernels::{run, GemmParams, Im2colParams};
use squeeze::gpu::GpuContext;
use squeeze::nn::{Net, NetParams, Op, Shape};
use squeeze::reference::int8::*;
use squeeze::reference::net::net_forward_with;
use squeeze::reference::ops::Geometry;
use squeeze::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Random int8 values with the extremes (−128, 127) certainly present.
fn int8s(rng: &mut Rng, n: usize) -> Vec<i8> {
    let mut v: Vec<i8> = (0..n).map(|_| (rng.below(256) as i32 - 128) as i8).collect();
    v[0] = -128;
    v[n / 2] = 127;
    v
}

async fn gemm_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("int8 gemm");
    let k = ctx.int8_kernels().await.unwrap();
    let (m, n, kp) = (77, 45, 28);
    let cols = pack_i8(&int8s(&mut rng, m * kp));
    let weights = int8s(&mut rng, n * kp);
    let bias: Vec<i32> = (0..n).map(|_| rng.below(1 << 21) as i32 - (1 << 20)).collect();
    // Multipliers from 1e-7 (shift 54) to 3 (shift 29).
    let scales = [1e-7, 2.5e-5, 0.003, 0.3, 0.7, 1.5, 3.0];
    let (mult, shift): (Vec<u32>, Vec<u32>) = (0..n).map(|c| fixed_point(scales[c % scales.len()] * (1.0 + c as f64 / 100.0)).unwrap()).unzip();
    let l0 = IntLayer { input: Shape::new(1, 1, kp), k: 1, stride: 1, pad: 0, pad_value: 0, outputs: n, kdim: kp, kp, weights: weights.clone(), bias: bias.clone(), mult: mult.clone(), shift: shift.clone(), zero_out: -3, lo: -100, hi: 120, last: false };
    let (gc, gw, gb, gm, gs) = (ctx.storage(&cols, "cols"), ctx.storage(&pack_weights(&l0), "w"), ctx.storage(&bias, "bias"), ctx.storage(&mult, "mult"), ctx.storage(&shift, "shift"));
    let mut variants = vec![false];
    if k.gemm_dot4.is_some() {
        variants.push(true);
    }
    for last in [false, true] {
        let l = IntLayer { last, ..l0.clone() };
        let want = int8_gemm_reference(&cols, &pack_weights(&l), m, &l);
        if !last {
            assert!(want.contains(&-100) && want.contains(&120) && want.iter().any(|v| (-99..119).contains(v) && *v != -3), "the case must clamp both ways and requantize in between (seed {seed})");
        }
        for &dot4 in &variants {
            let out = ctx.storage_zeroed((4 * m * n) as u64, "out");
            let p = GemmParams { rows: m as u32, outputs: n as u32, k4: (kp / 4) as u32, last: last as u32, zero_out: l.zero_out, lo: l.lo, hi: l.hi, out_offset: 0 };
            run(&ctx, [&ctx.int8_gemm(&k, dot4, p, &gc, &gw, &gb, &gm, &gs, &out)]);
            let got: Vec<i32> = ctx.read(&out).await.unwrap();
            if let Some(i) = (0..m * n).find(|&i| got[i] != want[i]) {
                panic!("int8_gemm (dot4 {dot4}, last {last}): element {i} is {} on the GPU, {} on the CPU (seed {seed})", got[i], want[i]);
            }
        }
    }
}
gpu_test!(int8_gemm_is_bit_exact, gemm_case);

async fn im2col_pool_input_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("int8 im2col");
    let k = ctx.int8_kernels().await.unwrap();
    // im2col: 3 samples of 7x6x5, 3x3 windows at stride 2 with padding 1; K = 45 -> kp 48.
    let g = Geometry::new(3, 7, 6, 5, 3, 2, 1);
    let x: Vec<i32> = int8s(&mut rng, 3 * 7 * 6 * 5).iter().map(|&v| v as i32).collect();
    let kp = g.patch().div_ceil(4) * 4;
    let want = int8_im2col_reference(&x, &g, -77, kp);
    let (gx, gcols) = (ctx.storage(&x, "x"), ctx.storage_zeroed((4 * want.len()) as u64, "cols"));
    run(&ctx, [&ctx.int8_im2col(&k, &g, -77, (kp / 4) as u32, &gx, &gcols)]);
    let got: Vec<u32> = ctx.read(&gcols).await.unwrap();
    assert_eq!(&got[..want.len()], &want[..], "int8_im2col (seed {seed})");
    // Max pool 3 at stride 2 over 7x6 (a ragged edge).
    let pg = Geometry::new(3, 7, 6, 5, 3, 2, 0);
    let want = int8_maxpool_reference(&x, &pg);
    let gy = ctx.storage_zeroed((4 * want.len()) as u64, "y");
    run(&ctx, [&ctx.int8_maxpool(&k, &pg, &gx, &gy)]);
    let got: Vec<i32> = ctx.read(&gy).await.unwrap();
    assert_eq!(&got[..want.len()], &want[..], "int8_maxpool (seed {seed})");
    // The input: 5 images of 3x3 from image 2 on.
    let pixels: Vec<u8> = (0..9 * 9).map(|_| rng.below(256) as u8).collect();
    let mut p = Im2colParams::new(&Geometry::new(5, 1, 1, 9, 1, 1, 0), 0, 0);
    p.first = 2 * 9;
    let (gi, gxin) = (ctx.storage_u8(&pixels, "images"), ctx.storage_zeroed(4 * 45, "xin"));
    run(&ctx, [&ctx.int8_input(&k, p, &gi, &gxin)]);
    let got: Vec<i32> = ctx.read(&gxin).await.unwrap();
    assert_eq!(got, int8_input_reference(&pixels[18..63]), "int8_input (seed {seed})");
}
gpu_test!(int8_im2col_maxpool_input_are_bit_exact, im2col_pool_input_case);

/// A net with random parameters, symmetric per-channel 8-bit weights (one layer ternary) and
/// asymmetric 8-bit activations calibrated on the images themselves.
fn quantized(net: &Net, rng: &mut Rng, images: &Dataset, norm: Normalization) -> (NetParams, Vec<Option<QuantFn>>, Vec<Option<QuantFn>>) {
    let mut params = NetParams::init(net, rng.next_u32() as u64);
    let infos = net.tensors();
    let mut weights = vec![None; infos.len()];
    for (l, &j) in net.weight_tensors().iter().enumerate() {
        let kind = if l == 1 { SchemeKind::Ternary } else { SchemeKind::Symmetric };
        let q = Scheme { kind, bits: 8, per_channel: true }.fit(&params.tensors[j], infos[j].cols);
        params.tensors[j] = q.fake(&params.tensors[j], infos[j].cols);
        params.tensors[j + 1] = random_vec(rng, infos[j].cols, -0.2, 0.2);
        weights[j] = Some(q);
    }
    let x = float_input(images, norm);
    let tape = net_forward_with(net, &mut params.clone(), x, images.n, images.n, false, &[]);
    let mut acts = vec![None; net.nodes.len()];
    for n in quantized_activations(net) {
        acts[n] = Some(Scheme { kind: SchemeKind::Asymmetric, bits: 8, per_channel: false }.fit_ranges(&[min_max(&tape.acts[n])]));
    }
    (params, weights, acts)
}

fn float_input(images: &Dataset, norm: Normalization) -> Vec<f32> {
    let (scale, shift) = norm.scale_shift();
    images.images.iter().map(|&p| p as f32 * scale + shift).collect()
}

async fn model_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("int8 models");
    let norm = Normalization { mean: 0.13, std: 0.31 };
    let input = Shape::new(11, 9, 1);
    let mlp = Net::mlp(input, &[13, 7], 10);
    let mut cnn = Net::new("small-cnn", input, 10);
    cnn.then(Op::Conv { outputs: 5, k: 3, stride: 1, pad: 0 }, false);
    cnn.then(Op::MaxPool { k: 2, stride: 2 }, false);
    cnn.then(Op::Conv { outputs: 6, k: 3, stride: 1, pad: 1 }, true);
    cnn.then(Op::Dense { outputs: 7 }, true);
    cnn.then(Op::Dense { outputs: 10 }, false);
    let n = 37;
    // Smooth images (a ramp plus noise), so activations are not all at the extremes.
    let images: Vec<u8> = (0..n * 99).map(|i| ((i % 99) as f32 * 2.3 + rng.uniform(0.0, 30.0)).min(255.0) as u8).collect();
    let data = Dataset { images, labels: vec![0; n], n, rows: 11, cols: 9 };
    for net in [mlp, cnn] {
        let (params, weights, acts) = quantized(&net, &mut rng, &data, norm);
        let model = compile(&net, &params, &weights, &acts, norm).unwrap_or_else(|e| panic!("{}: {e}", net.arch));
        let want = int8_forward_reference(&model, &data.images, n);
        assert_eq!(CpuIntModel::new(&model).forward(&data.images, n), want, "{}: the CPU executor differs from the twins (seed {seed})", net.arch);
        // A batch that does not divide the images: the last pass is ragged.
        let gpu = GpuIntModel::new(&ctx, &model, &data, 16).await.unwrap();
        for v in gpu.variants() {
            assert_eq!(gpu.totals(v, usize::MAX).await.unwrap(), want, "{}: GPU {v:?} totals differ from the CPU's (seed {seed})", net.arch);
            // The first images only (inference timing): a prefix ending mid-batch.
            let first = 21;
            assert_eq!(gpu.totals(v, first).await.unwrap(), want[..first * model.classes], "{}: GPU {v:?} totals of the first {first} images (seed {seed})", net.arch);
        }
        // The integers compute what the fake-quantized float model does, up to rounding.
        let logits = model.logits(&want);
        let float = net_forward_with(&net, &mut params.clone(), float_input(&data, norm), n, n, false, &acts).acts.pop().unwrap();
        let top = float.iter().fold(0f32, |m, v| m.max(v.abs()));
        // A rounding flip in a hidden activation moves the logits downstream of it by one step of
        // that activation times their weights; a wrong scale, zero point or bias moves them all.
        // Over 300 seeds: the worst logit was off by 4.7% of the largest |logit|, and at most 3.2% of
        // logits by more than 3% (seeds 1001-1300, 1096 the tail; seed 1795573062325873172).
        let errors: Vec<f32> = logits.iter().zip(&float).map(|(a, b)| (a - b).abs()).collect();
        let worst = errors.iter().fold(0f32, |m, &e| m.max(e));
        let off = errors.iter().filter(|&&e| e > 0.03 * top).count();
        assert!(worst <= 0.1 * top, "{}: integer logits differ from the fake-quantized model's by {worst} (largest |logit| {top}, seed {seed})", net.arch);
        assert!(off * 20 <= errors.len(), "{}: {off} of {} integer logits differ from the fake-quantized model's by more than 3% of the largest |logit| {top} (seed {seed})", net.arch, errors.len());
        let spread = float.iter().fold(0f32, |m, v| m.max(*v)) - float.iter().fold(0f32, |m, v| m.min(*v));
        assert!(spread > 0.1 * top, "{}: the logits must vary for the comparison to mean anything (seed {seed})", net.arch);

        // What has no integer form is refused with the reason.
        let mut float_acts = acts.clone();
        float_acts[quantized_activations(&net)[0]] = None;
        let e = compile(&net, &params, &weights, &float_acts, norm).unwrap_err().to_string();
        assert!(e.contains("not quantized") || e.contains("no 8-bit activation quantizer"), "{e}");
        let mut levels = weights.clone();
        let j = net.weight_tensors()[0];
        levels[j] = Some(QuantFn::Levels { levels: vec![-0.1, 0.0, 0.1] });
        assert!(compile(&net, &params, &levels, &acts, norm).unwrap_err().to_string().contains("not uniform"));
    }
}
gpu_test!(int8_models_match_the_cpu_bit_for_bit, model_case);
