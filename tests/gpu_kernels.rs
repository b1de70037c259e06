//! Every WGSL kernel against its CPU twin in reference::ops, on fresh random inputs of awkward
//! shapes (not multiples of the workgroup or register tile). Runs natively and in the browser.

mod common;
use common::{assert_close, fresh_rng, random_vec};
use ndarray::{Array1, Array2};
use squeeze::gpu::kernels::{run, GatherParams, HeadParams, MatmulParams, SplitParams, StepParams};
use squeeze::gpu::{GpuContext, MatmulKernel};
use squeeze::nn::{OptimizerConfig, OptimizerKind};
use squeeze::reference::ops::*;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// The context on each matmul kernel in turn (register-blocked, tiled): both must match the twin.
fn each_matmul_kernel(ctx: &GpuContext) -> impl Iterator<Item = GpuContext> + '_ {
    [MatmulKernel::Registers, MatmulKernel::Tiled].into_iter().map(|k| {
        let mut c = ctx.clone();
        c.matmul = k;
        c
    })
}

async fn matmul_case(ctx: GpuContext) {
    for ctx in each_matmul_kernel(&ctx) {
        matmul_shapes(ctx).await;
    }
}

async fn matmul_shapes(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("matmul");
    // (M, N, K): single elements, primes, K not a multiple of the tiled kernel's 16, and
    // LeNet-300-100's real backward shapes.
    for &(m, n, k) in &[(1, 1, 1), (3, 5, 2), (7, 13, 5), (33, 65, 17), (37, 301, 129), (300, 100, 64), (64, 784, 300)] {
        for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
            for &accumulate in &[false, true] {
                let a_shape = if ta { (k, m) } else { (m, k) };
                let b_shape = if tb { (n, k) } else { (k, n) };
                let a = random_vec(&mut rng, m * k, -1.0, 1.0);
                let b = random_vec(&mut rng, k * n, -1.0, 1.0);
                let c0 = random_vec(&mut rng, m * n, -1.0, 1.0);
                let ga = ctx.storage(&a, "a");
                let gb = ctx.storage(&b, "b");
                let gc = ctx.storage(&c0, "c");
                run(&ctx, [&ctx.matmul(MatmulParams::new(m as u32, n as u32, k as u32, ta, tb, accumulate), &ga, &gb, &gc)]);
                let got: Vec<f32> = ctx.read(&gc).await.unwrap();
                let a = Array2::from_shape_vec(a_shape, a).unwrap();
                let b = Array2::from_shape_vec(b_shape, b).unwrap();
                let mut want = matmul_reference(a.view(), b.view(), ta, tb);
                if accumulate {
                    want += &Array2::from_shape_vec((m, n), c0).unwrap();
                }
                let what = format!("{:?} matmul M={m} N={n} K={k} trans_a={ta} trans_b={tb} accumulate={accumulate}", ctx.matmul);
                assert_close(&what, &got, want.as_slice().unwrap(), 1e-4, 1e-5 * (k as f32).sqrt(), seed);
            }
        }
    }
}
gpu_test!(matmul_matches_reference, matmul_case);

/// A product with more than 65,535 row tiles of 32 (a conv matmul of batch · positions rows): the
/// grid folds them into z, and every row, the last tiles' included, matches the twin (also
/// transposed A, and accumulating).
async fn matmul_folded_case(ctx: GpuContext) {
    for ctx in each_matmul_kernel(&ctx) {
        matmul_folded(ctx).await;
    }
}

async fn matmul_folded(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("matmul folded");
    let (m, n, k) = (65_535 * 32 + 1_000 + rng.below(31) as usize, 3, 2);
    for &(ta, accumulate) in &[(false, false), (true, true)] {
        let a = random_vec(&mut rng, m * k, -1.0, 1.0);
        let b = random_vec(&mut rng, k * n, -1.0, 1.0);
        let c0 = random_vec(&mut rng, m * n, -1.0, 1.0);
        let (ga, gb, gc) = (ctx.storage(&a, "a"), ctx.storage(&b, "b"), ctx.storage(&c0, "c"));
        run(&ctx, [&ctx.matmul(MatmulParams::new(m as u32, n as u32, k as u32, ta, false, accumulate), &ga, &gb, &gc)]);
        let got: Vec<f32> = ctx.read(&gc).await.unwrap();
        let a = Array2::from_shape_vec(if ta { (k, m) } else { (m, k) }, a).unwrap();
        let mut want = matmul_reference(a.view(), Array2::from_shape_vec((k, n), b).unwrap().view(), ta, false);
        if accumulate {
            want += &Array2::from_shape_vec((m, n), c0).unwrap();
        }
        assert_close(&format!("{:?} folded matmul M={m} trans_a={ta} accumulate={accumulate}", ctx.matmul), &got, want.as_slice().unwrap(), 1e-4, 1e-5, seed);
    }
}
gpu_test!(matmul_folds_rows_past_65535_tiles, matmul_folded_case);

