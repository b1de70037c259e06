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

/// Random parameters (running variances positive, as any trained net's are).
fn random_params(net: &Net, rng: &mut Rng) -> NetParams {
    NetParams { tensors: net.tensors().iter().map(|t| random_vec(rng, t.len(), if t.role == Role::RunningVar { 0.1 } else { -0.5 }, 0.5)).collect() }
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
    // The last layer's weights all positive: asymmetric codes 0..255 with zero point 0, which
    // int8 with zero point 0 cannot hold (uint8 it is).
    let last = *net.weight_tensors().last().unwrap();
    params.tensors[last].iter_mut().for_each(|v| *v = v.abs() + 0.01);
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

/// A model's logits on `rows` random images (pixels / 255), through the CPU reference.
fn logits_of(m: &StageModel, norm: Normalization, pixels: &[f32], rows: usize) -> Vec<f32> {
    let (scale, shift) = norm.scale_shift();
    let x: Vec<f32> = pixels.iter().map(|p| p * 255.0 * scale + shift).collect();
    squeeze::reference::net::net_forward_with(&m.net, &mut m.params.clone(), x, rows, rows, false, &m.activations).acts.pop().unwrap()
}

#[test]
fn export_then_import_gives_back_the_same_model() {
    let (mut rng, seed) = fresh_rng("onnx round trip");
    let net = small_net();
    let mut params = random_params(&net, &mut rng);
    let infos = net.tensors();
    let mut weights = vec![None; infos.len()];
    for &j in &net.weight_tensors()[..2] {
        let q = Scheme { kind: SchemeKind::Symmetric, bits: 8, per_channel: true }.fit(&params.tensors[j], infos[j].cols);
        params.tensors[j] = q.fake(&params.tensors[j], infos[j].cols);
        weights[j] = Some(q);
    }
    let affine = |qmin, qmax, step: f32, zero| QuantFn::Affine { qmin, qmax, channels: vec![[1.0 / step, step, zero]] };
    let mut activations = vec![None; net.nodes.len()];
    activations[1] = Some(affine(0, 255, 0.02, 3.0));
    activations[3] = Some(affine(-7, 7, 0.1, 0.0));
    let resnet = Net::resnet_mini(Shape::new(8, 8, 1), &[4, 8], 10);
    let cases = [
        StageModel::float("float", net.clone(), random_params(&net, &mut rng)),
        StageModel { weights, activations, ..StageModel::float("qdq", net.clone(), params) },
        StageModel::float("resnet", resnet.clone(), random_params(&resnet, &mut rng)),
    ];
    for m in &cases {
        let bytes = squeeze::onnx::export(m, NORM).unwrap().bytes;
        let (back, norm) = squeeze::onnx::import(&bytes).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let ops = |n: &Net| n.nodes.iter().map(|x| (x.op, x.inputs.clone(), x.relu, x.shape)).collect::<Vec<_>>();
        assert_eq!(ops(&back.net), ops(&m.net), "{}", m.name);
        assert_eq!(back.params.tensors, m.params.tensors, "{}: every value exactly (seed {seed})", m.name);
        assert_eq!(back.activations, m.activations, "{}", m.name);
        assert_eq!(back.weights.iter().map(|q| q.is_some()).collect::<Vec<_>>(), m.weights.iter().map(|q| q.is_some()).collect::<Vec<_>>(), "{}", m.name);
        assert_eq!((norm.mean, norm.std), (NORM.mean, NORM.std), "the normalisation exactly");
        let s = m.net.input().size();
        let pixels = random_vec(&mut rng, 3 * s, 0.0, 1.0);
        let (a, b) = (logits_of(m, NORM, &pixels, 3), logits_of(&back, norm, &pixels, 3));
        assert_eq!(a, b, "{}: the same logits", m.name);
    }
}

#[test]
fn a_malformed_or_foreign_onnx_file_is_refused_with_a_reason() {
    let (mut rng, seed) = fresh_rng("onnx malformed");
    let net = small_net();
    let m = StageModel::float("m", net.clone(), random_params(&net, &mut rng));
    let bytes = squeeze::onnx::export(&m, NORM).unwrap().bytes;
    let refused = |b: &[u8], why: &str| {
        let e = squeeze::onnx::import(b).err().unwrap_or_else(|| panic!("accepted: {why}")).to_string();
        assert!(e.contains(why), "{e} (wanted {why:?})");
    };
    refused(b"SQZM not onnx at all", "not an ONNX model");
    refused(&bytes[..bytes.len() / 2], "not an ONNX model");
    let edit = |f: &dyn Fn(&mut ModelProto)| {
        let mut p = ModelProto::decode(bytes.as_slice()).unwrap();
        f(&mut p);
        p.encode_to_vec()
    };
    fn g(p: &mut ModelProto) -> &mut GraphProto {
        p.graph.as_mut().unwrap()
    }
    refused(&edit(&|p| g(p).node[4].op_type = "Softmax".into()), "the operator Softmax is not one Squeeze reads");
    refused(&edit(&|p| g(p).node[2].attribute.push(AttributeProto { name: "group".into(), i: 2, r#type: 2, ..Default::default() })), "no groups");
    refused(&edit(&|p| g(p).initializer.retain(|t| t.name != "n3_bias")), "n3_bias, which no earlier node or initializer gives");
    refused(&edit(&|p| g(p).initializer.iter_mut().find(|t| t.name == "n1_weight").unwrap().raw_data.truncate(8)), "values for dims");
    refused(&edit(&|p| g(p).initializer.iter_mut().find(|t| t.name == "n4_bias").unwrap().raw_data[0..4].copy_from_slice(&f32::NAN.to_le_bytes())), "not a finite number");
    refused(&edit(&|p| p.opset_import[0].version = 99), "operator set 99");
    // Flipped bytes anywhere: an error or a model, never a panic.
    for _ in 0..300 {
        let mut b = bytes.clone();
        let i = rng.below(b.len() as u32) as usize;
        b[i] ^= 1 << rng.below(8);
        let _ = squeeze::onnx::import(&b);
    }
    let _ = seed;
}
