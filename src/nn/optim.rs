//! Optimizer configuration and the per-step numbers both backends feed their update kernels
//! (`OptimParams` is the uniform of shaders/optim.wgsl, byte for byte).

use serde::{Deserialize, Serialize};

/// The uniform block of `sgd` / `adam` in shaders/optim.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimParams {
    pub n: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta2: f32,
    pub eps: f32,
    /// L1 coefficient: adds l1 * sign(w) to the gradient (pushes weights to exactly prunable zero).
    pub l1: f32,
    pub _pad: u32,
}

/// The per-step part of `OptimParams` (shaders/optim.wgsl's `OptimStep`): on the GPU one uniform
/// shared by every tensor's update, written once per step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimStep {
    pub lr: f32,
    pub eps: f32,
    pub _pad: [f32; 2],
}

impl OptimStep {
    pub fn of(p: &OptimParams) -> OptimStep {
        OptimStep { lr: p.lr, eps: p.eps, _pad: [0.0; 2] }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// SGD momentum, or Adam's beta1.
    pub momentum: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub l1: f32,
}

impl OptimizerConfig {
    /// The same optimizer without weight decay or L1: what learned quantizer steps train with.
    pub fn without_decay(&self) -> OptimizerConfig {
        OptimizerConfig { weight_decay: 0.0, l1: 0.0, ..self.clone() }
    }

    /// The kernel parameters for update number `t` (1-based) of a tensor of `n` elements, with the
    /// learning rate `lr` in force for this step. Adam's bias correction is folded into lr and eps.
    pub fn step_params(&self, n: usize, lr: f32, t: u64) -> OptimParams {
        let mut p = OptimParams { n: n as u32, lr, momentum: self.momentum, weight_decay: self.weight_decay, l1: self.l1, ..Default::default() };
        if self.kind == OptimizerKind::Adam {
            let t = t.max(1) as i32;
            let bc1 = 1.0 - (self.momentum as f64).powi(t);
            let bc2 = 1.0 - (self.beta2 as f64).powi(t);
            p.lr = (lr as f64 * bc2.sqrt() / bc1) as f32;
            p.eps = (self.eps as f64 * bc2.sqrt()) as f32;
            p.beta2 = self.beta2;
        }
        p
    }
}
