//! Compression methods, as pure algorithms with no backend: pruning decisions (`prune`), sparse
//! storage (`sparse`) and the registry of tensor encodings every size is measured with
//! (`encoding`). Quantizers and distillation losses join as they are built. Backends apply what
//! these modules decide.

pub mod encoding;
pub mod int8;
pub mod huffman;
pub mod prune;
pub mod quant;
pub mod sparse;
