//! The largest picture and the fastest rate a stream may ask FFmpeg for,
//! wherever it asks: `-s`/`-video_size`, `-r`/`-framerate`, and the sizes
//! and rates of filter graphs (`testsrc=size=...:rate=...`, `scale=W:H`,
//! `fps=N`). A test pattern of 16000x16000 at 1000 frames a second is a
//! provider's way to burn the host's CPU and memory; cameras stop at 4K
//! and 120 frames a second.

/// Widest picture (DCI 4K is 4096 wide).
pub const MAX_WIDTH: u32 = 4096;
/// Tallest picture.
pub const MAX_HEIGHT: u32 = 4096;
/// Most pixels in a picture: 4096x2304 (16:9 at DCI width), above UHD's
/// 3840x2160.
pub const MAX_PIXELS: u64 = 4096 * 2304;
/// Fastest frame rate.
pub const MAX_FPS: f64 = 120.0;
/// Fastest audio sample rate.
pub const MAX_SAMPLE_RATE: u64 = 192_000;

/// FFmpeg's named sizes (`libavutil/parseutils.c`) within the bounds.
const SIZE_NAMES: &[(&str, u32, u32)] = &[
    ("sqcif", 128, 96),
    ("qcif", 176, 144),
    ("cif", 352, 288),
    ("4cif", 704, 576),
    ("qvga", 320, 240),
    ("vga", 640, 480),
    ("svga", 800, 600),
    ("xga", 1024, 768),
    ("hd480", 852, 480),
    ("hd720", 1280, 720),
    ("hd1080", 1920, 1080),
    ("uhd2160", 3840, 2160),
];

/// FFmpeg's named rates.
const RATE_NAMES: &[(&str, f64)] = &[
    ("ntsc", 30000.0 / 1001.0),
    ("pal", 25.0),
    ("film", 24.0),
    ("ntsc-film", 24000.0 / 1001.0),
    ("qntsc", 15000.0 / 1001.0),
    ("qpal", 12.5),
];

/// Why a size, a rate or a scaling dimension is refused: not of the form
/// asked for, or outside the bounds (the variant carries the value and the
/// limit it broke).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoundsError {
    /// Neither `WxH` nor one of FFmpeg's size names.
    #[error("not a size WxH")]
    NotASize,
    /// A width or a height of 0.
    #[error("a size of 0")]
    ZeroSize,
    /// A picture larger than the bounds.
    #[error("{width}x{height} is larger than 4K ({max_width} wide, {max_height} high, {max_pixels} pixels at most)")]
    TooLarge {
        /// The width asked for.
        width: u32,
        /// The height asked for.
        height: u32,
        /// [`MAX_WIDTH`].
        max_width: u32,
        /// [`MAX_HEIGHT`].
        max_height: u32,
        /// [`MAX_PIXELS`].
        max_pixels: u64,
    },
    /// Not a number, a fraction or one of FFmpeg's rate names.
    #[error("not a frame rate")]
    NotARate,
    /// A frame rate of 0 or above the bounds.
    #[error("frame rate {value} is not above 0 and at most {max}")]
    RateOutOfRange {
        /// The rate as written.
        value: String,
        /// [`MAX_FPS`].
        max: f64,
    },
    /// Not a decimal number.
    #[error("not a sample rate")]
    NotASampleRate,
    /// A sample rate of 0 or above the bounds.
    #[error("sample rate {value} is not 1 to {max}")]
    SampleRateOutOfRange {
        /// The rate as written.
        value: String,
        /// [`MAX_SAMPLE_RATE`].
        max: u64,
    },
    /// A scaling width or height of 0 or above the bounds.
    #[error("{value} is not 1 to {max}")]
    DimensionOutOfRange {
        /// The dimension as written.
        value: String,
        /// The widest or tallest allowed.
        max: u32,
    },
    /// A scaling width or height that is an expression (it could grow the
    /// picture).
    #[error(
        "{value}: a width or height is a number up to {max}, -1, iw, ih or iw/N (no expression)"
    )]
    Expression {
        /// The dimension as written.
        value: String,
        /// The widest or tallest allowed.
        max: u32,
    },
}

fn number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A picture size, `WxH` or a name, within the bounds.
pub fn size(v: &str) -> Result<(u32, u32), BoundsError> {
    let (w, h) = match SIZE_NAMES.iter().find(|(n, _, _)| *n == v) {
        Some((_, w, h)) => (*w, *h),
        None => v
            .split_once('x')
            .and_then(|(w, h)| Some((number(w)?, number(h)?)))
            .ok_or(BoundsError::NotASize)?,
    };
    dimensions(w, h)?;
    Ok((w, h))
}

/// Checks a width and a height against the bounds.
pub fn dimensions(w: u32, h: u32) -> Result<(), BoundsError> {
    if w == 0 || h == 0 {
        return Err(BoundsError::ZeroSize);
    }
    if w > MAX_WIDTH || h > MAX_HEIGHT || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(BoundsError::TooLarge {
            width: w,
            height: h,
            max_width: MAX_WIDTH,
            max_height: MAX_HEIGHT,
            max_pixels: MAX_PIXELS,
        });
    }
    Ok(())
}

