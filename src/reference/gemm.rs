//! The CPU backend's f32 GEMM in the browser: C[M,N] (+)= op(A)·op(B) with both operands packed
//! into zero-padded panels and multiplied by an MR×NR register-tile micro-kernel (4 × 8 or 2 × 16, per product), written with
//! WebAssembly SIMD (v128) in the wasm build and as plain arrays elsewhere (the same blocking,
//! tested natively against `matmul_reference`; the SIMD path is tested in headless Chromium).
//! In the threaded build (wasm atomics, www/pkg-threads) a large product is cut into bands of C
//! computed on rayon's pool (`gemm_parts`); every element is summed in the same order either way,
//! so the result is bit-identical to one thread's (tested natively, the parts run one by one).
//! Natively the backend keeps ndarray's `matrixmultiply`, whose AVX kernels are faster than this.
//! Legend: A is [M, K] (or [K, M] when `ta`), B is [K, N] (or [N, K] when `tb`), all row-major.

use std::ops::Range;

/// A micro-tile: MR rows of A by NR columns of B, held in MR·NR/4 = 8 v128 accumulators (the most
/// V8 keeps in registers: a 6 × 8 tile, 12 accumulators, ran about 30% slower in Chromium 156,
/// 2026-12-03, from register spills). Two shapes, chosen per product by `tile_for`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    /// 4 × 8: two B vectors a step, four rows of A splatted.
    Narrow,
    /// 2 × 16: four B vectors a step, two rows of A splatted (fewer splats per multiply-add).
    Wide,
}

impl Tile {
    /// Rows of A per tile.
    pub const fn mr(self) -> usize {
        match self {
            Tile::Narrow => 4,
            Tile::Wide => 2,
        }
    }
    /// Columns of B per tile.
    pub const fn nr(self) -> usize {
        TILE / self.mr()
    }
}
/// Elements of either tile.
const TILE: usize = 32;

/// The tile for a product with N columns: the 2 × 16 tile, which ran the same products about 10% faster in
/// V8 (2026-12-07, Node 20, LeNet-300-100's and LeNet-5's products, README), unless its padding of
/// N to a multiple of 16 costs more than that (N = 20 or 50: 32 or 64 columns against 24 or 56).
pub fn tile_for(n: usize) -> Tile {
    let padded = |t: Tile| n.div_ceil(t.nr()) * t.nr();
    if padded(Tile::Wide) * 9 <= padded(Tile::Narrow) * 10 { Tile::Wide } else { Tile::Narrow }
}

/// K per packed block: an A panel (MR·KC) and a B panel (KC·NR) stay in L1 together.
const KC: usize = 256;
/// Rows of A packed at once (a multiple of MR).
const MC: usize = 128;

/// Reused packing buffers (no allocation per call once grown).
#[derive(Default)]
pub struct Packs {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static PACKS: std::cell::RefCell<Packs> = std::cell::RefCell::new(Packs::default());
}

/// C[M,N] = op(A)·op(B) (or += when `accumulate`), C row-major [M, N].
#[allow(clippy::too_many_arguments)]
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize, ta: bool, tb: bool, accumulate: bool) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm operands sized {m}x{k}x{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let threads = super::pool::threads_for(m * n * k);
    if threads > 1 && !accumulate {
        return gemm_parts(a, b, c, m, n, k, ta, tb, threads);
    }
    gemm_with(tile_for(n), a, b, c, m, n, k, ta, tb, accumulate);
}

/// `gemm` with the given micro-tile on one thread. Every tile sums each element in the same order
/// (K ascending within a block, blocks in order), so all give the same bits (tested).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(tile: Tile, a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize, ta: bool, tb: bool, accumulate: bool) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm operands sized {m}x{k}x{n}");
    PACKS.with(|p| gemm_block(tile, &mut p.borrow_mut(), a, b, c, n, (m, n, k), ta, tb, accumulate, 0..m, 0..n));
}

/// How `gemm_parts` cuts C for `parts` threads: into bands of rows (aligned to the tile's MR) when
/// op(A) has at least as many rows as C has columns, else into bands of columns (aligned to its
/// NR); never more bands than there are micro-tiles across.
#[derive(Debug, PartialEq)]
pub enum Cut {
    Rows(Vec<Range<usize>>),
    Cols(Vec<Range<usize>>),
}

pub fn cut(m: usize, n: usize, parts: usize) -> Cut {
    let bands = |len: usize, unit: usize| -> Vec<Range<usize>> {
        let units = len.div_ceil(unit);
        let per = units.div_ceil(parts.clamp(1, units.max(1))) * unit;
        (0..len).step_by(per.max(1)).map(|s| s..(s + per).min(len)).collect()
    };
    let tile = tile_for(n);
    if m >= n { Cut::Rows(bands(m, tile.mr())) } else { Cut::Cols(bands(n, tile.nr())) }
}

