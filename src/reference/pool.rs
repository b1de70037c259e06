//! The CPU backend's threads: rayon's pool in the threaded wasm build (www/pkg-threads, where the
//! worker starts the pool before it creates the engine), a pool of its own natively (one thread
//! per core less the caller's; `set_threads` or $SQUEEZE_THREADS say otherwise), one thread in the
//! other wasm builds. Only work large enough to pay for waking the pool uses it; the f32 and i16
//! GEMMs cut theirs into bands, the optimizer's update and im2col theirs into chunks. Every part
//! is computed as it would be in one piece, so the results do not depend on the thread count.

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
    #[cfg(not(target_arch = "wasm32"))]
    if work >= min {
        if let Some(pool) = native::pool() {
            return pool.current_num_threads() + 1;
        }
    }
    let _ = (work, min);
    1
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{set_threads, threads};

/// The threads the CPU backend's large products run on, the caller's included.
#[cfg(target_arch = "wasm32")]
pub fn threads() -> usize {
    #[cfg(target_feature = "atomics")]
    return rayon::current_num_threads() + 1;
    #[cfg(not(target_feature = "atomics"))]
    1
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    static WANTED: AtomicUsize = AtomicUsize::new(0);
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();

    /// Use `n` threads in all (the caller's included; 1: no pool). Only before the first product:
    /// returns false once the pool exists with another size.
    pub fn set_threads(n: usize) -> bool {
        WANTED.store(n.max(1), Ordering::SeqCst);
        POOL.get().is_none_or(|_| threads() == n.max(1))
    }

    /// The threads the CPU backend's large products run on, the caller's included.
    pub fn threads() -> usize {
        pool().map_or(1, |p| p.current_num_threads() + 1)
    }

    /// The pool, made on first use: `set_threads`, else $SQUEEZE_THREADS, else one thread per core.
    pub(super) fn pool() -> Option<&'static rayon::ThreadPool> {
        POOL.get_or_init(|| {
            let wanted = match WANTED.load(Ordering::SeqCst) {
                0 => std::env::var("SQUEEZE_THREADS").ok().and_then(|v| v.trim().parse().ok()),
                n => Some(n),
            };
            let n = wanted.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).clamp(1, 64);
            (n > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(n - 1).thread_name(|i| format!("squeeze-cpu-{i}")).build().ok()).flatten()
        })
        .as_ref()
    }
}

/// `f` over `items`, results in order. Where there is a pool the calling thread (the engine's)
/// does the first item while the pool does the rest, so a product cut in two wakes one worker,
/// not two with the caller asleep; elsewhere one after another.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
pub fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    #[cfg(not(target_arch = "wasm32"))]
    let Some(pool) = native::pool().filter(|_| items.len() > 1) else {
        return items.into_iter().map(f).collect();
    };
    let mut out: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let (slots, f) = (&mut out[..], &f);
    #[cfg(not(target_arch = "wasm32"))]
    pool.in_place_scope(|s| spawn_all(s, slots, items, f));
    #[cfg(target_arch = "wasm32")]
    rayon::in_place_scope(|s| spawn_all(s, slots, items, f));
    out.into_iter().map(|r| r.expect("the scope ran every part")).collect()
}

/// Every item but the first spawned on the scope, the first done here; results into `slots`.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
fn spawn_all<'s, T: Send + 's, R: Send + 's, F: Fn(T) -> R + Sync>(s: &rayon::Scope<'s>, slots: &'s mut [Option<R>], items: Vec<T>, f: &'s F) {
    let mut parts = slots.iter_mut().zip(items);
    let first = parts.next();
    for (slot, item) in parts {
        s.spawn(move |_| *slot = Some(f(item)));
    }
    if let Some((slot, item)) = first {
        *slot = Some(f(item));
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
pub fn each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    items.into_iter().map(f).collect()
}
