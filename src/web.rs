//! The wasm-bindgen surface: one JS class, `Squeeze`, with a factory and a few methods taking plain
//! JS data. Every error crosses as a JS `Error` with the Rust message (a panic would poison the
//! module). JS owns fetching, the DOM and the worker; this file owns nothing but the hand-off.

use crate::data::{Dataset, Splits};
use crate::experiment::{run, Backend, Control, DataShape, Event, RunOptions};
use crate::gpu::GpuContext;
use crate::inspect::{self, StageModel};
use crate::recipe::Recipe;
use crate::shelf::{Held, Shelf};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// The threaded build's `initThreadPool(n)`: the worker awaits it before creating the engine, so
/// rayon's pool exists before any product is cut into bands (reference::gemm).
#[cfg(target_feature = "atomics")]
pub use wasm_bindgen_rayon::init_thread_pool;

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
    /// Every run's models (after training and after each stage; the oldest runs dropped past a
    /// budget) and the model files loaded (`.sqz` or ONNX: to look inside, or as a distill
    /// stage's teacher by file name), by id.
    shelf: Shelf,
    /// Runs finished so far (numbers the shelf's runs).
    runs: u32,
}

/// Parameter bytes the runs' models may hold together (beyond it the oldest runs' go).
const SHELF_BYTES: usize = 48 << 20;

/// A held model, as the page lists it (a run's, or a loaded file's).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo {
    /// Its id: what every other method takes as `index`.
    index: u32,
    /// The run that left it (`null`: a loaded file) and the stage of that run.
    run: Option<u32>,
    stage: usize,
    name: String,
    arch: String,
    parameters: usize,
    nonzero: usize,
    /// Height, width, channels of its images, and its classes.
    input: [usize; 3],
    classes: usize,
    /// Bytes of its `.sqz` model file (what a download stores); a loaded file: the file's own size.
    file_bytes: usize,
    /// Forward FLOPs per image.
    flops: usize,
}

