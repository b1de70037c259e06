//! shaders/quant.wgsl against its CPU twins (reference::ops, i.e. compress::quant::QuantFn) for
//! every scheme, per tensor and per channel, on fresh random tensors of awkward shapes and on the
//! degenerate ones (all equal, all zero, one huge outlier, negative only, pruned zeros): fake
//! quantization of a weight copy, in-place activation quantization with its straight-through mask,
//! and the clipped gradient. Natively and in the browser.

mod common;
use common::{assert_close, fresh_rng, random_vec};
use squeeze::compress::quant::{QuantFn, Scheme, SchemeKind};
use squeeze::gpu::kernels::{run, QuantParams};
use squeeze::gpu::GpuContext;
use squeeze::reference::ops::{fake_quant_act_reference, fake_quant_reference, ste_clip_reference};
use squeeze::rng::Rng;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Whether GPU and CPU may differ at element `i`: the value sits on a rounding boundary, where
/// f32 contraction (an fma on the GPU) may round the other way; f16 conversion may round either
/// way between two halves.
fn on_boundary(q: &QuantFn, w: f32, i: usize, cols: usize) -> bool {
    match q {
        QuantFn::Affine { channels, .. } => {
            let [inv, _, zero] = channels[if channels.len() > 1 { i % cols } else { 0 }];
            let x = w * inv + zero + 0.5;
            (x - x.round()).abs() <= 1e-4 * x.abs().max(1.0)
        }
        QuantFn::Levels { levels } => levels.windows(2).any(|p| (w - (p[0] + p[1]) * 0.5).abs() <= 1e-6 * w.abs().max(1e-30)),
        QuantFn::F16 | QuantFn::Dynamic { .. } => true,
    }
}

fn assert_quantized(what: &str, q: &QuantFn, w: &[f32], got: &[f32], want: &[f32], cols: usize, seed: u64) {
    for (i, (&g, &c)) in got.iter().zip(want).enumerate() {
        if g == c {
            continue;
        }
        // Off by one level at most, and only on a boundary (f16: one half-precision step).
        let close = match q {
            QuantFn::F16 => (g - c).abs() <= c.abs().max(6.1e-5) * 2f32.powi(-10) * 1.01,
            _ => on_boundary(q, w[i], i, cols),
        };
        assert!(close, "{what}: element {i} (w = {w:e}) is {g} on the GPU, {c} on the CPU (seed {seed})", w = w[i]);
    }
}

/// The tensors every scheme is tried on: [rows, cols] = [37, 13] (prime, prime).
fn tensors(rng: &mut Rng) -> Vec<(&'static str, Vec<f32>)> {
    let n = 37 * 13;
    let mut pruned = random_vec(rng, n, -0.3, 0.3);
    pruned.iter_mut().enumerate().for_each(|(i, v)| if i % 3 == 0 { *v = 0.0 });
    let mut outlier = random_vec(rng, n, -0.05, 0.05);
    outlier[101] = 250.0;
    vec![
        ("random", random_vec(rng, n, -1.7, 0.9)),
        ("pruned", pruned),
        ("all equal", vec![0.625; n]),
        ("all zero", vec![0.0; n]),
        ("one huge outlier", outlier),
        ("negative only", random_vec(rng, n, -4.0, -0.01)),
    ]
}

fn schemes() -> Vec<Scheme> {
    let mut out = Vec::new();
    for (kind, bits) in [
        (SchemeKind::Asymmetric, 8),
        (SchemeKind::Asymmetric, 3),
        (SchemeKind::Symmetric, 4),
        (SchemeKind::Symmetric, 2),
        (SchemeKind::FixedPoint, 8),
        (SchemeKind::FixedPoint, 16),
        (SchemeKind::Binary, 1),
        (SchemeKind::Ternary, 2),
        (SchemeKind::PowerOfTwo, 5),
        (SchemeKind::F16, 16),
        (SchemeKind::Kmeans, 3),
    ] {
        for per_channel in [false, true] {
            out.push(Scheme { kind, bits, per_channel });
        }
    }
    out
}

