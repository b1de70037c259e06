//! The one registry of tensor encodings: how a tensor's values become stored bytes and back.
//! Stage reports measure sizes with it and the model file (src/export.rs) writes with it, so a
//! size in a report is the length of bytes the file would hold.

use super::quant::QuantFn;
use super::sparse;

/// A way to store one tensor. Every variant round-trips exactly (decode(encode(w)) == w).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Dense little-endian f32.
    F32,
    /// u32 length, a bit per value (kept or zero), the kept values as f32 (compress::sparse).
    Bitmask,
    /// Deep Compression's relative indexing: `bits`-bit gaps and f32 values (compress::sparse).
    Relative { bits: u32 },
}

impl Encoding {
    /// The name the model file's header stores.
    pub fn name(&self) -> String {
        match self {
            Encoding::F32 => "f32".into(),
            Encoding::Bitmask => "bitmask".into(),
            Encoding::Relative { bits } => format!("relative{bits}"),
        }
    }

    /// The encoding a header names, if this build knows it.
    pub fn parse(name: &str) -> Option<Encoding> {
        match name {
            "f32" => Some(Encoding::F32),
            "bitmask" => Some(Encoding::Bitmask),
            _ => {
                let bits: u32 = name.strip_prefix("relative")?.parse().ok()?;
                (1..=16).contains(&bits).then_some(Encoding::Relative { bits })
            }
        }
    }

    pub fn encode(&self, w: &[f32]) -> Vec<u8> {
        match self {
            Encoding::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Encoding::Bitmask => sparse::encode_bitmask(w),
            Encoding::Relative { bits } => sparse::encode_relative(w, *bits),
        }
    }

