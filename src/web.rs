//! The wasm-bindgen surface: one JS class, `Squeeze`, with a factory and a few methods taking plain
//! JS data. Every error crosses as a JS `Error` with the Rust message (a panic would poison the
//! module). JS owns fetching, the DOM and the worker; this file owns nothing but the hand-off.

use crate::data::{Dataset, Splits};
use crate::experiment::{run, Backend, Control, DataShape, Event, ModelFiles, RunOptions};
use crate::gpu::GpuContext;
use crate::inspect::{self, StageModel};
use crate::recipe::Recipe;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

struct Inner {
    /// The backend runs use now: the GPU, the CPU, or whichever `chooseBackend` measured faster.
    backend: Backend,
    /// The GPU device when there is one, kept while the CPU is chosen (the next model may differ).
    gpu: Option<GpuContext>,
    /// The last measurement `chooseBackend` made, for `backendInfo`.
    choice: Option<crate::experiment::calibrate::Choice>,
    fallback_reason: Option<String>,
    datasets: HashMap<String, Splits>,
    running: bool,
    /// The last finished run's models (after training and after each stage), for the pictures and
    /// draw-a-digit panels, with its normalisation and dataset.
    models: Vec<StageModel>,
    norm: Option<crate::data::Normalization>,
    models_dataset: String,
    /// Loaded `.sqz` files a distill stage may name as teacher, by file name.
    files: ModelFiles,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo {
    index: usize,
    stage: usize,
    name: String,
    arch: String,
    parameters: usize,
    nonzero: usize,
    /// Bytes of its `.sqz` model file (what a download stores).
    file_bytes: usize,
}

/// A loaded model file, as `loadModel` describes it.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct FileInfo {
    name: String,
    arch: String,
    parameters: usize,
    /// Height, width, channels of its images.
    input: [usize; 3],
    classes: usize,
    file_bytes: usize,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Prediction {
    name: String,
    probabilities: Vec<f32>,
}

#[derive(serde::Serialize)]
struct ConfusionView {
    #[serde(flatten)]
    confusion: inspect::Confusion,
    /// Pixels (u8, rows·cols each) of the first misclassified images, in `misclassified` order.
    misclassified_pixels: Vec<Vec<u8>>,
    rows: usize,
    cols: usize,
}

#[wasm_bindgen]
pub struct Squeeze {
    inner: Rc<RefCell<Inner>>,
}

/// Plain JS objects (not ES Maps) for structs, maps and flattened fields.
fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, serde_wasm_bindgen::Error> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
}

/// A recipe from the page: its object as JSON text, parsed by the CLI's own code (one
/// deserializer in the module, not two: the wasm is smaller, the errors the same).
fn recipe_of(v: &JsValue) -> Result<Recipe, JsError> {
    let text = js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()).unwrap_or_default();
    Recipe::from_json(&text).map_err(js_err)
}

