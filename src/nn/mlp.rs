//! Multi-layer perceptron: its shape, its parameters and their seeded initialisation. The math of
//! training lives in the backends (reference::mlp on the CPU, gpu::mlp on the GPU), which both
//! start from these `MlpParams`.
//! Legend: B = batch, I = layer inputs, O = layer outputs. Weights are row-major [I, O] so Y = X·W + b.

use crate::rng::Rng;
use ndarray::{Array1, Array2};

#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpec {
    pub inputs: usize,
    pub hidden: Vec<usize>,
    pub classes: usize,
}

impl MlpSpec {
    /// (inputs, outputs) of every dense layer, first to last.
    pub fn layer_dims(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.inputs];
        sizes.extend(&self.hidden);
        sizes.push(self.classes);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    pub fn parameter_count(&self) -> usize {
        self.layer_dims().iter().map(|(i, o)| i * o + o).sum()
    }

    /// Multiply-adds x2 of one forward pass for one sample.
    pub fn forward_flops(&self) -> usize {
        self.layer_dims().iter().map(|(i, o)| 2 * i * o).sum()
    }
}

/// One dense layer's parameters: W [I, O], b [O].
#[derive(Clone, Debug, PartialEq)]
pub struct DenseParams {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MlpParams {
    pub layers: Vec<DenseParams>,
}

impl MlpParams {
    /// He-uniform weights (bound sqrt(6 / I), suited to ReLU), zero biases; seeded.
    pub fn init(spec: &MlpSpec, seed: u64) -> MlpParams {
        let mut rng = Rng::new(seed, 1);
        let layers = spec
            .layer_dims()
            .into_iter()
            .map(|(i, o)| {
                let bound = (6.0 / i as f32).sqrt();
                DenseParams {
                    w: Array2::from_shape_fn((i, o), |_| rng.uniform(-bound, bound)),
                    b: Array1::zeros(o),
                }
            })
            .collect();
        MlpParams { layers }
    }

    /// Every tensor flattened, in the order W0, b0, W1, b1, ... (the GPU buffer order).
    pub fn tensors(&self) -> Vec<&[f32]> {
        self.layers
            .iter()
            .flat_map(|l| [l.w.as_slice().expect("standard layout"), l.b.as_slice().expect("standard layout")])
            .collect()
    }

    /// The network with only units `keep` (sorted indices) of hidden layer `layer`: columns of
    /// W_layer and entries of b_layer, and the matching rows of W_{layer+1}. Physically smaller.
    pub fn remove_units(&self, layer: usize, keep: &[usize]) -> MlpParams {
        let mut out = self.clone();
        let l = &self.layers[layer];
        // Row-major (standard layout) like every other tensor here: backends take them as flat slices.
        let std2 = |a: Array2<f32>| a.as_standard_layout().into_owned();
        out.layers[layer] = DenseParams { w: std2(l.w.select(ndarray::Axis(1), keep)), b: l.b.select(ndarray::Axis(0), keep) };
        let next = &self.layers[layer + 1];
        out.layers[layer + 1] = DenseParams { w: std2(next.w.select(ndarray::Axis(0), keep)), b: next.b.clone() };
        out
    }

    pub fn max_abs_diff(&self, other: &MlpParams) -> f32 {
        self.tensors()
            .iter()
            .zip(other.tensors())
            .flat_map(|(a, b)| a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()))
            .fold(0.0, f32::max)
    }
}
