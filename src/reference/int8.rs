//! CPU twins of shaders/int8.wgsl (same names with `_reference`), on the GPU's packed layout, and
//! the CPU backend's integer executor (`CpuIntModel`), which holds int8 values unpacked as i16
//! for the multiply-add instructions and computes the same integers. The arithmetic is compress::int8's; every function here is exact.

use super::ops::Geometry;
use crate::compress::int8::{requantize_store, IntLayer, IntModel, IntStep};

/// Packs int8 values four to a u32, little-endian (element 4i + j in byte j of word i).
pub fn pack_i8(v: &[i8]) -> Vec<u32> {
    v.chunks(4).map(|c| c.iter().enumerate().fold(0u32, |w, (j, &b)| w | ((b as u8 as u32) << (8 * j)))).collect()
}

/// A layer's weights as the GPU product reads them: packed words k-major, [kp/4, outputs].
pub fn pack_weights(l: &IntLayer) -> Vec<u32> {
    let k4 = l.kp / 4;
    let rows = pack_i8(&l.weights); // [outputs, k4]
    (0..k4 * l.outputs).map(|i| rows[(i % l.outputs) * k4 + i / l.outputs]).collect()
}

/// dot4I8Packed: the dot product of two words' four signed bytes.
pub fn dot4_i8(a: u32, b: u32) -> i32 {
    (0..4).map(|j| ((a >> (8 * j)) as u8 as i8 as i32) * ((b >> (8 * j)) as u8 as i8 as i32)).sum()
}

impl IntLayer {
    /// The im2col geometry of `batch` samples.
    pub fn geometry(&self, batch: usize) -> Geometry {
        Geometry::new(batch, self.input.h, self.input.w, self.input.c, self.k, self.stride, self.pad)
    }
}

/// int8_input: the images' pixels p (u8) as int8 values p − 128, one i32 per element.
pub fn int8_input_reference(pixels: &[u8]) -> Vec<i32> {
    pixels.iter().map(|&p| p as i32 - 128).collect()
}

/// int8_im2col: x [B, H, W, C] (int8 values as i32) → packed cols [B·OH·OW, kp/4] u32, column
/// (kh·k + kw)·C + ci; `pad_value` where the window hangs over the edge, 0 in the columns past K.
pub fn int8_im2col_reference(x: &[i32], g: &Geometry, pad_value: i32, kp: usize) -> Vec<u32> {
    let mut cols = vec![0i8; g.positions() * kp];
    for row in cols.chunks_exact_mut(kp) {
        row[..g.patch()].fill(pad_value as i8);
    }
    g.taps(|row, px, tap| {
        for ci in 0..g.c {
            cols[row * kp + tap + ci] = x[px + ci] as i8;
        }
    });
    pack_i8(&cols)
}

/// int8_gemm: out [M, outputs] from packed cols [M, kp/4] and packed weights [kp/4, outputs]:
/// the classifier's totals, else the requantized int8 values (compress::int8).
pub fn int8_gemm_reference(cols: &[u32], weights: &[u32], m: usize, l: &IntLayer) -> Vec<i32> {
    let k4 = l.kp / 4;
    let mut out = vec![0; m * l.outputs];
    for r in 0..m {
        for c in 0..l.outputs {
            let total = (0..k4).map(|i| dot4_i8(cols[r * k4 + i], weights[i * l.outputs + c])).sum::<i32>() + l.bias[c];
            out[r * l.outputs + c] = if l.last { total } else { requantize_store(total, l, c) };
        }
    }
    out
}

/// int8_maxpool: y [B, OH, OW, C] = the window maxima of x [B, H, W, C].
pub fn int8_maxpool_reference(x: &[i32], g: &Geometry) -> Vec<i32> {
    let mut y = vec![i32::MIN; g.positions() * g.c];
    g.taps(|row, px, _| {
        for ci in 0..g.c {
            y[row * g.c + ci] = y[row * g.c + ci].max(x[px + ci]);
        }
    });
    y
}

