//! The CPU backend's wasm GEMM on its own (bench/wasm-gemm.mjs): `src/reference/gemm.rs` compiled
//! in unchanged, with one thread (the `pool` below stands in for reference::pool), and a
//! register-only multiply-add loop that measures what the engine running it can do at best.

use wasm_bindgen::prelude::*;

#[path = "../../src/reference/gemm.rs"]
#[allow(dead_code)]
mod gemm;

/// One thread: what reference::pool is in the single-thread wasm builds.
#[allow(dead_code)]
mod pool {
    pub fn threads_for(_macs: usize) -> usize {
        1
    }
    pub fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
        items.into_iter().map(f).collect()
    }
}

/// Operands of one product, made once and multiplied `iters` times by `run`.
#[wasm_bindgen]
pub struct Product {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    mnk: (usize, usize, usize),
    ta: bool,
    tb: bool,
}

#[wasm_bindgen]
impl Product {
    /// C [M, N] = op(A)·op(B) with A [M, K] (or [K, M] when `ta`), B [K, N] (or [N, K] when `tb`).
    #[wasm_bindgen(constructor)]
    pub fn new(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Product {
        let fill = |len: usize, s: usize| (0..len).map(|i| ((i * s) % 17) as f32 / 17.0 - 0.5).collect();
        Product { a: fill(m * k, 7), b: fill(k * n, 5), c: vec![0.0; m * n], mnk: (m, n, k), ta, tb }
    }

    /// Runs the product `iters` times with the tile `tile_for` picks ("auto"), "4x8" or "2x16";
    /// returns one element of C (so the work cannot be dropped).
    pub fn run(&mut self, tile: &str, iters: u32) -> Result<f32, JsError> {
        let (m, n, k) = self.mnk;
        let t = match tile {
            "auto" => gemm::tile_for(n),
            "4x8" => gemm::Tile::Narrow,
            "2x16" => gemm::Tile::Wide,
            _ => return Err(JsError::new("tile is auto, 4x8 or 2x16")),
        };
        for _ in 0..iters {
            gemm::gemm_with(t, &self.a, &self.b, &mut self.c, m, n, k, self.ta, self.tb, false);
        }
        Ok(self.c[0])
    }
}

/// `iters` turns of 2·N multiply-adds on N independent v128 accumulators held in registers (no
/// memory traffic): 8·N·iters multiply-adds. One fused multiply-add each in the relaxed-SIMD
/// build, a multiply and an add otherwise (as the GEMM's `madd`). With 12 chains, the best rate the
/// engine gives; with 8, as many as the GEMM's micro-tiles hold, so what a chain's latency allows.
fn peak_chains<const N: usize>(iters: u32, x: f32) -> f32 {
    use core::arch::wasm32::*;
    #[inline(always)]
    fn madd(a: v128, b: v128, c: v128) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        return f32x4_relaxed_madd(a, b, c);
        #[cfg(not(target_feature = "relaxed-simd"))]
        f32x4_add(c, f32x4_mul(a, b))
    }
    let (a, b) = (f32x4_splat(x), f32x4_splat(0.999));
    let mut c = [f32x4_splat(0.0); N];
    for (i, c) in c.iter_mut().enumerate() {
        *c = f32x4_splat(i as f32);
    }
    for _ in 0..iters {
        for c in c.iter_mut() {
            *c = madd(a, b, *c);
        }
        for c in c.iter_mut() {
            *c = madd(b, a, *c);
        }
    }
    let s = c.iter().fold(f32x4_splat(0.0), |s, c| f32x4_add(s, *c));
    f32x4_extract_lane::<0>(s)
}

/// `peak_chains` with 12 accumulators: 96·iters multiply-adds.
#[wasm_bindgen]
pub fn peak(iters: u32, x: f32) -> f32 {
    peak_chains::<12>(iters, x)
}

/// `peak_chains` with 8 accumulators: 64·iters multiply-adds.
#[wasm_bindgen]
pub fn peak8(iters: u32, x: f32) -> f32 {
    peak_chains::<8>(iters, x)
}
