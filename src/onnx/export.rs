//! Writes a model of a run as an ONNX file (opset 13): float where the model is float, QDQ where
//! it is quantized. What maps to what is in the module doc (src/onnx/mod.rs).

use super::proto::*;
use crate::compress::int8::integer_weights;
use crate::compress::quant::QuantFn;
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::inspect::StageModel;
use crate::nn::net::BN_EPS;
use crate::nn::Op;
use prost::Message;

/// The file's bytes, and per tensor or activation that is not stored as a QDQ pair although the
/// model quantizes it, why (empty for a float model).
pub struct Exported {
    pub bytes: Vec<u8>,
    pub notes: Vec<String>,
}

/// The graph under construction: nodes in order, initializers, and the export's notes.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    notes: Vec<String>,
}

fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.iter().map(|&x| x as i64).collect(), r#type: ATTR_INTS, ..Default::default() }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: ATTR_INT, ..Default::default() }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: v, r#type: ATTR_FLOAT, ..Default::default() }
}

impl Graph {
    /// Appends a node computing `output` (its name) from `inputs`; returns the output's name.
    fn node(&mut self, op: &str, inputs: &[&str], output: String, attribute: Vec<AttributeProto>) -> String {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto { input: inputs.iter().map(|s| s.to_string()).collect(), output: vec![output.clone()], name, op_type: op.into(), attribute, ..Default::default() });
        output
    }

    fn init(&mut self, name: String, dims: &[usize], data_type: i32, raw_data: Vec<u8>) -> String {
        self.inits.push(TensorProto { dims: dims.iter().map(|&d| d as i64).collect(), data_type, name: name.clone(), raw_data, ..Default::default() });
        name
    }

    fn floats(&mut self, name: String, dims: &[usize], v: &[f32]) -> String {
        self.init(name, dims, FLOAT, v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    /// A quantize-dequantize pair on `x` with per-tensor `scale` and `zero` of type `data_type`
    /// (INT8 or UINT8); `clip`: the range of the codes, where narrower than the type's.
    fn qdq(&mut self, x: &str, tag: &str, scale: f32, zero: i32, data_type: i32, clip: Option<(f32, f32)>) -> String {
        let s = self.floats(format!("{tag}_scale"), &[], &[scale]);
        let z = self.init(format!("{tag}_zero"), &[], data_type, vec![zero as u8]);
        let q = self.node("QuantizeLinear", &[x, &s, &z], format!("{tag}_q"), vec![]);
        let y = self.node("DequantizeLinear", &[&q, &s, &z], format!("{tag}_dq"), vec![]);
        match clip {
            Some((lo, hi)) => {
                let lo = self.floats(format!("{tag}_min"), &[], &[lo]);
                let hi = self.floats(format!("{tag}_max"), &[], &[hi]);
                self.node("Clip", &[&y, &lo, &hi], format!("{tag}_clip"), vec![])
            }
            None => y,
        }
    }

    /// A weight matrix `w_rows` in Squeeze's [K, O] layout, written in ONNX's `dims` with its
    /// output channels along `axis`. Quantized by `q`: int8 values (zero point 0) or uint8 codes
    /// (their zero points), dequantized per channel; else f32.
    fn weight(&mut self, tag: &str, dims: &[usize], axis: usize, w_rows: &[f32], q: Option<&QuantFn>) -> String {
        let outputs = dims[axis];
        let kdim = w_rows.len() / outputs;
        let values = || onnx_order(dims, axis, kdim, &|r, c| w_rows[r * outputs + c]);
        let Some(qf) = q else { return self.floats(tag.into(), dims, &values()) };
        let QuantFn::Affine { qmin, qmax, channels } = qf else {
            self.notes.push(format!("{tag}: stored as f32 (its quantizer's levels have no QuantizeLinear form: k-means, power-of-two or f16)"));
            return self.floats(tag.into(), dims, &values());
        };
        // Squeeze's layout [kdim, outputs] → ONNX order, for one int8/uint8 value per element.
        let reorder = |per: &dyn Fn(usize, usize) -> u8| -> Vec<u8> { onnx_order(dims, axis, kdim, &|r, c| per(r, c)) };
        let per_channel = channels.len() > 1;
        let (raw, data_type, scales, zeros): (Vec<u8>, i32, Vec<f32>, Vec<u8>) = if let Some((v, s)) = integer_weights(w_rows, kdim, outputs, channels) {
            (reorder(&|r, c| v[c * kdim + r] as u8), INT8, s.iter().map(|&x| x as f32).collect(), vec![0; s.len()])
        } else if *qmin >= 0 && *qmax <= 255 && channels.iter().all(|c| c[2].fract() == 0.0) {
            let code = |r: usize, c: usize| qf.code(w_rows[r * outputs + c], qf.channel(c, outputs)) as u8;
            (reorder(&code), UINT8, (0..outputs).map(|c| channels[qf.channel(c, outputs)][1]).collect(), (0..outputs).map(|c| channels[qf.channel(c, outputs)][2] as u8).collect())
        } else {
            self.notes.push(format!("{tag}: stored as f32 (its codes fit neither int8 with zero point 0 nor uint8)"));
            return self.floats(tag.into(), dims, &values());
        };
        let (scales, zeros) = if per_channel { (scales, zeros) } else { (scales[..1].to_vec(), zeros[..1].to_vec()) };
        let shape: &[usize] = if per_channel { &[outputs] } else { &[] };
        let x = self.init(format!("{tag}_quantized"), dims, data_type, raw);
        let s = self.floats(format!("{tag}_scale"), shape, &scales);
        let z = self.init(format!("{tag}_zero"), shape, data_type, zeros);
        let attrs = if per_channel { vec![attr_int("axis", axis as i64)] } else { vec![] };
        self.node("DequantizeLinear", &[&x, &s, &z], tag.into(), attrs)
    }
}

/// Elements of a tensor of ONNX `dims` (Gemm B [K, O], axis 1; Conv W [O, Cin, kh, kw], axis 0)
/// from `at(r, c)`, r the row of Squeeze's [K, O] layout (conv: (kh·k + kw)·Cin + ci).
fn onnx_order<T>(dims: &[usize], axis: usize, kdim: usize, at: &dyn Fn(usize, usize) -> T) -> Vec<T> {
    if axis == 1 {
        let outputs = dims[1];
        (0..kdim * outputs).map(|i| at(i / outputs, i % outputs)).collect()
    } else {
        let (o, cin, k) = (dims[0], dims[1], dims[2]);
        let mut out = Vec::with_capacity(o * cin * k * k);
        for c in 0..o {
            for ci in 0..cin {
                for kh in 0..k {
                    for kw in 0..k {
                        out.push(at((kh * k + kw) * cin + ci, c));
                    }
                }
            }
        }
        out
    }
}

/// Model `m` (trained on inputs normalised by `norm`) as an ONNX file.
///
/// Input `image` [N, C, H, W] f32, the pixels / 255 (0..1); output `logits` [N, classes].
pub fn export(m: &StageModel, norm: Normalization) -> Result<Exported> {
    let net = &m.net;
    let first = crate::reference::net::first_tensor(net);
    let infos = net.tensors();
    let quant = |j: usize| m.weights.get(j).and_then(|q| q.as_ref());
    let mut g = Graph::default();
    // Each node's value: its name, and whether it is [N, C, H, W] (else [N, F]).
    let mut values: Vec<(String, bool)> = Vec::with_capacity(net.nodes.len());
    let input = net.input();
    let (scale, shift) = norm.scale_shift();
    let s = g.floats("norm_scale".into(), &[], &[scale * 255.0]);
    let b = g.floats("norm_shift".into(), &[], &[shift]);
    let scaled = g.node("Mul", &["image", &s], "image_scaled".into(), vec![]);
    values.push((g.node("Add", &[&scaled, &b], "normalized".into(), vec![]), true));
    for (n, node) in net.nodes.iter().enumerate().skip(1) {
        let (x, spatial) = values[node.inputs[0]].clone();
        let xs = net.nodes[node.inputs[0]].shape;
        let j = first[n];
        let tag = format!("n{n}");
        let (mut y, spatial_out) = match node.op {
            Op::Input => unreachable!("only node 0"),
            Op::Dense { outputs } => {
                let x = if spatial { g.node("Flatten", &[&x], format!("{tag}_flat"), vec![attr_int("axis", 1)]) } else { x };
                // Squeeze's rows follow the NHWC flattening ((h·W + w)·C + c); ONNX's Flatten of NCHW is c·H·W + h·W + w.
                let kdim = infos[j].rows;
                let nhwc = |r: usize| if spatial { let (c, hw) = (r / (xs.h * xs.w), r % (xs.h * xs.w)); hw * xs.c + c } else { r };
                let w = &m.params.tensors[j];
                let perm: Vec<f32> = (0..kdim * outputs).map(|i| w[nhwc(i / outputs) * outputs + i % outputs]).collect();
                let wn = g.weight(&format!("{tag}_weight"), &[kdim, outputs], 1, &perm, quant(j));
                let bn = g.floats(format!("{tag}_bias"), &[outputs], &m.params.tensors[j + 1]);
                (g.node("Gemm", &[&x, &wn, &bn], tag.clone(), vec![]), false)
            }
            Op::Conv { outputs, k, stride, pad } => {
                let wn = g.weight(&format!("{tag}_weight"), &[outputs, xs.c, k, k], 0, &m.params.tensors[j], quant(j));
                let bn = g.floats(format!("{tag}_bias"), &[outputs], &m.params.tensors[j + 1]);
                let attrs = vec![attr_ints("kernel_shape", &[k, k]), attr_ints("strides", &[stride, stride]), attr_ints("pads", &[pad; 4])];
                (g.node("Conv", &[&x, &wn, &bn], tag.clone(), attrs), true)
            }
            Op::BatchNorm => {
                let c = node.shape.c;
                let names: Vec<String> = ["gamma", "beta", "mean", "var"].iter().enumerate().map(|(i, r)| g.floats(format!("{tag}_{r}"), &[c], &m.params.tensors[j + i])).collect();
                (g.node("BatchNormalization", &[&x, &names[0], &names[1], &names[2], &names[3]], tag.clone(), vec![attr_float("epsilon", BN_EPS)]), spatial)
            }
            Op::MaxPool { k, stride } => (g.node("MaxPool", &[&x], tag.clone(), vec![attr_ints("kernel_shape", &[k, k]), attr_ints("strides", &[stride, stride])]), true),
            Op::AvgPool { k, .. } if k == xs.h && k == xs.w => (g.node("GlobalAveragePool", &[&x], tag.clone(), vec![]), true),
            Op::AvgPool { k, stride } => (g.node("AveragePool", &[&x], tag.clone(), vec![attr_ints("kernel_shape", &[k, k]), attr_ints("strides", &[stride, stride])]), true),
            Op::Add => {
                let (other, other_spatial) = values[node.inputs[1]].clone();
                if other_spatial != spatial {
                    return Err(Error::Invalid(format!("ONNX export: node {n} adds a flat and a spatial value")));
                }
                (g.node("Add", &[&x, &other], tag.clone(), vec![]), spatial)
            }
        };
        if node.relu {
            y = g.node("Relu", &[&y], format!("{tag}_relu"), vec![]);
        }
        if let Some(q) = m.activations.get(n).and_then(|q| q.as_ref()) {
            y = activation(&mut g, &y, &tag, q, n)?;
        }
        values.push((y, spatial_out));
    }
    let (last, spatial) = values.pop().expect("the net has nodes");
    let logits = g.node(if spatial { "Flatten" } else { "Identity" }, &[&last], "logits".into(), if spatial { vec![attr_int("axis", 1)] } else { vec![] });
    let dims = |d: &[Option<usize>]| TensorShapeProto {
        dim: d.iter().map(|v| match v {
            Some(v) => Dimension { dim_value: Some(*v as i64), dim_param: None },
            None => Dimension { dim_value: None, dim_param: Some("N".into()) },
        }).collect(),
    };
    let value = |name: &str, shape: TensorShapeProto| ValueInfoProto { name: name.into(), r#type: Some(TypeProto { tensor_type: Some(TensorTypeProto { elem_type: FLOAT, shape: Some(shape) }) }) };
    let graph = GraphProto {
        node: g.nodes,
        name: net.arch.clone(),
        initializer: g.inits,
        doc_string: format!("{} ({}), exported by Squeeze", m.name, net.arch),
        input: vec![value("image", dims(&[None, Some(input.c), Some(input.h), Some(input.w)]))],
        output: vec![value(&logits, dims(&[None, Some(net.classes)]))],
    };
    let meta = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
    let model = ModelProto {
        ir_version: 7,
        producer_name: "squeeze".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "Input `image` [N, C, H, W]: pixels / 255. Output `logits` [N, classes].".into(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        metadata_props: vec![meta("squeeze.arch", net.arch.clone()), meta("squeeze.model", m.name.clone()), meta("squeeze.norm", format!("{} {}", norm.mean, norm.std))],
    };
    Ok(Exported { bytes: model.encode_to_vec(), notes: g.notes })
}

/// The ONNX operator set the files use.
pub const OPSET: i64 = 13;

/// Node `n`'s activation quantizer after `y`: a QDQ pair for 8-bit-or-narrower affine codes with
/// an integer zero point, DynamicQuantizeLinear for dynamic uint8, a cast through f16 for f16.
fn activation(g: &mut Graph, y: &str, tag: &str, q: &QuantFn, n: usize) -> Result<String> {
    let no = |why: &str| Err(Error::Invalid(format!("ONNX export: node {n}'s activation quantizer {why}")));
    match q {
        QuantFn::Affine { qmin, qmax, channels } if channels.len() == 1 => {
            let [_, step, zero] = channels[0];
            if zero.fract() != 0.0 {
                return no(&format!("has zero point {zero}, which QuantizeLinear cannot hold (an integer)"));
            }
            let (data_type, lo, hi) = if *qmin >= 0 && *qmax <= 255 { (UINT8, 0, 255) } else if *qmin >= -128 && *qmax <= 127 { (INT8, -128, 127) } else { return no("has more than 8 bits") };
            let clip = (*qmin > lo || *qmax < hi).then(|| ((*qmin as f32 - zero) * step, (*qmax as f32 - zero) * step));
            Ok(g.qdq(y, &format!("{tag}_act"), step, zero as i32, data_type, clip))
        }
        QuantFn::Dynamic { qmin: 0, qmax: 255 } => {
            let out = |s: &str| format!("{tag}_act_{s}");
            g.nodes.push(NodeProto { input: vec![y.into()], output: vec![out("q"), out("scale"), out("zero")], name: format!("DynamicQuantizeLinear_{}", g.nodes.len()), op_type: "DynamicQuantizeLinear".into(), ..Default::default() });
            Ok(g.node("DequantizeLinear", &[&out("q"), &out("scale"), &out("zero")], out("dq"), vec![]))
        }
        QuantFn::F16 => {
            let h = g.node("Cast", &[y], format!("{tag}_act_f16"), vec![attr_int("to", FLOAT16 as i64)]);
            Ok(g.node("Cast", &[&h], format!("{tag}_act_f32"), vec![attr_int("to", FLOAT as i64)]))
        }
        _ => no("has no ONNX form (per-channel, k-means levels, or symmetric dynamic)"),
    }
}