/// The classifier's totals [n, classes] of `n` images (u8 pixels), through the twins above.
pub fn int8_forward_reference(model: &IntModel, pixels: &[u8], n: usize) -> Vec<i32> {
    let mut x = int8_input_reference(pixels);
    for s in &model.steps {
        x = match s {
            IntStep::Layer(l) => {
                let g = l.geometry(n);
                let cols = int8_im2col_reference(&x, &g, l.pad_value, l.kp);
                int8_gemm_reference(&cols, &pack_weights(l), g.positions(), l)
            }
            IntStep::MaxPool { input, k, stride } => int8_maxpool_reference(&x, &Geometry::new(n, input.h, input.w, input.c, *k, *stride, 0)),
        };
    }
    x
}

/// The CPU backend's integer executor: the same integers as `int8_forward_reference`, with int8
/// values held as i16 rows padded to 16 (what the multiply-add instructions take), weights
/// widened once.
pub struct CpuIntModel<'a> {
    model: &'a IntModel,
    /// Per step: the layer's weights [outputs, k16] as i16 (empty for pools).
    weights: Vec<Vec<i16>>,
}

/// Row length of an i16 product operand: K rounded up to 32 (one AVX-512 register).
fn k16(kdim: usize) -> usize {
    kdim.div_ceil(32) * 32
}

impl<'a> CpuIntModel<'a> {
    pub fn new(model: &'a IntModel) -> CpuIntModel<'a> {
        let weights = model
            .steps
            .iter()
            .map(|s| match s {
                IntStep::Layer(l) => {
                    let k = k16(l.kdim);
                    let mut w = vec![0i16; l.outputs * k];
                    for (dst, src) in w.chunks_exact_mut(k).zip(l.weights.chunks_exact(l.kp)) {
                        dst.iter_mut().zip(&src[..l.kdim]).for_each(|(d, &v)| *d = v as i16);
                    }
                    w
                }
                IntStep::MaxPool { .. } => vec![],
            })
            .collect();
        CpuIntModel { model, weights }
    }

    /// The classifier's totals [n, classes] of `n` images (u8 pixels).
    pub fn forward(&self, pixels: &[u8], n: usize) -> Vec<i32> {
        let mut x: Vec<i16> = pixels.iter().map(|&p| p as i16 - 128).collect();
        for (s, w) in self.model.steps.iter().zip(&self.weights) {
            match s {
                IntStep::Layer(l) => {
                    let g = l.geometry(n);
                    let k = k16(l.kdim);
                    let mut cols = vec![0i16; g.positions() * k];
                    if g.pad > 0 {
                        cols.chunks_exact_mut(k).for_each(|row| row[..l.kdim].fill(l.pad_value as i16));
                    }
                    g.spans(|row, px, tap, n| cols[row * k + tap..][..n * g.c].copy_from_slice(&x[px..][..n * g.c]));
                    let mut acc = gemm_i16(&cols, w, g.positions(), l.outputs, k);
                    for row in acc.chunks_exact_mut(l.outputs) {
                        row.iter_mut().zip(&l.bias).for_each(|(t, b)| *t += b);
                    }
                    if l.last {
                        return acc;
                    }
                    x = vec![0i16; acc.len()];
                    for (row, out) in acc.chunks_exact(l.outputs).zip(x.chunks_exact_mut(l.outputs)) {
                        for (c, (t, o)) in row.iter().zip(out.iter_mut()).enumerate() {
                            *o = requantize_store(*t, l, c) as i16;
                        }
                    }
                }
                IntStep::MaxPool { input, k, stride } => {
                    let g = Geometry::new(n, input.h, input.w, input.c, *k, *stride, 0);
                    let mut y = vec![i16::MIN; g.positions() * g.c];
                    g.taps(|row, px, _| y[row * g.c..][..g.c].iter_mut().zip(&x[px..px + g.c]).for_each(|(o, &v)| *o = (*o).max(v)));
                    x = y;
                }
            }
        }
        unreachable!("an integer model ends in its classifier")
    }
}

/// acc [m, n] = a [m, k16] · bᵀ (b [n, k16]), i16 operands, i32 sums. Detected at run time:
/// AVX-512 VNNI (32 products accumulated per vpdpwssd, four rows by four outputs per block) or
/// AVX2 (16 per vpmaddwd, two rows by four outputs); elsewhere one contiguous dot product per
/// entry (vectorized by the compiler).
/// In the threaded build a large product is cut into bands of rows on the pool (integer sums:
/// the same whichever way it is cut).
fn gemm_i16(a: &[i16], b: &[i16], m: usize, n: usize, k16: usize) -> Vec<i32> {
    let threads = super::pool::threads_for(m * n * k16);
    if threads > 1 {
        return gemm_i16_parts(a, b, m, n, k16, threads);
    }
    gemm_i16_one(a, b, m, n, k16)
}

/// `gemm_i16` in `parts` bands of rows (a multiple of 4, every product path's row block).
fn gemm_i16_parts(a: &[i16], b: &[i16], m: usize, n: usize, k16: usize, parts: usize) -> Vec<i32> {
    let per = m.div_ceil(parts.max(1)).next_multiple_of(4);
    let bands: Vec<&[i16]> = a[..m * k16].chunks(per * k16).collect();
    super::pool::each(bands, |rows| gemm_i16_one(rows, b, rows.len() / k16, n, k16)).concat()
}

fn gemm_i16_one(a: &[i16], b: &[i16], m: usize, n: usize, k16: usize) -> Vec<i32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F and VNNI are present (checked just above).
        return unsafe { avx512::gemm(a, b, m, n, k16) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        return unsafe { avx2::gemm(a, b, m, n, k16) };
    }
    // The wasm build has simd128 on (.cargo/config.toml).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::gemm(a, b, m, n, k16);
    #[allow(unreachable_code)]
    gemm_portable(a, b, m, n, k16)
}

