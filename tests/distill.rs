//! The distillation head (shaders/loss.wgsl's distill_loss) against its CPU twin and against its definition:
//! the loss and gradient of the student's logits against a teacher's logits and the labels
//! (soft targets at temperature T, MSE between logits, cross-entropy, and their combination), on
//! awkward batch shapes with padding rows; the twin's gradient against finite differences of an
//! independent f64 loss; T = 1 with only the KL term is cross-entropy against the teacher's
//! probabilities (less their entropy); the CE term alone is the plain head. And the distill
//! stage through a recipe on both backends. Natively and in the browser.

mod common;
use common::{assert_close, fresh_rng, random_vec};
use ndarray::Array2;
use squeeze::gpu::kernels::{run, HeadParams, StepParams};
use squeeze::gpu::GpuContext;
use squeeze::data::Splits;
use squeeze::experiment::{Backend, Control, RunOptions};
use squeeze::nn::DistillParams;
use squeeze::recipe::Recipe;
use squeeze::reference::ops::{distill_loss_reference, softmax_xent_reference};

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// The mean loss over the valid rows, in f64, from the definition (log-sum-exp written out).
fn loss_f64(z: &[f64], t: &[f64], labels: &[u32], classes: usize, valid: usize, p: &DistillParams) -> f64 {
    let tt = p.temperature as f64;
    let log_softmax = |r: &[f64], temp: f64| -> Vec<f64> {
        let mx = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ls = r.iter().map(|v| ((v - mx) / temp).exp()).sum::<f64>().ln();
        r.iter().map(|v| (v - mx) / temp - ls).collect()
    };
    let mut total = 0.0;
    for b in 0..valid {
        let (zr, tr) = (&z[b * classes..(b + 1) * classes], &t[b * classes..(b + 1) * classes]);
        let (lq1, lqt, lpt) = (log_softmax(zr, 1.0), log_softmax(zr, tt), log_softmax(tr, tt));
        let kl: f64 = (0..classes).map(|c| lpt[c].exp() * (lpt[c] - lqt[c])).sum();
        let mse: f64 = (0..classes).map(|c| (zr[c] - tr[c]).powi(2)).sum::<f64>() / classes as f64;
        total += p.kl as f64 * tt * tt * kl - p.ce as f64 * lq1[labels[b] as usize] + p.mse as f64 * mse;
    }
    total / valid as f64
}

async fn distill_loss_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("distill loss");
    for &(rows, classes, valid) in &[(1, 10, 1), (13, 10, 11), (70, 7, 65)] {
        for (temperature, kl, ce, mse) in [(1.0, 1.0, 0.0, 0.0), (2.5, 0.7, 0.3, 0.0), (20.0, 0.9, 0.1, 0.0), (4.0, 0.5, 0.2, 0.3), (1.0, 0.0, 1.0, 0.0), (3.0, 0.0, 0.0, 1.0)] {
            let what = format!("{rows}x{classes} ({valid} valid), T {temperature}, kl {kl} ce {ce} mse {mse}");
            let p = DistillParams { temperature, kl, ce, mse };
            let head = HeadParams { rows: rows as u32, classes: classes as u32 };
            let z = random_vec(&mut rng, rows * classes, -5.0, 5.0);
            let t = random_vec(&mut rng, rows * classes, -8.0, 8.0);
            let labels: Vec<u32> = (0..rows).map(|_| rng.below(classes as u32)).collect();
            let step = ctx.uniform(&StepParams { offset: 0, valid: valid as u32 }, "step");
            let (gz, gt, gy) = (ctx.storage(&z, "student"), ctx.storage(&t, "teacher"), ctx.storage(&labels, "labels"));
            let (gd, gl) = (ctx.storage(&vec![f32::NAN; rows * classes], "dlogits"), ctx.storage(&vec![f32::NAN; rows], "row loss"));
            run(&ctx, [&ctx.distill_loss(head, p, &step, &gz, &gt, &gy, &gd, &gl)]);
            let za = Array2::from_shape_vec((rows, classes), z.clone()).unwrap();
            let ta = Array2::from_shape_vec((rows, classes), t.clone()).unwrap();
            let (want_d, want_loss) = distill_loss_reference(&za, &ta, &labels, valid, &p);
            let want_d = want_d.into_raw_vec_and_offset().0;
            assert_close(&format!("distill_loss dlogits {what}"), &ctx.read::<f32>(&gd).await.unwrap()[..rows * classes], &want_d, 1e-3, 1e-6, seed);
            assert_close(&format!("distill_loss row loss {what}"), &ctx.read::<f32>(&gl).await.unwrap()[..rows], &want_loss, 1e-3, 1e-5, seed);

            // The twin's gradient is the gradient of the definition (central differences, f64).
            let (z64, t64): (Vec<f64>, Vec<f64>) = (z.iter().map(|&v| v as f64).collect(), t.iter().map(|&v| v as f64).collect());
            let mean: f64 = want_loss.iter().map(|&v| v as f64).sum::<f64>() / valid as f64;
            let exact = loss_f64(&z64, &t64, &labels, classes, valid, &p);
            assert!((mean - exact).abs() <= 1e-4 * exact.abs().max(1.0), "{what}: mean loss {mean}, definition {exact} (seed {seed})");
            for i in (0..valid * classes).step_by(3) {
                let h = 1e-5;
                let (mut up, mut down) = (z64.clone(), z64.clone());
                up[i] += h;
                down[i] -= h;
                let fd = (loss_f64(&up, &t64, &labels, classes, valid, &p) - loss_f64(&down, &t64, &labels, classes, valid, &p)) / (2.0 * h);
                assert!((want_d[i] as f64 - fd).abs() <= 1e-4 + 1e-3 * fd.abs(), "{what}: dlogits[{i}] {} vs finite differences {fd} (seed {seed})", want_d[i]);
            }
            assert!(want_d[valid * classes..].iter().all(|&v| v == 0.0) && want_loss[valid..].iter().all(|&v| v == 0.0), "{what}: padding rows");

            // Special cases: the KL term alone at T = 1 is cross-entropy against the teacher's
            // probabilities minus their entropy; the CE term alone is the plain head.
            if (temperature, kl, ce, mse) == (1.0, 1.0, 0.0, 0.0) {
                for b in 0..valid {
                    let soft = |r: &[f32]| -> Vec<f64> {
                        let mx = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                        let s: f64 = r.iter().map(|&v| (v as f64 - mx).exp()).sum();
                        r.iter().map(|&v| (v as f64 - mx).exp() / s).collect()
                    };
                    let (q, pt) = (soft(&z[b * classes..(b + 1) * classes]), soft(&t[b * classes..(b + 1) * classes]));
                    let cross: f64 = -(0..classes).map(|c| pt[c] * q[c].ln()).sum::<f64>();
                    let entropy: f64 = -(0..classes).filter(|&c| pt[c] > 0.0).map(|c| pt[c] * pt[c].ln()).sum::<f64>();
                    assert!((want_loss[b] as f64 - (cross - entropy)).abs() <= 1e-4 * cross.max(1.0), "{what}: row {b} is not CE against the teacher (seed {seed})");
                    for c in 0..classes {
                        let g = (q[c] - pt[c]) / valid as f64;
                        assert!((want_d[b * classes + c] as f64 - g).abs() <= 1e-6, "{what}: gradient is not softmax(z) − softmax(t) (seed {seed})");
                    }
                }
            }
            if (kl, ce, mse) == (0.0, 1.0, 0.0) {
                let (plain_d, plain_loss) = softmax_xent_reference(&za, &labels, valid);
                assert_close(&format!("{what}: CE alone vs softmax_xent (gradient)"), &want_d, plain_d.as_slice().unwrap(), 1e-5, 1e-7, seed);
                assert_close(&format!("{what}: CE alone vs softmax_xent (loss)"), &want_loss, &plain_loss, 1e-5, 1e-6, seed);
                let (gd2, gl2) = (ctx.storage_zeroed(4 * (rows * classes) as u64, "d"), ctx.storage_zeroed(4 * rows as u64, "l"));
                run(&ctx, [&ctx.softmax_xent(head, &step, &gz, &gy, &gd2, &gl2)]);
                assert_close(&format!("{what}: GPU CE alone vs GPU softmax_xent"), &ctx.read::<f32>(&gd).await.unwrap()[..rows * classes], &ctx.read::<f32>(&gd2).await.unwrap()[..rows * classes], 1e-5, 1e-7, seed);
            }
        }
    }
}
gpu_test!(distill_loss_matches_reference_and_definition, distill_loss_case);

