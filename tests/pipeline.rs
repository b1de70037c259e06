//! Pruning stages run through `experiment::run` on synthetic digits, on the GPU and the CPU
//! reference, natively and in the browser: gradual pruning during training (Zhu & Gupta) masks at
//! the planned steps to the polynomial schedule's sparsities and ends exactly at the target; hard
//! filter pruning of a conv net inside a recipe gives a physically smaller model that still runs;
//! greedy pruning restores the chunk that cost held-out accuracy.

mod common;
use common::{fresh_rng, synthetic_sized};
use squeeze::compress::prune::{polynomial_sparsity, pruned_count};
use squeeze::data::Splits;
use squeeze::experiment::{run, Backend, Control, RunOptions};
use squeeze::recipe::Recipe;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

async fn pipeline_case(ctx: squeeze::gpu::GpuContext) {
    let (mut rng, seed) = fresh_rng("pipeline");
    let data = Splits::new("synthetic", synthetic_sized(&mut rng, 320, 10, 9), synthetic_sized(&mut rng, 96, 10, 9)).unwrap();
    // 320 samples / batch 16 = 20 steps per epoch, 2 epochs: pruning at steps 0, 6, 12, 18.
    let gradual = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 3, "model": {"arch": "mlp", "hidden": [24]},
            "train": {"epochs": 2, "batch": 16, "lr": 0.05, "momentum": 0.9},
            "stages": [{"prune": {"sparsity": [0.8, 0.5], "schedule": "polynomial", "rounds": 4, "every": 6, "mode": "hard",
                                  "finetune": {"epochs": 2, "batch": 16, "lr": 0.02, "momentum": 0.9}}}]}"#,
    )
    .unwrap();
    let filters = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 4, "model": {"arch": "vgg-mini", "widths": [4, 6]},
            "train": {"epochs": 1, "batch": 16, "lr": 0.02, "momentum": 0.9},
            "stages": [{"prune": {"granularity": "filter", "sparsity": 0.5, "mode": "hard",
                                  "finetune": {"epochs": 1, "batch": 16, "lr": 0.01, "momentum": 0.9}}}]}"#,
    )
    .unwrap();
    for backend in [Backend::Gpu(ctx.clone()), Backend::Cpu] {
        let what = if matches!(backend, Backend::Cpu) { "cpu" } else { "gpu" };
        let out = run(&gradual, &data, &backend, &RunOptions { progress_every: 5, ..Default::default() }, &mut |_| Control::Continue).await.unwrap();
        let p = out.report.stages[1].pruning().unwrap();
        assert_eq!(p.rounds.len(), 4, "{what}: four pruning steps");
        for (k, r) in p.rounds.iter().enumerate() {
            for (l, (&target, &final_s)) in r.target.iter().zip(&[0.8f32, 0.5]).enumerate() {
                let want = polynomial_sparsity(0.0, final_s, k + 1, 0, 4, 1);
                assert!((target - want).abs() < 1e-6, "{what}: step {} layer {l} target {target}, schedule {want} (seed {seed})", k + 1);
                // The sparsity reached right after masking is the target (to one weight).
                let n = [90 * 24, 24 * 10][l] as f32;
                assert!((r.sparsity[l] - target).abs() <= 1.0 / n + 1e-6, "{what}: step {} layer {l}: {} vs {target}", k + 1, r.sparsity[l]);
            }
        }
        // Each step's accuracies: the first step masks the trained model before any further
        // training, so its "before" is the trained model with the smallest |w| of each layer
        // zeroed, evaluated independently here (to an image: another batching); the last step's
        // "after" is the stage's final accuracy; each is a fraction of the test split.
        let mut masked = out.models[0].clone();
        for (&j, &s) in out.net.weight_tensors().iter().zip(&p.rounds[0].target) {
            let w = &mut masked.params.tensors[j];
            let mask = squeeze::compress::prune::mask_by_sparsity(&w.iter().map(|v| v.abs()).collect::<Vec<_>>(), s);
            w.iter_mut().zip(&mask).for_each(|(v, m)| *v *= m);
        }
        let c = squeeze::inspect::confusion(&masked, out.norm, &data.test, data.test.n).unwrap();
        let right = (0..10).map(|k| c.matrix[k][k]).sum::<u32>() as f32 / data.test.n as f32;
        let first = p.rounds[0].accuracy_before_finetune;
        assert!((right - first).abs() <= 1.5 / data.test.n as f32, "{what}: step 1 before {first}, the masked trained model gets {right} (seed {seed})");
        assert_eq!(p.rounds[3].accuracy_after_finetune, out.report.stages[1].test_accuracy, "{what}");
        let step = 1.0 / data.test.n as f32;
        for r in &p.rounds {
            for a in [r.accuracy_before_finetune, r.accuracy_after_finetune] {
                assert!((0.0..=1.0).contains(&a) && ((a / step) - (a / step).round()).abs() < 1e-3, "{what}: {a} is not a count of the {} test images", data.test.n);
            }
        }
        // Hard masks: after the whole run exactly the target's zeros remain.
        let zeros: Vec<usize> = out.net.weight_tensors().iter().map(|&j| out.params.tensors[j].iter().filter(|&&v| v == 0.0).count()).collect();
        assert_eq!(zeros, vec![pruned_count(90 * 24, 0.8), pruned_count(240, 0.5)], "{what}");
        assert_eq!(out.report.stages[1].epochs.len(), 2, "{what}: one fine-tuning run");

        let out = run(&filters, &data, &backend, &RunOptions { progress_every: 50, ..Default::default() }, &mut |_| Control::Continue).await.unwrap();
        let p = out.report.stages[1].pruning().unwrap();
        assert_eq!(p.hidden, vec![2, 2, 3, 3, 64], "{what}: half of every hidden layer");
        let dense = squeeze::nn::Net::vgg_mini(squeeze::nn::Shape::new(10, 9, 1), &[4, 6], 10).parameter_count();
        assert!(p.parameters < dense / 2, "{what}: {} of {dense} parameters", p.parameters);
        assert_eq!(out.net.parameter_count(), p.parameters, "{what}: the returned net is the shrunk one");
        assert!(out.report.stages[1].test_accuracy.is_finite());

        // Greedy with no tolerance, removing random chunks of the first layer until the held-out
        // accuracy drops: that chunk is restored (the layer stops short of 98%, holding only
        // whole accepted chunks), and what was accepted never hurt held-out accuracy. The label is
        // whether the first pixel is bright, so the dense model learns it well and losing that
        // pixel's weights (98% of random weights go) must cost accuracy.
        let mut easy = data.clone();
        for ds in [&mut easy.train, &mut easy.test] {
            let p = ds.rows * ds.cols;
            ds.labels = (0..ds.n).map(|i| (ds.images[i * p] > 127) as u8).collect();
        }
        let greedy = Recipe::from_json(
            r#"{"dataset": "mnist", "seed": 5, "limit": {"holdout": 96}, "model": {"arch": "mlp", "hidden": [16]},
                "train": {"epochs": 3, "batch": 16, "lr": 0.05, "momentum": 0.9},
                "stages": [{"greedy": {"criterion": "random", "sparsity": [0.98, 0.0], "chunk": 0.1, "tolerance": 0.0}}]}"#,
        )
        .unwrap();
        let out = run(&greedy, &easy, &backend, &RunOptions { progress_every: 50, ..Default::default() }, &mut |_| Control::Continue).await.unwrap();
        let g = out.report.stages[1].pruning().unwrap().greedy.clone().unwrap();
        // The dense model must have learnt the task (chance is about 50%; measured 73-95%) for a
        // chunk to cost accuracy.
        assert!(g.holdout_accuracy_start > 0.65, "{what}: {g:?} (seed {seed})");
        assert!(g.chunks_restored >= 1 && g.frozen[0], "{what}: {g:?} (seed {seed})");
        let zeros = out.params.tensors[0].iter().filter(|&&v| v == 0.0).count();
        let chunk = (90.0f32 * 16.0 * 0.1).ceil() as usize;
        assert!(zeros < pruned_count(90 * 16, 0.98) && zeros % chunk == 0, "{what}: {zeros} zeros, chunk {chunk}");
        assert_eq!(zeros / chunk, g.chunks_accepted, "{what}: only accepted chunks stay pruned");
    }
}
gpu_test!(gradual_and_filter_pruning_run_through_recipes, pipeline_case);

