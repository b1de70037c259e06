// gather_batch: builds one training batch on the GPU from the u8 dataset kept resident there.
// x[b, i] = pixel(perm[offset + b], i) * scale + shift   (normalisation folded into scale/shift)
// y[b]    = label(perm[offset + b]);  rows b >= V are zero padding with label 0.
// Pixels and labels are u8 packed four to a u32 (little-endian), so MNIST's 47 MB stays 47 MB.
// Legend: B = batch rows, P = pixels per image, V = valid rows this step.
// CPU twin: reference::ops::gather_batch_reference.

struct GatherParams {
    rows: u32,   // B
    pixels: u32, // P
    scale: f32,
    shift: f32,
}

@group(0) @binding(0) var<uniform> p: GatherParams;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> images: array<u32>; // packed u8 [N * P]
@group(0) @binding(3) var<storage, read> labels: array<u32>; // packed u8 [N]
@group(0) @binding(4) var<storage, read> perm: array<u32>;   // [N] sample order of this epoch
@group(0) @binding(5) var<storage, read_write> x: array<f32>;  // [B, P]
@group(0) @binding(6) var<storage, read_write> y: array<u32>;  // [B]

fn byte_at(word: u32, i: u32) -> u32 {
    return (word >> ((i & 3u) * 8u)) & 0xffu;
}

@compute @workgroup_size(256, 1, 1)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.rows * p.pixels) {
        return;
    }
    let b = i / p.pixels;
    let px = i % p.pixels;
    if (b >= step.valid) {
        x[i] = 0.0;
        if (px == 0u) {
            y[b] = 0u;
        }
        return;
    }
    let sample = perm[step.offset + b];
    let at = sample * p.pixels + px;
    x[i] = f32(byte_at(images[at / 4u], at)) * p.scale + p.shift;
    if (px == 0u) {
        y[b] = byte_at(labels[sample / 4u], sample);
    }
}
