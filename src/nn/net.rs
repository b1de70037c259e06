//! Every model is a `Net`: a small graph of nodes in topological order (node 0 is the input image),
//! each node one op with an optional fused ReLU. The MLP, LeNet-5, vgg-mini and resnet-mini are
//! builders of this one type; both backends (reference::net, gpu::net) walk the same node list.
//!
//! Layout: activations are NHWC, [B, H, W, C] row-major; a dense layer reads its input flattened
//! ([B, H·W·C], so "flatten" is a view, no copy). Parameters, per node:
//!   Dense  W [I, O], b [O]                 Y = X·W + b
//!   Conv   W [K·K·Cin, Cout], b [Cout]     Y = im2col(X)·W + b; row (kh·K + kw)·Cin + ci of W
//!   BatchNorm gamma [C], beta [C], running mean [C], running var [C] (the last two not trained)
//! A conv filter is a column of its W, as a dense neuron is: one pruning code path serves both.

use crate::rng::Rng;

/// Per-sample activation shape: height, width, channels (a dense output is 1x1xO).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn new(h: usize, w: usize, c: usize) -> Shape {
        Shape { h, w, c }
    }
    pub fn size(&self) -> usize {
        self.h * self.w * self.c
    }
    /// Output side of a window of `k` at `stride` with `pad` zeros each side.
    fn out(side: usize, k: usize, stride: usize, pad: usize) -> usize {
        (side + 2 * pad).saturating_sub(k) / stride + 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Input,
    Dense { outputs: usize },
    Conv { outputs: usize, k: usize, stride: usize, pad: usize },
    BatchNorm,
    MaxPool { k: usize, stride: usize },
    /// Average pool; `k` = the input side makes it global average pooling.
    AvgPool { k: usize, stride: usize },
    /// Element-wise sum of its two inputs (a residual connection).
    Add,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Node {
    pub op: Op,
    /// Earlier nodes this one reads (one, or two for Add).
    pub inputs: Vec<usize>,
    /// max(y, 0) after the op, in place.
    pub relu: bool,
    /// Output shape (inferred when the node is added).
    pub shape: Shape,
}

/// What a parameter tensor is for: which get trained, pruned, folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Weight,
    Bias,
    Gamma,
    Beta,
    RunningMean,
    RunningVar,
}

/// One parameter tensor: its node, its role, and its shape as a matrix [rows, cols]
/// (W: [inputs, outputs]; vectors: [1, n]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TensorInfo {
    pub node: usize,
    pub role: Role,
    pub rows: usize,
    pub cols: usize,
    /// Updated by the optimizer. Not: running statistics, and the bias of a layer whose only
    /// reader is a batch norm (the norm subtracts it again; it stays 0 until folding fills it).
    pub trainable: bool,
}

impl TensorInfo {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Batch-norm constants shared by both backends.
pub const BN_EPS: f32 = 1e-5;
pub const BN_MOMENTUM: f32 = 0.1;

#[derive(Clone, Debug, PartialEq)]
pub struct Net {
    pub arch: String,
    pub nodes: Vec<Node>,
    pub classes: usize,
}

impl Net {
    /// A net holding only its input node; grow it with `push`.
    pub fn new(arch: &str, input: Shape, classes: usize) -> Net {
        Net { arch: arch.to_string(), nodes: vec![Node { op: Op::Input, inputs: vec![], relu: false, shape: input }], classes }
    }

    pub fn input(&self) -> Shape {
        self.nodes[0].shape
    }

