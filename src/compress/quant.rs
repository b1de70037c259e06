//! Quantizers as data, and the error metrics that judge them. No backend here: a `QuantFn` says
//! how each value of one tensor maps to a stored code and back, both trainers apply it as a weight
//! transform or an activation fake-quantization (shaders/quant.wgsl and its CPU twins in
//! reference::ops follow `QuantFn::fake` operation for operation), and the model file stores the
//! codes. Exact zeros stay exact zeros under every quantizer (pruned weights stay pruned).
//!
//! Affine quantizers (uniform, fixed point, binary, ternary), per tensor or per output channel c:
//!   code q = clamp(floor(w·inv_step_c + zero_c + 0.5), qmin, qmax),   value = (q − zero_c)·step_c
//! `inv_step` decides and `step` reconstructs; they differ only for ternary weights (TWN: the
//! threshold Δ and the level α are independent). Level quantizers (k-means codebooks, powers of
//! two) map to the nearest of a sorted list of levels. `F16` rounds to IEEE half precision.

use serde::{Deserialize, Serialize};

/// How one tensor is quantized. Built by `Scheme::fit` from the values it will quantize.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QuantFn {
    /// Per channel (one entry: the whole tensor; else one per output column) `[inv_step, step, zero]`.
    Affine { qmin: i32, qmax: i32, channels: Vec<[f32; 3]> },
    /// Nearest of these sorted levels (ties to the lower one).
    Levels { levels: Vec<f32> },
    /// IEEE binary16.
    F16,
    /// Activations only: an affine quantizer with these codes whose range is fitted to each batch
    /// it quantizes (dynamic quantization: min-max of the batch, per tensor; symmetric when qmin <
    /// 0). It acts through `fake`, `codes` and `inside_mask`, which see the whole batch.
    Dynamic { qmin: i32, qmax: i32 },
}

impl QuantFn {
    /// The channel of element `i` of a tensor with `cols` columns.
    pub fn channel(&self, i: usize, cols: usize) -> usize {
        match self {
            QuantFn::Affine { channels, .. } if channels.len() > 1 => i % cols,
            _ => 0,
        }
    }

    /// The integer code of `w` (affine: q; levels: the level's index; f16: the half's bits).
    pub fn code(&self, w: f32, channel: usize) -> i32 {
        match self {
            QuantFn::Affine { qmin, qmax, channels } => {
                let [inv, _, zero] = channels[channel];
                let x = w * inv + zero;
                ((x + 0.5).floor() as i32).clamp(*qmin, *qmax)
            }
            QuantFn::Levels { levels } => {
                let mut k = 0;
                while k + 1 < levels.len() && w > (levels[k] + levels[k + 1]) * 0.5 {
                    k += 1;
                }
                k as i32
            }
            // Saturates: a value past the half range is stored as ±65504, not as infinity.
            QuantFn::F16 => half::f16::from_f32(w.clamp(-65504.0, 65504.0)).to_bits() as i32,
            // One value alone has no batch range: see `resolve`.
            QuantFn::Dynamic { .. } => 0,
        }
    }

    /// The value code `q` of channel `channel` stands for.
    pub fn value(&self, q: i32, channel: usize) -> f32 {
        match self {
            QuantFn::Affine { channels, .. } => {
                let [_, step, zero] = channels[channel];
                (q as f32 - zero) * step
            }
            QuantFn::Levels { levels } => levels[q as usize],
            QuantFn::F16 => half::f16::from_bits(q as u16).to_f32(),
            QuantFn::Dynamic { .. } => 0.0,
        }
    }

    /// Quantize-dequantize one value (0 stays 0).
    pub fn fake_one(&self, w: f32, channel: usize) -> f32 {
        if w == 0.0 {
            return 0.0;
        }
        self.value(self.code(w, channel), channel)
    }