/// Synthetic digits of `shape` in four classes a net can learn (the first pixel's quarter of 0..255).
fn four_classes(rng: &mut squeeze::rng::Rng, (train, test): (usize, usize), (h, w): (usize, usize)) -> Splits {
    let mut data = Splits::new("synthetic", common::synthetic_sized(rng, train, h, w), common::synthetic_sized(rng, test, h, w)).unwrap();
    for ds in [&mut data.train, &mut data.test] {
        let p = ds.rows * ds.cols;
        ds.labels = (0..ds.n).map(|i| ds.images[i * p] / 64).collect();
    }
    data
}

/// The distill stage through a recipe, on both backends: a 32-16 MLP teacher trained on synthetic
/// digits in four classes, then a 6-unit student distilled from it at T = 3 (with its labels-only
/// baseline) and quantized after: the report carries the teacher's accuracy (the trained stage's),
/// the baseline, agreement and KL; the student is the model from then on, and the stage after it
/// works on the student.
async fn distill_stage_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("distill stage");
    let data = four_classes(&mut rng, (480, 200), (10, 9));
    let recipe = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 3, "model": {"arch": "mlp", "hidden": [32, 16]},
            "train": {"epochs": 6, "batch": 16, "lr": 0.05, "momentum": 0.9},
            "stages": [{"distill": {"student": {"arch": "mlp", "hidden": [6]}, "temperature": 3, "alpha": 0.8,
                                    "train": {"epochs": 6, "batch": 16, "lr": 0.05, "momentum": 0.9}}},
                       {"quantize": {"weights": {"bits": 8, "layer_bits": [8, 6]}}}]}"#,
    )
    .unwrap();
    for backend in [Backend::Gpu(ctx.clone()), Backend::Cpu] {
        let what = if matches!(backend, Backend::Cpu) { "cpu" } else { "gpu" };
        let out = squeeze::experiment::run(&recipe, &data, &backend, &RunOptions { progress_every: 50, ..Default::default() }, &mut |_| Control::Continue).await.unwrap();
        let (teacher, stage) = (&out.report.stages[0], &out.report.stages[1]);
        assert_eq!(stage.name, "distill", "{what}");
        let d = stage.distillation().expect("a distillation report");
        assert_eq!(d.teacher_accuracy, teacher.test_accuracy, "{what}: the teacher is the trained model");
        assert!(teacher.test_accuracy > 0.45, "{what}: the teacher learnt nothing ({}, seed {seed})", teacher.test_accuracy);
        assert!(stage.test_accuracy > 0.4 && d.baseline_accuracy.is_some_and(|b| b > 0.3), "{what}: student {} baseline {:?} (seed {seed})", stage.test_accuracy, d.baseline_accuracy);
        assert!(d.agreement > 0.5 && d.agreement <= 1.0 && d.mean_kl.is_finite() && d.mean_kl >= 0.0, "{what}: agreement {} KL {} (seed {seed})", d.agreement, d.mean_kl);
        assert_eq!((stage.epochs.len(), d.student_parameters, d.teacher_parameters), (6, 90 * 6 + 6 + 6 * 10 + 10, 90 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10), "{what}");
        // The student is the model from then on: the quantize stage quantized its two layers
        // (and the recipe's per-layer widths were validated against the student's two).
        let q = out.report.stages[2].quantization().unwrap();
        assert_eq!(q.layers.len(), 2, "{what}");
        assert_eq!(out.net.layer_dims(), vec![(90, 6), (6, 10)], "{what}");
        // The temperature plot's examples: the first test image of each class, as stored.
        let classes: std::collections::BTreeSet<u8> = data.test.labels.iter().copied().collect();
        assert_eq!(d.examples.iter().map(|e| e.label).collect::<Vec<_>>(), classes.into_iter().collect::<Vec<_>>(), "{what}");
        for e in &d.examples {
            let p = data.test.pixels();
            assert_eq!((data.test.labels[e.index], data.test.labels[..e.index].contains(&e.label)), (e.label, false), "{what}");
            assert_eq!((&e.pixels[..], e.logits.len(), e.rows * e.cols), (&data.test.images[e.index * p..(e.index + 1) * p], 10, p), "{what}");
        }
        // The teacher's snapshot is the trained model, untouched.
        assert_eq!(out.models[0].net.layer_dims(), vec![(90, 32), (32, 16), (16, 10)], "{what}");
    }
}
gpu_test!(distill_stage_runs_on_both_backends, distill_stage_case);

