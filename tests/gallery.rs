//! The gallery (recipes/gallery.json): every entry's recipe is a file in recipes/ that validates
//! in full against the CPU backend's limits, and runs as a quick look (400 real training and 200 test images,
//! one epoch per training) on the CPU reference with every figure of the entry measured from its
//! report and models. Native only: the data comes from the disk.
#![cfg(not(target_arch = "wasm32"))]

use squeeze::data::files::{default_data_dir, load_named};
use squeeze::experiment::{check, run, Backend, Control, DataShape, ModelFiles, RunOptions};
use squeeze::gallery::{figures, quick, Gallery, ModelFacts};
use squeeze::recipe::Recipe;
use std::path::Path;

fn gallery() -> (Gallery, std::path::PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let text = std::fs::read_to_string(dir.join("gallery.json")).expect("recipes/gallery.json");
    (Gallery::from_json(&text).expect("gallery.json parses"), dir)
}

#[test]
fn every_gallery_recipe_validates_and_runs_a_quick_look_with_its_figures() {
    let (g, dir) = gallery();
    assert!(g.entries.len() >= 13, "the gallery lost entries: {}", g.entries.len());
    let mut loaded = std::collections::HashMap::new();
    for e in &g.entries {
        let text = std::fs::read_to_string(dir.join(&e.recipe)).unwrap_or_else(|err| panic!("{}: recipes/{}: {err}", e.id, e.recipe));
        let full = Recipe::from_json(&text).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        check(&full, DataShape::known(full.dataset).expect("a shipped dataset"), &ModelFiles::new(), &Backend::Cpu).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        let r = Recipe::from_json(&quick(&text, 400, 200).unwrap_or_else(|err| panic!("{}: quick look: {err}", e.id))).unwrap();
        // The quick look runs every stage of the full recipe, each training one epoch.
        assert_eq!(r.stages.len(), full.stages.len(), "{}", e.id);
        assert_eq!(r.train.epochs, 1, "{}", e.id);
        let name = r.dataset.as_str();
        let data = loaded.entry(name).or_insert_with(|| load_named(&default_data_dir(), name).expect("real data: run scripts/setup"));
        let out = pollster::block_on(run(&r, data, &Backend::Cpu, &RunOptions { progress_every: 1000, ..Default::default() }, &mut |_| Control::Continue)).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        assert_eq!(out.report.test_samples, 200, "{}", e.id);
        let facts: Vec<ModelFacts> = out.models.iter().map(|m| ModelFacts { stage: m.stage, parameters: m.net.parameter_count(), file_bytes: squeeze::export::save(m, out.norm).len() , flops: m.net.forward_flops() }).collect();
        let report = serde_json::to_value(&out.report).unwrap();
        let figs = figures(&e.figures, &report, &facts).unwrap_or_else(|err| panic!("{}: {err}", e.id));
        assert_eq!(figs.len(), e.figures.len());
        for f in &figs {
            assert!(f.value.is_finite() && !f.measured.is_empty(), "{}: {f:?}", e.id);
            println!("{}: {}: paper {} | quick look {}", e.id, f.label, f.paper, f.measured);
        }
    }
}

/// Ids are unique and an entry that names a figure the gallery does not know is refused with
/// the path to it.
#[test]
fn a_malformed_gallery_is_refused_with_the_field() {
    let (g, _) = gallery();
    let mut twice = g.clone();
    twice.entries.push(g.entries[0].clone());
    let e = Gallery::from_json(&serde_json::to_string(&twice).unwrap()).unwrap_err().to_string();
    assert!(e.contains("entries[") && e.contains("used twice"), "{e}");
    let mut v = serde_json::to_value(&g).unwrap();
    v["entries"][1]["figures"][0]["measure"] = serde_json::json!({"speedup": 2});
    let e = Gallery::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("entries[1].figures[0].measure"), "{e}");
}

/// The quick look keeps what makes the recipe the recipe (model, stages, their kinds and targets)
/// and only shrinks data and time.
#[test]
fn a_quick_look_only_shrinks_data_and_time() {
    let (g, dir) = gallery();
    let e = g.entry("deep-compression-lenet5").expect("entry");
    let text = std::fs::read_to_string(dir.join(&e.recipe)).unwrap();
    let full = Recipe::from_json(&text).unwrap();
    let q = Recipe::from_json(&quick(&text, 400, 200).unwrap()).unwrap();
    assert_eq!(q.model, full.model);
    assert_eq!((q.limit.train, q.limit.test), (Some(400), Some(200)));
    let (a, b) = (serde_json::to_value(&q.stages).unwrap(), serde_json::to_value(&full.stages).unwrap());
    assert_eq!(a[0]["prune"]["sparsity"], b[0]["prune"]["sparsity"]);
    assert_eq!(a[0]["prune"]["rounds"], 2);
    assert_eq!(a[1]["quantize"]["weights"], b[1]["quantize"]["weights"]);
    assert_eq!(a[1]["quantize"]["finetune"]["epochs"], 1);
}
