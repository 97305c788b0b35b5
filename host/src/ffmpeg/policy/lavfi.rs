//! Filter graphs: parses an FFmpeg (libavfilter) graph description the way
//! FFmpeg does and checks it against the allow-list of filters a stream may
//! use, as a `-f lavfi` source or as a `-vf`/`-af`/`-filter` value.
//!
//! The grammar (libavfilter `graphparser.c`, FFmpeg 5.1 to 7.x):
//!
//! ```text
//! graph  := chain (';' chain)*
//! chain  := filter (',' filter)*
//! filter := ('[' label ']')* name ['@' id] ['=' args] ('[' label ']')*
//! args   := [key '='] value (':' [key '='] value)*
//! ```
//!
//! Names and args are read as FFmpeg's `av_get_token` reads them (`\`
//! escapes the next character, `'...'` quotes, surrounding blanks dropped),
//! so what is checked here is what FFmpeg will instantiate: a filter name
//! hidden behind quotes or escapes (`'mov'ie`) is seen unquoted, and a
//! separator inside quotes does not start a new filter. Anything this
//! parser does not understand is refused, never guessed at.
//!
//! Only filters that neither read nor write files, load code, or listen for
//! commands are allowed, and option keys that name files are refused
//! whatever the filter, in case a future FFmpeg adds one to an allowed
//! filter; so are `/key=PATH` options (FFmpeg 6.1+ reads the value from
//! PATH).

use super::show;
use crate::ffmpeg::bounds::BoundsError;

/// Longest graph accepted, in bytes: the demo graphs are ~30 bytes and a
/// real `-vf` chain a few hundred.
pub const MAX_GRAPH_LEN: usize = 4_096;

/// Most filters in one graph: a deinterlace-scale-fps-format chain is 4.
const MAX_FILTERS: usize = 64;

/// FFmpeg's `WHITESPACES`.
const BLANKS: &[u8] = b" \n\t\r";

/// Test sources a `-f lavfi` input may use: synthetic pictures and sounds
/// with no file, device or network access. `life` and `cellauto` are left
/// out (they read a pattern file), as are `movie`/`amovie` (any file or
/// URL), `flite` (a text file) and `allrgb`/`allyuv` (4096x4096 pictures,
/// above the bounds of [`crate::ffmpeg::bounds`]).
#[rustfmt::skip]
pub const SOURCES: &[&str] = &[
    "testsrc", "testsrc2", "smptebars", "smptehdbars", "rgbtestsrc", "yuvtestsrc", "mandelbrot",
    "color", "nullsrc", "sierpinski", "gradients", "zoneplate", "sine", "anullsrc", "anoisesrc",
];

/// Processing filters allowed in any graph: geometry, timing, format and
/// level changes computed from the frames alone. Never `drawtext` (font
/// and text files), `subtitles`/`ass`, `sendcmd`/`zmq` (commands from a
/// file or socket), `lut3d`/`lut1d`/`haldclut` (LUT files), `frei0r`,
/// `ladspa`, `lv2` (load shared objects), `metadata` (writes a file) or
/// anything with a model, log or stats file. Nor `hstack`/`vstack`: with
/// `split` they multiply a picture's size past any bound.
#[rustfmt::skip]
pub const PROCESSING: &[&str] = &[
    // Video.
    "scale", "fps", "format", "setpts", "crop", "pad", "transpose", "hflip", "vflip", "rotate",
    "yadif", "bwdif", "setsar", "setdar", "setfield", "settb", "framerate", "trim", "select",
    "null", "split", "overlay", "unsharp", "boxblur", "gblur", "eq", "hue",
    "negate", "drawbox", "drawgrid", "fade", "tpad", "colorchannelmixer", "colorlevels", "deband",
    "noise", "showinfo",
    // Audio.
    "aresample", "aformat", "volume", "asetpts", "asettb", "atrim", "apad", "afade", "anull",
    "asplit", "amix", "amerge", "pan", "atempo", "highpass", "lowpass", "dynaudnorm", "loudnorm",
    "acompressor", "alimiter",
];

/// Where a graph is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphUse {
    /// The whole input (`-f lavfi -i GRAPH`): test sources and processing.
    Source,
    /// A `-vf`/`-af`/`-filter` value: processing only.
    Filter,
}

