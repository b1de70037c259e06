//! The one registry of tensor encodings: how a tensor's values become stored bytes and back.
//! Stage reports measure sizes with it and the model file (src/export.rs) writes with it, so a
//! size in a report is the length of bytes the file would hold.

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
}
