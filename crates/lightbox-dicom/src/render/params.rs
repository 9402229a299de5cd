//! The rendering query parameters of PS3.18 8.3.5.1 (`window`, `viewport`,
//! `quality`) read from their strings, validated and bounded here so the
//! HTTP edge only has to turn a [`ParamError`] into a 400.

use std::fmt;

/// The largest rendered image, in pixels on a side. A viewport may ask for
/// no more; an image larger than this without one is scaled down to fit.
/// 4096 covers a full-resolution CR or mammogram; more would only let one
/// request allocate (and encode) hundreds of megabytes.
pub const MAX_SIDE: u32 = 4096;

/// A bad parameter, with a message in the request's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub parameter: &'static str,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.parameter, self.message)
    }
}

impl std::error::Error for ParamError {}

fn bad(parameter: &'static str, message: impl Into<String>) -> ParamError {
    ParamError {
        parameter,
        message: message.into(),
    }
}

/// The VOI LUT function of PS3.3 C.11.2.1.2 a window is applied with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

/// `window=center,width[,function]`, in modality units (after rescale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
}

impl Window {
    pub fn parse(value: &str) -> Result<Window, ParamError> {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad(
                "window",
                format!("expected center,width[,linear|linear-exact|sigmoid], got `{value}`"),
            ));
        }
        let number = |s: &str, what: &str| -> Result<f64, ParamError> {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad("window", format!("the {what} `{s}` is not a number")))
        };
        let center = number(parts[0], "center")?;
        let width = number(parts[1], "width")?;
        let function = match parts.get(2).map(|f| f.to_ascii_lowercase()) {
            None => VoiFunction::Linear,
            Some(f) if f == "linear" => VoiFunction::Linear,
            Some(f) if f == "linear-exact" || f == "linear_exact" => VoiFunction::LinearExact,
            Some(f) if f == "sigmoid" => VoiFunction::Sigmoid,
            Some(f) => {
                return Err(bad(
                    "window",
                    format!("unknown function `{f}` (linear, linear-exact or sigmoid)"),
                ))
            }
        };
        // PS3.3 C.11.2.1.2: LINEAR needs a width of at least 1, the others more than 0.
        let least = if function == VoiFunction::Linear {
            1.0
        } else {
            f64::MIN_POSITIVE
        };
        if width < least {
            return Err(bad(
                "window",
                format!("the width must be at least 1 (more than 0 for linear-exact and sigmoid), got {width}"),
            ));
        }
        Ok(Window {
            center,
            width,
            function,
        })
    }

    /// The window applied to a modality value, as a fraction of full scale.
    pub fn apply(&self, x: f64) -> f64 {
        let (c, w) = (self.center, self.width);
        match self.function {
            VoiFunction::Linear => {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    0.0
                } else if x > c - 0.5 + (w - 1.0) / 2.0 || w <= 1.0 {
                    // A width of 1 is a threshold (and no division by zero).
                    1.0
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            VoiFunction::LinearExact => ((x - c) / w + 0.5).clamp(0.0, 1.0),
            VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        }
    }
}

/// A region of the source image, in its pixels; a negative width or height
/// flips the image along that axis (PS3.18 8.3.5.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: i64,
    pub height: i64,
}

/// `viewport=vw,vh[,sx,sy,sw,sh]`: the box the image (or the region) is
/// scaled to fit, keeping its aspect ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewport {
    pub width: u32,
    pub height: u32,
    pub region: Option<Region>,
}

