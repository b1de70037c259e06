//! The IDX reader on good and bad files: each malformed case gets its own typed error, never a
//! panic, and nothing large is allocated for a header that lies.

use flate2::write::GzEncoder;
use squeeze::data::{encode_idx, parse_idx, parse_idx_named, Dataset};
use squeeze::error::{DatasetError, Error, IdxError};
use std::io::Write;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn images(n: u32, r: u32, c: u32) -> Vec<u8> {
    encode_idx(&[n, r, c], &(0..n * r * c).map(|i| (i * 7 % 256) as u8).collect::<Vec<_>>())
}

#[test]
fn raw_and_gzip_parse_to_the_same_array() {
    let raw = images(3, 5, 4);
    let a = parse_idx(&raw).unwrap();
    assert_eq!(a.dims, vec![3, 5, 4]);
    assert_eq!(a.data.len(), 60);
    assert_eq!(a.data[59], (59 * 7 % 256) as u8);
    assert_eq!(parse_idx(&gzip(&raw)).unwrap(), a);
}

#[test]
fn wrong_magic_is_reported_with_the_value_found() {
    let mut f = images(2, 2, 2);
    f[0] = 0x12;
    match parse_idx(&f) {
        Err(IdxError::BadMagic { found }) => assert_eq!(found >> 24, 0x12),
        other => panic!("{other:?}"),
    }
    // A PNG signature is not IDX either.
    assert!(matches!(parse_idx(b"\x89PNG\r\n\x1a\n...."), Err(IdxError::BadMagic { .. })));
}

#[test]
fn non_byte_element_type_is_rejected() {
    let mut f = images(2, 2, 2);
    f[2] = 0x0D; // float
    assert_eq!(parse_idx(&f), Err(IdxError::UnsupportedType(0x0D)));
}

#[test]
fn too_short_and_cut_header_are_errors() {
    assert_eq!(parse_idx(&[0, 0]), Err(IdxError::TooShort(2)));
    assert_eq!(parse_idx(&[]), Err(IdxError::TooShort(0)));
    let f = images(2, 2, 2);
    assert!(matches!(parse_idx(&f[..10]), Err(IdxError::HeaderTruncated { dims: 3, need: 16, have: 10 })));
}

#[test]
fn truncated_body_is_reported_with_both_sizes() {
    let f = images(10, 28, 28);
    match parse_idx(&f[..f.len() - 100]) {
        Err(IdxError::Truncated { expected, found, .. }) => assert_eq!((expected, found), (7840, 7740)),
        other => panic!("{other:?}"),
    }
    match parse_idx(&gzip(&f[..f.len() - 1])) {
        Err(IdxError::Truncated { expected, found, .. }) => assert_eq!((expected, found), (7840, 7839)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dimensions_that_disagree_with_the_byte_count_are_reported() {
    let mut f = images(10, 28, 28);
    f.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(parse_idx(&f), Err(IdxError::TrailingBytes { expected: 7840, found: 7843, .. })));
    assert!(matches!(parse_idx(&gzip(&f)), Err(IdxError::TrailingBytes { expected: 7840, found: 7843, .. })));
}

#[test]
fn header_claiming_billions_of_images_fails_before_allocating() {
    // 4e9 images of 28x28 in a 100-byte file: over the limit, rejected from the header alone.
    let mut f = encode_idx(&[4_000_000_000, 28, 28], &[0; 84]);
    assert!(matches!(parse_idx(&f), Err(IdxError::TooLarge { .. })), "{:?}", parse_idx(&f));
    assert!(matches!(parse_idx(&gzip(&f)), Err(IdxError::TooLarge { .. })));
    // Under the limit but far more than present: truncated, and the gzip path only holds what arrived.
    f = encode_idx(&[1_000_000, 28, 28], &[0; 84]);
    assert!(matches!(parse_idx(&f), Err(IdxError::Truncated { expected: 784_000_000, found: 84, .. })));
    assert!(matches!(parse_idx(&gzip(&f)), Err(IdxError::Truncated { expected: 784_000_000, found: 84, .. })));
}

#[test]
fn zero_dimension_is_rejected() {
    let f = encode_idx(&[0, 28, 28], &[]);
    assert!(matches!(parse_idx(&f), Err(IdxError::ZeroDimension { index: 0, .. })));
}

#[test]
fn gzip_that_is_not_gzip_is_reported() {
    // Named .gz without the gzip signature.
    let raw = images(2, 2, 2);
    assert_eq!(parse_idx_named("train-images-idx3-ubyte.gz", &raw), Err(IdxError::NotGzip("train-images-idx3-ubyte.gz".into())));
    // The signature, then garbage.
    let mut bad = gzip(&raw);
    for b in bad.iter_mut().skip(10) {
        *b ^= 0x5a;
    }
    assert!(matches!(parse_idx(&bad), Err(IdxError::CorruptGzip(_))), "{:?}", parse_idx(&bad));
    // Just the two signature bytes.
    assert!(matches!(parse_idx(&[0x1f, 0x8b]), Err(IdxError::CorruptGzip(_))));
}

#[test]
fn image_and_label_counts_must_agree() {
    let im = parse_idx(&images(5, 4, 4)).unwrap();
    let lb = parse_idx(&encode_idx(&[4], &[1, 2, 3, 4])).unwrap();
    match Dataset::from_idx(im, lb) {
        Err(Error::Dataset(DatasetError::CountMismatch { images: 5, labels: 4 })) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn labels_out_of_range_and_swapped_files_are_reported() {
    let im = parse_idx(&images(3, 4, 4)).unwrap();
    let lb = parse_idx(&encode_idx(&[3], &[1, 12, 3])).unwrap();
    assert!(matches!(Dataset::from_idx(im.clone(), lb.clone()), Err(Error::Dataset(DatasetError::LabelOutOfRange { index: 1, label: 12, .. }))));
    // Labels given where images belong.
    assert!(matches!(Dataset::from_idx(lb, im), Err(Error::Idx(IdxError::WrongRank { expected: 3, found: 1, .. }))));
}

#[test]
fn every_truncation_of_a_real_file_is_an_error_not_a_panic() {
    let f = images(4, 3, 3);
    let g = gzip(&f);
    for cut in 0..f.len() {
        assert!(parse_idx(&f[..cut]).is_err(), "raw cut at {cut}");
    }
    for cut in 0..g.len() {
        assert!(parse_idx(&g[..cut]).is_err(), "gzip cut at {cut}");
    }
}
