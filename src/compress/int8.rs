//! Integer inference, as data: a quantized model (8-bit or narrower uniform weights with zero
//! point 0, 8-bit or narrower activations) compiled into layers that run in integers only. Both
//! executors follow it bit for bit: shaders/int8.wgsl (gpu::int8) and reference::int8 (the CPU).
//!
//! Every int8 tensor holds v = q − o: the quantizer's code q shifted into [−128, 127] (o = 128 for
//! codes in [0, 255], else 0); the image's pixels p are codes too (x = (p − 255·mean)/(255·std)).
//! A dense or conv layer (dense = 1x1 conv over its flattened input) with integer weights w[c, k]
//! (value = w·s_w[c]) reading x = (v + o − z_x)·s_x computes, exactly in i32,
//!   total[c] = Σ_k w[c, k]·v[k] + bias[c],   bias[c] = round(b[c]/(s_w[c]·s_x) + (o − z_x)·Σ_k w[c, k])
//! and, unless it is the classifier, requantizes to the code of the quantizer its output is
//! stored with (the activation quantizer of the node itself, or of the max pool that reads it:
//! max commutes with a monotone quantizer):
//!   v_out = clamp(rq(total, mult[c], shift[c]) + z_out − o_out, lo, hi),   ReLU: lo = z_out − o_out
//! rq(t, m, s) = sign(t)·⌊(|t|·m + 2^(s−1)) / 2^s⌋ (m·2^−s ≈ s_w[c]·s_x/s_out, m in [2^30, 2^31)),
//! 64-bit in Rust, two u32 words in WGSL. The classifier's totals become logits as total·s_w[c]·s_x.

use crate::compress::quant::QuantFn;
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::nn::{Net, NetParams, Op, Shape};

/// One step of an integer model.
#[derive(Clone, Debug, PartialEq)]
pub enum IntStep {
    /// im2col (packing four int8 per u32) then the integer product and its epilogue.
    Layer(IntLayer),
    /// Max pool over int8 values (NHWC), k x k at `stride`.
    MaxPool { input: Shape, k: usize, stride: usize },
}

/// A dense or conv layer in integers. Weights are [outputs, kp] int8 rows (kp = K rounded up to 4,
/// zero padded), K = k·k·C_in in the conv's im2col order ((kh·k + kw)·C_in + ci).
#[derive(Clone, Debug, PartialEq)]
pub struct IntLayer {
    /// The input as the im2col reads it (a dense layer: 1x1 with every input value a channel).
    pub input: Shape,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    /// The int8 value of a real 0 in the input (what padding reads): z_x − o_x.
    pub pad_value: i32,
    pub outputs: usize,
    /// K, and K rounded up to a multiple of 4.
    pub kdim: usize,
    pub kp: usize,
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    /// Requantization per output channel (unused by the classifier).
    pub mult: Vec<u32>,
    pub shift: Vec<u32>,
    /// Added after requantization (z_out − o_out), and the clamp range of the stored value.
    pub zero_out: i32,
    pub lo: i32,
    pub hi: i32,
    /// The classifier: totals are the output, no requantization.
    pub last: bool,
}

impl IntLayer {
    pub fn out_shape(&self) -> Shape {
        let side = |s: usize| (s + 2 * self.pad - self.k) / self.stride + 1;
        Shape::new(side(self.input.h), side(self.input.w), self.outputs)
    }
    /// Rows of the product per sample (output positions).
    pub fn positions(&self) -> usize {
        let o = self.out_shape();
        o.h * o.w
    }
}

/// A compiled integer model: steps in order, and the classifier's per-class logit scale.
#[derive(Clone, Debug, PartialEq)]
pub struct IntModel {
    pub input: Shape,
    pub classes: usize,
    pub steps: Vec<IntStep>,
    pub logit_scale: Vec<f32>,
}

/// How a tensor's int8 values map to reals: x = (v + o − zero)·scale.
#[derive(Clone, Copy, Debug)]
struct Repr {
    scale: f64,
    zero: f64,
    offset: i32,
}

