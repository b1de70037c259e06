// Max and average pooling (no padding), forward and backward side by side. NHWC; the uniform is
// conv.wgsl's SpatialParams (pad = 0, c = channels in and out). Backward kernels gather: one
// invocation per input element sums the windows that cover it (no atomics, deterministic).
// CPU twins: reference::ops::{maxpool,avgpool}_{forward,backward}_reference.

struct SpatialParams {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    pad: u32,
    accumulate: u32, // backward: 1 adds into dX, 0 overwrites
    outputs: u32,    // unused here
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: SpatialParams;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u; // 2D grid past 65535 groups
}

// maxpool_forward: y[b, oy, ox, ci] = max of the K×K window; argmax = flat index into X of the
// first maximum (row-major window order, as the CPU twin).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(gid, nwg);
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
    let o = flat_id(gid, nwg);
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

// Window (oy, ox) of output covering input row `y` at offset kh, if any: oy = (y − kh) / S.
fn covering(v: u32, kk: u32, side: u32) -> i32 {
    let t = i32(v) - i32(kk);
    if (t < 0 || u32(t) % p.stride != 0u || u32(t) / p.stride >= side) {
        return -1;
    }
    return t / i32(p.stride);
}

@compute @workgroup_size(256, 1, 1)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.batch * p.h * p.w * p.c) {
        return;
    }
    let ci = i % p.c;
    let xx = (i / p.c) % p.w;
    let yy = (i / (p.c * p.w)) % p.h;
    let b = i / (p.c * p.w * p.h);
    var s = 0.0;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        let oy = covering(yy, kh, p.oh);
        if (oy < 0) {
            continue;
        }
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let ox = covering(xx, kw, p.ow);
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
    let i = flat_id(gid, nwg);
    if (i >= p.batch * p.h * p.w * p.c) {
        return;
    }
    let ci = i % p.c;
    let xx = (i / p.c) % p.w;
    let yy = (i / (p.c * p.w)) % p.h;
    let b = i / (p.c * p.w * p.h);
    var s = 0.0;
    for (var kh = 0u; kh < p.k; kh = kh + 1u) {
        let oy = covering(yy, kh, p.oh);
        if (oy < 0) {
            continue;
        }
        for (var kw = 0u; kw < p.k; kw = kw + 1u) {
            let ox = covering(xx, kw, p.ow);
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
