//! Canonical Huffman coding of symbol streams (Deep Compression's last step: quantization codes
//! and relative indices are far from uniform, so variable-length codes store them in fewer bits).
//!
//! A stream is stored as: the code length of every symbol of the alphabet (4 bits each, 0 = the
//! symbol does not occur; lengths at most 15), u32 LE payload bits, then the payload: each
//! symbol's canonical code, most significant bit first, packed from each byte's top bit, the
//! last byte zero-padded. Canonical codes follow from the lengths alone (shorter codes first,
//! ties by symbol), so the table is the lengths. One distinct symbol gets a 1-bit code.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Longest code: lengths fit a nibble.
const MAX_LEN: u8 = 15;

/// Code lengths for symbol counts `freq` (0 for absent symbols), none longer than `MAX_LEN`:
/// Huffman's merge of the two rarest, with counts halved (rounded up) until the longest fits.
/// `None` when more than 2^MAX_LEN symbols occur (no code that short can tell them apart).
pub fn code_lengths(freq: &[u64]) -> Option<Vec<u8>> {
    if freq.iter().filter(|&&c| c > 0).count() > 1 << MAX_LEN {
        return None;
    }
    let mut f: Vec<u64> = freq.to_vec();
    loop {
        let lengths = huffman_lengths(&f);
        if lengths.iter().all(|&l| l <= MAX_LEN) {
            return Some(lengths);
        }
        f.iter_mut().filter(|c| **c > 0).for_each(|c| *c = c.div_ceil(2));
    }
}

fn huffman_lengths(freq: &[u64]) -> Vec<u8> {
    let present: Vec<usize> = (0..freq.len()).filter(|&s| freq[s] > 0).collect();
    let mut lengths = vec![0u8; freq.len()];
    if present.len() == 1 {
        lengths[present[0]] = 1;
    }
    if present.len() <= 1 {
        return lengths;
    }
    // Nodes: leaves first, then merges; parent links give each leaf's depth.
    let mut parent = vec![usize::MAX; present.len()];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = present.iter().enumerate().map(|(i, &s)| Reverse((freq[s], i))).collect();
    while heap.len() > 1 {
        let Reverse((a, i)) = heap.pop().expect("two nodes");
        let Reverse((b, j)) = heap.pop().expect("two nodes");
        let node = parent.len();
        parent.push(usize::MAX);
        parent[i] = node;
        parent[j] = node;
        heap.push(Reverse((a + b, node)));
    }
    for (leaf, &s) in present.iter().enumerate() {
        let (mut depth, mut at) = (0u32, leaf);
        while parent[at] != usize::MAX {
            at = parent[at];
            depth += 1;
        }
        lengths[s] = depth.min(255) as u8;
    }
    lengths
}

/// Canonical codes for `lengths`: (code, length) per symbol.
fn canonical(lengths: &[u8]) -> Vec<(u32, u8)> {
    let mut order: Vec<usize> = (0..lengths.len()).filter(|&s| lengths[s] > 0).collect();
    order.sort_by_key(|&s| (lengths[s], s));
    let mut codes = vec![(0u32, 0u8); lengths.len()];
    let (mut code, mut len) = (0u32, 0u8);
    for (k, &s) in order.iter().enumerate() {
        if k > 0 {
            code += 1;
        }
        code <<= lengths[s] - len;
        len = lengths[s];
        codes[s] = (code, len);
    }
    codes
}

/// The stream of `symbols` (each below `alphabet`) Huffman-coded with its table.
pub fn encode(symbols: &[u32], alphabet: usize) -> Option<Vec<u8>> {
    let mut freq = vec![0u64; alphabet];
    symbols.iter().for_each(|&s| freq[s as usize] += 1);
    let lengths = code_lengths(&freq)?;
    let codes = canonical(&lengths);
    let mut out: Vec<u8> = lengths.chunks(2).map(|p| p[0] | p.get(1).copied().unwrap_or(0) << 4).collect();
    let bits: u64 = symbols.iter().map(|&s| codes[s as usize].1 as u64).sum();
    out.extend_from_slice(&(bits as u32).to_le_bytes());
    let start = out.len();
    out.resize(start + (bits as usize).div_ceil(8), 0);
    let mut at = start * 8;
    for &s in symbols {
        let (code, len) = codes[s as usize];
        for b in (0..len).rev() {
            if code >> b & 1 == 1 {
                out[at / 8] |= 0x80 >> (at % 8);
            }
            at += 1;
        }
    }
    Some(out)
}