impl Repr {
    /// An activation quantizer as an int8 representation, if it is one.
    fn of(q: &QuantFn) -> Option<Repr> {
        match q {
            QuantFn::Affine { qmin, qmax, channels } if channels.len() == 1 && qmax - qmin <= 255 => {
                let [_, step, zero] = channels[0];
                let offset = if *qmin >= -128 && *qmax <= 127 { 0 } else if *qmin >= 0 && *qmax <= 255 { 128 } else { return None };
                (zero.fract() == 0.0 && step > 0.0).then_some(Repr { scale: step as f64, zero: zero as f64, offset })
            }
            _ => None,
        }
    }
}

/// Fixed-point form m·2^−s of a positive multiplier: m in [2^30, 2^31), s in 1..=62.
pub fn fixed_point(multiplier: f64) -> Option<(u32, u32)> {
    if !(multiplier > 0.0 && multiplier.is_finite()) {
        return None;
    }
    let mut e = multiplier.log2().floor() as i32 + 1; // multiplier = f·2^e, f in [0.5, 1)
    let mut m = (multiplier / 2f64.powi(e) * 2f64.powi(31)).round();
    if m >= 2f64.powi(31) {
        m /= 2.0;
        e += 1;
    }
    let s = 31 - e;
    (1..=62).contains(&s).then_some((m as u32, s as u32))
}

/// rq(t, m, s): t·m·2^−s rounded half away from zero, saturated to ±2^30.
pub fn requantize(total: i32, mult: u32, shift: u32) -> i32 {
    let p = (total.unsigned_abs() as u64) * (mult as u64) + (1u64 << (shift - 1));
    let r = (p >> shift).min(1 << 30) as i32;
    if total < 0 {
        -r
    } else {
        r
    }
}

/// The epilogue of a non-final layer: the stored int8 value of a total.
pub fn requantize_store(total: i32, l: &IntLayer, c: usize) -> i32 {
    (requantize(total, l.mult[c], l.shift[c]) + l.zero_out).clamp(l.lo, l.hi)
}

/// The zero-point-0 integer form of affine-quantized weights W [kdim, outputs] (`channels`: one
/// `[inv_step, step, zero]`, or one per output): per output c its int8 values, [outputs, kdim]
/// row-major, and its scale, with w = v·scale[c] (scale = step, or step/2 where the zero point is
/// a half: binary weights ±step/2). None where a value needs more than 8 bits.
pub fn integer_weights(w: &[f32], kdim: usize, outputs: usize, channels: &[[f32; 3]]) -> Option<(Vec<i8>, Vec<f64>)> {
    let mut wi = vec![0i8; outputs * kdim];
    let mut scale = vec![0f64; outputs];
    for c in 0..outputs {
        let [_, step, zero] = channels[if channels.len() > 1 { c } else { 0 }];
        let d = if zero.fract() == 0.0 { 1.0 } else { 2.0 };
        scale[c] = step as f64 / d;
        for r in 0..kdim {
            let v = (w[r * outputs + c] as f64 / scale[c]).round();
            if !(-128.0..=127.0).contains(&v) {
                return None;
            }
            wi[c * kdim + r] = v as i8;
        }
    }
    Some((wi, scale))
}

