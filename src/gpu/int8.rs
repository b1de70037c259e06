//! Integer inference on the GPU: a compiled `IntModel` (compress::int8) as buffers and launches,
//! built once for a batch size and replayed per batch; the classifier's totals of a whole pass
//! land side by side in one buffer, read back once. Both products are built where they exist
//! (dot4I8Packed and the manual unpack); the caller times them and keeps the faster.

use super::context::GpuContext;
use super::kernels::{run, GemmParams, Im2colParams, Int8Kernels, Launch};
use crate::compress::int8::{IntModel, IntStep};
use crate::data::Dataset;
use crate::error::Result;
use crate::reference::int8::pack_weights;
use crate::reference::ops::Geometry;

/// Which product an integer model runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Int8Variant {
    /// WGSL's dot4I8Packed (language feature packed_4x8_integer_dot_product).
    Dot4,
    /// The four signed bytes unpacked by shifts, then a vec4<i32> dot.
    Manual,
}

pub struct GpuIntModel {
    ctx: GpuContext,
    classes: usize,
    pub batch: usize,
    n: usize,
    pixels: usize,
    totals: wgpu::Buffer,
    /// int8_input, rewritten per batch (its `first` pixel).
    input: Launch,
    /// Per variant: every step's launches; the last is the classifier's product, whose
    /// `out_offset` is rewritten per batch.
    programs: Vec<(Int8Variant, Vec<Launch>)>,
    last_params: GemmParams,
    _buffers: Vec<wgpu::Buffer>,
}

impl GpuIntModel {
    /// Buffers and launches for `model` over `data`'s images, `batch` samples per submit (fewer
    /// where the largest buffer would pass the inference budget the f32 programs keep, 48 MiB).
    pub async fn new(ctx: &GpuContext, model: &IntModel, data: &Dataset, batch: usize) -> Result<GpuIntModel> {
        let k: Int8Kernels = ctx.int8_kernels().await?;
        let (act, cols) = model.widest();
        let batch = batch.min(super::net::EVAL_BUFFER_BYTES / (4 * act.max(cols).max(1))).clamp(1, data.n.max(1));
        let pixels = data.pixels();
        let images = ctx.storage_u8(&data.images, "int8 images");
        let xs = [ctx.storage_zeroed((batch * act * 4) as u64, "int8 x0"), ctx.storage_zeroed((batch * act * 4) as u64, "int8 x1")];
        let colbuf = ctx.storage_zeroed((batch * cols * 4) as u64, "int8 cols");
        let passes = data.n.div_ceil(batch);
        let totals = ctx.storage_zeroed((passes * batch * model.classes * 4) as u64, "int8 totals");
        let input_p = Im2colParams::new(&Geometry::new(batch, 1, 1, pixels, 1, 1, 0), 0, 0);
        let input = ctx.int8_input(&k, input_p, &images, &xs[0]);
        let mut buffers = vec![images, colbuf.clone()];
        let mut variants = vec![Int8Variant::Manual];
        if k.gemm_dot4.is_some() {
            variants.insert(0, Int8Variant::Dot4);
        }
        // Parameters once, launches per variant.
        let layer_buffers: Vec<Option<[wgpu::Buffer; 4]>> = model
            .steps
            .iter()
            .map(|s| match s {
                IntStep::Layer(l) => Some([
                    ctx.storage(&pack_weights(l), "int8 weights"),
                    ctx.storage(&l.bias, "int8 bias"),
                    ctx.storage(&l.mult, "int8 mult"),
                    ctx.storage(&l.shift, "int8 shift"),
                ]),
                IntStep::MaxPool { .. } => None,
            })
            .collect();
        let mut programs = vec![];
        let mut last_params = None;
        for &v in &variants {
            let mut launches = vec![];
            let mut cur = 0;
            for (s, bufs) in model.steps.iter().zip(&layer_buffers) {
                match (s, bufs) {
                    (IntStep::Layer(l), Some([w, b, m, sh])) => {
                        let g = l.geometry(batch);
                        let k4 = (l.kp / 4) as u32;
                        launches.push(ctx.int8_im2col(&k, &g, l.pad_value, k4, &xs[cur], &colbuf));
                        let p = GemmParams { rows: g.positions() as u32, outputs: l.outputs as u32, k4, last: l.last as u32, zero_out: l.zero_out, lo: l.lo, hi: l.hi, out_offset: 0 };
                        let out = if l.last { &totals } else { &xs[1 - cur] };
                        launches.push(ctx.int8_gemm(&k, v == Int8Variant::Dot4, p, &colbuf, w, b, m, sh, out));
                        if l.last {
                            last_params = Some(p);
                        }
                    }
                    (IntStep::MaxPool { input, k: kk, stride }, _) => {
                        let g = Geometry::new(batch, input.h, input.w, input.c, *kk, *stride, 0);
                        launches.push(ctx.int8_maxpool(&k, &g, &xs[cur], &xs[1 - cur]));
                    }
                    _ => unreachable!("every layer has its buffers"),
                }
                cur = 1 - cur;
            }
            programs.push((v, launches));
        }
        buffers.extend(xs);
        buffers.extend(layer_buffers.into_iter().flatten().flatten());
        let last_params = last_params.expect("an integer model ends in its classifier");
        Ok(GpuIntModel { ctx: ctx.clone(), classes: model.classes, batch, n: data.n, pixels, totals, input, programs, last_params, _buffers: buffers })
    }

    /// The products built here, the fastest-first candidates to time.
    pub fn variants(&self) -> Vec<Int8Variant> {
        self.programs.iter().map(|(v, _)| *v).collect()
    }

    /// The classifier's totals [n, classes] for the first `limit` images (all: `usize::MAX`), one
    /// submit per batch, one read-back.
    pub async fn totals(&self, variant: Int8Variant, limit: usize) -> Result<Vec<i32>> {
        let launches = &self.programs.iter().find(|(v, _)| *v == variant).unwrap_or(&self.programs[0]).1;
        let last = launches.last().expect("a program has launches");
        let n = self.n.min(limit);
        for (i, offset) in (0..n).step_by(self.batch).enumerate() {
            let mut p = Im2colParams::new(&Geometry::new(self.batch, 1, 1, self.pixels, 1, 1, 0), 0, 0);
            p.first = (offset * self.pixels) as u32;
            self.ctx.queue.write_buffer(&self.input.uniform, 0, bytemuck::bytes_of(&p));
            let g = GemmParams { out_offset: (i * self.batch * self.classes) as u32, ..self.last_params };
            self.ctx.queue.write_buffer(&last.uniform, 0, bytemuck::bytes_of(&g));
            run(&self.ctx, std::iter::once(&self.input).chain(launches));
        }
        let mut t: Vec<i32> = self.ctx.read(&self.totals).await?;
        t.truncate(n * self.classes);
        Ok(t)
    }
}
