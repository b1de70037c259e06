//! The CPU backend's threads: rayon's pool in the threaded wasm build (www/pkg-threads, where the
//! worker starts the pool before it creates the engine), one thread everywhere else. Only products
//! large enough to pay for waking the pool use it; the f32 and i16 GEMMs cut theirs into bands, the
//! optimizer's update its large tensors into chunks.

/// Multiply-adds below which a product stays on one thread (waking the pool costs more).
pub const PARALLEL_MIN: usize = 1 << 20;

/// Elements below which an element-wise pass (the optimizer's update) stays on one thread.
pub const ELEMENTWISE_MIN: usize = 1 << 17;

/// How many threads a product of `macs` multiply-adds should be cut for (1: do it in one piece):
/// the pool's threads and the engine's own, which works on the first part meanwhile.
pub fn threads_for(macs: usize) -> usize {
    threads_over(macs, PARALLEL_MIN)
}

/// How many threads an element-wise pass over `n` elements should be cut for.
pub fn threads_for_elements(n: usize) -> usize {
    threads_over(n, ELEMENTWISE_MIN)
}

fn threads_over(work: usize, min: usize) -> usize {
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    if work >= min {
        return rayon::current_num_threads() + 1;
    }
    let _ = (work, min);
    1
}

/// `f` over `items`, results in order. In the threaded build the calling thread (the engine's)
/// does the first item while the pool does the rest, so a product cut in two wakes one worker,
/// not two with the caller asleep; elsewhere one after another.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    let mut out: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let f = &f;
    rayon::in_place_scope(|s| {
        let mut parts = out.iter_mut().zip(items);
        let first = parts.next();
        for (slot, item) in parts {
            s.spawn(move |_| *slot = Some(f(item)));
        }
        if let Some((slot, item)) = first {
            *slot = Some(f(item));
        }
    });
    out.into_iter().map(|r| r.expect("the scope ran every part")).collect()
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
pub fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    items.into_iter().map(f).collect()
}