/// Whether a model's quantizers allow integer inference, and why not.
pub fn compile(net: &Net, params: &NetParams, weights: &[Option<QuantFn>], acts: &[Option<QuantFn>], norm: Normalization) -> Result<IntModel> {
    let no = |why: String| Err(Error::Invalid(format!("integer inference: {why}")));
    let infos = net.tensors();
    let first = crate::reference::net::first_tensor(net);
    // The image: codes p in [0, 255], x = (p − 255·mean)·(1/(255·std)).
    let mut reprs: Vec<Option<Repr>> = vec![None; net.nodes.len()];
    reprs[0] = Some(Repr { scale: 1.0 / (255.0 * norm.std as f64), zero: 255.0 * norm.mean as f64, offset: 128 });
    let act = |n: usize| acts.get(n).and_then(|q| q.as_ref());
    let mut steps = vec![];
    let mut logit_scale = vec![];
    for (n, node) in net.nodes.iter().enumerate().skip(1) {
        let input = node.inputs[0];
        let Some(x) = reprs[input] else {
            return no(format!("node {n} reads node {input}, whose output is not quantized (quantize activations to 8 bits or fewer)"));
        };
        match node.op {
            Op::Dense { outputs } | Op::Conv { outputs, .. } => {
                let (k, stride, pad, shape) = match node.op {
                    Op::Conv { k, stride, pad, .. } => (k, stride, pad, net.nodes[input].shape),
                    _ => (1, 1, 0, Shape::new(1, 1, net.nodes[input].shape.size())),
                };
                let j = first[n];
                let Some(wq) = weights.get(j).and_then(|q| q.as_ref()) else {
                    return no(format!("layer {n}'s weights are float"));
                };
                let QuantFn::Affine { channels, .. } = wq else {
                    return no(format!("layer {n}'s weights are not uniform (k-means, power-of-two or f16 levels have no integer form); use a uniform scheme"));
                };
                let kdim = infos[j].rows;
                let kp = kdim.div_ceil(4) * 4;
                if kdim * 127 * 128 >= 1 << 31 {
                    return no(format!("layer {n} sums {kdim} products, which could overflow 32 bits"));
                }
                let bias = &params.tensors[j + 1];
                let Some((rows, scale_w)) = integer_weights(&params.tensors[j], kdim, outputs, channels) else {
                    return no(format!("layer {n}'s weights need more than 8 bits with zero point 0 (use symmetric or narrower weights)"));
                };
                let mut wi = vec![0i8; outputs * kp];
                for (dst, src) in wi.chunks_exact_mut(kp).zip(rows.chunks_exact(kdim)) {
                    dst[..kdim].copy_from_slice(src);
                }
                let mut bi = vec![0i32; outputs];
                for c in 0..outputs {
                    let sum: i64 = wi[c * kp..c * kp + kdim].iter().map(|&v| v as i64).sum();
                    let b = bias[c] as f64 / (scale_w[c] * x.scale) + (x.offset as f64 - x.zero) * sum as f64;
                    if !(b.abs() < (1u64 << 30) as f64) {
                        return no(format!("layer {n}'s bias does not fit 31 bits at the scale of its products"));
                    }
                    bi[c] = b.round() as i32;
                }
                let last = n == net.last();
                let consumers = net.consumers(n);
                // The output is stored with the node's own quantizer, or that of the max pool that alone reads it.
                let (target, relu) = match (act(n), consumers.as_slice()) {
                    (Some(q), _) => (Some(q), node.relu),
                    (None, &[c]) if matches!(net.nodes[c].op, Op::MaxPool { .. }) => (act(c), node.relu || net.nodes[c].relu),
                    _ => (None, node.relu),
                };
                let mut layer = IntLayer {
                    input: shape,
                    k,
                    stride,
                    pad,
                    pad_value: (x.zero as i32) - x.offset,
                    outputs,
                    kdim,
                    kp,
                    weights: wi,
                    bias: bi,
                    mult: vec![],
                    shift: vec![],
                    zero_out: 0,
                    lo: i32::MIN,
                    hi: i32::MAX,
                    last,
                };
                if pad > 0 && x.zero.fract() != 0.0 {
                    return no(format!("layer {n} pads an input whose zero point is not an integer"));
                }
                if last {
                    logit_scale = scale_w.iter().map(|s| (s * x.scale) as f32).collect();
                } else {
                    let Some(y) = target.and_then(Repr::of) else {
                        return no(format!("layer {n}'s output has no 8-bit activation quantizer"));
                    };
                    for c in 0..outputs {
                        let Some((m, s)) = fixed_point(scale_w[c] * x.scale / y.scale) else {
                            return no(format!("layer {n}'s requantization scale is out of range"));
                        };
                        layer.mult.push(m);
                        layer.shift.push(s);
                    }
                    let (qmin, qmax) = match target {
                        Some(QuantFn::Affine { qmin, qmax, .. }) => (*qmin, *qmax),
                        _ => unreachable!("Repr::of accepted it"),
                    };
                    layer.zero_out = y.zero as i32 - y.offset;
                    layer.lo = if relu { (y.zero as i32).max(qmin) - y.offset } else { qmin - y.offset };
                    layer.hi = qmax - y.offset;
                    reprs[n] = Some(y);
                }
                steps.push(IntStep::Layer(layer));
            }
            Op::MaxPool { k, stride } => {
                if act(n).is_some_and(|q| Repr::of(q).map(|r| (r.scale, r.zero)) != Some((x.scale, x.zero))) {
                    return no(format!("max pool {n} would need requantizing"));
                }
                reprs[n] = Some(x);
                steps.push(IntStep::MaxPool { input: net.nodes[input].shape, k, stride });
            }
            _ => return no(format!("node {n} ({:?}) has no integer kernel (dense, conv and max pool do)", node.op)),
        }
    }
    if logit_scale.is_empty() {
        return no("the model does not end in a dense or conv layer".into());
    }
    Ok(IntModel { input: net.input(), classes: net.classes, steps, logit_scale })
}

