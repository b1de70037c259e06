//! The gallery of classic results (recipes/gallery.json): each entry names a recipe file and the
//! paper's figures; this module measures the same figures from a finished run's report and
//! models, and shrinks a recipe to a quick look. The page, the CLI (`squeeze run` of a gallery
//! recipe prints paper beside measured) and tests/gallery.rs share it. No I/O here.

use crate::error::{Error, Result};
use crate::recipe::Recipe;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// recipes/gallery.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gallery {
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Stable name (URLs, tests).
    pub id: String,
    /// Section of the page: "Pruning", "Quantization", "Distillation", ...
    pub group: String,
    pub title: String,
    /// The paper, cited.
    pub paper: String,
    /// The recipe file in recipes/ (the CLI runs the same file).
    pub recipe: String,
    pub figures: Vec<FigureSpec>,
    /// The paper's own model on the Pareto chart: test accuracy (%) and bytes stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<PaperPoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperPoint {
    pub label: String,
    pub accuracy: f64,
    pub bytes: f64,
}

/// One figure: what the paper reported, how to measure ours, and the target ours must meet.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureSpec {
    pub label: String,
    pub paper: String,
    pub measure: Measure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// How a figure is read off a run. Stage indices count the report's stages (0: the first
/// training); negative ones count from the end (-1: the last stage).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Measure {
    /// Test accuracy (%) after stage s.
    Accuracy(isize),
    /// Test error (%) after stage s.
    Error(isize),
    /// Test error after stage b minus after stage a (percentage points).
    ErrorChange([isize; 2]),
    /// Weights left after pruning stage s (% of all weights).
    WeightsLeft(isize),
    /// Dense f32 bytes of the first training's model over the bytes of stage s's model file.
    Compression(isize),
    /// A lottery-ticket stage: its accuracy minus its random-reinit control's (pp).
    ControlGap(isize),
    /// A distill stage: how many fewer test errors the student makes than its labels-only twin (%).
    FewerErrors(isize),
    /// A distill stage with omitted classes: accuracy (%) on their test images after the bias shift.
    Omitted(isize),
    /// Parameters of stage s's model (and the share of the first training's).
    Parameters(isize),
    /// Forward FLOPs per image of stage s's model as it runs (dense kernels: structured pruning
    /// lowers them, single zero weights do not), and the share of the first training's.
    Flops(isize),
    /// Measured inference time of stage s's model (µs per test image).
    Latency(isize),
}

/// A figure's target: the measured value at least `min` and/or at most `max` (its own unit).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Target {
    pub fn met(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }

    fn describe(&self, unit: &str) -> String {
        match (self.min, self.max) {
            (Some(a), Some(b)) => format!("{a}{unit} to {b}{unit}"),
            (Some(a), None) => format!("≥ {a}{unit}"),
            (None, Some(b)) => format!("≤ {b}{unit}"),
            (None, None) => String::new(),
        }
    }
}

/// A model a run left, as the figures need it: the stage that left it, its parameters and the
/// bytes of its model file.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ModelFacts {
    pub stage: usize,
    pub parameters: usize,
    pub file_bytes: usize,
    /// Forward FLOPs per image (`Net::forward_flops`).
    pub flops: usize,
}

/// A measured figure beside the paper's.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub label: String,
    pub paper: String,
    pub measured: String,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

impl Gallery {
    pub fn from_json(text: &str) -> Result<Gallery> {
        let g: Gallery = serde_json::from_str(text).map_err(|e| crate::json_path::error(text, &e, "gallery"))?;
        for (i, e) in g.entries.iter().enumerate() {
            if g.entries[..i].iter().any(|o| o.id == e.id) {
                return Err(Error::recipe(&format!("gallery.entries[{i}].id"), format!("{:?} is used twice", e.id)));
            }
        }
        Ok(g)
    }

    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The entry whose recipe file is `file` (a path's last component).
    pub fn for_recipe(&self, file: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.recipe == file)
    }
}