async fn pause_case(ctx: squeeze::gpu::GpuContext) {
    use squeeze::experiment::Event;
    let (mut rng, _) = fresh_rng("pause");
    let data = Splits::new("synthetic", synthetic_sized(&mut rng, 160, 10, 9), synthetic_sized(&mut rng, 32, 10, 9)).unwrap();
    let recipe = Recipe::from_json(r#"{"dataset": "mnist", "model": {"arch": "mlp", "hidden": [8]}, "train": {"epochs": 2, "batch": 16, "lr": 0.05}}"#).unwrap();
    // Pause at the first progress event, for three polls (~300 ms), then go on; then cancel at
    // the second epoch's first progress event.
    let (mut polls, mut progress, mut paused_answered) = (0, 0, false);
    let mut listener = |e: &Event| match e {
        Event::Paused => {
            polls += 1;
            if polls < 3 { Control::Pause } else { Control::Continue }
        }
        Event::Progress { epoch, .. } => {
            progress += 1;
            if progress == 1 {
                paused_answered = true;
                Control::Pause
            } else if *epoch == 1 {
                Control::Cancel
            } else {
                Control::Continue
            }
        }
        _ => Control::Continue,
    };
    let result = run(&recipe, &data, &Backend::Gpu(ctx), &RunOptions { progress_every: 2, ..Default::default() }, &mut listener).await;
    assert!(paused_answered);
    assert_eq!(polls, 3, "asked again while paused, until it answered Continue");
    assert!(matches!(result, Err(squeeze::Error::Cancelled)), "cancelled in the second epoch");
}
gpu_test!(a_run_pauses_resumes_and_cancels, pause_case);
