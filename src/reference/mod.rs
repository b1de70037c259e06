//! The CPU reference: every kernel's twin (`ops`) and the MLP built from them (`mlp`).

pub mod mlp;
pub mod ops;
