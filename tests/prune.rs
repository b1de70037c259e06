//! Pruning through the recipe, on a real MNIST subset, on the GPU and on the CPU reference: the
//! sparsity reached equals the target exactly, hard masks keep pruned weights at zero through
//! fine-tuning, soft masks let them regrow, and fine-tuning recovers accuracy. Native only (reads files).
#![cfg(not(target_arch = "wasm32"))]

use squeeze::data::files::{default_data_dir, load_named};
use squeeze::experiment::{run, Backend, Control, Outcome, RunOptions};
use squeeze::gpu::GpuContext;
use squeeze::recipe::Recipe;

fn recipe(mode: &str, rounds: usize) -> Recipe {
    recipe_with(mode, rounds, "magnitude")
}

fn recipe_with(mode: &str, rounds: usize, criterion: &str) -> Recipe {
    Recipe::from_json(&format!(
        r#"{{"dataset": "mnist", "seed": 2, "limit": {{"train": 3000, "test": 1000}},
            "model": {{"arch": "mlp", "hidden": [100, 50]}},
            "train": {{"epochs": 3, "batch": 32, "lr": 0.01, "momentum": 0.9}},
            "stages": [{{"prune": {{"sparsity": [0.9, 0.8, 0.5], "mode": "{mode}", "rounds": {rounds}, "criterion": "{criterion}",
                                    "finetune": {{"epochs": 1, "batch": 32, "lr": 0.005, "momentum": 0.9}}}}}}]}}"#
    ))
    .unwrap()
}

fn go(recipe: &Recipe, backend: &Backend) -> Outcome {
    let data = load_named(&default_data_dir(), "mnist").expect("real MNIST: run scripts/setup");
    pollster::block_on(run(recipe, &data, backend, &RunOptions { progress_every: 1000, ..Default::default() }, &mut |_| Control::Continue)).unwrap()
}

fn check_hard(out: &Outcome, what: &str) {
    let p = out.report.stages[1].pruning().expect("pruning report");
    // Exactly the target count of zeros per layer: 784*100*0.9, 100*50*0.8, 50*10*0.5.
    let zeros: Vec<usize> = out.net.weight_tensors().iter().map(|&j| out.params.tensors[j].iter().filter(|&&v| v == 0.0).count()).collect();
    assert_eq!(zeros, vec![70_560, 4_000, 250], "{what}: zeros per layer");
    assert_eq!(p.per_layer_sparsity, vec![0.9, 0.8, 0.5], "{what}");
    assert_eq!(p.weights_left, 78_400 + 5_000 + 500 - 70_560 - 4_000 - 250);
    assert_eq!(p.flops_per_sample_remaining, 2 * p.weights_left);
    // Sizes are real encodings, both far below dense at ~89% sparsity. (Which of the two is smaller
    // depends on how the zeros cluster: long gaps cost the relative index fillers.)
    assert_eq!(p.bytes_dense, 4 * (78_400 + 5_000 + 500 + 100 + 50 + 10));
    assert!(p.bytes_relative < p.bytes_dense / 3 && p.bytes_bitmask < p.bytes_dense / 3, "{p:?}");
    let trained = out.report.stages[0].test_accuracy;
    let pruned = out.report.stages[1].test_accuracy;
    // 90% of the first layer gone: fine-tuning must bring accuracy back near the dense model.
    assert!(pruned >= trained - 0.03, "{what}: dense {trained}, pruned and fine-tuned {pruned}");
    assert!(pruned >= 0.85, "{what}: {pruned}");
}

#[test]
fn hard_pruning_reaches_exact_sparsity_and_recovers_on_gpu() {
    let gpu = Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap());
    let out = go(&recipe("hard", 2), &gpu);
    check_hard(&out, "gpu");
    let rounds = &out.report.stages[1].pruning().unwrap().rounds;
    assert_eq!(rounds.len(), 2);
    // Round 1 reaches 1 - sqrt(1 - s) of each target, round 2 the target.
    assert!((rounds[0].target[0] - (1.0 - 0.1f32.sqrt())).abs() < 1e-6, "{:?}", rounds[0].target);
    assert!((rounds[0].sparsity[0] - rounds[0].target[0]).abs() < 1e-4);
}

#[test]
fn hard_pruning_on_cpu_reference_matches_the_contract() {
    check_hard(&go(&recipe("hard", 1), &Backend::Cpu), "cpu");
}

