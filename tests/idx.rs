//! MNIST-style IDX files, raw and gzip, generated here: values scaled to [0, 1], and one error
//! per kind of bad file.

use std::io::Write;
use std::path::{Path, PathBuf};

use mixprec::io::{read_idx_dataset, read_idx_images, read_idx_labels};
use mixprec::Error;

fn images_bytes(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut b = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(pixels);
    b
}

fn labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut b = 0x0000_0801u32.to_be_bytes().to_vec();
    b.extend((labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Three 2x2 images, pixel values 0..=255 spread out.
const PIXELS: [u8; 12] = [0, 255, 51, 102, 10, 20, 30, 40, 255, 255, 0, 0];

#[test]
fn raw_and_gzip_files_give_the_same_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (img, lab) = (images_bytes(3, 2, 2, &PIXELS), labels_bytes(&[7, 0, 9]));
    let raw = read_idx_dataset(
        &write(dir.path(), "x-idx3-ubyte", &img),
        &write(dir.path(), "y-idx1-ubyte", &lab),
    )
    .unwrap();
    let zipped = read_idx_dataset(
        &write(dir.path(), "x-idx3-ubyte.gz", &gz(&img)),
        &write(dir.path(), "y-idx1-ubyte.gz", &gz(&lab)),
    )
    .unwrap();
    assert_eq!(raw, zipped);
    assert_eq!((raw.len(), raw.features(), raw.classes()), (3, 4, Some(10)));
    let x = raw.x().as_slice();
    assert_eq!(&x[..4], &[0.0, 1.0, 0.2, 0.4]);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(
        raw.targets(),
        &mixprec::data::TargetData::Classes {
            labels: vec![7, 0, 9],
            classes: 10
        }
    );
}

#[test]
fn images_read_alone_are_flattened_rows() {
    let dir = tempfile::tempdir().unwrap();
    let x = read_idx_images(&write(dir.path(), "x", &images_bytes(3, 2, 2, &PIXELS))).unwrap();
    assert_eq!(x.shape(), &[3, 4]);
    let y = read_idx_labels(&write(dir.path(), "y", &labels_bytes(&[1, 2]))).unwrap();
    assert_eq!(y, [1, 2]);
}

fn idx_err(r: Result<impl std::fmt::Debug, Error>) -> String {
    let e = r.unwrap_err();
    assert!(matches!(e, Error::InvalidIdx { .. }), "{e}");
    e.to_string()
}

#[test]
fn wrong_magic_is_named_with_the_expected_one() {
    let dir = tempfile::tempdir().unwrap();
    // A label file given as images, and the other way round.
    let p = write(dir.path(), "labels", &labels_bytes(&[1, 2]));
    assert_eq!(
        idx_err(read_idx_images(&p)),
        format!(
            "IDX file {}: magic number 0x00000801 (expected 0x00000803 for images)",
            p.display()
        )
    );
    let q = write(
        dir.path(),
        "images.gz",
        &gz(&images_bytes(3, 2, 2, &PIXELS)),
    );
    assert_eq!(
        idx_err(read_idx_labels(&q)),
        format!(
            "IDX file {}: magic number 0x00000803 (expected 0x00000801 for labels)",
            q.display()
        )
    );
}

#[test]
fn truncated_or_padded_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let full = images_bytes(3, 2, 2, &PIXELS);
    let p = dir.path().join("x");
    for cut in [0, 2, 10, 16, 27] {
        std::fs::write(&p, &full[..cut]).unwrap();
        let msg = idx_err(read_idx_images(&p));
        assert!(
            msg.starts_with(&format!("IDX file {}: ", p.display())),
            "{msg}"
        );
    }
    std::fs::write(&p, &full[..27]).unwrap();
    assert_eq!(
        idx_err(read_idx_images(&p)),
        format!(
            "IDX file {}: 27 bytes (expected 28 bytes: a 16-byte header and dimensions [3, 2, 2])",
            p.display()
        )
    );
    let mut long = full.clone();
    long.push(0);
    std::fs::write(&p, &long).unwrap();
    assert!(idx_err(read_idx_images(&p)).contains("29 bytes (expected 28 bytes"));
    // Truncated inside a gzip stream: the decompressor's error, naming the file.
    let z = gz(&full);
    std::fs::write(&p, &z[..z.len() / 2]).unwrap();
    let e = read_idx_images(&p).unwrap_err();
    assert!(matches!(e, Error::CorruptGzip { .. }), "{e}");
    assert!(e
        .to_string()
        .starts_with(&format!("{} is not valid gzip data", p.display())));
}