    /// Whether `w` lies inside the quantizer's range (its straight-through gradient passes).
    pub fn inside(&self, w: f32, channel: usize) -> bool {
        match self {
            QuantFn::Affine { qmin, qmax, channels } => {
                let [inv, _, zero] = channels[channel];
                let x = w * inv + zero + 0.5;
                x >= *qmin as f32 && x < *qmax as f32 + 1.0
            }
            QuantFn::Levels { levels } => w >= levels[0] && w <= levels[levels.len() - 1],
            QuantFn::F16 => w.abs() <= 65504.0,
            QuantFn::Dynamic { .. } => true,
        }
    }

    /// The quantizer that applies to the batch `w`: a dynamic one's affine fit to the batch's
    /// min-max (act_range in shaders/quant.wgsl), any other itself.
    pub fn resolve(&self, w: &[f32]) -> QuantFn {
        match self {
            QuantFn::Dynamic { qmin, qmax } => {
                let symmetric = *qmin < 0;
                let bits = (u32::BITS - (*qmax as u32).leading_zeros()) + symmetric as u32;
                let kind = if symmetric { SchemeKind::Symmetric } else { SchemeKind::Asymmetric };
                Scheme { kind, bits, per_channel: false }.fit_ranges(&[min_max(w)])
            }
            q => q.clone(),
        }
    }

    /// Fake-quantizes a tensor of `cols` columns (the CPU path; `reference::ops::fake_quant_reference`).
    pub fn fake(&self, w: &[f32], cols: usize) -> Vec<f32> {
        if let QuantFn::Dynamic { .. } = self {
            return self.resolve(w).fake(w, cols);
        }
        w.iter().enumerate().map(|(i, &v)| self.fake_one(v, self.channel(i, cols))).collect()
    }

    /// Codes of a tensor of `cols` columns.
    pub fn codes(&self, w: &[f32], cols: usize) -> Vec<i32> {
        if let QuantFn::Dynamic { .. } = self {
            return self.resolve(w).codes(w, cols);
        }
        w.iter().enumerate().map(|(i, &v)| self.code(v, self.channel(i, cols))).collect()
    }

    /// 1.0 where the straight-through gradient passes, 0.0 where the value was clipped.
    pub fn inside_mask(&self, w: &[f32], cols: usize) -> Vec<f32> {
        if let QuantFn::Dynamic { .. } = self {
            return self.resolve(w).inside_mask(w, cols);
        }
        w.iter().enumerate().map(|(i, &v)| if self.inside(v, self.channel(i, cols)) { 1.0 } else { 0.0 }).collect()
    }

    /// Distinct stored values (codes) the quantizer can produce: what its bits must address.
    pub fn levels(&self) -> usize {
        match self {
            QuantFn::Affine { qmin, qmax, .. } => (qmax - qmin + 1) as usize,
            QuantFn::Levels { levels } => levels.len(),
            QuantFn::F16 => 1 << 16,
            QuantFn::Dynamic { qmin, qmax } => (qmax - qmin + 1) as usize,
        }
    }

    /// Bits per stored code.
    pub fn bits(&self) -> u32 {
        (usize::BITS - (self.levels() - 1).leading_zeros()).max(1)
    }

    /// Whether LSQ can learn this quantizer's steps: affine, every channel's `inv_step` the
    /// reciprocal of its `step` (not binary or ternary, whose threshold and level are apart).
    pub fn learnable(&self) -> bool {
        match self {
            QuantFn::Affine { channels, .. } => channels.iter().all(|[inv, step, _]| (inv * step - 1.0).abs() <= 1e-3),
            _ => false,
        }
    }

    /// LSQ's gradient scale g = 1/√(N·Q_P) (Esser et al. 2020) for a step shared by `n` values
    /// (a channel's weights, or an activation's features per sample); Q_P = qmax, the largest code.
    pub fn lsq_grad_scale(&self, n: usize) -> f32 {
        let qp = match self {
            QuantFn::Affine { qmax, .. } => (*qmax).max(1) as f64,
            _ => 1.0,
        };
        (1.0 / (n.max(1) as f64 * qp).sqrt()) as f32
    }

