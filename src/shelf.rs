//! The models a page holds between runs: every run's models (the oldest runs dropped once they
//! pass a memory budget, never the last run's) and the model files the user loaded. Each has an
//! id the page names it by (Inside a model, the Pareto chart, downloads, a distill stage's
//! teacher file). Pure bookkeeping: no backend, no DOM.

use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::experiment::ModelFiles;
use crate::inspect::StageModel;

/// One held model.
#[derive(Clone, Debug)]
pub struct Held {
    pub id: u32,
    /// The run that left it (runs are numbered by the page from 1); `None` for a loaded file.
    pub run: Option<u32>,
    /// A loaded file's name (what a distill stage's `{"file": name}` names).
    pub file: Option<String>,
    pub model: StageModel,
    /// The input normalisation it was trained with.
    pub norm: Normalization,
    /// The dataset its run trained on (a file: none known).
    pub dataset: Option<String>,
}

impl Held {
    fn bytes(&self) -> usize {
        4 * self.model.params.tensors.iter().map(Vec::len).sum::<usize>()
    }
}

pub struct Shelf {
    held: Vec<Held>,
    next_id: u32,
    /// Bytes of parameters the runs' models may hold together (the last run's always stay).
    budget: usize,
}

impl Shelf {
    pub fn new(budget: usize) -> Shelf {
        Shelf { held: Vec::new(), next_id: 1, budget }
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Keeps run `run`'s models; drops the oldest other runs' while the runs' models pass the
    /// budget. Returns the new models' ids, in order.
    pub fn add_run(&mut self, run: u32, models: Vec<StageModel>, norm: Normalization, dataset: &str) -> Vec<u32> {
        let ids: Vec<u32> = models
            .into_iter()
            .map(|model| {
                let id = self.id();
                self.held.push(Held { id, run: Some(run), file: None, model, norm, dataset: Some(dataset.to_string()) });
                id
            })
            .collect();
        loop {
            let used: usize = self.held.iter().filter(|h| h.run.is_some()).map(Held::bytes).sum();
            let oldest = self.held.iter().filter_map(|h| h.run).filter(|&r| r != run).min();
            match oldest {
                Some(old) if used > self.budget => self.held.retain(|h| h.run != Some(old)),
                _ => break,
            }
        }
        ids
    }

    /// Keeps a loaded model file; one of the same name replaces it. Returns its id.
    pub fn add_file(&mut self, name: &str, model: StageModel, norm: Normalization) -> u32 {
        self.held.retain(|h| h.file.as_deref() != Some(name));
        let id = self.id();
        self.held.push(Held { id, run: None, file: Some(name.to_string()), model, norm, dataset: None });
        id
    }

    pub fn get(&self, id: u32) -> Result<&Held> {
        self.held.iter().find(|h| h.id == id).ok_or_else(|| {
            Error::Invalid(format!("model {id} is no longer held: the page keeps every loaded file and the models of its most recent runs, up to {} MB of parameters", self.budget >> 20))
        })
    }

    /// The latest run's models, in the order it left them.
    pub fn last_run(&self) -> Vec<&Held> {
        let last = self.held.iter().filter_map(|h| h.run).max();
        self.held.iter().filter(|h| last.is_some() && h.run == last).collect()
    }

    /// Every held model: runs' (oldest first) and files'.
    pub fn all(&self) -> &[Held] {
        &self.held
    }

    pub fn has_file(&self, name: &str) -> bool {
        self.held.iter().any(|h| h.file.as_deref() == Some(name))
    }

    /// The loaded files among `names` (those a recipe names), as a run takes them: copies of
    /// these only, not of every file held.
    pub fn files(&self, names: &[&str]) -> ModelFiles {
        self.held.iter().filter_map(|h| Some((h.file.clone().filter(|f| names.contains(&f.as_str()))?, (h.model.clone(), h.norm)))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Net, NetParams, Shape};

    fn model(hidden: usize, name: &str) -> StageModel {
        let net = Net::mlp(Shape::new(4, 4, 1), &[hidden], 3);
        let params = NetParams::init(&net, 1);
        StageModel::float(name, net, params)
    }

    const NORM: Normalization = Normalization { mean: 0.1, std: 0.3 };

    /// Runs past the budget drop the oldest run whole; the last run and loaded files stay; ids are
    /// never reused, so a dropped model's id is an error that says why.
    #[test]
    fn oldest_runs_go_first_and_whole() {
        let one = 4 * (16 * 10 + 10 + 10 * 3 + 3); // one mlp-10 model's parameter bytes
        let mut s = Shelf::new(5 * one);
        let file = s.add_file("t.sqz", model(10, "file"), NORM);
        let r1 = s.add_run(1, vec![model(10, "a"), model(10, "b")], NORM, "mnist");
        let r2 = s.add_run(2, vec![model(10, "c"), model(10, "d")], NORM, "mnist");
        assert_eq!(s.all().len(), 5);
        let r3 = s.add_run(3, vec![model(10, "e"), model(10, "f")], NORM, "fashion-mnist");
        // 6 run models > 5: run 1 goes, both its models; run 2 stays (4 models fit).
        assert!(s.get(r1[0]).is_err() && s.get(r1[1]).is_err());
        assert!(s.get(r2[1]).is_ok() && s.get(file).is_ok());
        assert!(s.get(r1[0]).unwrap_err().to_string().contains("no longer held"));
        assert_eq!(s.last_run().iter().map(|h| h.id).collect::<Vec<_>>(), r3);
        assert_eq!(s.get(r3[0]).unwrap().dataset.as_deref(), Some("fashion-mnist"));
        // A last run bigger than the budget on its own is still kept whole.
        let big = s.add_run(4, (0..7).map(|_| model(10, "g")).collect(), NORM, "mnist");
        assert!(big.iter().all(|&i| s.get(i).is_ok()));
        assert!(s.get(r3[0]).is_err() && s.get(r2[0]).is_err());
        assert!(big.iter().chain(&r3).all(|&i| i != file && !r1.contains(&i)));
    }

    #[test]
    fn a_file_of_the_same_name_replaces_the_old_one() {
        let mut s = Shelf::new(1 << 20);
        let a = s.add_file("t.sqz", model(10, "old"), NORM);
        let b = s.add_file("t.sqz", model(5, "new"), NORM);
        s.add_file("u.onnx", model(5, "other"), NORM);
        assert!(s.get(a).is_err());
        assert_eq!(s.get(b).unwrap().model.name, "new");
        let files = s.files(&["u.onnx", "t.sqz", "v.sqz"]);
        assert_eq!(files.keys().collect::<Vec<_>>(), ["t.sqz", "u.onnx"]);
        assert_eq!(files["t.sqz"].0.name, "new");
        assert_eq!(s.files(&["u.onnx"]).keys().collect::<Vec<_>>(), ["u.onnx"]);
        assert!(s.last_run().is_empty());
    }
}
