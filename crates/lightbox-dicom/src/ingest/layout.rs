//! Where things lie in a stored file: the element headers of the data set
//! are walked (values skipped, never read) to its end, so that every
//! declared length is checked against the file before anything parses values
//! (a length larger than the file is refused here, not allocated later), and
//! so that WADO-RS can serve a frame with one ranged read.

use std::io::{Read, Seek, SeekFrom};

/// Native pixel data or the fragments of encapsulated pixel data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PixelData {
    /// One contiguous value: offset and length in the file.
    Native { offset: u64, length: u64 },
    /// Encapsulated: the Basic Offset Table's entries and each fragment's
    /// offset and length in the file.
    Encapsulated {
        offset_table: Vec<u32>,
        fragments: Vec<(u64, u32)>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("element ({group:04X},{element:04X}) at byte {at} declares {length} bytes, more than the file holds")]
    TooLong {
        group: u16,
        element: u16,
        at: u64,
        length: u64,
    },
    #[error("the data set ends inside an element header at byte {0}")]
    Truncated(u64),
    #[error("sequences nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("unexpected ({0:04X},{1:04X}) inside encapsulated pixel data")]
    BadFragment(u16, u16),
    #[error("{0}")]
    Io(String),
}

/// How the data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    ImplicitLittle,
    ExplicitLittle,
    ExplicitBig,
}

impl Encoding {
    /// The encoding of a transfer syntax's data set; None for deflated ones
    /// (inflate first).
    pub fn of(transfer_syntax: &str) -> Option<Encoding> {
        match transfer_syntax {
            "1.2.840.10008.1.2" => Some(Encoding::ImplicitLittle),
            "1.2.840.10008.1.2.2" => Some(Encoding::ExplicitBig),
            "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.8.1" => None,
            _ => Some(Encoding::ExplicitLittle),
        }
    }
}

const MAX_DEPTH: usize = 32;
const UNDEFINED: u32 = 0xFFFF_FFFF;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);

struct Walker<R> {
    reader: R,
    pos: u64,
    end: u64,
}

struct Header {
    tag: (u16, u16),
    length: u32,
    /// Explicit VR UN of undefined length: its content is Implicit VR LE.
    implicit_content: bool,
}

/// Walks the whole data set that starts at `start` and runs to `end` (the
/// file's length), checking every length on the way, and returns where the
/// top-level Pixel Data lies.
pub fn pixel_data<R: Read + Seek>(
    reader: R,
    start: u64,
    end: u64,
    encoding: Encoding,
) -> Result<Option<PixelData>, LayoutError> {
    let mut walker = Walker {
        reader,
        pos: start,
        end,
    };
    walker.seek(start)?;
    let mut pixels = None;
    while walker.pos < walker.end {
        let header = walker.header(encoding)?;
        if header.tag == PIXEL_DATA && pixels.is_none() {
            pixels = Some(walker.pixel_data(&header, encoding)?);
        } else {
            walker.skip_value(&header, encoding, 0)?;
        }
    }
    Ok(pixels)
}

