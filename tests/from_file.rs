//! A recipe that starts from a model file (`"from": {"file": ...}`, the page's "Compress this
//! model further"): the run takes the file's parameters, pruned zeros and input normalisation;
//! with 0 epochs stage 0 only evaluates it, and the stages compress it further; a file of another
//! net or no file at all is refused before any work. Native only (real MNIST from the disk).
#![cfg(not(target_arch = "wasm32"))]

use squeeze::data::files::{default_data_dir, load_named};
use squeeze::data::Splits;
use squeeze::experiment::{run, Backend, Control, ModelFiles, Outcome, RunOptions};
use squeeze::gpu::GpuContext;
use squeeze::recipe::{ModelConfig, Recipe};

fn go(recipe: &str, data: &Splits, files: &ModelFiles, backend: &Backend) -> (squeeze::Result<Outcome>, usize) {
    let r = Recipe::from_json(recipe).unwrap();
    let mut events = 0;
    let out = pollster::block_on(run(&r, data, backend, &RunOptions { progress_every: 1000, files: files.clone() }, &mut |_| {
        events += 1;
        Control::Continue
    }));
    (out, events)
}

fn zeros(v: &[f32]) -> Vec<usize> {
    v.iter().enumerate().filter(|(_, &x)| x == 0.0).map(|(i, _)| i).collect()
}

#[test]
fn a_run_starts_from_a_model_file_and_compresses_it_further() {
    let data = load_named(&default_data_dir(), "mnist").expect("real MNIST: run scripts/setup");
    for backend in [Backend::Cpu, Backend::Gpu(pollster::block_on(GpuContext::new()).unwrap())] {
        // A model pruned to 60%, saved as the page saves it, on 3,000 images (its own normalisation).
        let (first, _) = go(
            r#"{"dataset": "mnist", "seed": 4, "limit": {"train": 3000, "test": 600}, "model": {"arch": "mlp", "hidden": [40]},
                "train": {"epochs": 2, "lr": 0.05, "momentum": 0.9},
                "stages": [{"prune": {"sparsity": 0.6, "mode": "hard", "finetune": {"epochs": 1, "lr": 0.02}}}]}"#,
            &data,
            &ModelFiles::new(),
            &backend,
        );
        let first = first.unwrap();
        let saved = squeeze::export::save(first.models.last().unwrap(), first.norm);
        let loaded = squeeze::export::load_any(&saved).unwrap();
        let file_zeros: Vec<Vec<usize>> = loaded.0.net.weight_tensors().iter().map(|&j| zeros(&loaded.0.params.tensors[j])).collect();
        let files: ModelFiles = [("m.sqz".to_string(), loaded.clone())].into();
        // 0 epochs on other training images: stage 0 is the file's model as it was (its accuracy,
        // on its own normalisation); a prune stage then takes it to 90%.
        let (out, _) = go(
            r#"{"dataset": "mnist", "seed": 9, "limit": {"train": 1000, "test": 600}, "model": {"arch": "mlp", "hidden": [40]}, "from": {"file": "m.sqz"},
                "train": {"epochs": 0, "lr": 0.02},
                "stages": [{"prune": {"sparsity": 0.9, "mode": "hard", "finetune": {"epochs": 1, "lr": 0.02}}}]}"#,
            &data,
            &files,
            &backend,
        );
        let out = out.unwrap();
        let (was, now) = (first.report.stages.last().unwrap().test_accuracy, out.report.stages[0].test_accuracy);
        assert_eq!(was, now, "the loaded model evaluates as it did ({})", backend.describe());
        assert_eq!(out.report.stages[0].name, "loaded");
        assert!(out.report.stages[0].epochs.is_empty());
        assert_eq!(out.models[0].name, "from m.sqz");
        assert_eq!(out.models[0].params.tensors, loaded.0.params.tensors);
        assert_eq!(out.norm, loaded.1);
        let pruned = out.report.stages[1].pruning().unwrap();
        assert!((pruned.weight_sparsity - 0.9).abs() < 0.01, "{}", pruned.weight_sparsity);
        // Fine-tuning the file first (1 epoch at stage 0): its pruned zeros stay zero.
        let (tuned, _) = go(
            r#"{"dataset": "mnist", "seed": 9, "limit": {"train": 1000, "test": 600}, "model": {"arch": "mlp", "hidden": [40]}, "from": {"file": "m.sqz"},
                "train": {"epochs": 1, "lr": 0.05, "momentum": 0.9}}"#,
            &data,
            &files,
            &backend,
        );
        let tuned = tuned.unwrap();
        let m = &tuned.models[0];
        assert_ne!(m.params.tensors, loaded.0.params.tensors, "it trained");
        for (k, &j) in m.net.weight_tensors().iter().enumerate() {
            let z = zeros(&m.params.tensors[j]);
            assert!(file_zeros[k].iter().all(|i| z.binary_search(i).is_ok()), "layer {k}: a pruned weight regrew ({})", backend.describe());
        }
    }
}

