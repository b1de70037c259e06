//! Models, parameters and optimizer settings shared by the CPU reference and the GPU backend.

pub mod loss;
pub mod net;
pub mod optim;
pub mod surgery;
pub mod transforms;

pub use loss::{AttentionTransfer, DistillParams, Hint, Teacher};
pub use net::{Net, NetParams, Op, Role, Shape, TensorInfo};
pub use optim::{OptimParams, OptimStep, OptimizerConfig, OptimizerKind};
pub use transforms::{Sharing, Transforms};