fn gemm_portable(a: &[i16], b: &[i16], m: usize, n: usize, k16: usize) -> Vec<i32> {
    let mut out = vec![0i32; m * n];
    for (row, o) in a.chunks_exact(k16).zip(out.chunks_exact_mut(n)) {
        for (w, v) in b.chunks_exact(k16).zip(o.iter_mut()) {
            *v = row.iter().zip(w).map(|(&p, &q)| p as i32 * q as i32).sum::<i32>();
        }
    }
    out
}

/// One product module per instruction set (x86 AVX2, AVX-512 VNNI; wasm simd128), from one template: `$lanes` i16 per register,
/// `$acc(acc, a, b)` = acc + the pairwise-added products (vpmaddwd + vpaddd, or vpdpwssd),
/// `$sum` the horizontal sum; blocks of `$r` rows by 4 outputs.
macro_rules! simd_product {
    ($arch:ident, $cfg:meta, $name:ident, $feature:literal, $v:ty, $lanes:literal, $r:literal, $zero:expr, $load:expr, $acc:expr, $sum:expr) => {
        #[cfg($cfg)]
        mod $name {
            #[allow(unused_imports)]
            use std::arch::$arch::*;

            /// Σ_k a[r, k]·b[c, k] for rows r0..r0 + R and outputs c0..c0 + C, into `out`.
            #[target_feature(enable = $feature)]
            fn block<const R: usize, const C: usize>(a: &[i16], b: &[i16], k: usize, r0: usize, c0: usize, out: &mut [i32], n: usize) {
                let mut acc = [[$zero; C]; R];
                let ld = |v: &[i16], at: usize| -> $v {
                    // SAFETY: at + $lanes <= v.len(): rows are k long, k a multiple of 32, and kk steps by $lanes below k.
                    unsafe { $load(v.as_ptr().add(at) as *const $v) }
                };
                for kk in (0..k).step_by($lanes) {
                    let av: [$v; R] = std::array::from_fn(|i| ld(a, (r0 + i) * k + kk));
                    for j in 0..C {
                        let bv = ld(b, (c0 + j) * k + kk);
                        for i in 0..R {
                            acc[i][j] = $acc(acc[i][j], av[i], bv);
                        }
                    }
                }
                for i in 0..R {
                    for j in 0..C {
                        out[(r0 + i) * n + c0 + j] = $sum(acc[i][j]);
                    }
                }
            }

            #[target_feature(enable = $feature)]
            pub fn gemm(a: &[i16], b: &[i16], m: usize, n: usize, k: usize) -> Vec<i32> {
                let mut out = vec![0i32; m * n];
                let (mr, n4) = (m - m % $r, n - n % 4);
                for r in (0..mr).step_by($r) {
                    for c in (0..n4).step_by(4) {
                        block::<$r, 4>(a, b, k, r, c, &mut out, n);
                    }
                    for c in n4..n {
                        block::<$r, 1>(a, b, k, r, c, &mut out, n);
                    }
                }
                for r in mr..m {
                    for c in 0..n {
                        block::<1, 1>(a, b, k, r, c, &mut out, n);
                    }
                }
                out
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn hsum256(v: std::arch::x86_64::__m256i) -> i32 {
    use std::arch::x86_64::*;
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

simd_product!(x86_64, target_arch = "x86_64", avx2, "avx2", __m256i, 16, 2, _mm256_setzero_si256(), _mm256_loadu_si256, |c, a, b| _mm256_add_epi32(c, _mm256_madd_epi16(a, b)), super::hsum256);
simd_product!(x86_64, target_arch = "x86_64", avx512, "avx512f,avx512vnni", __m512i, 32, 4, _mm512_setzero_si512(), _mm512_loadu_si512, _mm512_dpwssd_epi32, _mm512_reduce_add_epi32);
simd_product!(wasm32, all(target_arch = "wasm32", target_feature = "simd128"), simd128, "simd128", v128, 8, 2, i32x4_splat(0), v128_load, |c, a, b| i32x4_add(c, i32x4_dot_i16x8(a, b)), |v| i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v) + i32x4_extract_lane::<2>(v) + i32x4_extract_lane::<3>(v));

#[cfg(test)]
mod tests {
    use super::*;

    /// Every product path this CPU has gives the portable one's sums (block edges included:
    /// rows and outputs that are not multiples of the block, int8 extremes).
    #[test]
    fn simd_products_match_the_portable_one() {
        let mut rng = crate::rng::Rng::new(7, 1);
        let (m, n, k) = (23, 14, 96);
        let mut v = |len: usize| -> Vec<i16> { (0..len).map(|_| rng.below(256) as i16 - 128).collect() };
        let (mut a, b) = (v(m * k), v(n * k));
        a[5] = -128;
        a[6] = 127;
        let want = gemm_portable(&a, &b, m, n, k);
        assert!(want.iter().any(|&x| x != 0));
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present (checked just above).
                assert_eq!(unsafe { avx2::gemm(&a, &b, m, n, k) }, want, "AVX2");
            }
            if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F and VNNI are present (checked just above).
                assert_eq!(unsafe { avx512::gemm(&a, &b, m, n, k) }, want, "AVX-512 VNNI");
            }
        }
    }

    /// The product cut into bands of rows (as the threaded build cuts it) is the whole product,
    /// bands ending mid-block and more parts than rows included.
    #[test]
    fn the_product_in_bands_is_the_whole_product() {
        let mut rng = crate::rng::Rng::new(11, 2);
        for (m, n, k) in [(1, 3, 32), (23, 14, 96), (64, 10, 128), (130, 7, 32)] {
            let mut v = |len: usize| -> Vec<i16> { (0..len).map(|_| rng.below(256) as i16 - 128).collect() };
            let (a, b) = (v(m * k), v(n * k));
            let want = gemm_i16_one(&a, &b, m, n, k);
            for parts in [2, 3, 7, 200] {
                assert_eq!(gemm_i16_parts(&a, &b, m, n, k, parts), want, "{m}x{n}x{k} in {parts} parts");
            }
        }
    }
}