    pub fn last(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Appends `op` reading `inputs`; returns the new node's index. Panics on shapes that do not
    /// fit (builders are code, not user input; user input reaches this only through
    /// `recipe::ModelConfig::build`, which checks sizes first).
    pub fn push(&mut self, op: Op, inputs: &[usize], relu: bool) -> usize {
        let x = self.nodes[inputs[0]].shape;
        let shape = match op {
            Op::Input => panic!("only node 0 is an input"),
            Op::Dense { outputs } => Shape::new(1, 1, outputs),
            Op::Conv { outputs, k, stride, pad } => Shape::new(Shape::out(x.h, k, stride, pad), Shape::out(x.w, k, stride, pad), outputs),
            Op::BatchNorm => x,
            Op::MaxPool { k, stride } | Op::AvgPool { k, stride } => Shape::new(Shape::out(x.h, k, stride, 0), Shape::out(x.w, k, stride, 0), x.c),
            Op::Add => {
                assert_eq!(inputs.len(), 2, "add takes two inputs");
                assert_eq!(x, self.nodes[inputs[1]].shape, "add needs equal shapes");
                x
            }
        };
        self.nodes.push(Node { op, inputs: inputs.to_vec(), relu, shape });
        self.last()
    }

    /// Appends `op` reading the last node.
    pub fn then(&mut self, op: Op, relu: bool) -> usize {
        let last = self.last();
        self.push(op, &[last], relu)
    }

    /// Fully connected layers of widths `hidden` (ReLU) and a linear classifier.
    pub fn mlp(input: Shape, hidden: &[usize], classes: usize) -> Net {
        let mut net = Net::new("mlp", input, classes);
        for &h in hidden {
            net.then(Op::Dense { outputs: h }, true);
        }
        net.then(Op::Dense { outputs: classes }, false);
        net
    }

    /// Caffe's LeNet-5 as used by Han et al. 2015: conv 20@5x5, max-pool 2, conv 50@5x5,
    /// max-pool 2, fc 500 + ReLU, fc 10 (no ReLU after the convolutions, as in Caffe).
    pub fn lenet5(input: Shape, classes: usize) -> Net {
        Net::lenet5_with(input, [20, 50, 500], classes)
    }

    /// LeNet-5 with other widths [conv1 filters, conv2 filters, fc units] (half width: [10, 25, 250]).
    pub fn lenet5_with(input: Shape, widths: [usize; 3], classes: usize) -> Net {
        let mut net = Net::new("lenet5", input, classes);
        net.then(Op::Conv { outputs: widths[0], k: 5, stride: 1, pad: 0 }, false);
        net.then(Op::MaxPool { k: 2, stride: 2 }, false);
        net.then(Op::Conv { outputs: widths[1], k: 5, stride: 1, pad: 0 }, false);
        net.then(Op::MaxPool { k: 2, stride: 2 }, false);
        net.then(Op::Dense { outputs: widths[2] }, true);
        net.then(Op::Dense { outputs: classes }, false);
        net
    }

    /// Two conv-BN-ReLU-conv-BN-ReLU-maxpool blocks of `widths` channels (3x3, padding 1), then
    /// fc 128 + ReLU and the classifier.
    pub fn vgg_mini(input: Shape, widths: &[usize], classes: usize) -> Net {
        let mut net = Net::new("vgg-mini", input, classes);
        for &c in widths {
            for _ in 0..2 {
                net.then(Op::Conv { outputs: c, k: 3, stride: 1, pad: 1 }, false);
                net.then(Op::BatchNorm, true);
            }
            net.then(Op::MaxPool { k: 2, stride: 2 }, false);
        }
        net.then(Op::Dense { outputs: 128 }, true);
        net.then(Op::Dense { outputs: classes }, false);
        net
    }

    /// A stem conv (3x3, BN, ReLU), one basic residual block per entry of `widths` (the first at
    /// stride 1, the rest at stride 2 with a 1x1 conv + BN projection shortcut), global average
    /// pooling and the classifier.
    pub fn resnet_mini(input: Shape, widths: &[usize], classes: usize) -> Net {
        let mut net = Net::new("resnet-mini", input, classes);
        net.then(Op::Conv { outputs: widths[0], k: 3, stride: 1, pad: 1 }, false);
        net.then(Op::BatchNorm, true);
        for (i, &c) in widths.iter().enumerate() {
            let x = net.last();
            let stride = if i == 0 { 1 } else { 2 };
            net.then(Op::Conv { outputs: c, k: 3, stride, pad: 1 }, false);
            net.then(Op::BatchNorm, true);
            net.then(Op::Conv { outputs: c, k: 3, stride: 1, pad: 1 }, false);
            let main = net.then(Op::BatchNorm, false);
            let shortcut = if stride == 1 && net.nodes[x].shape.c == c {
                x
            } else {
                net.push(Op::Conv { outputs: c, k: 1, stride, pad: 0 }, &[x], false);
                net.then(Op::BatchNorm, false)
            };
            net.push(Op::Add, &[main, shortcut], true);
        }
        let side = net.nodes[net.last()].shape.h;
        net.then(Op::AvgPool { k: side, stride: side }, false);
        net.then(Op::Dense { outputs: classes }, false);
        net
    }

    /// Every parameter tensor in buffer order: node by node, W then b (or gamma, beta, running
    /// mean, running var).
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let mut out = Vec::new();
        for (n, node) in self.nodes.iter().enumerate() {
            let x = node.inputs.first().map(|&i| self.nodes[i].shape);
            let before_bn = matches!(&self.consumers(n)[..], [c] if self.nodes[*c].op == Op::BatchNorm);
            let t = |role, rows, cols| {
                let trainable = match role {
                    Role::RunningMean | Role::RunningVar => false,
                    Role::Bias => !before_bn,
                    _ => true,
                };
                TensorInfo { node: n, role, rows, cols, trainable }
            };
            match node.op {
                Op::Dense { outputs } => {
                    out.push(t(Role::Weight, x.expect("has input").size(), outputs));
                    out.push(t(Role::Bias, 1, outputs));
                }
                Op::Conv { outputs, k, .. } => {
                    out.push(t(Role::Weight, k * k * x.expect("has input").c, outputs));
                    out.push(t(Role::Bias, 1, outputs));
                }
                Op::BatchNorm => {
                    let c = node.shape.c;
                    for role in [Role::Gamma, Role::Beta, Role::RunningMean, Role::RunningVar] {
                        out.push(t(role, 1, c));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Indices (into `tensors()`) of the weight matrices: what pruning works on, in node order.
    pub fn weight_tensors(&self) -> Vec<usize> {
        self.tensors().iter().enumerate().filter(|(_, t)| t.role == Role::Weight).map(|(i, _)| i).collect()
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors().iter().filter(|t| t.trainable).map(|t| t.len()).sum()
    }

    /// Multiply-adds x2 of one forward pass of one sample (dense and conv layers).
    pub fn forward_flops(&self) -> usize {
        self.tensors()
            .iter()
            .filter(|t| t.role == Role::Weight)
            .map(|t| {
                let s = self.nodes[t.node].shape;
                2 * t.len() * s.h * s.w
            })
            .sum()
    }

    /// (inputs, outputs) of every weight matrix: the shape summary a report shows.
    pub fn layer_dims(&self) -> Vec<(usize, usize)> {
        self.tensors().iter().filter(|t| t.role == Role::Weight).map(|t| (t.rows, t.cols)).collect()
    }

    /// Output units (neurons or filters) of every weight layer but the classifier: what neuron
    /// pruning acts on.
    pub fn hidden(&self) -> Vec<usize> {
        let mut d = self.layer_dims();
        d.pop();
        d.into_iter().map(|(_, o)| o).collect()
    }

    /// Nodes that read node `n`.
    pub fn consumers(&self, n: usize) -> Vec<usize> {
        (n + 1..self.nodes.len()).filter(|&m| self.nodes[m].inputs.contains(&n)).collect()
    }

    /// Per-sample f32 elements of the largest scratch one node needs (activations, im2col columns):
    /// what bounds the batch a buffer can hold.
    pub fn largest_per_sample(&self) -> usize {
        self.nodes
            .iter()
            .map(|node| match node.op {
                Op::Conv { k, .. } => node.shape.h * node.shape.w * k * k * self.nodes[node.inputs[0]].shape.c,
                _ => node.shape.size(),
            })
            .max()
            .unwrap_or(1)
    }
}

/// The values of every tensor of a `Net`, in `Net::tensors()` order.
#[derive(Clone, Debug, PartialEq)]
pub struct NetParams {
    pub tensors: Vec<Vec<f32>>,
}

impl NetParams {
    /// He-uniform weights (bound sqrt(6 / fan-in), suited to ReLU), zero biases, gamma 1, beta 0,
    /// running statistics (0, 1); seeded. For an MLP this draws exactly what the first release did.
    pub fn init(net: &Net, seed: u64) -> NetParams {
        let mut rng = Rng::new(seed, 1);
        let tensors = net
            .tensors()
            .iter()
            .map(|t| match t.role {
                Role::Weight => {
                    let bound = (6.0 / t.rows as f32).sqrt();
                    (0..t.len()).map(|_| rng.uniform(-bound, bound)).collect()
                }
                Role::Gamma | Role::RunningVar => vec![1.0; t.len()],
                Role::Bias | Role::Beta | Role::RunningMean => vec![0.0; t.len()],
            })
            .collect();
        NetParams { tensors }
    }

    pub fn zeros(net: &Net) -> NetParams {
        NetParams { tensors: net.tensors().iter().map(|t| vec![0.0; t.len()]).collect() }
    }

    /// Removes every unit (neuron, conv filter) of weight layer `layer` not in `keep`, with the
    /// input rows that read them and everything tied to them (see nn::surgery).
    pub fn remove_units(&self, net: &Net, layer: usize, keep: &[usize]) -> crate::Result<(Net, NetParams)> {
        let node = net.tensors()[net.weight_tensors()[layer]].node;
        super::surgery::remove_channels(net, self, node, keep)
    }

    pub fn max_abs_diff(&self, other: &NetParams) -> f32 {
        self.tensors
            .iter()
            .zip(&other.tensors)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0, f32::max)
    }

    /// Folds every batch norm that directly follows a conv or dense layer (and is its only reader)
    /// into that layer's W and b, using the running statistics:
    ///   W'[:, c] = W[:, c]·s_c,  b'_c = (b_c − mean_c)·s_c + beta_c,  s_c = gamma_c / sqrt(var_c + eps).
    /// Returns the net without those BN nodes and its parameters (inference gives the same outputs).
    pub fn fold_batch_norm(&self, net: &Net) -> (Net, NetParams) {
        let infos = net.tensors();
        let tensor = |node: usize, role: Role| infos.iter().position(|t| t.node == node && t.role == role);
        let mut folded = self.clone();
        // old node index -> new node index
        let mut remap: Vec<usize> = Vec::with_capacity(net.nodes.len());
        let mut out = Net { arch: net.arch.clone(), nodes: vec![], classes: net.classes };
        let mut drop_tensor = vec![false; infos.len()];
        for (n, node) in net.nodes.iter().enumerate() {
            if node.op == Op::BatchNorm {
                let src = node.inputs[0];
                let foldable = matches!(net.nodes[src].op, Op::Conv { .. } | Op::Dense { .. }) && !net.nodes[src].relu && net.consumers(src) == vec![n];
                if foldable {
                    let (w, b) = (tensor(src, Role::Weight).expect("W"), tensor(src, Role::Bias).expect("b"));
                    let [g, be, m, v] = [Role::Gamma, Role::Beta, Role::RunningMean, Role::RunningVar].map(|r| tensor(n, r).expect("bn tensor"));
                    let cols = infos[w].cols;
                    for c in 0..cols {
                        let s = self.tensors[g][c] / (self.tensors[v][c] + BN_EPS).sqrt();
                        for r in 0..infos[w].rows {
                            folded.tensors[w][r * cols + c] = self.tensors[w][r * cols + c] * s;
                        }
                        folded.tensors[b][c] = (self.tensors[b][c] - self.tensors[m][c]) * s + self.tensors[be][c];
                    }
                    for t in [g, be, m, v] {
                        drop_tensor[t] = true;
                    }
                    let new_src = remap[src];
                    out.nodes[new_src].relu = node.relu;
                    remap.push(new_src);
                    continue;
                }
            }
            let mut copy = node.clone();
            copy.inputs = node.inputs.iter().map(|&i| remap[i]).collect();
            out.nodes.push(copy);
            remap.push(out.nodes.len() - 1);
        }
        let tensors = folded.tensors.into_iter().zip(drop_tensor).filter(|(_, d)| !d).map(|(t, _)| t).collect();
        (out, NetParams { tensors })
    }
}
