//! What the page shows about a trained or compressed model: class probabilities for one drawn
//! image, the first layer's weights as pictures (pruned weights visible as exact zeros), and a
//! confusion matrix with the misclassified test images. All on the CPU reference: one image or a
//! few hundred at a time, cheaper than a GPU round trip, and the same math the tests check.

use crate::compress::quant::QuantFn;
use crate::data::{Dataset, Normalization};
use crate::error::{Error, Result};
use crate::nn::{Net, NetParams, Op};
use crate::reference::net::net_forward_with;

/// A model as one stage of a run left it: its weights as it uses them (masked by its pruning,
/// fake-quantized by its quantization) and its activation quantizers.
#[derive(Clone, Debug)]
pub struct StageModel {
    /// The stage it came from (0 = training).
    pub stage: usize,
    pub name: String,
    pub net: Net,
    pub params: NetParams,
    /// Per tensor: the quantizer its values came from (what the model file stores as codes;
    /// empty: none).
    pub weights: Vec<Option<QuantFn>>,
    /// Per node: the activation quantizer in force (empty: none).
    pub activations: Vec<Option<QuantFn>>,
}

impl StageModel {
    /// A float model (no quantizers).
    pub fn float(name: &str, net: Net, params: NetParams) -> StageModel {
        StageModel { stage: 0, name: name.into(), net, params, weights: vec![], activations: vec![] }
    }

    /// Whether this model can read `data`: the same image size (one channel) and every label one
    /// of its classes. A model is tied to the data shape it was built for; other data is an error
    /// naming both, never a silent misreading (a 28x28 MLP would read four 14x14 images as one).
    pub fn check_data(&self, data: &Dataset) -> Result<()> {
        let input = self.net.input();
        if (input.h, input.w, input.c) != (data.rows, data.cols, 1) {
            return Err(Error::Invalid(format!(
                "the model \"{}\" reads {}x{}x{} images; these images are {}x{}x1. Run a recipe on this dataset to get a model for it",
                self.name, input.h, input.w, input.c, data.rows, data.cols
            )));
        }
        if let Some(&label) = data.labels.iter().max().filter(|&&l| l as usize >= self.net.classes) {
            return Err(Error::Invalid(format!("the model \"{}\" has {} classes; these labels go up to {label}", self.name, self.net.classes)));
        }
        Ok(())
    }

    /// Parameters that are not exactly zero (pruned ones are).
    pub fn nonzero(&self) -> usize {
        self.net.tensors().iter().zip(&self.params.tensors).filter(|(t, _)| t.trainable).map(|(_, v)| v.iter().filter(|&&x| x != 0.0).count()).sum()
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Class probabilities for one image given as pixel intensities in [0, 1] (row-major, the
/// model's input size), normalised as the model's training data was.
pub fn predict(model: &StageModel, norm: Normalization, pixels: &[f32]) -> Result<Vec<f32>> {
    let size = model.net.input().size();
    if pixels.len() != size {
        return Err(Error::Invalid(format!("an image for this model has {size} pixels, got {}", pixels.len())));
    }
    if pixels.iter().any(|p| !p.is_finite()) {
        return Err(Error::Invalid("pixel values must be finite numbers".into()));
    }
    let (scale, shift) = norm.scale_shift();
    let x: Vec<f32> = pixels.iter().map(|&p| p.clamp(0.0, 1.0) * 255.0 * scale + shift).collect();
    let logits = net_forward_with(&model.net, &mut model.params.clone(), x, 1, 1, false, &model.activations).acts.pop().expect("logits");
    Ok(softmax(&logits))
}

/// The first weight layer as pictures: one tile per unit (an MLP neuron's 28×28 input weights, a
/// conv filter's k×k×C_in window), `weights` laid out [rows, units] as stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerPicture {
    /// "dense" or "conv".
    pub kind: &'static str,
    /// Tile height and width, and channels per tile.
    pub tile_h: usize,
    pub tile_w: usize,
    pub channels: usize,
    pub units: usize,
    /// Row-major [tile_h · tile_w · channels, units] (row r = (y·tile_w + x)·channels + c).
    pub weights: Vec<f32>,
}

pub fn first_layer(model: &StageModel) -> LayerPicture {
    let infos = model.net.tensors();
    let j = model.net.weight_tensors()[0];
    let node = &model.net.nodes[infos[j].node];
    let input = model.net.nodes[node.inputs[0]].shape;
    let (kind, tile_h, tile_w, channels) = match node.op {
        Op::Conv { k, .. } => ("conv", k, k, input.c),
        _ => ("dense", input.h, input.w, input.c),
    };
    LayerPicture { kind, tile_h, tile_w, channels, units: infos[j].cols, weights: model.params.tensors[j].clone() }
}

/// Predictions on the first `n` test images: the confusion matrix (rows: true class, columns:
/// predicted) and the misclassified ones.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Confusion {
    pub images: usize,
    pub matrix: Vec<Vec<u32>>,
    /// (test index, true label, predicted label), in test order.
    pub misclassified: Vec<(usize, u8, u8)>,
}

pub fn confusion(model: &StageModel, norm: Normalization, test: &Dataset, n: usize) -> Result<Confusion> {
    model.check_data(test)?;
    let n = n.min(test.n);
    let classes = model.net.classes;
    let mut matrix = vec![vec![0u32; classes]; classes];
    let mut misclassified = Vec::new();
    let order: Vec<u32> = (0..n as u32).collect();
    let mut params = model.params.clone();
    for start in (0..n).step_by(100) {
        let rows = 100.min(n - start);
        let (x, y) = test.gather(&order, start, rows, norm);
        let logits = net_forward_with(&model.net, &mut params, x, rows, rows, false, &model.activations).acts.pop().expect("logits");
        for (r, label) in y.iter().enumerate() {
            let row = &logits[r * classes..(r + 1) * classes];
            let pred = (0..classes).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
            let label = *label as usize;
            matrix[label][pred] += 1;
            if pred != label {
                misclassified.push((start + r, label as u8, pred as u8));
            }
        }
    }
    Ok(Confusion { images: n, matrix, misclassified })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Shape;

    fn model() -> StageModel {
        let net = Net::mlp(Shape::new(4, 3, 1), &[5], 3);
        let params = NetParams::init(&net, 2);
        StageModel::float("t", net, params)
    }

    #[test]
    fn predict_gives_probabilities_and_rejects_bad_images() {
        let m = model();
        let norm = Normalization { mean: 0.1, std: 0.3 };
        let p = predict(&m, norm, &[0.5; 12]).unwrap();
        assert_eq!(p.len(), 3);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5 && p.iter().all(|&v| v > 0.0));
        // The same as the reference forward on the normalised image.
        let (scale, shift) = norm.scale_shift();
        let logits = net_forward_with(&m.net, &mut m.params.clone(), vec![0.5 * 255.0 * scale + shift; 12], 1, 1, false, &[]).acts.pop().unwrap();
        assert_eq!(p, softmax(&logits));
        assert!(predict(&m, norm, &[0.5; 11]).is_err());
        assert!(predict(&m, norm, &[f32::NAN; 12]).is_err());
    }