/// A `.sqz` file as the teacher, on both backends: a 32-16 MLP trained by one run and saved, then
/// named by a second run whose training images are darker (another input normalisation): the
/// teacher is evaluated as it was trained (its accuracy on the shared test split is the first
/// run's, to the bit), the student distils from it. A file the run was not given, or one for
/// other images, is refused before any work (no event sent).
async fn teacher_file_case(ctx: GpuContext) {
    use squeeze::experiment::ModelFiles;
    let (mut rng, seed) = fresh_rng("teacher file");
    let data = four_classes(&mut rng, (480, 200), (10, 9));
    let teacher_recipe = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 4, "model": {"arch": "mlp", "hidden": [32, 16]}, "train": {"epochs": 5, "batch": 16, "lr": 0.05, "momentum": 0.9}}"#,
    )
    .unwrap();
    let recipe = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 5, "model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 1, "batch": 16, "lr": 0.05},
            "stages": [{"distill": {"teacher": {"file": "teacher.sqz"}, "student": {"arch": "mlp", "hidden": [6]}, "temperature": 3, "alpha": 0.8,
                                    "train": {"epochs": 3, "batch": 16, "lr": 0.05, "momentum": 0.9}, "baseline": false}}]}"#,
    )
    .unwrap();
    let mut darker = data.clone();
    darker.train.images.iter_mut().for_each(|p| *p /= 2);
    for backend in [Backend::Gpu(ctx.clone()), Backend::Cpu] {
        let what = if matches!(backend, Backend::Cpu) { "cpu" } else { "gpu" };
        let opts = RunOptions { progress_every: 50, ..Default::default() };
        let first = squeeze::experiment::run(&teacher_recipe, &data, &backend, &opts, &mut |_| Control::Continue).await.unwrap();
        let bytes = squeeze::export::save(&first.models[0], first.norm);
        let files: ModelFiles = [("teacher.sqz".to_string(), squeeze::export::load(&bytes).unwrap())].into();
        let with = RunOptions { files, ..opts.clone() };
        let out = squeeze::experiment::run(&recipe, &darker, &backend, &with, &mut |_| Control::Continue).await.unwrap();
        assert_ne!(out.norm, first.norm, "{what}: the two runs share a normalisation; the test needs them apart");
        let d = out.report.stages[1].distillation().unwrap();
        assert_eq!((d.teacher_accuracy, d.teacher_parameters), (first.report.stages[0].test_accuracy, 90 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10), "{what}: the file's teacher (seed {seed})");
        // (Agreement is not asserted: the student learns on darker images than it is tested on,
        // 0.29-0.8 over 40 seeds. That the teacher reads its own normalisation in the step is
        // `teacher_reads_its_own_normalisation`'s to show.)
        assert!(first.report.stages[0].test_accuracy > 0.45, "{what}: teacher {} (seed {seed})", first.report.stages[0].test_accuracy);
        assert_eq!(out.net.layer_dims(), vec![(90, 6), (6, 10)], "{what}");
        // Not given the file, or given one for other images: refused before any event.
        let net = squeeze::nn::Net::mlp(squeeze::nn::Shape::new(28, 28, 1), &[4], 10);
        let other = squeeze::inspect::StageModel::float("other", net.clone(), squeeze::nn::NetParams::init(&net, 1));
        let wrong: ModelFiles = [("teacher.sqz".to_string(), (other, first.norm))].into();
        for (files, says) in [(ModelFiles::new(), "not loaded"), (wrong, "28x28x1")] {
            let mut events = 0;
            let e = squeeze::experiment::run(&recipe, &darker, &backend, &RunOptions { files, ..opts.clone() }, &mut |_| {
                events += 1;
                Control::Continue
            })
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: a run without its teacher file ran"));
            assert!(e.to_string().contains("stages[0].distill.teacher.file") && e.to_string().contains(says) && events == 0, "{what}: {e} ({events} events)");
        }
    }
}
gpu_test!(teacher_from_a_model_file, teacher_file_case);

/// A student that cannot be built on the data's images (lenet5 on 10x9 pixels) is refused before
/// the teacher trains (the run fails at once, with no event sent).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn impossible_student_is_refused_before_training() {
    let mut rng = squeeze::rng::Rng::new(4, 77);
    let data = Splits::new("synthetic", common::synthetic_sized(&mut rng, 40, 10, 9), common::synthetic_sized(&mut rng, 10, 10, 9)).unwrap();
    let recipe = Recipe::from_json(
        r#"{"dataset": "mnist", "model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 1, "lr": 0.05},
            "stages": [{"distill": {"student": {"arch": "lenet5"}, "train": {"epochs": 1, "lr": 0.05}}}]}"#,
    )
    .unwrap();
    let mut events = 0;
    let out = pollster::block_on(squeeze::experiment::run(&recipe, &data, &Backend::Cpu, &RunOptions::default(), &mut |_| {
        events += 1;
        Control::Continue
    }));
    let err = out.err().expect("refused").to_string();
    assert!(err.contains("lenet5 needs images of at least 16x16"), "{err}");
    assert_eq!(events, 0, "work started before the refusal");
}