impl ModelInfo {
    fn of(h: &Held, file_bytes: usize) -> ModelInfo {
        let m = &h.model;
        let input = m.net.input();
        ModelInfo { index: h.id, run: h.run, stage: m.stage, name: m.name.clone(), arch: m.net.arch.clone(), parameters: m.net.parameter_count(), nonzero: m.nonzero(), input: [input.h, input.w, input.c], classes: m.net.classes, file_bytes, flops: m.net.forward_flops() }
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Prediction {
    index: u32,
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
        let inner = Inner { backend: Backend::Cpu, gpu: None, choice: None, fallback_reason: Some(reason), datasets: HashMap::new(), running: false, shelf: Shelf::new(SHELF_BYTES), runs: 0 };
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

    /// Reads a model file (`.sqz`, src/export.rs, or an ONNX file Squeeze can read, src/onnx) to
    /// look inside, try on drawn digits, or name as a distill stage's teacher (`"teacher":
    /// {"file": name}`); a second file of the same name replaces it. Resolves to its `ModelInfo`
    /// (its `name` is the file's). On error nothing already loaded is touched.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&self, name: String, bytes: &[u8]) -> Result<JsValue, JsError> {
        let (mut model, norm) = crate::export::load_any(bytes).map_err(|e| JsError::new(&format!("{name}: {e}")))?;
        model.name = name.clone();
        let mut i = self.inner.borrow_mut();
        let id = i.shelf.add_file(&name, model, norm);
        Ok(to_js(&ModelInfo::of(i.shelf.get(id).map_err(js_err)?, bytes.len()))?)
    }

    /// Checks a recipe (a plain JS object) and returns it with defaults filled in, or throws an
    /// error naming the bad field (a teacher file not loaded included).
    #[wasm_bindgen(js_name = validateRecipe)]
    pub fn validate_recipe(&self, recipe: JsValue) -> Result<JsValue, JsError> {
        let r = recipe_of(&recipe)?;
        let i = self.inner.borrow();
        if let Some((k, name)) = r.teacher_files().into_iter().find(|(_, f)| !i.shelf.has_file(f)) {
            return Err(js_err(crate::experiment::distill::missing_file(&r, k, name)));
        }
        // Against this backend's limits, on the dataset's shape (the loaded one, else the shipped
        // one's; the user's own files are checked once loaded, before the run's first step).
        let loaded = i.datasets.get(r.dataset.as_str()).map(|s| DataShape { rows: s.train.rows, cols: s.train.cols, train: s.train.n, test: s.test.n });
        if let Some(shape) = loaded.or_else(|| DataShape::known(r.dataset)) {
            crate::experiment::check(&r, shape, &i.shelf.files(&r.model_files()), &i.backend).map_err(js_err)?;
        }
        Ok(to_js(&r)?)
    }

    /// Readies model `index` for a recipe to start from (`"from": {"file": name}`): an opened
    /// file as it is; a run's model kept as a file of its own (`run-3-stage-2.sqz`, listed with
    /// the opened files). Returns `{file, model, info}`: `model` the recipe model whose net it is,
    /// `info` the file's `ModelInfo`; throws when no recipe architecture names its shape.
    #[wasm_bindgen(js_name = startFrom)]
    pub fn start_from(&self, index: u32) -> Result<JsValue, JsError> {
        let h = self.held(index)?;
        let model = crate::recipe::ModelConfig::of(&h.model.net).ok_or_else(|| {
            JsError::new(&format!("\"{}\" has a shape no recipe architecture names (a residual net whose blocks' channels were cut apart): look inside it or let it teach; it cannot be compressed further here", h.model.name))
        })?;
        let mut i = self.inner.borrow_mut();
        let id = match (&h.file, h.run) {
            (Some(_), _) | (None, None) => h.id,
            (None, Some(run)) => {
                let name = format!("run-{run}-stage-{}.sqz", h.model.stage);
                let mut m = h.model.clone();
                m.name = name.clone();
                i.shelf.add_file(&name, m, h.norm)
            }
        };
        let kept = i.shelf.get(id).map_err(js_err)?;
        #[derive(serde::Serialize)]
        struct Start {
            file: String,
            model: crate::recipe::ModelConfig,
            info: ModelInfo,
        }
        let info = ModelInfo::of(kept, crate::export::save(&kept.model, kept.norm).len());
        Ok(to_js(&Start { file: kept.file.clone().unwrap_or_default(), model, info })?)
    }

    /// A gallery recipe as a quick look (src/gallery.rs: the first `train` / `test` samples, one
    /// epoch per training, every stage kept), validated; its numbers as written.
    #[wasm_bindgen(js_name = quickRecipe)]
    pub fn quick_recipe(&self, recipe: JsValue, train: usize, test: usize) -> Result<JsValue, JsError> {
        let text = js_sys::JSON::stringify(&recipe).ok().and_then(|s| s.as_string()).unwrap_or_default();
        let quick = crate::gallery::quick(&text, train.max(1), test.max(1)).map_err(js_err)?;
        js_sys::JSON::parse(&quick).map_err(|_| JsError::new("quick look: not JSON"))
    }

    /// A gallery entry's figures (`figures`: its `figures` array) measured on a finished run:
    /// `report` is the run's report, `models` the `ModelInfo`s of the models it left.
    #[wasm_bindgen(js_name = galleryFigures)]
    pub fn gallery_figures(&self, figures: JsValue, report: JsValue, models: JsValue) -> Result<JsValue, JsError> {
        let json = |v: &JsValue| js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()).unwrap_or_default();
        let specs: Vec<crate::gallery::FigureSpec> = serde_json::from_str(&json(&figures)).map_err(|e| JsError::new(&format!("gallery figures: {e}")))?;
        let report: serde_json::Value = serde_json::from_str(&json(&report)).map_err(|e| JsError::new(&format!("report: {e}")))?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Facts {
            stage: usize,
            parameters: usize,
            file_bytes: usize,
            flops: usize,
        }
        let facts: Vec<Facts> = serde_json::from_str(&json(&models)).map_err(|e| JsError::new(&format!("models: {e}")))?;
        let facts: Vec<crate::gallery::ModelFacts> = facts.into_iter().map(|f| crate::gallery::ModelFacts { stage: f.stage, parameters: f.parameters, file_bytes: f.file_bytes, flops: f.flops }).collect();
        Ok(to_js(&crate::gallery::figures(&specs, &report, &facts).map_err(js_err)?)?)
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
        let list: Vec<ModelInfo> = i.shelf.last_run().into_iter().map(|h| ModelInfo::of(h, crate::export::save(&h.model, h.norm).len())).collect();
        Ok(to_js(&list)?)
    }

