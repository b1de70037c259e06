//! The MLP on the GPU: parameters, optimizer state, the u8 datasets and every activation live in
//! GPU buffers built once; a training step is one `write_buffer` of the step uniform plus one
//! submit of a prebuilt list of launches (gather, forward, loss, metrics, backward, optimizer).
//! Loss/accuracy accumulate on the GPU; nothing is read back unless asked for.
//! Legend: B = batch, P = pixels, I/O = layer in/out, C = classes. Mirrors reference::mlp.

use super::context::GpuContext;
use super::kernels::{run, GatherParams, HeadParams, Launch, MatmulParams, StepParams};
use crate::data::{Dataset, Normalization, Splits};
use crate::error::Result;
use crate::nn::{DenseParams, MlpParams, MlpSpec, OptimizerConfig, OptimizerKind};
use ndarray::{Array1, Array2};

/// Activations of one forward pass at a fixed row count, and the launches that compute them.
struct ForwardProgram {
    rows: u32,
    step: wgpu::Buffer,
    /// acts[0] = x [B,P]; acts[l+1] = layer l output [B,O_l] (logits last).
    acts: Vec<wgpu::Buffer>,
    dlogits: wgpu::Buffer,
    acc: wgpu::Buffer,
    /// gather, forward layers, softmax_xent, argmax_correct, metrics_accumulate.
    launches: Vec<Launch>,
    order: wgpu::Buffer,
    n: usize,
}

impl ForwardProgram {
    fn new(ctx: &GpuContext, spec: &MlpSpec, params: &[wgpu::Buffer], data: &Dataset, norm: Normalization, rows: u32, order: &[u32]) -> ForwardProgram {
        let dims = spec.layer_dims();
        let step = ctx.uniform(&StepParams::default(), "step");
        let images = ctx.storage_u8(&data.images, "images u8");
        let labels_u8 = ctx.storage_u8(&data.labels, "labels u8");
        let order_buf = ctx.storage(order, "sample order");
        let mut acts = vec![ctx.storage_zeroed(rows as u64 * spec.inputs as u64 * 4, "x")];
        for &(_, o) in &dims {
            acts.push(ctx.storage_zeroed(rows as u64 * o as u64 * 4, "activation"));
        }
        let labels = ctx.storage_zeroed(rows as u64 * 4, "batch labels");
        let classes = spec.classes as u32;
        let dlogits = ctx.storage_zeroed(rows as u64 * classes as u64 * 4, "dlogits");
        let row_loss = ctx.storage_zeroed(rows as u64 * 4, "row loss");
        let correct = ctx.storage_zeroed(rows as u64 * 4, "row correct");
        let acc = ctx.storage_zeroed(16, "metrics accumulator");

        let (scale, shift) = norm.scale_shift();
        let mut launches = vec![ctx.gather_batch(
            GatherParams { rows, pixels: spec.inputs as u32, scale, shift },
            &step,
            &images,
            &labels_u8,
            &order_buf,
            &acts[0],
            &labels,
        )];
        for (l, &(i, o)) in dims.iter().enumerate() {
            let (w, b) = (&params[2 * l], &params[2 * l + 1]);
            launches.push(ctx.matmul(MatmulParams::new(rows, o as u32, i as u32, false, false, false), &acts[l], w, &acts[l + 1]));
            launches.push(ctx.bias_add(rows, o as u32, b, &acts[l + 1]));
            if l + 1 < dims.len() {
                launches.push(ctx.relu_forward(rows * o as u32, &acts[l + 1]));
            }
        }
        let head = HeadParams { rows, classes };
        let logits = acts.last().expect("at least one layer");
        launches.push(ctx.softmax_xent(head, &step, logits, &labels, &dlogits, &row_loss));
        launches.push(ctx.argmax_correct(head, &step, logits, &labels, &correct));
        launches.push(ctx.metrics_accumulate(&step, &row_loss, &correct, &acc));
        ForwardProgram { rows, step, acts, dlogits, acc, launches, order: order_buf, n: data.n }
    }

    fn set_step(&self, ctx: &GpuContext, offset: usize, valid: usize) {
        ctx.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&StepParams { offset: offset as u32, valid: valid as u32 }));
    }

    /// Reads the accumulator and clears it, in one submit and one map.
    async fn take_acc(&self, ctx: &GpuContext) -> Result<[f32; 4]> {
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("metrics staging"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.acc, 0, &staging, 0, 16);
        enc.clear_buffer(&self.acc, 0, None);
        ctx.queue.submit([enc.finish()]);
        let v: Vec<f32> = ctx.map_read(&staging).await?;
        Ok([v[0], v[1], v[2], v[3]])
    }
}

