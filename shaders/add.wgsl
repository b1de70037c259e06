// Residual connections: y = a + b forward; backward, the gradient reaching a node from several
// readers is summed with add_into (dst = src, or dst += src).
// CPU twins: reference::ops::{add_forward,add_into}_reference.

struct AddParams {
    n: u32,          // elements
    accumulate: u32, // add_into: 1 adds, 0 copies
}

@group(0) @binding(0) var<uniform> p: AddParams;

// add_forward: y = a + b
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn add_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    y[i] = a[i] + b[i];
}

// add_into: dst (+)= src
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn add_into(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    var v = src[i];
    if (p.accumulate != 0u) {
        v = v + dst[i];
    }
    dst[i] = v;
}