async fn matmul_split_k_case(ctx: GpuContext) {
    for ctx in each_matmul_kernel(&ctx) {
        matmul_split_k(ctx).await;
    }
}

async fn matmul_split_k(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("matmul split-k");
    // (M, N, K, splits): a conv weight gradient (colsᵀ·dY), a bias sum (1ᵀ·dY), chunks that do not
    // divide K, more splits than tiles, and splits that leave the last chunk short.
    for &(m, n, k, splits, ta) in &[(25, 20, 5003, 9, true), (1, 20, 3001, 7, false), (7, 13, 4099, 64, true), (150, 50, 4096, 8, true), (33, 3, 517, 5, false)] {
        for &accumulate in &[false, true] {
            let a = random_vec(&mut rng, m * k, -1.0, 1.0);
            let b = random_vec(&mut rng, k * n, -1.0, 1.0);
            let c0 = random_vec(&mut rng, m * n, -1.0, 1.0);
            let (ga, gb, gc) = (ctx.storage(&a, "a"), ctx.storage(&b, "b"), ctx.storage(&c0, "c"));
            // Garbage in the scratch buffer: every slice must be overwritten, not added to.
            let partial = ctx.storage(&random_vec(&mut rng, splits * m * n, -9.0, 9.0), "partial");
            let p = MatmulParams::new(m as u32, n as u32, k as u32, ta, false, accumulate);
            let launches = ctx.matmul_split_k(p, splits as u32, &ga, &gb, &gc, &partial);
            assert_eq!(launches.len(), 2, "split-k is a product and a sum");
            run(&ctx, &launches);
            let got: Vec<f32> = ctx.read(&gc).await.unwrap();
            let a = Array2::from_shape_vec(if ta { (k, m) } else { (m, k) }, a).unwrap();
            let mut want = matmul_reference(a.view(), Array2::from_shape_vec((k, n), b).unwrap().view(), ta, false);
            if accumulate {
                want += &Array2::from_shape_vec((m, n), c0).unwrap();
            }
            let what = format!("{:?} split-k matmul M={m} N={n} K={k} splits={splits} accumulate={accumulate}", ctx.matmul);
            assert_close(&what, &got, want.as_slice().unwrap(), 1e-4, 1e-5 * (k as f32).sqrt(), seed);
        }
    }
    // split_sum alone against its twin, odd length, accumulating.
    let (len, splits) = (1001, 3);
    let partial = random_vec(&mut rng, len * splits, -1.0, 1.0);
    let total = random_vec(&mut rng, len, -1.0, 1.0);
    let gt = ctx.storage(&total, "total");
    run(&ctx, [&ctx.split_sum(SplitParams { len: len as u32, splits: splits as u32, accumulate: 1, _pad: 0 }, &ctx.storage(&partial, "partial"), &gt)]);
    let mut want = total.clone();
    split_sum_reference(&partial, splits, &mut want, true);
    assert_close("split_sum", &ctx.read::<f32>(&gt).await.unwrap(), &want, 1e-6, 1e-6, seed);
    // The heuristic splits exactly the products that need it.
    assert!(MatmulParams::new(25, 20, 36864, true, false, false).split_k() > 16, "LeNet-5 conv1 dW must split");
    assert_eq!(MatmulParams::new(300, 100, 64, true, false, false).split_k(), 1, "a dense dW over a batch must not");
}
gpu_test!(matmul_split_k_matches_reference, matmul_split_k_case);

