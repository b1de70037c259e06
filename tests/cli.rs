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
