//! One decoded frame turned into 8-bit grey or RGB, the way PS3.3 C.7.6.3
//! and C.11 say a display should: stored value → modality (rescale) → VOI
//! (window) → MONOCHROME1 inverted; RGB as is; YBR_FULL(_422) to RGB;
//! PALETTE COLOR through its lookup tables.
//!
//! dicom-pixeldata decodes (it knows the codecs); the photometric steps are
//! Lightbox's own, because its `to_vec*` conversions skip planar
//! configuration 1, 32-bit samples, palettes and MONOCHROME1 inversion, and
//! after an RLE decode it calls YBR data RGB without converting it. Which
//! colour space the decoded samples are in is therefore decided here from
//! the transfer syntax: only the JPEG decoder converts YBR to RGB itself.

use super::params::{VoiFunction, Window};
use super::{Image, RenderError};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{PixelDecoder, PixelRepresentation, PlanarConfiguration};
use dicom_transfer_syntax_registry::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

/// JPEG Baseline, Extended, Lossless and Lossless SV1: the syntaxes whose
/// decoder hands back RGB for three-sample images, whatever was declared.
const JPEG_SYNTAXES: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
];

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| {
            s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_owned()
        })
}

fn int(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<i64>().ok())
}

/// How many frames the instance has (1 unless NumberOfFrames says more).
pub(crate) fn number_of_frames(obj: &DefaultDicomObject) -> u32 {
    int(obj, tags::NUMBER_OF_FRAMES)
        .filter(|n| *n >= 1)
        .map_or(1, |n| n.min(i64::from(u32::MAX)) as u32)
}