/// The calibration times both matmul kernels, uses the faster and records both figures; then
/// split-K against one pass over K the same way.
async fn matmul_calibration_case(ctx: GpuContext) {
    let speeds = ctx.time_matmuls().await.unwrap();
    assert_eq!(speeds.iter().map(|s| s.0).collect::<Vec<_>>(), [MatmulKernel::Registers, MatmulKernel::Tiled]);
    assert!(speeds.iter().all(|s| s.1.is_finite() && s.1 > 0.0), "{speeds:?}");
    let mut ctx = ctx;
    ctx.calibrate_matmul().await.unwrap();
    let summary = &ctx.adapter.matmul;
    let (registers, tiled) = (figure_in(summary, "registers"), figure_in(summary, "tiled"));
    let faster = if tiled > registers { MatmulKernel::Tiled } else { MatmulKernel::Registers };
    // Within the printed precision a tie may go either way.
    if (tiled - registers).abs() > 0.1 {
        assert_eq!(ctx.matmul, faster, "{summary}");
    }
    assert!(summary.ends_with(&format!(": {}", ctx.matmul.name())), "{summary}");
    // Then split-K against one pass over K, with the kernel just chosen: splits where faster.
    let summary = &ctx.adapter.split_k;
    let (split, unsplit) = (figure_in(summary, "split in 18"), figure_in(summary, "unsplit"));
    assert!(split > 0.0 && unsplit > 0.0, "{summary}");
    if (split - unsplit).abs() > 0.1 {
        assert_eq!(ctx.split_k, split > unsplit, "{summary}");
    }
    assert!(summary.ends_with(if ctx.split_k { ": split" } else { ": unsplit" }), "{summary}");
    let wants = MatmulParams::new(25, 20, 16 * 24 * 24, true, false, false);
    assert_eq!(ctx.split_k(&wants), if ctx.split_k { wants.split_k() } else { 1 }, "{summary}");
}

/// The number after `name ` in a calibration summary.
fn figure_in(summary: &str, name: &str) -> f64 {
    summary.split(&format!("{name} ")).nth(1).and_then(|t| t.split(' ').next()).and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| panic!("{name} in {summary}"))
}
gpu_test!(matmul_calibration_picks_the_faster, matmul_calibration_case);

async fn dense_elementwise_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("dense");
    for &(rows, cols) in &[(1, 1), (37, 101), (64, 300), (129, 3)] {
        let y = random_vec(&mut rng, rows * cols, -1.0, 1.0);
        let bias = random_vec(&mut rng, cols, -1.0, 1.0);
        let dy = random_vec(&mut rng, rows * cols, -1.0, 1.0);
        let (r, c) = (rows as u32, cols as u32);
        let y_arr = Array2::from_shape_vec((rows, cols), y.clone()).unwrap();
        let dy_arr = Array2::from_shape_vec((rows, cols), dy.clone()).unwrap();

        // bias_add
        let gy = ctx.storage(&y, "y");
        let gbias = ctx.storage(&bias, "bias");
        run(&ctx, [&ctx.bias_add(r, c, &gbias, &gy)]);
        let mut want = y_arr.clone();
        bias_add_reference(&mut want, &Array1::from_vec(bias.clone()));
        assert_close("bias_add", &ctx.read::<f32>(&gy).await.unwrap(), want.as_slice().unwrap(), 1e-6, 1e-6, seed);

        // bias_grad
        let gdy = ctx.storage(&dy, "dy");
        let gdb = ctx.storage_zeroed(cols as u64 * 4, "dbias");
        run(&ctx, [&ctx.bias_grad(r, c, &gdy, &gdb)]);
        let want = bias_grad_reference(&dy_arr);
        assert_close("bias_grad", &ctx.read::<f32>(&gdb).await.unwrap(), want.as_slice().unwrap(), 1e-5, 1e-5 * (rows as f32).sqrt(), seed);

        // relu_forward
        let gy = ctx.storage(&y, "y");
        run(&ctx, [&ctx.relu_forward(r * c, &gy)]);
        let mut relu_out = y_arr.clone();
        relu_forward_reference(&mut relu_out);
        let got_relu: Vec<f32> = ctx.read(&gy).await.unwrap();
        assert_close("relu_forward", &got_relu, relu_out.as_slice().unwrap(), 0.0, 0.0, seed);
        assert!(got_relu.iter().any(|&v| v == 0.0) || rows * cols < 4, "relu_forward: random inputs should have negatives (seed {seed})");

        // relu_backward (on the ReLU output just computed)
        let gdy = ctx.storage(&dy, "dy");
        run(&ctx, [&ctx.relu_backward(r * c, &gy, &gdy)]);
        let mut want = dy_arr.clone();
        relu_backward_reference(&mut want, &relu_out);
        assert_close("relu_backward", &ctx.read::<f32>(&gdy).await.unwrap(), want.as_slice().unwrap(), 0.0, 0.0, seed);
    }
}
gpu_test!(dense_elementwise_kernels_match_reference, dense_elementwise_case);

