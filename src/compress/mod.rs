//! Compression methods. Pruning decisions live here (`prune`); quantization and distillation join
//! as they are built. Backends apply what these modules decide.

pub mod prune;
pub mod sparse;