/// Frame `frame` (0-based) as an 8-bit image, windowed by `window` when grey.
pub(crate) fn frame_image(
    obj: &DefaultDicomObject,
    frame: u32,
    window: Option<Window>,
) -> Result<Image, RenderError> {
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(RenderError::NoPixelData);
    }
    let ts_uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_owned();
    let ts = TransferSyntaxRegistry
        .get(&ts_uid)
        .filter(|ts| ts.can_decode_all())
        .ok_or_else(|| RenderError::UnsupportedTransferSyntax(ts_uid.clone()))?;
    let frames = number_of_frames(obj);
    if frame >= frames {
        return Err(RenderError::FrameOutOfRange {
            requested: frame + 1,
            frames,
        });
    }
    let declared = text(obj, tags::PHOTOMETRIC_INTERPRETATION)
        .ok_or_else(|| {
            RenderError::Unsupported("the image has no PhotometricInterpretation".into())
        })?
        .to_ascii_uppercase();
    if declared == "YBR_FULL_422" && !ts.is_encapsulated_pixel_data() {
        return native_ybr_422(obj, frame);
    }
    let px = obj
        .decode_pixel_data_frame(frame)
        .map_err(|e| RenderError::Undecodable(e.to_string()))?;
    let (width, height) = (px.columns(), px.rows());
    let samples_per_pixel = px.samples_per_pixel();
    // The JPEG decoder has already made RGB of any three-sample image.
    let photometric = if samples_per_pixel == 3 && JPEG_SYNTAXES.contains(&ts_uid.as_str()) {
        "RGB".to_owned()
    } else {
        declared
    };
    // 1-bit data (segmentations) comes back as one byte per pixel, 0 or 255.
    let (bits_allocated, bits_stored, high_bit) = if px.bits_allocated() == 1 {
        (8, 8, 7)
    } else {
        (px.bits_allocated(), px.bits_stored(), px.high_bit())
    };
    let samples = Samples::new(
        px.data(),
        bits_allocated,
        bits_stored,
        high_bit,
        px.pixel_representation() == PixelRepresentation::Signed,
        width as usize * height as usize * samples_per_pixel as usize,
    )?;
    let planar =
        samples_per_pixel > 1 && px.planar_configuration() == PlanarConfiguration::PixelFirst;
    let pixels = width as usize * height as usize;
    let at = |p: usize, c: usize| {
        if planar {
            samples.get(c * pixels + p)
        } else {
            samples.get(p * samples_per_pixel as usize + c)
        }
    };
    let data = match (photometric.as_str(), samples_per_pixel) {
        ("MONOCHROME1" | "MONOCHROME2", 1) => {
            let rescale = px.rescale().ok().and_then(|r| r.first().copied());
            let (slope, intercept) = rescale.map_or((1.0, 0.0), |r| (r.slope, r.intercept));
            // Modality values are computed twice (for min-max, then for
            // output) rather than kept: 8 bytes a pixel adds up on a mammogram.
            let modality = |p: usize| samples.get(p) as f64 * slope + intercept;
            let stored = px
                .window()
                .ok()
                .flatten()
                .and_then(|w| w.first().copied())
                .filter(|w| w.width.is_finite() && w.center.is_finite() && w.width >= 1.0)
                .map(|w| {
                    let function = match px
                        .voi_lut_function()
                        .ok()
                        .flatten()
                        .and_then(|f| f.first().copied())
                    {
                        Some(dicom_pixeldata::VoiLutFunction::LinearExact) => {
                            VoiFunction::LinearExact
                        }
                        Some(dicom_pixeldata::VoiLutFunction::Sigmoid) => VoiFunction::Sigmoid,
                        _ => VoiFunction::Linear,
                    };
                    Window {
                        center: w.center,
                        width: w.width,
                        function,
                    }
                });
            let window = window
                .or(stored)
                .unwrap_or_else(|| min_max((0..pixels).map(modality)));
            let invert = photometric == "MONOCHROME1";
            (0..pixels)
                .map(|p| {
                    let y = window.apply(modality(p));
                    to_u8(if invert { 1.0 - y } else { y })
                })
                .collect()
        }
        ("RGB", 3) => {
            let max = ((1u64 << bits_stored.min(32)) - 1) as f64;
            (0..pixels)
                .flat_map(|p| (0..3).map(move |c| (p, c)))
                .map(|(p, c)| scale_to_u8(at(p, c), max))
                .collect()
        }
        ("YBR_FULL" | "YBR_FULL_422", 3) => {
            let max = ((1u64 << bits_stored.min(32)) - 1) as f64;
            let mut out = Vec::with_capacity(pixels * 3);
            for p in 0..pixels {
                let [y, cb, cr] = [0, 1, 2].map(|c| at(p, c) as f64 * 255.0 / max);
                out.extend(ybr_full_to_rgb(y, cb, cr));
            }
            out
        }
        ("PALETTE COLOR", 1) => {
            let palette = Palette::read(obj)?;
            let mut out = Vec::with_capacity(pixels * 3);
            for p in 0..pixels {
                out.extend(palette.lookup(samples.get(p)));
            }
            out
        }
        (other, n) => {
            return Err(RenderError::Unsupported(format!(
                "PhotometricInterpretation {other} with {n} samples per pixel cannot be rendered"
            )))
        }
    };
    Ok(Image {
        width,
        height,
        channels: if data.len() == pixels { 1 } else { 3 },
        data,
    })
}

