//! The CPU backend's threads: rayon's pool in the threaded wasm build (www/pkg-threads, where the
//! worker starts the pool before it creates the engine), one thread everywhere else. Only products
//! large enough to pay for waking the pool use it; the f32 and i16 GEMMs cut theirs into bands.

/// Multiply-adds below which a product stays on one thread (waking the pool costs more).
pub const PARALLEL_MIN: usize = 1 << 20;

/// How many threads a product of `macs` multiply-adds should be cut for (1: do it in one piece).
pub fn threads_for(macs: usize) -> usize {
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    if macs >= PARALLEL_MIN {
        return rayon::current_num_threads();
    }
    let _ = macs;
    1
}

/// `f` over `items`, results in order: on the pool in the threaded build, one after another elsewhere.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    items.into_par_iter().map(f).collect()
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
pub fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    items.into_iter().map(f).collect()
}
