//! The one registry of tensor encodings: how a tensor's values become stored bytes and back.
//! Stage reports measure sizes with it and the model file (src/export.rs) writes with it, so a
//! size in a report is the length of bytes the file would hold.

use super::huffman;
use super::quant::QuantFn;
use super::sparse;

/// A way to store one tensor. Every variant round-trips exactly: float encodings give back the
/// values, quantized ones the quantizer's values (`QuantFn::fake`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Dense little-endian f32.
    F32,
    /// u32 length, a bit per value (kept or zero), the kept values as f32 (compress::sparse).
    Bitmask,
    /// Deep Compression's relative indexing: `bits`-bit gaps and f32 values (compress::sparse).
    Relative { bits: u32 },
    /// A quantizer's codes (`encode_quantized`), dense or sparse, packed or Huffman-coded.
    Quantized(Layout),
}

impl Encoding {
    /// The name the model file's header stores.
    pub fn name(&self) -> String {
        match self {
            Encoding::F32 => "f32".into(),
            Encoding::Bitmask => "bitmask".into(),
            Encoding::Relative { bits } => format!("relative{bits}"),
            Encoding::Quantized(l) => {
                let codes = if l.gap_bits == 0 { "codes".to_string() } else { format!("relative{}-codes", l.gap_bits) };
                if l.huffman {
                    codes + "+huffman"
                } else {
                    codes
                }
            }
        }
    }

    /// The encoding a header names, if this build knows it.
    pub fn parse(name: &str) -> Option<Encoding> {
        match name {
            "f32" => Some(Encoding::F32),
            "bitmask" => Some(Encoding::Bitmask),
            _ => {
                let (base, huffman) = name.strip_suffix("+huffman").map_or((name, false), |b| (b, true));
                if base == "codes" {
                    return Some(Encoding::Quantized(Layout { gap_bits: 0, huffman }));
                }
                let rest = base.strip_prefix("relative")?;
                let (bits, quantized) = rest.strip_suffix("-codes").map_or((rest, false), |b| (b, true));
                let bits: u32 = bits.parse().ok()?;
                match quantized {
                    true => Layout::all().contains(&Layout { gap_bits: bits, huffman }).then_some(Encoding::Quantized(Layout { gap_bits: bits, huffman })),
                    false => (!huffman && (1..=16).contains(&bits)).then_some(Encoding::Relative { bits }),
                }
            }
        }
    }

    /// The bytes of `w`, a tensor of `cols` columns. Quantized encodings store the codes `q`
    /// gives `w` and need `q` (`None` without it); float encodings store `w` as it is.
    pub fn encode(&self, w: &[f32], q: Option<&QuantFn>, cols: usize) -> Option<Vec<u8>> {
        Some(match self {
            Encoding::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Encoding::Bitmask => sparse::encode_bitmask(w),
            Encoding::Relative { bits } => sparse::encode_relative(w, *bits),
            Encoding::Quantized(layout) => encode_quantized(q?, w, cols, *layout)?,
        })
    }

    /// The `n` values stored in `bytes` (with the quantizer they were stored by, for quantized
    /// encodings), or `None` when the bytes do not describe exactly `n` values in this encoding
    /// (never a panic, never an allocation beyond what `n` allows).
    pub fn decode(&self, bytes: &[u8], n: usize, cols: usize) -> Option<(Vec<f32>, Option<QuantFn>)> {
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
            Encoding::Quantized(_) => {
                let (values, q) = decode_quantized(bytes, n, cols)?;
                return Some((values, Some(q)));
            }
        };
        (values.len() == n).then_some((values, None))
    }

    /// The smallest of `candidates` for `w` (those that can store it), with its bytes.
    pub fn smallest(w: &[f32], q: Option<&QuantFn>, cols: usize, candidates: &[Encoding]) -> (Encoding, Vec<u8>) {
        candidates.iter().filter_map(|e| Some((*e, e.encode(w, q, cols)?))).min_by_key(|(_, b)| b.len()).expect("at least one candidate that can store the tensor")
    }

    /// Every layout of a quantizer's codes (`huffman`: also the Huffman-coded ones).
    pub fn quantized(huffman: bool) -> Vec<Encoding> {
        Layout::all().into_iter().filter(|l| huffman || !l.huffman).map(Encoding::Quantized).collect()
    }

    /// How the model file stores a tensor, and its bytes: a quantized tensor (`q`) as its codes
    /// in the smallest layout; an unquantized weight matrix as the smaller of dense f32 and 5-bit
    /// relative indices; anything else dense f32.
    pub fn stored(w: &[f32], q: Option<&QuantFn>, cols: usize, weight: bool) -> (Encoding, Vec<u8>) {
        match q {
            Some(_) => Encoding::smallest(w, q, cols, &Encoding::quantized(true)),
            None if weight => Encoding::smallest(w, None, cols, &[Encoding::F32, Encoding::Relative { bits: 5 }]),
            None => Encoding::smallest(w, None, cols, &[Encoding::F32]),
        }
    }
}

