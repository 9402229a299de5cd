//! An 8-bit grey or RGB image encoded as PNG (png) or baseline JPEG
//! (jpeg-encoder, the encoder dicom-pixeldata itself uses).

use super::{Format, Image, RenderError};

pub(crate) fn encode(image: &Image, format: Format, quality: u8) -> Result<Vec<u8>, RenderError> {
    let failed = |e: &dyn std::fmt::Display| RenderError::Encode(e.to_string());
    match format {
        Format::Png => {
            let mut out = Vec::new();
            let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
            encoder.set_color(if image.channels == 1 {
                png::ColorType::Grayscale
            } else {
                png::ColorType::Rgb
            });
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| failed(&e))?;
            writer
                .write_image_data(&image.data)
                .map_err(|e| failed(&e))?;
            writer.finish().map_err(|e| failed(&e))?;
            Ok(out)
        }
        Format::Jpeg => {
            let mut out = Vec::new();
            let encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
            let color = if image.channels == 1 {
                jpeg_encoder::ColorType::Luma
            } else {
                jpeg_encoder::ColorType::Rgb
            };
            // Sides are at most MAX_SIDE (4096), well within JPEG's u16.
            encoder
                .encode(&image.data, image.width as u16, image.height as u16, color)
                .map_err(|e| failed(&e))?;
            Ok(out)
        }
    }
}
