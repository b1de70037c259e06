//! Reads an ONNX file back into a Squeeze model: the files Squeeze exports (src/onnx/export.rs)
//! and others made of the same operators (the table in src/onnx/mod.rs, plus Gemm with transB,
//! Sub/Div normalisation, Identity). Everything is checked before the net is built: an operator,
//! attribute or shape Squeeze cannot compute exactly is an error naming the node, never a panic or
//! a silently different model. Quantized weights come back as affine quantizers over their codes'
//! type range (the values are exact; their bit width is the type's), activation QDQ pairs as
//! activation quantizers.

use super::proto::*;
use crate::compress::quant::QuantFn;
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::inspect::StageModel;
use crate::nn::net::BN_EPS;
use crate::nn::{Net, NetParams, Op, Shape};
use prost::Message;
use std::collections::HashMap;

use crate::export::MAX_ELEMENTS;

fn bad(message: impl Into<String>) -> Error {
    Error::Io { path: "ONNX file".into(), message: message.into() }
}

/// What an ONNX value is while the graph is read.
#[derive(Clone)]
enum Value {
    /// The graph input scaled: image·a + b (the normalisation, before the first layer reads it).
    Scaled(f32, f32),
    /// A Squeeze node's output; `flat` after a Flatten.
    Node(usize, bool),
    /// A constant: its values, dims, and the quantizer its values came from (a dequantized initializer).
    Const(Vec<f32>, Vec<usize>, Option<QuantFn>),
    /// QuantizeLinear of node n: its scale, zero point and code type, waiting for its DequantizeLinear.
    Quantized(usize, f32, f32, i32, bool),
    /// DynamicQuantizeLinear's codes of node n (its other outputs are `Aux`).
    Dynamic(usize),
    /// Node n cast to f16.
    Half(usize),
    Aux,
}

/// The integer range of a code type.
fn type_range(t: i32) -> Option<(i32, i32)> {
    match t {
        INT8 => Some((-128, 127)),
        UINT8 => Some((0, 255)),
        _ => None,
    }
}

/// A tensor's values as f32 (float data), or as integers of an 8-bit type.
fn tensor_values(t: &TensorProto) -> Result<(Vec<f32>, Vec<usize>)> {
    let dims: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| bad(format!("tensor {}: dimension {d}", t.name)))).collect::<Result<_>>()?;
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_ELEMENTS).ok_or_else(|| bad(format!("tensor {} has more elements than this reads", t.name)))?;
    if t.data_location == 1 {
        return Err(bad(format!("tensor {} keeps its data in an external file; save the model with its weights inside", t.name)));
    }
    let values: Vec<f32> = match t.data_type {
        FLOAT if !t.raw_data.is_empty() => t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
        FLOAT => t.float_data.clone(),
        INT8 if !t.raw_data.is_empty() => t.raw_data.iter().map(|&b| b as i8 as f32).collect(),
        UINT8 if !t.raw_data.is_empty() => t.raw_data.iter().map(|&b| b as f32).collect(),
        INT8 | UINT8 => t.int32_data.iter().map(|&v| v as f32).collect(),
        INT64 if !t.raw_data.is_empty() => t.raw_data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        INT64 => t.int64_data.iter().map(|&v| v as f32).collect(),
        other => return Err(bad(format!("tensor {} has data type {other}; this reads float, int8, uint8 and int64 tensors", t.name))),
    };
    if values.len() != n {
        return Err(bad(format!("tensor {} holds {} values for dims {dims:?}", t.name, values.len())));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad(format!("tensor {} holds a value that is not a finite number", t.name)));
    }
    Ok((values, dims))
}