/// How a quantized tensor's codes are laid out: all of them (dense), or only the nonzero values'
/// with their positions as relative gaps of `gap_bits` bits (sparse: pruned weights cost only
/// their share of the gap stream); each stream packed at its width or Huffman-coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// 0: dense codes; else the width of a relative gap (2..=12).
    pub gap_bits: u32,
    pub huffman: bool,
}

impl Layout {
    /// Every layout a model file may choose from: dense and sparse (gaps of 2 to 10 bits), packed
    /// or Huffman-coded.
    pub fn all() -> Vec<Layout> {
        [0].into_iter().chain(2..=10).flat_map(|gap_bits| [false, true].map(|huffman| Layout { gap_bits, huffman })).collect()
    }
}

/// The codes of one tensor as a quantizer stores them: u32 n, u8 kind (0 affine, 1 levels, 2
/// f16), u8 code bits, u8 flags (1: a zero mask follows the table; 2: Huffman-coded streams), u8
/// gap bits (0: dense), u32 table entries; affine: i32 qmin, then per channel f32 step and f32
/// zero; levels: the f32 levels. Dense: the zero mask if flagged (exact zeros the quantizer cannot
/// represent, e.g. pruned binary weights), then n codes. Sparse: u32 gap count, the gaps (a gap
/// g < 2^gap_bits − 1 skips g zeros then places a value; 2^gap_bits − 1 skips that many zeros and
/// places none), then one code per placed value. Codes are affine q − qmin, a level's index or
/// the half's bits; a stream is packed LSB first at its width or Huffman-coded
/// (compress::huffman). Decoding gives exactly `q.fake(w, cols)`. `None`: Huffman coding asked of
/// a stream with more than 2^15 distinct symbols (no length-limited code exists).
pub fn encode_quantized(q: &QuantFn, w: &[f32], cols: usize, layout: Layout) -> Option<Vec<u8>> {
    let fake = q.fake(w, cols);
    let codes = q.codes(w, cols);
    let bits = q.bits();
    let (kind, qmin, table): (u8, i32, Vec<f32>) = match q {
        QuantFn::Affine { qmin, channels, .. } => (0, *qmin, channels.iter().flat_map(|[_, step, zero]| [*step, *zero]).collect()),
        QuantFn::Levels { levels } => (1, 0, levels.clone()),
        QuantFn::F16 => (2, 0, vec![]),
        // Weights are never quantized dynamically (activations only: recipe validation).
        QuantFn::Dynamic { .. } => return None,
    };
    let symbol = |i: usize| (codes[i] - qmin) as u32;
    // Dense: zeros whose code would decode to something else need the mask.
    let lost_zero = layout.gap_bits == 0 && fake.iter().enumerate().any(|(i, &v)| v == 0.0 && q.value(codes[i], q.channel(i, cols)) != 0.0);
    let mut out = (w.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&[kind, bits as u8, lost_zero as u8 | (layout.huffman as u8) << 1, layout.gap_bits as u8]);
    let entries = match q {
        QuantFn::Affine { channels, .. } => channels.len(),
        _ => table.len(),
    };
    out.extend_from_slice(&(entries as u32).to_le_bytes());
    if kind == 0 {
        out.extend_from_slice(&qmin.to_le_bytes());
    }
    table.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    let stream = |out: &mut Vec<u8>, symbols: &[u32], bits: u32| -> Option<()> {
        if layout.huffman {
            out.extend_from_slice(&huffman::encode(symbols, 1 << bits)?);
        } else {
            out.extend_from_slice(&sparse::pack(symbols, bits));
        }
        Some(())
    };
    if layout.gap_bits == 0 {
        if lost_zero {
            let mut mask = vec![0u8; w.len().div_ceil(8)];
            fake.iter().enumerate().filter(|(_, &v)| v == 0.0).for_each(|(i, _)| mask[i / 8] |= 1 << (i % 8));
            out.extend_from_slice(&mask);
        }
        stream(&mut out, &(0..w.len()).map(symbol).collect::<Vec<_>>(), bits)?;
    } else {
        let escape = (1u32 << layout.gap_bits) - 1;
        let (mut gaps, mut values) = (Vec::new(), Vec::new());
        let mut next = 0usize;
        for (i, &v) in fake.iter().enumerate() {
            if v == 0.0 {
                continue;
            }
            while i - next >= escape as usize {
                gaps.push(escape);
                next += escape as usize;
            }
            gaps.push((i - next) as u32);
            values.push(symbol(i));
            next = i + 1;
        }
        out.extend_from_slice(&(gaps.len() as u32).to_le_bytes());
        stream(&mut out, &gaps, layout.gap_bits)?;
        stream(&mut out, &values, bits)?;
    }
    Some(out)
}

