// Fake quantization (quantize, then dequantize) of weights and activations, and the
// straight-through estimator's gradient. The quantizer is compress::quant::QuantFn as data:
//   affine (mode 0), per tensor or per channel c = i % cols, table[3c..3c+3] = [inv_step, step, zero]:
//     q = clamp(floor(w·inv_step + zero + 0.5), qmin, qmax);   value = (q − zero)·step
//   levels (mode 1): the nearest of the sorted table[0..levels] (ties to the lower);
//   f16 (mode 2): rounded to half precision (pack2x16float, no shader-f16 needed), saturating.
// Exact zeros stay zero (pruned weights stay pruned). A value is "inside" when the quantizer did
// not clip it; the straight-through gradient passes only there.
//   fake_quant:     dst = fq(src)                          (weights: the copy forward reads)
//   fake_quant_act: y = fq(y) in place, inside = [y inside] (activations, after the node's ReLU)
//   ste_clip:       grad *= [w inside]                     (the f32 master weight's gradient)
// Backward of fake_quant_act is mask_apply(dY, inside) (shaders/mask.wgsl).
// Learned step size (LSQ, Esser et al. 2020) for affine quantizers with inv_step = 1/step, the
// zero point fixed: value v = (q − zero)·step with q = round(clamp(u, qmin, qmax)), u = x/step + zero;
// as in the paper the range is qmin ≤ u ≤ qmax (not the rounding range of `inside`), and
//   ∂v/∂step = q − u inside the range, q − zero outside (q = qmin or qmax), 0 at x = 0.
//   fake_quant_act_raw: fake_quant_act keeping the raw value x (for lsq_backward) instead of the mask
//   lsq_backward:  per channel c (one workgroup each; per tensor: one), d the gradient w.r.t. v:
//                  gtable[3c + 1] = grad_scale · Σ_i d[i]·∂v_i/∂step (gtable[3c], gtable[3c + 2] = 0),
//                  then d[i] *= [qmin ≤ u_i ≤ qmax] (the straight-through part)
//                  x: a master weight and d its gradient; or an activation's raw value and d = dY
//   lsq_sync:      table[3c] = 1/table[3c + 1] once the optimizer moved the step (kept positive)
// Dynamic activation ranges (QuantFn::Dynamic):
//   act_range:     table[0..3] = the affine fit (compress::quant::Scheme::fit_ranges, per tensor) of
//                  the min-max of this batch's valid rows of y (p.n elements per row; the step
//                  uniform's `valid` rows): symmetric when qmin < 0, else asymmetric. Runs before
//                  fake_quant_act reads the table, in the same submit.
// CPU twins: reference::ops::{fake_quant,fake_quant_act,ste_clip,fake_quant_act_raw,lsq_backward,lsq_sync,act_range}_reference.

struct QuantParams {
    n: u32,           // elements
    cols: u32,        // columns of the tensor (channel = i % cols when per_channel)
    per_channel: u32,
    mode: u32,        // 0 affine, 1 levels, 2 f16
    qmin: i32,
    qmax: i32,
    levels: u32,      // mode 1: entries of the table
    grad_scale: f32,  // lsq_backward: LSQ's gradient scale 1/sqrt(N·Q_P)
}

@group(0) @binding(0) var<uniform> p: QuantParams;
@group(0) @binding(1) var<storage, read> table: array<f32>;

fn channel_of(i: u32) -> u32 {
    if (p.per_channel == 1u) {
        return i % p.cols;
    }
    return 0u;
}

fn fq(w: f32, c: u32) -> f32 {
    if (w == 0.0) {
        return 0.0;
    }
    if (p.mode == 0u) {
        let zero = table[3u * c + 2u];
        let x = w * table[3u * c] + zero;
        let q = clamp(floor(x + 0.5), f32(p.qmin), f32(p.qmax));
        return (q - zero) * table[3u * c + 1u];
    }
    if (p.mode == 1u) {
        var k = 0u;
        while (k + 1u < p.levels && w > (table[k] + table[k + 1u]) * 0.5) {
            k = k + 1u;
        }
        return table[k];
    }
    return unpack2x16float(pack2x16float(vec2<f32>(clamp(w, -65504.0, 65504.0), 0.0))).x;
}

fn inside(w: f32, c: u32) -> bool {
    if (p.mode == 0u) {
        let x = w * table[3u * c] + table[3u * c + 2u] + 0.5;
        return x >= f32(p.qmin) && x < f32(p.qmax) + 1.0;
    }
    if (p.mode == 1u) {
        return w >= table[0] && w <= table[p.levels - 1u];
    }
    return abs(w) <= 65504.0;
}

// fake_quant: dst[i] = fq(src[i])
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn fake_quant(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    dst[i] = fq(src[i], channel_of(i));
}