/// Hinton's omitted-class experiment through a recipe, on both backends: the transfer set really
/// lacks the class (and keeps every other sample, in order); the student's report says how many
/// images it learned from and its accuracy on the omitted class before and after the bias shift
/// (a raised bias can only win rows for that class); a later distill stage takes the first
/// training's model as its teacher (`"teacher": "trained"`), not the student before it.
async fn omitted_class_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("omitted class");
    let data = four_classes(&mut rng, (400, 160), (10, 9));
    let transfer = data.train.without_classes(&[2]);
    let kept: Vec<usize> = (0..data.train.n).filter(|&i| data.train.labels[i] != 2).collect();
    assert!(kept.len() < data.train.n && !transfer.labels.contains(&2), "the transfer set holds a 2 (seed {seed})");
    assert_eq!(transfer.n, kept.len());
    let p = data.train.pixels();
    for (k, &i) in kept.iter().enumerate() {
        assert_eq!((transfer.labels[k], &transfer.images[k * p..(k + 1) * p]), (data.train.labels[i], &data.train.images[i * p..(i + 1) * p]), "sample {k}");
    }
    let twos = data.test.labels.iter().filter(|&&l| l == 2).count();
    let recipe = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 5, "model": {"arch": "mlp", "hidden": [32, 16]},
            "train": {"epochs": 6, "batch": 16, "lr": 0.05, "momentum": 0.9},
            "stages": [{"distill": {"student": {"arch": "mlp", "hidden": [12]}, "temperature": 3, "alpha": 0.9, "omit": [2], "bias_correction": 2.5,
                                    "train": {"epochs": 4, "batch": 16, "lr": 0.05, "momentum": 0.9}, "baseline": false}},
                       {"distill": {"student": {"arch": "mlp", "hidden": [5]}, "teacher": "trained",
                                    "train": {"epochs": 1, "batch": 16, "lr": 0.05, "momentum": 0.9}, "baseline": false}}]}"#,
    )
    .unwrap();
    for backend in [Backend::Gpu(ctx.clone()), Backend::Cpu] {
        let what = if matches!(backend, Backend::Cpu) { "cpu" } else { "gpu" };
        let out = squeeze::experiment::run(&recipe, &data, &backend, &RunOptions { progress_every: 50, ..Default::default() }, &mut |_| Control::Continue).await.unwrap();
        let d = out.report.stages[1].distillation().unwrap();
        let o = d.omitted.as_ref().expect("an omitted-class report");
        assert_eq!((o.classes.clone(), o.transfer_samples, o.test_samples_omitted, o.bias_shift), (vec![2], transfer.n, twos, 2.5), "{what}");
        // Every epoch saw the transfer set only.
        assert!(out.report.stages[1].samples_per_s > 0.0 && out.report.stages[1].epochs.len() == 4, "{what}");
        assert!(o.omitted_accuracy >= o.omitted_accuracy_before, "{what}: the raised bias lost 2s: {} -> {} (seed {seed})", o.omitted_accuracy_before, o.omitted_accuracy);
        // The stage's figures are the corrected model's: the model it left (raised bias and all)
        // gets them on the test split (to an image: another batching of the same forward).
        let c = squeeze::inspect::confusion(&out.models[1], out.norm, &data.test, data.test.n).unwrap();
        let n = data.test.n as f32;
        let right = (0..10).map(|k| c.matrix[k][k]).sum::<u32>() as f32;
        assert!((right / n - out.report.stages[1].test_accuracy).abs() <= 1.5 / n, "{what}: the model left gets {} , the stage says {}", right / n, out.report.stages[1].test_accuracy);
        let twos_right = c.matrix[2][2] as f32 / twos as f32;
        assert!((twos_right - o.omitted_accuracy).abs() <= 1.5 / twos as f32, "{what}: the model left gets {twos_right} of the 2s, the report {}", o.omitted_accuracy);
        // And it is the student with its class-2 bias raised by 2.5: lowered again, it gets the
        // figure from before the shift.
        let mut unshifted = out.models[1].clone();
        squeeze::experiment::distill::shift_class_bias(&unshifted.net.clone(), &mut unshifted.params, &[2], -2.5);
        let c = squeeze::inspect::confusion(&unshifted, out.norm, &data.test, data.test.n).unwrap();
        let before = c.matrix[2][2] as f32 / twos as f32;
        assert!((before - o.omitted_accuracy_before).abs() <= 1.5 / twos as f32, "{what}: unshifted {before} of the 2s, the report before {} (seed {seed})", o.omitted_accuracy_before);
        // The second stage's teacher is the trained 32-16 model, not the 12-unit student.
        let second = out.report.stages[2].distillation().unwrap();
        assert_eq!((second.teacher_parameters, second.teacher_accuracy), (90 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10, out.report.stages[0].test_accuracy), "{what}");
    }
}
gpu_test!(omitted_class_transfer_set_and_bias_correction, omitted_class_case);

/// The teacher is frozen: after an epoch of distillation on the GPU its parameters, batch-norm
/// running statistics included, are bit-identical to what was uploaded (its forward runs in
/// inference mode inside the student's step).
async fn frozen_teacher_case(ctx: GpuContext) {
    use squeeze::gpu::GpuTrainer;
    use squeeze::nn::{Net, NetParams, OptimizerConfig, OptimizerKind, Shape, Teacher};
    let (mut rng, seed) = fresh_rng("frozen teacher");
    let data = Splits::new("synthetic", common::synthetic_sized(&mut rng, 45, 11, 9), common::synthetic_sized(&mut rng, 10, 11, 9)).unwrap();
    let net = Net::vgg_mini(Shape::new(11, 9, 1), &[3, 4], 10);
    let teacher = Teacher { params: common::trained_like(&net, &mut rng, seed), net, activations: vec![], norm: None };
    let student = Net::mlp(Shape::new(11, 9, 1), &[7], 10);
    let opt = OptimizerConfig { kind: OptimizerKind::Adam, lr: 0.01, momentum: 0.9, beta2: 0.999, eps: 1e-6, weight_decay: 0.0, l1: 0.0 };
    let mut gpu = GpuTrainer::new(&ctx, &student, &NetParams::init(&student, seed), opt, &data, data.train.normalization(), 8);
    gpu.set_teacher(&teacher, DistillParams::soft_targets(4.0, 0.9)).unwrap();
    gpu.begin_epoch(&data.train.epoch_order(seed, 0));
    for (offset, valid) in data.train.batches(8) {
        gpu.train_step(offset, valid, 0.01);
    }
    let after = gpu.teacher_params().await.unwrap();
    for (j, (a, b)) in after.tensors.iter().zip(&teacher.params.tensors).enumerate() {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "teacher tensor {j} changed (seed {seed})");
    }
    assert!(gpu.params().await.unwrap().max_abs_diff(&NetParams::init(&student, seed)) > 1e-3, "the student did not train (seed {seed})");
}
gpu_test!(teacher_parameters_stay_bit_identical, frozen_teacher_case);

