//! Models, parameters and optimizer settings shared by the CPU reference and the GPU backend.

pub mod mlp;
pub mod optim;

pub use mlp::{DenseParams, MlpParams, MlpSpec};
pub use optim::{OptimParams, OptimizerConfig, OptimizerKind};