/// One filter of a parsed graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The filter name (`scale`).
    pub name: String,
    /// The instance id after `@`, if any.
    pub id: Option<String>,
    /// Input pad labels.
    pub inputs: Vec<String>,
    /// Output pad labels.
    pub outputs: Vec<String>,
    /// Its options in order: a key (`None` for a positional value) and the
    /// value.
    pub args: Vec<(Option<String>, String)>,
}

/// Why a filter graph is refused: it cannot be parsed, it is too large,
/// or it names a filter, an option or a value the allow-list refuses. The
/// variants carry what was refused (quoted and cut only when shown).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// Longer than [`MAX_GRAPH_LEN`].
    #[error("filter graph is {len} bytes, limit {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_GRAPH_LEN`].
        max: usize,
    },
    /// A character other than printable ASCII.
    #[error(
        "filter graph contains the character {character:?} (only printable ASCII is accepted)"
    )]
    Character {
        /// The first such character.
        character: char,
    },
    /// A leading `sws_flags=` (scaler settings for the whole graph).
    #[error("filter graph: a sws_flags= prefix is not accepted")]
    SwsFlags,
    /// More than the most filters a graph may have.
    #[error("filter graph has more than {max} filters")]
    TooManyFilters {
        /// The most filters a graph may have.
        max: usize,
    },
    /// Something after a filter that is neither `,` nor `;`.
    #[error("filter graph cannot be parsed near {}", show(.near))]
    Syntax {
        /// The rest of the graph from there.
        near: String,
    },
    /// No filter at all.
    #[error("empty filter graph")]
    Empty,
    /// An empty `[]` pad label.
    #[error("filter graph has an empty [] label")]
    EmptyLabel,
    /// A `[` pad label never closed.
    #[error("filter graph has an unclosed [ label")]
    UnclosedLabel,
    /// A pad label with characters other than `[A-Za-z0-9_-.:]`.
    #[error("filter graph label {} is not accepted", show(.label))]
    Label {
        /// The label.
        label: String,
    },
    /// A filter with no name.
    #[error("filter graph has an empty filter name")]
    EmptyName,
    /// A filter instance id (`name@id`) with characters other than
    /// `[A-Za-z0-9_-.]`.
    #[error("filter instance id {} is not accepted", show(.id))]
    InstanceId {
        /// The id.
        id: String,
    },
    /// A filter that is not in the allow-list (or whose name is not a
    /// filter name).
    #[error("filter {} is not allowed", show(.name))]
    NotAllowed {
        /// The filter's name.
        name: String,
    },
    /// A test source used as a `-vf`/`-af`/`-filter` value.
    #[error("filter {name:?} is a source, not allowed here")]
    SourceHere {
        /// The filter's name.
        name: String,
    },
    /// A `/key=PATH` option (FFmpeg 6.1+ reads the value from PATH).
    #[error("filter {filter:?}: option {} loads its value from a file, which is refused", show(.key))]
    ValueFromFile {
        /// The filter's name.
        filter: String,
        /// The option's key, `/` included.
        key: String,
    },
    /// An option whose key names a file, a path or commands.
    #[error("filter {filter:?}: option {} names a file, which is refused", show(.key))]
    NamesAFile {
        /// The filter's name.
        filter: String,
        /// The option's key.
        key: String,
    },
    /// A size or rate option outside [`crate::ffmpeg::bounds`].
    #[error("filter {filter:?}: option {option}: {error}")]
    Bounds {
        /// The filter's name.
        filter: String,
        /// The option's (first) name.
        option: &'static str,
        /// Why its value is refused.
        error: BoundsError,
    },
    /// More options in one filter than any filter has.
    #[error("filter has too many options")]
    TooManyOptions,
}

/// Parses `graph` into its filters (in order), or says why it cannot be
/// parsed. Does not judge which filters are allowed: see [`check`].
pub fn parse(graph: &str) -> Result<Vec<Filter>, GraphError> {
    if graph.len() > MAX_GRAPH_LEN {
        return Err(GraphError::TooLong {
            len: graph.len(),
            max: MAX_GRAPH_LEN,
        });
    }
    if let Some(c) = graph.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(GraphError::Character { character: c });
    }
    let mut p = Cursor {
        s: graph.as_bytes(),
        i: 0,
    };
    p.skip_blanks();
    if p.rest().starts_with(b"sws_flags=") {
        return Err(GraphError::SwsFlags);
    }
    let mut filters = Vec::new();
    loop {
        p.skip_blanks();
        let inputs = p.labels()?;
        let (name, id, raw_args) = p.filter()?;
        let outputs = p.labels()?;
        let args = match raw_args {
            Some(a) => split_args(&a)?,
            None => Vec::new(),
        };
        filters.push(Filter {
            name,
            id,
            inputs,
            outputs,
            args,
        });
        if filters.len() > MAX_FILTERS {
            return Err(GraphError::TooManyFilters { max: MAX_FILTERS });
        }
        p.skip_blanks();
        match p.next() {
            Some(b',' | b';') => continue,
            None => break,
            Some(_) => {
                let at = p.i.saturating_sub(1);
                return Err(GraphError::Syntax {
                    near: graph.get(at..).unwrap_or_default().to_string(),
                });
            }
        }
    }
    Ok(filters)
}

