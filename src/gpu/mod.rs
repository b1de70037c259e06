//! The GPU backend: device and buffers (`context`), one typed launcher per WGSL kernel (`kernels`),
//! and the trainer of any `Net` built from them (`net`).

pub mod context;
pub mod int8;
pub mod kernels;
pub mod net;

pub use context::{AdapterSummary, GpuContext, MatmulKernel};
pub use kernels::Launch;
pub use net::{GpuTrainer, ResidentSplits};