/// A frame rate (`25`, `29.97`, `30000/1001`, a name), within the bounds.
pub fn rate(v: &str) -> Result<f64, BoundsError> {
    let decimal = |s: &str| {
        !s.is_empty()
            && s.len() <= 10
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.bytes().filter(|b| *b == b'.').count() <= 1
    };
    let fps = match RATE_NAMES.iter().find(|(n, _)| *n == v) {
        Some((_, r)) => *r,
        None => match v.split_once('/') {
            Some((n, d)) => {
                let (n, d) = (
                    number(n).ok_or(BoundsError::NotARate)?,
                    number(d).ok_or(BoundsError::NotARate)?,
                );
                if d == 0 {
                    return Err(BoundsError::NotARate);
                }
                f64::from(n) / f64::from(d)
            }
            None if decimal(v) => v.parse::<f64>().map_err(|_| BoundsError::NotARate)?,
            None => return Err(BoundsError::NotARate),
        },
    };
    if !(fps > 0.0 && fps <= MAX_FPS) {
        return Err(BoundsError::RateOutOfRange {
            value: v.to_string(),
            max: MAX_FPS,
        });
    }
    Ok(fps)
}

/// An audio sample rate, within the bounds.
pub fn sample_rate(v: &str) -> Result<u64, BoundsError> {
    let n: u64 = v
        .parse()
        .ok()
        .filter(|_| v.len() <= 7 && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(BoundsError::NotASampleRate)?;
    if n == 0 || n > MAX_SAMPLE_RATE {
        return Err(BoundsError::SampleRateOutOfRange {
            value: v.to_string(),
            max: MAX_SAMPLE_RATE,
        });
    }
    Ok(n)
}

/// A width or height of a scaling filter: a number within the bounds, a
/// negative one (keep the aspect ratio, `-1`, `-2`), the input's own
/// (`iw`, `ih`, `iw/N`, `ih/N`: never larger), or `min(A,B)` of such where
/// one is a number within the bounds. Anything else (an expression that
/// could grow the picture, `iw*2`) is refused.
pub fn scaled(v: &str, max: u32) -> Result<(), BoundsError> {
    let v = v.trim();
    if let Some(args) = v.strip_prefix("min(").and_then(|r| r.strip_suffix(')')) {
        if let Some((a, b)) = args.split_once(',') {
            let capped = |x: &str| number(x.trim()).is_some_and(|n| (1..=max).contains(&n));
            if (capped(a) && scaled(b, max).is_ok()) || (capped(b) && scaled(a, max).is_ok()) {
                return Ok(());
            }
        }
    }
    if let Some(n) = number(v) {
        if n == 0 || n > max {
            return Err(BoundsError::DimensionOutOfRange {
                value: v.to_string(),
                max,
            });
        }
        return Ok(());
    }
    if matches!(v, "-1" | "-2" | "-4" | "-8" | "iw" | "ih" | "in_w" | "in_h") {
        return Ok(());
    }
    let halved = ["iw/", "ih/", "in_w/", "in_h/"]
        .iter()
        .find_map(|p| v.strip_prefix(p))
        .and_then(number)
        .is_some_and(|d| d >= 1);
    if halved {
        return Ok(());
    }
    Err(BoundsError::Expression {
        value: v.to_string(),
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_stop_at_4k_and_rates_at_120() {
        assert_eq!(size("640x360"), Ok((640, 360)));
        assert_eq!(size("uhd2160"), Ok((3840, 2160)));
        assert!(size("4096x2160").is_ok());
        for bad in [
            "16000x16000",
            "4097x100",
            "4096x4096",
            "0x10",
            "10",
            "axb",
            "1e3x2",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
        assert!(rate("25").is_ok());
        assert!(rate("29.97").is_ok());
        assert!(rate("30000/1001").is_ok());
        assert!(rate("ntsc").is_ok());
        assert!(rate("120").is_ok());
        for bad in [
            "1000", "121", "0", "1/0", "-5", "nan", "inf", "1e9", "240/1",
        ] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        assert!(sample_rate("48000").is_ok());
        assert!(sample_rate("1000000").is_err());
        for ok in [
            "320",
            "-1",
            "-2",
            "iw",
            "ih/2",
            "iw/4",
            "min(1280,iw)",
            "min(ih, 720)",
        ] {
            assert!(scaled(ok, MAX_WIDTH).is_ok(), "{ok}");
        }
        for bad in [
            "16000",
            "iw*10",
            "iw*2",
            "0",
            "ih/0",
            "2*iw",
            "max(iw,16000)",
        ] {
            assert!(scaled(bad, MAX_WIDTH).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_carry_the_value_and_the_limit() {
        let e = size("5000x100").unwrap_err();
        assert_eq!(
            e,
            BoundsError::TooLarge {
                width: 5000,
                height: 100,
                max_width: MAX_WIDTH,
                max_height: MAX_HEIGHT,
                max_pixels: MAX_PIXELS,
            }
        );
        assert_eq!(
            e.to_string(),
            "5000x100 is larger than 4K (4096 wide, 4096 high, 9437184 pixels at most)"
        );
        let e = rate("121").unwrap_err();
        assert_eq!(
            e,
            BoundsError::RateOutOfRange {
                value: "121".into(),
                max: MAX_FPS
            }
        );
        assert_eq!(
            e.to_string(),
            "frame rate 121 is not above 0 and at most 120"
        );
        assert_eq!(
            sample_rate("200000").unwrap_err().to_string(),
            "sample rate 200000 is not 1 to 192000"
        );
        assert_eq!(
            scaled("5000", 4096),
            Err(BoundsError::DimensionOutOfRange {
                value: "5000".into(),
                max: 4096
            })
        );
        assert_eq!(
            scaled("iw*2", 2160).unwrap_err().to_string(),
            "iw*2: a width or height is a number up to 2160, -1, iw, ih or iw/N (no expression)"
        );
        assert_eq!(size("axb"), Err(BoundsError::NotASize));
        assert_eq!(rate("1/0"), Err(BoundsError::NotARate));
    }
}
