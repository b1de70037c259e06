// common.wgsl: the preamble prepended to every shader module when it compiles (see the `shader!`
// macro in src/gpu/kernels.rs): the uniform structs several kernel families share, the folded-grid
// index, and the window arithmetic of convolution and pooling. Declarations a module does not use
// cost nothing.

// The per-step uniform shared by gather, loss, metrics and batch norm (gpu::kernels::StepParams).
struct StepParams {
    offset: u32, // first sample of this batch in the epoch's permutation
    valid: u32,  // V: valid rows this step (rows >= V are padding)
}

// Uniform of shaders/conv.wgsl and shaders/pool.wgsl (gpu::kernels::SpatialParams). NHWC.
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
    accumulate: u32, // backward kernels: 1 adds into dX (a node read twice), 0 overwrites
    outputs: u32,    // Cout (direct conv kernels)
    _pad1: u32,
}

// Flat invocation index of a 1D launch of `width`-wide workgroups whose grid is folded into y past
// 65,535 workgroups (gpu::kernels::grid_folded).
fn flat_id(gid: vec3<u32>, nwg: vec3<u32>, width: u32) -> u32 {
    return gid.x + gid.y * nwg.x * width;
}

// The output position (along one axis of `side` positions) whose window offset `kk` lands on
// input coordinate `v`, or -1 when none does (off the edge, or between strides).
fn covering(v: u32, kk: u32, side: u32, stride: u32, pad: u32) -> i32 {
    let t = i32(v + pad) - i32(kk);
    if (t < 0 || u32(t) % stride != 0u || u32(t) / stride >= side) {
        return -1;
    }
    return t / i32(stride);
}

// Uniform of the classifier head kernels, shaders/loss.wgsl and shaders/metrics.wgsl.
struct HeadParams {
    rows: u32,    // B
    classes: u32, // C
}
