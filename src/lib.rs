//! Squeeze: train small image classifiers on the GPU (wgpu: WebGPU in the browser, Vulkan natively)
//! and compress them. Layers, top to bottom: `web` (wasm API) and `bin/squeeze` (CLI) drive
//! `experiment`, which runs a `recipe` on `nn` models through the `gpu` backend or the CPU
//! `reference`; `data` reads IDX files. See README.md, "Architecture".

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod compress;
pub mod data;
pub mod error;
pub mod experiment;
pub mod export;
pub mod gallery;
pub mod gpu;
pub mod inspect;
pub mod json_path;
pub mod onnx;
pub mod nn;
pub mod recipe;
pub mod reference;
pub mod rng;
pub mod shelf;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
