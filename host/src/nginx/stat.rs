//! Reads nginx-rtmp's `/stat` XML: who publishes and who plays each
//! stream of the DSS application. Used to rebuild viewer counts after a
//! host restart and to correct counts when callbacks were missed.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Errors reading `/stat`.
#[derive(Debug, thiserror::Error)]
pub enum StatError {
    /// The request failed.
    #[error("GET {url}: {message}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The XML did not parse.
    #[error("GET {url}: unexpected /stat XML: {error}")]
    Xml {
        /// The URL.
        url: String,
        /// Why ([`parse`]'s error).
        error: quick_xml::DeError,
    },
}

/// One stream in `/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStat {
    /// The client id of the publisher, if any.
    pub publisher: Option<String>,
    /// Client ids of the players.
    pub viewers: Vec<String>,
}

#[derive(Deserialize)]
struct Rtmp {
    #[serde(default)]
    server: Vec<Server>,
}

#[derive(Deserialize)]
struct Server {
    #[serde(default)]
    application: Vec<Application>,
}

#[derive(Deserialize)]
struct Application {
    name: String,
    live: Option<Live>,
}

#[derive(Deserialize)]
struct Live {
    #[serde(default)]
    stream: Vec<Stream>,
}

#[derive(Deserialize)]
struct Stream {
    name: String,
    #[serde(default)]
    client: Vec<Client>,
}

#[derive(Deserialize)]
struct Client {
    id: String,
    publishing: Option<IgnoredAny>,
    #[serde(default)]
    flashver: Option<String>,
}

/// Parses `/stat` XML into the streams of application `app`.
/// The error is the XML reader's own (what it expected, where).
pub fn parse(xml: &str, app: &str) -> Result<BTreeMap<String, StreamStat>, quick_xml::DeError> {
    let doc: Rtmp = quick_xml::de::from_str(xml)?;
    let mut out = BTreeMap::new();
    for server in doc.server {
        for a in server.application.into_iter().filter(|a| a.name == app) {
            for s in a.live.map(|l| l.stream).unwrap_or_default() {
                let entry: &mut StreamStat = out.entry(s.name).or_default();
                for c in s.client {
                    if c.publishing.is_some() {
                        entry.publisher = Some(c.id);
                    } else if c.flashver.as_deref() == Some(crate::ffmpeg::RECORD_FLASHVER) {
                        // The host's recorder is not a viewer.
                    } else {
                        entry.viewers.push(c.id);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `url` without its path (which holds a secret), for messages.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or_default();
            format!("{scheme}://{authority}/…/stat")
        }
        None => "/stat".into(),
    }
}

/// Fetches and parses `/stat`.
pub async fn fetch(url: &str, app: &str) -> Result<BTreeMap<String, StreamStat>, StatError> {
    let http = |message: String| StatError::Http {
        url: shown(url),
        message,
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = url.parse().map_err(|e| http(format!("{e}")))?;
    // /stat answers in milliseconds; a stuck nginx must not stall callers.
    let resp = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .map_err(|_| http("timed out".into()))?
        .map_err(|e| http(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(http(format!("HTTP status {}", resp.status())));
    }
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .map_err(|_| http("timed out".into()))?
        .map_err(|e| http(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    parse(&text, app).map_err(|error| StatError::Xml {
        url: shown(url),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<rtmp><nginx_version>1.22.1</nginx_version><uptime>6</uptime>
<server><application><name>dss</name><live>
<stream><name>demo-bars</name><time>4592</time>
<client><id>1</id><address>127.0.0.1</address><flashver>FMLE/3.0</flashver><publishing/><active/></client>
<client><id>3</id><address>127.0.0.1</address><flashver>LNX 9,0,124,2</flashver><active/></client>
<client><id>4</id><address>10.0.0.2</address></client>
<client><id>5</id><address>127.0.0.1</address><flashver>DSS-record</flashver><active/></client>
<meta><video><width>320</width></video><audio></audio></meta>
<nclients>3</nclients><publishing/><active/></stream>
<stream><name>demo-idle</name><client><id>9</id></client><nclients>1</nclients></stream>
<nclients>4</nclients></live></application>
<application><name>other</name><live><stream><name>x</name><client><id>7</id></client></stream></live></application>
</server></rtmp>"#;

    #[test]
    fn publishers_viewers_and_the_recorder_are_told_apart() {
        let s = parse(XML, "dss").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s["demo-bars"].publisher.as_deref(), Some("1"));
        assert_eq!(s["demo-bars"].viewers, ["3", "4"]);
        assert_eq!(s["demo-idle"].publisher, None);
        assert_eq!(s["demo-idle"].viewers, ["9"]);
        assert!(parse(XML, "nope").unwrap().is_empty());
    }

    #[test]
    fn messages_never_show_the_secret_path() {
        assert_eq!(
            shown("http://127.0.0.1:8080/0123abcd/stat"),
            "http://127.0.0.1:8080/…/stat"
        );
    }

    #[test]
    fn an_empty_server_and_garbage() {
        let empty = "<rtmp><server><application><name>dss</name><live><nclients>0</nclients></live></application></server></rtmp>";
        assert!(parse(empty, "dss").unwrap().is_empty());
        assert!(parse("<html>nope", "dss").is_err());
    }
}