#[test]
fn soft_pruning_lets_weights_regrow() {
    let out = go(&recipe("soft", 1), &Backend::Cpu);
    let round = &out.report.stages[1].pruning().unwrap().rounds[0];
    // Right after pruning the target was met ...
    assert!((round.sparsity[0] - 0.9).abs() < 1e-4, "{round:?}");
    // ... and after a soft fine-tuning epoch most pruned weights carry values again.
    let now = out.report.stages[1].pruning().unwrap().per_layer_sparsity[0];
    assert!(now < 0.2, "first-layer sparsity after soft fine-tuning: {now}");
}

fn lottery_recipe(rewind: &str) -> Recipe {
    lottery_recipe_with(&format!("\"{rewind}\""))
}

fn lottery_recipe_with(rewind_json: &str) -> Recipe {
    Recipe::from_json(&format!(
        r#"{{"dataset": "mnist", "seed": 4, "limit": {{"train": 2000, "test": 500}},
            "model": {{"arch": "mlp", "hidden": [64]}},
            "train": {{"epochs": 2, "batch": 32, "lr": 0.01, "momentum": 0.9}},
            "stages": [{{"prune": {{"sparsity": 0.5, "rounds": 2, "rewind": {rewind_json}, "control": true,
                                    "finetune": {{"epochs": 2, "batch": 32, "lr": 0.01, "momentum": 0.9}}}}}}]}}"#
    ))
    .unwrap()
}

#[test]
fn lottery_rewinding_resets_survivors_to_their_initial_values_and_runs_the_control() {
    let ticket = go(&lottery_recipe("init"), &Backend::Cpu);
    let kept = go(&lottery_recipe("none"), &Backend::Cpu);
    let trained = ticket.report.stages[0].test_accuracy;
    assert!(trained > 0.8, "{trained}");
    let (t, k) = (ticket.report.stages[1].pruning().unwrap(), kept.report.stages[1].pruning().unwrap());
    // Pruning 29% of trained weights barely hurts; the same masks on the rewound (initial) weights
    // are far worse until retrained (above chance all the same: a magnitude mask alone carries
    // information, the "supermask" effect of Zhou et al. 2019).
    assert!(k.rounds[0].accuracy_before_finetune > trained - 0.05, "{:?}", k.rounds[0]);
    for round in &t.rounds {
        assert!(round.accuracy_before_finetune < trained - 0.1, "round {}: {} right after rewinding, trained {trained}", round.round, round.accuracy_before_finetune);
        assert!(round.accuracy_after_finetune > 0.8, "{round:?}");
    }
    let control = t.control_accuracy.expect("control accuracy");
    assert!(control > 0.5 && control <= 1.0, "{control}");
    // The run returns the ticket (its masks at the final sparsity), not the control network.
    assert_eq!(ticket.params.tensors[0].iter().filter(|&&v| v == 0.0).count(), 784 * 64 / 2);
    assert_eq!(ticket.report.stages[1].test_accuracy, t.rounds[1].accuracy_after_finetune);
}

#[test]
fn removing_units_gives_the_same_outputs_as_masking_them() {
    use squeeze::nn::{Net, NetParams, Shape};
    use squeeze::reference::net::net_forward;
    let net = Net::mlp(Shape::new(13, 1, 1), &[11, 7], 5);
    let p = NetParams::init(&net, 9);
    let mut rng = squeeze::rng::Rng::new(3, 3);
    let x: Vec<f32> = (0..6 * 13).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let keep = [0usize, 2, 3, 7, 10];
    // Masking: zero the dropped units' incoming weights and biases (W0 is [13, 11]).
    let mut masked = p.clone();
    for o in (0..11).filter(|o| !keep.contains(o)) {
        for i in 0..13 {
            masked.tensors[0][i * 11 + o] = 0.0;
        }
        masked.tensors[1][o] = 0.0;
    }
    let (small, shrunk) = p.remove_units(&net, 0, &keep).unwrap();
    assert_eq!(small.layer_dims(), vec![(13, 5), (5, 7), (7, 5)]);
    assert_eq!(shrunk.tensors[0].len(), 13 * 5);
    let a = net_forward(&net, &mut masked, x.clone(), 6, 6, false).acts.pop().unwrap();
    let b = net_forward(&small, &mut shrunk.clone(), x, 6, 6, false).acts.pop().unwrap();
    let diff = a.iter().zip(&b).fold(0.0f32, |m, (u, v)| m.max((u - v).abs()));
    assert!(diff < 1e-5, "max |masked - shrunk| = {diff}");
    // The classifier's outputs are the classes: removal refuses them.
    assert!(p.remove_units(&net, 2, &[0, 1]).is_err());
}