/// A teacher trained with another input normalisation (a model file from other data) sees its
/// own: distilling from an MLP teacher with normalisation N_t trains the student exactly as the
/// same teacher with N_t folded into its first layer (W' = a·W, b' = b + c·Σ_i W_i, where
/// x_t = a·x + c) reading the student's input, on both backends, with jittered images; and not
/// as the unfolded teacher reading the student's input.
async fn teacher_norm_case(ctx: GpuContext) {
    use squeeze::data::Normalization;
    use squeeze::gpu::GpuTrainer;
    use squeeze::nn::{Net, NetParams, OptimizerConfig, OptimizerKind, Shape, Teacher};
    use squeeze::reference::net::CpuTrainer;
    let (mut rng, seed) = fresh_rng("teacher normalisation");
    let data = Splits::new("synthetic", common::synthetic_sized(&mut rng, 37, 11, 9), common::synthetic_sized(&mut rng, 10, 11, 9)).unwrap();
    let norm = data.train.normalization();
    let own = Normalization { mean: norm.mean + 0.11, std: norm.std * 0.8 };
    let net = Net::mlp(Shape::new(11, 9, 1), &[13], 10);
    let params = common::trained_like(&net, &mut rng, seed);
    let ((sa, ca), (sb, cb)) = (own.scale_shift(), norm.scale_shift());
    let (a, c) = (sa / sb, ca - sa / sb * cb);
    let mut folded = params.clone();
    let cols = net.tensors()[0].cols;
    let w = params.tensors[0].clone();
    folded.tensors[0].iter_mut().for_each(|v| *v *= a);
    for (o, b) in folded.tensors[1].iter_mut().enumerate() {
        *b += c * w.iter().skip(o).step_by(cols).sum::<f32>();
    }
    let teachers = [
        Teacher { net: net.clone(), params: params.clone(), activations: vec![], norm: Some(own) },
        Teacher { net: net.clone(), params: folded, activations: vec![], norm: None },
        Teacher { net: net.clone(), params, activations: vec![], norm: None },
    ];
    let student = Net::mlp(Shape::new(11, 9, 1), &[7], 10);
    let init = NetParams::init(&student, seed);
    let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.05, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
    let p = DistillParams::soft_targets(3.0, 0.8);
    let mut trained = Vec::new();
    for t in &teachers {
        let mut gpu = GpuTrainer::new(&ctx, &student, &init, opt.clone(), &data, norm, 8);
        let mut cpu = CpuTrainer::new(&student, init.clone(), opt.clone(), data.clone(), norm, 8);
        gpu.set_teacher(t, p).unwrap();
        cpu.set_teacher(t, p).unwrap();
        gpu.set_jitter(1);
        cpu.set_jitter(1);
        common::in_lockstep(&mut gpu, &mut [&mut cpu], &data, seed, (1, 8, 0.05));
        trained.push((gpu.params().await.unwrap(), cpu.params.clone()));
    }
    for (k, what) in [(0, "gpu"), (1, "cpu")] {
        let side = |i: usize| if k == 0 { &trained[i].0 } else { &trained[i].1 };
        for (j, (x, y)) in side(0).tensors.iter().zip(&side(1).tensors).enumerate() {
            assert_close(&format!("{what}: own normalisation vs folded, tensor {j}"), x, y, 1e-4, 1e-3, seed);
        }
        let d = side(0).max_abs_diff(side(2));
        assert!(d > 1e-3, "{what}: the teacher's normalisation made no difference ({d}, seed {seed})");
    }
}
gpu_test!(teacher_reads_its_own_normalisation, teacher_norm_case);

