//! The engine's compression slots beside the masks, as data both trainers apply:
//!  * a weight transform per tensor: forward and input-gradient products read the transformed
//!    copy (fake-quantized) while the weight gradient (clipped by the straight-through estimator)
//!    and the optimizer update the f32 master;
//!  * an activation transform per node: the node's output (after its ReLU) fake-quantized in place,
//!    the gradient passing only where the value was inside the range.
//! Empty lists mean "none"; a `None` entry leaves that tensor or node as it is.

use crate::compress::quant::QuantFn;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transforms {
    /// Per tensor, in `Net::tensors()` order.
    pub weights: Vec<Option<QuantFn>>,
    /// Per node, in `Net::nodes` order.
    pub activations: Vec<Option<QuantFn>>,
}

impl Transforms {
    pub fn weight(&self, j: usize) -> Option<&QuantFn> {
        self.weights.get(j).and_then(|q| q.as_ref())
    }

    pub fn activation(&self, n: usize) -> Option<&QuantFn> {
        self.activations.get(n).and_then(|q| q.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.weights.iter().chain(&self.activations).all(|q| q.is_none())
    }
}