#[test]
fn hard_neuron_pruning_shrinks_the_model_and_keeps_accuracy() {
    let r = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 5, "limit": {"train": 3000, "test": 1000},
            "model": {"arch": "mlp", "hidden": [100, 50]},
            "train": {"epochs": 3, "batch": 32, "lr": 0.01, "momentum": 0.9},
            "stages": [{"prune": {"granularity": "neuron", "criterion": "l2", "sparsity": 0.5, "mode": "hard", "rounds": 2,
                                  "finetune": {"epochs": 2, "batch": 32, "lr": 0.005, "momentum": 0.9}}}]}"#,
    )
    .unwrap();
    for backend in [Backend::Cpu, Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap())] {
        let out = go(&r, &backend);
        let p = out.report.stages[1].pruning().unwrap();
        assert_eq!(p.hidden, vec![50, 25]);
        assert_eq!(p.parameters, 784 * 50 + 50 + 50 * 25 + 25 + 25 * 10 + 10);
        assert_eq!(out.net.layer_dims()[0], (784, 50), "physically smaller");
        assert_eq!(out.report.model.layers, vec![(784, 50), (50, 25), (25, 10)]);
        let (dense, pruned) = (out.report.stages[0].test_accuracy, out.report.stages[1].test_accuracy);
        assert!(pruned >= dense - 0.02, "dense {dense}, half the units {pruned}");
    }
}

#[test]
fn sensitivity_scan_prunes_one_layer_at_a_time_and_restores() {
    let r = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 6, "limit": {"train": 2000, "test": 500},
            "model": {"arch": "mlp", "hidden": [64]},
            "train": {"epochs": 2, "batch": 32, "lr": 0.01, "momentum": 0.9},
            "stages": [{"sensitivity": {"sparsities": [0.0, 0.5, 0.99]}},
                       {"sensitivity": {"sparsities": [0.0]}}]}"#,
    )
    .unwrap();
    for backend in [Backend::Cpu, Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap())] {
        let out = go(&r, &backend);
        let dense = out.report.stages[0].test_accuracy;
        let curves = out.report.stages[1].sensitivity().unwrap();
        assert_eq!(curves.len(), 2);
        for c in curves {
            assert_eq!(c[0], (0.0, dense), "0% sparsity is the dense model");
        }
        // Removing 99% of the first layer hurts far more than removing half of it.
        assert!(curves[0][2].1 < curves[0][1].1 - 0.1, "{curves:?}");
        // The scan restored the weights: the next stage sees the dense model again.
        assert_eq!(out.report.stages[2].sensitivity().unwrap()[0][0].1, dense);
        assert!(out.params.tensors[0].iter().all(|&v| v != 0.0));
    }
}

#[test]
fn rewinding_to_an_early_epoch_restores_those_weights() {
    let early = go(&lottery_recipe_with(r#"{"epoch": 1}"#), &Backend::Cpu);
    let init = go(&lottery_recipe("init"), &Backend::Cpu);
    let (e, i) = (early.report.stages[1].pruning().unwrap(), init.report.stages[1].pruning().unwrap());
    // Weights after one epoch of training, masked, classify far better than masked initial weights.
    assert!(e.rounds[0].accuracy_before_finetune > i.rounds[0].accuracy_before_finetune + 0.1, "{:?} vs {:?}", e.rounds[0], i.rounds[0]);
    // And it is the model the first stage reported after epoch 1, with 29% of its weights masked.
    let epoch1 = early.report.stages[0].epochs[0].test_accuracy;
    assert!((e.rounds[0].accuracy_before_finetune - epoch1).abs() < 0.1, "{} vs epoch-1 {epoch1}", e.rounds[0].accuracy_before_finetune);
}

fn greedy_recipe(tolerance: f32) -> Recipe {
    Recipe::from_json(&format!(
        r#"{{"dataset": "mnist", "seed": 7, "limit": {{"train": 2500, "test": 500, "holdout": 500}},
            "model": {{"arch": "mlp", "hidden": [48]}},
            "train": {{"epochs": 2, "batch": 32, "lr": 0.01, "momentum": 0.9}},
            "stages": [{{"greedy": {{"sparsity": [0.98, 0.9], "chunk": 0.1, "tolerance": {tolerance}}}}}]}}"#
    ))
    .unwrap()
}