/// A teacher's logits cached once for the training split (no jitter, no node losses) train the
/// student as its forward inside every step does: after two epochs the cached and in-step
/// students agree on each backend, and the GPU's cached student is the CPU's. Jitter or a node
/// loss set later puts the forward back into the step.
async fn teacher_cache_case(ctx: GpuContext) {
    use squeeze::data::Normalization;
    use squeeze::gpu::GpuTrainer;
    use squeeze::nn::{Hint, Net, NetParams, OptimizerConfig, OptimizerKind, Shape, Teacher};
    use squeeze::reference::net::CpuTrainer;
    let (mut rng, seed) = fresh_rng("teacher cache");
    let data = Splits::new("synthetic", common::synthetic_sized(&mut rng, 45, 11, 9), common::synthetic_sized(&mut rng, 10, 11, 9)).unwrap();
    let norm = data.train.normalization();
    let net = Net::vgg_mini(Shape::new(11, 9, 1), &[3], 10);
    let teacher = Teacher { params: common::trained_like(&net, &mut rng, seed), net, activations: vec![], norm: Some(Normalization { mean: norm.mean - 0.05, std: norm.std * 1.2 }) };
    let student = Net::mlp(Shape::new(11, 9, 1), &[7], 10);
    let init = NetParams::init(&student, seed);
    let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.05, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
    let p = DistillParams { mse: 0.1, ..DistillParams::soft_targets(2.0, 0.7) };
    let mut out = Vec::new();
    for cache in [true, false] {
        let mut gpu = GpuTrainer::new(&ctx, &student, &init, opt.clone(), &data, norm, 8);
        let mut cpu = CpuTrainer::new(&student, init.clone(), opt.clone(), data.clone(), norm, 8);
        gpu.prefer_teacher_cache(cache);
        cpu.prefer_teacher_cache(cache);
        gpu.set_teacher(&teacher, p).unwrap();
        cpu.set_teacher(&teacher, p).unwrap();
        assert_eq!((gpu.teacher_cached(), cpu.teacher_cached()), (cache, cache));
        common::in_lockstep(&mut gpu, &mut [&mut cpu], &data, seed, (2, 8, 0.05));
        let (g, c) = (gpu.take_metrics().await.unwrap(), cpu.take_metrics());
        assert_close(&format!("loss sums, cached {cache}"), &g[..1], &c[..1], 1e-3, 1e-3, seed);
        out.push((gpu.params().await.unwrap(), cpu.params.clone()));
        if cache {
            // Later jitter, or a hint, needs the forward in the step again.
            gpu.set_jitter(1);
            cpu.set_jitter(1);
            assert!(!gpu.teacher_cached() && !cpu.teacher_cached(), "jitter kept the cache");
            let (mut g2, mut c2) = (GpuTrainer::new(&ctx, &student, &init, opt.clone(), &data, norm, 8), CpuTrainer::new(&student, init.clone(), opt.clone(), data.clone(), norm, 8));
            g2.set_teacher(&teacher, p).unwrap();
            c2.set_teacher(&teacher, p).unwrap();
            assert!(g2.teacher_cached() && c2.teacher_cached());
            let hint = [Hint { student: 1, teacher: 6, weight: 1.0 }]; // 7 hidden units -> the 128 of vgg-mini's fc
            g2.set_node_losses(&[], &hint).unwrap();
            c2.set_node_losses(&[], &hint).unwrap();
            assert!(!g2.teacher_cached() && !c2.teacher_cached(), "a hint kept the cache");
        }
    }
    for (j, ((gc, cc), (gs, cs))) in out[0].0.tensors.iter().zip(&out[0].1.tensors).zip(out[1].0.tensors.iter().zip(&out[1].1.tensors)).enumerate() {
        assert_close(&format!("gpu cached vs in-step, tensor {j}"), gc, gs, 1e-4, 1e-3, seed);
        assert_close(&format!("cpu cached vs in-step, tensor {j}"), cc, cs, 1e-4, 1e-3, seed);
        assert_close(&format!("cached gpu vs cpu, tensor {j}"), gc, cc, 1e-4, 1e-3, seed);
    }
    assert!(out[0].1.max_abs_diff(&init) > 1e-2, "the student did not train (seed {seed})");
}
gpu_test!(cached_teacher_logits_train_as_the_in_step_forward, teacher_cache_case);

/// The T × α grid through a recipe, on both backends: one student per cell; with α = 0 the loss
/// is plain cross-entropy whatever T is, so those cells train identically (same start, same sample
/// orders) and must agree exactly; the grid is a scan (the model after it is the one before: a
/// distill stage after it is taught by the trained model, and no model snapshot is kept for it).
async fn grid_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("distill grid");
    let data = four_classes(&mut rng, (240, 120), (10, 9));
    let recipe = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 2, "model": {"arch": "mlp", "hidden": [24]},
            "train": {"epochs": 4, "batch": 16, "lr": 0.05, "momentum": 0.9},
            "stages": [{"distill-grid": {"student": {"arch": "mlp", "hidden": [6]}, "temperatures": [1, 4, 9], "alphas": [0, 0.9],
                                         "train": {"epochs": 2, "batch": 16, "lr": 0.05, "momentum": 0.9}}},
                       {"distill": {"student": {"arch": "mlp", "hidden": [6]}, "train": {"epochs": 1, "batch": 16, "lr": 0.05}, "baseline": false}}]}"#,
    )
    .unwrap();
    for backend in [Backend::Gpu(ctx.clone()), Backend::Cpu] {
        let what = if matches!(backend, Backend::Cpu) { "cpu" } else { "gpu" };
        let out = squeeze::experiment::run(&recipe, &data, &backend, &RunOptions { progress_every: 50, ..Default::default() }, &mut |_| Control::Continue).await.unwrap();
        let g = out.report.stages[1].distill_grid().expect("a grid report");
        assert_eq!((g.temperatures.clone(), g.alphas.clone(), g.accuracy.len(), g.accuracy[0].len()), (vec![1.0, 4.0, 9.0], vec![0.0, 0.9], 2, 3), "{what}");
        let labels_only = g.accuracy[0][0].expect("converged");
        assert!(g.accuracy[0].iter().all(|&a| a == Some(labels_only)), "{what}: alpha 0 depends on T: {:?} (seed {seed})", g.accuracy[0]);
        assert!(g.accuracy.iter().flatten().all(|a| a.is_some_and(|a| a > 0.0 && a <= 1.0)), "{what}: {:?}", g.accuracy);
        let best = g.best.unwrap();
        assert_eq!(best.2, g.accuracy.iter().flatten().flatten().fold(0.0f32, |m, &a| m.max(a)), "{what}");
        assert_eq!(g.teacher_accuracy, out.report.stages[0].test_accuracy, "{what}");
        assert_eq!(out.report.stages[2].distillation().unwrap().teacher_accuracy, out.report.stages[0].test_accuracy, "{what}: the grid changed the model");
        assert_eq!(out.models.iter().map(|m| m.stage).collect::<Vec<_>>(), vec![0, 2], "{what}");
    }
}
gpu_test!(distill_grid_cells_and_scan, grid_case);

/// (β/2)·‖v_S − v_T‖² averaged over the valid rows, in f64 from the definition.
fn attention_f64(s: &[f64], t: &[f32], valid: usize, positions: usize, cs: usize, ct: usize, beta: f64) -> f64 {
    let mut total = 0.0;
    for b in 0..valid {
        let qs: Vec<f64> = (0..positions).map(|q| (0..cs).map(|c| s[(b * positions + q) * cs + c].powi(2)).sum()).collect();
        let qt: Vec<f64> = (0..positions).map(|q| (0..ct).map(|c| (t[(b * positions + q) * ct + c] as f64).powi(2)).sum()).collect();
        let (ns, nt) = (qs.iter().map(|v| v * v).sum::<f64>().sqrt(), qt.iter().map(|v| v * v).sum::<f64>().sqrt());
        let unit = |v: f64, n: f64| if n > 0.0 { v / n } else { 0.0 };
        total += 0.5 * beta * qs.iter().zip(&qt).map(|(a, b)| (unit(*a, ns) - unit(*b, nt)).powi(2)).sum::<f64>();
    }
    total / valid as f64
}

