//! Bytes of data files for the CLI tests (`tests/cli.rs`, `tests/bad_input_cli.rs`): IDX files
//! with any magic number and dimensions, and gzip streams.

/// An IDX file: the big-endian magic number, each dimension, then the payload as given.
pub fn idx(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(payload);
    b
}

/// `bytes` as one gzip member.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}
