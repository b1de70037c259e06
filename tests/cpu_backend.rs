//! The CPU backend's speed paths against their references: the packed GEMM (reference::gemm; in
//! the browser its WebAssembly SIMD kernel, run again by scripts/test in the relaxed-SIMD build)
//! against matmul_reference on fresh random operands of awkward shapes, every transpose and
//! accumulation; natively the narrow-output product (reference::narrow) likewise; the same product cut into bands for threads (bit-identical to one pass, the cut
//! covering C exactly with aligned bands); the optimizer's update in chunks, im2col and col2im in runs of images, and the trainer's batch
//! gather against its twin; and backend by measurement (experiment::calibrate): both backends timed, the
//! faster chosen. Natively and in the browser.

mod common;
use common::{fresh_rng, random_vec};
use squeeze::experiment::calibrate::{choose, training_speed};
use squeeze::experiment::Backend;
use squeeze::gpu::GpuContext;
use squeeze::recipe::Recipe;
use squeeze::reference::gemm::{cut, gemm, gemm_parts, gemm_with, tile_for, Cut, Tile};
use squeeze::reference::ops::matmul_reference;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// op(A)·op(B) (+ C0 when accumulating) by ndarray, on the same flat operands.
fn expected(a: &[f32], b: &[f32], c0: &[f32], (m, n, k): (usize, usize, usize), ta: bool, tb: bool, accumulate: bool) -> Vec<f32> {
    let av = if ta { ndarray::ArrayView2::from_shape((k, m), a) } else { ndarray::ArrayView2::from_shape((m, k), a) }.unwrap();
    let bv = if tb { ndarray::ArrayView2::from_shape((n, k), b) } else { ndarray::ArrayView2::from_shape((k, n), b) }.unwrap();
    let c = matmul_reference(av, bv, ta, tb);
    c.iter().zip(c0).map(|(v, c0)| if accumulate { v + c0 } else { *v }).collect()
}

fn gemm_matches_reference_body() {
    let (mut rng, seed) = fresh_rng("gemm");
    // Edges of both micro-tiles (4 × 8 and 2 × 16), of the K block (256) and of the row block
    // (128), vectors, the layer shapes that occur (LeNet-300-100, LeNet-5's convolutions), and
    // fresh random sizes.
    let mut shapes = vec![(1, 1, 1), (3, 9, 3), (5, 15, 255), (1, 17, 4), (3, 33, 31), (7, 13, 257), (129, 9, 513), (64, 300, 784), (784, 300, 64), (64, 10, 100), (1, 300, 100), (300, 1, 64), (150, 16, 640), (640, 6, 25), (4096, 50, 500), (25, 20, 700)];
    for _ in 0..4 {
        shapes.push((1 + rng.below(200) as usize, 1 + rng.below(70) as usize, 1 + rng.below(700) as usize));
    }
    assert!(shapes.iter().any(|s| tile_for(s.1) == Tile::Wide) && shapes.iter().any(|s| tile_for(s.1) == Tile::Narrow), "both tiles tested");
    for (m, n, k) in shapes {
        let (a, b) = (random_vec(&mut rng, m * k, -1.0, 1.0), random_vec(&mut rng, k * n, -1.0, 1.0));
        let c0 = random_vec(&mut rng, m * n, -1.0, 1.0);
        for (ta, tb, accumulate) in [(false, false, false), (true, false, false), (false, true, true), (true, true, false), (false, false, true)] {
            let mut c = c0.clone();
            gemm(&a, &b, &mut c, m, n, k, ta, tb, accumulate);
            let want = expected(&a, &b, &c0, (m, n, k), ta, tb, accumulate);
            // Another summation order: rounding grows with K; a dropped or misplaced term is ~0.3.
            common::assert_close(&format!("gemm {m}x{n}x{k} ta {ta} tb {tb} acc {accumulate}"), &c, &want, 0.0, 2e-6 * k as f32 + 1e-6, seed);
        }
    }
    // K = 0: C is zeros, or untouched when accumulating.
    let mut c = vec![3.0; 6];
    gemm(&[], &[], &mut c, 2, 3, 0, false, false, true);
    assert_eq!(c, vec![3.0; 6]);
    gemm(&[], &[], &mut c, 2, 3, 0, false, false, false);
    assert_eq!(c, vec![0.0; 6]);
}