async fn fake_quant_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("fake quant");
    let cols = 13;
    for (name, w) in tensors(&mut rng) {
        for s in schemes() {
            let q = s.fit(&w, cols);
            let what = format!("{name}, {:?} {} bits, per channel {}", s.kind, s.bits, s.per_channel);
            let (p, table) = QuantParams::of(&q, w.len(), cols);
            let (gt, gw, gq) = (ctx.storage(&table, "table"), ctx.storage(&w, "w"), ctx.storage_zeroed(4 * w.len() as u64, "wq"));
            // Activations: the same values in place, and the keep mask; the gradient of weights
            // twice as wide as the range the quantizer was fitted to (some clip).
            let wide: Vec<f32> = w.iter().map(|v| v * 2.0).collect();
            let grad = random_vec(&mut rng, w.len(), -1.0, 1.0);
            let (gy, gkeep, gwide, ggrad) = (ctx.storage(&w, "y"), ctx.storage_zeroed(4 * w.len() as u64, "keep"), ctx.storage(&wide, "wide"), ctx.storage(&grad, "grad"));
            run(&ctx, [&ctx.fake_quant(p, &gt, &gw, &gq), &ctx.fake_quant_act(p, &gt, &gy, &gkeep), &ctx.ste_clip(p, &gt, &gwide, &ggrad)]);

            let want = fake_quant_reference(&q, &w, cols);
            let got: Vec<f32> = ctx.read(&gq).await.unwrap();
            assert_quantized(&format!("fake_quant {what}"), &q, &w, &got, &want, cols, seed);
            // Zeros stay zero; a quantizer of b bits yields at most 2^b values per channel.
            assert!(w.iter().zip(&got).all(|(a, b)| *a != 0.0 || *b == 0.0), "{what}: a zero moved (seed {seed})");

            let mut want_y = w.clone();
            let want_keep = fake_quant_act_reference(&q, &mut want_y, cols);
            let got_y: Vec<f32> = ctx.read(&gy).await.unwrap();
            assert_quantized(&format!("fake_quant_act {what}"), &q, &w, &got_y, &want_y, cols, seed);
            let got_keep: Vec<f32> = ctx.read(&gkeep).await.unwrap();
            assert_eq!(&got_keep[..w.len()], &want_keep[..], "fake_quant_act keep {what} (seed {seed})");

            let mut want_grad = grad.clone();
            ste_clip_reference(&q, &wide, &mut want_grad, cols);
            let got_grad: Vec<f32> = ctx.read(&ggrad).await.unwrap();
            assert_eq!(&got_grad[..w.len()], &want_grad[..], "ste_clip {what} (seed {seed})");
            if name == "random" && !matches!(q, QuantFn::F16) {
                assert!(want_grad.iter().zip(&grad).any(|(a, b)| *a == 0.0 && *b != 0.0), "{what}: nothing was clipped, the case tests nothing");
            }
        }
    }
}
gpu_test!(fake_quant_kernels_match_reference, fake_quant_case);

