//! The model file (src/export.rs): every architecture, dense and pruned, loads back bit for bit
//! with its normalisation; pruned weight matrices are stored in the relative-index encoding, so
//! the file is as small as the report says; quantized models (every scheme, pruned or not, with
//! activation quantizers) load back to the same values, quantizers and predictions, stored as
//! codes (Huffman-coded and relative-indexed where smaller); version 1 files still load; and
//! malformed files (every truncation, a flipped byte anywhere, a lying header) are errors, never
//! panics.

use squeeze::compress::prune::mask_by_sparsity;
use squeeze::data::Normalization;
use squeeze::compress::quant::{QuantFn, Scheme, SchemeKind};
use squeeze::export::{load, save};
use squeeze::inspect::{predict, StageModel};
use squeeze::nn::{Net, NetParams, Role, Shape};

fn pruned(net: &Net, seed: u64, sparsity: f32) -> NetParams {
    let mut p = NetParams::init(net, seed);
    for (t, info) in p.tensors.iter_mut().zip(net.tensors()) {
        if info.role == Role::Weight {
            let scores: Vec<f32> = t.iter().map(|v| v.abs()).collect();
            let m = mask_by_sparsity(&scores, sparsity);
            t.iter_mut().zip(m).for_each(|(v, k)| *v *= k);
        }
    }
    p
}

#[test]
fn every_model_round_trips_bit_for_bit_and_pruned_ones_are_small() {
    let norm = Normalization { mean: 0.1307, std: 0.3081 };
    let input = Shape::new(28, 28, 1);
    for net in [Net::mlp(input, &[300, 100], 10), Net::lenet5(input, 10), Net::vgg_mini(input, &[16, 32], 10), Net::resnet_mini(input, &[16, 32, 64], 10)] {
        for sparsity in [0.0, 0.9] {
            let params = pruned(&net, 3, sparsity);
            let bytes = save(&StageModel::float("m", net.clone(), params.clone()), norm);
            let (m2, norm2) = load(&bytes).unwrap();
            assert_eq!(m2.net, net, "{} nodes", net.arch);
            assert_eq!(m2.params, params, "{} at {sparsity}: tensors", net.arch);
            assert!(m2.weights.is_empty() && m2.activations.is_empty());
            assert_eq!(norm2, norm);
            let dense: usize = params.tensors.iter().map(|t| 4 * t.len()).sum();
            if sparsity == 0.0 {
                assert!(bytes.len() > dense && bytes.len() < dense + 8192, "{}: dense file (header and all) {} vs {dense} bytes of f32", net.arch, bytes.len());
            } else {
                // 10% of weights kept at 4 + 5/8 bytes each, plus fillers: well under a quarter.
                assert!(bytes.len() < dense / 4, "{}: pruned file {} vs {dense} dense", net.arch, bytes.len());
            }
        }
    }
}