    /// An affine quantizer's table, [inv_step, step, zero] per channel, flat (shaders/quant.wgsl's
    /// `table`); empty for the others.
    pub fn table(&self) -> Vec<f32> {
        match self {
            QuantFn::Affine { channels, .. } => channels.iter().flatten().copied().collect(),
            _ => vec![],
        }
    }

    /// The same quantizer with an affine table read back from a trainer (learned steps).
    pub fn with_table(&self, table: &[f32]) -> QuantFn {
        match self {
            QuantFn::Affine { qmin, qmax, channels } if table.len() == 3 * channels.len() => {
                QuantFn::Affine { qmin: *qmin, qmax: *qmax, channels: table.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect() }
            }
            q => q.clone(),
        }
    }

    /// The levels of channel `channel` (for drawing them over a histogram); empty for f16.
    pub fn level_values(&self, channel: usize) -> Vec<f32> {
        match self {
            QuantFn::Affine { qmin, qmax, .. } => (*qmin..=*qmax).map(|q| self.value(q, channel)).collect(),
            QuantFn::Levels { levels } => levels.clone(),
            QuantFn::F16 | QuantFn::Dynamic { .. } => vec![],
        }
    }
}

/// A weight or activation quantization scheme as a recipe names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemeKind {
    /// Scale and zero point over [min, max] (0 included): 2^bits levels.
    Asymmetric,
    /// Scale over [−max|w|, max|w|], zero point 0: 2^bits − 1 levels (narrow range).
    Symmetric,
    /// Qm.n: a power-of-two step, the integer bits m chosen from the range.
    FixedPoint,
    /// sign(w) × mean |w| (per channel when per-channel).
    Binary,
    /// TWN: 0 below Δ = 0.7·mean |w|, else ± the mean |w| above Δ.
    Ternary,
    /// ±2^k levels (and 0): logarithmic quantization.
    PowerOfTwo,
    /// Half precision storage.
    F16,
    /// k-means weight sharing (Deep Compression): 2^bits centroids per tensor, initialised
    /// linearly over [min, max], Lloyd iterations; exact zeros (pruned) join no cluster.
    Kmeans,
}

/// A scheme with its width and granularity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scheme {
    pub kind: SchemeKind,
    pub bits: u32,
    pub per_channel: bool,
}

impl Scheme {
    /// The quantizer for `w` ([rows, cols]; per channel = per column). Values are the tensor's own
    /// (weights) or calibration samples reduced to a range (activations: see `fit_range`).
    pub fn fit(&self, w: &[f32], cols: usize) -> QuantFn {
        let cols = cols.max(1);
        let channel_values = |c: usize| -> Vec<f32> {
            if self.per_channel {
                w.iter().skip(c).step_by(cols).copied().collect()
            } else {
                w.to_vec()
            }
        };
        let channels = if self.per_channel { cols } else { 1 };
        let bits = self.bits.clamp(1, 16) as i32;
        match self.kind {
            SchemeKind::Asymmetric | SchemeKind::Symmetric | SchemeKind::FixedPoint => {
                let ranges: Vec<(f32, f32)> = (0..channels).map(|c| min_max(&channel_values(c))).collect();
                self.fit_ranges(&ranges)
            }
            SchemeKind::Binary => {
                let channels = (0..channels)
                    .map(|c| {
                        let a = mean_abs(&channel_values(c), 0.0).max(f32::MIN_POSITIVE);
                        [1.0 / a, 2.0 * a, 0.5]
                    })
                    .collect();
                QuantFn::Affine { qmin: 0, qmax: 1, channels }
            }
            SchemeKind::Ternary => {
                let channels = (0..channels)
                    .map(|c| {
                        let v = channel_values(c);
                        let delta = (0.7 * mean_abs(&v, 0.0)).max(f32::MIN_POSITIVE);
                        let alpha = mean_abs(&v, delta).max(delta);
                        [1.0 / (2.0 * delta), alpha, 0.0]
                    })
                    .collect();
                QuantFn::Affine { qmin: -1, qmax: 1, channels }
            }
            SchemeKind::PowerOfTwo => {
                // One sign bit, 0, and 2^(bits-1) − 1 magnitudes 2^(e−k) below the largest power
                // of two that covers max|w|.
                let (lo, hi) = min_max(w);
                let top = lo.abs().max(hi.abs()).max(f32::MIN_POSITIVE).log2().round() as i32;
                let count = ((1i32 << (bits - 1)) - 1).max(1);
                let mags: Vec<f32> = (0..count).map(|k| 2f32.powi(top - k)).collect();
                let mut levels: Vec<f32> = mags.iter().map(|m| -m).chain([0.0]).chain(mags.iter().copied()).collect();
                levels.sort_by(f32::total_cmp);
                QuantFn::Levels { levels }
            }
            SchemeKind::F16 => QuantFn::F16,
            SchemeKind::Kmeans => QuantFn::Levels { levels: kmeans(w, 1usize << bits.clamp(1, 8)) },
        }
    }

