//! Rendering pydicom's own test files (found through the project's venv,
//! or `PYDICOM_TEST_FILES`; skipped with a message when absent). Colour
//! files are checked against the bars pydicom's own tests assert; the
//! comparison with dcmtk's renderings is tests/python/test_dicomweb_rendered.py.

use super::*;
use std::path::PathBuf;

fn test_file(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("PYDICOM_TEST_FILES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.venv/lib/python3.11/site-packages/pydicom/data/test_files")
        });
    let dir = if dir.exists() {
        dir
    } else {
        PathBuf::from("/work/main/.venv/lib/python3.11/site-packages/pydicom/data/test_files")
    };
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!(
                "skipped: pydicom's {name} is not at {} ({e})",
                dir.display()
            );
            None
        }
    }
}

fn pixel(image: &Image, x: u32, y: u32) -> &[u8] {
    let c = image.channels as usize;
    let at = (y as usize * image.width as usize + x as usize) * c;
    &image.data[at..at + c]
}

/// The ten bands of pydicom's SC_rgb* files, top to bottom, at column 50.
const BARS: [(u32, [u8; 3]); 10] = [
    (5, [255, 0, 0]),
    (15, [255, 128, 128]),
    (25, [0, 255, 0]),
    (35, [128, 255, 128]),
    (45, [0, 0, 255]),
    (55, [128, 128, 255]),
    (65, [0, 0, 0]),
    (75, [64, 64, 64]),
    (85, [192, 192, 192]),
    (95, [255, 255, 255]),
];

/// `inverted`: pydicom's two-frame files hold the bars' negative second.
fn assert_bars(name: &str, frame: u32, tolerance: u8, inverted: bool) {
    let Some(file) = test_file(name) else { return };
    let image = decode_frame(&file, frame, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        (image.width, image.height, image.channels),
        (100, 100, 3),
        "{name}"
    );
    for (row, expected) in BARS {
        let expected = if inverted {
            expected.map(|v| 255 - v)
        } else {
            expected
        };
        let got = pixel(&image, 50, row);
        for c in 0..3 {
            assert!(
                got[c].abs_diff(expected[c]) <= tolerance,
                "{name} frame {frame} row {row}: {got:?}, expected {expected:?}"
            );
        }
    }
}

#[test]
fn rgb_bars_come_out_the_same_from_every_encoding() {
    assert_bars("SC_rgb_rle.dcm", 1, 0, false);
    assert_bars("SC_rgb_rle_2frame.dcm", 1, 0, false);
    assert_bars("SC_rgb_rle_2frame.dcm", 2, 1, true);
    assert_bars("SC_rgb_rle_16bit.dcm", 1, 1, false);
    assert_bars("SC_rgb_rle_16bit_2frame.dcm", 2, 1, true);
}

#[test]
fn ybr_is_converted_to_rgb() {
    // JPEG baseline declared YBR_FULL_422 (the decoder converts) and
    // uncompressed YBR_FULL_422 (converted here).
    assert_bars("SC_rgb_jpeg_dcmtk.dcm", 1, 8, false);
    assert_bars("SC_ybr_full_422_uncompressed.dcm", 1, 6, false);
}

#[test]
fn monochrome1_is_the_inverse_of_monochrome2() {
    let Some(file) = test_file("dicomdirtests/77654033/CR1/6154") else {
        return;
    };
    let m1 = decode_frame(&file, 1, None).unwrap();
    let obj = OpenFileOptions::new().from_reader(&file[..]).unwrap();
    let mut m2 = obj.clone();
    m2.put(dicom_object::mem::InMemElement::new(
        dicom_dictionary_std::tags::PHOTOMETRIC_INTERPRETATION,
        dicom_core::VR::CS,
        dicom_core::PrimitiveValue::from("MONOCHROME2"),
    ));
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    m2.meta().write(&mut bytes).unwrap();
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(m2.meta().transfer_syntax())
        .unwrap();
    use dicom_transfer_syntax_registry::TransferSyntaxIndex;
    m2.write_dataset_with_ts(&mut bytes, ts).unwrap();
    let m2 = decode_frame(&bytes[..], 1, None).unwrap();
    assert_eq!(m1.channels, 1);
    assert!(m1
        .data
        .iter()
        .zip(&m2.data)
        .all(|(a, b)| u16::from(*a) + u16::from(*b) == 255));
    assert!(m1.data.iter().any(|v| *v != m1.data[0]), "not a flat image");
}

#[test]
fn a_ct_is_windowed_in_hounsfield_units() {
    let Some(file) = test_file("CT_small.dcm") else {
        return;
    };
    let stored = decode_frame(&file, 1, None).unwrap();
    assert_eq!(
        (stored.width, stored.height, stored.channels),
        (128, 128, 1)
    );
    // Under a window far below every value all is white; under one far above, black.
    let above = decode_frame(&file, 1, Some(Window::parse("-5000,10").unwrap())).unwrap();
    assert!(
        above.data.iter().all(|&v| v == 255),
        "every pixel is above the window"
    );
    let below = decode_frame(&file, 1, Some(Window::parse("50000,10").unwrap())).unwrap();
    assert!(below.data.iter().all(|&v| v == 0));
    let rendered = render(
        &file,
        &RenderRequest {
            frame: 1,
            format: Format::Png,
            window: None,
            viewport: Some(Viewport::parse("64,64").unwrap()),
            quality: 90,
            fit: None,
        },
    )
    .unwrap();
    assert_eq!((rendered.width, rendered.height), (64, 64));
    assert_eq!(&rendered.bytes[1..4], b"PNG");
}

#[test]
fn palette_color_goes_through_its_tables() {
    let Some(file) = test_file("examples_palette.dcm") else {
        return;
    };
    let image = decode_frame(&file, 1, None).unwrap();
    assert_eq!(image.channels, 3);
    let coloured = image
        .data
        .chunks_exact(3)
        .filter(|p| p[0] != p[1] || p[1] != p[2])
        .count();
    assert!(coloured > 0, "a palette image has colours");
}

#[test]
fn frames_beyond_the_last_and_unsupported_syntaxes_are_errors() {
    let Some(file) = test_file("SC_rgb_rle_2frame.dcm") else {
        return;
    };
    assert_eq!(
        decode_frame(&file, 3, None),
        Err(RenderError::FrameOutOfRange {
            requested: 3,
            frames: 2
        })
    );
    assert!(matches!(
        decode_frame(&file, 0, None),
        Err(RenderError::FrameOutOfRange { .. })
    ));
    let Some(j2k) = test_file("MR_small_jp2klossless.dcm") else {
        return;
    };
    assert!(matches!(
        decode_frame(&j2k, 1, None),
        Err(RenderError::UnsupportedTransferSyntax(_))
    ));
    let Some(sr) = test_file("test-SR.dcm") else {
        return;
    };
    assert_eq!(decode_frame(&sr, 1, None), Err(RenderError::NoPixelData));
    assert!(matches!(
        decode_frame(b"not dicom at all", 1, None),
        Err(RenderError::Unreadable(_))
    ));
}