/// The model an ONNX file holds and the normalisation its graph applies to pixels / 255.
pub fn import(bytes: &[u8]) -> Result<(StageModel, Normalization)> {
    let model = ModelProto::decode(bytes).map_err(|e| bad(format!("not an ONNX model ({e})")))?;
    if let Some(o) = model.opset_import.iter().find(|o| (o.domain.is_empty() || o.domain == "ai.onnx") && !(7..=23).contains(&o.version)) {
        return Err(bad(format!("operator set {}; this reads opsets 7 to 23", o.version)));
    }
    let graph = model.graph.ok_or_else(|| bad("the file has no graph"))?;
    let mut values: HashMap<String, Value> = HashMap::new();
    let mut code_types: HashMap<String, i32> = HashMap::new();
    for t in &graph.initializer {
        let (v, dims) = tensor_values(t)?;
        code_types.insert(t.name.clone(), t.data_type);
        values.insert(t.name.clone(), Value::Const(v, dims, None));
    }
    let input = graph.input.iter().find(|i| !values.contains_key(&i.name)).ok_or_else(|| bad("the graph has no input"))?;
    let dims: Vec<i64> = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.shape.as_ref()).map(|s| s.dim.iter().map(|d| d.dim_value.unwrap_or(-1)).collect()).unwrap_or_default();
    let [_, c, h, w] = dims[..] else {
        return Err(bad(format!("the input {} is not [N, C, H, W] (dims {dims:?})", input.name)));
    };
    if !(1..=4096).contains(&c) || !(1..=4096).contains(&h) || !(1..=4096).contains(&w) || c * h * w > 1 << 20 {
        return Err(bad(format!("input {c}x{h}x{w} is not one this reads")));
    }
    values.insert(input.name.clone(), Value::Scaled(1.0, 0.0));
    let arch = model.metadata_props.iter().find(|p| p.key == "squeeze.arch").map_or("onnx".to_string(), |p| p.value.clone());
    let mut b = Builder { net: Net::new(&arch, Shape::new(h as usize, w as usize, c as usize), 0), tensors: vec![], weights: vec![], activations: vec![None], norm: None };
    // How many nodes read each value (a fused ReLU must be its producer's only reader).
    let mut readers: HashMap<&str, usize> = HashMap::new();
    graph.node.iter().flat_map(|n| &n.input).for_each(|i| *readers.entry(i.as_str()).or_default() += 1);
    graph.output.iter().for_each(|o| *readers.entry(o.name.as_str()).or_default() += 1);
    for node in &graph.node {
        let out = b.node(node, &values, &code_types, &readers)?;
        if out.len() > node.output.len() {
            return Err(bad(format!("node {} ({}) has {} outputs, {} expected", node.name, node.op_type, node.output.len(), out.len())));
        }
        for (name, v) in node.output.iter().zip(out) {
            values.insert(name.clone(), v);
        }
    }
    let output = graph.output.first().ok_or_else(|| bad("the graph has no output"))?;
    let last = match values.get(&output.name) {
        Some(Value::Node(n, _)) if *n == b.net.last() && *n > 0 => *n,
        _ => return Err(bad(format!("the output {} is not the last layer's result", output.name))),
    };
    b.net.classes = b.net.nodes[last].shape.size();
    if b.net.classes > 1 << 16 {
        return Err(bad(format!("{} outputs", b.net.classes)));
    }
    let mut norm = b.norm.unwrap_or(Normalization { mean: 0.0, std: 1.0 });
    // Squeeze's own files also name the normalisation's mean and std: those exact numbers, where
    // they are what the graph computes (derived back from its constants they can be an ulp off).
    let named = model.metadata_props.iter().find(|p| p.key == "squeeze.norm").and_then(|p| {
        let v: Vec<f32> = p.value.split(' ').filter_map(|x| x.parse().ok()).collect();
        (v.len() == 2).then(|| Normalization { mean: v[0], std: v[1] })
    });
    if let Some(named) = named.filter(|m| m.usable() && (m.mean - norm.mean).abs() <= 1e-5 * (1.0 + norm.mean.abs()) && (m.std - norm.std).abs() <= 1e-5 * norm.std) {
        norm = named;
    }
    let weights = if b.weights.iter().all(|q| q.is_none()) { vec![] } else { b.weights };
    let activations = if b.activations.iter().all(|q| q.is_none()) { vec![] } else { b.activations };
    Ok((StageModel { stage: 0, name: "imported".into(), net: b.net, params: NetParams { tensors: b.tensors }, weights, activations }, norm))
}