impl IntModel {
    /// Logits from the classifier's totals ([rows, classes]).
    pub fn logits(&self, totals: &[i32]) -> Vec<f32> {
        totals.iter().enumerate().map(|(i, &t)| t as f32 * self.logit_scale[i % self.classes]).collect()
    }

    /// Elements per sample of the largest int8 activation, and of the largest packed im2col matrix (u32 words).
    pub fn widest(&self) -> (usize, usize) {
        let mut act = self.input.size();
        let mut cols = 0;
        for s in &self.steps {
            match s {
                IntStep::Layer(l) => {
                    act = act.max(l.positions() * l.outputs);
                    cols = cols.max(l.positions() * l.kp / 4);
                }
                IntStep::MaxPool { input, .. } => act = act.max(input.size()),
            }
        }
        (act, cols)
    }

    /// Bytes the integer model's parameters take (int8 weights, i32 bias and multiplier, u8 shift).
    pub fn bytes(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                IntStep::Layer(l) => l.outputs * l.kdim + l.outputs * 4 + l.mult.len() * 5,
                IntStep::MaxPool { .. } => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_is_within_one_part_in_2_30() {
        for &m in &[1e-9, 3.7e-5, 0.0041, 0.25, 0.5, 0.9999999, 1.0, 7.3, 1.5e8] {
            let (q, s) = fixed_point(m).unwrap();
            assert!((1 << 30..1u64 << 31).contains(&(q as u64)), "{m}: {q}");
            let back = q as f64 / 2f64.powi(s as i32);
            assert!(((back - m) / m).abs() < 1e-9, "{m} -> {back}");
        }
        assert!(fixed_point(0.0).is_none() && fixed_point(f64::NAN).is_none() && fixed_point(1e30).is_none());
    }

    #[test]
    fn requantize_rounds_half_away_from_zero() {
        let (m, s) = fixed_point(0.5).unwrap();
        assert_eq!([3, -3, 4, -4, 5, 0].map(|t| requantize(t, m, s)), [2, -2, 2, -2, 3, 0]);
        let (m, s) = fixed_point(0.1).unwrap();
        for t in [-1_000_000, -17, -4, 14, 16, 2_000_000_001] {
            let want = (t as f64 * 0.1).abs().round() * (t as f64).signum();
            assert_eq!(requantize(t, m, s) as f64, want.clamp(-(1 << 30) as f64, (1 << 30) as f64), "{t}");
        }
    }
}
