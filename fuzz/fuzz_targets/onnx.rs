//! Fuzz target: `onnx_property` of fuzz/properties.rs on arbitrary bytes.
#![no_main]
include!("../properties.rs");
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| onnx_property(bytes));
