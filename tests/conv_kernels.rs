//! The convolutional kernels (shaders/conv.wgsl, pool.wgsl, batchnorm.wgsl, add.wgsl) against
//! their CPU twins in reference::ops, on fresh random inputs of awkward shapes: odd sides,
//! non-square images, stride 2, padding, overlapping pool windows, partial batches.
//! Runs natively and in the browser.

mod common;
use common::{assert_close, fresh_rng, random_vec};
use squeeze::gpu::kernels::{run, BnBuffers, BnParams, StepParams};
use squeeze::gpu::GpuContext;
use squeeze::reference::ops::*;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// (batch, h, w, c, k, stride, pad): 1x1 kernels, odd sides, stride 2 with padding, LeNet-5's
/// second conv, a non-square image.
const CONV_SHAPES: [(usize, usize, usize, usize, usize, usize, usize); 6] =
    [(1, 5, 5, 1, 1, 1, 0), (2, 7, 7, 3, 3, 1, 1), (3, 9, 9, 2, 3, 2, 1), (2, 12, 12, 20, 5, 1, 0), (2, 11, 8, 3, 4, 2, 2), (1, 6, 6, 4, 1, 2, 0)];

async fn im2col_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("im2col");
    for &(batch, h, w, c, k, stride, pad) in &CONV_SHAPES {
        let g = Geometry::new(batch, h, w, c, k, stride, pad);
        let what = format!("{g:?}");
        let x = random_vec(&mut rng, batch * h * w * c, -1.0, 1.0);
        let gx = ctx.storage(&x, "x");
        let cols = ctx.storage_zeroed((g.positions() * g.patch()) as u64 * 4, "cols");
        run(&ctx, [&ctx.im2col(&g, &gx, &cols)]);
        let got: Vec<f32> = ctx.read(&cols).await.unwrap();
        assert_eq!(got, im2col_reference(&x, &g), "im2col {what} (seed {seed})");

        for accumulate in [false, true] {
            let dcols = random_vec(&mut rng, g.positions() * g.patch(), -1.0, 1.0);
            let dx0 = random_vec(&mut rng, x.len(), -1.0, 1.0);
            let (gd, gdx) = (ctx.storage(&dcols, "dcols"), ctx.storage(&dx0, "dx"));
            run(&ctx, [&ctx.col2im(&g, &gd, &gdx, accumulate)]);
            let got: Vec<f32> = ctx.read(&gdx).await.unwrap();
            let mut want = dx0.clone();
            col2im_reference(&dcols, &g, &mut want, accumulate);
            assert_close(&format!("col2im {what} accumulate={accumulate}"), &got, &want, 1e-5, 1e-5, seed);
        }
    }
}
gpu_test!(im2col_and_col2im_match_reference, im2col_case);

