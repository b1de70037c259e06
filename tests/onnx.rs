//! ONNX export (src/onnx): what the written file holds, read back with the same schema: every
//! weight in ONNX's layout (conv [O, Cin, K, K]; a dense layer after a spatial one with its rows
//! in NCHW order), quantized weights as int8/uint8 initializers that dequantize to exactly the
//! model's weights, activation quantizers as QDQ pairs, and a clear error for what has no ONNX
//! form. Whether a runtime computes Squeeze's answers from the file is interop/check-onnx.mjs's
//! part (ONNX Runtime on the MNIST test set, in scripts/test).

mod common;
use common::{fresh_rng, random_vec};
use prost::Message;
use squeeze::compress::quant::{QuantFn, Scheme, SchemeKind};
use squeeze::data::Normalization;
use squeeze::inspect::StageModel;
use squeeze::nn::{Net, NetParams, Op, Role, Shape};
use squeeze::onnx::proto::*;
use squeeze::rng::Rng;

const NORM: Normalization = Normalization { mean: 0.13, std: 0.31 };

/// Conv (stride 2, padded) → max pool → dense (reading 4 channels) → dense, on an awkward input.
fn small_net() -> Net {
    let mut net = Net::new("t", Shape::new(9, 7, 3), 5);
    net.then(Op::Conv { outputs: 4, k: 3, stride: 2, pad: 1 }, true);
    net.then(Op::MaxPool { k: 2, stride: 1 }, false);
    net.then(Op::Dense { outputs: 6 }, true);
    net.then(Op::Dense { outputs: 5 }, false);
    net
}

fn random_params(net: &Net, rng: &mut Rng) -> NetParams {
    NetParams { tensors: net.tensors().iter().map(|t| random_vec(rng, t.len(), -0.5, 0.5)).collect() }
}

fn decode(m: &StageModel) -> GraphProto {
    let bytes = squeeze::onnx::export(m, NORM).unwrap().bytes;
    let model = ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!((model.ir_version, model.opset_import[0].version), (7, squeeze::onnx::OPSET));
    model.graph.unwrap()
}

fn init<'a>(g: &'a GraphProto, name: &str) -> &'a TensorProto {
    g.initializer.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no initializer {name}"))
}

fn f32s(t: &TensorProto) -> Vec<f32> {
    assert_eq!(t.data_type, FLOAT, "{}", t.name);
    t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

/// A weight initializer as reals: f32, or int8/uint8 codes dequantized per channel along `axis`.
fn weight_values(g: &GraphProto, tag: &str, axis: usize) -> (Vec<f32>, Vec<usize>, i32) {
    if let Some(t) = g.initializer.iter().find(|t| t.name == tag) {
        return (f32s(t), t.dims.iter().map(|&d| d as usize).collect(), FLOAT);
    }
    let q = init(g, &format!("{tag}_quantized"));
    let (scale, zero) = (f32s(init(g, &format!("{tag}_scale"))), init(g, &format!("{tag}_zero")));
    let dims: Vec<usize> = q.dims.iter().map(|&d| d as usize).collect();
    let code = |b: u8, t: i32| if t == INT8 { b as i8 as i32 } else { b as i32 };
    let inner: usize = dims[axis + 1..].iter().product();
    let values = q
        .raw_data
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let c = if scale.len() > 1 { (i / inner) % dims[axis] } else { 0 };
            (code(b, q.data_type) - code(zero.raw_data[c], zero.data_type)) as f32 * scale[c]
        })
        .collect();
    let dq = g.node.iter().find(|n| n.output == [tag]).expect("a DequantizeLinear node");
    assert_eq!(dq.op_type, "DequantizeLinear");
    if scale.len() > 1 {
        assert_eq!(dq.attribute.iter().find(|a| a.name == "axis").map(|a| a.i), Some(axis as i64), "{tag}");
    }
    (values, dims, q.data_type)
}