/// Trains an MLP on the GPU. Same interface as `reference::mlp::CpuTrainer`.
pub struct GpuTrainer {
    ctx: GpuContext,
    spec: MlpSpec,
    opt: OptimizerConfig,
    t: u64,
    /// W0, b0, W1, b1, ... and, parallel to them, gradients and optimizer state.
    params: Vec<wgpu::Buffer>,
    sizes: Vec<usize>,
    train: ForwardProgram,
    /// backward matmuls, bias grads, relu backward.
    backward: Vec<Launch>,
    /// one update per tensor; their uniforms are rewritten each step (lr, Adam's correction).
    updates: Vec<Launch>,
    eval: ForwardProgram,
    /// Hard pruning: w *= mask after every update (empty when no hard masks are installed).
    mask_launches: Vec<Launch>,
    grads: Vec<wgpu::Buffer>,
    _state: Vec<wgpu::Buffer>,
}

impl GpuTrainer {
    pub fn new(ctx: &GpuContext, spec: &MlpSpec, init: &MlpParams, opt: OptimizerConfig, data: &Splits, norm: Normalization, batch: usize) -> GpuTrainer {
        let dims = spec.layer_dims();
        let host = init.tensors();
        let sizes: Vec<usize> = host.iter().map(|t| t.len()).collect();
        let params: Vec<wgpu::Buffer> = host.iter().map(|t| ctx.storage(t, "parameter")).collect();
        let grads: Vec<wgpu::Buffer> = sizes.iter().map(|&n| ctx.storage_zeroed(n as u64 * 4, "gradient")).collect();
        let first: Vec<wgpu::Buffer> = sizes.iter().map(|&n| ctx.storage_zeroed(n as u64 * 4, "momentum / m")).collect();
        let second: Vec<wgpu::Buffer> = sizes
            .iter()
            .map(|&n| ctx.storage_zeroed(if opt.kind == OptimizerKind::Adam { n as u64 * 4 } else { 4 }, "adam v"))
            .collect();

        let rows = batch as u32;
        let identity: Vec<u32> = (0..data.train.n as u32).collect();
        let train = ForwardProgram::new(ctx, spec, &params, &data.train, norm, rows, &identity);

        // Backward: dacts[l] is the gradient w.r.t. acts[l] (l >= 1); dacts[L] is dlogits.
        let mut dacts: Vec<Option<wgpu::Buffer>> = vec![None];
        for (l, &(_, o)) in dims.iter().enumerate() {
            dacts.push(Some(if l + 1 == dims.len() {
                train.dlogits.clone()
            } else {
                ctx.storage_zeroed(rows as u64 * o as u64 * 4, "activation gradient")
            }));
        }
        let mut backward = Vec::new();
        for (l, &(i, o)) in dims.iter().enumerate().rev() {
            let dy = dacts[l + 1].as_ref().expect("gradient buffer");
            // dW [I,O] = Xᵀ[I,B]·dY[B,O]
            backward.push(ctx.matmul(MatmulParams::new(i as u32, o as u32, rows, true, false, false), &train.acts[l], dy, &grads[2 * l]));
            backward.push(ctx.bias_grad(rows, o as u32, dy, &grads[2 * l + 1]));
            if l > 0 {
                let dx = dacts[l].as_ref().expect("gradient buffer");
                // dX [B,I] = dY[B,O]·Wᵀ[O,I], then through the ReLU that produced X.
                backward.push(ctx.matmul(MatmulParams::new(rows, i as u32, o as u32, false, true, false), dy, &params[2 * l], dx));
                backward.push(ctx.relu_backward(rows * i as u32, &train.acts[l], dx));
            }
        }
        let adam = opt.kind == OptimizerKind::Adam;
        let updates = (0..params.len())
            .map(|j| ctx.optimizer(adam, opt.step_params(sizes[j], opt.lr, 1), &params[j], &grads[j], &first[j], &second[j]))
            .collect();

        let eval_rows = (data.test.n.clamp(1, 1000)) as u32;
        let test_order: Vec<u32> = (0..data.test.n as u32).collect();
        let eval = ForwardProgram::new(ctx, spec, &params, &data.test, norm, eval_rows, &test_order);

        let mut state = grads.clone();
        state.extend(first);
        state.extend(second);
        state.extend(dacts.into_iter().flatten());
        GpuTrainer { ctx: ctx.clone(), spec: spec.clone(), opt, t: 0, params, sizes, train, backward, updates, eval, mask_launches: Vec::new(), grads, _state: state }
    }

    /// Uploads this epoch's sample order (the only per-epoch upload).
    pub fn begin_epoch(&mut self, order: &[u32]) {
        self.ctx.queue.write_buffer(&self.train.order, 0, bytemuck::cast_slice(order));
    }