/// `n` symbols of an alphabet of `alphabet` from a stream at the start of `bytes`, and the bytes
/// the stream took; `None` when the bytes are not such a stream (bad table, payload too short or
/// too long, a code that is not in the table).
pub fn decode(bytes: &[u8], n: usize, alphabet: usize) -> Option<(Vec<u32>, usize)> {
    let table = alphabet.div_ceil(2);
    let lengths: Vec<u8> = (0..alphabet).map(|s| bytes.get(s / 2).map(|b| if s % 2 == 0 { b & 15 } else { b >> 4 })).collect::<Option<_>>()?;
    let bits = u32::from_le_bytes(bytes.get(table..table + 4)?.try_into().ok()?) as usize;
    let payload = bytes.get(table + 4..(table + 4).checked_add(bits.div_ceil(8))?)?;
    // Per length: how many codes, the first code, where its symbols start in canonical order.
    let mut count = [0u32; MAX_LEN as usize + 1];
    lengths.iter().filter(|&&l| l > 0).for_each(|&l| count[l as usize] += 1);
    // Kraft: an over-full table is not a prefix code.
    let kraft: u64 = (1..=MAX_LEN as usize).map(|l| (count[l] as u64) << (MAX_LEN as usize - l)).sum();
    if kraft > 1 << MAX_LEN || (n > 0 && kraft == 0) {
        return None;
    }
    let mut order: Vec<u32> = (0..alphabet as u32).filter(|&s| lengths[s as usize] > 0).collect();
    order.sort_by_key(|&s| (lengths[s as usize], s));
    let mut first = [0u32; MAX_LEN as usize + 2];
    let mut start = [0u32; MAX_LEN as usize + 2];
    let (mut code, mut index) = (0u32, 0u32);
    for l in 1..=MAX_LEN as usize {
        first[l] = code;
        start[l] = index;
        code = (code + count[l]) << 1;
        index += count[l];
    }
    let mut out = Vec::with_capacity(n.min(bits));
    let mut at = 0usize;
    for _ in 0..n {
        let (mut code, mut len) = (0u32, 0usize);
        loop {
            if at >= bits {
                return None;
            }
            code = code << 1 | (payload[at / 8] >> (7 - at % 8) & 1) as u32;
            at += 1;
            len += 1;
            if len > MAX_LEN as usize {
                return None;
            }
            if code.wrapping_sub(first[len]) < count[len] {
                out.push(order[(start[len] + code - first[len]) as usize]);
                break;
            }
        }
    }
    // Every payload bit used, the padding zero.
    if at != bits || (bits % 8 != 0 && payload[bits / 8] & (0xFF >> (bits % 8)) != 0) {
        return None;
    }
    Some((out, table + 4 + payload.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn round_trip(symbols: &[u32], alphabet: usize) -> Vec<u8> {
        let bytes = encode(symbols, alphabet).unwrap();
        assert_eq!(decode(&bytes, symbols.len(), alphabet), Some((symbols.to_vec(), bytes.len())), "{} symbols of {alphabet}", symbols.len());
        bytes
    }

    #[test]
    fn random_and_skewed_streams_round_trip_in_fewer_bits_than_packed() {
        let mut rng = Rng::new(0x4f0f, 1);
        for alphabet in [2usize, 7, 64, 256] {
            let uniform: Vec<u32> = (0..5000).map(|_| rng.below(alphabet as u32)).collect();
            round_trip(&uniform, alphabet);
            // Geometric-ish: mostly small symbols, as relative indices and centred codes are.
            let skewed: Vec<u32> = (0..5000).map(|_| (rng.next_f32().powi(4) * alphabet as f32) as u32 % alphabet as u32).collect();
            let bytes = round_trip(&skewed, alphabet);
            // Huffman's bound: under entropy + 1 bit per symbol, plus the table and length.
            let mut freq = vec![0f64; alphabet];
            skewed.iter().for_each(|&s| freq[s as usize] += 1.0);
            let entropy: f64 = freq.iter().filter(|&&c| c > 0.0).map(|&c| -c / 5000.0 * (c / 5000.0).log2()).sum();
            let bound = (5000.0 * (entropy + 1.0) / 8.0).ceil() as usize + alphabet.div_ceil(2) + 4;
            assert!(bytes.len() <= bound, "alphabet {alphabet}: {} bytes, entropy bound {bound}", bytes.len());
            let packed = (5000 * (usize::BITS - (alphabet - 1).leading_zeros()) as usize).div_ceil(8);
            if alphabet >= 64 {
                assert!(bytes.len() < packed * 17 / 20, "alphabet {alphabet}: {} bytes, packed {packed}", bytes.len());
            }
        }
    }

    #[test]
    fn degenerate_streams_round_trip() {
        // One symbol repeated: 1 bit each. Empty. One symbol once.
        let one = round_trip(&[5; 1000], 8);
        assert_eq!(one.len(), 4 + 4 + 125);
        round_trip(&[], 8);
        round_trip(&[3], 4);
        round_trip(&[0, 1], 2);
    }

    #[test]
    fn lengths_are_limited_and_stay_a_prefix_code() {
        // Fibonacci counts make a plain Huffman tree as deep as the alphabet.
        let mut freq = vec![1u64, 1];
        while freq.len() < 40 {
            freq.push(freq[freq.len() - 1] + freq[freq.len() - 2]);
        }
        let lengths = code_lengths(&freq).unwrap();
        assert!(lengths.iter().all(|&l| (1..=MAX_LEN).contains(&l)), "{lengths:?}");
        let kraft: f64 = lengths.iter().map(|&l| 0.5f64.powi(l as i32)).sum();
        assert!(kraft <= 1.0 + 1e-12);
        let symbols: Vec<u32> = (0..40u32).flat_map(|s| std::iter::repeat_n(s, 1 + (s as usize % 3))).collect();
        round_trip(&symbols, 40);
    }

    #[test]
    fn more_symbols_than_15_bit_codes_can_tell_apart_are_refused_not_looped() {
        let symbols: Vec<u32> = (0..40_000u32).collect();
        assert!(encode(&symbols, 1 << 16).is_none());
        let fits: Vec<u32> = (0..1u32 << MAX_LEN).collect();
        round_trip(&fits, 1 << 16);
    }

    #[test]
    fn malformed_streams_are_errors() {
        let symbols: Vec<u32> = (0..300).map(|i| (i * i % 11) as u32).collect();
        let bytes = encode(&symbols, 16).unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], symbols.len(), 16), None, "cut at {cut}");
        }
        assert_eq!(decode(&bytes, symbols.len() + 1, 16), None, "one symbol too many");
        assert!(decode(&bytes, symbols.len() - 1, 16).is_none(), "bits left over");
        // An over-full table: every length 1.
        let mut bad = bytes.clone();
        bad[..8].fill(0x11);
        assert_eq!(decode(&bad, symbols.len(), 16), None);
    }
}
