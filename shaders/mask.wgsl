// Pruning masks on the GPU: applying a 0/1 mask to a parameter (after every optimizer step in hard
// mode, once per mask update in soft mode), and accumulating first-order Taylor importance.
// CPU twins: reference::ops::{mask_apply,taylor_accumulate}_reference.

struct MaskParams {
    n: u32, // elements
}

@group(0) @binding(0) var<uniform> p: MaskParams;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;

// mask_apply: w = w * mask (mask is exactly 0 or 1, so pruned weights become exactly 0).
@compute @workgroup_size(256, 1, 1)
fn mask_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u; // 2D grid past 65535 groups
    if (i >= p.n) {
        return;
    }
    w[i] = w[i] * mask[i];
}
