//! A plan turned into FFmpeg's arguments: the host's fixed options, the
//! checked input options, the source (with the protocol whitelist of its
//! scheme, or the ingest's FIFOs), then the checked output options and the
//! host's own output.

use super::{Input, Plan};
use crate::ffmpeg::global_options;

impl Plan {
    /// The full argv (without the binary) that publishes to `output`:
    /// the host's fixed options, the checked input options, the protocol
    /// whitelist of the source's scheme, `-i SOURCE`, the checked output
    /// options and `-f flv OUTPUT`.
    pub fn argv(&self, output: &str) -> Vec<String> {
        let mut a = self.head(true);
        a.extend(self.output_options.iter().cloned());
        a.extend(["-f".to_string(), "flv".to_string(), output.to_string()]);
        a
    }

    /// The argv of a run that reads this plan's source (its checked input
    /// options and source, nothing else of the listing) and writes the
    /// host's own `outputs`: thumbnails of an idle stream. `None` for a
    /// phone, whose media only the host's ingest has.
    pub fn input_argv(&self, outputs: &[String]) -> Option<Vec<String>> {
        if matches!(self.input, Input::Ingest | Input::Feeds(_)) {
            return None;
        }
        let mut a = self.head(false);
        a.extend(outputs.iter().cloned());
        Some(a)
    }

    /// The common options, the input options and the input.
    fn head(&self, progress: bool) -> Vec<String> {
        let mut a = global_options("warning");
        if progress {
            // key=value blocks on stdout, about twice a second: the
            // liveness signal used for stale detection.
            a.extend(["-progress".to_string(), "pipe:1".to_string()]);
        }
        a.extend(self.input_options.iter().cloned());
        let source = match &self.input {
            Input::Graph(g) => g.to_string(),
            Input::Url { url, whitelist, .. } => {
                a.extend(["-protocol_whitelist".to_string(), whitelist.clone()]);
                url.to_string()
            }
            Input::Ingest => String::new(),
            Input::Feeds(feeds) => {
                // One input per track; FFmpeg picks the best video and
                // audio among them by probing (phones mislabel tracks).
                for f in feeds {
                    // A live phone: probe 1 s of it, not FFmpeg's default
                    // 5 s, before publishing.
                    a.extend(
                        [
                            "-analyzeduration",
                            "1000000",
                            "-f",
                            "mpegts",
                            "-protocol_whitelist",
                            "file",
                            "-i",
                        ]
                        .map(String::from),
                    );
                    a.push(format!("file:{}", f.display()));
                }
                String::new()
            }
        };
        if !source.is_empty() {
            a.extend(["-i".to_string(), source]);
        }
        a
    }
}