/// The `n` values of an `encode_quantized` tensor of `cols` columns and the quantizer they were
/// stored by (it encodes those values to the same codes), or `None` when the bytes do not
/// describe exactly that.
pub fn decode_quantized(bytes: &[u8], n: usize, cols: usize) -> Option<(Vec<f32>, QuantFn)> {
    let u32_at = |k: usize| bytes.get(k..k + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let f32_at = |k: usize| u32_at(k).map(f32::from_bits);
    if u32_at(0)? as usize != n {
        return None;
    }
    let (kind, bits, flags, gap_bits) = (*bytes.get(4)?, *bytes.get(5)? as u32, *bytes.get(6)?, *bytes.get(7)? as u32);
    let (lost_zero, huffman) = (flags & 1 == 1, flags & 2 == 2);
    let entries = u32_at(8)? as usize;
    if !(1..=16).contains(&bits) || flags > 3 || gap_bits == 1 || gap_bits > 12 || (lost_zero && gap_bits > 0) || entries > n.max(1).max(1 << 16) {
        return None;
    }
    let mut at = 12;
    let q = match kind {
        0 => {
            let qmin = u32_at(at)? as i32;
            at += 4;
            // Codes this build writes start at -2^15 at the lowest (16-bit symmetric) and at 0 at
            // the highest; far-off codes (~2^31) would not survive f32 arithmetic.
            if entries != 1 && entries != cols || !(-(1 << 16)..=1 << 16).contains(&qmin) {
                return None;
            }
            let channels = (0..entries).map(|c| Some([1.0 / f32_at(at + 8 * c)?, f32_at(at + 8 * c)?, f32_at(at + 8 * c + 4)?])).collect::<Option<Vec<_>>>()?;
            // Steps this build writes are normal positive floats with a finite inverse, zero
            // points within the codes' range; others (a subnormal step, a zero point of 1e8) give
            // values that would not encode back to the same codes.
            if !channels.iter().all(|&[inv, step, zero]| step.is_normal() && step > 0.0 && inv.is_normal() && zero.abs() <= (1 << 16) as f32) {
                return None;
            }
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
    // A stream of `count` symbols of `bits` bits at `at`; the last one must end the tensor.
    let stream = |at: &mut usize, count: usize, bits: u32, last: bool| -> Option<Vec<u32>> {
        let rest = bytes.get(*at..)?;
        let (symbols, used) = if huffman {
            huffman::decode(rest, count, 1 << bits)?
        } else {
            let used = count.checked_mul(bits as usize)?.div_ceil(8);
            (sparse::unpack(rest.get(..used)?, count, bits)?, used)
        };
        *at += used;
        (!last || *at == bytes.len()).then_some(symbols)
    };
    let value = |i: usize, s: u32| -> Option<f32> {
        let code = (s as i64 + if let QuantFn::Affine { qmin, .. } = &q { *qmin as i64 } else { 0 }) as i32;
        if let QuantFn::Levels { levels } = &q {
            levels.get(code as usize)?;
        }
        let v = q.value(code, q.channel(i, cols));
        v.is_finite().then_some(v)
    };
    if gap_bits == 0 {
        let zeros = if lost_zero {
            let m = bytes.get(at..at + n.div_ceil(8))?;
            at += n.div_ceil(8);
            Some(m)
        } else {
            None
        };
        let symbols = stream(&mut at, n, bits, true)?;
        let values = symbols.iter().enumerate().map(|(i, &s)| if zeros.is_some_and(|m| m[i / 8] >> (i % 8) & 1 == 1) { Some(0.0) } else { value(i, s) }).collect::<Option<Vec<f32>>>()?;
        Some((values, q))
    } else {
        let count = u32_at(at)? as usize;
        at += 4;
        // Each gap places a value or skips 2^gap_bits − 1 positions: no more than n + n/(2^g − 1) + 1.
        if count > n + n / ((1 << gap_bits) - 1) + 1 {
            return None;
        }
        let escape = (1u32 << gap_bits) - 1;
        let gaps = stream(&mut at, count, gap_bits, false)?;
        let placed = gaps.iter().filter(|&&g| g != escape).count();
        let symbols = stream(&mut at, placed, bits, true)?;
        let mut w = vec![0.0f32; n];
        let (mut pos, mut k) = (0usize, 0usize);
        for &g in &gaps {
            pos += g as usize;
            if g != escape {
                *w.get_mut(pos)? = value(pos, symbols[k])?;
                k += 1;
                pos += 1;
            }
        }
        Some((w, q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for e in [Encoding::F32, Encoding::Bitmask, Encoding::Relative { bits: 5 }, Encoding::Relative { bits: 16 }].into_iter().chain(Encoding::quantized(true)) {
            assert_eq!(Encoding::parse(&e.name()), Some(e));
        }
        for bad in ["relative0", "relative17", "relativex", "f16x", "", "relative5+huffman", "relative1-codes", "relative11-codes", "codes+", "f32+huffman"] {
            assert_eq!(Encoding::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_encoding_round_trips_and_rejects_a_wrong_length() {
        let w: Vec<f32> = (0..300).map(|i| if i % 7 == 0 { i as f32 * 0.5 - 3.0 } else { 0.0 }).collect();
        for e in [Encoding::F32, Encoding::Bitmask, Encoding::Relative { bits: 5 }] {
            let b = e.encode(&w, None, 1).unwrap();
            assert_eq!(e.decode(&b, w.len(), 1), Some((w.clone(), None)), "{e:?}");
            assert_eq!(e.decode(&b, w.len() + 1, 1), None, "{e:?} with the wrong count");
        }
        assert_eq!(Encoding::quantized(false)[0].encode(&w, None, 1), None, "codes need a quantizer");
        let (best, bytes) = Encoding::smallest(&w, None, 1, &[Encoding::F32, Encoding::Relative { bits: 5 }]);
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
                for layout in [Layout { gap_bits: 0, huffman: false }, Layout { gap_bits: 0, huffman: true }, Layout { gap_bits: 3, huffman: false }, Layout { gap_bits: 5, huffman: true }] {
                    let what = format!("{kind:?} {bits} pc={per_channel} {layout:?}");
                    let bytes = encode_quantized(&q, &w, cols, layout).unwrap();
                    let (values, stored) = decode_quantized(&bytes, w.len(), cols).unwrap();
                    assert_eq!(values, q.fake(&w, cols), "{what}");
                    // The quantizer read back stores the values again as the same bytes.
                    assert_eq!(encode_quantized(&stored, &values, cols, layout).unwrap(), bytes, "{what}: re-encoded");
                    if layout == (Layout { gap_bits: 0, huffman: false }) {
                        // Codes cost their bits: at most bits/32 of f32 plus the tables.
                        assert!(bytes.len() <= (w.len() * q.bits() as usize).div_ceil(8) + 8 * cols + w.len() / 8 + 24, "{what}: {} bytes", bytes.len());
                    }
                    for cut in 0..bytes.len() {
                        assert_eq!(decode_quantized(&bytes[..cut], w.len(), cols), None, "{what} cut at {cut}");
                    }
                    assert_eq!(decode_quantized(&bytes, w.len() + 1, cols), None, "{what}");
                    let mut longer = bytes.clone();
                    longer.push(0);
                    assert_eq!(decode_quantized(&longer, w.len(), cols), None, "{what}: a byte too many");
                }
            }
        }
    }
}