/// Every figure of `specs` measured on a run: `report` is its JSON report (the CLI's `--json`,
/// the page's `run` result), `models` the models it left.
pub fn figures(specs: &[FigureSpec], report: &Value, models: &[ModelFacts]) -> Result<Vec<Figure>> {
    specs.iter().map(|s| figure(s, report, models)).collect()
}

fn figure(spec: &FigureSpec, report: &Value, models: &[ModelFacts]) -> Result<Figure> {
    let r = Reader { report, models, label: &spec.label };
    let (value, measured, unit) = match &spec.measure {
        Measure::Accuracy(s) => {
            let a = 100.0 * r.num(*s, "test_accuracy")?;
            (a, format!("{a:.2}%"), "%")
        }
        Measure::Error(s) => {
            let e = r.error(*s)?;
            (e, format!("{e:.2}%"), "%")
        }
        Measure::ErrorChange([a, b]) => {
            let (ea, eb) = (r.error(*a)?, r.error(*b)?);
            let d = eb - ea;
            (d, format!("{ea:.2}% → {eb:.2}% ({d:+.2} pp)"), " pp")
        }
        Measure::WeightsLeft(s) => {
            let p = r.detail(*s, "pruning")?;
            let left = r.field(p, "weights_left")?;
            let total: f64 = p.get("per_layer_weights").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_f64).sum()).unwrap_or(0.0);
            let pct = 100.0 * left / total.max(1.0);
            (pct, format!("{pct:.2}% ({} of {}, {:.1}x fewer)", thousands(left), thousands(total), total / left.max(1.0)), "%")
        }
        Measure::Compression(s) => {
            let dense = 4.0 * r.model(0)?.parameters as f64;
            let file = r.model(r.index(*s)?)?.file_bytes as f64;
            let x = dense / file;
            (x, format!("{x:.1}x ({} bytes, dense f32 {})", thousands(file), thousands(dense)), "x")
        }
        Measure::ControlGap(s) => {
            let p = r.detail(*s, "pruning")?;
            let control = r.field(p, "control_accuracy")?;
            let a = r.num(*s, "test_accuracy")?;
            let d = 100.0 * (a - control);
            (d, format!("{d:+.2} pp (ticket {:.2}%, same masks from random weights {:.2}%)", 100.0 * a, 100.0 * control), " pp")
        }
        Measure::FewerErrors(s) => {
            let d = r.detail(*s, "distillation")?;
            let n = r.report.get("test_samples").and_then(Value::as_f64).ok_or_else(|| r.missing("test_samples"))?;
            let errors = |acc: f64| (n * (1.0 - acc)).round();
            let (student, base, teacher) = (errors(r.num(*s, "test_accuracy")?), errors(r.field(d, "baseline_accuracy")?), errors(r.field(d, "teacher_accuracy")?));
            let fewer = 100.0 * (base - student) / base.max(1.0);
            (fewer, format!("{fewer:.1}% fewer: {student} test errors distilled, {base} from labels alone (teacher {teacher})"), "%")
        }
        Measure::Omitted(s) => {
            let d = r.detail(*s, "distillation")?;
            let o = d.get("omitted").ok_or_else(|| r.missing("distillation.omitted"))?;
            let (before, after) = (100.0 * r.field(o, "omitted_accuracy_before")?, 100.0 * r.field(o, "omitted_accuracy")?);
            (after, format!("{after:.1}% of the omitted class's test images ({before:.1}% before the bias shift)"), "%")
        }
        Measure::Parameters(s) => {
            let (p, dense) = (r.model(r.index(*s)?)?.parameters as f64, r.model(0)?.parameters as f64);
            (p, format!("{} ({:.1}% of {})", thousands(p), 100.0 * p / dense.max(1.0), thousands(dense)), "")
        }
        Measure::Flops(s) => {
            let (f, dense) = (r.model(r.index(*s)?)?.flops as f64, r.model(0)?.flops as f64);
            (f / 1e6, format!("{:.2} MFLOPs per image ({:.1}% of {:.2})", f / 1e6, 100.0 * f / dense.max(1.0), dense / 1e6), " MFLOPs")
        }
        Measure::Latency(s) => {
            let us = r.num(*s, "inference_us_per_image")?;
            (us, format!("{us:.2} µs/image"), " µs")
        }
    };
    if !value.is_finite() {
        return Err(Error::recipe(&spec.label, format!("measured {value}, not a number")));
    }
    Ok(Figure { label: spec.label.clone(), paper: spec.paper.clone(), measured, value, target: spec.target.as_ref().map(|t| t.describe(unit)), met: spec.target.as_ref().map(|t| t.met(value)) })
}