/// Checks `graph` for `usage`: it must parse, name only allowed filters and
/// no option that names a file.
pub fn check(graph: &str, usage: GraphUse) -> Result<(), GraphError> {
    let filters = parse(graph)?;
    if filters.is_empty() {
        return Err(GraphError::Empty);
    }
    for f in &filters {
        let allowed = PROCESSING.contains(&f.name.as_str())
            || (usage == GraphUse::Source && SOURCES.contains(&f.name.as_str()));
        if !allowed {
            let name = f.name.clone();
            return Err(
                if usage == GraphUse::Filter && SOURCES.contains(&f.name.as_str()) {
                    GraphError::SourceHere { name }
                } else {
                    GraphError::NotAllowed { name }
                },
            );
        }
        for (key, _) in &f.args {
            if let Some(k) = key {
                if k.contains('/') {
                    // FFmpeg 6.1+ reads `/key=PATH` as "key = contents of PATH".
                    return Err(GraphError::ValueFromFile {
                        filter: f.name.clone(),
                        key: k.clone(),
                    });
                }
                if names_a_file(k) {
                    return Err(GraphError::NamesAFile {
                        filter: f.name.clone(),
                        key: k.clone(),
                    });
                }
            }
        }
    }
    // Sizes and rates, once every filter is known to be allowed.
    for f in &filters {
        check_bounds(f)?;
    }
    Ok(())
}

/// What an option of a filter sets, for [`check_bounds`].
#[derive(Clone, Copy)]
enum Bounded {
    Size,
    Rate,
    SampleRate,
    Width,
    Height,
}

/// The options of `filter` that set a size or a rate: their names and
/// their position when given without a name (libavfilter's option order).
fn bounded_options(filter: &str) -> &'static [(&'static [&'static str], usize, Bounded)] {
    use Bounded::*;
    match filter {
        "testsrc" | "testsrc2" | "smptebars" | "smptehdbars" | "rgbtestsrc" | "yuvtestsrc"
        | "nullsrc" | "sierpinski" | "gradients" | "zoneplate" | "mandelbrot" => {
            &[(&["size", "s"], 0, Size), (&["rate", "r"], 1, Rate)]
        }
        "color" => &[(&["size", "s"], 1, Size), (&["rate", "r"], 2, Rate)],
        "sine" => &[(&["sample_rate", "r"], 2, SampleRate)],
        "anoisesrc" => &[(&["sample_rate", "r"], 0, SampleRate)],
        "anullsrc" => &[(&["sample_rate", "r"], 1, SampleRate)],
        "scale" => &[
            (&["w", "width"], 0, Width),
            (&["h", "height"], 1, Height),
            (&["size", "s"], usize::MAX, Size),
        ],
        "pad" => &[(&["width", "w"], 0, Width), (&["height", "h"], 1, Height)],
        "rotate" => &[(&["out_w", "ow"], 1, Width), (&["out_h", "oh"], 2, Height)],
        "fps" | "framerate" => &[(&["fps"], 0, Rate)],
        "aresample" => &[(&["osr", "out_sample_rate"], 0, SampleRate)],
        _ => &[],
    }
}

