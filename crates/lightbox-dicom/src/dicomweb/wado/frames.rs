//! Where a frame lies in a stored file, and how its bytes become what
//! WADO-RS serves: native frames are `offset + i × frame size` into the Pixel
//! Data value (bit-packed when BitsAllocated is 1, so a frame may start
//! mid-byte), swapped to little endian when stored big endian; encapsulated
//! frames are their fragments, as ingest located them.

use std::ops::Range;

/// The most frame numbers one request may list.
pub const MAX_FRAME_LIST: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame numbers are a comma-separated list of numbers from 1, not `{0}`")]
    Malformed(String),
    #[error("frame {frame} does not exist: the instance has {frames} frame(s)")]
    OutOfRange { frame: u32, frames: u32 },
    #[error("at most {MAX_FRAME_LIST} frames can be asked for at once")]
    TooMany,
    #[error("the instance has no pixel data")]
    NoPixels,
    #[error("the stored pixel data is shorter than its frames ({0})")]
    Short(String),
}

/// Parses `1,3,2` (1-based, in the order given, repeats allowed) against an
/// instance of `frames` frames.
pub fn parse_frame_list(list: &str, frames: u32) -> Result<Vec<u32>, FrameError> {
    let mut numbers = Vec::new();
    for piece in list.split(',') {
        if numbers.len() == MAX_FRAME_LIST {
            return Err(FrameError::TooMany);
        }
        let piece = piece.trim();
        let frame: u32 = piece
            .parse()
            .ok()
            .filter(|n| *n >= 1 && piece.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| FrameError::Malformed(list.chars().take(64).collect()))?;
        if frame > frames {
            return Err(FrameError::OutOfRange { frame, frames });
        }
        numbers.push(frame);
    }
    Ok(numbers)
}

/// What the frame arithmetic of native pixel data needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativePixels {
    /// Where the Pixel Data value starts in the file, and its length.
    pub offset: u64,
    pub length: u64,
    pub rows: u64,
    pub columns: u64,
    pub samples_per_pixel: u64,
    pub bits_allocated: u64,
    pub frames: u32,
    /// Explicit VR Big Endian: samples are swapped to little endian.
    pub big_endian: bool,
}

/// One native frame's read: the byte range of the file, and where in it the
/// frame's bits start (non-zero only for BitsAllocated 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeRead {
    pub range: Range<u64>,
    pub skip_bits: u64,
    pub bits: u64,
}

impl NativePixels {
    fn frame_bits(&self) -> u64 {
        self.rows * self.columns * self.samples_per_pixel * self.bits_allocated
    }

    /// The read for frame `number` (1-based).
    pub fn frame(&self, number: u32) -> Result<NativeRead, FrameError> {
        if number == 0 || number > self.frames {
            return Err(FrameError::OutOfRange {
                frame: number,
                frames: self.frames,
            });
        }
        let bits = self.frame_bits();
        if bits == 0 {
            return Err(FrameError::NoPixels);
        }
        let start_bit = u64::from(number - 1) * bits;
        let end_byte = (start_bit + bits).div_ceil(8);
        if end_byte > self.length {
            return Err(FrameError::Short(format!(
                "frame {number} ends at byte {end_byte} of {}",
                self.length
            )));
        }
        Ok(NativeRead {
            range: self.offset + start_bit / 8..self.offset + end_byte,
            skip_bits: start_bit % 8,
            bits,
        })
    }

    /// The frame's bytes as served: bits realigned to start at bit 0 when
    /// BitsAllocated is 1, samples little endian.
    pub fn finish(&self, read: &NativeRead, mut bytes: Vec<u8>) -> Vec<u8> {
        if self.bits_allocated == 1 {
            return realign_bits(&bytes, read.skip_bits, read.bits);
        }
        if self.big_endian {
            swap_to_little_endian(&mut bytes, self.bits_allocated);
        }
        bytes
    }
}

/// Samples per pixel, told from the Pixel Data value's length (the index
/// keeps Rows, Columns, BitsAllocated and frames, not SamplesPerPixel): the
/// value is the frames' bits, padded by less than two bytes, so the quotient
/// is exact. None when it is not 1, 3 or 4.
pub fn samples_per_pixel(
    length: u64,
    rows: u64,
    columns: u64,
    bits_allocated: u64,
    frames: u32,
) -> Option<u64> {
    let plane_bits = rows * columns * bits_allocated * u64::from(frames);
    if plane_bits == 0 {
        return None;
    }
    let samples = length.checked_mul(8)? / plane_bits;
    matches!(samples, 1 | 3 | 4).then_some(samples)
}

/// Swaps each sample of `bits_allocated` bits from big to little endian.
pub fn swap_to_little_endian(bytes: &mut [u8], bits_allocated: u64) {
    let width = (bits_allocated / 8) as usize;
    if width > 1 {
        for sample in bytes.chunks_exact_mut(width) {
            sample.reverse();
        }
    }
}

/// `bits` bits of `bytes` from bit `skip` on (DICOM packs bits from the
/// least significant bit of each byte), starting at bit 0 of the result.
/// Bits past the frame in its last byte are zero.
pub fn realign_bits(bytes: &[u8], skip: u64, bits: u64) -> Vec<u8> {
    let len = bits.div_ceil(8) as usize;
    let skip = skip as usize;
    let mut out: Vec<u8> = if skip == 0 {
        bytes[..len].to_vec()
    } else {
        (0..len)
            .map(|i| {
                let low = bytes[i] >> skip;
                let high = bytes.get(i + 1).map_or(0, |b| b << (8 - skip));
                low | high
            })
            .collect()
    };
    let tail = (bits % 8) as u32;
    if tail != 0 {
        if let Some(last) = out.last_mut() {
            *last &= (1u8 << tail) - 1;
        }
    }
    out
}