async fn pool_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("pool");
    // (batch, h, w, c, k, stride): the usual 2/2, overlapping 3/2, odd sides, global 7/7.
    for &(batch, h, w, c, k, stride) in &[(2, 8, 8, 3, 2, 2), (3, 7, 9, 2, 3, 2), (1, 5, 5, 5, 2, 1), (2, 7, 7, 4, 7, 7), (2, 24, 24, 20, 2, 2)] {
        let g = Geometry::new(batch, h, w, c, k, stride, 0);
        let what = format!("{g:?}");
        let x = random_vec(&mut rng, batch * h * w * c, -1.0, 1.0);
        let out = g.positions() * c;
        let gx = ctx.storage(&x, "x");
        let (gy, garg) = (ctx.storage_zeroed(out as u64 * 4, "y"), ctx.storage_zeroed(out as u64 * 4, "argmax"));
        run(&ctx, [&ctx.maxpool_forward(&g, &gx, &gy, &garg)]);
        let (want_y, want_arg) = maxpool_forward_reference(&x, &g);
        assert_eq!(ctx.read::<f32>(&gy).await.unwrap(), want_y, "maxpool_forward {what} (seed {seed})");
        assert_eq!(ctx.read::<u32>(&garg).await.unwrap(), want_arg, "maxpool argmax {what} (seed {seed})");

        run(&ctx, [&ctx.avgpool_forward(&g, &gx, &gy)]);
        assert_close(&format!("avgpool_forward {what}"), &ctx.read::<f32>(&gy).await.unwrap(), &avgpool_forward_reference(&x, &g), 1e-5, 1e-6, seed);

        for accumulate in [false, true] {
            let dy = random_vec(&mut rng, out, -1.0, 1.0);
            let dx0 = random_vec(&mut rng, x.len(), -1.0, 1.0);
            let gdy = ctx.storage(&dy, "dy");
            let gdx = ctx.storage(&dx0, "dx");
            run(&ctx, [&ctx.maxpool_backward(&g, &gdy, &gdx, &garg, accumulate)]);
            let mut want = dx0.clone();
            maxpool_backward_reference(&dy, &want_arg, &mut want, accumulate);
            assert_close(&format!("maxpool_backward {what} accumulate={accumulate}"), &ctx.read::<f32>(&gdx).await.unwrap(), &want, 1e-5, 1e-6, seed);

            let gdx = ctx.storage(&dx0, "dx");
            run(&ctx, [&ctx.avgpool_backward(&g, &gdy, &gdx, accumulate)]);
            let mut want = dx0.clone();
            avgpool_backward_reference(&dy, &g, &mut want, accumulate);
            assert_close(&format!("avgpool_backward {what} accumulate={accumulate}"), &ctx.read::<f32>(&gdx).await.unwrap(), &want, 1e-5, 1e-6, seed);
        }
    }
}
gpu_test!(pooling_matches_reference, pool_case);