async fn head_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("head");
    for &(rows, classes, valid) in &[(1, 10, 1), (37, 10, 37), (130, 10, 117), (65, 7, 3)] {
        let logits = random_vec(&mut rng, rows * classes, -6.0, 6.0);
        let labels: Vec<u32> = (0..rows).map(|_| rng.below(classes as u32)).collect();
        let p = HeadParams { rows: rows as u32, classes: classes as u32 };
        let step = ctx.uniform(&StepParams { offset: 0, valid: valid as u32 }, "step");
        let gl = ctx.storage(&logits, "logits");
        let gy = ctx.storage(&labels, "labels");
        // Poison the outputs so a kernel that skips rows is caught.
        let gd = ctx.storage(&vec![f32::NAN; rows * classes], "dlogits");
        let gloss = ctx.storage(&vec![f32::NAN; rows], "row_loss");
        let gcorrect = ctx.storage(&vec![7u32; rows], "correct");
        let acc0 = [1.5f32, 2.0, 3.0, 0.0];
        let gacc = ctx.storage(&acc0, "acc");
        run(
            &ctx,
            [
                &ctx.softmax_xent(p, &step, &gl, &gy, &gd, &gloss),
                &ctx.argmax_correct(p, &step, &gl, &gy, &gcorrect),
                &ctx.metrics_accumulate(&step, &gloss, &gcorrect, &gacc),
            ],
        );
        let logits_arr = Array2::from_shape_vec((rows, classes), logits).unwrap();
        let (want_d, want_loss) = softmax_xent_reference(&logits_arr, &labels, valid);
        let want_correct = argmax_correct_reference(&logits_arr, &labels, valid);
        let mut want_acc = acc0;
        metrics_accumulate_reference(&mut want_acc, &want_loss, &want_correct, valid);
        let what = format!("rows={rows} classes={classes} valid={valid}");
        assert_close(&format!("softmax_xent dlogits {what}"), &ctx.read::<f32>(&gd).await.unwrap(), want_d.as_slice().unwrap(), 1e-4, 1e-6, seed);
        assert_close(&format!("softmax_xent loss {what}"), &ctx.read::<f32>(&gloss).await.unwrap(), &want_loss, 1e-4, 1e-5, seed);
        assert_eq!(ctx.read::<u32>(&gcorrect).await.unwrap(), want_correct, "argmax_correct {what} (seed {seed})");
        assert_close(&format!("metrics_accumulate {what}"), &ctx.read::<f32>(&gacc).await.unwrap(), &want_acc, 1e-5, 1e-4, seed);
    }
}
gpu_test!(softmax_xent_argmax_and_metrics_match_reference, head_case);

