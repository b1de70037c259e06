//! The engine's compression slots beside the masks, as data both trainers apply:
//!  * a weight transform per tensor: forward and input-gradient products read the transformed
//!    copy (fake-quantized) while the weight gradient (clipped by the straight-through estimator)
//!    and the optimizer update the f32 master;
//!  * an activation transform per node: the node's output (after its ReLU) fake-quantized in place,
//!    the gradient passing only where the value was inside the range.
//!  * shared weights per tensor, a post-update constraint beside the masks (Deep Compression's
//!    centroid fine-tuning): after every optimizer step each cluster's centroid moves by its
//!    members' summed update and every member takes the centroid's value.
//!  * learned steps (LSQ, `learned`): every affine weight and activation quantizer that can
//!    (`QuantFn::learnable`) has its steps trained beside the weights, with LSQ's gradient scale
//!    and the weights' optimizer (no weight decay); the trainers give the learned tables back.
//! Empty lists mean "none"; a `None` entry leaves that tensor or node as it is.

use crate::compress::quant::QuantFn;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transforms {
    /// Per tensor, in `Net::tensors()` order.
    pub weights: Vec<Option<QuantFn>>,
    /// Per node, in `Net::nodes` order.
    pub activations: Vec<Option<QuantFn>>,
    /// Per tensor, in `Net::tensors()` order: weights tied to shared centroids.
    pub shared: Vec<Option<Sharing>>,
    /// LSQ: the steps of the learnable quantizers above are trained.
    pub learned: bool,
}

/// Weight sharing of one tensor with fixed cluster assignments (kernel: shaders/mask.wgsl's
/// shared_update). Cluster k's members are `members[offsets[k]..offsets[k + 1]]`; one more group
/// at the end holds the weights in no cluster (exact zeros: pruned), which stay 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Sharing {
    pub centroids: Vec<f32>,
    pub offsets: Vec<u32>,
    pub members: Vec<u32>,
    /// Centroids move by the members' mean update instead of their sum.
    pub mean: bool,
}

impl Sharing {
    /// Each nonzero weight of `w` joins the nearest of the sorted `levels` (as `QuantFn::Levels`
    /// codes it); zeros join no cluster.
    pub fn new(levels: &[f32], w: &[f32], mean: bool) -> Sharing {
        let q = QuantFn::Levels { levels: levels.to_vec() };
        let k = levels.len();
        let group = |v: f32| if v == 0.0 { k } else { q.code(v, 0) as usize };
        let mut counts = vec![0u32; k + 1];
        w.iter().for_each(|&v| counts[group(v)] += 1);
        let mut offsets = vec![0u32];
        counts.iter().for_each(|c| offsets.push(offsets[offsets.len() - 1] + c));
        let mut next = offsets[..k + 1].to_vec();
        let mut members = vec![0u32; w.len()];
        for (i, &v) in w.iter().enumerate() {
            let g = group(v);
            members[next[g] as usize] = i as u32;
            next[g] += 1;
        }
        Sharing { centroids: levels.to_vec(), offsets, members, mean }
    }

    /// The tensor of `n` values this sharing describes: every member at its centroid, the rest 0.
    pub fn values(&self, n: usize) -> Vec<f32> {
        let mut w = vec![0.0; n];
        for (k, &c) in self.centroids.iter().enumerate() {
            self.members[self.offsets[k] as usize..self.offsets[k + 1] as usize].iter().for_each(|&m| w[m as usize] = c);
        }
        w
    }

    /// The centroids as they stand in `w` (each cluster's first member; an empty cluster keeps
    /// its centroid), sorted: the levels of the quantizer that stores the tensor.
    pub fn levels_in(&self, w: &[f32]) -> Vec<f32> {
        let at = |k: usize| if self.offsets[k] < self.offsets[k + 1] { w[self.members[self.offsets[k] as usize] as usize] } else { self.centroids[k] };
        let mut levels: Vec<f32> = (0..self.centroids.len()).map(at).collect();
        levels.sort_by(f32::total_cmp);
        levels
    }
}

impl Transforms {
    pub fn weight(&self, j: usize) -> Option<&QuantFn> {
        self.weights.get(j).and_then(|q| q.as_ref())
    }

    pub fn activation(&self, n: usize) -> Option<&QuantFn> {
        self.activations.get(n).and_then(|q| q.as_ref())
    }

    pub fn sharing(&self, j: usize) -> Option<&Sharing> {
        self.shared.get(j).and_then(|s| s.as_ref())
    }

    /// Tensor j's quantizer if its steps are learned.
    pub fn learned_weight(&self, j: usize) -> Option<&QuantFn> {
        self.weight(j).filter(|q| self.learned && q.learnable())
    }

    /// Node n's activation quantizer if its step is learned.
    pub fn learned_activation(&self, n: usize) -> Option<&QuantFn> {
        self.activation(n).filter(|q| self.learned && q.learnable())
    }

    pub fn is_empty(&self) -> bool {
        self.weights.iter().chain(&self.activations).all(|q| q.is_none()) && self.shared.iter().all(|s| s.is_none())
    }
}