    #[test]
    fn confusion_counts_every_image_once() {
        let m = model();
        let n = 250;
        let images: Vec<u8> = (0..n * 12).map(|i| (i * 37 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
        let test = Dataset { images, labels, n, rows: 4, cols: 3 };
        let c = confusion(&m, Normalization { mean: 0.5, std: 0.25 }, &test, 1000).unwrap();
        assert_eq!(c.images, n);
        assert_eq!(c.matrix.iter().flatten().sum::<u32>(), n as u32);
        let wrong: u32 = (0..3).flat_map(|a| (0..3).filter(move |&b| b != a).map(move |b| (a, b))).map(|(a, b)| c.matrix[a][b]).sum();
        assert_eq!(wrong as usize, c.misclassified.len());
        assert!(c.misclassified.iter().all(|&(i, l, p)| i < n && l != p && test.labels[i] == l));
    }

    /// A model is tied to its data's shape: the same pixel count in another layout (3x4 for a 4x3
    /// model: an MLP would read it without complaint), another size, or labels beyond its classes
    /// are errors that name both shapes; matching data passes.
    #[test]
    fn data_of_another_shape_is_refused() {
        let m = model();
        let data = |rows: usize, cols: usize, top: u8| Dataset { images: vec![7; 2 * rows * cols], labels: vec![0, top], n: 2, rows, cols };
        let norm = Normalization { mean: 0.5, std: 0.25 };
        assert!(confusion(&m, norm, &data(4, 3, 2), 2).is_ok());
        for (d, want) in [(data(3, 4, 1), "4x3x1 images; these images are 3x4x1"), (data(8, 6, 1), "these images are 8x6x1"), (data(4, 3, 3), "3 classes; these labels go up to 3")] {
            let err = confusion(&m, norm, &d, 2).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("\"t\""), "{err}");
        }
    }
}

/// Logits [n, classes] of the first `n` images of `data` on the CPU reference: the model as it
/// computes (fake-quantized where quantized), or with `integer` its integer model (compress::int8).
/// What the ONNX check compares an exported file's answers with.
pub fn logits(model: &StageModel, norm: Normalization, data: &Dataset, n: usize, integer: bool) -> Result<Vec<f32>> {
    model.check_data(data)?;
    let n = n.min(data.n);
    if integer {
        let int = crate::compress::int8::compile(&model.net, &model.params, &model.weights, &model.activations, norm)?;
        let cpu = crate::reference::int8::CpuIntModel::new(&int);
        let pixels = data.pixels();
        return Ok((0..n).step_by(250).flat_map(|s| int.logits(&cpu.forward(&data.images[s * pixels..(s + 250).min(n) * pixels], 250.min(n - s)))).collect());
    }
    let order: Vec<u32> = (0..n as u32).collect();
    let mut params = model.params.clone();
    let mut out = Vec::with_capacity(n * model.net.classes);
    for start in (0..n).step_by(250) {
        let rows = 250.min(n - start);
        let (x, _) = data.gather(&order, start, rows, norm);
        out.extend(net_forward_with(&model.net, &mut params, x, rows, rows, false, &model.activations).acts.pop().expect("logits"));
    }
    Ok(out)
}
