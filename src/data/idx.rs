//! IDX reader (the MNIST container: big-endian magic 00 00 08 ND, ND big-endian u32 dimensions,
//! then unsigned bytes), raw or gzip. Every malformed file is an `IdxError`; sizes are checked
//! against the bytes actually present before anything is allocated for them.

use crate::error::IdxError;
use std::io::Read;

/// The largest body we accept (1 GiB). MNIST's training images are 47 MB.
pub const MAX_BODY_BYTES: usize = 1 << 30;

/// A parsed IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<u32>,
    pub data: Vec<u8>,
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Parses an IDX file given as raw or gzip bytes (detected by the 1f 8b signature).
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    if is_gzip(bytes) {
        parse_gzip(bytes)
    } else {
        parse_raw(bytes)
    }
}

/// Like `parse_idx`, but a name ending in `.gz` must really be gzip (catches mislabelled files).
pub fn parse_idx_named(name: &str, bytes: &[u8]) -> Result<IdxArray, IdxError> {
    if name.ends_with(".gz") && !is_gzip(bytes) {
        return Err(IdxError::NotGzip(name.to_string()));
    }
    parse_idx(bytes)
}

/// Header fields: dims and the number of body bytes they imply, checked for overflow and limit.
fn parse_header(bytes: &[u8]) -> Result<(Vec<u32>, usize, usize), IdxError> {
    if bytes.len() < 4 {
        return Err(IdxError::TooShort(bytes.len()));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 || bytes[3] == 0 || bytes[3] > 4 {
        return Err(IdxError::BadMagic { found: magic });
    }
    if bytes[2] != 0x08 {
        return Err(IdxError::UnsupportedType(bytes[2]));
    }
    let nd = bytes[3];
    let header = 4 + 4 * nd as usize;
    if bytes.len() < header {
        return Err(IdxError::HeaderTruncated { dims: nd, need: header, have: bytes.len() });
    }
    let dims: Vec<u32> = (0..nd as usize)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
        })
        .collect();
    if let Some(index) = dims.iter().position(|&d| d == 0) {
        return Err(IdxError::ZeroDimension { index, dims });
    }
    let claimed: u128 = dims.iter().map(|&d| d as u128).product();
    if claimed > MAX_BODY_BYTES as u128 {
        return Err(IdxError::TooLarge { dims, claimed, limit: MAX_BODY_BYTES });
    }
    Ok((dims, header, claimed as usize))
}

fn parse_raw(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    let (dims, header, expected) = parse_header(bytes)?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(IdxError::Truncated { dims, expected, found });
    }
    if found > expected {
        return Err(IdxError::TrailingBytes { dims, expected, found });
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

fn parse_gzip(bytes: &[u8]) -> Result<IdxArray, IdxError> {
    let mut dec = flate2::read::GzDecoder::new(bytes);
    let corrupt = |e: std::io::Error| IdxError::CorruptGzip(e.to_string());
    // The header first (at most 4 + 4*4 bytes), then exactly the body it claims and one byte more
    // to detect trailing data. The body buffer grows with the bytes that actually arrive, so a
    // header claiming a gigabyte in a 100-byte file allocates nothing large.
    // (`dec` is consumed by the final count below.)
    let mut head = vec![0u8; 4];
    read_full(&mut dec, &mut head).map_err(corrupt)?;
    let nd = if head.len() == 4 && head[0] == 0 && head[1] == 0 { head[3].min(4) as usize } else { 0 };
    let mut dims_bytes = vec![0u8; 4 * nd];
    read_full(&mut dec, &mut dims_bytes).map_err(corrupt)?;
    head.extend_from_slice(&dims_bytes);
    let (dims, _, expected) = parse_header(&head)?;
    let mut body = Vec::new();
    dec.by_ref().take(expected as u64).read_to_end(&mut body).map_err(corrupt)?;
    // Count (without keeping) whatever follows the claimed body.
    let extra = std::io::copy(&mut dec.take(MAX_BODY_BYTES as u64), &mut std::io::sink()).map_err(corrupt)? as usize;
    let found = body.len() + extra;
    if found < expected {
        return Err(IdxError::Truncated { dims, expected, found });
    }
    if found > expected {
        return Err(IdxError::TrailingBytes { dims, expected, found });
    }
    Ok(IdxArray { dims, data: body })
}

/// Reads up to buf.len() bytes; shrinks `buf` to what was there (a short file is not an I/O error).
fn read_full(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(())
}

/// Encodes an IDX array (raw). Used by tests and by exports of user data.
pub fn encode_idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