fn js_err(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BackendInfo {
    backend: &'static str,
    adapter: Option<crate::gpu::AdapterSummary>,
    fallback_reason: Option<String>,
    /// Both backends' measured speeds and the sentence saying which was chosen (chooseBackend).
    choice: Option<crate::experiment::calibrate::Choice>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DatasetInfo {
    name: String,
    train: usize,
    test: usize,
    rows: usize,
    cols: usize,
}

/// A device lost since the last run (a driver reset, the browser reclaiming it, or
/// `simulateDeviceLoss`) is replaced before the next: by a new device, or by the CPU backend
/// with the reason, so that run works without a reload. `backendInfo` says which.
async fn replace_lost_device(inner: &Rc<RefCell<Inner>>) {
    let (conv, was_running_on_it) = {
        let i = inner.borrow();
        match &i.gpu {
            Some(ctx) if ctx.is_lost() => (ctx.conv, matches!(i.backend, Backend::Gpu(_))),
            _ => return,
        }
    };
    let (gpu, reason) = match GpuContext::new().await {
        Ok(mut ctx) => {
            ctx.conv = conv;
            (Some(ctx), Some("the earlier GPU device was lost; this is a new one".to_string()))
        }
        Err(e) => (None, Some(format!("the GPU device was lost and no new one could be had: {e}"))),
    };
    let mut i = inner.borrow_mut();
    if was_running_on_it {
        i.backend = gpu.clone().map_or(Backend::Cpu, Backend::Gpu);
        i.fallback_reason = reason;
    }
    i.gpu = gpu;
}

#[wasm_bindgen]
impl Squeeze {
    /// Destroys the GPU device, as a driver reset would (for the page's tests and for seeing what
    /// happens): a run in progress stops with "the GPU device was lost", the next run gets a new
    /// device. Does nothing on the CPU backend.
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        if let Backend::Gpu(ctx) = &self.inner.borrow().backend {
            ctx.device.destroy();
        }
    }

    /// The engine on the CPU backend, at once: the page is usable while `acquireGpu` compiles the
    /// GPU's pipelines (about a second on a software adapter). `reason` says why the CPU runs
    /// until then (shown by `backendInfo`).
    pub fn create(reason: String) -> Squeeze {
        console_error_panic_hook::set_once();
        let inner = Inner { backend: Backend::Cpu, gpu: None, choice: None, fallback_reason: Some(reason), datasets: HashMap::new(), running: false, models: Vec::new(), norm: None, models_dataset: String::new(), files: ModelFiles::new() };
        Squeeze { inner: Rc::new(RefCell::new(inner)) }
    }

    /// Acquires WebGPU and runs on it from now on (`chooseBackend` may then pick the CPU). Without
    /// it the engine stays on the CPU and `backendInfo` says why; never rejects. `conv` names a
    /// convolution method (an unknown one keeps the adapter's default: the URL is user input).
    /// Resolves to `backendInfo`.
    #[wasm_bindgen(js_name = acquireGpu)]
    pub fn acquire_gpu(&self, conv: Option<String>) -> js_sys::Promise {
        let inner = self.inner.clone();
        let this = Squeeze { inner: inner.clone() };
        wasm_bindgen_futures::future_to_promise(async move {
            let got = GpuContext::new().await;
            {
                let mut i = inner.borrow_mut();
                match got {
                    Ok(mut ctx) => {
                        if let Some(m) = conv.as_deref().and_then(crate::gpu::net::ConvMethod::parse) {
                            ctx.conv = m;
                        }
                        i.gpu = Some(ctx.clone());
                        i.backend = Backend::Gpu(ctx);
                        i.fallback_reason = None;
                    }
                    Err(e) => i.fallback_reason = Some(e.to_string()),
                }
            }
            Ok(this.backend_info()?)
        })
    }

    /// `{backend: "webgpu" | "cpu", adapter: {name, backend, deviceType, driver, software} | null, fallbackReason}`.
    #[wasm_bindgen(js_name = backendInfo)]
    pub fn backend_info(&self) -> Result<JsValue, JsError> {
        let inner = self.inner.borrow();
        let info = BackendInfo {
            backend: match inner.backend {
                Backend::Gpu(_) => "webgpu",
                Backend::Cpu => "cpu",
            },
            adapter: match &inner.backend {
                Backend::Gpu(ctx) => Some(ctx.adapter.clone()),
                Backend::Cpu => None,
            },
            fallback_reason: inner.fallback_reason.clone(),
            choice: inner.choice.clone(),
        };
        Ok(to_js(&info)?)
    }

    /// Backend by measurement: times a few training steps of `recipe`'s model (its first training's
    /// batch and optimizer) on `rows`×`cols` random images on the CPU and on the GPU (when there is
    /// one), about `budgetS` seconds each, and runs from now on use the faster. Resolves to
    /// `{cpu: {samples_per_s, steps}, gpu: {...} | null, chosen: "cpu" | "gpu", summary}`.
    #[wasm_bindgen(js_name = chooseBackend)]
    pub fn choose_backend(&self, recipe: JsValue, rows: usize, cols: usize, budget_s: f64) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let recipe = recipe_of(&recipe)?;
            recipe.validate().map_err(js_err)?;
            if !(1..=4096).contains(&rows) || !(1..=4096).contains(&cols) || !(0.01..=10.0).contains(&budget_s) {
                return Err(JsError::new("chooseBackend: rows and cols are 1 to 4096, budgetS 0.01 to 10 seconds").into());
            }
            replace_lost_device(&inner).await;
            let gpu = {
                let mut i = inner.borrow_mut();
                if i.running {
                    return Err(JsError::new("a run is in progress: the backend is chosen between runs").into());
                }
                i.running = true;
                i.gpu.clone().map(Backend::Gpu)
            };
            let choice = crate::experiment::calibrate::choose(&recipe, (rows, cols), gpu.as_ref(), budget_s).await;
            let mut i = inner.borrow_mut();
            i.running = false;
            let choice = choice.map_err(js_err)?;
            i.backend = match (choice.chosen, gpu) {
                ("gpu", Some(b)) => b,
                _ => Backend::Cpu,
            };
            i.choice = Some(choice.clone());
            Ok(to_js(&choice).map_err(JsError::from)?)
        })
    }

    /// Parses four IDX files (raw or gzip) into the dataset `name`. On error nothing already
    /// loaded is touched. `names` are the four file names, used in messages.
    #[wasm_bindgen(js_name = loadDataset)]
    pub fn load_dataset(
        &self,
        name: String,
        names: Vec<String>,
        train_images: &[u8],
        train_labels: &[u8],
        test_images: &[u8],
        test_labels: &[u8],
    ) -> Result<JsValue, JsError> {
        if names.len() != 4 {
            return Err(JsError::new("loadDataset needs four file names: train images, train labels, test images, test labels"));
        }
        let train = Dataset::from_idx_bytes((&names[0], train_images), (&names[1], train_labels)).map_err(js_err)?;
        let test = Dataset::from_idx_bytes((&names[2], test_images), (&names[3], test_labels)).map_err(js_err)?;
        let splits = Splits::new(&name, train, test).map_err(js_err)?;
        let info = DatasetInfo { name: name.clone(), train: splits.train.n, test: splits.test.n, rows: splits.train.rows, cols: splits.train.cols };
        self.inner.borrow_mut().datasets.insert(name, splits);
        Ok(to_js(&info)?)
    }

    /// Reads a model file (`.sqz`, src/export.rs, or an ONNX file Squeeze can read, src/onnx) that distill stages may name as their teacher
    /// (`"teacher": {"file": name}`); a second file of the same name replaces it. On error
    /// nothing already loaded is touched.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&self, name: String, bytes: &[u8]) -> Result<JsValue, JsError> {
        let (model, norm) = crate::export::load_any(bytes).map_err(|e| JsError::new(&format!("{name}: {e}")))?;
        let input = model.net.input();
        let info = FileInfo { name: name.clone(), arch: model.net.arch.clone(), parameters: model.net.parameter_count(), input: [input.h, input.w, input.c], classes: model.net.classes, file_bytes: bytes.len() };
        self.inner.borrow_mut().files.insert(name, (model, norm));
        Ok(to_js(&info)?)
    }

    /// Checks a recipe (a plain JS object) and returns it with defaults filled in, or throws an
    /// error naming the bad field (a teacher file not loaded included).
    #[wasm_bindgen(js_name = validateRecipe)]
    pub fn validate_recipe(&self, recipe: JsValue) -> Result<JsValue, JsError> {
        let r = recipe_of(&recipe)?;
        let i = self.inner.borrow();
        if let Some((k, name)) = r.teacher_files().into_iter().find(|(_, f)| !i.files.contains_key(*f)) {
            return Err(js_err(crate::experiment::distill::missing_file(&r, k, name)));
        }
        // Against this backend's limits, on the dataset's shape (the loaded one, else the shipped
        // one's; the user's own files are checked once loaded, before the run's first step).
        let loaded = i.datasets.get(r.dataset.as_str()).map(|s| DataShape { rows: s.train.rows, cols: s.train.cols, train: s.train.n, test: s.test.n });
        if let Some(shape) = loaded.or_else(|| DataShape::known(r.dataset)) {
            crate::experiment::check(&r, shape, &i.files, &i.backend).map_err(js_err)?;
        }
        Ok(to_js(&r)?)
    }

    /// Bytes of the engine's WebAssembly memory (it grows, never shrinks): after each run the page
    /// shows it, so memory over many runs is measured, not assumed.
    #[wasm_bindgen(js_name = memoryBytes)]
    pub fn memory_bytes(&self) -> f64 {
        use wasm_bindgen::JsCast;
        wasm_bindgen::memory().unchecked_into::<js_sys::WebAssembly::Memory>().buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64
    }

    /// The last run's models: after training, and after every stage that changed the model.
    pub fn models(&self) -> Result<JsValue, JsError> {
        let i = self.inner.borrow();
        let list: Vec<ModelInfo> = i
            .models
            .iter()
            .enumerate()
            .map(|(index, m)| ModelInfo {
                index,
                stage: m.stage,
                name: m.name.clone(),
                arch: m.net.arch.clone(),
                parameters: m.net.parameter_count(),
                nonzero: m.nonzero(),
                file_bytes: crate::export::save(m, i.norm.unwrap_or(crate::data::Normalization { mean: 0.0, std: 1.0 })).len(),
            })
            .collect();
        Ok(to_js(&list)?)
    }

    /// Class probabilities of every model of the last run for one image (pixels in [0, 1],
    /// row-major, the models' input size).
    pub fn predict(&self, pixels: Vec<f32>) -> Result<JsValue, JsError> {
        let i = self.inner.borrow();
        let norm = i.norm.ok_or_else(|| JsError::new("no trained model yet: run a recipe first"))?;
        let mut out = Vec::with_capacity(i.models.len());
        for m in &i.models {
            out.push(Prediction { name: m.name.clone(), probabilities: inspect::predict(m, norm, &pixels).map_err(js_err)? });
        }
        Ok(to_js(&out)?)
    }

    fn model(&self, index: usize) -> Result<StageModel, JsError> {
        let i = self.inner.borrow();
        i.models.get(index).cloned().ok_or_else(|| JsError::new(&format!("there is no model {index}: the last run has {}", i.models.len())))
    }

    /// Model `index` as a `.sqz` model file (src/export.rs): the bytes a download saves.
    #[wasm_bindgen(js_name = exportModel)]
    pub fn export_model(&self, index: usize) -> Result<Vec<u8>, JsError> {
        let model = self.model(index)?;
        let norm = self.inner.borrow().norm.ok_or_else(|| JsError::new("no trained model yet: run a recipe first"))?;
        Ok(crate::export::save(&model, norm))
    }

    /// Model `index` as an ONNX file (src/onnx: opset 13; QDQ where quantized): the bytes a
    /// download saves.
    #[wasm_bindgen(js_name = exportOnnx)]
    pub fn export_onnx(&self, index: usize) -> Result<Vec<u8>, JsError> {
        let model = self.model(index)?;
        let norm = self.inner.borrow().norm.ok_or_else(|| JsError::new("no trained model yet: run a recipe first"))?;
        Ok(crate::onnx::export(&model, norm).map_err(js_err)?.bytes)
    }

    /// Model `index`'s weight matrices (one flat array per layer), for the weight histograms.
    #[wasm_bindgen(js_name = layerWeights)]
    pub fn layer_weights(&self, index: usize) -> Result<JsValue, JsError> {
        let m = self.model(index)?;
        let w: Vec<&Vec<f32>> = m.net.weight_tensors().iter().map(|&j| &m.params.tensors[j]).collect();
        Ok(to_js(&w)?)
    }

    /// Model `index`'s stored levels per weight matrix (first output channel; empty where the
    /// matrix is not quantized, or has more than 256 levels: f16, 16-bit), to draw over the histograms.
    #[wasm_bindgen(js_name = layerLevels)]
    pub fn layer_levels(&self, index: usize) -> Result<JsValue, JsError> {
        let m = self.model(index)?;
        let levels: Vec<Vec<f32>> = m.net.weight_tensors().iter().map(|&j| m.weights.get(j).and_then(|q| q.as_ref()).map(|q| q.level_values(0)).filter(|l| l.len() <= 256).unwrap_or_default()).collect();
        Ok(to_js(&levels)?)
    }

    /// Model `index`'s first weight layer, one tile per neuron or filter.
    #[wasm_bindgen(js_name = firstLayer)]
    pub fn first_layer(&self, index: usize) -> Result<JsValue, JsError> {
        Ok(to_js(&inspect::first_layer(&self.model(index)?))?)
    }

    /// Model `index`'s confusion matrix on the first `n` test images of the run's dataset, with
    /// the pixels of up to `show` misclassified ones.
    pub fn confusion(&self, index: usize, n: usize, show: usize) -> Result<JsValue, JsError> {
        let model = self.model(index)?;
        let i = self.inner.borrow();
        let norm = i.norm.ok_or_else(|| JsError::new("no trained model yet: run a recipe first"))?;
        let test = &i.datasets.get(&i.models_dataset).ok_or_else(|| JsError::new("the run's dataset is no longer loaded"))?.test;
        let confusion = inspect::confusion(&model, norm, test, n).map_err(js_err)?;
        let p = test.rows * test.cols;
        let misclassified_pixels = confusion.misclassified.iter().take(show).map(|&(k, _, _)| test.images[k * p..(k + 1) * p].to_vec()).collect();
        Ok(to_js(&ConfusionView { confusion, misclassified_pixels, rows: test.rows, cols: test.cols })?)
    }

    /// Runs a recipe on the dataset it names (loaded with `loadDataset`). `onEvent` gets every
    /// event as a plain object and may return `false` to cancel or "pause" to wait. Resolves to the report.
    pub fn run(&self, recipe: JsValue, on_event: js_sys::Function, progress_every: Option<u32>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let recipe = recipe_of(&recipe)?;
            replace_lost_device(&inner).await;
            let (backend, splits, files) = {
                let mut i = inner.borrow_mut();
                if i.running {
                    return Err(JsError::new("a run is already in progress").into());
                }
                let name = recipe.dataset.as_str();
                let splits = i
                    .datasets
                    .get(name)
                    .cloned()
                    .ok_or_else(|| JsError::new(&format!("dataset `{name}` is not loaded: call loadDataset first")))?;
                i.running = true;
                (i.backend.clone(), splits, i.files.clone())
            };
            let opts = RunOptions { progress_every: progress_every.unwrap_or(50).max(1) as usize, files };
            // onEvent returns false to cancel, "pause" to hold the run (it is asked again every
            // 100 ms with a {kind: "paused"} event), anything else to go on.
            let mut callback = |e: &Event| match to_js(e).map(|v| on_event.call1(&JsValue::NULL, &v)) {
                Ok(Ok(r)) if r == JsValue::FALSE => Control::Cancel,
                Ok(Ok(r)) if r.as_string().as_deref() == Some("pause") => Control::Pause,
                _ => Control::Continue,
            };
            let result = run(&recipe, &splits, &backend, &opts, &mut callback).await;
            inner.borrow_mut().running = false;
            let outcome = result.map_err(js_err)?;
            {
                let mut i = inner.borrow_mut();
                i.models = outcome.models;
                i.norm = Some(outcome.norm);
                i.models_dataset = recipe.dataset.as_str().to_string();
            }
            Ok(to_js(&outcome.report).map_err(JsError::from)?)
        })
    }
}
