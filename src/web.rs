//! The wasm-bindgen surface: one JS class, `Squeeze`, with a factory and a few methods taking plain
//! JS data. Every error crosses as a JS `Error` with the Rust message (a panic would poison the
//! module). JS owns fetching, the DOM and the worker; this file owns nothing but the hand-off.

use crate::data::{Dataset, Splits};
use crate::experiment::{run, Backend, Event, RunOptions};
use crate::gpu::GpuContext;
use crate::recipe::Recipe;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

struct Inner {
    backend: Backend,
    fallback_reason: Option<String>,
    datasets: HashMap<String, Splits>,
    running: bool,
}

#[wasm_bindgen]
pub struct Squeeze {
    inner: Rc<RefCell<Inner>>,
}

/// Plain JS objects (not ES Maps) for structs, maps and flattened fields.
fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, serde_wasm_bindgen::Error> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
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

#[wasm_bindgen]
impl Squeeze {
    /// Acquires WebGPU; without it (or with `preferGpu` false) runs on the CPU reference and says why.
    pub async fn create(prefer_gpu: bool, conv: Option<String>) -> Squeeze {
        console_error_panic_hook::set_once();
        let (backend, fallback_reason) = if prefer_gpu {
            match GpuContext::new().await {
                Ok(mut ctx) => {
                    // An unknown name keeps the adapter's default (the URL is user input).
                    if let Some(m) = conv.as_deref().and_then(crate::gpu::net::ConvMethod::parse) {
                        ctx.conv = m;
                    }
                    (Backend::Gpu(ctx), None)
                }
                Err(e) => (Backend::Cpu, Some(e.to_string())),
            }
        } else {
            (Backend::Cpu, Some("CPU backend requested".to_string()))
        };
        Squeeze { inner: Rc::new(RefCell::new(Inner { backend, fallback_reason, datasets: HashMap::new(), running: false })) }
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
        };
        Ok(to_js(&info)?)
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

    /// Checks a recipe (a plain JS object) and returns it with defaults filled in, or throws an
    /// error naming the bad field.
    #[wasm_bindgen(js_name = validateRecipe)]
    pub fn validate_recipe(&self, recipe: JsValue) -> Result<JsValue, JsError> {
        let r = Recipe::from_deserializer(serde_wasm_bindgen::Deserializer::from(recipe)).map_err(js_err)?;
        Ok(to_js(&r)?)
    }

    /// Runs a recipe on the dataset it names (loaded with `loadDataset`). `onEvent` gets every
    /// progress/epoch event as a plain object and may return `false` to cancel. Resolves to the report.
    pub fn run(&self, recipe: JsValue, on_event: js_sys::Function, progress_every: Option<u32>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let recipe = Recipe::from_deserializer(serde_wasm_bindgen::Deserializer::from(recipe)).map_err(js_err)?;
            let (backend, splits) = {
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
                (i.backend.clone(), splits)
            };
            let opts = RunOptions { progress_every: progress_every.unwrap_or(50).max(1) as usize };
            let mut callback = |e: &Event| match to_js(e) {
                Ok(v) => !matches!(on_event.call1(&JsValue::NULL, &v), Ok(r) if r == JsValue::FALSE),
                Err(_) => true,
            };
            let result = run(&recipe, &splits, &backend, &opts, &mut callback).await;
            inner.borrow_mut().running = false;
            let outcome = result.map_err(js_err)?;
            Ok(to_js(&outcome.report).map_err(JsError::from)?)
        })
    }
}
