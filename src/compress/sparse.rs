//! Sparse storage of pruned weight tensors, actually encoded (sizes reported are the lengths of
//! these byte buffers, not formulas): a bitmask with the kept values, and Deep Compression's
//! relative indexing (Han et al. 2016: each kept value stores its distance from the previous one
//! in `bits` bits; a gap too long for the field is bridged by a stored zero). Both decode back to
//! the exact dense tensor.

/// Bitmask encoding: u32 length, ceil(n/8) mask bytes (bit i of byte i/8 set = kept), then the
/// kept values as f32 little-endian.
pub fn encode_bitmask(w: &[f32]) -> Vec<u8> {
    let mut out = (w.len() as u32).to_le_bytes().to_vec();
    let mut mask = vec![0u8; w.len().div_ceil(8)];
    for (i, &v) in w.iter().enumerate() {
        if v != 0.0 {
            mask[i / 8] |= 1 << (i % 8);
        }
    }
    out.extend_from_slice(&mask);
    for &v in w.iter().filter(|&&v| v != 0.0) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub fn decode_bitmask(bytes: &[u8]) -> Option<Vec<f32>> {
    let n = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let mask = bytes.get(4..4 + n.div_ceil(8))?;
    let mut values = bytes.get(4 + n.div_ceil(8)..)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    (0..n).map(|i| if mask[i / 8] >> (i % 8) & 1 == 1 { values.next() } else { Some(0.0) }).collect()
}

/// Relative-index encoding: u32 length, u32 entry count, then the entries' `bits`-bit gaps packed
/// LSB-first, then the entries' f32 values. An entry is a kept value, or a zero filler when the
/// gap since the previous entry exceeds 2^bits - 1.
pub fn encode_relative(w: &[f32], bits: u32) -> Vec<u8> {
    assert!((1..=16).contains(&bits), "index width must be 1..=16 bits");
    let max_gap = (1usize << bits) - 1;
    let (mut gaps, mut values): (Vec<u32>, Vec<f32>) = (Vec::new(), Vec::new());
    let mut next = 0usize; // position just after the previous entry
    for (i, &v) in w.iter().enumerate() {
        if v == 0.0 {
            continue;
        }
        while i - next > max_gap {
            gaps.push(max_gap as u32);
            values.push(0.0f32);
            next += max_gap + 1;
        }
        gaps.push((i - next) as u32);
        values.push(v);
        next = i + 1;
    }
    let mut out = (w.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(gaps.len() as u32).to_le_bytes());
    out.extend_from_slice(&pack(&gaps, bits));
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub fn decode_relative(bytes: &[u8], bits: u32) -> Option<Vec<f32>> {
    let n = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let entries = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let packed_len = (entries * bits as usize).div_ceil(8);
    let gaps = unpack(bytes.get(8..8 + packed_len)?, entries, bits)?;
    let values = bytes.get(8 + packed_len..)?;
    let mut w = vec![0.0f32; n];
    let mut pos = 0usize;
    for (k, &g) in gaps.iter().enumerate() {
        pos += g as usize;
        let c = values.get(4 * k..4 * k + 4)?;
        *w.get_mut(pos)? = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        pos += 1;
    }
    Some(w)
}

/// `symbols`, `bits` each, packed LSB first into ceil(len·bits/8) bytes.
pub fn pack(symbols: &[u32], bits: u32) -> Vec<u8> {
    let bits = bits as usize;
    let mut packed = vec![0u8; (symbols.len() * bits).div_ceil(8)];
    for (k, &c) in symbols.iter().enumerate() {
        for b in 0..bits {
            if c >> b & 1 == 1 {
                let bit = k * bits + b;
                packed[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    packed
}

/// `count` symbols of `bits` bits from `packed` (exactly ceil(count·bits/8) bytes, else `None`).
pub fn unpack(packed: &[u8], count: usize, bits: u32) -> Option<Vec<u32>> {
    let bits = bits as usize;
    if packed.len() != (count.checked_mul(bits)?).div_ceil(8) {
        return None;
    }
    Some((0..count).map(|k| (0..bits).fold(0u32, |c, b| c | ((packed[(k * bits + b) / 8] >> ((k * bits + b) % 8) & 1) as u32) << b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn sparse(n: usize, keep: f32, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed, 4);
        (0..n).map(|_| if r.next_f32() < keep { r.uniform(-1.0, 1.0) } else { 0.0 }).collect()
    }

    #[test]
    fn both_encodings_round_trip_exactly() {
        for (n, keep) in [(0usize, 0.5f32), (1, 1.0), (7, 0.0), (1000, 0.08), (235_200, 0.08), (5000, 0.9)] {
            let w = sparse(n, keep, n as u64);
            assert_eq!(decode_bitmask(&encode_bitmask(&w)).unwrap(), w, "bitmask n={n}");
            for bits in [3, 4, 5, 8] {
                assert_eq!(decode_relative(&encode_relative(&w, bits), bits).unwrap(), w, "relative n={n} bits={bits}");
            }
        }
    }

    #[test]
    fn long_gaps_need_fillers() {
        // One value at 0 and one at 40: with 4-bit gaps (max 15) the 39-long gap needs two fillers.
        let mut w = vec![0.0f32; 41];
        w[0] = 1.0;
        w[40] = 2.0;
        let e = encode_relative(&w, 4);
        assert_eq!(u32::from_le_bytes(e[4..8].try_into().unwrap()), 4, "two values + two fillers");
        assert_eq!(e.len(), 8 + 2 + 4 * 4);
    }

    #[test]
    fn sparse_encodings_are_smaller_than_dense_at_high_sparsity() {
        let w = sparse(235_200, 0.08, 1);
        let dense = w.len() * 4;
        let bitmask = encode_bitmask(&w).len();
        let relative = encode_relative(&w, 5).len();
        assert!(bitmask < dense / 5 && relative < bitmask, "dense {dense}, bitmask {bitmask}, relative {relative}");
    }

    #[test]
    fn corrupt_input_is_none_not_a_panic() {
        let e = encode_relative(&sparse(100, 0.3, 2), 4);
        for cut in 0..e.len() {
            let _ = decode_relative(&e[..cut], 4);
            let _ = decode_bitmask(&e[..cut]);
        }
        assert!(decode_bitmask(&[255, 255, 255, 255]).is_none());
    }
}
