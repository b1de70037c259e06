// Pruning on the GPU: applying a 0/1 mask to a parameter (after every optimizer step in hard mode,
// once per mask update in soft mode), and accumulating first-order Taylor importance scores.
// The two entry points bind different buffers at the same slots; each pipeline sees only its own.
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
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    w[i] = w[i] * mask[i];
}

// taylor_accumulate: score[i] += |w[i] * g[i]|, the first-order Taylor estimate of the loss change
// from removing w[i] (Molchanov et al. 2017), summed over the batches of a scoring pass.
@group(0) @binding(1) var<storage, read> tw: array<f32>;
@group(0) @binding(2) var<storage, read> tg: array<f32>;
@group(0) @binding(3) var<storage, read_write> score: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn taylor_accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.n) {
        return;
    }
    score[i] = score[i] + abs(tw[i] * tg[i]);
}