async fn optimizer_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("optim");
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        for &n in &[1usize, 1003, 70_001] {
            let cfg = OptimizerConfig { kind, lr: 0.05, momentum: 0.9, beta2: 0.99, eps: 1e-6, weight_decay: 1e-3, l1: 1e-3 };
            let w = random_vec(&mut rng, n, -1.0, 1.0);
            let m = random_vec(&mut rng, n, -0.1, 0.1);
            let v = random_vec(&mut rng, n, 0.0, 0.01);
            let (gw, gm, gv) = (ctx.storage(&w, "w"), ctx.storage(&m, "m"), ctx.storage(&v, "v"));
            let (mut rw, mut rm, mut rv) = (w, m, v);
            // Three steps with fresh gradients: checks that state carries over.
            for t in 1..=3u64 {
                let g = random_vec(&mut rng, n, -1.0, 1.0);
                let gg = ctx.storage(&g, "g");
                let p = cfg.step_params(n, cfg.lr, t);
                // The step's lr and eps come from their own uniform; the tensor's copy holds others
                // (a kernel reading them would be caught).
                let step = ctx.uniform(&squeeze::nn::OptimStep::of(&p), "step");
                let stale = squeeze::nn::OptimParams { lr: 7.0, eps: 3.0, ..p };
                run(&ctx, [&ctx.optimizer(kind == OptimizerKind::Adam, stale, &step, &gw, &gg, &gm, &gv)]);
                match kind {
                    OptimizerKind::Sgd => sgd_reference(&mut rw, &g, &mut rm, &p),
                    OptimizerKind::Adam => adam_reference(&mut rw, &g, &mut rm, &mut rv, &p),
                }
            }
            let what = format!("{kind:?} n={n}");
            assert_close(&format!("{what} weights"), &ctx.read::<f32>(&gw).await.unwrap(), &rw, 1e-5, 1e-6, seed);
            assert_close(&format!("{what} first moment"), &ctx.read::<f32>(&gm).await.unwrap(), &rm, 1e-5, 1e-6, seed);
            if kind == OptimizerKind::Adam {
                assert_close(&format!("{what} second moment"), &ctx.read::<f32>(&gv).await.unwrap(), &rv, 1e-5, 1e-7, seed);
            }
        }
    }
}
gpu_test!(sgd_and_adam_match_reference, optimizer_case);

async fn gather_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("gather");
    // 13x11 = 143 pixels: images do not start on 4-byte boundaries.
    let (n, (h, w), rows) = (37usize, (13usize, 11usize), 16usize);
    let pixels = h * w;
    let images: Vec<u8> = (0..n * pixels).map(|_| rng.below(256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.below(10) as u8).collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let (scale, shift) = (1.0 / (255.0 * 0.3081), -0.1307 / 0.3081);
    let gi = ctx.storage_u8(&images, "images");
    let gl = ctx.storage_u8(&labels, "labels");
    let go = ctx.storage(&order, "order");
    let gx = ctx.storage(&vec![f32::NAN; rows * pixels], "x");
    let gy = ctx.storage(&vec![99u32; rows], "y");
    let step = ctx.uniform(&StepParams::default(), "step");
    // Without jitter, then moved by up to 3 pixels (both backends move each sample alike).
    for jitter in [0usize, 3] {
        let p = GatherParams { rows: rows as u32, pixels: pixels as u32, scale, shift, height: h as u32, width: w as u32, jitter: jitter as u32, _pad: 0 };
        let launch = ctx.gather_batch(p, &step, &gi, &gl, &go, &gx, &gy);
        // A full batch, then the partial last batch (offset 32, 5 valid rows, 11 rows of padding).
        for &(offset, valid) in &[(0usize, 16usize), (32, 5)] {
            ctx.queue.write_buffer(&step, 0, bytemuck::bytes_of(&StepParams { offset: offset as u32, valid: valid as u32 }));
            run(&ctx, [&launch]);
            let (want_x, want_y) = gather_batch_reference(&images, &labels, pixels, &order, offset, valid, rows, scale, shift, (h, w), jitter);
            let what = format!("gather_batch jitter {jitter} offset={offset}");
            assert_close(&format!("{what} x"), &ctx.read::<f32>(&gx).await.unwrap(), want_x.as_slice().unwrap(), 1e-6, 1e-6, seed);
            assert_eq!(ctx.read::<u32>(&gy).await.unwrap(), want_y, "{what} labels (seed {seed})");
        }
    }
    // The twin's jitter itself: shifts cover [-3, 3]² (not all zero, not one value), a moved
    // image is the original translated, and pixels moved in from outside are 0.
    let shifts: Vec<(i32, i32)> = (0..400u32).map(|i| squeeze::data::jitter_shift(i % 37, i, 3)).collect();
    assert!(shifts.iter().all(|&(x, y)| x.abs() <= 3 && y.abs() <= 3), "shift out of range (seed {seed})");
    for v in -3..=3 {
        assert!(shifts.iter().any(|&(x, _)| x == v) && shifts.iter().any(|&(_, y)| y == v), "shift {v} never drawn");
    }
    let image: Vec<u8> = (0..pixels).map(|i| (i % 251) as u8 + 1).collect();
    let moved: Vec<u8> = (0..pixels).map(|i| squeeze::data::shifted_pixel(&image, h, w, 1, i, (2, -1))).collect();
    for r in 0..h {
        for c in 0..w {
            let want = if c >= 2 && r + 1 < h { image[(r + 1) * w + c - 2] } else { 0 };
            assert_eq!(moved[r * w + c], want, "pixel ({r}, {c}) moved by (2, -1)");
        }
    }
}
gpu_test!(gather_batch_matches_reference, gather_case);

