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

fn number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A picture size, `WxH` or a name, within the bounds.
pub fn size(v: &str) -> Result<(u32, u32), String> {
    let (w, h) = match SIZE_NAMES.iter().find(|(n, _, _)| *n == v) {
        Some((_, w, h)) => (*w, *h),
        None => v
            .split_once('x')
            .and_then(|(w, h)| Some((number(w)?, number(h)?)))
            .ok_or("not a size WxH")?,
    };
    dimensions(w, h)?;
    Ok((w, h))
}

/// Checks a width and a height against the bounds.
pub fn dimensions(w: u32, h: u32) -> Result<(), String> {
    if w == 0 || h == 0 {
        return Err("a size of 0".into());
    }
    if w > MAX_WIDTH || h > MAX_HEIGHT || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "{w}x{h} is larger than 4K ({MAX_WIDTH} wide, {MAX_HEIGHT} high, {MAX_PIXELS} pixels at most)"
        ));
    }
    Ok(())
}

/// A frame rate (`25`, `29.97`, `30000/1001`, a name), within the bounds.
pub fn rate(v: &str) -> Result<f64, String> {
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
                    number(n).ok_or("not a frame rate")?,
                    number(d).ok_or("not a frame rate")?,
                );
                if d == 0 {
                    return Err("not a frame rate".into());
                }
                f64::from(n) / f64::from(d)
            }
            None if decimal(v) => v.parse::<f64>().map_err(|_| "not a frame rate")?,
            None => return Err("not a frame rate".into()),
        },
    };
    if !(fps > 0.0 && fps <= MAX_FPS) {
        return Err(format!(
            "frame rate {v} is not above 0 and at most {MAX_FPS}"
        ));
    }
    Ok(fps)
}

/// An audio sample rate, within the bounds.
pub fn sample_rate(v: &str) -> Result<u64, String> {
    let n: u64 = v
        .parse()
        .ok()
        .filter(|_| v.len() <= 7 && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("not a sample rate")?;
    if n == 0 || n > MAX_SAMPLE_RATE {
        return Err(format!("sample rate {v} is not 1 to {MAX_SAMPLE_RATE}"));
    }
    Ok(n)
}

/// A width or height of a scaling filter: a number within the bounds, a
/// negative one (keep the aspect ratio, `-1`, `-2`), the input's own
/// (`iw`, `ih`, `iw/N`, `ih/N`: never larger), or `min(A,B)` of such where
/// one is a number within the bounds. Anything else (an expression that
/// could grow the picture, `iw*2`) is refused.
pub fn scaled(v: &str, max: u32) -> Result<(), String> {
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
            return Err(format!("{v} is not 1 to {max}"));
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
    Err(format!(
        "{v}: a width or height is a number up to {max}, -1, iw, ih or iw/N (no expression)"
    ))
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
}