impl<R: Read + Seek> Walker<R> {
    fn seek(&mut self, to: u64) -> Result<(), LayoutError> {
        self.reader
            .seek(SeekFrom::Start(to))
            .map_err(|e| LayoutError::Io(e.to_string()))?;
        self.pos = to;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], LayoutError> {
        if self.pos + N as u64 > self.end {
            return Err(LayoutError::Truncated(self.pos));
        }
        let mut buf = [0u8; N];
        self.reader
            .read_exact(&mut buf)
            .map_err(|_| LayoutError::Truncated(self.pos))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u16(&mut self, big: bool) -> Result<u16, LayoutError> {
        let b = self.bytes::<2>()?;
        Ok(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self, big: bool) -> Result<u32, LayoutError> {
        let b = self.bytes::<4>()?;
        Ok(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn header(&mut self, encoding: Encoding) -> Result<Header, LayoutError> {
        let big = encoding == Encoding::ExplicitBig;
        let tag = (self.u16(big)?, self.u16(big)?);
        // Items and delimiters have no VR, whatever the encoding.
        if encoding == Encoding::ImplicitLittle || tag.0 == 0xFFFE {
            return Ok(Header {
                tag,
                length: self.u32(big)?,
                implicit_content: false,
            });
        }
        let vr = self.bytes::<2>()?;
        let long = matches!(
            &vr,
            b"OB"
                | b"OD"
                | b"OF"
                | b"OL"
                | b"OV"
                | b"OW"
                | b"SQ"
                | b"SV"
                | b"UC"
                | b"UN"
                | b"UR"
                | b"UT"
                | b"UV"
        );
        let length = if long {
            self.bytes::<2>()?;
            self.u32(big)?
        } else {
            u32::from(self.u16(big)?)
        };
        Ok(Header {
            tag,
            length,
            implicit_content: &vr == b"UN" && length == UNDEFINED,
        })
    }

    fn skip(&mut self, header: &Header) -> Result<(), LayoutError> {
        let length = u64::from(header.length);
        if self.pos + length > self.end {
            return Err(LayoutError::TooLong {
                group: header.tag.0,
                element: header.tag.1,
                at: self.pos,
                length,
            });
        }
        self.seek(self.pos + length)
    }

    fn skip_value(
        &mut self,
        header: &Header,
        encoding: Encoding,
        depth: usize,
    ) -> Result<(), LayoutError> {
        if header.length != UNDEFINED {
            return self.skip(header);
        }
        if depth >= MAX_DEPTH {
            return Err(LayoutError::TooDeep);
        }
        let inner = if header.implicit_content {
            Encoding::ImplicitLittle
        } else {
            encoding
        };
        // A sequence (or UN) of undefined length: items until the delimiter.
        loop {
            let item = self.header(inner)?;
            match item.tag {
                SEQUENCE_END => return Ok(()),
                ITEM if item.length != UNDEFINED => self.skip(&item)?,
                ITEM => loop {
                    let element = self.header(inner)?;
                    if element.tag == ITEM_END {
                        break;
                    }
                    self.skip_value(&element, inner, depth + 1)?;
                },
                // Encapsulated data in a nested element: fragments are items too.
                _ => self.skip_value(&item, inner, depth + 1)?,
            }
        }
    }

    fn pixel_data(
        &mut self,
        header: &Header,
        encoding: Encoding,
    ) -> Result<PixelData, LayoutError> {
        if header.length != UNDEFINED {
            let offset = self.pos;
            self.skip(header)?;
            return Ok(PixelData::Native {
                offset,
                length: u64::from(header.length),
            });
        }
        let big = encoding == Encoding::ExplicitBig;
        let mut offset_table = Vec::new();
        let mut fragments = Vec::new();
        let mut first = true;
        loop {
            let item = self.header(Encoding::ImplicitLittle)?;
            match item.tag {
                SEQUENCE_END => break,
                ITEM if item.length != UNDEFINED => {
                    if first {
                        let entries = item.length / 4;
                        if u64::from(item.length) > self.end - self.pos {
                            self.skip(&item)?;
                        }
                        for _ in 0..entries {
                            offset_table.push(self.u32(big)?);
                        }
                        self.seek(self.pos + u64::from(item.length % 4))?;
                    } else {
                        fragments.push((self.pos, item.length));
                        self.skip(&item)?;
                    }
                    first = false;
                }
                (group, element) => return Err(LayoutError::BadFragment(group, element)),
            }
        }
        Ok(PixelData::Encapsulated {
            offset_table,
            fragments,
        })
    }
}

impl PixelData {
    /// Each frame's byte ranges, for encapsulated pixel data: one fragment a
    /// frame, all fragments for a single frame, or fragments grouped by the
    /// Basic Offset Table. None when the frames cannot be told apart without
    /// decoding (several fragments per frame and no offset table).
    pub fn frame_fragments(&self, frames: u64) -> Option<Vec<Vec<(u64, u32)>>> {
        let PixelData::Encapsulated {
            offset_table,
            fragments,
        } = self
        else {
            return None;
        };
        if fragments.is_empty() {
            return None;
        }
        if fragments.len() as u64 == frames {
            return Some(fragments.iter().map(|f| vec![*f]).collect());
        }
        if frames <= 1 {
            return Some(vec![fragments.clone()]);
        }
        if offset_table.len() as u64 != frames {
            return None;
        }
        // Offsets count from the first fragment's item tag; each item has an 8-byte header.
        let base = fragments[0].0 - 8;
        let mut grouped: Vec<Vec<(u64, u32)>> = vec![Vec::new(); offset_table.len()];
        for fragment in fragments {
            let relative = fragment.0 - 8 - base;
            let frame = offset_table
                .iter()
                .rposition(|&start| u64::from(start) <= relative)?;
            grouped[frame].push(*fragment);
        }
        grouped.iter().all(|g| !g.is_empty()).then_some(grouped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn item(tag: (u16, u16), length: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    fn walk(data: &[u8]) -> Result<Option<PixelData>, LayoutError> {
        pixel_data(
            Cursor::new(data),
            0,
            data.len() as u64,
            Encoding::ExplicitLittle,
        )
    }

    #[test]
    fn native_pixel_data_is_found_after_a_nested_sequence() {
        let mut data = explicit((0x0008, 0x0060), b"CS", b"CT");
        // A sequence of undefined length holding an item of undefined length.
        let mut seq = Vec::new();
        seq.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0]);
        seq.extend_from_slice(&UNDEFINED.to_le_bytes());
        seq.extend(item(
            ITEM,
            UNDEFINED,
            &explicit((0x0008, 0x1150), b"UI", b"1.2"),
        ));
        seq.extend(item(ITEM_END, 0, b""));
        seq.extend(item(SEQUENCE_END, 0, b""));
        data.extend(seq);
        let offset = data.len() as u64 + 12;
        data.extend(explicit(PIXEL_DATA, b"OW", &[1, 2, 3, 4]));
        assert_eq!(
            walk(&data).unwrap(),
            Some(PixelData::Native { offset, length: 4 })
        );
    }

    #[test]
    fn a_length_past_the_end_is_refused() {
        let mut data = explicit((0x0008, 0x0060), b"CS", b"CT");
        data.extend_from_slice(&[0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0]);
        data.extend_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        data.extend_from_slice(b"short");
        assert!(matches!(
            walk(&data),
            Err(LayoutError::TooLong { group: 0x0009, .. })
        ));
        assert!(matches!(walk(&data[..5]), Err(LayoutError::Truncated(_))));
    }

    #[test]
    fn fragments_are_located_and_grouped_into_frames() {
        let mut data = Vec::new();
        data.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
        data.extend_from_slice(&UNDEFINED.to_le_bytes());
        // Offset table: frame 1 at 0, frame 2 at 12 (after one 4-byte fragment + header).
        data.extend(item(ITEM, 8, &[0, 0, 0, 0, 12, 0, 0, 0]));
        let first = data.len() as u64 + 8;
        data.extend(item(ITEM, 4, b"aaaa"));
        let second = data.len() as u64 + 8;
        data.extend(item(ITEM, 2, b"bb"));
        let third = data.len() as u64 + 8;
        data.extend(item(ITEM, 2, b"cc"));
        data.extend(item(SEQUENCE_END, 0, b""));
        let pixels = walk(&data).unwrap().unwrap();
        assert_eq!(
            pixels,
            PixelData::Encapsulated {
                offset_table: vec![0, 12],
                fragments: vec![(first, 4), (second, 2), (third, 2)],
            }
        );
        assert_eq!(
            pixels.frame_fragments(2),
            Some(vec![vec![(first, 4)], vec![(second, 2), (third, 2)]])
        );
        assert_eq!(pixels.frame_fragments(3).unwrap().len(), 3);
        assert_eq!(pixels.frame_fragments(1).unwrap()[0].len(), 3);
    }

    #[test]
    fn implicit_little_endian_is_walked_too() {
        let mut data = item((0x0008, 0x0060), 2, b"CT");
        let offset = data.len() as u64 + 8;
        data.extend(item(PIXEL_DATA, 2, b"px"));
        let found = pixel_data(
            Cursor::new(&data),
            0,
            data.len() as u64,
            Encoding::ImplicitLittle,
        )
        .unwrap();
        assert_eq!(found, Some(PixelData::Native { offset, length: 2 }));
    }

    #[test]
    fn bottomless_nesting_is_refused() {
        let mut data = Vec::new();
        for _ in 0..40 {
            data.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0]);
            data.extend_from_slice(&UNDEFINED.to_le_bytes());
            data.extend(item(ITEM, UNDEFINED, b""));
        }
        assert_eq!(walk(&data), Err(LayoutError::TooDeep));
    }
}
