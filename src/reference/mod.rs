//! The CPU reference: every kernel's twin (`ops`) and any `Net` built from them (`net`).

pub mod gemm;
pub mod int8;
pub mod net;
pub mod ops;
pub mod pool;
