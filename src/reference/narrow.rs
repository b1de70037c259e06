//! Native f32 products with a narrow output, C[M, N] = A[M, K]·op(B) with N ≤ 32 (a convolution's
//! few filters over many output positions, a classifier's 10 outputs): A is read in place, row by
//! row, and only B is packed (K × NP, NP = N rounded up to 8, zero-padded), so each row block of C
//! stays in registers while K streams past. `matrixmultiply` packs A as well, which for these
//! shapes (A = the im2col matrix, 50,176 × 144 in resnet-mini's first block at batch 64) moves as
//! much memory as the product itself: its packing was 54% of a resnet-mini CPU step (perf,
//! 2026-12-03). x86-64 with AVX2 and FMA gets the kernel compiled for them (runtime check); other
//! machines the same loops for the baseline. The browser build has its own GEMM (gemm.rs).

use std::array;

/// The widest output this path takes.
pub const MAX_N: usize = 32;

/// C[M, N] = A[M, K]·op(B), B [K, N] (or [N, K] when `tb`), all row-major; N ≤ MAX_N. A large
/// product's rows are cut into bands on the pool (reference::pool).
pub fn narrow_gemm(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, tb: bool) -> Vec<f32> {
    narrow_gemm_parts(a, b, m, n, k, tb, super::pool::threads_for(m * n * k))
}

/// `narrow_gemm` with C's rows cut into `parts` bands (whole row blocks each, the last takes the
/// rest). Every row is summed the same way in any band, so the result is bit-identical.
pub fn narrow_gemm_parts(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, tb: bool, parts: usize) -> Vec<f32> {
    assert!(n <= MAX_N && a.len() >= m * k && b.len() >= k * n, "narrow product {m}x{k}x{n}");
    let mut c = vec![0.0f32; m * n];
    if m == 0 || n == 0 || k == 0 {
        return c;
    }
    match n.next_multiple_of(8) {
        8 => run::<6, 8>(a, b, &mut c, n, k, tb, parts),
        16 => run::<4, 16>(a, b, &mut c, n, k, tb, parts),
        24 => run::<3, 24>(a, b, &mut c, n, k, tb, parts),
        _ => run::<2, 32>(a, b, &mut c, n, k, tb, parts),
    }
    c
}

/// Packs op(B) as [K, NP] once, then each band of rows (`band`) on the pool.
fn run<const R: usize, const NP: usize>(a: &[f32], b: &[f32], c: &mut [f32], n: usize, k: usize, tb: bool, parts: usize) {
    let mut bp = vec![0.0f32; k * NP];
    for (p, row) in bp.chunks_exact_mut(NP).enumerate() {
        for (j, v) in row[..n].iter_mut().enumerate() {
            *v = if tb { b[j * k + p] } else { b[p * n + j] };
        }
    }
    let m = c.len() / n;
    let per = m.div_ceil(parts.clamp(1, m)).next_multiple_of(R);
    let bands: Vec<_> = a[..m * k].chunks(per * k).zip(c.chunks_mut(per * n)).collect();
    let bp = &bp;
    super::pool::each(bands, |(a, c)| band::<R, NP>(a, bp, c, n, k));
}

/// Rows of C from the same rows of A: blocks of R rows, then the last rows one at a time.
fn band<const R: usize, const NP: usize>(a: &[f32], bp: &[f32], c: &mut [f32], n: usize, k: usize) {
    let m = c.len() / n;
    let whole = m / R * R;
    let (c_whole, c_rest) = c.split_at_mut(whole * n);
    let (a_whole, a_rest) = a[..m * k].split_at(whole * k);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA are present (checked just above).
        unsafe {
            fma::blocks::<R, NP>(a_whole, bp, c_whole, n, k);
            fma::blocks::<1, NP>(a_rest, bp, c_rest, n, k);
        }
        return;
    }
    blocks::<R, NP>(a_whole, bp, c_whole, n, k, |x, b, acc| x * b + acc);
    blocks::<1, NP>(a_rest, bp, c_rest, n, k, |x, b, acc| x * b + acc);
}

#[cfg(target_arch = "x86_64")]
mod fma {
    /// `super::blocks` compiled for AVX2 with fused multiply-adds.
    #[target_feature(enable = "avx2,fma")]
    pub fn blocks<const R: usize, const NP: usize>(a: &[f32], bp: &[f32], c: &mut [f32], n: usize, k: usize) {
        super::blocks::<R, NP>(a, bp, c, n, k, f32::mul_add);
    }
}

/// Every block of R rows of A (`a` holds whole blocks): its R × NP accumulators, over K, each step
/// one broadcast A value per row times B's packed row; C gets the first N columns.
#[inline(always)]
fn blocks<const R: usize, const NP: usize>(a: &[f32], bp: &[f32], c: &mut [f32], n: usize, k: usize, madd: impl Fn(f32, f32, f32) -> f32) {
    for (a, c) in a.chunks_exact(R * k).zip(c.chunks_exact_mut(R * n)) {
        let rows: [&[f32]; R] = array::from_fn(|r| &a[r * k..(r + 1) * k]);
        let mut acc = [[0.0f32; NP]; R];
        for (p, b) in bp.chunks_exact(NP).enumerate().take(k) {
            for r in 0..R {
                let x = rows[r][p];
                for j in 0..NP {
                    acc[r][j] = madd(x, b[j], acc[r][j]);
                }
            }
        }
        for (out, acc) in c.chunks_exact_mut(n).zip(&acc) {
            out.copy_from_slice(&acc[..n]);
        }
    }
}