/// C[M,N] = op(A)·op(B) computed band by band as `cut` says, the bands on rayon's pool in the
/// threaded build and one after another elsewhere. Bit-identical to `gemm` (no accumulation).
#[allow(clippy::too_many_arguments)]
pub fn gemm_parts(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize, ta: bool, tb: bool, parts: usize) {
    let tile = tile_for(n);
    let block = |c: &mut [f32], ldc: usize, rows: Range<usize>, cols: Range<usize>| {
        PACKS.with(|p| gemm_block(tile, &mut p.borrow_mut(), a, b, c, ldc, (m, n, k), ta, tb, false, rows, cols))
    };
    match cut(m, n, parts) {
        Cut::Rows(bands) => {
            // Disjoint row bands of C, each written in place.
            let mut rest = &mut c[..m * n];
            let mut pieces = Vec::with_capacity(bands.len());
            for rows in bands {
                let (piece, tail) = rest.split_at_mut(rows.len() * n);
                pieces.push((piece, rows));
                rest = tail;
            }
            super::pool::each(pieces, |(piece, rows)| block(piece, n, rows, 0..n));
        }
        Cut::Cols(bands) => {
            // Column bands interleave in C's rows: each is computed into its own [M, band], then copied.
            let done = super::pool::each(bands, |cols| {
                let mut t = vec![0.0; m * cols.len()];
                block(&mut t, cols.len(), 0..m, cols.clone());
                (t, cols)
            });
            for (t, cols) in done {
                for (row, band) in c[..m * n].chunks_exact_mut(n).zip(t.chunks_exact(cols.len())) {
                    row[cols.clone()].copy_from_slice(band);
                }
            }
        }
    }
}

/// Rows `rows` × columns `cols` of C = op(A)·op(B) (or += when `accumulate`), written to `c` as
/// c[(i - rows.start)·ldc + (j - cols.start)]. `cols.start` is a multiple of NR and `cols.end` one
/// too or N, so the column panels are those of the whole product and each element's sum is the same.
#[allow(clippy::too_many_arguments)]
fn gemm_block(tile: Tile, packs: &mut Packs, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, mnk: (usize, usize, usize), ta: bool, tb: bool, accumulate: bool, rows: Range<usize>, cols: Range<usize>) {
    match tile {
        Tile::Wide => gemm_tiles::<2, 16>(packs, a, b, c, ldc, mnk, ta, tb, accumulate, rows, cols),
        Tile::Narrow => gemm_tiles::<4, 8>(packs, a, b, c, ldc, mnk, ta, tb, accumulate, rows, cols),
    }
}

#[allow(clippy::too_many_arguments)]
fn gemm_tiles<const MR: usize, const NR: usize>(packs: &mut Packs, a: &[f32], b: &[f32], c: &mut [f32], ldc: usize, (m, n, k): (usize, usize, usize), ta: bool, tb: bool, accumulate: bool, rows: Range<usize>, cols: Range<usize>) {
    debug_assert!(cols.start % NR == 0 && (cols.end % NR == 0 || cols.end == n));
    let panels = cols.start / NR..cols.end.div_ceil(NR);
    for p0 in (0..k).step_by(KC) {
        let kc = KC.min(k - p0);
        pack_b::<NR>(&mut packs.b, b, n, k, tb, p0, kc, panels.clone(), cols.end);
        // The first K block sets C unless accumulating; later blocks add.
        let add = accumulate || p0 > 0;
        for i0 in rows.clone().step_by(MC) {
            let mc = MC.min(rows.end - i0);
            let mpanels = mc.div_ceil(MR);
            pack_a::<MR>(&mut packs.a, a, m, k, ta, i0, mc, p0, kc, mpanels);
            for (q, jp) in panels.clone().enumerate() {
                let bp = &packs.b[q * kc * NR..(q + 1) * kc * NR];
                let j = jp * NR;
                let ncols = NR.min(cols.end - j);
                for ip in 0..mpanels {
                    let ap = &packs.a[ip * kc * MR..(ip + 1) * kc * MR];
                    let i = i0 + ip * MR;
                    let nrows = MR.min(rows.end - i);
                    let tile = micro_kernel::<MR, NR>(ap, bp, kc);
                    for r in 0..nrows {
                        let at = (i + r - rows.start) * ldc + j - cols.start;
                        let out = &mut c[at..at + ncols];
                        let t = &tile[r * NR..r * NR + ncols];
                        if add {
                            out.iter_mut().zip(t).for_each(|(o, v)| *o += v);
                        } else {
                            out.copy_from_slice(t);
                        }
                    }
                }
            }
        }
    }
}