#[test]
fn greedy_pruning_restores_chunks_that_cost_too_much() {
    for backend in [Backend::Cpu, Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap())] {
        // Loose tolerance: every chunk is accepted and both targets are met exactly.
        let loose = go(&greedy_recipe(0.9), &backend);
        let p = loose.report.stages[1].pruning().unwrap();
        let g = p.greedy.as_ref().unwrap();
        assert_eq!(g.chunks_restored, 0);
        assert_eq!(loose.params.tensors[0].iter().filter(|&&v| v == 0.0).count(), squeeze::compress::prune::pruned_count(784 * 48, 0.98));
        assert_eq!(loose.params.tensors[2].iter().filter(|&&v| v == 0.0).count(), squeeze::compress::prune::pruned_count(480, 0.9));
        // No tolerance: 98% of the first layer cannot go without losing held-out accuracy, so a
        // chunk is restored there and the layer stops short; what was kept are whole chunks.
        let strict = go(&greedy_recipe(0.0), &backend);
        let p = strict.report.stages[1].pruning().unwrap();
        let g = p.greedy.as_ref().unwrap();
        assert!(g.chunks_restored >= 1 && g.frozen[0], "{g:?}");
        let zeros0 = strict.params.tensors[0].iter().filter(|&&v| v == 0.0).count();
        let chunk = (784.0f32 * 48.0 * 0.1).ceil() as usize;
        assert!(zeros0 < squeeze::compress::prune::pruned_count(784 * 48, 0.98), "restored chunk stays: {zeros0}");
        assert_eq!(zeros0 % chunk, 0, "only whole accepted chunks are pruned: {zeros0}");
    }
}

/// Taylor importance |w·∂L/∂w| prunes to the target and recovers, and it is not magnitude under
/// another name: from the same trained model, the weights it removes differ from the ones |w|
/// removes (a criterion ignored, or mapped to magnitude, fails here).
#[test]
fn taylor_criterion_prunes_to_the_target_and_recovers_on_gpu() {
    let gpu = Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap());
    let taylor = go(&recipe_with("hard", 1, "taylor"), &gpu);
    check_hard(&taylor, "gpu taylor");
    let magnitude = go(&recipe_with("hard", 1, "magnitude"), &gpu);
    assert_eq!(taylor.report.stages[0].test_accuracy, magnitude.report.stages[0].test_accuracy, "the same trained model");
    // Measured: 93%, 85% and 65% of Taylor's choices are magnitude's in the three layers (the
    // first layer's never-lit pixels have tiny weights and no gradient, so both drop them).
    let shared: Vec<f32> = taylor
        .net
        .weight_tensors()
        .iter()
        .map(|&j| {
            let (t, m) = (&taylor.params.tensors[j], &magnitude.params.tensors[j]);
            let both = t.iter().zip(m).filter(|(a, b)| **a == 0.0 && **b == 0.0).count();
            both as f32 / t.iter().filter(|&&v| v == 0.0).count() as f32
        })
        .collect();
    assert!(shared.iter().all(|&f| f < 0.99) && shared.iter().any(|&f| f < 0.8), "share of Taylor's pruned weights that magnitude pruned too, per layer: {shared:?}");
}

