//! MNIST-style IDX files, raw or gzip-compressed: images (`0x00000803`: count, rows, columns,
//! then one unsigned byte per pixel) and labels (`0x00000801`: count, then one byte per label),
//! every header number a big-endian `u32`. Pixels are scaled to [0, 1] as Keras's MNIST examples
//! do (`x / 255`).

use std::path::Path;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::tensor::{alloc, Tensor};

/// The magic number of an unsigned-byte, 3-dimensional IDX file (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an unsigned-byte, 1-dimensional IDX file (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;

fn invalid(path: &str, found: String, expected: String) -> Error {
    Error::InvalidIdx {
        path: path.to_string(),
        found,
        expected,
    }
}

/// The file's bytes, decompressed when they start with gzip's magic `1f 8b` (IDX files start
/// with `00 00`, so the two cannot be confused), whatever the file is called.
fn read_bytes(path: &Path) -> Result<(String, Vec<u8>)> {
    Ok((path.display().to_string(), super::read_maybe_gzip(path)?))
}

/// Checks the magic number and the exact file length; returns the dimensions and the payload.
fn parse<'a>(
    name: &str,
    bytes: &'a [u8],
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8])> {
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    if bytes.len() < 4 {
        let found = format!("{} bytes", bytes.len());
        return Err(invalid(
            name,
            found,
            format!("at least a {header}-byte header"),
        ));
    }
    if word(0) != magic {
        return Err(invalid(
            name,
            format!("magic number {:#010x}", word(0)),
            format!("{magic:#010x} for {what}"),
        ));
    }
    if bytes.len() < header {
        let found = format!("{} bytes", bytes.len());
        return Err(invalid(name, found, format!("a {header}-byte header")));
    }
    let dims: Vec<usize> = (0..ndims).map(|d| word(4 + 4 * d) as usize).collect();
    let payload = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match payload.and_then(|p| p.checked_add(header)) {
        Some(total) if total == bytes.len() => Ok((dims, &bytes[header..])),
        Some(total) => Err(invalid(
            name,
            format!("{} bytes", bytes.len()),
            format!("{total} bytes: a {header}-byte header and dimensions {dims:?}"),
        )),
        None => Err(invalid(
            name,
            format!("dimensions {dims:?}"),
            "a size that fits in memory".into(),
        )),
    }
}

/// Reads an IDX image file into a `[n, rows * cols]` tensor of pixels scaled to [0, 1].
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read or decompressed; [`Error::InvalidIdx`] naming the
/// file for a wrong magic number, a short header, a length that is not exactly the header plus
/// `n · rows · cols` bytes (so a header's counts are never trusted), or zero rows or columns;
/// [`Error::Empty`] for zero images.
pub fn read_idx_images(path: &Path) -> Result<Tensor<f32>> {
    let (name, bytes) = read_bytes(path)?;
    let (dims, pixels) = parse(&name, &bytes, IMAGES_MAGIC, "images")?;
    // With zero images the header's rows and columns are not bounded by the length.
    let (n, size) = (dims[0], dims[1].checked_mul(dims[2]).unwrap_or(0));
    if n == 0 {
        return Err(Error::Empty {
            what: "IDX image file",
            why: format!("{name} holds 0 images (expected at least 1)"),
        });
    }
    if size == 0 {
        return Err(invalid(
            &name,
            format!("images of {} x {} pixels", dims[1], dims[2]),
            "at least 1 row and 1 column".into(),
        ));
    }
    let mut x = alloc::try_with_capacity(|| format!("pixels of {name} as f32"), pixels.len())?;
    x.extend(pixels.iter().map(|&p| f32::from(p) / 255.0));
    Tensor::from_vec(vec![n, size], x)
}

/// Reads an IDX label file.
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read or decompressed; [`Error::InvalidIdx`] naming the
/// file for a wrong magic number, a short header, or a length that is not exactly the header plus
/// one byte per label.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u32>> {
    let (name, bytes) = read_bytes(path)?;
    let (_, labels) = parse(&name, &bytes, LABELS_MAGIC, "labels")?;
    Ok(labels.iter().map(|&l| u32::from(l)).collect())
}

/// Reads an IDX image file and its label file into a classification [`Dataset`] whose number of
/// classes is the largest label plus one (10 for MNIST).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("mixprec-doc-idx-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let (images, labels) = (dir.join("x.idx"), dir.join("y.idx"));
/// // Two 1x2 images and their labels.
/// std::fs::write(&images, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 255, 51, 0]).unwrap();
/// std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 2, 3, 1]).unwrap();
/// let data = mixprec::io::read_idx_dataset(&images, &labels)?;
/// assert_eq!((data.len(), data.features(), data.classes()), (2, 2, Some(4)));
/// assert_eq!(data.x().as_slice(), &[0.0, 1.0, 0.2, 0.0]);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// # Errors
///
/// As [`read_idx_images`] and [`read_idx_labels`]; [`Error::InvalidIdx`] naming the label file
/// when the counts differ; [`Error::Empty`] for zero images.
pub fn read_idx_dataset(images: &Path, labels: &Path) -> Result<Dataset> {
    let x = read_idx_images(images)?;
    let y = read_idx_labels(labels)?;
    if y.len() != x.shape()[0] {
        return Err(invalid(
            &labels.display().to_string(),
            format!("{} labels", y.len()),
            format!(
                "{} labels, one per image in {}",
                x.shape()[0],
                images.display()
            ),
        ));
    }
    let classes = y.iter().max().map_or(0, |&m| m as usize + 1);
    Dataset::classification(x, y, classes)
}