/// Packs rows i0..i0+mc, k p0..p0+kc of op(A) as panels of MR rows: [panel][p][r], zero-padded.
#[allow(clippy::too_many_arguments)]
fn pack_a<const MR: usize>(dst: &mut Vec<f32>, a: &[f32], m: usize, k: usize, ta: bool, i0: usize, mc: usize, p0: usize, kc: usize, mpanels: usize) {
    dst.clear();
    dst.resize(mpanels * kc * MR, 0.0);
    for ip in 0..mpanels {
        let panel = &mut dst[ip * kc * MR..(ip + 1) * kc * MR];
        for r in 0..MR.min(mc - ip * MR) {
            let i = i0 + ip * MR + r;
            if ta {
                // A is [K, M]: column i, rows p0..
                for p in 0..kc {
                    panel[p * MR + r] = a[(p0 + p) * m + i];
                }
            } else {
                let row = &a[i * k + p0..i * k + p0 + kc];
                for (p, &v) in row.iter().enumerate() {
                    panel[p * MR + r] = v;
                }
            }
        }
    }
}

/// Packs k p0..p0+kc of op(B), the column panels `panels` (columns below `end`), as panels of NR
/// columns: [panel][p][j], zero-padded.
#[allow(clippy::too_many_arguments)]
fn pack_b<const NR: usize>(dst: &mut Vec<f32>, b: &[f32], n: usize, k: usize, tb: bool, p0: usize, kc: usize, panels: Range<usize>, end: usize) {
    dst.clear();
    dst.resize(panels.len() * kc * NR, 0.0);
    for (q, jp) in panels.enumerate() {
        let panel = &mut dst[q * kc * NR..(q + 1) * kc * NR];
        let j0 = jp * NR;
        let cols = NR.min(end - j0);
        if tb {
            // B is [N, K]: row j holds column j of op(B).
            for jj in 0..cols {
                let row = &b[(j0 + jj) * k + p0..(j0 + jj) * k + p0 + kc];
                for (p, &v) in row.iter().enumerate() {
                    panel[p * NR + jj] = v;
                }
            }
        } else {
            for p in 0..kc {
                let row = &b[(p0 + p) * n + j0..(p0 + p) * n + j0 + cols];
                panel[p * NR..p * NR + cols].copy_from_slice(row);
            }
        }
    }
}

/// c + a·b: one fused multiply-add where the build has relaxed SIMD, a multiply and an add otherwise.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
#[inline(always)]
fn madd(a: core::arch::wasm32::v128, b: core::arch::wasm32::v128, c: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    core::arch::wasm32::f32x4_relaxed_madd(a, b, c)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
#[inline(always)]
fn madd(a: core::arch::wasm32::v128, b: core::arch::wasm32::v128, c: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    f32x4_add(c, f32x4_mul(a, b))
}

/// The MR×NR tile Σ_p ap[p][r]·bp[p][j] (row-major [MR, NR], MR·NR = 32): each k step loads NR/4
/// B vectors and splats each row's A value against them.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn micro_kernel<const MR: usize, const NR: usize>(ap: &[f32], bp: &[f32], kc: usize) -> [f32; TILE] {
    use core::arch::wasm32::*;
    const { assert!(MR * NR == TILE && NR % 4 == 0) };
    assert!(ap.len() >= kc * MR && bp.len() >= kc * NR);
    let mut c = [f32x4_splat(0.0); TILE / 4];
    let (mut a, mut b) = (ap.as_ptr(), bp.as_ptr());
    for _ in 0..kc {
        // SAFETY: fewer than kc steps taken and both panels hold kc (asserted above); v128 loads
        // are unaligned.
        unsafe {
            let mut bv = [f32x4_splat(0.0); 4];
            for (v, slot) in bv.iter_mut().enumerate().take(NR / 4) {
                *slot = v128_load(b.add(4 * v) as *const v128);
            }
            for r in 0..MR {
                let ar = v128_load32_splat(a.add(r) as *const u32);
                for v in 0..NR / 4 {
                    c[NR / 4 * r + v] = madd(ar, bv[v], c[NR / 4 * r + v]);
                }
            }
            a = a.add(MR);
            b = b.add(NR);
        }
    }
    let mut tile = [0.0f32; TILE];
    for (i, v) in c.iter().enumerate() {
        // SAFETY: tile has TILE / 4 v128 slots.
        unsafe { v128_store(tile.as_mut_ptr().add(4 * i) as *mut v128, *v) };
    }
    tile
}

/// The MR×NR tile Σ_p ap[p][r]·bp[p][j] (row-major [MR, NR]): the portable twin of the SIMD one.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn micro_kernel<const MR: usize, const NR: usize>(ap: &[f32], bp: &[f32], kc: usize) -> [f32; TILE] {
    const { assert!(MR * NR == TILE) };
    let mut tile = [0.0f32; TILE];
    for (a, b) in ap.chunks_exact(MR).zip(bp.chunks_exact(NR)).take(kc) {
        for r in 0..MR {
            for j in 0..NR {
                tile[r * NR + j] += a[r] * b[j];
            }
        }
    }
    tile
}
