// The properties the fuzz targets check, one function per reader of outside bytes. Shared by
// fuzz/fuzz_targets/*.rs and tests/fuzz_regressions.rs (which replays every input in
// fuzz/regressions/<target>/, each one that once broke a property). Any input must give a value or
// an `Err`: a panic, an abort or an allocation the bytes do not back is a failure.

/// The IDX reader (raw and gzip; the first byte picks the name and where a pair is cut) and the
/// dataset built from an images/labels pair.
pub fn idx_property(bytes: &[u8]) {
    use squeeze::data::{parse_idx_named, Dataset};
    let Some((&mode, rest)) = bytes.split_first() else { return };
    let name = if mode & 1 == 1 { "train-images-idx3-ubyte.gz" } else { "train-images-idx3-ubyte" };
    if let Ok(a) = parse_idx_named(name, rest) {
        let n: usize = a.dims.iter().map(|&d| d as usize).product();
        assert_eq!(a.data.len(), n, "the body is exactly what the dims claim");
    }
    // A pair: the first (mode >> 1) * 8 bytes of the rest are the images file, the others the labels.
    let cut = ((mode >> 1) as usize * 8).min(rest.len());
    if let Ok(d) = Dataset::from_idx_bytes(("images", &rest[..cut]), ("labels", &rest[cut..])) {
        assert_eq!((d.images.len(), d.labels.len()), (d.n * d.rows * d.cols, d.n));
    }
}

/// The recipe parser and validator (the CLI's files and the page's links both come through
/// `Recipe::from_json`): a recipe that parses writes back to JSON that parses to the same recipe.
pub fn recipe_property(bytes: &[u8]) {
    use squeeze::recipe::Recipe;
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(r) = Recipe::from_json(text) {
        let again = Recipe::from_json(&r.to_json()).expect("a recipe's own JSON parses");
        assert_eq!(again, r, "to_json -> from_json is the identity");
    }
}

/// The .sqz model reader: a file that reads writes back to bytes that read again to the same bytes.
pub fn sqz_property(bytes: &[u8]) {
    use squeeze::export::{load, save};
    if let Ok((model, norm)) = load(bytes) {
        let written = save(&model, norm);
        let (again, norm2) = load(&written).expect("a file this build wrote reads back");
        assert!(save(&again, norm2) == written, "write -> read -> write is stable");
    }
}

/// The ONNX reader (src/onnx/import.rs): a file it reads exports again (every model it builds has
/// an ONNX form), that export reads back, and export -> import -> export is stable.
pub fn onnx_property(bytes: &[u8]) {
    use squeeze::onnx::{export, import};
    if let Ok((model, norm)) = import(bytes) {
        let written = export(&model, norm).expect("a model the ONNX reader built exports").bytes;
        let (again, norm2) = import(&written).expect("a file this build wrote reads back");
        assert!(export(&again, norm2).expect("exports again").bytes == written, "write -> read -> write is stable");
    }
}