fn gemm_in_parts_is_bit_identical_body() {
    let (mut rng, seed) = fresh_rng("gemm parts");
    // Row cuts (M ≥ N) and column cuts, bands that end mid-tile, more parts than tiles, and the
    // layer shapes the threaded build cuts (LeNet-300-100's products, a convolution's im2col).
    let mut shapes = vec![(1, 1, 1), (5, 3, 7), (3, 21, 9), (3, 37, 9), (64, 300, 784), (784, 300, 64), (64, 100, 300), (2304, 6, 25), (150, 16, 640), (9, 700, 33), (40, 50, 70)];
    for _ in 0..4 {
        shapes.push((1 + rng.below(300) as usize, 1 + rng.below(300) as usize, 1 + rng.below(600) as usize));
    }
    for (m, n, k) in shapes {
        let (a, b) = (random_vec(&mut rng, m * k, -1.0, 1.0), random_vec(&mut rng, k * n, -1.0, 1.0));
        for parts in [1, 2, 3, 5, 64] {
            let (bands, unit, len) = match cut(m, n, parts) {
                Cut::Rows(b) => (b, tile_for(n).mr(), m),
                Cut::Cols(b) => (b, tile_for(n).nr(), n),
            };
            assert!(bands.len() <= parts && !bands.is_empty(), "{m}x{n} in {parts}: {bands:?} (seed {seed})");
            assert_eq!((bands[0].start, bands[bands.len() - 1].end), (0, len), "{m}x{n} in {parts}: {bands:?}");
            for w in bands.windows(2) {
                assert!(w[0].end == w[1].start && w[0].end % unit == 0 && !w[0].is_empty(), "{m}x{n} in {parts}: {bands:?}");
            }
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut whole = vec![f32::NAN; m * n];
                gemm(&a, &b, &mut whole, m, n, k, ta, tb, false);
                let mut cutup = vec![f32::NAN; m * n];
                gemm_parts(&a, &b, &mut cutup, m, n, k, ta, tb, parts);
                let same = whole.iter().zip(&cutup).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "gemm {m}x{n}x{k} ta {ta} tb {tb} in {parts} parts differs from one pass (seed {seed})");
            }
        }
    }
}

