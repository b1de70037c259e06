//! Seeded random numbers. The mapping seed -> numbers is part of a recipe's reproducibility
//! contract (a shared link must give the same run next year), so the generator is pinned here
//! (PCG32, O'Neill 2014) rather than inherited from a crate whose streams may change between versions.

#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
    inc: u64,
}

impl Rng {
    /// A generator for `seed` on stream `stream` (independent streams for init, shuffling, ...).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng { state: 0, inc: (stream << 1) | 1 };
        r.next_u32();
        r.state = r.state.wrapping_add(seed);
        r.next_u32();
        r
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(6364136223846793005).wrapping_add(self.inc);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rot = (old >> 59) as u32;
        xorshifted.rotate_right(rot)
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// Uniform integer in 0..n (n > 0), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u32) -> u32 {
        let mut m = self.next_u32() as u64 * n as u64;
        if (m as u32) < n {
            let t = n.wrapping_neg() % n;
            while (m as u32) < t {
                m = self.next_u32() as u64 * n as u64;
            }
        }
        (m >> 32) as u32
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_seeds_differ_and_repeat() {
        let a: Vec<u32> = (0..4).map({ let mut r = Rng::new(1, 0); move |_| r.next_u32() }).collect();
        let b: Vec<u32> = (0..4).map({ let mut r = Rng::new(1, 0); move |_| r.next_u32() }).collect();
        let c: Vec<u32> = (0..4).map({ let mut r = Rng::new(2, 0); move |_| r.next_u32() }).collect();
        let d: Vec<u32> = (0..4).map({ let mut r = Rng::new(1, 1); move |_| r.next_u32() }).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = Rng::new(7, 3);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[r.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut xs: Vec<u32> = (0..1000).collect();
        Rng::new(3, 0).shuffle(&mut xs);
        assert_ne!(xs, (0..1000).collect::<Vec<_>>());
        xs.sort();
        assert_eq!(xs, (0..1000).collect::<Vec<_>>());
    }
}
