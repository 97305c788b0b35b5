//! FFmpeg: what a stream may ask it to do, and running it.
//!
//! * [`policy`] owns the one allow-list: it turns a stream's source and
//!   options into a [`Plan`] (or a [`Refusal`] saying why not) when the
//!   stream is listed, and checks the source's addresses before each start.
//! * [`lavfi`] parses filter graphs (`-f lavfi` sources, `-vf`/`-af`) and
//!   allows only test sources and light processing filters.
//! * [`process`] spawns FFmpeg from a plan's argv (never through a shell)
//!   with no environment, in an empty directory of its own, in its own
//!   process group with a parent-death signal, and watches its output.

pub mod lavfi;
pub mod policy;
pub mod process;

/// The options every FFmpeg the host runs starts with: no banner, no
/// stdin, no interactive statistics, and messages from `loglevel` up.
pub fn global_options(loglevel: &str) -> Vec<String> {
    [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        loglevel,
    ]
    .map(String::from)
    .to_vec()
}

pub use policy::{argv, prepare, Host, Plan, Refusal, SourceGrant, DEMUXERS};
pub use process::{signal_group, spawn, spawn_piped, Monitor, Process, SpawnError, STOP_TIMEOUT};