async fn batchnorm_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("batchnorm");
    // (batch rows, valid samples, H·W per sample, channels): dense-style 1x1, partial batches,
    // more rows than a workgroup, a channel count that is not a power of two.
    for &(batch, valid, per_sample, c) in &[(5, 5, 1, 3), (16, 11, 9, 7), (4, 3, 49, 16), (64, 64, 1, 129)] {
        let rows = batch * per_sample;
        let what = format!("B={batch} V={valid} HW={per_sample} C={c}");
        // Offset and scaled inputs: a one-pass variance would lose precision here.
        let x: Vec<f32> = random_vec(&mut rng, rows * c, -1.0, 1.0).iter().map(|v| 3.0 + 2.0 * v).collect();
        let gamma = random_vec(&mut rng, c, 0.5, 1.5);
        let beta = random_vec(&mut rng, c, -0.5, 0.5);
        let rm0 = random_vec(&mut rng, c, -0.2, 0.2);
        let rv0 = random_vec(&mut rng, c, 0.8, 1.2);
        let step = ctx.uniform(&StepParams { offset: 0, valid: valid as u32 }, "step");
        let (gx, gstats) = (ctx.storage(&x, "x"), ctx.storage_zeroed(2 * c as u64 * 4, "stats"));
        let (gg, gb, grm, grv) = (ctx.storage(&gamma, "gamma"), ctx.storage(&beta, "beta"), ctx.storage(&rm0, "rm"), ctx.storage(&rv0, "rv"));
        let bufs = BnBuffers { step: &step, x: &gx, stats: &gstats, gamma: &gg, beta: &gb, running_mean: &grm, running_var: &grv };
        let p = |train: bool, accumulate: bool| BnParams {
            rows: rows as u32,
            c: c as u32,
            per_sample: per_sample as u32,
            use_batch_stats: train as u32,
            momentum: 0.1,
            eps: 1e-5,
            accumulate: accumulate as u32,
            _pad: 0,
        };
        let gy = ctx.storage_zeroed((rows * c) as u64 * 4, "y");
        run(&ctx, [&ctx.bn_stats(p(true, false), &bufs), &ctx.bn_forward(p(true, false), &bufs, &gy)]);
        let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
        let (mean, var) = bn_stats_reference(&x, c, valid * per_sample, &mut rm, &mut rv, 0.1);
        let stats: Vec<f32> = ctx.read(&gstats).await.unwrap();
        assert_close(&format!("bn_stats mean {what}"), &stats[..c], &mean, 1e-4, 1e-5, seed);
        assert_close(&format!("bn_stats var {what}"), &stats[c..], &var, 1e-4, 1e-5, seed);
        assert_close(&format!("bn running mean {what}"), &ctx.read::<f32>(&grm).await.unwrap(), &rm, 1e-4, 1e-5, seed);
        assert_close(&format!("bn running var {what}"), &ctx.read::<f32>(&grv).await.unwrap(), &rv, 1e-4, 1e-5, seed);
        let want_y = bn_forward_reference(&x, c, &mean, &var, &gamma, &beta, 1e-5);
        assert_close(&format!("bn_forward train {what}"), &ctx.read::<f32>(&gy).await.unwrap(), &want_y, 1e-4, 1e-4, seed);

        // Inference: the (updated) running statistics.
        run(&ctx, [&ctx.bn_forward(p(false, false), &bufs, &gy)]);
        let want_eval = bn_forward_reference(&x, c, &rm, &rv, &gamma, &beta, 1e-5);
        assert_close(&format!("bn_forward eval {what}"), &ctx.read::<f32>(&gy).await.unwrap(), &want_eval, 1e-4, 1e-4, seed);

        for accumulate in [false, true] {
            let dy = random_vec(&mut rng, rows * c, -1.0, 1.0);
            let dx0 = random_vec(&mut rng, rows * c, -1.0, 1.0);
            let (gdy, gdx) = (ctx.storage(&dy, "dy"), ctx.storage(&dx0, "dx"));
            let (gdg, gdb) = (ctx.storage_zeroed(c as u64 * 4, "dgamma"), ctx.storage_zeroed(c as u64 * 4, "dbeta"));
            run(&ctx, [&ctx.bn_backward_sums(p(true, accumulate), &bufs, &gdy, &gdg, &gdb), &ctx.bn_backward_input(p(true, accumulate), &bufs, &gdy, &gdg, &gdb, &gdx)]);
            let mut want_dx = dx0.clone();
            let (dg, db) = bn_backward_reference(&dy, &x, c, valid * per_sample, &mean, &var, &gamma, 1e-5, &mut want_dx, accumulate);
            assert_close(&format!("bn dgamma {what}"), &ctx.read::<f32>(&gdg).await.unwrap(), &dg, 1e-3, 1e-4, seed);
            assert_close(&format!("bn dbeta {what}"), &ctx.read::<f32>(&gdb).await.unwrap(), &db, 1e-3, 1e-4, seed);
            assert_close(&format!("bn dx {what} accumulate={accumulate}"), &ctx.read::<f32>(&gdx).await.unwrap(), &want_dx, 1e-3, 1e-4, seed);
        }
    }
}
gpu_test!(batchnorm_matches_reference, batchnorm_case);

async fn add_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("add");
    for n in [1usize, 257, 70_001] {
        let (a, b) = (random_vec(&mut rng, n, -1.0, 1.0), random_vec(&mut rng, n, -1.0, 1.0));
        let (ga, gb, gy) = (ctx.storage(&a, "a"), ctx.storage(&b, "b"), ctx.storage_zeroed(n as u64 * 4, "y"));
        run(&ctx, [&ctx.add_forward(n as u32, &ga, &gb, &gy)]);
        assert_close(&format!("add_forward n={n}"), &ctx.read::<f32>(&gy).await.unwrap(), &add_forward_reference(&a, &b), 1e-6, 1e-6, seed);
        for accumulate in [false, true] {
            let gdst = ctx.storage(&b, "dst");
            run(&ctx, [&ctx.add_into(n as u32, &ga, &gdst, accumulate)]);
            let mut want = b.clone();
            add_into_reference(&mut want, &a, accumulate);
            assert_close(&format!("add_into n={n} accumulate={accumulate}"), &ctx.read::<f32>(&gdst).await.unwrap(), &want, 1e-6, 1e-6, seed);
        }
    }
}
gpu_test!(residual_add_matches_reference, add_case);

