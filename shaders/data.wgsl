// gather_batch: builds one training batch on the GPU from the u8 dataset kept resident there.
// x[b, i] = pixel(perm[offset + b], i) * scale + shift   (normalisation folded into scale/shift)
// y[b]    = label(perm[offset + b]);  rows b >= V are zero padding with label 0.
// Jitter k > 0 (augmentation): each image moved by (dx, dy) in [-k, k]², drawn by a hash of the
// sample and its position in the epoch's order (so a sample moves differently each epoch, and
// both backends move it alike); pixels moved in from outside the image are 0.
// Pixels and labels are u8 packed four to a u32 (little-endian), so MNIST's 47 MB stays 47 MB.
// Legend: B = batch rows, P = pixels per image, V = valid rows this step.
// CPU twin: reference::ops::gather_batch_reference.

struct GatherParams {
    rows: u32,   // B
    pixels: u32, // P
    scale: f32,
    shift: f32,
    height: u32, // H, W, C: P = H·W·C, pixels stored [H, W, C]
    width: u32,
    jitter: u32, // k
    _pad: u32,
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

// The shift of one sample at one position of the order (twin: data::jitter_shift).
fn jitter_shift(sample: u32, position: u32, k: u32) -> vec2<i32> {
    var h = (sample * 0x9E3779B1u) ^ ((position + 0x7F4A7C15u) * 0x85EBCA77u);
    h = (h ^ (h >> 16u)) * 0x7FEB352Du;
    h = (h ^ (h >> 15u)) * 0x846CA68Bu;
    h = h ^ (h >> 16u);
    let side = 2u * k + 1u;
    return vec2<i32>(i32((h & 0xffffu) % side) - i32(k), i32((h >> 16u) % side) - i32(k));
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
    var src = px;
    if (p.jitter > 0u) {
        let d = jitter_shift(sample, step.offset + b, p.jitter);
        let c = p.pixels / (p.height * p.width);
        let r = i32(px / (p.width * c)) - d.y;
        let col = i32((px / c) % p.width) - d.x;
        if (r < 0 || r >= i32(p.height) || col < 0 || col >= i32(p.width)) {
            x[i] = p.shift; // a pixel of value 0
            if (px == 0u) {
                y[b] = byte_at(labels[sample / 4u], sample);
            }
            return;
        }
        src = (u32(r) * p.width + u32(col)) * c + px % c;
    }
    let at = sample * p.pixels + src;
    x[i] = f32(byte_at(images[at / 4u], at)) * p.scale + p.shift;
    if (px == 0u) {
        y[b] = byte_at(labels[sample / 4u], sample);
    }
}

// gather_rows: a batch's rows of a resident f32 table (a teacher's logits cached once for the
// whole training split), in the epoch's order: dst[b, c] = src[perm[offset + b], c] for b < V;
// padding rows are 0. Uses p.rows (B) and p.pixels (the row width C) only.
// Legend: B = batch rows, C = columns, V = valid rows this step.
// CPU twin: reference::ops::gather_rows_reference.
@group(0) @binding(7) var<storage, read> table: array<f32>;       // [N, C]
@group(0) @binding(8) var<storage, read_write> rows_out: array<f32>; // [B, C]

@compute @workgroup_size(256, 1, 1)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg, 256u);
    if (i >= p.rows * p.pixels) {
        return;
    }
    let b = i / p.pixels;
    if (b >= step.valid) {
        rows_out[i] = 0.0;
        return;
    }
    rows_out[i] = table[perm[step.offset + b] * p.pixels + i % p.pixels];
}
