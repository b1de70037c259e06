//! The loss slot's numbers: how the classifier head weighs cross-entropy against the labels with
//! the distillation terms against a teacher's logits (`DistillParams` is the uniform of
//! shaders/distill.wgsl, byte for byte). Plain cross-entropy is kl = mse = 0, ce = 1.

/// Per row b, student logits z, teacher logits t, label y, C classes, temperature T:
///   loss_b = kl·T²·KL(softmax(t/T) ‖ softmax(z/T)) + ce·CE(y, z) + mse·(1/C)·Σ_c (z_c − t_c)²
/// (Hinton et al. 2015 with α: kl = α, ce = 1 − α). The gradient is of the mean over valid rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DistillParams {
    pub rows: u32,
    pub classes: u32,
    pub temperature: f32,
    pub kl: f32,
    pub ce: f32,
    pub mse: f32,
    pub _pad: [u32; 2],
}

impl DistillParams {
    /// Hinton's soft-target loss: α·T²·KL + (1 − α)·CE.
    pub fn soft_targets(rows: usize, classes: usize, temperature: f32, alpha: f32) -> DistillParams {
        DistillParams { rows: rows as u32, classes: classes as u32, temperature, kl: alpha, ce: 1.0 - alpha, mse: 0.0, _pad: [0; 2] }
    }
}