/// Squeeze's [K, O] weight of node `n` read back from the file's ONNX layout.
fn squeeze_layout(net: &Net, g: &GraphProto, n: usize) -> (Vec<f32>, i32) {
    let x = net.nodes[net.nodes[n].inputs[0]].shape;
    match net.nodes[n].op {
        Op::Conv { outputs, k, .. } => {
            let (v, dims, t) = weight_values(g, &format!("n{n}_weight"), 0);
            assert_eq!(dims, [outputs, x.c, k, k]);
            let kdim = k * k * x.c;
            let mut w = vec![0.0; kdim * outputs];
            for (i, val) in v.iter().enumerate() {
                let (o, ci, kh, kw) = (i / (x.c * k * k), (i / (k * k)) % x.c, (i / k) % k, i % k);
                w[((kh * k + kw) * x.c + ci) * outputs + o] = *val;
            }
            (w, t)
        }
        Op::Dense { outputs } => {
            let (v, dims, t) = weight_values(g, &format!("n{n}_weight"), 1);
            assert_eq!(dims, [x.size(), outputs]);
            let mut w = vec![0.0; v.len()];
            // ONNX row c·H·W + h·W + w (Flatten of NCHW) is Squeeze's row (h·W + w)·C + c.
            for (i, val) in v.iter().enumerate() {
                let (r, o) = (i / outputs, i % outputs);
                let (c, hw) = (r / (x.h * x.w), r % (x.h * x.w));
                w[(hw * x.c + c) * outputs + o] = *val;
            }
            (w, t)
        }
        _ => unreachable!("weights belong to dense and conv nodes"),
    }
}

#[test]
fn float_weights_are_written_in_onnx_layout() {
    let (mut rng, seed) = fresh_rng("onnx float");
    let net = small_net();
    let params = random_params(&net, &mut rng);
    let g = decode(&StageModel::float("m", net.clone(), params.clone()));
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Mul", "Add", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm", "Identity"], "seed {seed}");
    let first = squeeze::reference::net::first_tensor(&net);
    for n in [1, 3, 4] {
        let (w, t) = squeeze_layout(&net, &g, n);
        assert_eq!((w, t), (params.tensors[first[n]].clone(), FLOAT), "node {n}, seed {seed}");
        assert_eq!(f32s(init(&g, &format!("n{n}_bias"))), params.tensors[first[n] + 1], "node {n}");
    }
    let conv = &g.node[2];
    let ints = |name: &str| conv.attribute.iter().find(|a| a.name == name).unwrap().ints.clone();
    assert_eq!((ints("kernel_shape"), ints("strides"), ints("pads")), (vec![3, 3], vec![2, 2], vec![1, 1, 1, 1]));
    // The input normalisation: x = (pixels/255)·(1/std) − mean/std.
    assert!((f32s(init(&g, "norm_scale"))[0] - 1.0 / 0.31).abs() < 1e-5 && (f32s(init(&g, "norm_shift"))[0] + 0.13 / 0.31).abs() < 1e-6);
    let dims = |v: &ValueInfoProto| v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().shape.as_ref().unwrap().dim.iter().map(|d| d.dim_value.unwrap_or(-1)).collect::<Vec<_>>();
    assert_eq!((dims(&g.input[0]), dims(&g.output[0])), (vec![-1, 3, 9, 7], vec![-1, 5]));
}

#[test]
fn a_residual_net_maps_batch_norm_add_and_global_pooling() {
    let (mut rng, _) = fresh_rng("onnx resnet");
    let net = Net::resnet_mini(Shape::new(8, 8, 1), &[4, 8], 10);
    let params = random_params(&net, &mut rng);
    let g = decode(&StageModel::float("m", net.clone(), params.clone()));
    let count = |op: &str| g.node.iter().filter(|n| n.op_type == op).count();
    let nodes = |op: Op| net.nodes.iter().filter(|n| std::mem::discriminant(&n.op) == std::mem::discriminant(&op)).count();
    assert_eq!(count("Conv"), nodes(Op::Conv { outputs: 0, k: 0, stride: 0, pad: 0 }));
    assert_eq!(count("BatchNormalization"), nodes(Op::BatchNorm));
    assert_eq!(count("Add"), nodes(Op::Add) + 1, "the residual adds and the normalisation's");
    assert_eq!(count("Relu"), net.nodes.iter().filter(|n| n.relu).count());
    assert_eq!((count("GlobalAveragePool"), count("Gemm"), count("DequantizeLinear")), (1, 1, 0));
    // Batch norms keep their four vectors, running statistics included.
    let infos = net.tensors();
    let j = infos.iter().position(|t| t.role == Role::RunningVar).unwrap();
    assert_eq!(f32s(init(&g, &format!("n{}_var", infos[j].node))), params.tensors[j]);
}