/// Shared weights (Deep Compression's centroid fine-tuning): a k-means-clustered tensor with pruned
/// zeros, moved by a pretend optimizer step, then tied again by shared_update on the GPU and its
/// CPU twin, in sum and mean mode. Clusters both over and under the kernel's 64 lanes; a cluster
/// left empty. GPU = CPU; every member at its new centroid; the centroid moved by the members'
/// summed (mean) update; zeros back at zero.
async fn shared_update_case(ctx: GpuContext) {
    use squeeze::compress::quant::kmeans;
    use squeeze::nn::Sharing;
    use squeeze::reference::ops::shared_update_reference;
    let (mut rng, seed) = fresh_rng("shared update");
    let n = 37 * 29;
    let mut w = random_vec(&mut rng, n, -1.3, 0.8);
    w.iter_mut().enumerate().for_each(|(i, v)| if i % 5 == 2 { *v = 0.0 });
    let mut levels = kmeans(&w, 6);
    levels.push(5.0); // a centroid no weight is near: an empty cluster
    for mean in [false, true] {
        let s = Sharing::new(&levels, &w, mean);
        assert!(s.offsets.windows(2).any(|o| o[1] - o[0] > 64) && s.offsets.windows(2).any(|o| o[1] - o[0] < 64), "cluster sizes must straddle the 64 lanes");
        let start = s.values(n);
        let moved: Vec<f32> = start.iter().map(|v| v + rng.uniform(-0.01, 0.01)).collect();
        let (gw, gc, go, gm) = (ctx.storage(&moved, "w"), ctx.storage(&s.centroids, "centroids"), ctx.storage(&s.offsets, "offsets"), ctx.storage(&s.members, "members"));
        run(&ctx, [&ctx.shared_update(s.centroids.len() as u32, mean, &gw, &gc, &go, &gm)]);
        let (mut want, mut want_c) = (moved.clone(), s.centroids.clone());
        shared_update_reference(&mut want, &mut want_c, &s.offsets, &s.members, mean);
        let got: Vec<f32> = ctx.read(&gw).await.unwrap();
        let got_c: Vec<f32> = ctx.read(&gc).await.unwrap();
        assert_close(&format!("shared_update weights (mean {mean})"), &got[..n], &want, 1e-6, 1e-7, seed);
        assert_close(&format!("shared_update centroids (mean {mean})"), &got_c[..levels.len()], &want_c, 1e-6, 1e-7, seed);
        for (k, &c) in want_c.iter().enumerate() {
            let ms = &s.members[s.offsets[k] as usize..s.offsets[k + 1] as usize];
            let update: f64 = ms.iter().map(|&m| (moved[m as usize] - levels[k]) as f64).sum();
            let expect = levels[k] as f64 + if mean { update / (ms.len().max(1) as f64) } else { update };
            assert!((c as f64 - expect).abs() <= 1e-5, "cluster {k} ({} members, mean {mean}): centroid {c}, expected {expect} (seed {seed})", ms.len());
            assert!(ms.iter().all(|&m| want[m as usize] == c), "cluster {k}: a member is not at its centroid (seed {seed})");
        }
        assert!(w.iter().zip(&want).all(|(a, b)| *a != 0.0 || *b == 0.0), "a pruned weight moved (seed {seed})");
    }
}
gpu_test!(shared_update_matches_reference, shared_update_case);