    /// Class probabilities for one image (pixels in [0, 1], row-major) from each model of `ids`
    /// (default: the last run's) that reads images of `rows`×`cols`; the others are left out.
    pub fn predict(&self, pixels: Vec<f32>, rows: usize, cols: usize, ids: Option<Vec<u32>>) -> Result<JsValue, JsError> {
        let i = self.inner.borrow();
        let held: Vec<&Held> = match ids {
            Some(ids) => ids.iter().map(|&id| i.shelf.get(id)).collect::<crate::Result<_>>().map_err(js_err)?,
            None => i.shelf.last_run(),
        };
        if held.is_empty() {
            return Err(JsError::new("no model yet: run a recipe or load a model file first"));
        }
        let mut out = Vec::with_capacity(held.len());
        for h in held.into_iter().filter(|h| {
            let s = h.model.net.input();
            (s.h, s.w, s.c) == (rows, cols, 1)
        }) {
            out.push(Prediction { index: h.id, name: h.model.name.clone(), probabilities: inspect::predict(&h.model, h.norm, &pixels).map_err(js_err)? });
        }
        Ok(to_js(&out)?)
    }

    fn held(&self, index: u32) -> Result<Held, JsError> {
        self.inner.borrow().shelf.get(index).cloned().map_err(js_err)
    }

    fn model(&self, index: u32) -> Result<StageModel, JsError> {
        Ok(self.held(index)?.model)
    }

    /// Model `index` as a `.sqz` model file (src/export.rs): the bytes a download saves.
    #[wasm_bindgen(js_name = exportModel)]
    pub fn export_model(&self, index: u32) -> Result<Vec<u8>, JsError> {
        let h = self.held(index)?;
        Ok(crate::export::save(&h.model, h.norm))
    }

    /// Model `index` as an ONNX file (src/onnx: opset 13; QDQ where quantized): the bytes a
    /// download saves.
    #[wasm_bindgen(js_name = exportOnnx)]
    pub fn export_onnx(&self, index: u32) -> Result<Vec<u8>, JsError> {
        let h = self.held(index)?;
        Ok(crate::onnx::export(&h.model, h.norm).map_err(js_err)?.bytes)
    }

    /// Model `index`'s weight matrices (one flat array per layer), for the weight histograms.
    #[wasm_bindgen(js_name = layerWeights)]
    pub fn layer_weights(&self, index: u32) -> Result<JsValue, JsError> {
        let m = self.model(index)?;
        let w: Vec<&Vec<f32>> = m.net.weight_tensors().iter().map(|&j| &m.params.tensors[j]).collect();
        Ok(to_js(&w)?)
    }

    /// Model `index`'s stored levels per weight matrix (first output channel; empty where the
    /// matrix is not quantized, or has more than 256 levels: f16, 16-bit), to draw over the histograms.
    #[wasm_bindgen(js_name = layerLevels)]
    pub fn layer_levels(&self, index: u32) -> Result<JsValue, JsError> {
        let m = self.model(index)?;
        let levels: Vec<Vec<f32>> = m.net.weight_tensors().iter().map(|&j| m.weights.get(j).and_then(|q| q.as_ref()).map(|q| q.level_values(0)).filter(|l| l.len() <= 256).unwrap_or_default()).collect();
        Ok(to_js(&levels)?)
    }

    /// Model `index`'s first weight layer, one tile per neuron or filter.
    #[wasm_bindgen(js_name = firstLayer)]
    pub fn first_layer(&self, index: u32) -> Result<JsValue, JsError> {
        Ok(to_js(&inspect::first_layer(&self.model(index)?))?)
    }

    /// Model `index`'s confusion matrix on the first `n` test images of its run's dataset (a
    /// loaded file: of `dataset`), with the pixels of up to `show` misclassified ones.
    pub fn confusion(&self, index: u32, n: usize, show: usize, dataset: Option<String>) -> Result<JsValue, JsError> {
        let h = self.held(index)?;
        let i = self.inner.borrow();
        let name = h.dataset.or(dataset).ok_or_else(|| JsError::new("a loaded model is judged on the dataset chosen above: choose one"))?;
        let test = &i.datasets.get(&name).ok_or_else(|| JsError::new(&format!("the dataset {name} is not loaded")))?.test;
        let confusion = inspect::confusion(&h.model, h.norm, test, n).map_err(js_err)?;
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
                (i.backend.clone(), splits, i.shelf.files(&recipe.model_files()))
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
                i.runs += 1;
                let run_no = i.runs;
                i.shelf.add_run(run_no, outcome.models, outcome.norm, recipe.dataset.as_str());
            }
            Ok(to_js(&outcome.report).map_err(JsError::from)?)
        })
    }
}
