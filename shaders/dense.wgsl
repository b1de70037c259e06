// Element-wise pieces of a dense layer, forward and backward side by side:
// bias add, bias gradient (column sums), ReLU and its backward.
// Legend: B = batch rows, O = output features. Y and dY are row-major [B, O].
// CPU twins: reference::ops::{bias_add,bias_grad,relu_forward,relu_backward}_reference.

struct DenseParams {
    rows: u32, // B
    cols: u32, // O
}

@group(0) @binding(0) var<uniform> p: DenseParams;

// bias_add: Y[b, o] += bias[o]        (Y: [B, O], bias: [O])
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn bias_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.rows * p.cols) {
        return;
    }
    y[i] = y[i] + bias[i % p.cols];
}

// bias_grad: dbias[o] = sum_b dY[b, o]   (dY: [B, O], dbias: [O])
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn bias_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    if (o >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var b = 0u; b < p.rows; b = b + 1u) {
        s = s + dy[b * p.cols + o];
    }
    dbias[o] = s;
}

// relu_forward: Y = max(Y, 0), in place.
@group(0) @binding(1) var<storage, read_write> act: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.rows * p.cols) {
        return;
    }
    act[i] = max(act[i], 0.0);
}

// relu_backward: dX = dY * (Y > 0), in place on dY; Y is the ReLU's output.
@group(0) @binding(1) var<storage, read> relu_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.rows * p.cols) {
        return;
    }
    grad[i] = select(0.0, grad[i], relu_out[i] > 0.0);
}