/// Uncompressed YBR_FULL_422 stores, for each pair of pixels, Y1 Y2 Cb Cr
/// (PS3.3 C.7.6.3.1.2); dicom-pixeldata sizes such frames as if full, so
/// they are read here.
fn native_ybr_422(obj: &DefaultDicomObject, frame: u32) -> Result<Image, RenderError> {
    let (width, height) = (
        int(obj, tags::COLUMNS).unwrap_or(0),
        int(obj, tags::ROWS).unwrap_or(0),
    );
    if width <= 0 || height <= 0 || width % 2 != 0 || int(obj, tags::BITS_ALLOCATED) != Some(8) {
        return Err(RenderError::Unsupported(
            "uncompressed YBR_FULL_422 is rendered for 8-bit images of even width only".into(),
        ));
    }
    let (width, height) = (width as u32, height as u32);
    let frame_bytes = width as usize * height as usize * 2;
    let bytes = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.to_bytes().ok())
        .ok_or(RenderError::NoPixelData)?;
    let start = frame as usize * frame_bytes;
    let data = bytes.get(start..start + frame_bytes).ok_or_else(|| {
        RenderError::Undecodable("the pixel data is shorter than its frames".into())
    })?;
    let mut out = Vec::with_capacity(frame_bytes / 2 * 3);
    for quad in data.chunks_exact(4) {
        let [y1, y2, cb, cr] = [quad[0], quad[1], quad[2], quad[3]].map(f64::from);
        out.extend(ybr_full_to_rgb(y1, cb, cr));
        out.extend(ybr_full_to_rgb(y2, cb, cr));
    }
    Ok(Image {
        width,
        height,
        channels: 3,
        data: out,
    })
}

/// Stored sample values, bit-masked and sign-extended as Bits Stored, High
/// Bit and Pixel Representation say.
struct Samples<'a> {
    data: &'a [u8],
    bytes: usize,
    shift: u32,
    mask: u64,
    sign_bit: Option<u64>,
}

impl<'a> Samples<'a> {
    fn new(
        data: &'a [u8],
        bits_allocated: u16,
        bits_stored: u16,
        high_bit: u16,
        signed: bool,
        count: usize,
    ) -> Result<Samples<'a>, RenderError> {
        let bytes = match bits_allocated {
            8 => 1,
            16 => 2,
            32 => 4,
            other => {
                return Err(RenderError::Unsupported(format!(
                    "BitsAllocated {other} cannot be rendered"
                )))
            }
        };
        let bits_stored = u32::from(bits_stored).clamp(1, bits_allocated.into());
        let high_bit = u32::from(high_bit).clamp(bits_stored - 1, u32::from(bits_allocated) - 1);
        if data.len() < count * bytes {
            return Err(RenderError::Undecodable(format!(
                "the frame has {} bytes of pixel data, {} expected",
                data.len(),
                count * bytes
            )));
        }
        Ok(Samples {
            data,
            bytes,
            shift: high_bit + 1 - bits_stored,
            mask: (1u64 << bits_stored) - 1,
            sign_bit: signed.then(|| 1u64 << (bits_stored - 1)),
        })
    }

    fn get(&self, i: usize) -> i64 {
        let at = i * self.bytes;
        let raw = match self.bytes {
            1 => u64::from(self.data[at]),
            2 => u64::from(u16::from_le_bytes([self.data[at], self.data[at + 1]])),
            _ => u64::from(u32::from_le_bytes([
                self.data[at],
                self.data[at + 1],
                self.data[at + 2],
                self.data[at + 3],
            ])),
        };
        let v = (raw >> self.shift) & self.mask;
        match self.sign_bit {
            Some(sign) if v & sign != 0 => v as i64 - ((self.mask + 1) as i64),
            _ => v as i64,
        }
    }
}

/// The window a frame without one is shown with: its lowest value black,
/// its highest white.
fn min_max(values: impl Iterator<Item = f64>) -> Window {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return Window {
            center: 0.0,
            width: 1.0,
            function: VoiFunction::LinearExact,
        };
    }
    Window {
        center: (lo + hi) / 2.0,
        width: (hi - lo).max(f64::MIN_POSITIVE),
        function: VoiFunction::LinearExact,
    }
}

fn to_u8(fraction: f64) -> u8 {
    (fraction.clamp(0.0, 1.0) * 255.0).round() as u8
}

fn scale_to_u8(v: i64, max: f64) -> u8 {
    if max <= 255.0 {
        v.clamp(0, 255) as u8
    } else {
        to_u8(v as f64 / max)
    }
}

