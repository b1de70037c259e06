//! The model file (`.sqz`) the page downloads and `squeeze run --save-model` writes: what a
//! compressed model really costs to store, and enough to load it back bit for bit.
//!
//! Layout: b"SQZM", version u32 LE (2), header length u32 LE, the header (JSON: the net's nodes,
//! input shape, classes, the input normalisation, the activation quantizers, and per tensor its
//! role, shape, encoding and byte length), then each tensor's bytes in order. Each tensor takes
//! the smallest encoding that stores it exactly (compress::encoding): a quantized tensor its codes
//! (dense or relative-indexed, packed or Huffman-coded, with its scales, zero points or
//! codebook); an unquantized weight matrix dense f32 or Deep Compression's 5-bit relative indices
//! with f32 values; every other tensor dense f32. Version 1 files (no quantizers; f32 and
//! relative-index tensors) still load. Loading checks everything against the header and the
//! rebuilt net (a malformed file is an error naming what is wrong, never a panic or a huge
//! allocation), and a loaded model computes exactly what the saved one did.

use crate::compress::encoding::Encoding;
use crate::compress::quant::QuantFn;
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::inspect::StageModel;
use crate::nn::{Net, NetParams, Op, Role, Shape};
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"SQZM";
const VERSION: u32 = 2;
/// Far above any model here (vgg-mini: 218,586 parameters); bounds what a file can make us allocate.
pub(crate) const MAX_ELEMENTS: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    arch: String,
    input: [usize; 3],
    classes: usize,
    norm: [f32; 2],
    nodes: Vec<NodeSpec>,
    tensors: Vec<TensorSpec>,
    /// Version 2: the activation quantizers, by node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    activations: Vec<ActivationSpec>,
}

#[derive(Serialize, Deserialize)]
struct NodeSpec {
    op: Op,
    inputs: Vec<usize>,
    relu: bool,
}

#[derive(Serialize, Deserialize)]
struct TensorSpec {
    role: String,
    rows: usize,
    cols: usize,
    /// A compress::encoding name ("f32", "relative5", "relative4-codes+huffman", ...).
    encoding: String,
    bytes: usize,
}

#[derive(Serialize, Deserialize)]
struct ActivationSpec {
    node: usize,
    quantizer: QuantFn,
}

fn bad(message: impl Into<String>) -> Error {
    Error::Io { path: "model file".into(), message: message.into() }
}

/// The file's bytes for model `m` (trained with normalisation `norm`).
pub fn save(m: &StageModel, norm: Normalization) -> Vec<u8> {
    let infos = m.net.tensors();
    let mut payloads = Vec::with_capacity(infos.len());
    let mut tensors = Vec::with_capacity(infos.len());
    for (j, info) in infos.iter().enumerate() {
        let (encoding, bytes) = Encoding::stored(&m.params.tensors[j], m.weights.get(j).and_then(|q| q.as_ref()), info.cols, info.role == Role::Weight);
        tensors.push(TensorSpec { role: format!("{:?}", info.role), rows: info.rows, cols: info.cols, encoding: encoding.name(), bytes: bytes.len() });
        payloads.push(bytes);
    }
    let input = m.net.input();
    let header = Header {
        arch: m.net.arch.clone(),
        input: [input.h, input.w, input.c],
        classes: m.net.classes,
        norm: [norm.mean, norm.std],
        nodes: m.net.nodes.iter().skip(1).map(|n| NodeSpec { op: n.op, inputs: n.inputs.clone(), relu: n.relu }).collect(),
        tensors,
        activations: m.activations.iter().enumerate().filter_map(|(node, q)| Some(ActivationSpec { node, quantizer: q.clone()? })).collect(),
    };
    let json = serde_json::to_vec(&header).expect("the header serializes");
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    payloads.iter().for_each(|p| out.extend_from_slice(p));
    out
}

