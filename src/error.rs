//! The crate's error type: every failure a user can cause (bad files, bad recipes, no GPU) is a
//! value with a message that says what was wrong and what is accepted. Nothing here panics.

use thiserror::Error;

/// Problems in an IDX file (the MNIST container format).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum IdxError {
    #[error("file is {0} bytes, too short for an IDX header (at least 8 bytes)")]
    TooShort(usize),
    #[error("bad magic number 0x{found:08x}: an IDX file starts with 00 00 08 ND (labels 0x00000801 = 2049, images 0x00000803 = 2051)")]
    BadMagic { found: u32 },
    #[error("IDX element type 0x{0:02x} is not supported: only unsigned bytes (0x08) are")]
    UnsupportedType(u8),
    #[error("expected an IDX file with {expected} dimension(s) ({what}), found {found}")]
    WrongRank { what: &'static str, expected: u8, found: u8 },
    #[error("IDX header is cut short: {dims} dimension(s) need {need} header bytes, the file has {have}")]
    HeaderTruncated { dims: u8, need: usize, have: usize },
    #[error("IDX dimensions {dims:?} claim {claimed} bytes of data, over the {limit}-byte limit")]
    TooLarge { dims: Vec<u32>, claimed: u128, limit: usize },
    #[error("IDX dimension {index} is zero ({dims:?}): every dimension must be at least 1")]
    ZeroDimension { index: usize, dims: Vec<u32> },
    #[error("IDX body is truncated: dimensions {dims:?} need {expected} data bytes, the file has {found}")]
    Truncated { dims: Vec<u32>, expected: usize, found: usize },
    #[error("IDX body is too long: dimensions {dims:?} need {expected} data bytes, the file has {found} (dimensions disagree with the byte count)")]
    TrailingBytes { dims: Vec<u32>, expected: usize, found: usize },
    #[error("file starts like gzip (1f 8b) but is not a valid gzip stream: {0}")]
    CorruptGzip(String),
    #[error("file `{0}` is named .gz but is not gzip (no 1f 8b signature)")]
    NotGzip(String),
}

/// Problems combining IDX files into a labelled dataset.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DatasetError {
    #[error("{images} images but {labels} labels: image and label files must have the same count")]
    CountMismatch { images: usize, labels: usize },
    #[error("label {label} at index {index} is out of range: labels must be 0..{classes}")]
    LabelOutOfRange { index: usize, label: u8, classes: usize },
    #[error("test images are {test_rows}x{test_cols} but training images are {train_rows}x{train_cols}")]
    ShapeMismatch { train_rows: usize, train_cols: usize, test_rows: usize, test_cols: usize },
    #[error("{0}")]
    Other(String),
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Idx(#[from] IdxError),
    #[error("{0}")]
    Dataset(#[from] DatasetError),
    /// A recipe field that is missing, unknown, of the wrong type or out of range: `path` names it.
    #[error("recipe field `{path}`: {message}")]
    Recipe { path: String, message: String },
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("training diverged: {0}")]
    Diverged(String),
    #[error("cancelled")]
    Cancelled,
    /// A bad argument from the page (an image of the wrong size, a model that does not exist).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn recipe(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Recipe { path: path.into(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