/// Attention transfer (shaders/attention.wgsl) against its twin on awkward shapes (padding rows,
/// more positions than a workgroup's 64 lanes, different channel counts, a row whose student map
/// is all zero), and the twin's gradient against finite differences of the definition.
async fn attention_case(ctx: GpuContext) {
    use squeeze::gpu::kernels::AttentionParams;
    use squeeze::reference::ops::attention_transfer_reference;
    let (mut rng, seed) = fresh_rng("attention transfer");
    for &(rows, valid, positions, cs, ct, beta) in &[(7usize, 5usize, 13usize, 5usize, 3usize, 2.5f32), (3, 3, 150, 2, 4, 1000.0)] {
        let mut student = random_vec(&mut rng, rows * positions * cs, -1.0, 1.0);
        let teacher = random_vec(&mut rng, rows * positions * ct, -1.0, 1.0);
        if valid > 2 {
            student[positions * cs..2 * positions * cs].fill(0.0); // row 1: a dead student map
        }
        let base_loss = random_vec(&mut rng, rows, 0.0, 1.0);
        let (want_grad, want_loss) = attention_transfer_reference(&student, &teacher, rows, valid, positions, cs, ct, beta);
        let step = ctx.uniform(&StepParams { offset: 0, valid: valid as u32 }, "step");
        let (gs, gt) = (ctx.storage(&student, "student"), ctx.storage(&teacher, "teacher"));
        let grad = ctx.storage(&vec![f32::NAN; rows * positions * cs], "grad");
        let loss = ctx.storage(&base_loss, "row loss");
        let p = AttentionParams { rows: rows as u32, positions: positions as u32, cs: cs as u32, ct: ct as u32, beta, _pad: [0; 3] };
        run(&ctx, [&ctx.attention_transfer(p, &step, &gs, &gt, &grad, &loss)]);
        let what = format!("attention {rows}x{positions}x{cs}/{ct}");
        assert_close(&format!("{what} grad"), &ctx.read::<f32>(&grad).await.unwrap(), &want_grad, 1e-3, 1e-6, seed);
        let added: Vec<f32> = base_loss.iter().zip(&want_loss).map(|(a, b)| a + b).collect();
        assert_close(&format!("{what} row loss (added)"), &ctx.read::<f32>(&loss).await.unwrap(), &added, 1e-4, 1e-5, seed);
        assert!(want_loss[valid..].iter().all(|&l| l == 0.0) && want_grad[valid * positions * cs..].iter().all(|&g| g == 0.0), "{what}: padding rows");
        // The mean of the twin's row losses is the definition; its gradient is the definition's.
        let s64: Vec<f64> = student.iter().map(|&v| v as f64).collect();
        let def = attention_f64(&s64, &teacher, valid, positions, cs, ct, beta as f64);
        assert!((want_loss.iter().sum::<f32>() as f64 / valid as f64 - def).abs() < 1e-4 * def.max(1.0), "{what}: loss {} vs {def}", want_loss.iter().sum::<f32>() / valid as f32);
        for _ in 0..12 {
            let i = rng.below((valid * positions * cs) as u32) as usize;
            let h = 1e-4;
            let (mut up, mut down) = (s64.clone(), s64.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (attention_f64(&up, &teacher, valid, positions, cs, ct, beta as f64) - attention_f64(&down, &teacher, valid, positions, cs, ct, beta as f64)) / (2.0 * h);
            assert!((want_grad[i] as f64 - fd).abs() <= 2e-3 * fd.abs() + 1e-4 * beta as f64 / 1000.0 + 1e-6, "{what} element {i}: twin {} vs finite difference {fd} (seed {seed})", want_grad[i]);
        }
    }
}
gpu_test!(attention_transfer_matches_reference_and_definition, attention_case);

/// Attention transfer and a hint from a recipe, on both backends: a lenet5 teacher and a smaller
/// lenet5 student on 16x16 images, their first conv outputs (12x12) compared, the student's fc
/// layer projected onto the teacher's; the report names both.
/// A pair of maps of different sizes (the student's 12x12 against the teacher's 6x6 pool) is
/// refused before any training.
async fn attention_stage_case(ctx: GpuContext) {
    let (mut rng, seed) = fresh_rng("attention stage");
    let data = four_classes(&mut rng, (96, 40), (16, 16));
    let recipe = |teacher_node: usize| {
        Recipe::from_json(&format!(
            r#"{{"dataset": "mnist", "seed": 4, "model": {{"arch": "lenet5", "widths": [4, 6, 16]}},
                "train": {{"epochs": 2, "batch": 16, "lr": 0.02, "momentum": 0.9}},
                "stages": [{{"distill": {{"student": {{"arch": "lenet5", "widths": [2, 3, 8]}}, "attention": [{{"student": 1, "teacher": {teacher_node}, "beta": 50}}],
                                        "hints": [{{"student": 5, "teacher": 5, "weight": 0.5}}],
                                        "train": {{"epochs": 1, "batch": 16, "lr": 0.02, "momentum": 0.9}}, "baseline": false}}}}]}}"#
        ))
        .unwrap()
    };
    let (err, events) = common::run_error(&recipe(2), &data, &Backend::Cpu, &RunOptions::default(), || ()).await;
    assert!(err.contains("stages[0].distill.attention[0]") && err.contains("12x12") && err.contains("6x6"), "{err}");
    assert_eq!(events, 0, "work started before the refusal");
    let mut epochs = Vec::new();
    for backend in [Backend::Gpu(ctx.clone()), Backend::Cpu] {
        let what = if matches!(backend, Backend::Cpu) { "cpu" } else { "gpu" };
        let out = squeeze::experiment::run(&recipe(1), &data, &backend, &RunOptions { progress_every: 50, ..Default::default() }, &mut |_| Control::Continue).await.unwrap();
        let d = out.report.stages[1].distillation().unwrap();
        assert_eq!(d.attention, vec![squeeze::nn::AttentionTransfer { student: 1, teacher: 1, beta: 50.0 }], "{what}");
        assert_eq!(d.hints, vec![squeeze::nn::Hint { student: 5, teacher: 5, weight: 0.5 }], "{what}: the fc hint (8 units projected onto 16)");
        let e = out.report.stages[1].epochs[0].clone();
        assert!(e.train_loss.is_finite() && e.test_loss.is_finite(), "{what}: loss {} / {} (seed {seed})", e.train_loss, e.test_loss);
        assert_eq!(out.net.layer_dims()[0], (25, 2), "{what}: the half-width student");
        epochs.push(e);
    }
    // Not an accuracy check (a teacher of 96 images near chance teaches little): the two backends
    // ran the same stage with the same attention and hint terms, so they agree on its losses.
    let (g, c) = (&epochs[0], &epochs[1]);
    for (name, a, b) in [("train loss", g.train_loss, c.train_loss), ("test loss", g.test_loss, c.test_loss)] {
        assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "{name}: gpu {a} vs cpu {b} (seed {seed})");
    }
}
gpu_test!(attention_transfer_from_a_recipe, attention_stage_case);

