//! The CPU backend's memory bound (experiment::limits::cpu_memory, what the page and the CLI
//! refuse a batch by) against what a training step and an evaluation really allocate, counted by
//! this binary's global allocator: never over the bound, and not so far under it that a batch
//! which would run is refused (the bound it replaced was 8x resnet-mini's step and refused the
//! page's default batch of 64 in the browser). Natively, one thread; the wasm build runs the same
//! code with its own GEMM, whose packing buffers are smaller than matrixmultiply's.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::{fresh_rng, synthetic_sized};
use squeeze::compress::quant::{Scheme, SchemeKind};
use squeeze::data::Splits;
use squeeze::experiment::limits::cpu_memory;
use squeeze::nn::{Net, NetParams, Op, OptimizerConfig, OptimizerKind, Role, Shape, Transforms};
use squeeze::reference::net::CpuTrainer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// The system allocator, counting the bytes live now and the most live since `reset`.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, SeqCst) + by;
    PEAK.fetch_max(now, SeqCst);
}

// SAFETY: every call goes to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), SeqCst);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, size) };
        if !q.is_null() {
            if size >= layout.size() {
                grew(size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - size, SeqCst);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes live at most while `f` runs, above those live when it starts.
fn peak_during(f: impl FnOnce()) -> u64 {
    let base = LIVE.load(SeqCst);
    PEAK.store(base, SeqCst);
    f();
    (PEAK.load(SeqCst) - base) as u64
}

#[test]
fn the_cpu_memory_bound_holds_a_step_and_an_evaluation_and_is_not_far_over() {
    assert!(squeeze::reference::pool::set_threads(1), "the pool was made before this test");
    let (mut rng, seed) = fresh_rng("cpu memory");
    let input = Shape::new(28, 28, 1);
    let resnet = Net::resnet_mini(input, &[16, 32, 64], 10);
    // The last case trains with quantized weights and learned activation steps (LSQ): its tape
    // also keeps each quantized output's mask and unquantized copy.
    let cases = [
        (Net::mlp(input, &[300, 100], 10), 32, false),
        (Net::lenet5(input, 10), 16, false),
        (Net::vgg_mini(input, &[16, 32], 10), 8, false),
        (resnet.clone(), 8, false),
        (resnet, 8, true),
    ];
    let opt = OptimizerConfig { kind: OptimizerKind::Sgd, lr: 0.01, momentum: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, l1: 0.0 };
    for (net, batch, quantized) in cases {
        let rows = 48; // evaluated at once
        let data = Splits::new("synthetic", synthetic_sized(&mut rng, batch, 28, 28), synthetic_sized(&mut rng, rows, 28, 28)).unwrap();
        let norm = data.train.normalization();
        let bound = cpu_memory(&net);
        let init = NetParams::init(&net, seed);
        let mut t = CpuTrainer::new(&net, init.clone(), opt.clone(), data, norm, batch);
        if quantized {
            let w4 = Scheme { kind: SchemeKind::Symmetric, bits: 4, per_channel: true };
            let a8 = Scheme { kind: SchemeKind::Asymmetric, bits: 8, per_channel: false }.fit_ranges(&[(0.0, 4.0)]);
            t.set_transforms(&Transforms {
                weights: net.tensors().iter().enumerate().map(|(j, i)| (i.role == Role::Weight).then(|| w4.fit(&init.tensors[j], i.cols))).collect(),
                activations: net.nodes.iter().map(|n| matches!(n.op, Op::Conv { .. } | Op::Dense { .. } | Op::Add).then(|| a8.clone())).collect(),
                shared: vec![],
                learned: true,
            });
        }
        t.begin_epoch(&(0..batch as u32).collect::<Vec<_>>());
        t.set_eval_rows(rows);
        // Two steps: the first also grows what persists (momentum is already allocated).
        let step = (0..2).map(|_| peak_during(|| t.train_step(0, batch, 0.01))).max().unwrap();
        let eval = peak_during(|| {
            t.evaluate();
        });
        let (step_bound, eval_bound) = (bound.fixed + bound.per_sample * batch as u64, bound.fixed + bound.per_row * rows as u64);
        let what = format!("{} at batch {batch}{} (seed {seed}): step {step} B against {step_bound} (per sample {}), evaluation of {rows} rows {eval} B against {eval_bound} (per row {})", net.arch, if quantized { ", quantized" } else { "" }, bound.per_sample, bound.per_row);
        assert!(step <= step_bound && eval <= eval_bound, "over the bound: {what}");
        // The batch-dependent parts are not far over what the step and the evaluation hold.
        assert!(bound.per_sample * batch as u64 <= 3 * step && bound.per_row * rows as u64 <= 3 * eval, "far over: {what}");
        eprintln!("{what}");
    }
}