    /// The affine quantizer for given per-channel (min, max) ranges (one range: per tensor).
    /// Every range is widened to include 0, so 0 is exactly representable.
    pub fn fit_ranges(&self, ranges: &[(f32, f32)]) -> QuantFn {
        let bits = self.bits.clamp(2, 16) as i32;
        let levels = (1i64 << bits) - 1;
        let mut qmin = 0;
        let mut qmax = levels as i32;
        let channels = ranges
            .iter()
            .map(|&(lo, hi)| {
                let (lo, hi) = (lo.min(0.0), hi.max(0.0));
                match self.kind {
                    SchemeKind::Symmetric => {
                        qmax = (1 << (bits - 1)) - 1;
                        qmin = -qmax;
                        let step = nonzero(lo.abs().max(hi) / qmax as f32);
                        [1.0 / step, step, 0.0]
                    }
                    SchemeKind::FixedPoint => {
                        qmax = (1 << (bits - 1)) - 1;
                        qmin = -(1 << (bits - 1));
                        // The fewest integer bits m with max|w| < 2^m; n = bits − 1 − m fraction bits.
                        let m = lo.abs().max(hi).max(f32::MIN_POSITIVE).log2().floor() as i32 + 1;
                        // Never subnormal (an all-zero channel would get 2^-132): the model
                        // file reads only normal steps (compress::encoding::decode_quantized).
                        let step = 2f32.powi((m - (bits - 1)).max(-126));
                        [1.0 / step, step, 0.0]
                    }
                    _ => {
                        let step = nonzero((hi - lo) / levels as f32);
                        let zero = (-lo / step).round().clamp(0.0, levels as f32);
                        [1.0 / step, step, zero]
                    }
                }
            })
            .collect();
        QuantFn::Affine { qmin, qmax, channels }
    }
}