async fn conv_direct_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("conv direct");
    for &(batch, h, w, c, k, stride, pad) in &CONV_SHAPES {
        for cout in [1usize, 6, 13] {
            let g = Geometry::new(batch, h, w, c, k, stride, pad);
            let what = format!("{g:?} Cout={cout}");
            let x = random_vec(&mut rng, batch * h * w * c, -1.0, 1.0);
            let wt = random_vec(&mut rng, g.patch() * cout, -1.0, 1.0);
            let bias = random_vec(&mut rng, cout, -1.0, 1.0);
            let dy = random_vec(&mut rng, g.positions() * cout, -1.0, 1.0);
            let want_y = conv_direct_forward_reference(&x, &wt, &bias, &g);
            // The twin agrees with the im2col way (im2col·W + b).
            let cols = ndarray::Array2::from_shape_vec((g.positions(), g.patch()), im2col_reference(&x, &g)).unwrap();
            let wm = ndarray::Array2::from_shape_vec((g.patch(), cout), wt.clone()).unwrap();
            let via_im2col: Vec<f32> = (cols.dot(&wm) + &ndarray::Array1::from_vec(bias.clone())).iter().copied().collect();
            assert_close(&format!("direct vs im2col twin {what}"), &want_y, &via_im2col, 1e-4, 1e-5, seed);

            let (gx, gw, gb, gdy) = (ctx.storage(&x, "x"), ctx.storage(&wt, "w"), ctx.storage(&bias, "b"), ctx.storage(&dy, "dy"));
            let gy = ctx.storage_zeroed((g.positions() * cout) as u64 * 4, "y");
            run(&ctx, [&ctx.conv_direct_forward(&g, cout, &gx, &gw, &gb, &gy)]);
            assert_close(&format!("conv_direct_forward {what}"), &ctx.read::<f32>(&gy).await.unwrap(), &want_y, 1e-4, 1e-5, seed);

            let gdw = ctx.storage_zeroed((g.patch() * cout) as u64 * 4, "dw");
            run(&ctx, [&ctx.conv_direct_dw(&g, cout, &gx, &gdy, &gdw)]);
            let want_dw = conv_direct_dw_reference(&x, &dy, &g, cout);
            let dym = ndarray::Array2::from_shape_vec((g.positions(), cout), dy.clone()).unwrap();
            let dw_im2col: Vec<f32> = cols.t().dot(&dym).iter().copied().collect();
            assert_close(&format!("dw direct vs im2col twin {what}"), &want_dw, &dw_im2col, 1e-4, 1e-4, seed);
            assert_close(&format!("conv_direct_dw {what}"), &ctx.read::<f32>(&gdw).await.unwrap(), &want_dw, 1e-4, 1e-4, seed);

            for accumulate in [false, true] {
                let dx0 = random_vec(&mut rng, x.len(), -1.0, 1.0);
                let gdx = ctx.storage(&dx0, "dx");
                run(&ctx, [&ctx.conv_direct_dx(&g, cout, &gdy, &gw, &gdx, accumulate)]);
                let mut want = dx0.clone();
                conv_direct_dx_reference(&dy, &wt, &g, cout, &mut want, accumulate);
                let mut via_col2im = dx0.clone();
                let dcols: Vec<f32> = dym.dot(&wm.t()).iter().copied().collect();
                col2im_reference(&dcols, &g, &mut via_col2im, accumulate);
                assert_close(&format!("dx direct vs col2im twin {what}"), &want, &via_col2im, 1e-4, 1e-4, seed);
                assert_close(&format!("conv_direct_dx {what} accumulate={accumulate}"), &ctx.read::<f32>(&gdx).await.unwrap(), &want, 1e-4, 1e-4, seed);
            }
        }
    }
}
gpu_test!(direct_convolution_matches_reference, conv_direct_case);