/// A model file of either kind Squeeze writes: `.sqz` (by its signature) or ONNX (src/onnx).
pub fn load_any(bytes: &[u8]) -> Result<(StageModel, Normalization)> {
    if bytes.starts_with(MAGIC) {
        return load(bytes);
    }
    crate::onnx::import(bytes).map_err(|e| match e {
        Error::Io { message, .. } if message.starts_with("not an ONNX model") => bad(format!("neither a Squeeze model file (no SQZM signature) nor an ONNX model: {message}")),
        e => e,
    })
}

/// Reads a model file back (version 1 or 2): the model and the normalisation it was trained with.
pub fn load(bytes: &[u8]) -> Result<(StageModel, Normalization)> {
    if bytes.len() < 12 || &bytes[..4] != MAGIC {
        return Err(bad("not a Squeeze model file (no SQZM signature)"));
    }
    let version = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if !(1..=VERSION).contains(&version) {
        return Err(bad(format!("format version {version}; this build reads versions 1 to {VERSION}")));
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let json = bytes.get(12..12usize.saturating_add(len)).ok_or_else(|| bad(format!("header of {len} bytes, but the file has {} after the preamble", bytes.len() - 12)))?;
    let header: Header = serde_json::from_slice(json).map_err(|e| bad(format!("header: {e}")))?;
    let [h, w, c] = header.input;
    if h == 0 || w == 0 || c == 0 || h * w * c > 1 << 20 || header.classes == 0 || header.classes > 1 << 16 {
        return Err(bad(format!("input {h}x{w}x{c} with {} classes is not a model this reads", header.classes)));
    }
    let net = rebuild(&header, Shape::new(h, w, c))?;
    let infos = net.tensors();
    if infos.len() != header.tensors.len() {
        return Err(bad(format!("the net has {} tensors, the header lists {}", infos.len(), header.tensors.len())));
    }
    let mut at = 12 + len;
    let mut tensors = Vec::with_capacity(infos.len());
    let mut weights = vec![None; infos.len()];
    for (j, (info, spec)) in infos.iter().zip(&header.tensors).enumerate() {
        if (spec.rows, spec.cols) != (info.rows, info.cols) || spec.role != format!("{:?}", info.role) {
            return Err(bad(format!("tensor {j}: the header says {} {}x{}, the net needs {:?} {}x{}", spec.role, spec.rows, spec.cols, info.role, info.rows, info.cols)));
        }
        let n = info.len();
        if n > MAX_ELEMENTS {
            return Err(bad(format!("tensor {j} has {n} elements, more than this reads")));
        }
        let data = bytes.get(at..at.saturating_add(spec.bytes)).ok_or_else(|| bad(format!("tensor {j} needs {} bytes at offset {at}; the file ends at {}", spec.bytes, bytes.len())))?;
        at += spec.bytes;
        let encoding = Encoding::parse(&spec.encoding).filter(|e| version >= 2 || !matches!(e, Encoding::Quantized(_)));
        let encoding = encoding.ok_or_else(|| bad(format!("tensor {j}: unknown encoding `{}` for a version {version} file", spec.encoding)))?;
        let (values, q) = encoding.decode(data, n, info.cols).ok_or_else(|| bad(format!("tensor {j}: {} bytes of `{}` do not describe {n} values", data.len(), spec.encoding)))?;
        if values.iter().any(|v: &f32| !v.is_finite()) {
            return Err(bad(format!("tensor {j} holds a value that is not a finite number")));
        }
        // Its quantizer must give back the values it stored (a table of levels out of order or
        // repeated may not), or the file would not write back as it reads; exact zeros (pruned
        // weights, kept by the zero mask or the gaps) need not be among its values.
        if q.as_ref().is_some_and(|q| q.fake(&values, info.cols).iter().zip(&values).any(|(a, b)| *b != 0.0 && a.to_bits() != b.to_bits())) {
            return Err(bad(format!("tensor {j}: its quantizer does not reproduce the values it stores")));
        }
        tensors.push(values);
        weights[j] = q;
    }
    if at != bytes.len() {
        return Err(bad(format!("{} bytes after the last tensor", bytes.len() - at)));
    }
    let norm = Normalization { mean: header.norm[0], std: header.norm[1] };
    if !norm.usable() {
        return Err(bad("the input normalisation is not usable (std must be > 0, its inverse a normal number)"));
    }
    let mut activations = vec![None; net.nodes.len()];
    for a in &header.activations {
        if a.node == 0 || a.node >= net.nodes.len() || activations[a.node].is_some() || !usable_activation(&a.quantizer) {
            return Err(bad(format!("activation quantizer of node {} is not one this reads", a.node)));
        }
        activations[a.node] = Some(a.quantizer.clone());
    }
    if activations.iter().all(|a| a.is_none()) {
        activations.clear();
    }
    if weights.iter().all(|q| q.is_none()) {
        weights.clear();
    }
    Ok((StageModel { stage: 0, name: "loaded".into(), net, params: NetParams { tensors }, weights, activations }, norm))
}

/// An activation quantizer is per tensor, with finite numbers, a positive step, ordered levels.
fn usable_activation(q: &QuantFn) -> bool {
    match q {
        QuantFn::Affine { qmin, qmax, channels } => qmin < qmax && (*qmax as i64 - *qmin as i64) < 1 << 16 && channels.len() == 1 && channels[0].iter().all(|v| v.is_finite()) && channels[0][1] > 0.0,
        QuantFn::Levels { levels } => !levels.is_empty() && levels.len() <= 1 << 16 && levels.iter().all(|v| v.is_finite()) && levels.windows(2).all(|p| p[0] <= p[1]),
        QuantFn::F16 => true,
        QuantFn::Dynamic { qmin, qmax } => (*qmin == 0 || *qmin == -qmax) && qmin < qmax && (*qmax as i64 - *qmin as i64) < 1 << 16,
    }
}

/// The net the header describes, every node checked before `Net::push` (which trusts its caller).
fn rebuild(header: &Header, input: Shape) -> Result<Net> {
    if header.nodes.is_empty() || header.nodes.len() > 1000 {
        return Err(bad(format!("{} nodes", header.nodes.len())));
    }
    let mut net = Net::new(&header.arch, input, header.classes);
    for (i, node) in header.nodes.iter().enumerate() {
        let n = i + 1;
        let want = if node.op == Op::Add { 2 } else { 1 };
        if node.inputs.len() != want || node.inputs.iter().any(|&x| x >= n) {
            return Err(bad(format!("node {n} ({:?}) must read {want} earlier node(s), reads {:?}", node.op, node.inputs)));
        }
        let x = net.nodes[node.inputs[0]].shape;
        let fits = |k: usize, stride: usize, pad: usize| k >= 1 && stride >= 1 && k <= x.h + 2 * pad && k <= x.w + 2 * pad && pad < k;
        let ok = match node.op {
            Op::Input => false,
            Op::Dense { outputs } => (1..=1 << 16).contains(&outputs),
            Op::Conv { outputs, k, stride, pad } => (1..=4096).contains(&outputs) && fits(k, stride, pad),
            Op::MaxPool { k, stride } | Op::AvgPool { k, stride } => fits(k, stride, 0),
            Op::BatchNorm => true,
            Op::Add => net.nodes[node.inputs[1]].shape == x,
        };
        if !ok {
            return Err(bad(format!("node {n} ({:?}) does not fit its input {}x{}x{}", node.op, x.h, x.w, x.c)));
        }
        net.push(node.op, &node.inputs, node.relu);
    }
    let last = net.nodes[net.last()].shape;
    if last.size() != header.classes {
        return Err(bad(format!("the last node gives {} outputs for {} classes", last.size(), header.classes)));
    }
    Ok(net)
}
