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
// CPU twins: reference::ops::{fake_quant,fake_quant_act,ste_clip}_reference.

struct QuantParams {
    n: u32,           // elements
    cols: u32,        // columns of the tensor (channel = i % cols when per_channel)
    per_channel: u32,
    mode: u32,        // 0 affine, 1 levels, 2 f16
    qmin: i32,
    qmax: i32,
    levels: u32,      // mode 1: entries of the table
    _pad: u32,
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