/// Checks the sizes and rates a filter asks for against
/// [`crate::ffmpeg::bounds`]: a test pattern of 16000x16000 at 1000 frames a
/// second, or a scale to it, is refused like any other out-of-range value.
fn check_bounds(f: &Filter) -> Result<(), GraphError> {
    use crate::ffmpeg::bounds;
    let options = bounded_options(&f.name);
    let mut position = 0;
    for (key, value) in &f.args {
        let found = match key {
            Some(k) => options
                .iter()
                .find(|(names, _, _)| names.contains(&k.as_str())),
            None => {
                position += 1;
                options.iter().find(|(_, at, _)| *at == position - 1)
            }
        };
        let Some((names, _, kind)) = found else {
            continue;
        };
        let checked = match kind {
            Bounded::Size => bounds::size(value).map(|_| ()),
            Bounded::Rate => bounds::rate(value).map(|_| ()),
            Bounded::SampleRate => bounds::sample_rate(value).map(|_| ()),
            Bounded::Width => bounds::scaled(value, bounds::MAX_WIDTH),
            Bounded::Height => bounds::scaled(value, bounds::MAX_HEIGHT),
        };
        checked.map_err(|error| GraphError::Bounds {
            filter: f.name.clone(),
            option: names[0],
            error,
        })?;
    }
    Ok(())
}

/// Whether a filter option key names a file, a directory or a path
/// (`filename`, `textfile`, `fontfile`, `stats_file`, `model_path`, ...),
/// or commands to run.
fn names_a_file(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["file", "filename", "files", "path", "dir"]
        .iter()
        .any(|s| k.ends_with(s))
        || ["model", "commands", "sofa", "shader", "lut"].contains(&k.as_str())
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &[u8] {
        &self.s[self.i..]
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(|c| BLANKS.contains(&c)) {
            self.i += 1;
        }
    }

    /// FFmpeg's `av_get_token(buf, term)`.
    fn token(&mut self, term: &[u8]) -> String {
        token(self.s, &mut self.i, term)
    }

    /// `[label]` pads, as `parse_inputs`/`parse_outputs` read them.
    fn labels(&mut self) -> Result<Vec<String>, GraphError> {
        let mut out = Vec::new();
        while self.peek() == Some(b'[') {
            self.i += 1;
            let name = self.token(b"]");
            if name.is_empty() {
                return Err(GraphError::EmptyLabel);
            }
            if self.next() != Some(b']') {
                return Err(GraphError::UnclosedLabel);
            }
            if !name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_-.:".contains(&c))
            {
                return Err(GraphError::Label { label: name });
            }
            out.push(name);
            self.skip_blanks();
        }
        Ok(out)
    }

    /// `name[@id][=args]`, as `parse_filter`/`create_filter` read them.
    fn filter(&mut self) -> Result<(String, Option<String>, Option<String>), GraphError> {
        let token = self.token(b"=,;[");
        let args = if self.peek() == Some(b'=') {
            self.i += 1;
            Some(self.token(b"[],;"))
        } else {
            None
        };
        if token.is_empty() {
            return Err(GraphError::EmptyName);
        }
        let (name, id) = match token.split_once('@') {
            Some((n, i)) if !i.is_empty() => (n.to_string(), Some(i.to_string())),
            _ => (token, None),
        };
        let word = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        };
        if !word(&name) {
            return Err(GraphError::NotAllowed { name });
        }
        if let Some(i) = &id {
            if !i
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(&c))
            {
                return Err(GraphError::InstanceId { id: i.clone() });
            }
        }
        Ok((name, id, args))
    }
}

