// Post-update constraints on the GPU: applying a 0/1 mask to a parameter (after every optimizer
// step in hard mode, once per mask update in soft mode), shared weights (Deep Compression's centroid
// fine-tuning), and accumulating first-order Taylor importance scores.
// The entry points bind different buffers at the same slots; each pipeline sees only its own.
// CPU twins: reference::ops::{mask_apply,shared_update,taylor_accumulate}_reference.

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

// shared_update: one workgroup per cluster k of a shared weight (nn::Sharing), after the optimizer
// moved every member w[m] away from its centroid c[k]:
//   c[k] += Σ_members (w[m] − c[k])      (sum mode: the summed update, as the members' summed gradients)
//   c[k] += mean_members (w[m] − c[k])   (mean mode)
//   w[m] = c[k] for every member
// Members of k: members[offsets[k]..offsets[k+1]]; the last group (k = groups) holds the weights in
// no cluster (pruned) and sets them to 0. The sum runs in 64 strided lanes, then a tree (the CPU
// twin adds in the same order).
struct SharedParams {
    groups: u32, // clusters; the dispatch has groups + 1 workgroups
    mean: u32,
}

@group(0) @binding(0) var<uniform> sp: SharedParams;
@group(0) @binding(1) var<storage, read_write> sw: array<f32>;
@group(0) @binding(2) var<storage, read_write> centroids: array<f32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read> members: array<u32>;

var<workgroup> lanes: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn shared_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let k = wid.x;
    let start = offsets[k];
    let end = offsets[k + 1u];
    if (k == sp.groups) {
        for (var m = start + li; m < end; m = m + 64u) {
            sw[members[m]] = 0.0;
        }
        return;
    }
    let c = centroids[k];
    var s = 0.0;
    for (var m = start + li; m < end; m = m + 64u) {
        s = s + (sw[members[m]] - c);
    }
    lanes[li] = s;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half = half >> 1u) {
        if (li < half) {
            lanes[li] = lanes[li] + lanes[li + half];
        }
        workgroupBarrier();
    }
    var moved = lanes[0];
    if (sp.mean == 1u) {
        moved = moved / max(f32(end - start), 1.0);
    }
    let nc = c + moved;
    for (var m = start + li; m < end; m = m + 64u) {
        sw[members[m]] = nc;
    }
    if (li == 0u) {
        centroids[k] = nc;
    }
}