/// Both micro-tiles sum every element in the same order, so a product gives the same bits with
/// either: a tile that dropped, repeated or misplaced a padded row or column, or summed K in
/// another order, would not. Also which tile `tile_for` picks where the padding differs.
fn the_two_tiles_give_the_same_bits_body() {
    let (mut rng, seed) = fresh_rng("gemm tiles");
    assert_eq!((tile_for(300), tile_for(16), tile_for(10)), (Tile::Wide, Tile::Wide, Tile::Wide));
    assert_eq!((tile_for(50), tile_for(20), tile_for(6), tile_for(1)), (Tile::Narrow, Tile::Narrow, Tile::Narrow, Tile::Narrow));
    let mut shapes = vec![(1, 1, 1), (3, 9, 300), (5, 50, 20), (64, 300, 100), (33, 17, 257)];
    for _ in 0..6 {
        shapes.push((1 + rng.below(150) as usize, 1 + rng.below(90) as usize, 1 + rng.below(600) as usize));
    }
    for (m, n, k) in shapes {
        let (a, b) = (random_vec(&mut rng, m * k, -1.0, 1.0), random_vec(&mut rng, k * n, -1.0, 1.0));
        let c0 = random_vec(&mut rng, m * n, -1.0, 1.0);
        for (ta, tb, accumulate) in [(false, false, false), (true, false, true), (false, true, false), (true, true, true)] {
            let (mut narrow, mut wide) = (c0.clone(), c0.clone());
            gemm_with(Tile::Narrow, &a, &b, &mut narrow, m, n, k, ta, tb, accumulate);
            gemm_with(Tile::Wide, &a, &b, &mut wide, m, n, k, ta, tb, accumulate);
            let same = narrow.iter().zip(&wide).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "gemm {m}x{n}x{k} ta {ta} tb {tb} acc {accumulate}: the 4x8 and 2x16 tiles differ (seed {seed})");
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_two_tiles_give_the_same_bits() {
    the_two_tiles_give_the_same_bits_body();
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
fn the_two_tiles_give_the_same_bits() {
    the_two_tiles_give_the_same_bits_body();
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn gemm_in_parts_is_bit_identical() {
    gemm_in_parts_is_bit_identical_body();
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
fn gemm_in_parts_is_bit_identical() {
    gemm_in_parts_is_bit_identical_body();
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn gemm_matches_reference() {
    gemm_matches_reference_body();
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
fn gemm_matches_reference() {
    gemm_matches_reference_body();
}

/// The native narrow-output product (reference::narrow: A read in place, B packed) against
/// matmul_reference: every output width from 1 to 32 (each packed width 8/16/24/32 and the
/// columns past N), row counts that leave a partial row block, K from 1 up, B plain and transposed.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn narrow_products_match_reference() {
    use squeeze::reference::narrow::{narrow_gemm, MAX_N};
    let (mut rng, seed) = fresh_rng("narrow gemm");
    for n in 1..=MAX_N {
        let (m, k) = (1 + rng.below(150) as usize, 1 + rng.below(300) as usize);
        let (a, b) = (random_vec(&mut rng, m * k, -1.0, 1.0), random_vec(&mut rng, k * n, -1.0, 1.0));
        for tb in [false, true] {
            let want = expected(&a, &b, &vec![0.0; m * n], (m, n, k), false, tb, false);
            common::assert_close(&format!("narrow {m}x{n}x{k} tb {tb}"), &narrow_gemm(&a, &b, m, n, k, tb), &want, 1e-4, 1e-4, seed);
        }
    }
}

/// The native CPU backend's products cut into bands for its pool (ops::matmul_parts: rows when C
/// is tall, columns when wide; narrow::narrow_gemm_parts: rows) against one pass, bit for bit, on
/// awkward shapes, every transpose, 2, 3 and 7 bands (more than some shapes have rows), with the
/// bands run on the pool where the machine has more than one core; and against matmul_reference.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn native_products_in_bands_are_bit_identical() {
    use squeeze::reference::narrow::{narrow_gemm_parts, MAX_N};
    use squeeze::reference::ops::matmul_parts;
    let (mut rng, seed) = fresh_rng("native bands");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (m, n) in [(1 + rng.below(9) as usize, 40 + rng.below(90) as usize), (70 + rng.below(90) as usize, 3 + rng.below(40) as usize), (33 + rng.below(60) as usize, 33 + rng.below(60) as usize)] {
        let k = 1 + rng.below(700) as usize;
        let (a, b) = (random_vec(&mut rng, m * k, -1.0, 1.0), random_vec(&mut rng, k * n, -1.0, 1.0));
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let whole = matmul_parts(&a, &b, m, n, k, ta, tb, 1);
            common::assert_close(&format!("{m}x{n}x{k} ta {ta} tb {tb}"), &whole, &expected(&a, &b, &vec![0.0; m * n], (m, n, k), ta, tb, false), 1e-4, 1e-4, seed);
            for parts in [2, 3, 7] {
                assert_eq!(bits(&matmul_parts(&a, &b, m, n, k, ta, tb, parts)), bits(&whole), "{m}x{n}x{k} ta {ta} tb {tb} in {parts} bands (seed {seed})");
            }
        }
    }
    for n in [1 + rng.below(8) as usize, 9 + rng.below(8) as usize, 17 + rng.below(8) as usize, 25 + rng.below(MAX_N as u32 - 24) as usize] {
        let (m, k) = (1 + rng.below(200) as usize, 1 + rng.below(300) as usize);
        let (a, b) = (random_vec(&mut rng, m * k, -1.0, 1.0), random_vec(&mut rng, k * n, -1.0, 1.0));
        for tb in [false, true] {
            let whole = narrow_gemm_parts(&a, &b, m, n, k, tb, 1);
            for parts in [2, 3, 7] {
                assert_eq!(bits(&narrow_gemm_parts(&a, &b, m, n, k, tb, parts)), bits(&whole), "narrow {m}x{n}x{k} tb {tb} in {parts} bands (seed {seed})");
            }
        }
    }
}

/// The CPU trainer's batch gather (Dataset::gather_jittered, row by row) against the GPU
/// kernel's twin (gather_batch_reference, pixel by pixel): bit for bit, on images of an awkward
/// size, a shuffled order, a full and a partial batch, with no jitter and with shifts up to 3.
fn the_trainers_gather_is_the_twins_body() {
    let (mut rng, seed) = fresh_rng("gather");
    let (h, w) = (5 + rng.below(20) as usize, 5 + rng.below(20) as usize);
    let data = common::synthetic_sized(&mut rng, 41, h, w);
    let mut order: Vec<u32> = (0..41).collect();
    rng.shuffle(&mut order);
    let norm = squeeze::data::Normalization { mean: rng.uniform(0.05, 0.5), std: rng.uniform(0.2, 0.5) };
    let (scale, shift) = norm.scale_shift();
    for jitter in [0, 1, 3] {
        for (offset, valid) in [(0, 16), (32, 9)] {
            let (x, y) = data.gather_jittered(&order, offset, valid, norm, jitter);
            let (want_x, want_y) = squeeze::reference::ops::gather_batch_reference(&data.images, &data.labels, h * w, &order, offset, valid, valid, scale, shift, (h, w), jitter);
            let same = x.iter().zip(want_x.iter()).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same && x.len() == want_x.len(), "gather of {h}x{w} images, jitter {jitter}, offset {offset}: not the twin's pixels (seed {seed})");
            assert_eq!(y, want_y, "labels (seed {seed})");
        }
    }
}

/// The optimizer's update cut into chunks for threads (reference::net::update_parts) against one
/// pass: bit for bit, SGD (momentum, weight decay, L1) and Adam, on a tensor of awkward length
/// and 1, 2, 3 and 7 chunks; and the update moves the weights (it is not skipped).
fn the_update_in_parts_is_bit_identical_body() {
    use squeeze::nn::{OptimParams, OptimizerKind};
    use squeeze::reference::net::update_parts;
    let (mut rng, seed) = fresh_rng("update parts");
    let n = 1000 + rng.below(5000) as usize;
    let (w0, g) = (random_vec(&mut rng, n, -1.0, 1.0), random_vec(&mut rng, n, -1.0, 1.0));
    let (m0, v0) = (random_vec(&mut rng, n, -0.1, 0.1), random_vec(&mut rng, n, 0.0, 0.1));
    let p = OptimParams { n: n as u32, lr: 0.05, momentum: 0.9, weight_decay: 5e-4, l1: 2e-5, beta2: 0.999, eps: 1e-8, ..Default::default() };
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let run = |parts: usize| {
            let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
            update_parts(kind, &mut w, &g, &mut m, &mut v, &p, parts);
            (w, m, v)
        };
        let whole = run(1);
        let moved = whole.0.iter().zip(&w0).filter(|(a, b)| a != b).count();
        assert!(moved > n * 99 / 100, "{kind:?} moved {moved} of {n} weights (seed {seed})");
        for parts in [2, 3, 7] {
            let cut = run(parts);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(bits(&cut.0) == bits(&whole.0) && bits(&cut.1) == bits(&whole.1) && bits(&cut.2) == bits(&whole.2), "{kind:?} in {parts} parts of {n} differs (seed {seed})");
        }
    }
}

/// im2col and col2im with the batch cut into runs of images for threads (ops::im2col_parts,
/// col2im_parts) against one pass: bit for bit, on a strided, padded geometry of awkward sizes,
/// 2, 3, 4 and more parts than images; col2im setting dX and adding into it.
fn conv_lowering_in_runs_of_images_is_bit_identical_body() {
    use squeeze::reference::ops::{col2im_parts, im2col_parts, Geometry};
    let (mut rng, seed) = fresh_rng("im2col parts");
    // A prime batch, so that 2, 3 and 4 parts leave a shorter last run.
    let (b, h, w, c) = ([7, 11, 13][rng.below(3) as usize], 6 + rng.below(9) as usize, 6 + rng.below(9) as usize, 1 + rng.below(4) as usize);
    let g = Geometry::new(b, h, w, c, 3, 1 + rng.below(2) as usize, rng.below(2) as usize);
    let x = random_vec(&mut rng, b * h * w * c, -1.0, 1.0);
    let dcols = random_vec(&mut rng, g.positions() * g.patch(), -1.0, 1.0);
    let dx0 = random_vec(&mut rng, x.len(), -1.0, 1.0);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let cols = im2col_parts(&x, &g, 1);
    assert!(cols.iter().any(|&v| v != 0.0), "im2col wrote nothing (seed {seed})");
    for accumulate in [false, true] {
        let mut whole = dx0.clone();
        col2im_parts(&dcols, &g, &mut whole, accumulate, 1);
        for parts in [2, 3, 4, b + 3] {
            assert_eq!(bits(&im2col_parts(&x, &g, parts)), bits(&cols), "im2col of {g:?} in {parts} parts (seed {seed})");
            let mut cut = dx0.clone();
            col2im_parts(&dcols, &g, &mut cut, accumulate, parts);
            assert_eq!(bits(&cut), bits(&whole), "col2im (accumulate {accumulate}) of {g:?} in {parts} parts (seed {seed})");
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn conv_lowering_in_runs_of_images_is_bit_identical() {
    conv_lowering_in_runs_of_images_is_bit_identical_body();
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
fn conv_lowering_in_runs_of_images_is_bit_identical() {
    conv_lowering_in_runs_of_images_is_bit_identical_body();
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_trainers_gather_is_the_twins() {
    the_trainers_gather_is_the_twins_body();
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
fn the_trainers_gather_is_the_twins() {
    the_trainers_gather_is_the_twins_body();
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_update_in_parts_is_bit_identical() {
    the_update_in_parts_is_bit_identical_body();
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen_test::wasm_bindgen_test]
fn the_update_in_parts_is_bit_identical() {
    the_update_in_parts_is_bit_identical_body();
}

fn small_recipe(arch: &str) -> Recipe {
    let model = if arch == "mlp" { r#"{"arch": "mlp", "hidden": [24]}"# } else { r#"{"arch": "lenet5"}"# };
    Recipe::from_json(&format!(r#"{{"dataset": "mnist", "seed": 3, "model": {model}, "train": {{"epochs": 1, "batch": 16, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}}}}"#)).unwrap()
}

async fn both_backends_are_timed_and_the_faster_chosen(ctx: GpuContext) {
    let gpu = Backend::Gpu(ctx);
    for arch in ["mlp", "lenet5"] {
        let recipe = small_recipe(arch);
        // A step count bounded by max_steps, a positive speed from both.
        let cpu = training_speed(&recipe, (28, 28), &Backend::Cpu, 0.05, 3).await.unwrap();
        assert!((1..=3).contains(&cpu.steps) && cpu.samples_per_s > 0.0, "{arch} cpu {cpu:?}");
        let c = choose(&recipe, (28, 28), Some(&gpu), 0.05).await.unwrap();
        let g = c.gpu.as_ref().expect("the GPU trained");
        assert!(c.cpu.samples_per_s > 0.0 && g.samples_per_s > 0.0, "{arch}: {c:?}");
        let faster = if g.samples_per_s > c.cpu.samples_per_s { "gpu" } else { "cpu" };
        assert_eq!(c.chosen, faster, "{arch}: {c:?}");
        assert!(c.summary.contains(if faster == "gpu" { "using the GPU" } else { "using the CPU" }) && c.summary.contains("WebGPU"), "{}", c.summary);
        // Without a GPU the CPU is the only choice.
        let alone = choose(&recipe, (20, 18), None, 0.02).await.unwrap();
        assert!(alone.gpu.is_none() && alone.chosen == "cpu" && alone.summary.contains("no WebGPU"), "{}", alone.summary);
    }
    // A training no backend can hold is refused with the run's message, before anything is made.
    let huge = Recipe::from_json(r#"{"dataset": "mnist", "model": {"arch": "vgg-mini", "widths": [256, 256]}, "train": {"epochs": 1, "batch": 8192, "optimizer": "sgd", "lr": 0.01}}"#).unwrap();
    let err = choose(&huge, (128, 128), Some(&gpu), 0.05).await.unwrap_err();
    assert!(err.to_string().contains("train.batch") && err.to_string().contains("8192 needs"), "{err}");
    // A model the images cannot carry is an error before any timing.
    let err = training_speed(&small_recipe("lenet5"), (3, 3), &Backend::Cpu, 0.05, 2).await.unwrap_err();
    assert!(err.to_string().contains("lenet5"), "{err}");
}

gpu_test!(backend_by_measurement, both_backends_are_timed_and_the_faster_chosen);