/// Learned step size (LSQ): lsq_backward, fake_quant_act_raw and lsq_sync on the GPU against
/// their twins, and the step gradient against finite differences of LSQ's own definition, the
/// quantizer as the paper's code writes it, clip then round with the rounding residual detached:
/// v(s) = s·(c + r − z), c = clamp(x/s + z, qmin, qmax), r = round(c₀) − c₀ held at the step s₀
/// (what autograd differentiates). Values sit at least 0.1 step from every rounding and clipping
/// boundary so a small change of the step moves no code and crosses no clip; some clip below,
/// some above, some are exact zeros. Per channel and
/// per tensor, symmetric and asymmetric, [29, 7] (prime).
async fn lsq_case(ctx: GpuContext) {
    use squeeze::reference::ops::{fake_quant_act_raw_reference, lsq_backward_reference, lsq_sync_reference};
    let (mut rng, seed) = fresh_rng("lsq");
    let (rows, cols) = (29, 7);
    let n = rows * cols;
    for (kind, bits, per_channel) in [(SchemeKind::Symmetric, 4, true), (SchemeKind::Asymmetric, 3, false), (SchemeKind::Symmetric, 8, false), (SchemeKind::Asymmetric, 5, true)] {
        let what = format!("{kind:?} {bits} bits, per channel {per_channel}");
        let fit = Scheme { kind, bits, per_channel }.fit(&random_vec(&mut rng, n, -1.0, 0.7), cols);
        let QuantFn::Affine { qmin, qmax, channels } = &fit else { panic!("{what}: not affine") };
        // Exact reciprocals, as lsq_sync leaves them.
        let channels: Vec<[f32; 3]> = channels.iter().map(|c| [1.0 / c[1], c[1], c[2]]).collect();
        let q = QuantFn::Affine { qmin: *qmin, qmax: *qmax, channels: channels.clone() };
        let x: Vec<f32> = (0..n)
            .map(|i| {
                if i % 11 == 5 {
                    return 0.0;
                }
                let [_, s, z] = channels[q.channel(i, cols)];
                let k = match i % 13 {
                    3 => *qmax as f32 + 2.0,
                    8 => *qmin as f32 - 2.0,
                    _ => (rng.uniform(*qmin as f32 - 3.0, *qmax as f32 + 4.0)).floor(),
                };
                let off = rng.uniform(0.1, 0.4);
                (k + if rng.uniform(0.0, 1.0) < 0.5 { -off } else { off } - z) * s
            })
            .collect();
        let d = random_vec(&mut rng, n, -1.0, 1.0);
        let scale = q.lsq_grad_scale(if per_channel { rows } else { n });
        let (mut p, table) = QuantParams::of(&q, n, cols);
        p.grad_scale = scale;
        let (gt, gx, gd, gg) = (ctx.storage(&table, "table"), ctx.storage(&x, "x"), ctx.storage(&d, "d"), ctx.storage_zeroed(4 * table.len() as u64, "gtable"));
        let (gy, graw) = (ctx.storage(&x, "y"), ctx.storage_zeroed(4 * n as u64, "raw"));
        run(&ctx, [&ctx.lsq_backward(p, &gt, &gx, &gd, &gg), &ctx.fake_quant_act_raw(p, &gt, &gy, &graw)]);

        let mut want_d = d.clone();
        let want_g = lsq_backward_reference(&q, &x, &mut want_d, cols, scale);
        let got_g: Vec<f32> = ctx.read(&gg).await.unwrap();
        assert_close(&format!("lsq_backward step gradient, {what}"), &got_g[..table.len()], &want_g, 1e-4, 1e-3 * scale, seed);
        let got_d: Vec<f32> = ctx.read(&gd).await.unwrap();
        assert_eq!(&got_d[..n], &want_d[..], "lsq_backward clipped gradient, {what} (seed {seed})");
        assert!(want_d.iter().zip(&d).any(|(a, b)| *a == 0.0 && *b != 0.0), "{what}: nothing clipped, the case tests nothing");
        let mut want_y = x.clone();
        let want_raw = fake_quant_act_raw_reference(&q, &mut want_y, cols);
        let (got_y, got_raw): (Vec<f32>, Vec<f32>) = (ctx.read(&gy).await.unwrap(), ctx.read(&graw).await.unwrap());
        assert_eq!(&got_raw[..n], &want_raw[..], "fake_quant_act_raw raw values, {what} (seed {seed})");
        assert_eq!(&got_y[..n], &want_y[..], "fake_quant_act_raw output, {what} (seed {seed})");

        // Finite differences of the detached-rounding quantizer, per channel, in f64.
        let chans = channels.len();
        for c in 0..chans {
            let f = |s: f64| -> f64 {
                (0..n)
                    .filter(|&i| q.channel(i, cols) == c && x[i] != 0.0)
                    .map(|i| {
                        let [_, s0, z] = channels[c];
                        let (x, s0, z) = (x[i] as f64, s0 as f64, z as f64);
                        let clip = |s: f64| (x / s + z).clamp(*qmin as f64, *qmax as f64);
                        let c0 = clip(s0);
                        let residual = (c0 + 0.5).floor() - c0;
                        let v = s * (clip(s) + residual - z);
                        d[i] as f64 * v
                    })
                    .sum()
            };
            let s0 = channels[c][1] as f64;
            let h = s0 * 1e-5;
            let fd = scale as f64 * (f(s0 + h) - f(s0 - h)) / (2.0 * h);
            for (who, g) in [("CPU", want_g[3 * c + 1]), ("GPU", got_g[3 * c + 1])] {
                assert!((g as f64 - fd).abs() <= 1e-3 * fd.abs().max(1e-2 * scale as f64), "{what}, channel {c}: {who} step gradient {g}, finite differences {fd} (seed {seed})");
            }
            assert_eq!([want_g[3 * c], want_g[3 * c + 2]], [0.0, 0.0], "{what}: only the step has a gradient");
        }

        // lsq_sync after a pretend optimizer step (one step pushed below zero: kept positive).
        let mut moved: Vec<f32> = table.iter().enumerate().map(|(i, v)| if i % 3 == 1 { v * rng.uniform(0.5, 1.5) } else { *v }).collect();
        moved[1] = -0.25;
        let gm = ctx.storage(&moved, "moved table");
        run(&ctx, [&ctx.lsq_sync(chans as u32, &gm)]);
        lsq_sync_reference(&mut moved);
        let got: Vec<f32> = ctx.read(&gm).await.unwrap();
        assert_close(&format!("lsq_sync, {what}"), &got[..moved.len()], &moved, 1e-6, 0.0, seed);
        assert!(moved.chunks(3).all(|c| c[1] > 0.0 && c[0] * c[1] > 0.999), "{what}: lsq_sync left a step non-positive or inv_step wrong");
    }
}
gpu_test!(lsq_kernels_match_reference_and_finite_differences, lsq_case);