/// FFmpeg's `av_get_token`: skips leading blanks, reads up to an unescaped,
/// unquoted byte of `term`, handling `\x` escapes and `'...'` quotes, and
/// drops trailing blanks that were neither escaped nor quoted.
fn token(s: &[u8], i: &mut usize, term: &[u8]) -> String {
    while s.get(*i).is_some_and(|c| BLANKS.contains(c)) {
        *i += 1;
    }
    let mut out: Vec<u8> = Vec::new();
    // Length of `out` that trailing-blank removal may not cut into.
    let mut end = 0;
    while let Some(&c) = s.get(*i) {
        if term.contains(&c) {
            break;
        }
        *i += 1;
        if c == b'\\' && *i < s.len() {
            out.push(s[*i]);
            *i += 1;
            end = out.len();
        } else if c == b'\'' {
            while let Some(&q) = s.get(*i) {
                if q == b'\'' {
                    break;
                }
                out.push(q);
                *i += 1;
            }
            if *i < s.len() {
                *i += 1;
                end = out.len();
            }
        } else {
            out.push(c);
        }
    }
    while out.len() > end && out.last().is_some_and(|c| BLANKS.contains(c)) {
        out.pop();
    }
    // The input is printable ASCII, so is every byte copied from it.
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a filter's args the way libavfilter's `process_options` does
/// (`av_opt_get_key_value` with `=` and `:`): a key is a run of
/// `[A-Za-z0-9_./-]` followed by `=`; otherwise the piece is a positional
/// value.
fn split_args(args: &str) -> Result<Vec<(Option<String>, String)>, GraphError> {
    let s = args.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < s.len() {
        let start = i;
        let mut j = i;
        while s.get(j).is_some_and(|c| BLANKS.contains(c)) {
            j += 1;
        }
        let key_start = j;
        while s
            .get(j)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || b"-_/.".contains(&c))
        {
            j += 1;
        }
        let key_end = j;
        while s.get(j).is_some_and(|c| BLANKS.contains(c)) {
            j += 1;
        }
        let key = if s.get(j) == Some(&b'=') {
            i = j + 1;
            Some(args[key_start..key_end].to_string())
        } else {
            i = start;
            None
        };
        let value = token(s, &mut i, b":");
        out.push((key, value));
        if i < s.len() {
            // The ':' separator.
            i += 1;
        }
        // 256 options: more than any filter has.
        if out.len() > MAX_FILTERS * 4 {
            return Err(GraphError::TooManyOptions);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_sources_and_labelled_graphs_pass() {
        for g in [
            "smptehdbars=size=640x360:rate=25",
            "testsrc2=size=640x360:rate=25",
            "mandelbrot=size=640x360:rate=25",
            "testsrc=size=320x240:rate=15",
            "sine=frequency=1000",
            "rgbtestsrc=size=640x360:rate=25",
            "smptebars=size=640x360:rate=25",
            "testsrc[out0];sine[out1]",
            "testsrc2=s=320x240:r=25 [out0] ; sine=f=440:b=4 [out1]",
            "color=c=red:s=320x240,format=yuv420p",
            "testsrc@t1=size=320x240,scale=160:120",
        ] {
            check(g, GraphUse::Source).unwrap_or_else(|e| panic!("{g}: {e}"));
        }
        for g in [
            "scale=1280:-2",
            "yadif,scale=w=640:h=360,fps=25,format=yuv420p",
            "setpts=N/FRAME_RATE/TB",
            "crop=iw/2:ih/2,pad=iw:ih:(ow-iw)/2:(oh-ih)/2",
            "pad=640:480:(ow-iw)/2:(oh-ih)/2",
            "format=pix_fmts=yuv420p|nv12",
            "aresample=48000,volume=0.5",
            "scale=w='min(1280,iw)':h=-2",
        ] {
            check(g, GraphUse::Filter).unwrap_or_else(|e| panic!("{g}: {e}"));
        }
    }

    #[test]
    fn sizes_and_rates_are_bounded_in_graphs() {
        for (g, why) in [
            ("mandelbrot=size=16000x16000:rate=25", "larger than 4K"),
            ("testsrc=size=320x240:rate=1000", "at most 120"),
            ("testsrc=16000x16000", "larger than 4K"),
            ("testsrc=320x240:500", "at most 120"),
            ("color=c=red:s=9000x9000", "larger than 4K"),
            ("color=red:320x240:999", "at most 120"),
            ("sine=f=440:r=10000000", "sample rate"),
            ("testsrc,scale=iw*50:ih*50", "no expression"),
            ("testsrc,scale=w=16000:h=100", "not 1 to 4096"),
            ("testsrc,pad=width=9000:height=9000", "not 1 to 4096"),
            ("testsrc,fps=1000", "at most 120"),
            ("testsrc,rotate=0.1:ow=99999", "not 1 to 4096"),
            ("allrgb", "\"allrgb\" is not allowed"),
            (
                "testsrc,split[a][b];[a][b]hstack",
                "\"hstack\" is not allowed",
            ),
        ] {
            let e = check(g, GraphUse::Source).unwrap_err().to_string();
            assert!(e.contains(why), "{g:?}: {e}");
        }
        check(
            "testsrc=size=3840x2160:rate=60,scale=1920:-2,fps=30",
            GraphUse::Source,
        )
        .unwrap();
    }

    #[test]
    fn file_and_command_filters_are_refused() {
        for (g, why) in [
            ("movie=/etc/passwd", "\"movie\" is not allowed"),
            ("amovie=/etc/passwd", "\"amovie\" is not allowed"),
            (
                "testsrc,drawtext=textfile=/etc/passwd",
                "\"drawtext\" is not allowed",
            ),
            ("life=filename=/etc/passwd", "\"life\" is not allowed"),
            ("cellauto=f=/etc/passwd", "\"cellauto\" is not allowed"),
            ("testsrc,sendcmd=f=/tmp/c", "\"sendcmd\" is not allowed"),
            ("testsrc,zmq", "\"zmq\" is not allowed"),
            (
                "testsrc,subtitles=/etc/x.srt",
                "\"subtitles\" is not allowed",
            ),
            ("testsrc,lut3d=/etc/x.cube", "\"lut3d\" is not allowed"),
            ("testsrc,frei0r=x", "\"frei0r\" is not allowed"),
            // Quotes and escapes are read as FFmpeg reads them.
            ("'mov'ie=/etc/passwd", "\"movie\" is not allowed"),
            ("mov\\ie=/etc/passwd", "\"movie\" is not allowed"),
            ("  movie=x", "\"movie\" is not allowed"),
            ("testsrc,scale=w='a,b',movie=x", "\"movie\" is not allowed"),
            ("testsrc[a];[a]movie=x", "\"movie\" is not allowed"),
            ("testsrc,scale=filename=/etc/passwd", "names a file"),
            (
                "testsrc,scale=/w=/etc/passwd",
                "loads its value from a file",
            ),
            ("testsrc=/size=/etc/passwd", "loads its value from a file"),
            ("testsrc,scale=w=1:fontfile=/x", "names a file"),
            ("sws_flags=bicubic;testsrc", "sws_flags"),
            ("testsrc,", "empty filter name"),
            ("testsrc[", "label"),
            ("testsrc[]", "empty [] label"),
            ("testsrc]x", "not allowed"),
            ("testsrc\n,movie=x", "character"),
            ("", "empty filter name"),
        ] {
            let e = check(g, GraphUse::Source).unwrap_err().to_string();
            assert!(e.contains(why), "{g:?}: {e}");
        }
        let e = check("testsrc", GraphUse::Filter).unwrap_err().to_string();
        assert!(e.contains("source"), "{e}");
        let e = check("drawtext=textfile=/etc/passwd", GraphUse::Filter).unwrap_err();
        assert_eq!(
            e,
            GraphError::NotAllowed {
                name: "drawtext".into()
            }
        );
        assert_eq!(e.to_string(), "filter \"drawtext\" is not allowed");
        let long = format!("testsrc,{}", "null,".repeat(100));
        assert!(check(&long, GraphUse::Source).is_err());
        let huge = "x".repeat(MAX_GRAPH_LEN + 1);
        assert_eq!(
            check(&huge, GraphUse::Source),
            Err(GraphError::TooLong {
                len: MAX_GRAPH_LEN + 1,
                max: MAX_GRAPH_LEN
            })
        );
    }

    #[test]
    fn a_bounds_refusal_names_the_filter_the_option_and_the_limit() {
        let e = check("testsrc,scale=w=16000:h=100", GraphUse::Source).unwrap_err();
        assert_eq!(
            e,
            GraphError::Bounds {
                filter: "scale".into(),
                option: "w",
                error: BoundsError::DimensionOutOfRange {
                    value: "16000".into(),
                    max: crate::ffmpeg::bounds::MAX_WIDTH
                },
            }
        );
        assert_eq!(
            e.to_string(),
            "filter \"scale\": option w: 16000 is not 1 to 4096"
        );
        let e = check("testsrc[out]sine", GraphUse::Source).unwrap_err();
        assert_eq!(
            e,
            GraphError::Syntax {
                near: "sine".into()
            }
        );
        assert_eq!(e.to_string(), "filter graph cannot be parsed near \"sine\"");
    }

    #[test]
    fn the_parser_reads_tokens_like_av_get_token() {
        let f = parse("[in] scale@s1 = w=640 : h='36 0' [out]; sine").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, "scale");
        assert_eq!(f[0].id.as_deref(), Some("s1"));
        assert_eq!(f[0].inputs, ["in"]);
        assert_eq!(f[0].outputs, ["out"]);
        assert_eq!(
            f[0].args,
            [
                (Some("w".to_string()), "640".to_string()),
                (Some("h".to_string()), "36 0".to_string())
            ]
        );
        assert_eq!(f[1].name, "sine");
        let f = parse("scale=640:360").unwrap();
        assert_eq!(f[0].args, [(None, "640".into()), (None, "360".into())]);
        let f = parse(r"testsrc=size=320x240\,rate=25").unwrap();
        assert_eq!(f.len(), 1, "an escaped comma does not split");
    }
}
