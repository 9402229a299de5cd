//! Cropping, flipping and scaling an 8-bit image to a viewport.
//!
//! The resampler is a separable triangle (bilinear) filter whose support
//! widens with the reduction, so a 512² CT shrunk to a 128² thumbnail
//! averages its pixels instead of skipping three in four (aliasing). The
//! `image` crate would do this but needs a newer Rust than the workspace's.

use super::params::{Viewport, MAX_SIDE};
use super::{Image, RenderError};

/// The region `viewport` names (the whole image without one), flipped as
/// asked, scaled to fit within its box (or within `fit` without a viewport,
/// only ever down), never larger than [`MAX_SIDE`] on a side.
pub(crate) fn to_viewport(
    image: Image,
    viewport: Option<Viewport>,
    fit: Option<(u32, u32)>,
) -> Result<Image, RenderError> {
    let mut image = image;
    let mut target_box = fit.unwrap_or((MAX_SIDE, MAX_SIDE));
    let mut may_enlarge = false;
    if let Some(viewport) = viewport {
        target_box = (viewport.width, viewport.height);
        may_enlarge = true;
        if let Some(region) = viewport.region {
            let (w, h) = (region.width.unsigned_abs(), region.height.unsigned_abs());
            if u64::from(region.x) + w > u64::from(image.width)
                || u64::from(region.y) + h > u64::from(image.height)
            {
                return Err(RenderError::BadViewport(format!(
                    "the region {},{} {}×{} is not within the {}×{} image",
                    region.x, region.y, w, h, image.width, image.height
                )));
            }
            image = crop(&image, region.x, region.y, w as u32, h as u32);
            if region.width < 0 {
                image = flip(&image, true);
            }
            if region.height < 0 {
                image = flip(&image, false);
            }
        }
    }
    let (w, h) = fitted(image.width, image.height, target_box, may_enlarge);
    Ok(if (w, h) == (image.width, image.height) {
        image
    } else {
        resize(&image, w, h)
    })
}

/// The largest size with the image's aspect ratio within `target`, at least
/// one pixel a side; never more than the image unless `may_enlarge`.
fn fitted(width: u32, height: u32, target: (u32, u32), may_enlarge: bool) -> (u32, u32) {
    let scale =
        (f64::from(target.0) / f64::from(width)).min(f64::from(target.1) / f64::from(height));
    let scale = if may_enlarge { scale } else { scale.min(1.0) };
    let side =
        |v: u32, limit: u32| ((f64::from(v) * scale).round() as u32).clamp(1, limit.min(MAX_SIDE));
    (side(width, target.0), side(height, target.1))
}

fn crop(image: &Image, x: u32, y: u32, w: u32, h: u32) -> Image {
    let c = image.channels as usize;
    let mut data = Vec::with_capacity(w as usize * h as usize * c);
    for row in y..y + h {
        let start = (row as usize * image.width as usize + x as usize) * c;
        data.extend_from_slice(&image.data[start..start + w as usize * c]);
    }
    Image {
        width: w,
        height: h,
        channels: image.channels,
        data,
    }
}

fn flip(image: &Image, horizontal: bool) -> Image {
    let c = image.channels as usize;
    let (w, h) = (image.width as usize, image.height as usize);
    let mut data = Vec::with_capacity(image.data.len());
    for row in 0..h {
        let src_row = if horizontal { row } else { h - 1 - row };
        for col in 0..w {
            let src_col = if horizontal { w - 1 - col } else { col };
            let at = (src_row * w + src_col) * c;
            data.extend_from_slice(&image.data[at..at + c]);
        }
    }
    Image {
        width: image.width,
        height: image.height,
        channels: image.channels,
        data,
    }
}

