//! The loss slot's numbers: how the classifier head weighs cross-entropy against the labels with
//! the distillation terms against a teacher's logits (`DistillParams` is the second uniform of
//! shaders/loss.wgsl's distill_loss, byte for byte), and the frozen teacher whose logits it reads.
//! Plain cross-entropy is kl = mse = 0, ce = 1.

use super::{Net, NetParams};
use crate::compress::quant::QuantFn;
use crate::error::{Error, Result};

/// A frozen teacher: a model of the run (float, pruned or quantized: its parameters hold the
/// values it computes with, its activation quantizers apply) whose forward pass runs on each of
/// the student's batches. Nothing updates it.
#[derive(Clone, Debug, PartialEq)]
pub struct Teacher {
    pub net: Net,
    pub params: NetParams,
    /// Per node (empty: none), as `inspect::StageModel::activations`.
    pub activations: Vec<Option<QuantFn>>,
    /// The input normalisation it was trained with, where it differs from the student's (a
    /// model file trained on other data): the step gathers the batch a second time for it.
    /// None: it reads the student's input as it is.
    pub norm: Option<crate::data::Normalization>,
}

impl Teacher {
    /// Refuses a teacher that does not read the student's images or name its classes.
    pub fn check_student(&self, student: &Net) -> Result<()> {
        if self.net.input() != student.input() || self.net.classes != student.classes {
            return Err(Error::Invalid(format!(
                "the teacher reads {:?} images into {} classes, the student {:?} into {}",
                self.net.input(),
                self.net.classes,
                student.input(),
                student.classes
            )));
        }
        Ok(())
    }
}

/// Per row b, student logits z, teacher logits t, label y, C classes, temperature T:
///   loss_b = kl·T²·KL(softmax(t/T) ‖ softmax(z/T)) + ce·CE(y, z) + mse·(1/C)·Σ_c (z_c − t_c)²
/// (Hinton et al. 2015 with α: kl = α, ce = 1 − α). The gradient is of the mean over valid rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DistillParams {
    pub temperature: f32,
    pub kl: f32,
    pub ce: f32,
    pub mse: f32,
}

impl DistillParams {
    /// Hinton's soft-target loss: α·T²·KL + (1 − α)·CE.
    pub fn soft_targets(temperature: f32, alpha: f32) -> DistillParams {
        DistillParams { temperature, kl: alpha, ce: 1.0 - alpha, mse: 0.0 }
    }
}

/// Attention transfer (Zagoruyko & Komodakis 2017) between a student node and a teacher node:
/// (β/2)·‖v_S − v_T‖² per row of their L2-normalised spatial attention maps (channel-wise sums of
/// squares; shaders/attention.wgsl), added to the loss slot's loss. The nodes' outputs must have
/// the same height and width (any channels) and more than one position.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionTransfer {
    /// Node index in the student's net (its output, after any ReLU).
    pub student: usize,
    /// Node index in the teacher's net.
    pub teacher: usize,
    /// Weight β (Zagoruyko & Komodakis used 1000 with maps of a few hundred positions).
    pub beta: f32,
}

impl AttentionTransfer {
    /// (positions, student channels, teacher channels), or why the pair cannot be compared.
    pub fn shapes(&self, student: &Net, teacher: &Net) -> Result<(usize, usize, usize)> {
        let (s, t) = output_shapes("attention transfer", (student, self.student), (teacher, self.teacher))?;
        if (s.h, s.w) != (t.h, t.w) || s.h * s.w < 2 {
            return Err(Error::Invalid(format!(
                "attention transfer compares maps of the same size with more than one position: student node {} is {}x{}, teacher node {} is {}x{}",
                self.student, s.h, s.w, self.teacher, t.h, t.w
            )));
        }
        Ok((s.h * s.w, s.c, t.c))
    }
}

/// A FitNets hint (Romero et al. 2015): a learned projection (per position: a 1x1 convolution;
/// for dense outputs a dense layer) maps the student node's output to the teacher node's
/// channels, and w·mean (projection − teacher)² joins the loss. Outputs must have the same
/// height and width; the projection trains with the student (its optimizer, no decay) and is
/// dropped after distillation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hint {
    pub student: usize,
    pub teacher: usize,
    pub weight: f32,
}

impl Hint {
    /// (positions, student channels, teacher channels), or why the pair cannot be matched.
    pub fn shapes(&self, student: &Net, teacher: &Net) -> Result<(usize, usize, usize)> {
        let (s, t) = output_shapes("hint", (student, self.student), (teacher, self.teacher))?;
        if (s.h, s.w) != (t.h, t.w) {
            return Err(Error::Invalid(format!(
                "a hint projects each position's channels: student node {} is {}x{}, teacher node {} is {}x{}; pick nodes of the same height and width",
                self.student, s.h, s.w, self.teacher, t.h, t.w
            )));
        }
        Ok((s.h * s.w, s.c, t.c))
    }

    /// The projection's starting weights [Cs, Ct]: uniform in ±1/√Cs from a fixed stream (both
    /// backends start alike).
    pub fn init(cs: usize, ct: usize, k: usize) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(0x5eed_0001 + k as u64, 91);
        let a = 1.0 / (cs as f32).sqrt();
        (0..cs * ct).map(|_| rng.uniform(-a, a)).collect()
    }
}

/// The output shapes of a student node and a teacher node named by a `term`, or which index is
/// out of range (node 0, the input, is not a node output either).
fn output_shapes(term: &str, (student, s): (&Net, usize), (teacher, t): (&Net, usize)) -> Result<(super::Shape, super::Shape)> {
    let node = |net: &Net, n: usize, who: &str| {
        net.nodes.get(n).map(|x| x.shape).filter(|_| n > 0).ok_or_else(|| Error::Invalid(format!("{term}: the {who} has nodes 1..={}, not {n}", net.nodes.len() - 1)))
    };
    Ok((node(student, s, "student")?, node(teacher, t, "teacher")?))
}