/// PS3.3 C.7.6.3.1.2, full range (as JPEG's JFIF).
fn ybr_full_to_rgb(y: f64, cb: f64, cr: f64) -> [u8; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let c = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [
        c(y + 1.402 * cr),
        c(y - 0.344_136 * cb - 0.714_136 * cr),
        c(y + 1.772 * cb),
    ]
}

/// The Palette Color Lookup Table module (PS3.3 C.7.6.3.1.5–6): three
/// tables of 8- or 16-bit entries, indexed from the first mapped value.
struct Palette {
    first: i64,
    tables: [Vec<u8>; 3],
}

impl Palette {
    fn read(obj: &DefaultDicomObject) -> Result<Palette, RenderError> {
        let channels = [
            (
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
            (
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
                tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            ),
        ];
        let missing = || {
            RenderError::Unsupported(
                "PALETTE COLOR without (unsegmented) palette lookup tables cannot be rendered"
                    .into(),
            )
        };
        let mut first = 0;
        let mut tables: [Vec<u8>; 3] = Default::default();
        for (i, (descriptor, data)) in channels.into_iter().enumerate() {
            let descriptor: Vec<i64> = obj
                .element_opt(descriptor)
                .ok()
                .flatten()
                .and_then(|e| e.to_multi_int::<i64>().ok())
                .filter(|d| d.len() == 3)
                .ok_or_else(missing)?;
            // The entry count is US (0 means 65536); the first mapped value
            // may be SS, read here as US when the file says so.
            let entries = match descriptor[0] & 0xFFFF {
                0 => 65536,
                n => n as usize,
            };
            first = descriptor[1];
            let bits = descriptor[2];
            let bytes = obj
                .element_opt(data)
                .ok()
                .flatten()
                .and_then(|e| e.to_bytes().ok())
                .ok_or_else(missing)?;
            // Entries are 16-bit words unless the data is exactly one byte
            // an entry (some writers pack 8-bit tables).
            let table: Vec<u8> = if bytes.len() >= entries * 2 {
                bytes
                    .chunks_exact(2)
                    .take(entries)
                    .map(|w| {
                        let v = u16::from_le_bytes([w[0], w[1]]);
                        if bits == 8 {
                            v.min(255) as u8
                        } else {
                            (v >> 8) as u8
                        }
                    })
                    .collect()
            } else if bytes.len() >= entries {
                bytes[..entries].to_vec()
            } else {
                return Err(RenderError::Undecodable(
                    "a palette lookup table is shorter than its descriptor says".into(),
                ));
            };
            tables[i] = table;
        }
        Ok(Palette { first, tables })
    }

    fn lookup(&self, value: i64) -> [u8; 3] {
        let last = self.tables[0]
            .len()
            .min(self.tables[1].len())
            .min(self.tables[2].len());
        let index = (value - self.first).clamp(0, last.saturating_sub(1) as i64) as usize;
        [0, 1, 2].map(|c| self.tables[c].get(index).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_masked_and_sign_extended() {
        // 12 bits stored in 16, high bit 11: 0xF800 has garbage above bit 11.
        let data = [0x00, 0xF8, 0xFF, 0x0F, 0x00, 0x08];
        let unsigned = Samples::new(&data, 16, 12, 11, false, 3).unwrap();
        assert_eq!(
            [unsigned.get(0), unsigned.get(1), unsigned.get(2)],
            [0x800, 0xFFF, 0x800]
        );
        let signed = Samples::new(&data, 16, 12, 11, true, 3).unwrap();
        assert_eq!(
            [signed.get(0), signed.get(1), signed.get(2)],
            [-2048, -1, -2048]
        );
        assert!(Samples::new(&data, 16, 12, 11, false, 4).is_err());
    }

    #[test]
    fn ybr_grey_stays_grey() {
        assert_eq!(ybr_full_to_rgb(100.0, 128.0, 128.0), [100, 100, 100]);
        assert_eq!(ybr_full_to_rgb(76.0, 85.0, 255.0)[0], 254);
    }
}