/// The net under construction, its tensors in `Net::tensors()` order, their quantizers, and the
/// normalisation once the first layer reads the input.
struct Builder {
    net: Net,
    tensors: Vec<Vec<f32>>,
    weights: Vec<Option<QuantFn>>,
    activations: Vec<Option<QuantFn>>,
    norm: Option<Normalization>,
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

impl Builder {
    /// Appends a Squeeze node (its shapes already checked) and its tensors.
    fn push(&mut self, op: Op, inputs: &[usize], tensors: Vec<(Vec<f32>, Option<QuantFn>)>) -> usize {
        let n = self.net.push(op, inputs, false);
        for (t, q) in tensors {
            self.tensors.push(t);
            self.weights.push(q);
        }
        self.activations.push(None);
        n
    }

    /// The Squeeze node a value is, making node 0's normalisation when the input is first read.
    fn node_of(&mut self, v: &Value, what: &str) -> Result<(usize, bool)> {
        match v {
            Value::Node(n, flat) => Ok((*n, *flat)),
            Value::Scaled(a, b) => {
                // x = (p/255)·a + b = (p/255 − mean)/std.
                let norm = Normalization { mean: -b / a, std: 1.0 / a };
                // What the export writes back (1/std, −mean/std) must be numbers again.
                if !norm.usable() {
                    return Err(bad(format!("{what}: the input's scaling {a}, {b} is not a normalisation")));
                }
                if self.norm.is_some_and(|n| n != norm) {
                    return Err(bad(format!("{what}: the input is read with two different normalisations")));
                }
                self.norm = Some(norm);
                Ok((0, false))
            }
            _ => Err(bad(format!("{what} reads a value that is not a layer's output"))),
        }
    }

