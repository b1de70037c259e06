//! Models leave as ONNX (opset 13, IR version 7) that any ONNX runtime runs with Squeeze's answers,
//! and come back (import.rs: the operators below, checked before anything is built).
//!
//! The file's input `image` is [N, C, H, W] f32, the pixels / 255; its output `logits` [N, classes].
//! The graph starts with the training split's normalisation (Mul by 1/std, Add −mean/std), then
//! one or more ONNX nodes per Squeeze node:
//!
//! | Squeeze node | ONNX |
//! |---|---|
//! | Dense W [I, O], b | `Gemm(x, W, b)` (after `Flatten` of a spatial input; W's rows permuted from NHWC to NCHW order) |
//! | Conv W [K·K·Cin, O], b | `Conv` W [O, Cin, K, K], `kernel_shape`, `strides`, `pads` |
//! | BatchNorm | `BatchNormalization` (inference: running mean and variance, epsilon 1e-5) |
//! | MaxPool / AvgPool | `MaxPool` / `AveragePool` (`GlobalAveragePool` when the window is the whole input) |
//! | Add | `Add` |
//! | fused ReLU | `Relu` |
//! | weights quantized uniformly | int8 initializer (zero point 0; binary weights at step/2) or uint8 codes with their zero points → `DequantizeLinear` (per output channel: `axis` 1 for Gemm, 0 for Conv) |
//! | weights of k-means, power-of-two or f16 levels | f32 initializer of the levels' values (exact; the notes say so) |
//! | activation quantizer, affine ≤ 8 bits, integer zero point | `QuantizeLinear` → `DequantizeLinear` (uint8 or int8), then `Clip` where the codes are narrower than the type |
//! | dynamic uint8 activations | `DynamicQuantizeLinear` → `DequantizeLinear` |
//! | f16 activations | `Cast` to f16 and back |
//!
//! Pruned weights are stored as they are (zeros in the dense initializer). Biases and batch-norm
//! parameters stay f32.

pub mod export;
pub mod import;
pub mod proto;

pub use export::{export, Exported, OPSET};
pub use import::import;