/// For each output position along one axis, the source indices it reads
/// and their weights (summing to 1).
fn weights(src: u32, dst: u32) -> Vec<(usize, Vec<f32>)> {
    let scale = f64::from(src) / f64::from(dst);
    let support = scale.max(1.0);
    (0..dst)
        .map(|i| {
            let center = (f64::from(i) + 0.5) * scale;
            let lo = ((center - support).floor().max(0.0)) as usize;
            let hi = ((center + support).ceil() as usize).min(src as usize);
            let mut w: Vec<f32> = (lo..hi)
                .map(|j| {
                    let d = ((j as f64 + 0.5 - center) / support).abs();
                    (1.0 - d).max(0.0) as f32
                })
                .collect();
            let sum: f32 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            } else {
                // A source narrower than the filter: take the nearest pixel.
                let nearest = (center as usize).min(src as usize - 1);
                return (nearest, vec![1.0]);
            }
            (lo, w)
        })
        .collect()
}

fn resize(image: &Image, width: u32, height: u32) -> Image {
    let c = image.channels as usize;
    let (sw, sh) = (image.width as usize, image.height as usize);
    // Horizontal pass into floats, then vertical pass into bytes.
    let xs = weights(image.width, width);
    let mut horizontal = vec![0f32; width as usize * sh * c];
    for row in 0..sh {
        for (x, (start, w)) in xs.iter().enumerate() {
            for ch in 0..c {
                let mut acc = 0f32;
                for (k, wk) in w.iter().enumerate() {
                    acc += wk * f32::from(image.data[(row * sw + start + k) * c + ch]);
                }
                horizontal[(row * width as usize + x) * c + ch] = acc;
            }
        }
    }
    let ys = weights(image.height, height);
    let mut data = vec![0u8; width as usize * height as usize * c];
    for (y, (start, w)) in ys.iter().enumerate() {
        for x in 0..width as usize {
            for ch in 0..c {
                let mut acc = 0f32;
                for (k, wk) in w.iter().enumerate() {
                    acc += wk * horizontal[((start + k) * width as usize + x) * c + ch];
                }
                data[(y * width as usize + x) * c + ch] = acc.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Image {
        width,
        height,
        channels: image.channels,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::params::Viewport;

    fn grey(width: u32, height: u32, f: impl Fn(u32, u32) -> u8) -> Image {
        let data = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Image {
            width,
            height,
            channels: 1,
            data,
        }
    }

    #[test]
    fn an_image_fits_its_viewport_keeping_its_aspect() {
        let image = grey(200, 100, |_, _| 7);
        let out = to_viewport(image, Some(Viewport::parse("64,64").unwrap()), None).unwrap();
        assert_eq!((out.width, out.height), (64, 32));
        assert!(out.data.iter().all(|&v| v == 7), "a flat image stays flat");
    }

    #[test]
    fn a_thumbnail_box_only_shrinks() {
        let small = to_viewport(grey(16, 16, |_, _| 1), None, Some((128, 128))).unwrap();
        assert_eq!((small.width, small.height), (16, 16));
        let big = to_viewport(grey(512, 256, |_, _| 1), None, Some((128, 128))).unwrap();
        assert_eq!((big.width, big.height), (128, 64));
    }

    #[test]
    fn shrinking_averages_instead_of_skipping() {
        // One-pixel stripes: sampling would give all black or all white.
        let stripes = grey(64, 64, |x, _| if x % 2 == 0 { 0 } else { 255 });
        let out = to_viewport(stripes, Some(Viewport::parse("16,16").unwrap()), None).unwrap();
        assert!(
            out.data.iter().all(|&v| (100..=155).contains(&v)),
            "{:?}",
            &out.data[..16]
        );
    }

    #[test]
    fn a_region_is_cropped_and_flipped() {
        let image = grey(10, 10, |x, y| (y * 10 + x) as u8);
        let out = to_viewport(image, Some(Viewport::parse("3,2,2,3,-3,2").unwrap()), None).unwrap();
        assert_eq!((out.width, out.height), (3, 2));
        assert_eq!(out.data, vec![34, 33, 32, 44, 43, 42]);
        let image = grey(10, 10, |x, y| (y * 10 + x) as u8);
        let outside = to_viewport(image, Some(Viewport::parse("3,3,8,8,5,5").unwrap()), None);
        assert!(matches!(outside, Err(RenderError::BadViewport(_))));
    }
}