    fn node(&mut self, node: &NodeProto, values: &HashMap<String, Value>, code_types: &HashMap<String, i32>, readers: &HashMap<&str, usize>) -> Result<Vec<Value>> {
        let what = format!("node {} ({})", if node.name.is_empty() { "unnamed" } else { &node.name }, node.op_type);
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(bad(format!("{what} is from the operator domain {}", node.domain)));
        }
        let input = |i: usize| -> Result<Value> {
            let name = node.input.get(i).filter(|s| !s.is_empty()).ok_or_else(|| bad(format!("{what} lacks input {i}")))?;
            values.get(name).cloned().ok_or_else(|| bad(format!("{what} reads {name}, which no earlier node or initializer gives")))
        };
        let konst = |i: usize| -> Result<(Vec<f32>, Vec<usize>, Option<QuantFn>)> {
            match input(i)? {
                Value::Const(v, d, q) => Ok((v, d, q)),
                _ => Err(bad(format!("{what}: input {i} must be a constant (an initializer)"))),
            }
        };
        let scalar = |i: usize| -> Result<f32> {
            match konst(i)? {
                (v, _, _) if v.len() == 1 => Ok(v[0]),
                (v, _, _) => Err(bad(format!("{what}: input {i} must be one number, has {}", v.len()))),
            }
        };
        let ints = |name: &str, default: Vec<i64>| attr(node, name).map_or(default, |a| a.ints.clone());
        let int = |name: &str, default: i64| attr(node, name).map_or(default, |a| a.i);
        let square = |v: &[i64]| -> Option<usize> { (v.len() == 2 && v[0] == v[1] && v[0] >= 1 && v[0] <= 4096).then(|| v[0] as usize) };
        let relu_free = |b: &Builder, n: usize| !b.net.nodes[n].relu && b.activations[n].is_none();
        // A fused ReLU or activation quantizer changes its layer's output for every reader: it
        // must be the only one.
        let sole_reader = || node.input.first().is_some_and(|i| readers.get(i.as_str()) == Some(&1));
        Ok(match node.op_type.as_str() {
            "Identity" => vec![input(0)?],
            "Mul" | "Div" | "Add" | "Sub" if matches!(input(0)?, Value::Scaled(..)) => {
                let Value::Scaled(a, b) = input(0)? else { unreachable!() };
                let c = scalar(1)?;
                let (a, b) = match node.op_type.as_str() {
                    "Mul" => (a * c, b * c),
                    "Div" => (a / c, b / c),
                    "Add" => (a, b + c),
                    _ => (a, b - c),
                };
                vec![Value::Scaled(a, b)]
            }
            "Add" => {
                let (x, fx) = self.node_of(&input(0)?, &what)?;
                let (y, fy) = self.node_of(&input(1)?, &what)?;
                if self.net.nodes[x].shape != self.net.nodes[y].shape || fx != fy || x == 0 || y == 0 {
                    return Err(bad(format!("{what} adds values of different shapes")));
                }
                vec![Value::Node(self.push(Op::Add, &[x, y], vec![]), fx)]
            }
            "Flatten" => {
                let (x, _) = self.node_of(&input(0)?, &what)?;
                if int("axis", 1) != 1 {
                    return Err(bad(format!("{what}: only axis 1 (keep the batch) is read")));
                }
                vec![Value::Node(x, true)]
            }
            "Relu" => {
                let (x, flat) = self.node_of(&input(0)?, &what)?;
                if x == 0 || !relu_free(self, x) || !sole_reader() {
                    return Err(bad(format!("{what}: a ReLU must follow a layer that nothing else reads (Squeeze fuses it into the layer)")));
                }
                self.net.nodes[x].relu = true;
                vec![Value::Node(x, flat)]
            }
            "Gemm" => {
                let (x, flat) = self.node_of(&input(0)?, &what)?;
                let xs = self.net.nodes[x].shape;
                let spatial = xs.h * xs.w > 1 || !matches!(self.net.nodes[x].op, Op::Dense { .. } | Op::Input);
                if (spatial && !flat) || int("transA", 0) != 0 || attr(node, "alpha").is_some_and(|a| a.f != 1.0) || attr(node, "beta").is_some_and(|a| a.f != 1.0) {
                    return Err(bad(format!("{what}: reads a flattened input with alpha = beta = 1 and no transA")));
                }
                let (w, dims, q) = konst(1)?;
                let trans = int("transB", 0) == 1;
                let (k, outputs) = match dims[..] {
                    [a, b] if trans => (b, a),
                    [a, b] => (a, b),
                    _ => return Err(bad(format!("{what}: the weight is not a matrix ({dims:?})"))),
                };
                if k != xs.size() || !(1..=1 << 16).contains(&outputs) {
                    return Err(bad(format!("{what}: a {k}x{outputs} weight for an input of {} values", xs.size())));
                }
                if let Some(QuantFn::Affine { channels, .. }) = &q {
                    if channels.len() > 1 && channels.len() != outputs {
                        return Err(bad(format!("{what}: the weight's quantization runs along its inputs, not its outputs")));
                    }
                }
                let bias = if node.input.len() > 2 { konst(2)?.0 } else { vec![0.0; outputs] };
                if bias.len() != outputs {
                    return Err(bad(format!("{what}: {} biases for {outputs} outputs", bias.len())));
                }
                // ONNX row c·H·W + h·W + w of a flattened NCHW input is Squeeze's (h·W + w)·C + c.
                let hw = xs.h * xs.w;
                let mut sq = vec![0.0; k * outputs];
                for r in 0..k {
                    let row = (r % hw) * xs.c + r / hw;
                    for o in 0..outputs {
                        sq[row * outputs + o] = if trans { w[o * k + r] } else { w[r * outputs + o] };
                    }
                }
                vec![Value::Node(self.push(Op::Dense { outputs }, &[x], vec![(sq, q), (bias, None)]), false)]
            }
            "Conv" => {
                let (x, flat) = self.node_of(&input(0)?, &what)?;
                let xs = self.net.nodes[x].shape;
                let (w, dims, q) = konst(1)?;
                let [outputs, cin, k, k2] = dims[..] else { return Err(bad(format!("{what}: the weight is not [O, Cin, K, K] ({dims:?})"))) };
                let pads = ints("pads", vec![0; 4]);
                let stride = square(&ints("strides", vec![1, 1]));
                let pad = (pads.len() == 4 && pads.iter().all(|&p| p == pads[0]) && (0..k as i64).contains(&pads[0])).then(|| pads[0] as usize);
                let plain = int("group", 1) == 1 && ints("dilations", vec![1, 1]).iter().all(|&d| d == 1) && attr(node, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET");
                let (Some(stride), Some(pad), true, false) = (stride, pad, plain && k == k2 && cin == xs.c && (1..=4096).contains(&outputs), flat) else {
                    return Err(bad(format!("{what}: reads square kernels over {} channels with equal strides and pads, no groups or dilation", xs.c)));
                };
                if k > xs.h + 2 * pad || k > xs.w + 2 * pad {
                    return Err(bad(format!("{what}: a {k}x{k} kernel over a {}x{} input", xs.h, xs.w)));
                }
                let bias = if node.input.len() > 2 { konst(2)?.0 } else { vec![0.0; outputs] };
                if bias.len() != outputs {
                    return Err(bad(format!("{what}: {} biases for {outputs} outputs", bias.len())));
                }
                let mut sq = vec![0.0; w.len()];
                for (i, v) in w.iter().enumerate() {
                    let (o, ci, kh, kw) = (i / (cin * k * k), (i / (k * k)) % cin, (i / k) % k, i % k);
                    sq[((kh * k + kw) * cin + ci) * outputs + o] = *v;
                }
                vec![Value::Node(self.push(Op::Conv { outputs, k, stride, pad }, &[x], vec![(sq, q), (bias, None)]), false)]
            }
            "BatchNormalization" => {
                let (x, flat) = self.node_of(&input(0)?, &what)?;
                let c = self.net.nodes[x].shape.c;
                let eps = attr(node, "epsilon").map_or(1e-5, |a| a.f);
                let mut t: Vec<Vec<f32>> = (1..5).map(|i| konst(i).map(|k| k.0)).collect::<Result<_>>()?;
                if x == 0 || t.iter().any(|v| v.len() != c) || int("training_mode", 0) != 0 {
                    return Err(bad(format!("{what}: needs four vectors of {c} after a layer, inference mode")));
                }
                // Squeeze's epsilon is fixed: the variance absorbs the difference.
                t[3].iter_mut().for_each(|v| *v += eps - BN_EPS);
                if t[3].iter().any(|&v| v + BN_EPS <= 0.0) {
                    return Err(bad(format!("{what}: a variance below zero")));
                }
                vec![Value::Node(self.push(Op::BatchNorm, &[x], t.into_iter().map(|v| (v, None)).collect()), flat)]
            }
            "MaxPool" | "AveragePool" | "GlobalAveragePool" => {
                let (x, flat) = self.node_of(&input(0)?, &what)?;
                let xs = self.net.nodes[x].shape;
                let global = node.op_type == "GlobalAveragePool";
                let k = if global { (xs.h == xs.w).then_some(xs.h) } else { square(&ints("kernel_shape", vec![])) };
                let stride = if global { k } else { square(&ints("strides", vec![1, 1])) };
                let plain = ints("pads", vec![0; 4]).iter().all(|&p| p == 0) && int("ceil_mode", 0) == 0 && ints("dilations", vec![1, 1]).iter().all(|&d| d == 1) && attr(node, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET");
                let (Some(k), Some(stride), true, false, true) = (k, stride, plain, flat, x > 0) else {
                    return Err(bad(format!("{what}: reads square windows with equal strides and no padding over a layer's output")));
                };
                if k > xs.h || k > xs.w {
                    return Err(bad(format!("{what}: a {k}x{k} window over a {}x{} input", xs.h, xs.w)));
                }
                let op = if node.op_type == "MaxPool" { Op::MaxPool { k, stride } } else { Op::AvgPool { k, stride } };
                vec![Value::Node(self.push(op, &[x], vec![]), false)]
            }
            "QuantizeLinear" => {
                let (x, flat) = self.node_of(&input(0)?, &what)?;
                let (scale, zero) = (scalar(1)?, scalar(2)?);
                let t = code_types.get(&node.input[2]).copied().filter(|t| type_range(*t).is_some());
                // A positive scale whose inverse is finite too (codes are x / scale).
                let (Some(t), true, true) = (t, x > 0 && sole_reader(), scale > 0.0 && (1.0 / scale).is_finite()) else {
                    return Err(bad(format!("{what}: reads the output of a layer that nothing else reads, with one positive scale (its inverse finite) and an int8 or uint8 zero point")));
                };
                vec![Value::Quantized(x, scale, zero, t, flat)]
            }
            "DequantizeLinear" => match input(0)? {
                Value::Quantized(n, scale, zero, t, flat) => {
                    let (s2, z2) = (scalar(1)?, scalar(2)?);
                    if (s2, z2) != (scale, zero) || self.activations[n].is_some() {
                        return Err(bad(format!("{what}: dequantizes with other parameters than its QuantizeLinear")));
                    }
                    let (qmin, qmax) = type_range(t).expect("checked");
                    self.activations[n] = Some(QuantFn::Affine { qmin, qmax, channels: vec![[1.0 / scale, scale, zero]] });
                    vec![Value::Node(n, flat)]
                }
                Value::Dynamic(n) => {
                    self.activations[n] = Some(QuantFn::Dynamic { qmin: 0, qmax: 255 });
                    vec![Value::Node(n, false)]
                }
                Value::Const(codes, dims, None) => {
                    let t = code_types.get(&node.input[0]).copied().and_then(|t| type_range(t).map(|r| (t, r)));
                    let (scales, _, _) = konst(1)?;
                    let zeros = if node.input.len() > 2 { konst(2)?.0 } else { vec![0.0; scales.len()] };
                    let axis = int("axis", 1);
                    let Some((_, (qmin, qmax))) = t.filter(|_| (axis >= 0 && (axis as usize) < dims.len()) || scales.len() == 1) else {
                        return Err(bad(format!("{what}: dequantizes int8 or uint8 codes, per tensor or along one axis")));
                    };
                    let per = if scales.len() == 1 { 1 } else { dims[axis as usize] };
                    if scales.len() != per || zeros.len() != per || scales.iter().any(|&s| s <= 0.0) {
                        return Err(bad(format!("{what}: {} scales and {} zero points for {per} channels", scales.len(), zeros.len())));
                    }
                    let inner: usize = if per == 1 { 1 } else { dims[axis as usize + 1..].iter().product() };
                    let channel = |i: usize| if per == 1 { 0 } else { (i / inner) % per };
                    let v: Vec<f32> = codes.iter().enumerate().map(|(i, &q)| (q - zeros[channel(i)]) * scales[channel(i)]).collect();
                    // Finite scales can still make infinite weights (a code times 1e38), or an
                    // infinite inverse (a subnormal scale).
                    if v.iter().any(|w| !w.is_finite()) || scales.iter().any(|&s| !(1.0 / s).is_finite()) {
                        return Err(bad(format!("{what}: its scales make weights or inverse scales that are not finite numbers")));
                    }
                    let q = QuantFn::Affine { qmin, qmax, channels: scales.iter().zip(&zeros).map(|(&s, &z)| [1.0 / s, s, z]).collect() };
                    vec![Value::Const(v, dims, Some(q))]
                }
                _ => return Err(bad(format!("{what} dequantizes neither an initializer nor a QuantizeLinear"))),
            },
            "Clip" => {
                let (x, flat) = self.node_of(&input(0)?, &what)?;
                let (lo, hi) = (scalar(1)?, scalar(2)?);
                let Some(QuantFn::Affine { qmin, qmax, channels }) = self.activations.get_mut(x).and_then(|q| q.as_mut()) else {
                    return Err(bad(format!("{what}: a Clip is read only after a QuantizeLinear/DequantizeLinear pair (it narrows the codes)")));
                };
                let [_, step, zero] = channels[0];
                (*qmin, *qmax) = ((*qmin).max((lo / step + zero).round() as i32), (*qmax).min((hi / step + zero).round() as i32));
                if qmin >= qmax {
                    return Err(bad(format!("{what}: clips the codes to nothing")));
                }
                vec![Value::Node(x, flat)]
            }
            "DynamicQuantizeLinear" => {
                let (x, _) = self.node_of(&input(0)?, &what)?;
                if x == 0 || !sole_reader() || self.activations[x].is_some() {
                    return Err(bad(format!("{what}: reads the output of a layer that nothing else reads")));
                }
                vec![Value::Dynamic(x), Value::Aux, Value::Aux]
            }
            "Cast" => match (input(0)?, int("to", 0) as i32) {
                (Value::Node(n, _), FLOAT16) if n > 0 && self.activations[n].is_none() && sole_reader() => vec![Value::Half(n)],
                (Value::Half(n), FLOAT) => {
                    self.activations[n] = Some(QuantFn::F16);
                    vec![Value::Node(n, false)]
                }
                _ => return Err(bad(format!("{what}: only a cast of a layer's output to f16 and back is read"))),
            },
            other => return Err(bad(format!("{what}: the operator {other} is not one Squeeze reads (see the table in the README's ONNX section)"))),
        })
    }
}
