//! The command-line runner as a user calls it: `run --stage N` writes the model stage N left, and
//! a stage that does not exist or leaves no model is refused before any work. Native only (runs
//! the binary on the real MNIST of scripts/setup).
#![cfg(not(target_arch = "wasm32"))]

use std::process::Command;

fn squeeze(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_squeeze")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("the squeeze binary runs")
}

/// Exact zeros among a model file's parameters.
fn zeros(path: &std::path::Path) -> (usize, usize) {
    let (m, _) = squeeze::export::load(&std::fs::read(path).unwrap()).unwrap();
    (m.net.parameter_count() - m.nonzero(), m.net.parameter_count())
}

#[test]
fn run_writes_the_model_of_the_stage_asked_for() {
    let dir = std::env::temp_dir().join(format!("squeeze-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("prune.json");
    std::fs::write(
        &recipe,
        r#"{"dataset": "mnist", "seed": 2, "limit": {"train": 2000, "test": 500},
            "model": {"arch": "mlp", "hidden": [40]},
            "train": {"epochs": 1, "batch": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
            "stages": [{"sensitivity": {"sparsities": [0.5]}},
                       {"prune": {"sparsity": 0.6, "mode": "hard", "finetune": {"epochs": 1, "batch": 64, "lr": 0.01}}}]}"#,
    )
    .unwrap();
    let r = recipe.to_str().unwrap();
    for (stage, want) in [("3", "the recipe has 2 stages after training"), ("1", "that stage is a scan")] {
        let out = squeeze(&["run", r, "--backend", "cpu", "--stage", stage, "--save-model", "/dev/null"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(&format!("--stage {stage}: {want}")), "--stage {stage}: {err}");
        assert!(!err.contains("epoch"), "refused before any training: {err}");
    }
    let (trained, pruned, last) = (dir.join("0.sqz"), dir.join("2.sqz"), dir.join("final.sqz"));
    for (stage, file) in [(Some("0"), &trained), (Some("2"), &pruned), (None, &last)] {
        let mut args = vec!["run", r, "--backend", "cpu", "--save-model", file.to_str().unwrap()];
        args.extend(stage.map(|s| ["--stage", s]).into_iter().flatten());
        let out = squeeze(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let ((z0, n), (z2, _)) = (zeros(&trained), zeros(&pruned));
    assert!(z0 * 100 < n, "the trained model is dense: {z0} zeros of {n}");
    assert!(z2 * 2 > n, "the pruned model is: {z2} zeros of {n}");
    assert_eq!(std::fs::read(&last).unwrap(), std::fs::read(&pruned).unwrap(), "without --stage, the final model (the same run, seed and backend)");
    std::fs::remove_dir_all(&dir).ok();
}

/// A model exported as ONNX teaches from a recipe that names the file (`--teacher`), as a `.sqz`
/// does: the student's report names it and the teacher's accuracy is the exported model's.
#[test]
fn an_onnx_file_teaches_a_student() {
    let dir = std::env::temp_dir().join(format!("squeeze-cli-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (teacher, onnx) = (dir.join("teacher.json"), dir.join("t.onnx"));
    let data = r#""dataset": "mnist", "seed": 3, "limit": {"train": 1500, "test": 400}"#;
    std::fs::write(&teacher, format!(r#"{{{data}, "model": {{"arch": "mlp", "hidden": [32]}}, "train": {{"epochs": 1, "lr": 0.05, "momentum": 0.9}}}}"#)).unwrap();
    let out = squeeze(&["run", teacher.to_str().unwrap(), "--backend", "cpu", "--export-onnx", onnx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let trained = String::from_utf8_lossy(&out.stdout).lines().find(|l| l.starts_with("train ")).map(|l| l.split_whitespace().nth(2).unwrap().to_string()).expect("the stage table's train row");
    let student = dir.join("student.json");
    std::fs::write(
        &student,
        format!(r#"{{{data}, "model": {{"arch": "mlp", "hidden": [8]}}, "train": {{"epochs": 1, "lr": 0.05}},
                  "stages": [{{"distill": {{"teacher": {{"file": "t.onnx"}}, "student": {{"arch": "mlp", "hidden": [16]}}, "train": {{"epochs": 1, "lr": 0.05}}, "baseline": false}}}}]}}"#),
    )
    .unwrap();
    let out = squeeze(&["run", student.to_str().unwrap(), "--backend", "cpu", "--teacher", onnx.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("teacher {trained} ")), "the teacher is the exported model ({trained}): {text}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A recipe of the gallery prints the paper's figures beside the measured ones; a recipe beside
/// no gallery prints none.
#[test]
fn a_gallery_recipe_prints_paper_beside_measured() {
    let dir = std::env::temp_dir().join(format!("squeeze-cli-gallery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("mine.json");
    std::fs::write(
        &recipe,
        r#"{"dataset": "mnist", "seed": 1, "limit": {"train": 1000, "test": 300}, "model": {"arch": "mlp", "hidden": [24]},
            "train": {"epochs": 1, "lr": 0.05, "momentum": 0.9},
            "stages": [{"prune": {"sparsity": 0.9, "mode": "hard", "finetune": {"epochs": 1, "lr": 0.02}}}]}"#,
    )
    .unwrap();
    let out = squeeze(&["run", recipe.to_str().unwrap(), "--backend", "cpu"]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("gallery:"));
    // A gallery that does not parse is said before the run, which still finishes and writes its report.
    std::fs::write(dir.join("gallery.json"), r#"{"entries": [{"id": "mine", "recipe": "mine.json"}]}"#).unwrap();
    let report = dir.join("report.json");
    let out = squeeze(&["run", recipe.to_str().unwrap(), "--backend", "cpu", "--json", report.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.exists(), "{err}");
    assert!(err.contains("the gallery beside the recipe is not read") && err.find("not read") < err.find("epoch"), "{err}");
    std::fs::write(
        dir.join("gallery.json"),
        r#"{"entries": [{"id": "mine", "group": "Pruning", "title": "Mine", "paper": "A paper", "recipe": "mine.json",
            "figures": [{"label": "weights left", "paper": "10%", "measure": {"weights_left": -1}, "target": {"max": 10.5}},
                        {"label": "error change", "paper": "+0 pp", "measure": {"error_change": [0, 1]}, "target": {"max": -50}}]}]}"#,
    )
    .unwrap();
    let out = squeeze(&["run", recipe.to_str().unwrap(), "--backend", "cpu"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("gallery: Mine (A paper)"), "{text}");
    assert!(text.contains("weights left: paper 10% | measured 10.") && text.contains("target ≤ 10.5%: met"), "{text}");
    assert!(text.contains("target ≤ -50 pp: MISSED"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
