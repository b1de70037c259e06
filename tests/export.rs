//! The model file (src/export.rs): every architecture, dense and pruned, loads back bit for bit
//! with its normalisation; pruned weight matrices are stored in the relative-index encoding, so
//! the file is as small as the report says; and malformed files (every truncation, a flipped
//! byte anywhere, a lying header) are errors, never panics.

use squeeze::compress::prune::mask_by_sparsity;
use squeeze::data::Normalization;
use squeeze::export::{load, save};
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
            let bytes = save(&net, &params, norm);
            let (net2, params2, norm2) = load(&bytes).unwrap();
            assert_eq!(net2, net, "{} nodes", net.arch);
            assert_eq!(params2, params, "{} at {sparsity}: tensors", net.arch);
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
    let bytes = save(&net, &pruned(&net, 1, 0.6), Normalization { mean: 0.2, std: 0.5 });
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
    assert!(load(b"SQZM\x02\0\0\0\0\0\0\0").unwrap_err().to_string().contains("version 2"));
    assert!(load(b"PK\x03\x04 not a model").is_err());
}