    /// The `n` values stored in `bytes`, or `None` when the bytes do not describe exactly `n`
    /// values in this encoding (never a panic, never an allocation beyond what `n` allows).
    pub fn decode(&self, bytes: &[u8], n: usize) -> Option<Vec<f32>> {
        let len = |k: usize| bytes.get(k..k + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let values = match self {
            Encoding::F32 => (bytes.len() == 4 * n).then(|| bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())?,
            Encoding::Bitmask => {
                (len(0)? == n).then_some(())?;
                sparse::decode_bitmask(bytes)?
            }
            Encoding::Relative { bits } => {
                // Each entry is a kept value or a filler bridging a gap of 2^bits: at most n + n/2^bits + 1.
                (len(0)? == n && len(4)? <= n + (n >> bits) + 1).then_some(())?;
                sparse::decode_relative(bytes, *bits)?
            }
        };
        (values.len() == n).then_some(values)
    }

    /// The smallest of `candidates` for `w`, with its bytes.
    pub fn smallest(w: &[f32], candidates: &[Encoding]) -> (Encoding, Vec<u8>) {
        candidates.iter().map(|e| (*e, e.encode(w))).min_by_key(|(_, b)| b.len()).expect("at least one candidate")
    }
}

/// Packed quantization codes of one tensor (what a quantized layer stores): u32 n, u8 kind
/// (0 affine, 1 levels, 2 f16), u8 bits per code, u8 zero-mask flag, u8 0, u32 entries; affine:
/// i32 qmin, then per channel f32 step and f32 zero; levels: the f32 levels; then, with the flag,
/// a bitmask of the exact zeros the quantizer cannot represent (binary weights that were pruned);
/// then the codes (affine: q − qmin; levels: the index; f16: the half's bits), `bits` each, packed
/// LSB first. Decoding gives exactly `q.fake(w, cols)`.
pub fn encode_quantized(q: &QuantFn, w: &[f32], cols: usize) -> Vec<u8> {
    let codes = q.codes(w, cols);
    let bits = q.bits();
    let (kind, qmin, table): (u8, i32, Vec<f32>) = match q {
        QuantFn::Affine { qmin, channels, .. } => (0, *qmin, channels.iter().flat_map(|[_, step, zero]| [*step, *zero]).collect()),
        QuantFn::Levels { levels } => (1, 0, levels.clone()),
        QuantFn::F16 => (2, 0, vec![]),
    };
    let channel = |i: usize| if matches!(q, QuantFn::Affine { channels, .. } if channels.len() > 1) { i % cols.max(1) } else { 0 };
    // Zeros whose code would decode to something else need the mask.
    let lost_zero = w.iter().enumerate().any(|(i, &v)| v == 0.0 && q.value(codes[i], channel(i)) != 0.0);
    let mut out = (w.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&[kind, bits as u8, lost_zero as u8, 0]);
    let entries = match q {
        QuantFn::Affine { channels, .. } => channels.len(),
        _ => table.len(),
    };
    out.extend_from_slice(&(entries as u32).to_le_bytes());
    if kind == 0 {
        out.extend_from_slice(&qmin.to_le_bytes());
    }
    table.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    if lost_zero {
        let mut mask = vec![0u8; w.len().div_ceil(8)];
        for (i, &v) in w.iter().enumerate() {
            if v == 0.0 {
                mask[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&mask);
    }
    let mut packed = vec![0u8; (w.len() * bits as usize).div_ceil(8)];
    for (k, &c) in codes.iter().enumerate() {
        let c = (c - qmin) as u32;
        for b in 0..bits as usize {
            if c >> b & 1 == 1 {
                let bit = k * bits as usize + b;
                packed[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    out.extend_from_slice(&packed);
    out
}

/// The `n` values of an `encode_quantized` tensor of `cols` columns, or `None` when the bytes do
/// not describe exactly that.
pub fn decode_quantized(bytes: &[u8], n: usize, cols: usize) -> Option<Vec<f32>> {
    let u32_at = |k: usize| bytes.get(k..k + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let f32_at = |k: usize| u32_at(k).map(f32::from_bits);
    if u32_at(0)? as usize != n {
        return None;
    }
    let (kind, bits, lost_zero) = (*bytes.get(4)?, *bytes.get(5)? as usize, *bytes.get(6)? == 1);
    let entries = u32_at(8)? as usize;
    if !(1..=16).contains(&bits) || entries > n.max(1).max(1 << 16) {
        return None;
    }
    let mut at = 12;
    let q = match kind {
        0 => {
            let qmin = u32_at(at)? as i32;
            at += 4;
            if entries != 1 && entries != cols {
                return None;
            }
            let channels = (0..entries).map(|c| Some([1.0, f32_at(at + 8 * c)?, f32_at(at + 8 * c + 4)?])).collect::<Option<Vec<_>>>()?;
            at += 8 * entries;
            QuantFn::Affine { qmin, qmax: qmin.checked_add((1i64 << bits).min(i32::MAX as i64) as i32 - 1)?, channels }
        }
        1 => {
            let levels = (0..entries).map(|k| f32_at(at + 4 * k)).collect::<Option<Vec<_>>>()?;
            at += 4 * entries;
            if levels.is_empty() || levels.len() > 1 << bits {
                return None;
            }
            QuantFn::Levels { levels }
        }
        2 => QuantFn::F16,
        _ => return None,
    };
    let zeros = if lost_zero {
        let m = bytes.get(at..at + n.div_ceil(8))?;
        at += n.div_ceil(8);
        Some(m)
    } else {
        None
    };
    let packed = bytes.get(at..)?;
    if packed.len() != (n * bits).div_ceil(8) {
        return None;
    }
    let qmin = if let QuantFn::Affine { qmin, .. } = &q { *qmin } else { 0 };
    let per_channel = matches!(&q, QuantFn::Affine { channels, .. } if channels.len() > 1);
    (0..n)
        .map(|i| {
            if zeros.is_some_and(|m| m[i / 8] >> (i % 8) & 1 == 1) {
                return Some(0.0);
            }
            let mut c = 0i64;
            for b in 0..bits {
                let bit = i * bits + b;
                c |= ((packed[bit / 8] >> (bit % 8) & 1) as i64) << b;
            }
            let code = (c + qmin as i64) as i32;
            if let QuantFn::Levels { levels } = &q {
                levels.get(code as usize)?;
            }
            let v = q.value(code, if per_channel { i % cols } else { 0 });
            v.is_finite().then_some(v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for e in [Encoding::F32, Encoding::Bitmask, Encoding::Relative { bits: 5 }, Encoding::Relative { bits: 16 }] {
            assert_eq!(Encoding::parse(&e.name()), Some(e));
        }
        for bad in ["relative0", "relative17", "relativex", "f16x", ""] {
            assert_eq!(Encoding::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_encoding_round_trips_and_rejects_a_wrong_length() {
        let w: Vec<f32> = (0..300).map(|i| if i % 7 == 0 { i as f32 * 0.5 - 3.0 } else { 0.0 }).collect();
        for e in [Encoding::F32, Encoding::Bitmask, Encoding::Relative { bits: 5 }] {
            let b = e.encode(&w);
            assert_eq!(e.decode(&b, w.len()).as_deref(), Some(&w[..]), "{e:?}");
            assert_eq!(e.decode(&b, w.len() + 1), None, "{e:?} with the wrong count");
        }
        let (best, bytes) = Encoding::smallest(&w, &[Encoding::F32, Encoding::Relative { bits: 5 }]);
        assert_eq!(best, Encoding::Relative { bits: 5 });
        assert!(bytes.len() < 4 * w.len());
    }

    #[test]
    fn quantized_codes_round_trip_to_the_fake_quantized_values() {
        use crate::compress::quant::{Scheme, SchemeKind};
        let cols = 7;
        let mut w: Vec<f32> = (0..7 * 11).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * (1.0 + (i % cols) as f32)).collect();
        w.iter_mut().step_by(4).for_each(|v| *v = 0.0); // pruned
        for (kind, bits) in [(SchemeKind::Asymmetric, 8), (SchemeKind::Asymmetric, 3), (SchemeKind::Symmetric, 2), (SchemeKind::FixedPoint, 16), (SchemeKind::Binary, 1), (SchemeKind::Ternary, 2), (SchemeKind::PowerOfTwo, 4), (SchemeKind::F16, 16), (SchemeKind::Kmeans, 3)] {
            for per_channel in [false, true] {
                let q = Scheme { kind, bits, per_channel }.fit(&w, cols);
                let bytes = encode_quantized(&q, &w, cols);
                assert_eq!(decode_quantized(&bytes, w.len(), cols), Some(q.fake(&w, cols)), "{kind:?} {bits} pc={per_channel}");
                // Codes cost their bits: at most bits/32 of f32 plus the tables.
                assert!(bytes.len() <= (w.len() * q.bits() as usize).div_ceil(8) + 8 * cols + w.len() / 8 + 24, "{kind:?}: {} bytes", bytes.len());
                for cut in 0..bytes.len() {
                    assert_eq!(decode_quantized(&bytes[..cut], w.len(), cols), None, "{kind:?} cut at {cut}");
                }
                assert_eq!(decode_quantized(&bytes, w.len() + 1, cols), None);
            }
        }
    }
}
