//! Decoding and transcoding with dicom-rs, for requests the stored bytes
//! cannot answer with ranged reads: another transfer syntax for a whole
//! instance (dicom-pixeldata's `Transcode`), frames of compressed data as
//! native samples, and frames or bulk data of deflated data sets (which
//! have no frame locations: the data set must be inflated first).
//!
//! Everything here holds the whole instance in memory and is blocking:
//! callers bound the file (`MAX_FILE_BYTES`, checked before it is read) and
//! run it on a blocking thread.

use super::frames::{realign_bits, FrameError, NativePixels};
use crate::ingest::layout::PixelData;
use dicom_core::value::Value;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{PixelDecoder, Transcode};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

/// The largest stored file converted in memory (256 MiB); a larger one is
/// served as stored only.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// The most decoded pixel bytes one conversion may produce (1 GiB).
pub const MAX_DECODED_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("the instance is too large to convert ({0} bytes)")]
    TooLarge(u64),
    #[error("the stored instance cannot be read: {0}")]
    Unreadable(String),
    #[error("the pixel data cannot be decoded: {0}")]
    Decode(String),
    #[error("transfer syntax {0} cannot be written")]
    Unsupported(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the instance has no element ({0:04X},{1:04X})")]
    NoSuchElement(u16, u16),
}

/// Reads a stored Part 10 file (preamble optional) from memory.
pub fn open(file: &[u8]) -> Result<DefaultDicomObject, TranscodeError> {
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(file)
        .map_err(|e| TranscodeError::Unreadable(e.to_string()))
}

/// The instance as a Part 10 file in `transfer_syntax` (one of
/// [`super::is_producible`]): pixel data decoded when it was compressed, the
/// data set re-encoded (and deflated for Deflated Explicit VR Little Endian).
pub fn transcode_instance(file: &[u8], transfer_syntax: &str) -> Result<Vec<u8>, TranscodeError> {
    let ts = TransferSyntaxRegistry
        .get(transfer_syntax)
        .filter(|_| super::is_producible(transfer_syntax))
        .ok_or_else(|| TranscodeError::Unsupported(transfer_syntax.to_owned()))?;
    let mut obj = open(file)?;
    check_decoded_size(&obj)?;
    obj.transcode(ts)
        .map_err(|e| TranscodeError::Decode(e.to_string()))?;
    let mut out = Vec::with_capacity(file.len());
    obj.write_all(&mut out)
        .map_err(|e| TranscodeError::Unsupported(format!("{transfer_syntax}: {e}")))?;
    Ok(out)
}

/// Frames `numbers` (1-based) of the instance: native samples (little
/// endian) when `decode` or when the pixel data is native, else the frames'
/// fragments as stored. Frames of encapsulated data that cannot be told
/// apart without decoding are decoded.
pub fn frames_from_file(
    file: &[u8],
    numbers: &[u32],
    decode: bool,
) -> Result<Frames, TranscodeError> {
    let obj = open(file)?;
    let stored_ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_owned();
    let frame_count = number_of_frames(&obj);
    let pixel_data = obj
        .get(tags::PIXEL_DATA)
        .ok_or(TranscodeError::Frame(FrameError::NoPixels))?;
    for &n in numbers {
        if n == 0 || n > frame_count {
            return Err(FrameError::OutOfRange {
                frame: n,
                frames: frame_count,
            }
            .into());
        }
    }
    match pixel_data.value() {
        Value::Primitive(value) => {
            // Values read from a big-endian data set are numbers in memory:
            // their bytes are this machine's order, which is little endian
            // on every platform Lightbox is built for.
            let bytes = value.to_bytes();
            let px = NativePixels {
                offset: 0,
                length: bytes.len() as u64,
                rows: int(&obj, tags::ROWS),
                columns: int(&obj, tags::COLUMNS),
                samples_per_pixel: int(&obj, tags::SAMPLES_PER_PIXEL).max(1),
                bits_allocated: int(&obj, tags::BITS_ALLOCATED),
                frames: frame_count,
                big_endian: false,
            };
            let frames = numbers
                .iter()
                .map(|&n| {
                    let read = px.frame(n)?;
                    let slice = &bytes[read.range.start as usize..read.range.end as usize];
                    Ok(if px.bits_allocated == 1 {
                        realign_bits(slice, read.skip_bits, read.bits)
                    } else {
                        slice.to_vec()
                    })
                })
                .collect::<Result<Vec<_>, FrameError>>()?;
            Ok(Frames {
                frames,
                transfer_syntax: super::EXPLICIT_LE.to_owned(),
            })
        }
        Value::PixelSequence(sequence) if !decode => {
            let fragments = sequence.fragments();
            // Lay the fragments out as they would lie in a file, to group them
            // into frames the way ingest does.
            let mut at = 8u64;
            let located: Vec<(u64, u32)> = fragments
                .iter()
                .map(|f| {
                    let here = (at, f.len() as u32);
                    at += f.len() as u64 + 8;
                    here
                })
                .collect();
            let layout = PixelData::Encapsulated {
                offset_table: sequence.offset_table().to_vec(),
                fragments: located.clone(),
            };
            match layout.frame_fragments(u64::from(frame_count)) {
                Some(grouped) => {
                    let frames = numbers
                        .iter()
                        .map(|&n| {
                            grouped[(n - 1) as usize]
                                .iter()
                                .flat_map(|piece| {
                                    let i = located.iter().position(|l| l == piece).unwrap_or(0);
                                    fragments[i].iter().copied()
                                })
                                .collect()
                        })
                        .collect();
                    Ok(Frames {
                        frames,
                        transfer_syntax: stored_ts,
                    })
                }
                None => decode_frames(&obj, numbers),
            }
        }
        _ => decode_frames(&obj, numbers),
    }
}

