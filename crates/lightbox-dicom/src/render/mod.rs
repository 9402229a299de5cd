//! Rendering a stored frame for people: decode, rescale, window (VOI),
//! photometric interpretation to RGB or grey, scale to a viewport, and
//! encode as JPEG or PNG. Pure: bytes of a Part 10 file in, an encoded
//! image out; the HTTP edge (`lightbox-api`'s `dicomweb/rendered.rs`) picks
//! the instance, bounds the work and maps [`RenderError`] to statuses.
//!
//! # Layout
//! - `params`: the `window`, `viewport` and `quality` parameters, validated.
//! - `pixels`: a decoded frame to 8-bit grey or RGB (modality and VOI LUTs,
//!   MONOCHROME1, YBR, palettes).
//! - `scale`: crop, flip and resample to the viewport.
//! - `encode`: PNG or JPEG bytes.

pub mod params;

mod encode;
mod pixels;
mod scale;

use dicom_object::file::ReadPreamble;
use dicom_object::OpenFileOptions;
pub use params::{ParamError, Viewport, Window};

/// The output media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }
}

/// What to render and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderRequest {
    /// 1-based, as in WADO-RS URLs.
    pub frame: u32,
    pub format: Format,
    /// Overrides the file's window; applies to grey images only.
    pub window: Option<Window>,
    pub viewport: Option<Viewport>,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// Without a viewport, the box the image is shrunk to fit (thumbnails).
    pub fit: Option<(u32, u32)>,
}

/// An 8-bit image, grey (1 channel) or RGB (3), rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<u8>,
}

/// An encoded image.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("the file cannot be read as DICOM: {0}")]
    Unreadable(String),
    #[error("the instance has no pixel data to render")]
    NoPixelData,
    #[error("frame {requested} does not exist: the instance has {frames} frame(s)")]
    FrameOutOfRange { requested: u32, frames: u32 },
    #[error(
        "pixel data in transfer syntax {0} cannot be rendered here (JPEG 2000, JPEG-LS and video are \
         not decoded); retrieve the frames instead"
    )]
    UnsupportedTransferSyntax(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the pixel data cannot be decoded: {0}")]
    Undecodable(String),
    #[error("viewport: {0}")]
    BadViewport(String),
    #[error("encoding the image failed: {0}")]
    Encode(String),
}

/// Renders one frame of the Part 10 file in `file`.
pub fn render(file: &[u8], request: &RenderRequest) -> Result<Rendered, RenderError> {
    let image = decode_frame(file, request.frame, request.window)?;
    let image = scale::to_viewport(image, request.viewport, request.fit)?;
    let bytes = encode::encode(&image, request.format, request.quality)?;
    Ok(Rendered {
        bytes,
        width: image.width,
        height: image.height,
        content_type: request.format.content_type(),
    })
}

/// Frame `frame` (1-based) of the Part 10 file as an 8-bit image at its own size.
pub fn decode_frame(file: &[u8], frame: u32, window: Option<Window>) -> Result<Image, RenderError> {
    let obj = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Auto)
        .from_reader(file)
        .map_err(|e| RenderError::Unreadable(e.to_string()))?;
    if frame == 0 {
        return Err(RenderError::FrameOutOfRange {
            requested: 0,
            frames: pixels::number_of_frames(&obj),
        });
    }
    pixels::frame_image(&obj, frame - 1, window)
}

#[cfg(test)]
mod tests;