/// Each frame's fragments in the stored file (`[offset, length]`), as ingest
/// wrote them into the index.
pub fn parse_fragments(json: &str) -> Option<Vec<Vec<(u64, u32)>>> {
    serde_json::from_str(json).ok()
}

/// The ranges to read for frame `number` (1-based) of encapsulated pixel data.
pub fn fragment_ranges(
    frames: &[Vec<(u64, u32)>],
    number: u32,
) -> Result<Vec<Range<u64>>, FrameError> {
    let fragments = frames
        .get((number as usize).wrapping_sub(1))
        .ok_or(FrameError::OutOfRange {
            frame: number,
            frames: frames.len() as u32,
        })?;
    Ok(fragments
        .iter()
        .map(|(offset, length)| *offset..*offset + u64::from(*length))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lists_are_checked() {
        assert_eq!(parse_frame_list("1,3,2,3", 3).unwrap(), vec![1, 3, 2, 3]);
        assert_eq!(parse_frame_list(" 2 ", 3).unwrap(), vec![2]);
        for bad in ["0", "", "1,,2", "-1", "+1", "a", "1.5", "99999999999"] {
            assert!(
                matches!(parse_frame_list(bad, 3), Err(FrameError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_frame_list("1,4", 3),
            Err(FrameError::OutOfRange {
                frame: 4,
                frames: 3
            })
        );
        let long = vec!["1"; MAX_FRAME_LIST + 1].join(",");
        assert_eq!(parse_frame_list(&long, 1), Err(FrameError::TooMany));
    }

    fn pixels(bits_allocated: u64, frames: u32, big_endian: bool) -> NativePixels {
        NativePixels {
            offset: 100,
            length: (3 * 3 * bits_allocated * u64::from(frames)).div_ceil(8),
            rows: 3,
            columns: 3,
            samples_per_pixel: 1,
            bits_allocated,
            frames,
            big_endian,
        }
    }

    #[test]
    fn native_frames_follow_one_another() {
        let px = pixels(16, 3, false);
        assert_eq!(
            px.frame(2).unwrap(),
            NativeRead {
                range: 118..136,
                skip_bits: 0,
                bits: 144
            }
        );
        assert!(matches!(px.frame(4), Err(FrameError::OutOfRange { .. })));
        let short = NativePixels { length: 30, ..px };
        assert!(matches!(short.frame(2), Err(FrameError::Short(_))));
    }

    #[test]
    fn big_endian_samples_are_swapped() {
        let px = pixels(16, 1, true);
        let read = px.frame(1).unwrap();
        assert_eq!(px.finish(&read, vec![0x01, 0x02, 0x03, 0x04]), vec![0x02, 0x01, 0x04, 0x03]);
        let px32 = pixels(32, 1, true);
        assert_eq!(px32.finish(&read, vec![1, 2, 3, 4]), vec![4, 3, 2, 1]);
        let px8 = pixels(8, 1, true);
        assert_eq!(px8.finish(&read, vec![1, 2]), vec![1, 2]);
    }

    #[test]
    fn one_bit_frames_start_mid_byte_and_are_realigned() {
        // 3×3 = 9 bits a frame: frame 2 is bits 9..18, i.e. bytes 1..3 from bit 1.
        let px = pixels(1, 2, false);
        let read = px.frame(2).unwrap();
        assert_eq!(
            read,
            NativeRead {
                range: 101..103,
                skip_bits: 1,
                bits: 9
            }
        );
        // Frame 1 = bits 0..9 all set; frame 2 = 0b1_0101_0101 (alternating).
        let packed: [u8; 3] = [0xFF, 0b1010_1011, 0b0000_0010];
        let frame2 = px.finish(&read, packed[1..3].to_vec());
        assert_eq!(frame2, vec![0b0101_0101, 0b0000_0001]);
        let frame1 = px.finish(&px.frame(1).unwrap(), packed[0..2].to_vec());
        assert_eq!(frame1, vec![0xFF, 0b0000_0001]);
    }

    #[test]
    fn samples_per_pixel_follow_from_the_length() {
        // 3×3 8-bit: 9 bytes padded to 10; RGB 27 padded to 28.
        assert_eq!(samples_per_pixel(10, 3, 3, 8, 1), Some(1));
        assert_eq!(samples_per_pixel(28, 3, 3, 8, 1), Some(3));
        assert_eq!(samples_per_pixel(128 * 128 * 2, 128, 128, 16, 1), Some(1));
        // 64×64 1-bit, 3 frames: 1536 bytes.
        assert_eq!(samples_per_pixel(1536, 64, 64, 1, 3), Some(1));
        assert_eq!(samples_per_pixel(5, 3, 3, 8, 1), None);
        assert_eq!(samples_per_pixel(10, 0, 3, 8, 1), None);
    }

    #[test]
    fn fragments_of_a_frame_are_its_ranges() {
        let frames = parse_fragments("[[[10,4]],[[22,2],[32,6]]]").unwrap();
        assert_eq!(fragment_ranges(&frames, 2).unwrap(), vec![22..24, 32..38]);
        assert!(fragment_ranges(&frames, 0).is_err());
        assert!(fragment_ranges(&frames, 3).is_err());
    }
}