#[test]
fn malformed_files_are_errors_not_panics() {
    let net = Net::mlp(Shape::new(6, 5, 1), &[7], 3);
    let bytes = save(&StageModel::float("m", net.clone(), pruned(&net, 1, 0.6)), Normalization { mean: 0.2, std: 0.5 });
    // Every truncation.
    for cut in 0..bytes.len() {
        assert!(load(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Trailing bytes.
    let mut long = bytes.clone();
    long.push(0);
    assert!(load(&long).is_err());
    // Every single flipped byte: an error or a file that still loads (a changed weight value),
    // never a panic.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = load(&b);
    }
    // A header that lies about a tensor's shape, or describes a net that does not fit.
    let text = String::from_utf8_lossy(&bytes).to_string();
    for (from, to) in [("\"rows\":30", "\"rows\":31"), ("\"outputs\":7", "\"outputs\":8"), ("\"input\":[6,5,1]", "\"input\":[6,5,2]"), ("\"classes\":3", "\"classes\":4")] {
        assert!(text.contains(from), "{from}");
        let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let header = String::from_utf8(bytes[12..12 + header_len].to_vec()).unwrap().replace(from, to);
        let mut b = bytes[..8].to_vec();
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(&bytes[12 + header_len..]);
        let e = load(&b).unwrap_err().to_string();
        assert!(e.starts_with("model file:"), "{from} -> {to}: {e}");
    }
    assert!(load(b"SQZM\x03\0\0\0\0\0\0\0").unwrap_err().to_string().contains("version 3"));
    assert!(load(b"PK\x03\x04 not a model").is_err());
}

/// A model quantized as a quantize stage leaves it: each weight matrix fake-quantized by `scheme`
/// (biases float), every activation a weight layer reads quantized to 8 bits.
fn quantized(net: &Net, params: &NetParams, scheme: Scheme) -> StageModel {
    let infos = net.tensors();
    let mut m = StageModel::float("q", net.clone(), params.clone());
    m.weights = infos.iter().enumerate().map(|(j, t)| (t.role == Role::Weight).then(|| scheme.fit(&params.tensors[j], t.cols))).collect();
    for (j, q) in m.weights.iter().enumerate() {
        if let Some(q) = q {
            m.params.tensors[j] = q.fake(&params.tensors[j], infos[j].cols);
        }
    }
    let a8 = Scheme { kind: SchemeKind::Asymmetric, bits: 8, per_channel: false }.fit_ranges(&[(0.0, 2.5)]);
    m.activations = (0..net.nodes.len()).map(|n| (n > 0 && net.consumers(n).iter().any(|&c| net.tensors().iter().any(|t| t.node == c))).then(|| a8.clone())).collect();
    m
}

#[test]
fn quantized_models_round_trip_and_predict_exactly() {
    let norm = Normalization { mean: 0.1307, std: 0.3081 };
    let input = Shape::new(28, 28, 1);
    let image: Vec<f32> = (0..784).map(|i| ((i * 37 % 101) as f32 / 100.0).powi(2)).collect();
    for net in [Net::mlp(input, &[300, 100], 10), Net::lenet5(input, 10)] {
        let dense: usize = net.tensors().iter().map(|t| 4 * t.len()).sum();
        for sparsity in [0.0, 0.92] {
            let params = pruned(&net, 7, sparsity);
            for (kind, bits, per_channel) in [(SchemeKind::Symmetric, 8, true), (SchemeKind::Asymmetric, 4, false), (SchemeKind::Binary, 1, true), (SchemeKind::Ternary, 2, true), (SchemeKind::Kmeans, 5, false), (SchemeKind::PowerOfTwo, 4, false), (SchemeKind::F16, 16, false), (SchemeKind::FixedPoint, 8, true)] {
                let what = format!("{} at {sparsity}, {kind:?} {bits} bits, per channel {per_channel}", net.arch);
                let m = quantized(&net, &params, Scheme { kind, bits, per_channel });
                let bytes = save(&m, norm);
                let (m2, norm2) = load(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(norm2, norm);
                assert_eq!(m2.params, m.params, "{what}: values");
                assert_eq!(m2.activations, m.activations, "{what}: activation quantizers");
                assert_eq!(save(&m2, norm), bytes, "{what}: saved again, the same bytes");
                assert_eq!(predict(&m2, norm, &image).unwrap(), predict(&m, norm, &image).unwrap(), "{what}: predictions");
                // Codes cost their bits: a b-bit model is near b/32 of f32 (tables, biases, header aside).
                let weights: usize = net.tensors().iter().filter(|t| t.role == Role::Weight).map(|t| t.len()).sum();
                let budget = (weights as f64 * bits as f64 / 8.0 * if sparsity > 0.0 { 0.35 } else { 1.0 }) as usize + (dense - 4 * weights) + 16_384;
                assert!(bytes.len() <= budget, "{what}: {} bytes, budget {budget}", bytes.len());
            }
        }
    }
}

/// Dynamic activation ranges (each batch quantized over its own min-max) are stored as such and
/// predict after loading exactly as before; they are not the static quantizer they replace.
#[test]
fn dynamic_activation_ranges_round_trip() {
    use squeeze::compress::quant::QuantFn;
    let norm = Normalization { mean: 0.1307, std: 0.3081 };
    let net = Net::lenet5(Shape::new(28, 28, 1), 10);
    let image: Vec<f32> = (0..784).map(|i| ((i * 53 % 97) as f32 / 96.0).powi(3)).collect();
    let m = quantized(&net, &pruned(&net, 3, 0.0), Scheme { kind: SchemeKind::Symmetric, bits: 8, per_channel: true });
    let mut d = m.clone();
    for (i, a) in d.activations.iter_mut().enumerate() {
        if a.is_some() {
            *a = Some(if i % 2 == 0 { QuantFn::Dynamic { qmin: 0, qmax: 15 } } else { QuantFn::Dynamic { qmin: -127, qmax: 127 } });
        }
    }
    let bytes = save(&d, norm);
    let (d2, _) = load(&bytes).unwrap();
    assert_eq!(d2.activations, d.activations);
    assert_eq!(predict(&d2, norm, &image).unwrap(), predict(&d, norm, &image).unwrap());
    assert_ne!(predict(&d, norm, &image).unwrap(), predict(&m, norm, &image).unwrap(), "dynamic ranges predicted like the static ones");
}

#[test]
fn huffman_and_relative_indices_shrink_a_deep_compression_model() {
    // 8% of LeNet-300-100's weights kept, 32 shared values per layer (k-means 5 bits).
    let net = Net::mlp(Shape::new(28, 28, 1), &[300, 100], 10);
    let params = pruned(&net, 11, 0.92);
    let mut m = quantized(&net, &params, Scheme { kind: SchemeKind::Kmeans, bits: 5, per_channel: false });
    m.activations.clear();
    let bytes = save(&m, Normalization { mean: 0.0, std: 1.0 });
    let header_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[12..12 + header_len].to_vec()).unwrap();
    assert!(header.contains("-codes+huffman"), "the pruned weights take sparse Huffman-coded codes: {header}");
    let kept = 21_300.0;
    // Under 11 bits per kept weight all told (5-bit codes + 5-bit gaps before Huffman), biases f32.
    assert!((bytes.len() as f64) < kept * 11.0 / 8.0 + 410.0 * 4.0 + 2048.0, "{} bytes", bytes.len());
    assert_eq!(load(&bytes).unwrap().0.params, m.params);
}

#[test]
fn version_1_files_still_load_and_cannot_hold_codes() {
    let net = Net::mlp(Shape::new(6, 5, 1), &[7], 3);
    let float = save(&StageModel::float("m", net.clone(), pruned(&net, 2, 0.5)), Normalization { mean: 0.2, std: 0.5 });
    let mut v1 = float.clone();
    v1[4] = 1;
    assert_eq!(load(&v1).unwrap().0.params, load(&float).unwrap().0.params);
    let q = quantized(&net, &pruned(&net, 2, 0.5), Scheme { kind: SchemeKind::Symmetric, bits: 4, per_channel: true });
    let mut v1q = save(&q, Normalization { mean: 0.2, std: 0.5 });
    v1q[4] = 1;
    let e = load(&v1q).unwrap_err().to_string();
    assert!(e.contains("version 1"), "{e}");
}

#[test]
fn malformed_quantized_files_are_errors_not_panics() {
    let net = Net::mlp(Shape::new(6, 5, 1), &[9, 7], 3);
    for kind in [SchemeKind::Kmeans, SchemeKind::Asymmetric, SchemeKind::Binary] {
        let m = quantized(&net, &pruned(&net, 4, 0.6), Scheme { kind, bits: if kind == SchemeKind::Binary { 1 } else { 3 }, per_channel: kind != SchemeKind::Kmeans });
        let bytes = save(&m, Normalization { mean: 0.2, std: 0.5 });
        for cut in 0..bytes.len() {
            assert!(load(&bytes[..cut]).is_err(), "{kind:?}: cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5a;
            let _ = load(&b);
        }
        // A lying activation quantizer: per channel, or a negative step.
        let text = String::from_utf8_lossy(&bytes).to_string();
        assert!(text.contains("\"activations\":[{\"node\":1"), "{text}");
    }
    let bad = QuantFn::Affine { qmin: 0, qmax: 255, channels: vec![[1.0, -1.0, 0.0]] };
    let mut m = quantized(&net, &pruned(&net, 4, 0.6), Scheme { kind: SchemeKind::Symmetric, bits: 4, per_channel: true });
    m.activations[1] = Some(bad);
    let e = load(&save(&m, Normalization { mean: 0.2, std: 0.5 })).unwrap_err().to_string();
    assert!(e.contains("activation quantizer of node 1"), "{e}");
}