// fake_quant_act: y[i] = fq(y[i]); keep[i] = 1 if y[i] was inside, else 0
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> keep: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn fake_quant_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    let c = channel_of(i);
    let v = y[i];
    keep[i] = select(0.0, 1.0, inside(v, c));
    y[i] = fq(v, c);
}

// ste_clip: grad[i] = 0 where the master weight w[i] is outside the quantizer's range
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn ste_clip(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    if (!inside(w[i], channel_of(i))) {
        grad[i] = 0.0;
    }
}

// fake_quant_act_raw: y[i] = fq(y[i]); keep[i] = the value before quantization (for lsq_backward)
@compute @workgroup_size(256, 1, 1)
fn fake_quant_act_raw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    let v = y[i];
    keep[i] = v;
    y[i] = fq(v, channel_of(i));
}

// LSQ's range: qmin ≤ x/step + zero ≤ qmax.
fn lsq_inside(x: f32, c: u32) -> bool {
    let u = x * table[3u * c] + table[3u * c + 2u];
    return u >= f32(p.qmin) && u <= f32(p.qmax);
}

// ∂fq(x)/∂step of affine channel c (see the head of this file).
fn step_slope(x: f32, c: u32) -> f32 {
    if (x == 0.0) {
        return 0.0;
    }
    let zero = table[3u * c + 2u];
    let u = x * table[3u * c] + zero;
    let q = clamp(floor(u + 0.5), f32(p.qmin), f32(p.qmax));
    if (lsq_inside(x, c)) {
        return q - u;
    }
    return q - zero;
}

// lsq_backward: x = w (binding 2), d = grad (binding 3), the step gradients into gtable
@group(0) @binding(4) var<storage, read_write> gtable: array<f32>;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn lsq_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wg.x;
    var count = p.n;
    var stride = 1u;
    var start = 0u;
    if (p.per_channel == 1u) {
        count = p.n / p.cols;
        stride = p.cols;
        start = c;
    }
    var s = 0.0;
    for (var k = lid; k < count; k = k + 256u) {
        let i = start + k * stride;
        let x = w[i];
        s = s + grad[i] * step_slope(x, c);
        if (!lsq_inside(x, c)) {
            grad[i] = 0.0;
        }
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var h = 128u; h > 0u; h = h >> 1u) {
        if (lid < h) {
            partial[lid] = partial[lid] + partial[lid + h];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        gtable[3u * c] = 0.0;
        gtable[3u * c + 1u] = p.grad_scale * partial[0];
        gtable[3u * c + 2u] = 0.0;
    }
}

// lsq_sync: p.n channels; inv_step follows the step the optimizer moved
@group(0) @binding(1) var<storage, read_write> table_rw: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn lsq_sync(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.n) {
        return;
    }
    let s = max(table_rw[3u * c + 1u], 1e-8);
    table_rw[3u * c + 1u] = s;
    table_rw[3u * c] = 1.0 / s;
}

// act_range: one workgroup; reads y (binding 2) and the step (binding 5), writes table_rw
@group(0) @binding(5) var<uniform> step: StepParams;
var<workgroup> lows: array<f32, 256>;
var<workgroup> highs: array<f32, 256>;

// A step of 0 or not finite (an all-zero range) becomes 1 (as compress::quant's `nonzero`).
fn nonzero_step(s: f32) -> f32 {
    if (s > 0.0 && s <= bitcast<f32>(0x7f7fffffu)) {
        return s;
    }
    return 1.0;
}

@compute @workgroup_size(256, 1, 1)
fn act_range(@builtin(local_invocation_index) lid: u32) {
    let count = step.valid * p.n;
    var lo = 0.0;
    var hi = 0.0;
    for (var i = lid; i < count; i = i + 256u) {
        lo = min(lo, y[i]);
        hi = max(hi, y[i]);
    }
    lows[lid] = lo;
    highs[lid] = hi;
    workgroupBarrier();
    for (var h = 128u; h > 0u; h = h >> 1u) {
        if (lid < h) {
            lows[lid] = min(lows[lid], lows[lid + h]);
            highs[lid] = max(highs[lid], highs[lid + h]);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let l = lows[0];
        let u = highs[0];
        if (p.qmin < 0) {
            let s = nonzero_step(max(-l, u) / f32(p.qmax));
            table_rw[0] = 1.0 / s;
            table_rw[1] = s;
            table_rw[2] = 0.0;
        } else {
            let levels = f32(p.qmax);
            let s = nonzero_step((u - l) / levels);
            table_rw[0] = 1.0 / s;
            table_rw[1] = s;
            table_rw[2] = clamp(floor(-l / s + 0.5), 0.0, levels);
        }
    }
}