#[test]
fn quantized_weights_are_int8_or_uint8_initializers_that_dequantize_exactly() {
    let (mut rng, seed) = fresh_rng("onnx qdq weights");
    let net = small_net();
    let mut params = random_params(&net, &mut rng);
    let infos = net.tensors();
    let schemes = [
        (Scheme { kind: SchemeKind::Symmetric, bits: 8, per_channel: true }, INT8),
        (Scheme { kind: SchemeKind::Binary, bits: 1, per_channel: true }, INT8),
        (Scheme { kind: SchemeKind::Asymmetric, bits: 8, per_channel: false }, UINT8),
    ];
    let mut weights = vec![None; infos.len()];
    for (&j, (scheme, _)) in net.weight_tensors().iter().zip(&schemes) {
        let q = scheme.fit(&params.tensors[j], infos[j].cols);
        params.tensors[j] = q.fake(&params.tensors[j], infos[j].cols);
        weights[j] = Some(q);
    }
    let m = StageModel { weights, ..StageModel::float("m", net.clone(), params.clone()) };
    let g = decode(&m);
    let first = squeeze::reference::net::first_tensor(&net);
    for (n, (_, kind)) in [1, 3, 4].into_iter().zip(schemes) {
        let (w, t) = squeeze_layout(&net, &g, n);
        assert_eq!(t, kind, "node {n}");
        assert_eq!(w, params.tensors[first[n]], "node {n}: the codes times their scales are the model's weights (seed {seed})");
    }
}

#[test]
fn activation_quantizers_become_qdq_pairs_and_what_has_no_form_is_refused() {
    let (mut rng, _) = fresh_rng("onnx qdq activations");
    let net = small_net();
    let params = random_params(&net, &mut rng);
    let affine = |qmin, qmax, step: f32, zero| QuantFn::Affine { qmin, qmax, channels: vec![[1.0 / step, step, zero]] };
    let mut acts = vec![None; net.nodes.len()];
    acts[1] = Some(affine(0, 255, 0.02, 3.0)); // uint8
    acts[3] = Some(affine(-7, 7, 0.1, 0.0)); // 4-bit symmetric in int8: clipped to ±0.7
    let m = StageModel { activations: acts.clone(), ..StageModel::float("m", net.clone(), params.clone()) };
    let g = decode(&m);
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        ["Mul", "Add", "Conv", "Relu", "QuantizeLinear", "DequantizeLinear", "MaxPool", "Flatten", "Gemm", "Relu", "QuantizeLinear", "DequantizeLinear", "Clip", "Gemm", "Identity"]
    );
    let zero = init(&g, "n1_act_zero");
    assert_eq!((zero.data_type, zero.raw_data.clone(), f32s(init(&g, "n1_act_scale"))), (UINT8, vec![3], vec![0.02]));
    assert_eq!(init(&g, "n3_act_zero").data_type, INT8);
    assert!((f32s(init(&g, "n3_act_min"))[0] + 0.7).abs() < 1e-6 && (f32s(init(&g, "n3_act_max"))[0] - 0.7).abs() < 1e-6);
    // What ONNX has no operator for is an error naming the node, not a silently different model.
    for (bad, why) in [(QuantFn::Levels { levels: vec![-1.0, 0.0, 2.0] }, "no ONNX form"), (affine(0, 255, 0.02, 3.5), "zero point 3.5")] {
        acts[3] = Some(bad);
        let m = StageModel { activations: acts.clone(), ..StageModel::float("m", net.clone(), params.clone()) };
        let e = squeeze::onnx::export(&m, NORM).err().expect("refused").to_string();
        assert!(e.contains("node 3") && e.contains(why), "{e}");
    }
}
