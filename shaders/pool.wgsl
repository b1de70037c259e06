// Max and average pooling (no padding), forward and backward side by side. NHWC; the uniform is
// the preamble's SpatialParams (shaders/common.wgsl) (pad = 0, c = channels in and out). Backward kernels gather: one
// invocation per input element sums the windows that cover it (no atomics, deterministic).
// CPU twins: reference::ops::{maxpool,avgpool}_{forward,backward}_reference.

@group(0) @binding(0) var<uniform> p: SpatialParams;

// maxpool_forward: y[b, oy, ox, ci] = max of the K×K window; argmax = flat index into X of the
// first maximum (row-major window order, as the CPU twin).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(gid, nwg, 256u);
    if (o >= p.batch * p.oh * p.ow * p.c) {
        return;
    }
    let ci = o % p.c;
    let ox = (o / p.c) % p.ow;
    let oy = (o / (p.c * p.ow)) % p.oh;
    let b = o / (p.c * p.ow * p.oh);
    var best = -3.4e38;
    var at = 0u;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let i = ((b * p.h + oy * p.stride + kh) * p.w + ox * p.stride + kw) * p.c + ci;
            let v = x[i];
            if (v > best) {
                best = v;
                at = i;
            }
        }
    }
    y[o] = best;
    argmax[o] = at;
}

// avgpool_forward: y[b, oy, ox, ci] = mean of the K×K window.
@compute @workgroup_size(256, 1, 1)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(gid, nwg, 256u);
    if (o >= p.batch * p.oh * p.ow * p.c) {
        return;
    }
    let ci = o % p.c;
    let ox = (o / p.c) % p.ow;
    let oy = (o / (p.c * p.ow)) % p.oh;
    let b = o / (p.c * p.ow * p.oh);
    var s = 0.0;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            s = s + x[((b * p.h + oy * p.stride + kh) * p.w + ox * p.stride + kw) * p.c + ci];
        }
    }
    y[o] = s / f32(p.k * p.k);
}

// Backward: dX (+)= the dY of every window covering the pixel (max: only where it was the argmax;
// average: divided by K²).
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<storage, read> arg: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.batch * p.h * p.w * p.c) {
        return;
    }
    let ci = i % p.c;
    let xx = (i / p.c) % p.w;
    let yy = (i / (p.c * p.w)) % p.h;
    let b = i / (p.c * p.w * p.h);
    var s = 0.0;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        let oy = covering(yy, kh, p.oh, p.stride, 0u);
        if (oy < 0) {
            continue;
        }
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let ox = covering(xx, kw, p.ow, p.stride, 0u);
            if (ox < 0) {
                continue;
            }
            let o = ((b * p.oh + u32(oy)) * p.ow + u32(ox)) * p.c + ci;
            if (arg[o] == i) {
                s = s + dy[o];
            }
        }
    }
    if (p.accumulate != 0u) {
        s = s + dx[i];
    }
    dx[i] = s;
}

@compute @workgroup_size(256, 1, 1)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.batch * p.h * p.w * p.c) {
        return;
    }
    let ci = i % p.c;
    let xx = (i / p.c) % p.w;
    let yy = (i / (p.c * p.w)) % p.h;
    let b = i / (p.c * p.w * p.h);
    var s = 0.0;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        let oy = covering(yy, kh, p.oh, p.stride, 0u);
        if (oy < 0) {
            continue;
        }
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let ox = covering(xx, kw, p.ow, p.stride, 0u);
            if (ox < 0) {
                continue;
            }
            s = s + dy[((b * p.oh + u32(oy)) * p.ow + u32(ox)) * p.c + ci];
        }
    }
    s = s / f32(p.k * p.k);
    if (p.accumulate != 0u) {
        s = s + dx[i];
    }
    dx[i] = s;
}
