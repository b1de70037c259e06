//! Recipe parsing and validation: every error names the field and says what is accepted.

use squeeze::error::Error;
use squeeze::recipe::{Recipe, Schedule, Stage};

const GOOD: &str = r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 2, "lr": 0.1}}"#;

fn field_error(json: &str) -> (String, String) {
    match Recipe::from_json(json) {
        Err(Error::Recipe { path, message }) => (path, message),
        other => panic!("expected a recipe error, got {other:?}"),
    }
}

#[test]
fn defaults_are_filled_in() {
    let r = Recipe::from_json(GOOD).unwrap();
    assert_eq!(r.seed, 1);
    assert_eq!(r.model.hidden, vec![300, 100]);
    assert_eq!(r.train.batch, 64);
    assert_eq!(r.train.schedule, Schedule::Constant);
    assert!(r.stages.is_empty());
}

#[test]
fn round_trips_through_json() {
    let r = Recipe::from_json(GOOD).unwrap();
    assert_eq!(Recipe::from_json(&r.to_json()).unwrap(), r);
}

#[test]
fn every_shipped_recipe_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|f| f == "gallery.json") {
            continue; // the gallery's entries (tests/gallery.rs), not a recipe
        }
        Recipe::from_json(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        n += 1;
    }
    assert!(n >= 2);
}

/// The page's round-trip fixture (www/tests/every-field.json: every recipe field at a value other
/// than its default) is a valid recipe, and it really sets every field somewhere: serialised back
/// with its defaults filled in, every key it has (per stage kind; a student's like the model's, a
/// stage's training like the first) is one the fixture gives.
#[test]
fn the_every_field_fixture_is_valid_and_complete() {
    use std::collections::BTreeSet;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/tests/every-field.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let r = Recipe::from_json(&text).unwrap();
    fn keys(v: &serde_json::Value, at: &str, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let k = match k.as_str() {
                        "student" => "model",
                        "finetune" => "train",
                        k => k,
                    };
                    // Stages by kind; a model or training config wherever it sits as the top-level one.
                    let here = if at.is_empty() || at == ".stages" || k == "model" || k == "train" { k.to_string() } else { format!("{at}.{k}") };
                    out.insert(here.clone());
                    keys(v, if here == "stages" { ".stages" } else { &here }, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| keys(v, at, out)),
            _ => {}
        }
    }
    let (mut given, mut filled) = (BTreeSet::new(), BTreeSet::new());
    keys(&serde_json::from_str(&text).unwrap(), "", &mut given);
    keys(&serde_json::from_str(&r.to_json()).unwrap(), "", &mut filled);
    let missing: Vec<&String> = filled.difference(&given).collect();
    assert!(missing.is_empty(), "fields the fixture never sets: {missing:?}");
}

#[test]
fn unknown_field_is_named_with_its_path() {
    let (path, msg) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 2, "lr": 0.1, "lr_decay": 3}}"#);
    assert_eq!(path, "train.lr_decay");
    assert!(msg.contains("unknown field `lr_decay`") && msg.contains("expected one of"), "{msg}");
    let (path, msg) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 2, "lr": 0.1}, "colour": 1}"#);
    assert_eq!(path, "colour");
    assert!(msg.contains("unknown field `colour`"), "{msg}");
}

#[test]
fn wrong_type_is_named() {
    let (path, msg) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": "ten", "lr": 0.1}}"#);
    assert_eq!(path, "train.epochs");
    assert!(msg.contains("invalid type"), "{msg}");
    let (path, _) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp", "hidden": [300, -1]}, "train": {"epochs": 1, "lr": 0.1}}"#);
    assert_eq!(path, "model.hidden[1]");
}

#[test]
fn unknown_names_list_what_is_accepted() {
    let (path, msg) = field_error(r#"{"dataset": "cifar", "model": {"arch": "mlp"}, "train": {"epochs": 2, "lr": 0.1}}"#);
    assert_eq!(path, "dataset");
    assert!(msg.contains("mnist") && msg.contains("fashion-mnist"), "{msg}");
    let (path, msg) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 2, "lr": 0.1, "optimizer": "rmsprop"}}"#);
    assert_eq!(path, "train.optimizer");
    assert!(msg.contains("sgd") && msg.contains("adam"), "{msg}");
    let (path, _) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 2, "lr": 0.1}, "stages": [{"train": {"epochs": 1, "lr": 0.1}}, {"squash": {}}]}"#);
    assert_eq!(path, "stages[1]");
}