impl Viewport {
    pub fn parse(value: &str) -> Result<Viewport, ParamError> {
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        if parts.len() != 2 && parts.len() != 6 {
            return Err(bad(
                "viewport",
                format!("expected vw,vh or vw,vh,sx,sy,sw,sh, got `{value}`"),
            ));
        }
        let side = |s: &str, name: &str| -> Result<u32, ParamError> {
            let v: u64 = s.parse().map_err(|_| {
                bad(
                    "viewport",
                    format!("{name} `{s}` is not a whole number of pixels"),
                )
            })?;
            if v == 0 || v > u64::from(MAX_SIDE) {
                return Err(bad(
                    "viewport",
                    format!("{name} must be 1 to {MAX_SIDE} pixels, got {v}"),
                ));
            }
            Ok(v as u32)
        };
        let width = side(parts[0], "vw")?;
        let height = side(parts[1], "vh")?;
        let region = if parts.len() == 6 {
            let origin = |s: &str, name: &str| -> Result<u32, ParamError> {
                s.parse::<u32>()
                    .map_err(|_| bad("viewport", format!("{name} `{s}` is not a pixel offset")))
            };
            let extent = |s: &str, name: &str| -> Result<i64, ParamError> {
                let v: i64 = s.parse().map_err(|_| {
                    bad(
                        "viewport",
                        format!("{name} `{s}` is not a whole number of pixels"),
                    )
                })?;
                if v == 0 || v.unsigned_abs() > 1 << 20 {
                    return Err(bad(
                        "viewport",
                        format!(
                            "{name} must be a non-zero number of pixels within the image, got {v}"
                        ),
                    ));
                }
                Ok(v)
            };
            Some(Region {
                x: origin(parts[2], "sx")?,
                y: origin(parts[3], "sy")?,
                width: extent(parts[4], "sw")?,
                height: extent(parts[5], "sh")?,
            })
        } else {
            None
        };
        Ok(Viewport {
            width,
            height,
            region,
        })
    }
}

/// `quality=1..100`, for JPEG (PNG is lossless and ignores it).
pub fn parse_quality(value: &str) -> Result<u8, ParamError> {
    value
        .trim()
        .parse::<u8>()
        .ok()
        .filter(|q| (1..=100).contains(q))
        .ok_or_else(|| bad("quality", format!("expected 1 to 100, got `{value}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_center_width_and_function() {
        let w = Window::parse("40,400").unwrap();
        assert_eq!(
            (w.center, w.width, w.function),
            (40.0, 400.0, VoiFunction::Linear)
        );
        let w = Window::parse("-600, 1500 ,SIGMOID").unwrap();
        assert_eq!(
            (w.center, w.width, w.function),
            (-600.0, 1500.0, VoiFunction::Sigmoid)
        );
        assert_eq!(
            Window::parse("1,0.5,linear-exact").unwrap().function,
            VoiFunction::LinearExact
        );
        for bad in [
            "",
            "40",
            "40,0",
            "40,-1",
            "a,400",
            "40,400,cubic",
            "40,400,linear,1",
            "NaN,4",
            "1,inf",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn the_linear_window_is_the_standards() {
        // PS3.3 C.11.2.1.2.1 with c = 2048, w = 4096 maps 0..4095 onto the full range.
        let w = Window::parse("2048,4096").unwrap();
        assert_eq!(w.apply(-1.0), 0.0);
        assert_eq!(w.apply(4096.0), 1.0);
        assert!((w.apply(2047.5) - 0.5).abs() < 1e-9);
        let exact = Window::parse("100,200,linear-exact").unwrap();
        assert_eq!(exact.apply(0.0), 0.0);
        assert_eq!(exact.apply(100.0), 0.5);
        let sigmoid = Window::parse("100,200,sigmoid").unwrap();
        assert!((sigmoid.apply(100.0) - 0.5).abs() < 1e-12);
        assert!(sigmoid.apply(1000.0) > 0.99);
    }

    #[test]
    fn viewports_are_bounded() {
        assert_eq!(
            Viewport::parse("128,64").unwrap(),
            Viewport {
                width: 128,
                height: 64,
                region: None
            }
        );
        let v = Viewport::parse("100,100,10,20,-30,40").unwrap();
        assert_eq!(
            v.region,
            Some(Region {
                x: 10,
                y: 20,
                width: -30,
                height: 40
            })
        );
        for bad in [
            "0,0",
            "100000,100000",
            "10",
            "10,10,1",
            "-5,10",
            "10,10,0,0,0,5",
            "x,y",
            "4097,1",
        ] {
            assert!(Viewport::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn quality_is_one_to_a_hundred() {
        assert_eq!(parse_quality("1"), Ok(1));
        assert_eq!(parse_quality("100"), Ok(100));
        for bad in ["0", "101", "-1", "high", ""] {
            assert!(parse_quality(bad).is_err(), "{bad} should be refused");
        }
    }
}