/// gather_rows (a cached teacher's logits in the epoch's order): 7 columns, 37 rows of table, a
/// shuffled order; a full batch and a partial one whose padding rows (NaN before) must be 0.
async fn gather_rows_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("gather rows");
    let (n, cols, rows) = (37usize, 7usize, 16usize);
    let table = random_vec(&mut rng, n * cols, -5.0, 5.0);
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let (gt, go) = (ctx.storage(&table, "table"), ctx.storage(&order, "order"));
    let dst = ctx.storage(&vec![f32::NAN; rows * cols], "rows");
    let step = ctx.uniform(&StepParams::default(), "step");
    let launch = ctx.gather_rows(rows as u32, cols as u32, &step, &go, &gt, &dst);
    for &(offset, valid) in &[(0usize, 16usize), (32, 5), (9, 16)] {
        ctx.queue.write_buffer(&step, 0, bytemuck::bytes_of(&StepParams { offset: offset as u32, valid: valid as u32 }));
        run(&ctx, [&launch]);
        let got: Vec<f32> = ctx.read(&dst).await.unwrap();
        let want = gather_rows_reference(&table, cols, &order, offset, valid, rows);
        assert_eq!(got, want, "gather_rows offset {offset} valid {valid} (seed {seed})");
        assert_eq!(&want[..cols], &table[order[offset] as usize * cols..][..cols], "the twin's first row (seed {seed})");
    }
}
gpu_test!(gather_rows_matches_reference, gather_rows_case);

async fn backend_case(ctx: GpuContext) {
    // The suites must exercise a real GPU API, not a silent fallback: WebGPU in the browser,
    // Vulkan natively (lavapipe on machines without a GPU).
    let want = if cfg!(target_arch = "wasm32") { "BrowserWebGpu" } else { "Vulkan" };
    assert_eq!(ctx.adapter.backend, want, "adapter {:?}", ctx.adapter);
}
gpu_test!(backend_is_the_real_gpu_api, backend_case);

async fn mask_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("mask");
    for &n in &[1usize, 1003, 70_001] {
        let w = random_vec(&mut rng, n, -1.0, 1.0);
        let g = random_vec(&mut rng, n, -1.0, 1.0);
        let score0 = random_vec(&mut rng, n, 0.0, 1.0);
        let mask: Vec<f32> = (0..n).map(|_| if rng.next_f32() < 0.7 { 0.0 } else { 1.0 }).collect();
        let (gw, gm) = (ctx.storage(&w, "w"), ctx.storage(&mask, "mask"));
        let (gg, gs) = (ctx.storage(&g, "g"), ctx.storage(&score0, "score"));
        // Taylor scores use the unmasked weights; then the mask is applied.
        run(&ctx, [&ctx.taylor_accumulate(n as u32, &gw, &gg, &gs), &ctx.mask_apply(n as u32, &gw, &gm)]);
        let mut want_score = score0.clone();
        taylor_accumulate_reference(&mut want_score, &w, &g);
        let mut want_w = w.clone();
        mask_apply_reference(&mut want_w, &mask);
        let got_w: Vec<f32> = ctx.read(&gw).await.unwrap();
        assert_close(&format!("taylor_accumulate n={n}"), &ctx.read::<f32>(&gs).await.unwrap(), &want_score, 1e-6, 1e-7, seed);
        assert_close(&format!("mask_apply n={n}"), &got_w, &want_w, 0.0, 0.0, seed);
        // Pruned weights are exactly zero, kept ones untouched.
        assert!(got_w.iter().zip(&mask).zip(&w).all(|((&g, &m), &w)| if m == 0.0 { g == 0.0 } else { g == w }), "seed {seed}");
    }
}
gpu_test!(mask_and_taylor_kernels_match_reference, mask_case);