#[test]
fn another_net_a_missing_file_or_a_stage_it_cannot_take_is_refused_before_any_work() {
    let data = load_named(&default_data_dir(), "mnist").expect("real MNIST: run scripts/setup");
    let net = squeeze::nn::Net::mlp(squeeze::nn::Shape::new(28, 28, 1), &[40], 10);
    let params = squeeze::nn::NetParams::init(&net, 1);
    let files: ModelFiles = [("m.sqz".to_string(), (squeeze::inspect::StageModel::float("m", net, params), squeeze::data::Normalization { mean: 0.1, std: 0.3 }))].into();
    let recipe = |hidden: &str, file: &str| {
        format!(r#"{{"dataset": "mnist", "limit": {{"train": 500, "test": 100}}, "model": {{"arch": "mlp", "hidden": [{hidden}]}}, "from": {{"file": "{file}"}}, "train": {{"epochs": 0, "lr": 0.02}}}}"#)
    };
    for (r, field, says) in [
        (recipe("20", "m.sqz"), "model", "holds a mlp of 31810 parameters"),
        (recipe("40", "n.sqz"), "from.file", "not loaded"),
    ] {
        let (out, events) = go(&r, &data, &files, &Backend::Cpu);
        let e = out.err().expect("refused").to_string();
        assert!(e.contains(field) && e.contains(says), "{e}");
        assert_eq!(events, 0, "before any work: {e}");
    }
    // A file with pruned zeros starts under masks: hard neuron pruning after it is refused before
    // any work (it would fail after training), soft is taken.
    let mut pruned = files.clone();
    pruned.get_mut("m.sqz").unwrap().0.params.tensors[0][5] = 0.0;
    let neurons = |mode: &str| recipe("40", "m.sqz").replace(r#""train": {"epochs""#, &format!(r#""stages": [{{"prune": {{"granularity": "neuron", "sparsity": 0.5, "mode": "{mode}"}}}}], "train": {{"epochs""#));
    let (out, events) = go(&neurons("hard"), &data, &pruned, &Backend::Cpu);
    let e = out.err().expect("refused").to_string();
    assert!(e.contains("stages[0].prune.mode") && e.contains("pruned weights"), "{e}");
    assert_eq!(events, 0, "before any work: {e}");
    assert!(go(&neurons("soft"), &data, &pruned, &Backend::Cpu).0.is_ok());
    assert!(go(&neurons("hard"), &data, &files, &Backend::Cpu).0.is_ok(), "a dense file prunes units hard");
    // Without "from", 0 epochs is not a recipe; with it, a name that is not a model file neither.
    let e = Recipe::from_json(&recipe("40", "m.sqz").replace(r#""from": {"file": "m.sqz"}, "#, "")).unwrap_err().to_string();
    assert!(e.contains("train.epochs"), "{e}");
    let e = Recipe::from_json(&recipe("40", "m.txt")).unwrap_err().to_string();
    assert!(e.contains("from.file") && e.contains(".sqz or .onnx"), "{e}");
}

/// The recipe model of a net: every architecture at default and other widths round-trips, and a
/// net is never taken for another architecture.
#[test]
fn a_net_names_its_recipe_model() {
    let input = squeeze::nn::Shape::new(28, 28, 1);
    for json in [
        r#"{"arch": "mlp", "hidden": [300, 100]}"#,
        r#"{"arch": "mlp", "hidden": [150, 50, 20]}"#,
        r#"{"arch": "lenet5"}"#,
        r#"{"arch": "lenet5", "widths": [10, 25, 250]}"#,
        r#"{"arch": "vgg-mini"}"#,
        r#"{"arch": "vgg-mini", "widths": [8, 24, 40]}"#,
        r#"{"arch": "resnet-mini"}"#,
        r#"{"arch": "resnet-mini", "widths": [8, 16]}"#,
    ] {
        let config: ModelConfig = serde_json::from_str(json).unwrap();
        let net = config.build(input, 10).unwrap();
        let named = ModelConfig::of(&net).unwrap_or_else(|| panic!("{json}: no recipe model"));
        assert_eq!(named.arch, config.arch, "{json}");
        assert_eq!(named.build(input, 10).unwrap(), net, "{json}");
    }
}