#[test]
fn pruning_works_on_conv_nets_weights_and_filters() {
    use squeeze::nn::Role;
    // Unstructured: exactly the target count of zeros in every conv and dense weight matrix of a
    // vgg-mini, held through fine-tuning (hard). Structured, soft: half the filters of each conv
    // (and of the fc layer) zeroed, with the batch norm after each conv masked along (a zeroed
    // filter must not come back as beta).
    let base = r#""dataset": "mnist", "seed": 4, "limit": {"train": 768, "test": 300},
        "model": {"arch": "vgg-mini", "widths": [4, 6]},
        "train": {"epochs": 1, "batch": 32, "lr": 0.02, "momentum": 0.9}"#;
    let weights = Recipe::from_json(&format!(
        r#"{{{base}, "stages": [{{"prune": {{"sparsity": 0.7, "mode": "hard", "finetune": {{"epochs": 1, "batch": 32, "lr": 0.005, "momentum": 0.9}}}}}}]}}"#
    ))
    .unwrap();
    let filters = Recipe::from_json(&format!(r#"{{{base}, "stages": [{{"prune": {{"granularity": "neuron", "sparsity": 0.5, "mode": "soft"}}}}]}}"#)).unwrap();
    for backend in [Backend::Cpu, Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap())] {
        let out = go(&weights, &backend);
        let infos = out.net.tensors();
        for &j in &out.net.weight_tensors() {
            let zeros = out.params.tensors[j].iter().filter(|&&v| v == 0.0).count();
            assert_eq!(zeros, squeeze::compress::prune::pruned_count(infos[j].len(), 0.7), "tensor {j} {:?}", infos[j]);
        }
        let out = go(&filters, &backend);
        let infos = out.net.tensors();
        let wt = out.net.weight_tensors();
        for &j in &wt[..wt.len() - 1] {
            let (rows, cols) = (infos[j].rows, infos[j].cols);
            let w = &out.params.tensors[j];
            let dead: Vec<usize> = (0..cols).filter(|&o| (0..rows).all(|i| w[i * cols + o] == 0.0)).collect();
            assert_eq!(dead.len(), cols - (cols as f64 * 0.5).round() as usize, "tensor {j}: dead filters {dead:?}");
            if let [c] = out.net.consumers(infos[j].node)[..] {
                if out.net.nodes[c].op == squeeze::nn::Op::BatchNorm {
                    let g = infos.iter().position(|t| t.node == c && t.role == Role::Gamma).unwrap();
                    for &o in &dead {
                        assert_eq!((out.params.tensors[g][o], out.params.tensors[g + 1][o]), (0.0, 0.0), "BN of a pruned filter");
                    }
                }
            }
        }
    }
}

#[test]
fn hard_filter_and_channel_pruning_shrink_conv_nets() {
    // LeNet-5, half the filters of every hidden layer removed (L2 norm of each filter), on both
    // backends: the model is physically smaller, the flattened fc input shrinks with conv2's
    // filters, and fine-tuning keeps it working.
    let lenet = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 8, "limit": {"train": 1024, "test": 300},
            "model": {"arch": "lenet5"},
            "train": {"epochs": 2, "batch": 32, "lr": 0.01, "momentum": 0.9},
            "stages": [{"prune": {"granularity": "filter", "criterion": "l2", "sparsity": 0.5, "mode": "hard",
                                  "finetune": {"epochs": 1, "batch": 32, "lr": 0.005, "momentum": 0.9}}}]}"#,
    )
    .unwrap();
    for backend in [Backend::Cpu, Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap())] {
        let out = go(&lenet, &backend);
        let p = out.report.stages[1].pruning().unwrap();
        assert_eq!(p.hidden, vec![10, 25, 250]);
        assert_eq!(out.net.layer_dims(), vec![(25, 10), (250, 25), (4 * 4 * 25, 250), (250, 10)]);
        assert_eq!(p.parameters, 25 * 10 + 10 + 250 * 25 + 25 + 400 * 250 + 250 + 250 * 10 + 10);
        let (dense, pruned) = (out.report.stages[0].test_accuracy, out.report.stages[1].test_accuracy);
        assert!(pruned >= dense - 0.05 && pruned > 0.6, "dense {dense}, half the filters {pruned}");
    }

    // resnet-mini, channel pruning scored by Taylor importance: channels tied by a residual add
    // leave together, so the stem and block 1's second conv keep the same width, as do each later
    // block's second conv and projection, and the shrunk model still trains (CPU reference).
    let resnet = Recipe::from_json(
        r#"{"dataset": "mnist", "seed": 9, "limit": {"train": 1024, "test": 300},
            "model": {"arch": "resnet-mini", "widths": [4, 8, 8]},
            "train": {"epochs": 2, "batch": 32, "optimizer": "adam", "lr": 0.01},
            "stages": [{"prune": {"granularity": "channel", "criterion": "taylor", "sparsity": 0.5, "mode": "hard",
                                  "finetune": {"epochs": 1, "batch": 32, "optimizer": "adam", "lr": 0.003}}}]}"#,
    )
    .unwrap();
    let out = go(&resnet, &Backend::Cpu);
    let hidden = out.report.stages[1].pruning().unwrap().hidden.clone();
    // Weight layers: stem, b1c1, b1c2, b2c1, b2c2, b2proj, b3c1, b3c2, b3proj (, classifier).
    assert_eq!(hidden, vec![2, 2, 2, 4, 4, 4, 4, 4, 4]);
    let r = &out.report.stages[1].pruning().unwrap().rounds[0];
    // resnet-mini learns slowly from 1,024 images (measured: 22% dense, 27% after pruning and a
    // fine-tuning epoch); above chance (10%, σ ≈ 1.7% on 300 images) is what is asserted: a
    // broken shrunk model (mismatched tensors, dead channels) stays at chance.
    assert!(out.report.stages[1].test_accuracy > 0.15, "dense {} round {r:?}", out.report.stages[0].test_accuracy);
}