    /// One optimizer step on order[offset..offset+valid]: one write of the step uniform, the
    /// optimizer uniforms, and one submit.
    pub fn train_step(&mut self, offset: usize, valid: usize, lr: f32) {
        self.t += 1;
        self.train.set_step(&self.ctx, offset, valid);
        for (u, &n) in self.updates.iter().zip(&self.sizes) {
            let p = self.opt.step_params(n, lr, self.t);
            self.ctx.queue.write_buffer(&u.uniform, 0, bytemuck::bytes_of(&p));
        }
        run(&self.ctx, self.train.launches.iter().chain(&self.backward).chain(&self.updates).chain(&self.mask_launches));
    }

    /// Installs pruning masks, one per tensor in W0, b0, W1, b1, ... order (`None`: unpruned), and
    /// applies them now. `hard`: re-applied after every optimizer step, so pruned weights stay
    /// exactly zero; soft: applied once, pruned weights keep training and may regrow.
    pub fn set_masks(&mut self, masks: &[Option<Vec<f32>>], hard: bool) {
        let launches: Vec<Launch> = masks
            .iter()
            .enumerate()
            .filter_map(|(j, m)| {
                let m = m.as_ref()?;
                let buf = self.ctx.storage(m, "mask"); // kept alive by the launch's bind group
                Some(self.ctx.mask_apply(self.sizes[j] as u32, &self.params[j], &buf))
            })
            .collect();
        run(&self.ctx, &launches);
        self.mask_launches = if hard { launches } else { Vec::new() };
    }

    /// Returns and clears the training accumulator [loss_sum, correct, seen, 0].
    pub async fn take_metrics(&mut self) -> Result<[f32; 4]> {
        self.train.take_acc(&self.ctx).await
    }

    /// Loss/accuracy sums over the whole test split: one submit per evaluation batch.
    pub async fn evaluate(&mut self) -> Result<[f32; 4]> {
        let rows = self.eval.rows as usize;
        let mut offset = 0;
        while offset < self.eval.n {
            let valid = rows.min(self.eval.n - offset);
            self.eval.set_step(&self.ctx, offset, valid);
            run(&self.ctx, &self.eval.launches);
            offset += valid;
        }
        self.eval.take_acc(&self.ctx).await
    }

    /// First-order Taylor importance |w·∂L/∂w| of every weight matrix, summed over the batches
    /// `order[offset..]` of `batch` samples (`batches` of them), without updating anything.
    /// One submit per batch (forward, backward, accumulate); one read-back at the end.
    pub async fn taylor_scores(&mut self, order: &[u32], batch: usize, batches: usize) -> Result<Vec<Vec<f32>>> {
        self.begin_epoch(order);
        let layers = self.spec.layer_dims().len();
        let scores: Vec<wgpu::Buffer> = (0..layers).map(|l| self.ctx.storage_zeroed(self.sizes[2 * l] as u64 * 4, "taylor scores")).collect();
        let acc: Vec<Launch> = (0..layers).map(|l| self.ctx.taylor_accumulate(self.sizes[2 * l] as u32, &self.params[2 * l], &self.grads[2 * l], &scores[l])).collect();
        let n = order.len();
        for b in 0..batches {
            let offset = b * batch;
            if offset >= n {
                break;
            }
            self.train.set_step(&self.ctx, offset, batch.min(n - offset));
            run(&self.ctx, self.train.launches.iter().chain(&self.backward).chain(&acc));
        }
        self.take_metrics().await?; // the scoring batches are not training progress
        let mut out = Vec::with_capacity(layers);
        for (l, buf) in scores.iter().enumerate() {
            let v: Vec<f32> = self.ctx.read(buf).await?;
            out.push(v[..self.sizes[2 * l]].to_vec());
        }
        Ok(out)
    }

    /// Overwrites the parameters (same shapes as at creation); optimizer state is kept.
    pub fn set_params(&mut self, p: &MlpParams) {
        for (buf, t) in self.params.iter().zip(p.tensors()) {
            self.ctx.queue.write_buffer(buf, 0, bytemuck::cast_slice(t));
        }
    }

    /// Copies the parameters back to the host.
    pub async fn params(&self) -> Result<MlpParams> {
        let mut layers = Vec::new();
        for (l, &(i, o)) in self.spec.layer_dims().iter().enumerate() {
            let w: Vec<f32> = self.ctx.read(&self.params[2 * l]).await?;
            let b: Vec<f32> = self.ctx.read(&self.params[2 * l + 1]).await?;
            layers.push(DenseParams {
                w: Array2::from_shape_vec((i, o), w[..i * o].to_vec()).expect("sized at creation"),
                b: Array1::from_vec(b[..o].to_vec()),
            });
        }
        Ok(MlpParams { layers })
    }

    /// Logits of the last evaluation batch (for tests and the draw-a-digit view).
    pub async fn last_eval_logits(&self) -> Result<Vec<f32>> {
        self.ctx.read(self.eval.acts.last().expect("logits")).await
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }
}