/// Dynamic activation ranges: act_range fits each batch's min-max of its valid rows only (padding
/// rows hold values far outside and must not count) into the quantizer's table, symmetric and
/// asymmetric, and fake_quant_act then quantizes over it, GPU against the twins; an all-zero batch
/// gets a usable table.
async fn act_range_case(ctx: GpuContext) {
    use squeeze::gpu::kernels::StepParams;
    use squeeze::reference::ops::act_range_reference;
    let (mut rng, seed) = fresh_rng("act range");
    let (rows, per_row, valid) = (9, 37, 6);
    for (q, name) in [(QuantFn::Dynamic { qmin: 0, qmax: 255 }, "asymmetric 8"), (QuantFn::Dynamic { qmin: -7, qmax: 7 }, "symmetric 4"), (QuantFn::Dynamic { qmin: 0, qmax: 3 }, "asymmetric 2")] {
        for zeros in [false, true] {
            let what = format!("{name}, all zero {zeros}");
            let mut y = if zeros { vec![0.0; rows * per_row] } else { random_vec(&mut rng, rows * per_row, -0.8, 2.3) };
            y[valid * per_row..].iter_mut().for_each(|v| *v = 1e6);
            let (p, table) = QuantParams::of(&q, rows * per_row, 1);
            let step = ctx.uniform(&StepParams { offset: 0, valid: valid as u32 }, "step");
            let (gt, gy, gk) = (ctx.storage(&table, "table"), ctx.storage(&y, "y"), ctx.storage_zeroed(4 * y.len() as u64, "keep"));
            run(&ctx, [&ctx.act_range(p, per_row as u32, &step, &gy, &gt), &ctx.fake_quant_act(p, &gt, &gy, &gk)]);
            let batch = &y[..valid * per_row];
            let want_table = act_range_reference(&q, batch);
            let got_table: Vec<f32> = ctx.read(&gt).await.unwrap();
            assert_close(&format!("act_range {what}"), &got_table[..3], &want_table, 1e-6, 0.0, seed);
            assert!(want_table[1] < 100.0, "{what}: the padding rows' 1e6 counted (step {})", want_table[1]);
            let mut want_y = batch.to_vec();
            let want_keep = fake_quant_act_reference(&q, &mut want_y, 1);
            let got_y: Vec<f32> = ctx.read(&gy).await.unwrap();
            let resolved = q.resolve(batch);
            assert_quantized(&format!("fake_quant_act after act_range, {what}"), &resolved, batch, &got_y[..batch.len()], &want_y, 1, seed);
            let got_keep: Vec<f32> = ctx.read(&gk).await.unwrap();
            assert_eq!(&got_keep[..batch.len()], &want_keep[..], "{what}: keep mask (seed {seed})");
            assert!(want_keep.iter().all(|&k| k == 1.0), "{what}: a batch's own range clips nothing");
        }
    }
}
gpu_test!(act_range_matches_reference, act_range_case);
