//! The GPU backend: device and buffers (`context`), one typed launcher per WGSL kernel (`kernels`),
//! and the MLP trainer built from them (`mlp`).

pub mod context;
pub mod kernels;
pub mod mlp;

pub use context::{AdapterSummary, GpuContext};
pub use kernels::Launch;
pub use mlp::GpuTrainer;