/// `k` centroids of the nonzero values of `w` (sorted, distinct): linear initialisation over
/// [min, max] (Han et al. 2016 found it best for the large weights), then Lloyd iterations until
/// no assignment changes (at most 100). Empty clusters are dropped. All-zero input: one level, 0.
pub fn kmeans(w: &[f32], k: usize) -> Vec<f32> {
    let values: Vec<f32> = w.iter().copied().filter(|&v| v != 0.0).collect();
    if values.is_empty() {
        return vec![0.0];
    }
    let (lo, hi) = min_max(&values);
    let k = k.max(1);
    let mut centroids: Vec<f32> = (0..k).map(|i| if k == 1 { (lo + hi) * 0.5 } else { lo + (hi - lo) * i as f32 / (k - 1) as f32 }).collect();
    let nearest = |c: &[f32], v: f32| {
        // c is sorted: the nearest by the same rule as QuantFn::Levels (ties to the lower).
        let mut j = 0;
        while j + 1 < c.len() && v > (c[j] + c[j + 1]) * 0.5 {
            j += 1;
        }
        j
    };
    let mut assign: Vec<usize> = vec![usize::MAX; values.len()];
    for _ in 0..100 {
        let mut changed = false;
        for (a, &v) in assign.iter_mut().zip(&values) {
            let j = nearest(&centroids, v);
            changed |= *a != j;
            *a = j;
        }
        let mut sums = vec![(0.0f64, 0usize); centroids.len()];
        for (&a, &v) in assign.iter().zip(&values) {
            sums[a].0 += v as f64;
            sums[a].1 += 1;
        }
        // Drop empty clusters, move each centroid to its members' mean, keep the order.
        let kept: Vec<(usize, f32)> = sums.iter().enumerate().filter(|(_, s)| s.1 > 0).map(|(j, s)| (j, (s.0 / s.1 as f64) as f32)).collect();
        if kept.len() != centroids.len() {
            let remap: Vec<usize> = (0..centroids.len()).map(|j| kept.iter().position(|(k, _)| *k == j).unwrap_or(0)).collect();
            assign.iter_mut().for_each(|a| *a = remap[*a]);
            changed = true;
        }
        centroids = kept.into_iter().map(|(_, c)| c).collect();
        centroids.sort_by(f32::total_cmp);
        centroids.dedup();
        if !changed {
            break;
        }
    }
    centroids
}

/// A step of 0 (an all-zero range) would divide by zero; any step represents all zeros exactly.
fn nonzero(step: f32) -> f32 {
    if step > 0.0 && step.is_finite() {
        step
    } else {
        1.0
    }
}

/// (min, max) of the values (0, 0 for none).
pub fn min_max(v: &[f32]) -> (f32, f32) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// Mean |v| over the values with |v| > `above` and not exactly zero (pruned weights join nothing).
fn mean_abs(v: &[f32], above: f32) -> f32 {
    let (s, n) = v.iter().filter(|x| x.abs() > above && **x != 0.0).fold((0.0f64, 0usize), |(s, n), x| (s + x.abs() as f64, n + 1));
    if n == 0 {
        0.0
    } else {
        (s / n as f64) as f32
    }
}

/// How an activation's static range is calibrated from sample batches.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Calibration {
    /// The smallest and largest value seen.
    Minmax,
    /// None ahead of time: each batch's own min-max at inference (dynamic quantization).
    Dynamic,
    /// Per batch min and max, averaged with momentum 0.9 (TensorFlow's moving-average min-max).
    MovingAverage,
    /// The 0.01 and 99.99 percentiles of all values seen.
    Percentile,
    /// The clipping range (a fraction of min-max) that minimises the quantization MSE.
    Mse,
}

/// The (min, max) range of an activation from its sampled values, batch by batch.
pub fn calibrate(method: Calibration, batches: &[Vec<f32>], scheme: &Scheme) -> (f32, f32) {
    let all: Vec<f32> = batches.iter().flatten().copied().collect();
    match method {
        Calibration::Minmax | Calibration::Dynamic => min_max(&all),
        Calibration::MovingAverage => {
            let mut range: Option<(f32, f32)> = None;
            for b in batches.iter().filter(|b| !b.is_empty()) {
                let (lo, hi) = min_max(b);
                range = Some(match range {
                    None => (lo, hi),
                    Some((l, h)) => (0.9 * l + 0.1 * lo, 0.9 * h + 0.1 * hi),
                });
            }
            range.unwrap_or((0.0, 0.0))
        }
        Calibration::Percentile => {
            if all.is_empty() {
                return (0.0, 0.0);
            }
            let mut s = all;
            s.sort_by(f32::total_cmp);
            let at = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
            (at(0.0001), at(0.9999))
        }
        Calibration::Mse => {
            let (lo, hi) = min_max(&all);
            let mut best = ((lo, hi), f64::INFINITY);
            for k in 0..=40 {
                let r = 1.0 - k as f32 * 0.02; // 100% down to 20% of the range
                let range = (lo * r, hi * r);
                let q = scheme.fit_ranges(&[range]);
                let e = mse(&all, &q.fake(&all, 1));
                if e < best.1 {
                    best = (range, e);
                }
            }
            best.0
        }
    }
}