/// hint_loss (shaders/attention.wgsl) against its twin (padding rows, rows longer than a
/// workgroup), and the CPU reference's whole hint term against finite differences: the loss
/// through a projection of a hidden layer, its gradient for the projection and, through the
/// injected output gradient and the backward pass, for the first layer's weights.
async fn hint_case(ctx: GpuContext) {
    use squeeze::gpu::kernels::AttentionParams;
    use squeeze::nn::{Net, NetParams, Shape};
    use squeeze::reference::net::{net_loss_and_grads_with, HintIn};
    use squeeze::reference::ops::hint_loss_reference;
    let (mut rng, seed) = fresh_rng("hint loss");
    for &(rows, valid, positions, ct, weight) in &[(6usize, 4usize, 1usize, 7usize, 0.5f32), (3, 3, 30, 5, 2.0)] {
        let n = positions * ct;
        let (y, t) = (random_vec(&mut rng, rows * n, -2.0, 2.0), random_vec(&mut rng, rows * n, -2.0, 2.0));
        let base = random_vec(&mut rng, rows, 0.0, 1.0);
        let (want_grad, want_loss) = hint_loss_reference(&y, &t, rows, valid, n, weight);
        let step = ctx.uniform(&StepParams { offset: 0, valid: valid as u32 }, "step");
        let (gy, gt, grad, loss) = (ctx.storage(&y, "y"), ctx.storage(&t, "t"), ctx.storage(&vec![f32::NAN; rows * n], "grad"), ctx.storage(&base, "loss"));
        let p = AttentionParams { rows: rows as u32, positions: positions as u32, cs: ct as u32, ct: ct as u32, beta: weight, _pad: [0; 3] };
        run(&ctx, [&ctx.hint_loss(p, &step, &gy, &gt, &grad, &loss)]);
        assert_close("hint_loss grad", &ctx.read::<f32>(&grad).await.unwrap(), &want_grad, 1e-4, 1e-7, seed);
        let added: Vec<f32> = base.iter().zip(&want_loss).map(|(a, b)| a + b).collect();
        assert_close("hint_loss row loss (added)", &ctx.read::<f32>(&loss).await.unwrap(), &added, 1e-4, 1e-5, seed);
        let direct: f32 = (0..valid * n).map(|i| (y[i] - t[i]).powi(2)).sum::<f32>() * weight / n as f32;
        assert!((want_loss.iter().sum::<f32>() - direct).abs() < 1e-3 * direct.max(1.0) && want_loss[valid..].iter().all(|&l| l == 0.0), "hint loss definition (seed {seed})");
    }
    // The whole term on the CPU reference: a 6-unit hidden layer projected onto 7 teacher units.
    let net = Net::mlp(Shape::new(5, 4, 1), &[6], 10);
    let (rows, valid) = (5usize, 4usize);
    let mut params = NetParams::init(&net, seed);
    let x = random_vec(&mut rng, rows * 20, -1.0, 1.0);
    let labels: Vec<u32> = (0..rows as u32).map(|i| i % 10).collect();
    let teacher_out = random_vec(&mut rng, rows * 7, 0.0, 2.0);
    let logits = random_vec(&mut rng, rows * 10, -1.0, 1.0);
    let mut w = random_vec(&mut rng, 42, -0.5, 0.5);
    let p = DistillParams::soft_targets(2.0, 0.5);
    let loss_of = |params: &mut NetParams, w: &[f32]| {
        let hints = [HintIn { node: 1, teacher: &teacher_out, positions: 1, cs: 6, ct: 7, weight: 3.0, projection: w }];
        net_loss_and_grads_with(&net, params, x.clone(), &labels, rows, valid, &[], &[], Some((&logits, &p, &[], &hints)))
    };
    let (_, grads, _, _, projection) = loss_of(&mut params, &w);
    let h = 1e-3f32; // small enough that a hidden unit rarely crosses its ReLU kink
    for i in [0usize, 5, 17, 41] {
        let w0 = w[i];
        w[i] = w0 + h;
        let up = loss_of(&mut params, &w).0;
        w[i] = w0 - h;
        let down = loss_of(&mut params, &w).0;
        w[i] = w0;
        let fd = (up - down) / (2.0 * h);
        assert!((projection[0][i] - fd).abs() <= 2e-2 * fd.abs() + 2e-3, "projection {i}: {} vs finite difference {fd} (seed {seed})", projection[0][i]);
    }
    for i in [0usize, 7, 33, 119] {
        let v0 = params.tensors[0][i];
        params.tensors[0][i] = v0 + h;
        let up = loss_of(&mut params, &w).0;
        params.tensors[0][i] = v0 - h;
        let down = loss_of(&mut params, &w).0;
        params.tensors[0][i] = v0;
        let fd = (up - down) / (2.0 * h);
        assert!((grads.tensors[0][i] - fd).abs() <= 2e-2 * fd.abs() + 2e-3, "first-layer weight {i}: {} vs finite difference {fd} (seed {seed})", grads.tensors[0][i]);
    }
}
gpu_test!(hint_loss_matches_reference_and_definition, hint_case);