/// Frames and the transfer syntax they are in.
#[derive(Debug)]
pub struct Frames {
    pub frames: Vec<Vec<u8>>,
    pub transfer_syntax: String,
}

fn decode_frames(obj: &DefaultDicomObject, numbers: &[u32]) -> Result<Frames, TranscodeError> {
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
    if !super::is_decodable(ts) {
        return Err(TranscodeError::Decode(format!(
            "transfer syntax {ts} is not decoded here"
        )));
    }
    check_decoded_size(obj)?;
    let decoded = obj
        .decode_pixel_data()
        .map_err(|e| TranscodeError::Decode(e.to_string()))?;
    let frames = numbers
        .iter()
        .map(|&n| {
            decoded
                .frame_data(n - 1)
                .map(<[u8]>::to_vec)
                .map_err(|e| TranscodeError::Decode(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Frames {
        frames,
        transfer_syntax: super::EXPLICIT_LE.to_owned(),
    })
}

/// A top-level element's value as little-endian bytes (bulk data other
/// than Pixel Data).
pub fn element_bytes(file: &[u8], group: u16, element: u16) -> Result<Vec<u8>, TranscodeError> {
    let tag = Tag(group, element);
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .read_until(tags::PIXEL_DATA)
        .from_reader(file)
        .map_err(|e| TranscodeError::Unreadable(e.to_string()))?;
    let element = obj
        .get(tag)
        .ok_or(TranscodeError::NoSuchElement(tag.group(), tag.element()))?;
    match element.value() {
        Value::Primitive(value) => Ok(value.to_bytes().into_owned()),
        _ => Err(TranscodeError::NoSuchElement(tag.group(), tag.element())),
    }
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> u64 {
    obj.get(tag)
        .and_then(|e| e.to_int::<u64>().ok())
        .unwrap_or(0)
}

fn number_of_frames(obj: &DefaultDicomObject) -> u32 {
    obj.get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_str().ok())
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

/// Refuses to decode more than [`MAX_DECODED_BYTES`] of samples.
fn check_decoded_size(obj: &DefaultDicomObject) -> Result<(), TranscodeError> {
    let bytes = int(obj, tags::ROWS)
        * int(obj, tags::COLUMNS)
        * int(obj, tags::SAMPLES_PER_PIXEL).max(1)
        * int(obj, tags::BITS_ALLOCATED).div_ceil(8).max(1)
        * u64::from(number_of_frames(obj));
    if bytes > MAX_DECODED_BYTES {
        return Err(TranscodeError::TooLarge(bytes));
    }
    Ok(())
}