/// Error of a quantized tensor `q` against the original `x` (the metrics, per tensor).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct QuantError {
    pub mean_abs: f32,
    pub max_abs: f32,
    /// |x − q| / |x| over the nonzero x.
    pub mean_rel: f32,
    pub max_rel: f32,
    pub mse: f32,
    /// 10·log10(Σx² / Σ(x − q)²); infinite when exact.
    pub sqnr_db: f32,
    /// 10·log10(max|x|² / MSE); infinite when exact.
    pub psnr_db: f32,
}

pub fn mse(x: &[f32], q: &[f32]) -> f64 {
    x.iter().zip(q).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64
}

impl QuantError {
    pub fn of(x: &[f32], q: &[f32]) -> QuantError {
        let n = x.len().max(1) as f64;
        let (mut abs_sum, mut max_abs, mut rel_sum, mut max_rel, mut rel_n, mut sq_err, mut sq_sig, mut peak) = (0.0f64, 0.0f32, 0.0f64, 0.0f32, 0usize, 0.0f64, 0.0f64, 0.0f32);
        for (&a, &b) in x.iter().zip(q) {
            let e = (a - b).abs();
            abs_sum += e as f64;
            max_abs = max_abs.max(e);
            if a != 0.0 {
                let r = e / a.abs();
                rel_sum += r as f64;
                max_rel = max_rel.max(r);
                rel_n += 1;
            }
            sq_err += (e as f64).powi(2);
            sq_sig += (a as f64).powi(2);
            peak = peak.max(a.abs());
        }
        let mse = sq_err / n;
        let db = |num: f64, den: f64| if den == 0.0 { f32::INFINITY } else { (10.0 * (num / den).log10()) as f32 };
        QuantError {
            mean_abs: (abs_sum / n) as f32,
            max_abs,
            mean_rel: if rel_n == 0 { 0.0 } else { (rel_sum / rel_n as f64) as f32 },
            max_rel,
            mse: mse as f32,
            sqnr_db: db(sq_sig, sq_err),
            psnr_db: db((peak as f64).powi(2), mse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn scheme(kind: SchemeKind, bits: u32, per_channel: bool) -> Scheme {
        Scheme { kind, bits, per_channel }
    }

    fn random(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
        let mut r = Rng::new(seed, 9);
        (0..n).map(|_| r.uniform(lo, hi)).collect()
    }

    #[test]
    fn uniform_error_is_at_most_half_a_step_and_levels_are_bounded() {
        for (kind, bits) in [(SchemeKind::Asymmetric, 8), (SchemeKind::Asymmetric, 3), (SchemeKind::Symmetric, 4), (SchemeKind::Symmetric, 2), (SchemeKind::FixedPoint, 8)] {
            for per_channel in [false, true] {
                let w = random(7 * 13, bits as u64, -0.7, 1.3);
                let q = scheme(kind, bits, per_channel).fit(&w, 13);
                let QuantFn::Affine { qmin, qmax, channels } = &q else { panic!("affine") };
                assert!(qmax - qmin < 1 << bits, "{kind:?}/{bits}: {qmin}..{qmax}");
                let f = q.fake(&w, 13);
                for (i, (&a, &b)) in w.iter().zip(&f).enumerate() {
                    let step = channels[if per_channel { i % 13 } else { 0 }][1];
                    assert!((a - b).abs() <= step * 0.5 + 1e-6, "{kind:?}/{bits} pc={per_channel}: {a} -> {b}, step {step}");
                }
                let distinct: std::collections::BTreeSet<i32> = q.codes(&w, 13).into_iter().collect();
                assert!(distinct.iter().all(|c| (*qmin..=*qmax).contains(c)));
            }
        }
    }

    #[test]
    fn per_channel_beats_per_tensor_when_channels_differ_in_scale() {
        // Column c has range ~10^(c-2): one scale for all loses the small columns.
        let mut w = random(50 * 5, 3, -1.0, 1.0);
        for (i, v) in w.iter_mut().enumerate() {
            *v *= 10f32.powi(i as i32 % 5 - 2);
        }
        let pt = QuantError::of(&w, &scheme(SchemeKind::Symmetric, 8, false).fit(&w, 5).fake(&w, 5));
        let pc = QuantError::of(&w, &scheme(SchemeKind::Symmetric, 8, true).fit(&w, 5).fake(&w, 5));
        assert!(pc.mean_rel < pt.mean_rel / 10.0, "per channel {pc:?} vs per tensor {pt:?}");
    }

    #[test]
    fn degenerate_tensors_quantize_exactly_or_safely() {
        for kind in [SchemeKind::Asymmetric, SchemeKind::Symmetric, SchemeKind::FixedPoint, SchemeKind::Binary, SchemeKind::Ternary, SchemeKind::PowerOfTwo, SchemeKind::F16, SchemeKind::Kmeans] {
            let s = scheme(kind, 4, true);
            // All zero: stays zero.
            let z = vec![0.0; 12];
            assert_eq!(s.fit(&z, 3).fake(&z, 3), z, "{kind:?} all-zero");
            // All equal, negative only, and one huge outlier: finite, sign kept.
            for w in [vec![0.37f32; 12], random(12, 5, -3.0, -0.5), { let mut v = random(12, 6, -0.1, 0.1); v[4] = 1e6; v }] {
                let f = s.fit(&w, 3).fake(&w, 3);
                assert!(f.iter().all(|v| v.is_finite()), "{kind:?} {w:?} -> {f:?}");
                // k-means levels are cluster means: a small weight may share a cluster across 0.
                if kind != SchemeKind::Kmeans {
                    assert!(w.iter().zip(&f).all(|(a, b)| *b == 0.0 || a.signum() == b.signum()), "{kind:?}: sign flipped {w:?} -> {f:?}");
                }
            }
        }
        // All equal and nonzero: the asymmetric grid hits it exactly at the range's end.
        let w = vec![0.37f32; 6];
        assert_eq!(scheme(SchemeKind::Asymmetric, 8, false).fit(&w, 1).fake(&w, 1), w);
    }

    #[test]
    fn binary_and_ternary_follow_their_definitions() {
        let w = vec![0.5f32, -0.1, 0.2, -0.8, 0.0, 0.05];
        let b = scheme(SchemeKind::Binary, 1, false).fit(&w, 1).fake(&w, 1);
        let a = (0.5 + 0.1 + 0.2 + 0.8 + 0.05) / 5.0;
        for (x, y) in w.iter().zip(&b) {
            let want = if *x == 0.0 { 0.0 } else { a * x.signum() };
            assert!((y - want).abs() < 1e-6, "binary {x} -> {y}, want {want}");
        }
        let t = scheme(SchemeKind::Ternary, 2, false).fit(&w, 1).fake(&w, 1);
        let delta = 0.7 * a; // 0.231
        let alpha = (0.5 + 0.8) / 2.0; // the |w| above delta
        for (x, y) in w.iter().zip(&t) {
            let want = if x.abs() > delta { alpha * x.signum() } else { 0.0 };
            assert!((y - want).abs() < 1e-6, "ternary {x} -> {y}, want {want}");
        }
    }

    #[test]
    fn fixed_point_steps_are_powers_of_two_and_power_of_two_levels_are_too() {
        let w = random(64, 8, -2.9, 2.9);
        let QuantFn::Affine { channels, qmin, qmax } = scheme(SchemeKind::FixedPoint, 8, false).fit(&w, 1) else { panic!() };
        assert_eq!((qmin, qmax), (-128, 127));
        assert_eq!(channels[0][1], 2f32.powi(-5), "max|w| < 4 needs 2 integer bits + sign: Q2.5");
        let p = scheme(SchemeKind::PowerOfTwo, 4, false).fit(&w, 1);
        for v in p.fake(&w, 1) {
            assert!(v == 0.0 || v.abs().log2().fract() == 0.0, "{v} is not a power of two");
        }
    }

    #[test]
    fn f16_rounds_to_half_precision_and_inside_marks_clipped_values() {
        let w = vec![1.0f32 + 1e-4, 3.14159, -70000.0];
        let f = QuantFn::F16.fake(&w, 1);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[1], half::f16::from_f32(3.14159).to_f32());
        let q = scheme(SchemeKind::Symmetric, 8, false).fit_ranges(&[(-1.0, 1.0)]);
        assert_eq!(q.inside_mask(&[0.5, -0.99, 1.5, -2.0], 1), vec![1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn kmeans_puts_each_weight_at_its_nearest_centroid_which_is_its_members_mean() {
        let mut w = random(3000, 21, -1.0, 1.0);
        w.iter_mut().step_by(3).for_each(|v| *v = 0.0); // pruned
        let q = scheme(SchemeKind::Kmeans, 4, false).fit(&w, 1);
        let QuantFn::Levels { levels } = &q else { panic!("levels") };
        assert!(levels.len() <= 16 && levels.len() >= 14, "{levels:?}");
        let f = q.fake(&w, 1);
        let mut members = vec![(0.0f64, 0usize); levels.len()];
        for (&x, &y) in w.iter().zip(&f) {
            if x == 0.0 {
                assert_eq!(y, 0.0, "a pruned weight moved");
                continue;
            }
            let best = levels.iter().map(|c| (c - x).abs()).fold(f32::INFINITY, f32::min);
            assert!((y - x).abs() <= best + 1e-7, "{x} went to {y}, a centroid is {best} away");
            let j = levels.iter().position(|&c| c == y).unwrap();
            members[j].0 += x as f64;
            members[j].1 += 1;
        }
        for (c, (sum, n)) in levels.iter().zip(members) {
            assert!(n > 0 && ((sum / n as f64) as f32 - c).abs() < 1e-5, "centroid {c} vs its {n} members' mean {}", sum / n as f64);
        }
        assert_eq!(kmeans(&[0.0; 5], 4), vec![0.0]);
        assert_eq!(kmeans(&[0.5; 5], 4), vec![0.5]);
    }

    #[test]
    fn error_metrics_match_hand_computed_values() {
        let x = [1.0f32, -2.0, 0.0, 4.0];
        let q = [1.0f32, -1.5, 0.5, 4.0];
        let e = QuantError::of(&x, &q);
        assert!((e.mean_abs - 0.25).abs() < 1e-7 && e.max_abs == 0.5);
        assert!((e.mse - 0.125).abs() < 1e-7);
        assert!((e.mean_rel - 0.25 / 3.0).abs() < 1e-6 && (e.max_rel - 0.25).abs() < 1e-7);
        assert!((e.sqnr_db - 10.0 * (21.0f32 / 0.5).log10()).abs() < 1e-4);
        assert!((e.psnr_db - 10.0 * (16.0f32 / 0.125).log10()).abs() < 1e-4);
        assert_eq!(QuantError::of(&x, &x).sqnr_db, f32::INFINITY);
    }

    #[test]
    fn calibration_methods_clip_outliers_differently() {
        let mut batch = random(10_000, 11, 0.0, 1.0);
        batch[17] = 50.0;
        let s = scheme(SchemeKind::Asymmetric, 8, false);
        let b = vec![batch.clone()];
        assert_eq!(calibrate(Calibration::Minmax, &b, &s).1, 50.0);
        assert!(calibrate(Calibration::Percentile, &b, &s).1 < 1.01);
        let m = calibrate(Calibration::Mse, &b, &s).1;
        assert!(m < 50.0, "MSE clipping keeps the outlier's range: {m}");
        let two = vec![vec![0.0, 1.0], vec![0.0, 2.0]];
        assert!((calibrate(Calibration::MovingAverage, &two, &s).1 - 1.1).abs() < 1e-6);
    }
}