#[test]
fn image_and_label_counts_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x", &images_bytes(3, 2, 2, &PIXELS));
    let y = write(dir.path(), "y", &labels_bytes(&[1, 2]));
    assert_eq!(
        idx_err(read_idx_dataset(&x, &y)),
        format!(
            "IDX file {}: 2 labels (expected 3 labels, one per image in {})",
            y.display(),
            x.display()
        )
    );
}

#[test]
fn zero_sized_images_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x", &images_bytes(2, 0, 5, &[]));
    assert!(idx_err(read_idx_images(&p)).contains("images of 0 x 5 pixels"));
    let e = read_idx_labels(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

// ---- Formats told by content, not by name (issue 10). ----

#[test]
fn sniff_format_reads_the_magic_not_the_name() {
    use mixprec::io::{sniff_format, DataFormat};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let idx_dir = d.join("runs-idxdir");
    std::fs::create_dir(&idx_dir).unwrap();
    let cases = [
        (
            write(d, "images.ubyte", &images_bytes(3, 2, 2, &PIXELS)),
            DataFormat::Idx,
        ),
        (
            write(d, "train.csv", &labels_bytes(&[1, 2])),
            DataFormat::Idx,
        ),
        (
            write(d, "train.csv.gz", &gz(&images_bytes(3, 2, 2, &PIXELS))),
            DataFormat::Idx,
        ),
        (write(&idx_dir, "ok.csv", b"1,2,0\n"), DataFormat::Csv),
        (write(d, "labels-idx1-ubyte", b"1,2,0\n"), DataFormat::Csv),
        (write(d, "data.idx.gz", &gz(b"1,2,0\n")), DataFormat::Csv),
        // `00 00` with a type byte or dimension count IDX does not define: still IDX (text
        // never starts with NUL), so the IDX reader can name what is wrong.
        (
            write(d, "t07.csv", &[0, 0, 7, 1, 0, 0, 0, 0]),
            DataFormat::Idx,
        ),
        (write(d, "dims0.csv", &[0, 0, 8, 0]), DataFormat::Idx),
        (
            write(d, "one-nul.idx", &[0, b'1', b',', b'2']),
            DataFormat::Csv,
        ),
        (write(d, "empty.idx", &[]), DataFormat::Csv),
        (
            write(d, "f64.bin", &[0, 0, 0x0e, 2, 0, 0, 0, 1]),
            DataFormat::Idx,
        ),
    ];
    for (path, want) in cases {
        assert_eq!(sniff_format(&path).unwrap(), want, "{}", path.display());
    }
}

#[test]
fn idx_readers_take_gzip_by_magic_whatever_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(
        dir.path(),
        "images.raw",
        &gz(&images_bytes(3, 2, 2, &PIXELS)),
    );
    let y = write(dir.path(), "labels.gz", &labels_bytes(&[0, 1, 2]));
    let d = read_idx_dataset(&x, &y).unwrap();
    assert_eq!((d.len(), d.features(), d.classes()), (3, 4, Some(3)));
}

#[test]
fn idx_header_claiming_2_pow_32_images_is_checked_against_the_file_length() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(dir.path(), "x", &images_bytes(u32::MAX, 28, 28, &PIXELS));
    let err = read_idx_images(&x).unwrap_err();
    assert!(matches!(err, Error::InvalidIdx { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("28 bytes (expected 3367254359296 bytes"),
        "{err}"
    );
}
