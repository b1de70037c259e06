//! Data: IDX parsing (raw and gzip), labelled datasets, seeded shuffling and batching, and (natively)
//! locating the real MNIST / Fashion-MNIST files on disk.

pub mod dataset;
pub mod idx;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;

pub use dataset::{jitter_shift, shifted_pixel, Dataset, Normalization, Splits, CLASSES};
pub use idx::{encode_idx, parse_idx, parse_idx_named, IdxArray};
