//! FFmpeg: what a stream may ask it to do, and running it.
//!
//! * [`policy`] owns the one allow-list: it turns a stream's source and
//!   options into a [`Plan`] (or a [`Refusal`] saying why not) when the
//!   stream is listed, and checks the source's addresses before each start.
//!   Its filter graphs part ([`policy::lavfi`]) parses `-f lavfi` sources
//!   and `-vf`/`-af` and allows only test sources and light processing
//!   filters.
//! * [`bounds`] the largest picture and fastest rate anything may ask for.
//! * [`process`] spawns FFmpeg from a plan's argv (never through a shell)
//!   with no environment, in an empty directory of its own, in its own
//!   process group with a parent-death signal, and watches its output.

pub mod bounds;
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

/// The flash version the recorder's RTMP client announces: the callbacks
/// and `/stat` reconciliation do not count it as a viewer.
pub const RECORD_FLASHVER: &str = "DSS-record";

/// The flash version a cluster relay announces when it plays a stream
/// from its owner's nginx-rtmp (a viewer there like any other).
pub const RELAY_FLASHVER: &str = "DSS-relay";

/// Why a cluster relay's source is refused: the value from the cluster's
/// records and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelaySourceError {
    /// Not a URL.
    #[error("relay source {from:?}: {error}")]
    Url {
        /// The source as recorded.
        from: String,
        /// Why it does not parse.
        error: url::ParseError,
    },
    /// A URL, but not `rtmp://HOST:PORT/APP/ID`.
    #[error("relay source {from:?}: not rtmp://HOST:PORT/APP/ID")]
    Form {
        /// The source as recorded.
        from: String,
    },
}

/// The source of a cluster relay (`rtmp://HOST:PORT/APP/ID`, from the
/// cluster's records), through its own allow-list: an `rtmp` URL with a
/// host and a two-segment path of id characters, nothing else.
pub fn relay_source(from: &str) -> Result<url::Url, RelaySourceError> {
    let url = url::Url::parse(from).map_err(|error| RelaySourceError::Url {
        from: from.to_string(),
        error,
    })?;
    let safe = |s: &str| {
        !s.is_empty()
            && !s.starts_with(['.', '-'])
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let ok = url.scheme() == "rtmp"
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && segments.len() == 2
        && segments.iter().all(|s| safe(s));
    if !ok {
        return Err(RelaySourceError::Form {
            from: from.to_string(),
        });
    }
    Ok(url)
}

/// A cluster relay: the stream read from its owner's nginx-rtmp (`from`,
/// checked by [`relay_source`]) and copied — no decoding — to `output`.
pub fn relay_argv(from: &url::Url, output: &str) -> Vec<String> {
    let mut a = global_options("warning");
    a.extend(
        [
            "-progress",
            "pipe:1",
            "-rtmp_flashver",
            RELAY_FLASHVER,
            "-analyzeduration",
            "2000000",
            // The owner gone quiet (dead, partitioned) ends the relay in
            // a few seconds (µs), so that this host can take over.
            "-rw_timeout",
            "3000000",
            "-protocol_whitelist",
            "tcp,rtmp",
            "-i",
        ]
        .map(String::from),
    );
    a.push(from.to_string());
    a.extend(["-map", "0", "-c", "copy", "-f", "flv"].map(String::from));
    a.push(output.to_string());
    a
}

pub use policy::{argv, prepare, GrantError, Host, Plan, Refusal, SourceGrant, DEMUXERS};
pub use process::{signal_group, spawn, spawn_piped, Monitor, Process, SpawnError, STOP_TIMEOUT};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_reads_only_an_rtmp_stream_and_copies_it() {
        let from = relay_source("rtmp://10.0.0.2:1935/dss/cams-12").unwrap();
        let a = relay_argv(&from, "rtmp://127.0.0.1/dss/cams-12?token=t");
        let i = a.iter().position(|x| x == "-i").unwrap();
        assert_eq!(a[i + 1], "rtmp://10.0.0.2:1935/dss/cams-12");
        assert!(a.windows(2).any(|w| w == ["-c", "copy"]));
        assert!(a
            .windows(2)
            .any(|w| w == ["-protocol_whitelist", "tcp,rtmp"]));
        assert_eq!(a.last().unwrap(), "rtmp://127.0.0.1/dss/cams-12?token=t");
        for bad in [
            "http://10.0.0.2/dss/x",
            "rtmp://10.0.0.2/dss",
            "rtmp://10.0.0.2/dss/x/y",
            "rtmp://10.0.0.2/dss/x?y=1",
            "rtmp://u:p@10.0.0.2/dss/x",
            "rtmp://10.0.0.2/dss/..",
            "rtmp://10.0.0.2/dss/-i",
            "file:///etc/passwd",
            "-f",
        ] {
            assert!(relay_source(bad).is_err(), "{bad}");
        }
        assert_eq!(
            relay_source("rtmp://10.0.0.2/dss"),
            Err(RelaySourceError::Form {
                from: "rtmp://10.0.0.2/dss".into()
            })
        );
        assert_eq!(
            relay_source("-f").unwrap_err().to_string(),
            "relay source \"-f\": relative URL without a base"
        );
    }
}
