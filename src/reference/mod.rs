//! The CPU reference: every kernel's twin (`ops`) and any `Net` built from them (`net`).

pub mod gemm;
pub mod int8;
#[cfg(not(target_arch = "wasm32"))]
pub mod narrow;
pub mod net;
pub mod ops;
pub mod pool;
