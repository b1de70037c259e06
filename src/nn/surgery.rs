//! Structured surgery on a `Net`: physically removing output units (dense neurons, conv filters)
//! and with them the input channels of every layer that reads them, keeping batch norms, pools
//! and residual adds consistent. This is what hard neuron/filter/channel pruning produces: a
//! smaller dense model that computes what the masked model computed.
//!
//! Channel numbering flows through the graph: a batch norm or a pool keeps its input's channels,
//! and a residual add ties its two inputs and its output to one numbering. The nodes that share a
//! numbering form a `ChannelGroup`; removing channel c removes it everywhere in the group (the
//! column of every conv/dense layer producing it, the entries of every batch norm on it) and the
//! rows of every layer reading it. A layer's input row r belongs to channel r % C_in, for conv
//! patches ((kh·K + kw)·C_in + c) and for dense layers reading a flattened NHWC map alike.

use super::net::{Net, NetParams, Op, Role};
use crate::error::{Error, Result};

/// The nodes whose output channels are numbered together with one layer's outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelGroup {
    /// Every node in the group, ascending.
    pub nodes: Vec<usize>,
    /// The conv/dense nodes in the group (their output columns are the channels), ascending.
    pub producers: Vec<usize>,
    /// The conv/dense nodes outside the group reading a node in it (their input rows), ascending;
    /// a layer both reads and produces the group when a residual add skips over it.
    pub readers: Vec<usize>,
    /// Channels in the numbering.
    pub channels: usize,
}

/// The channel group of conv/dense node `node`. Errors when its channels cannot be removed: the
/// group reaches the input image or the classifier's outputs.
pub fn channel_group(net: &Net, node: usize) -> Result<ChannelGroup> {
    if !matches!(net.nodes.get(node).map(|n| n.op), Some(Op::Dense { .. } | Op::Conv { .. })) {
        return Err(Error::recipe("stages", format!("node {node} is not a dense or conv layer; only their units can be removed")));
    }
    let mut member = vec![false; net.nodes.len()];
    let mut readers = Vec::new();
    let mut stack = vec![node];
    while let Some(x) = stack.pop() {
        if member[x] {
            continue;
        }
        member[x] = true;
        match net.nodes[x].op {
            Op::Input => return Err(Error::recipe("stages", "these units are tied to the input image's channels by a residual connection and cannot be removed")),
            Op::BatchNorm | Op::MaxPool { .. } | Op::AvgPool { .. } | Op::Add => stack.extend(&net.nodes[x].inputs),
            Op::Dense { .. } | Op::Conv { .. } => {}
        }
        for c in net.consumers(x) {
            match net.nodes[c].op {
                Op::Dense { .. } | Op::Conv { .. } => readers.push(c),
                _ => stack.push(c),
            }
        }
    }
    if member[net.last()] {
        return Err(Error::recipe("stages", "the classifier's outputs are the classes and cannot be removed"));
    }
    let nodes: Vec<usize> = (0..net.nodes.len()).filter(|&n| member[n]).collect();
    let producers = nodes.iter().copied().filter(|&n| matches!(net.nodes[n].op, Op::Dense { .. } | Op::Conv { .. })).collect();
    readers.sort_unstable();
    readers.dedup();
    Ok(ChannelGroup { nodes, producers, readers, channels: net.nodes[node].shape.c })
}

/// Removes every channel of `node`'s group not in `keep` (ascending, distinct, in range, not
/// empty): returns the smaller net and `params` cut to it.
pub fn remove_channels(net: &Net, params: &NetParams, node: usize, keep: &[usize]) -> Result<(Net, NetParams)> {
    let group = channel_group(net, node)?;
    let c = group.channels;
    if keep.is_empty() || keep.windows(2).any(|w| w[0] >= w[1]) || keep.last().is_some_and(|&k| k >= c) {
        return Err(Error::recipe("stages", format!("channels to keep must be ascending, distinct, in 0..{c} and at least one")));
    }
    let mut kept = vec![false; c];
    keep.iter().for_each(|&k| kept[k] = true);
    let infos = net.tensors();
    let mut out = params.clone();
    for (j, info) in infos.iter().enumerate() {
        let produces = group.nodes.contains(&info.node);
        let reads = info.role == Role::Weight && group.readers.contains(&info.node);
        if !produces && !reads {
            continue;
        }
        let cin = net.nodes[net.nodes[info.node].inputs[0]].shape.c;
        let keep_row = |r: usize| !reads || kept[r % cin];
        let keep_col = |col: usize| !produces || kept[col];
        out.tensors[j] = (0..info.rows)
            .filter(|&r| keep_row(r))
            .flat_map(|r| (0..info.cols).filter(move |&col| keep_col(col)).map(move |col| r * info.cols + col))
            .map(|i| params.tensors[j][i])
            .collect();
    }
    let mut smaller = Net::new(&net.arch, net.input(), net.classes);
    for (n, node) in net.nodes.iter().enumerate().skip(1) {
        let mut op = node.op;
        if group.producers.contains(&n) {
            match &mut op {
                Op::Dense { outputs } | Op::Conv { outputs, .. } => *outputs = keep.len(),
                _ => unreachable!("producers are dense or conv"),
            }
        }
        smaller.push(op, &node.inputs, node.relu);
    }
    Ok((smaller, out))
}