/// Reads a run's report for one figure; a missing part is an error naming the figure.
struct Reader<'a> {
    report: &'a Value,
    models: &'a [ModelFacts],
    label: &'a str,
}

impl Reader<'_> {
    fn missing(&self, what: &str) -> Error {
        Error::recipe(self.label, format!("the run's report has no {what}"))
    }

    fn stages(&self) -> &[Value] {
        self.report.get("stages").and_then(Value::as_array).map_or(&[], |v| v.as_slice())
    }

    fn index(&self, s: isize) -> Result<usize> {
        let n = self.stages().len() as isize;
        let i = if s < 0 { n + s } else { s };
        if (0..n).contains(&i) {
            Ok(i as usize)
        } else {
            Err(self.missing(&format!("stage {s} (it has {n})")))
        }
    }

    fn stage(&self, s: isize) -> Result<&Value> {
        Ok(&self.stages()[self.index(s)?])
    }

    fn field(&self, v: &Value, key: &str) -> Result<f64> {
        v.get(key).and_then(Value::as_f64).ok_or_else(|| self.missing(key))
    }

    fn num(&self, s: isize, key: &str) -> Result<f64> {
        self.field(self.stage(s)?, key)
    }

    fn error(&self, s: isize) -> Result<f64> {
        Ok(100.0 * (1.0 - self.num(s, "test_accuracy")?))
    }

    fn detail(&self, s: isize, kind: &str) -> Result<&Value> {
        self.stage(s)?.get(kind).ok_or_else(|| self.missing(&format!("{kind} in stage {s}")))
    }

    /// The model the stage with report index `i` left.
    fn model(&self, i: usize) -> Result<ModelFacts> {
        self.models.iter().rev().find(|m| m.stage == i).copied().ok_or_else(|| self.missing(&format!("model of stage {i}")))
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A quick look at a recipe (its JSON text): the first `train` / `test` samples, every training
/// one epoch, at most two pruning rounds, gradual pruning every 2 steps, calibration on at most
/// 256 samples. It runs every stage the full recipe runs (the gallery's test, the page's "quick
/// look"). Works on the text and returns text (checked to be a valid recipe), so the page's module
/// carries no second serializer of recipes and the numbers stay as written.
pub fn quick(recipe: &str, train: usize, test: usize) -> Result<String> {
    let full = Recipe::from_json(recipe)?;
    let mut v: Value = serde_json::from_str(recipe).map_err(|e| Error::recipe("recipe", e.to_string()))?;
    shrink(&mut v);
    let mut limit = serde_json::json!({"train": train.min(full.limit.train.unwrap_or(usize::MAX)), "test": test.min(full.limit.test.unwrap_or(usize::MAX))});
    if let Some(h) = full.limit.holdout {
        limit["holdout"] = h.min(train / 4).into();
    }
    v["limit"] = limit;
    let text = v.to_string();
    Recipe::from_json(&text)?;
    Ok(text)
}

fn shrink(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                match (k.as_str(), x.as_u64()) {
                    ("epochs", Some(_)) => *x = 1.into(),
                    ("rounds", Some(n)) => *x = n.min(2).into(),
                    ("every", Some(_)) => *x = 2.into(),
                    ("samples", Some(n)) => *x = n.min(256).into(),
                    _ => shrink(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(shrink),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Value {
        serde_json::json!({"test_samples": 10000, "stages": [
            {"test_accuracy": 0.9836, "inference_us_per_image": 6.0},
            {"test_accuracy": 0.9841, "inference_us_per_image": 3.0,
             "pruning": {"weights_left": 21776, "per_layer_weights": [235200, 30000, 1000], "control_accuracy": 0.9802},
             "distillation": {"baseline_accuracy": 0.9874, "teacher_accuracy": 0.9942, "omitted": {"omitted_accuracy_before": 0.4, "omitted_accuracy": 0.948}}}
        ]})
    }

    fn spec(measure: Measure, target: Option<Target>) -> FigureSpec {
        FigureSpec { label: "x".into(), paper: "p".into(), measure, target }
    }

    /// Each measure reads what it names: stage order, signs and units are told apart.
    #[test]
    fn figures_read_the_report() {
        let models = [ModelFacts { stage: 0, parameters: 266_610, file_bytes: 1_067_000, flops: 4_000_000 }, ModelFacts { stage: 1, parameters: 125_810, file_bytes: 26_078, flops: 1_000_000 }];
        let r = report();
        let v = |m: Measure| figure(&spec(m, None), &r, &models).unwrap().value;
        assert!((v(Measure::Accuracy(-1)) - 98.41).abs() < 1e-9);
        assert!((v(Measure::Error(0)) - 1.64).abs() < 1e-9);
        assert!((v(Measure::ErrorChange([0, -1])) + 0.05).abs() < 1e-9);
        assert!((v(Measure::ErrorChange([-1, 0])) - 0.05).abs() < 1e-9);
        assert!((v(Measure::WeightsLeft(1)) - 100.0 * 21776.0 / 266200.0).abs() < 1e-9);
        assert!((v(Measure::Compression(-1)) - 4.0 * 266_610.0 / 26_078.0).abs() < 1e-9);
        assert!((v(Measure::ControlGap(1)) - 0.39).abs() < 1e-9);
        // 159 errors distilled against 126 from labels: a negative "fewer".
        assert!((v(Measure::FewerErrors(1)) - 100.0 * (126.0 - 159.0) / 126.0).abs() < 1e-9);
        assert!((v(Measure::Omitted(-1)) - 94.8).abs() < 1e-9);
        assert_eq!(v(Measure::Parameters(1)), 125_810.0);
        assert_eq!(v(Measure::Flops(-1)), 1.0);
        assert!(figure(&spec(Measure::Flops(1), None), &r, &models).unwrap().measured.contains("25.0% of 4.00"));
        assert_eq!(v(Measure::Latency(0)), 6.0);
        let f = figure(&spec(Measure::ErrorChange([0, 1]), Some(Target { min: None, max: Some(0.1) })), &r, &models).unwrap();
        assert_eq!(f.met, Some(true));
        assert_eq!(f.measured, "1.64% → 1.59% (-0.05 pp)");
        let f = figure(&spec(Measure::Accuracy(0), Some(Target { min: Some(99.0), max: None })), &r, &models).unwrap();
        assert_eq!(f.met, Some(false));
    }

    /// A figure whose input the run lacks is an error naming it, not a zero.
    #[test]
    fn a_missing_part_is_named() {
        let r = serde_json::json!({"stages": [{"test_accuracy": 0.9}]});
        for (m, want) in [(Measure::WeightsLeft(0), "pruning"), (Measure::Accuracy(3), "stage 3"), (Measure::Compression(0), "model of stage 0"), (Measure::FewerErrors(-1), "distillation")] {
            let e = figure(&spec(m, None), &r, &[]).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_066_440.0), "1,066,440");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-21_776.0), "-21,776");
    }
}