#[test]
fn out_of_range_values_are_named() {
    let cases = [
        (r#""train": {"epochs": 0, "lr": 0.1}"#, "train.epochs"),
        (r#""train": {"epochs": 1, "lr": -0.1}"#, "train.lr"),
        (r#""train": {"epochs": 1, "lr": 0.1, "momentum": 1.0}"#, "train.momentum"),
        (r#""train": {"epochs": 1, "lr": 0.1, "batch": 0}"#, "train.batch"),
        (r#""train": {"epochs": 1, "lr": 0.1, "beta2": 1.5}"#, "train.beta2"),
        (r#""train": {"epochs": 1, "lr": 0.1}, "limit": {"train": 0}"#, "limit.train"),
        (r#""train": {"epochs": 1, "lr": 0.1}, "stages": [{"train": {"epochs": 1, "lr": 100}}]"#, "stages[0].train.lr"),
    ];
    for (body, want) in cases {
        let json = format!(r#"{{"dataset": "mnist", "model": {{"arch": "mlp"}}, {body}}}"#);
        let (path, msg) = field_error(&json);
        assert_eq!(path, want, "{json}");
        assert!(msg.contains("must be"), "{msg}");
    }
    let (path, _) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp", "hidden": [0]}, "train": {"epochs": 1, "lr": 0.1}}"#);
    assert_eq!(path, "model.hidden[0]");
}

#[test]
fn missing_required_field_is_named() {
    let (_, msg) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 1}}"#);
    assert!(msg.contains("missing field `lr`"), "{msg}");
}

#[test]
fn stages_parse() {
    let r = Recipe::from_json(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 1, "lr": 0.1}, "stages": [{"train": {"epochs": 1, "lr": 0.01, "schedule": "cosine"}}]}"#).unwrap();
    assert!(matches!(&r.stages[0], Stage::Train(t) if t.schedule == Schedule::Cosine && t.lr == 0.01));
}

#[test]
fn prune_stage_errors_name_the_field() {
    let base = |prune: &str| format!(r#"{{"dataset": "mnist", "model": {{"arch": "mlp", "hidden": [300, 100]}}, "train": {{"epochs": 1, "lr": 0.1}}, "stages": [{{"prune": {prune}}}]}}"#);
    let (path, msg) = field_error(&base(r#"{"sparsity": [0.9, 0.9]}"#));
    assert_eq!(path, "stages[0].prune.sparsity");
    assert!(msg.contains("3 weight matrices"), "{msg}");
    let (path, _) = field_error(&base(r#"{"sparsity": [0.9, 1.2, 0.5]}"#));
    assert_eq!(path, "stages[0].prune.sparsity[1]");
    let (path, msg) = field_error(&base(r#"{"sparsity": [0.9, 0.9, 0.5], "scope": "global"}"#));
    assert_eq!(path, "stages[0].prune.sparsity");
    assert!(msg.contains("global"), "{msg}");
    let (path, _) = field_error(&base(r#"{"sparsity": 0.9, "rounds": 0}"#));
    assert_eq!(path, "stages[0].prune.rounds");
    let (path, _) = field_error(&base(r#"{"sparsity": 0.9, "finetune": {"epochs": 1, "lr": 0}}"#));
    assert_eq!(path, "stages[0].prune.finetune.lr");
    let (path, msg) = field_error(&base(r#"{"sparsity": 0.9, "mode": "medium"}"#));
    assert_eq!(path, "stages[0].prune.mode");
    assert!(msg.contains("hard") && msg.contains("soft"), "{msg}");
    let r = Recipe::from_json(&base(r#"{"sparsity": 0.9}"#)).unwrap();
    assert!(matches!(&r.stages[0], Stage::Prune(p) if p.rounds == 1 && p.finetune.is_none()));
}

#[test]
fn rewinding_without_training_is_rejected() {
    let (path, msg) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 1, "lr": 0.1}, "stages": [{"prune": {"sparsity": 0.5, "rewind": "init"}}]}"#);
    assert_eq!(path, "stages[0].prune.finetune");
    assert!(msg.contains("need"), "{msg}");
}

#[test]
fn neuron_targets_count_hidden_layers() {
    let base = |prune: &str| format!(r#"{{"dataset": "mnist", "model": {{"arch": "mlp", "hidden": [300, 100]}}, "train": {{"epochs": 1, "lr": 0.1}}, "stages": [{{"prune": {prune}}}]}}"#);
    assert!(Recipe::from_json(&base(r#"{"granularity": "neuron", "sparsity": [0.5, 0.3]}"#)).is_ok());
    let (path, msg) = field_error(&base(r#"{"granularity": "neuron", "sparsity": [0.5, 0.3, 0.1]}"#));
    assert_eq!(path, "stages[0].prune.sparsity");
    assert!(msg.contains("2 hidden layers"), "{msg}");
}

#[test]
fn prune_schedules_reach_the_target_on_the_last_round() {
    use squeeze::recipe::PruneSchedule;
    for sched in [PruneSchedule::Geometric, PruneSchedule::Polynomial] {
        assert!((sched.at(0.9, 5, 5) - 0.9).abs() < 1e-6, "{sched:?}");
        let mut last = 0.0;
        for r in 1..=5 {
            let s = sched.at(0.9, r, 5);
            assert!(s > last, "{sched:?} must grow");
            last = s;
        }
    }
    // Geometric: the same fraction of survivors each round; polynomial: 1 - (1 - 1/5)^3 of s first.
    assert!((PruneSchedule::Geometric.at(0.75, 1, 2) - 0.5).abs() < 1e-6);
    assert!((PruneSchedule::Polynomial.at(0.9, 1, 5) - 0.9 * (1.0 - 0.8f32.powi(3))).abs() < 1e-6);
    let r = Recipe::from_json(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 1, "lr": 0.1}, "stages": [{"prune": {"sparsity": 0.9, "rounds": 4, "schedule": "polynomial"}}]}"#).unwrap();
    assert!(matches!(&r.stages[0], Stage::Prune(p) if p.schedule == PruneSchedule::Polynomial));
}

#[test]
fn rewind_epoch_must_be_an_epoch_of_train() {
    let base = |rewind: &str| format!(r#"{{"dataset": "mnist", "model": {{"arch": "mlp"}}, "train": {{"epochs": 3, "lr": 0.1}}, "stages": [{{"prune": {{"sparsity": 0.5, "rewind": {rewind}, "finetune": {{"epochs": 1, "lr": 0.1}}}}}}]}}"#);
    assert!(Recipe::from_json(&base(r#"{"epoch": 2}"#)).is_ok());
    let (path, msg) = field_error(&base(r#"{"epoch": 4}"#));
    assert_eq!(path, "stages[0].prune.rewind.epoch");
    assert!(msg.contains("1..=3"), "{msg}");
}

#[test]
fn greedy_needs_a_holdout() {
    let (path, msg) = field_error(r#"{"dataset": "mnist", "model": {"arch": "mlp"}, "train": {"epochs": 1, "lr": 0.1}, "stages": [{"greedy": {"sparsity": 0.5}}]}"#);
    assert_eq!(path, "limit.holdout");
    assert!(msg.contains("held-out"), "{msg}");
    let (path, _) = field_error(r#"{"dataset": "mnist", "limit": {"holdout": 100}, "model": {"arch": "mlp"}, "train": {"epochs": 1, "lr": 0.1}, "stages": [{"greedy": {"sparsity": 0.5, "chunk": 0.9}}]}"#);
    assert_eq!(path, "stages[0].greedy.chunk");
}

#[test]
fn quantize_stage_errors_name_their_field() {
    let with = |stage: &str| format!(r#"{{"dataset": "mnist", "model": {{"arch": "mlp"}}, "train": {{"epochs": 1, "lr": 0.1}}, "stages": [{stage}]}}"#);
    let cases = [
        (r#"{"quantize": {"weights": {"scheme": "symmetric", "bits": 1}}}"#, "stages[0].quantize.weights.bits", "2..=16"),
        (r#"{"quantize": {"weights": {"scheme": "fixed-point", "bits": 12}}}"#, "stages[0].quantize.weights.bits", "8 or 16"),
        (r#"{"quantize": {"weights": {"scheme": "ternary", "bits": 4}}}"#, "stages[0].quantize.weights.bits", "take 2 bits"),
        (r#"{"quantize": {"weights": {"layer_bits": [8, 4]}}}"#, "stages[0].quantize.weights.layer_bits", "3 weight matrices"),
        (r#"{"quantize": {"weights": {"layer_bits": [8, 4, 17]}}}"#, "stages[0].quantize.weights.layer_bits[2]", "2..=16"),
        (r#"{"quantize": {"activations": {"scheme": "binary"}}}"#, "stages[0].quantize.activations.scheme", "asymmetric"),
        (r#"{"quantize": {"activations": {"samples": 0}}}"#, "stages[0].quantize.activations.samples", "1..=60000"),
        (r#"{"quantize": {"mode": "qat"}}"#, "stages[0].quantize.finetune", "give it"),
        (r#"{"quantize": {"finetune": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].quantize.finetune", "\"qat\""),
        (r#"{"quantize": {"weights": {"scheme": "kmeans", "bits": 9}}}"#, "stages[0].quantize.weights.bits", "1..=8"),
        (r#"{"quantize": {"weights": {"scheme": "k-means"}}}"#, "stages[0].quantize.weights.scheme", "unknown variant"),
        (r#"{"quantize": {"biases": "int8"}}"#, "stages[0].quantize.biases", "unknown variant"),
        (r#"{"quantize": {"lsq": true}}"#, "stages[0].quantize.lsq", "qat"),
        (r#"{"distill": {"temperature": 0, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.temperature", "[0.1, 100]"),
        (r#"{"distill": {"alpha": 1.5, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.alpha", "[0, 1]"),
        (r#"{"distill": {"student": {"arch": "mlp", "hidden": [0]}, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.student.hidden[0]", "1..=4096"),
        (r#"{"distill": {"train": {"epochs": 0, "lr": 0.1}}}"#, "stages[0].distill.train.epochs", ""),
        (r#"{"distill": {"student": {"arch": "mlp", "hidden": [30]}, "train": {"epochs": 1, "lr": 0.1}}}, {"quantize": {"weights": {"layer_bits": [8, 8, 8]}}}"#, "stages[1].quantize.weights.layer_bits", "2 weight matrices"),
        (r#"{"quantize": {"activations": {"calibration": "dynamic"}, "lsq": true, "mode": "qat", "finetune": {"epochs": 1, "lr": 0.01}}}"#, "stages[0].quantize.activations.calibration", "no step"),
        (r#"{"quantize": {"weights": {"scheme": "ternary"}, "lsq": true, "mode": "qat", "finetune": {"epochs": 1, "lr": 0.01}}}"#, "stages[0].quantize.lsq", "uniform quantizer"),
        (r#"{"distill": {"teacher": 0, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.teacher", "earlier stage"),
        (r#"{"distill": {"teacher": "best", "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.teacher", "\"trained\""),
        (r#"{"sensitivity": {"sparsities": [0.5]}}, {"distill": {"teacher": 0, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[1].distill.teacher", "no model"),
        (r#"{"distill": {"teacher": {"file": "teacher.sqz"}, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.student", "architecture named"),
        (r#"{"distill": {"teacher": {"file": "teacher.pt"}, "student": {"arch": "mlp", "hidden": [30]}, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.teacher.file", ".sqz or .onnx"),
        (r#"{"distill": {"teacher": {"file": ".onnx"}, "student": {"arch": "mlp", "hidden": [30]}, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.teacher.file", ".sqz or .onnx"),
        (r#"{"distill": {"omit": [3, 10], "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.omit[1]", "0..=9"),
        (r#"{"distill": {"omit": [3, 3], "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.omit[1]", "once"),
        (r#"{"distill": {"omit": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.omit", "every class"),
        (r#"{"distill": {"bias_correction": 3.5, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.bias_correction", "omit"),
        (r#"{"distill": {"train": {"epochs": 1, "lr": 0.1, "jitter": 9}}}"#, "stages[0].distill.train.jitter", "0..=8"),
        (r#"{"distill": {"hints": [{"student": 1, "teacher": 1, "weight": 0}], "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.hints[0].weight", "(0, 100000]"),
        (r#"{"distill": {"attention": [{"student": 1, "teacher": 1}], "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.attention[0]", "beta"),
        (r#"{"distill": {"student": {"arch": "lenet5", "widths": [10, 25]}, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.student.widths", "[20, 50, 500]"),
        (r#"{"distill": {"student": {"arch": "mlp", "widths": [10]}, "train": {"epochs": 1, "lr": 0.1}}}"#, "stages[0].distill.student.widths", "hidden"),
        // A teacher named by index brings its own layer count: the student defaults to the
        // trained 3-layer MLP, not the 2-layer student of the stage before.
        (r#"{"distill": {"student": {"arch": "mlp", "hidden": [30]}, "train": {"epochs": 1, "lr": 0.1}}}, {"distill": {"teacher": "trained", "train": {"epochs": 1, "lr": 0.1}}}, {"quantize": {"weights": {"layer_bits": [8, 8]}}}"#, "stages[2].quantize.weights.layer_bits", "3 weight matrices"),
        (r#"{"sweep": {"schemes": ["symmetric", "fixed-point"], "bits": [4, 2]}}"#, "stages[0].sweep.schemes[1]", "8 or 16"),
        (r#"{"sweep": {"bits": [8, 0]}}"#, "stages[0].sweep.bits[1]", "1..=16"),
        (r#"{"sweep": {"schemes": []}}"#, "stages[0].sweep.schemes", "1..=8"),
        (r#"{"sweep": {"budget": 1.5}}"#, "stages[0].sweep.budget", "[0, 1)"),
    ];
    for (stage, want_path, want_msg) in cases {
        let (path, msg) = field_error(&with(stage));
        assert_eq!(path, want_path, "{stage}: {msg}");
        assert!(msg.contains(want_msg), "{stage}: {msg}");
    }
    // A teacher file: named by the stages that use it, once each, with the first such stage;
    // the student's layer count is what later per-layer lists are checked against.
    let r = Recipe::from_json(&with(
        r#"{"distill": {"teacher": {"file": "t.sqz"}, "student": {"arch": "mlp", "hidden": [30]}, "train": {"epochs": 1, "lr": 0.1}}},
           {"distill-grid": {"teacher": {"file": "t.sqz"}, "temperatures": [2], "alphas": [0.5], "train": {"epochs": 1, "lr": 0.1}}},
           {"distill-grid": {"teacher": {"file": "u.sqz"}, "temperatures": [2], "alphas": [0.5], "train": {"epochs": 1, "lr": 0.1}}},
           {"quantize": {"weights": {"layer_bits": [8, 6]}}}"#,
    ))
    .unwrap();
    assert_eq!(r.teacher_files(), vec![(0, "t.sqz"), (2, "u.sqz")]);
    assert_eq!(Recipe::from_json(&r.to_json()).unwrap(), r);
    // Hard unit pruning after quantizing is refused before any training.
    let (path, msg) = field_error(&with(r#"{"quantize": {}}, {"prune": {"granularity": "neuron", "sparsity": 0.5}}"#));
    assert_eq!(path, "stages[1].prune.granularity", "{msg}");
    // Defaults: symmetric per-channel 8-bit weights, PTQ, no activations.
    let r = Recipe::from_json(&with(r#"{"quantize": {}}"#)).unwrap();
    let Stage::Quantize(q) = &r.stages[0] else { panic!("a quantize stage") };
    assert_eq!((q.weights.bits_for(0), q.weights.per_channel, q.activations.is_none()), (8, true, true));
    assert_eq!(Recipe::from_json(&r.to_json()).unwrap(), r);
}

/// Stage orders the run cannot carry out are refused by validation, before any training (the
/// issue's case: hard unit pruning after weight pruning used to fail after the whole training);
/// the orders it can are accepted: hard units first, soft ones after, and after a distill stage
/// (its student starts without masks).
#[test]
fn impossible_stage_orders_are_refused_before_training() {
    let recipe = |stages: &str| format!(r#"{{"dataset": "mnist", "model": {{"arch": "mlp", "hidden": [32]}}, "train": {{"epochs": 1, "lr": 0.05}}, "limit": {{"holdout": 100}}, "stages": [{stages}]}}"#);
    let hard = r#"{"prune": {"granularity": "neuron", "sparsity": 0.5, "mode": "hard"}}"#;
    for before in [r#"{"prune": {"sparsity": 0.5}}"#, r#"{"prune": {"granularity": "neuron", "sparsity": 0.5, "mode": "soft"}}"#, r#"{"greedy": {"sparsity": 0.5}}"#] {
        let (path, msg) = field_error(&recipe(&format!("{before}, {{\"train\": {{\"epochs\": 1, \"lr\": 0.05}}}}, {hard}")));
        assert_eq!(path, "stages[2].prune.mode", "{before}");
        assert!(msg.contains("put it first"), "{msg}");
    }
    for ok in [format!("{hard}, {{\"prune\": {{\"sparsity\": 0.5}}}}"), format!("{hard}, {hard}"), format!("{{\"prune\": {{\"sparsity\": 0.5}}}}, {{\"distill\": {{\"student\": {{\"arch\": \"mlp\", \"hidden\": [16]}}, \"train\": {{\"epochs\": 1, \"lr\": 0.05}}}}}}, {hard}")] {
        assert!(Recipe::from_json(&recipe(&ok)).is_ok(), "{ok}");
    }
}
