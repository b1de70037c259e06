//! Labelled image datasets built from IDX pairs: validation of the pair, normalisation constants,
//! seeded per-epoch shuffling and batch ranges. Images stay u8 (the GPU gets them packed as u8 too).

use super::idx::{parse_idx_named, IdxArray};
use crate::error::{DatasetError, IdxError, Result};
use crate::rng::Rng;

pub const CLASSES: usize = 10;

/// One split (train or test): `n` images of `rows x cols` u8 pixels and their labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub n: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    /// Builds a split from parsed IDX images ([N, rows, cols]) and labels ([N]).
    pub fn from_idx(images: IdxArray, labels: IdxArray) -> Result<Dataset> {
        if images.dims.len() != 3 {
            return Err(IdxError::WrongRank { what: "images [N, rows, cols]", expected: 3, found: images.dims.len() as u8 }.into());
        }
        if labels.dims.len() != 1 {
            return Err(IdxError::WrongRank { what: "labels [N]", expected: 1, found: labels.dims.len() as u8 }.into());
        }
        let (n, rows, cols) = (images.dims[0] as usize, images.dims[1] as usize, images.dims[2] as usize);
        if n != labels.dims[0] as usize {
            return Err(DatasetError::CountMismatch { images: n, labels: labels.dims[0] as usize }.into());
        }
        if let Some(index) = labels.data.iter().position(|&l| l as usize >= CLASSES) {
            return Err(DatasetError::LabelOutOfRange { index, label: labels.data[index], classes: CLASSES }.into());
        }
        Ok(Dataset { images: images.data, labels: labels.data, n, rows, cols })
    }

    /// Parses a pair of IDX files (raw or gzip). `names` are used in error messages and to insist
    /// that `.gz` files are gzip.
    pub fn from_idx_bytes(images: (&str, &[u8]), labels: (&str, &[u8])) -> Result<Dataset> {
        let im = parse_idx_named(images.0, images.1).map_err(|e| with_file(images.0, e))?;
        let lb = parse_idx_named(labels.0, labels.1).map_err(|e| with_file(labels.0, e))?;
        Dataset::from_idx(im, lb)
    }

    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// The first `n` samples (or all if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.n);
        Dataset {
            images: self.images[..n * self.pixels()].to_vec(),
            labels: self.labels[..n].to_vec(),
            n,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Mean and standard deviation of pixel/255 over the split (used to normalise inputs).
    pub fn normalization(&self) -> Normalization {
        let mut sum = 0u64;
        let mut sq = 0u64;
        for &p in &self.images {
            sum += p as u64;
            sq += (p as u64) * (p as u64);
        }
        let count = self.images.len().max(1) as f64;
        let mean = sum as f64 / count / 255.0;
        let var = (sq as f64 / count / (255.0 * 255.0) - mean * mean).max(1e-12);
        Normalization { mean: mean as f32, std: var.sqrt() as f32 }
    }

    /// The sample order of `epoch` for `seed`: a fresh Fisher-Yates shuffle per epoch.
    pub fn epoch_order(&self, seed: u64, epoch: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.n as u32).collect();
        Rng::new(seed, 1000 + epoch as u64).shuffle(&mut order);
        order
    }

    /// (offset, valid) of every batch of `batch` samples, the last one possibly partial.
    pub fn batches(&self, batch: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.n.div_ceil(batch)).map(move |i| (i * batch, batch.min(self.n - i * batch)))
    }

    /// Normalised f32 pixels of the samples `order[offset..offset+valid]`, row-major [valid, P].
    pub fn gather(&self, order: &[u32], offset: usize, valid: usize, norm: Normalization) -> (Vec<f32>, Vec<u32>) {
        self.gather_jittered(order, offset, valid, norm, 0)
    }

    /// The same with each image moved by up to `jitter` pixels each way (see `jitter_shift`).
    pub fn gather_jittered(&self, order: &[u32], offset: usize, valid: usize, norm: Normalization, jitter: usize) -> (Vec<f32>, Vec<u32>) {
        let p = self.pixels();
        let (scale, shift) = norm.scale_shift();
        let mut x = Vec::with_capacity(valid * p);
        let mut y = Vec::with_capacity(valid);
        for (b, &s) in order[offset..offset + valid].iter().enumerate() {
            let image = &self.images[s as usize * p..(s as usize + 1) * p];
            let d = jitter_shift(s, (offset + b) as u32, jitter as u32);
            push_shifted(&mut x, image, (self.rows, self.cols), d, |v| v as f32 * scale + shift);
            y.push(self.labels[s as usize] as u32);
        }
        (x, y)
    }

    /// The samples whose label is not in `classes` (e.g. a transfer set without the 3s), in order.
    pub fn without_classes(&self, classes: &[u8]) -> Dataset {
        let p = self.pixels();
        let keep: Vec<usize> = (0..self.n).filter(|&i| !classes.contains(&self.labels[i])).collect();
        Dataset {
            images: keep.iter().flat_map(|&i| self.images[i * p..(i + 1) * p].iter().copied()).collect(),
            labels: keep.iter().map(|&i| self.labels[i]).collect(),
            n: keep.len(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// The translation (dx, dy) in [-k, k]² of `sample` at `position` of an epoch's order: a hash
/// of both, so a sample moves differently every epoch and both backends move it alike.
/// (Twin of `jitter_shift` in shaders/data.wgsl.)
pub fn jitter_shift(sample: u32, position: u32, k: u32) -> (i32, i32) {
    if k == 0 {
        return (0, 0);
    }
    let mut h = sample.wrapping_mul(0x9E37_79B1) ^ position.wrapping_add(0x7F4A_7C15).wrapping_mul(0x85EB_CA77);
    h = (h ^ (h >> 16)).wrapping_mul(0x7FEB_352D);
    h = (h ^ (h >> 15)).wrapping_mul(0x846C_A68B);
    h ^= h >> 16;
    let side = 2 * k + 1;
    (((h & 0xffff) % side) as i32 - k as i32, ((h >> 16) % side) as i32 - k as i32)
}

/// Pixel `i` ([H, W, C] order) of `image` moved by `d` = (dx, dy): 0 where it moved in from outside.
pub fn shifted_pixel(image: &[u8], height: usize, width: usize, channels: usize, i: usize, d: (i32, i32)) -> u8 {
    let r = (i / (width * channels)) as i32 - d.1;
    let c = ((i / channels) % width) as i32 - d.0;
    if r < 0 || r >= height as i32 || c < 0 || c >= width as i32 {
        return 0;
    }
    image[(r as usize * width + c as usize) * channels + i % channels]
}

/// Appends `image` [H, W] moved by `d` as `shifted_pixel` moves it, each pixel through `px`: row by
/// row, without shifted_pixel's divisions per pixel (the CPU trainer's batch gather; the same
/// values as gather_batch_reference, tested there).
fn push_shifted(x: &mut Vec<f32>, image: &[u8], (height, width): (usize, usize), d: (i32, i32), px: impl Fn(u8) -> f32) {
    if d == (0, 0) {
        x.extend(image.iter().map(|&v| px(v)));
        return;
    }
    let zero = px(0);
    for r in 0..height as i32 {
        let from = r - d.1;
        if from < 0 || from >= height as i32 {
            x.extend(std::iter::repeat_n(zero, width));
            continue;
        }
        let row = &image[from as usize * width..(from as usize + 1) * width];
        x.extend((0..width as i32).map(|c| if (0..width as i32).contains(&(c - d.0)) { px(row[(c - d.0) as usize]) } else { zero }));
    }
}

fn with_file(name: &str, e: IdxError) -> crate::error::Error {
    crate::error::Error::Io { path: name.to_string(), message: e.to_string() }
}

/// Input normalisation x = (p/255 - mean) / std, computed on the training split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: f32,
    pub std: f32,
}

impl Normalization {
    /// x = p * scale + shift, the form the GPU gather uses.
    pub fn scale_shift(&self) -> (f32, f32) {
        (1.0 / (255.0 * self.std), -self.mean / self.std)
    }

    /// Whether a model file's normalisation can be used and written back: a positive normal std
    /// whose per-pixel scale 1/(255·std) is a normal number too, and a finite mean and shift.
    pub fn usable(&self) -> bool {
        let (scale, shift) = self.scale_shift();
        self.std.is_normal() && self.std > 0.0 && self.mean.is_finite() && scale.is_normal() && (scale * 255.0).is_normal() && shift.is_finite()
    }
}

/// A train/test pair, the unit an experiment runs on.
#[derive(Debug, Clone)]
pub struct Splits {
    pub name: String,
    pub train: Dataset,
    pub test: Dataset,
}

impl Splits {
    pub fn new(name: &str, train: Dataset, test: Dataset) -> Result<Splits> {
        if (train.rows, train.cols) != (test.rows, test.cols) {
            return Err(DatasetError::ShapeMismatch {
                train_rows: train.rows,
                train_cols: train.cols,
                test_rows: test.rows,
                test_cols: test.cols,
            }
            .into());
        }
        Ok(Splits { name: name.to_string(), train, test })
    }
}
