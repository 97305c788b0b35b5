//! `dss doctor`: checks what a newcomer gets wrong before `dss serve`
//! does, one line each (ok, warn or FAIL, with the fix), non-zero on a
//! failure.
//!
//! By concern: `tools` (nginx and its RTMP module, FFmpeg's version and
//! the protocols and formats the listed streams need), `places` (ports,
//! directories, ownership and modes of the state) and `providers` (the
//! store, and every instance run as `dss providers check` runs it).
//! Doctor reads and probes; it writes nothing of the host's: no compile
//! cache, no secrets, no database file.

mod places;
mod providers;
mod tools;

use crate::config::Config;
use std::io::Write;
use std::path::Path;

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// As it should be.
    Ok,
    /// Works, but likely not as meant.
    Warn,
    /// `dss serve` will fail, or serve less than configured.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// How it went.
    pub level: Level,
    /// What was checked (`nginx`, `port 8080`, `provider cams`).
    pub subject: String,
    /// What was found.
    pub detail: String,
    /// What to do about it (warnings and failures).
    pub fix: Option<String>,
}

impl Finding {
    /// A check that passed.
    pub fn ok(subject: impl Into<String>, detail: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            subject: subject.into(),
            detail: detail.into(),
            fix: None,
        }
    }

    /// A warning, with its fix.
    pub fn warn(
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            level: Level::Warn,
            subject: subject.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A failure, with its fix.
    pub fn fail(
        subject: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            level: Level::Fail,
            subject: subject.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        // One line each, whatever the error said over several (a TOML
        // parse error shows the line it points at).
        let detail: Vec<&str> = self
            .detail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        write!(f, "{tag}  {}: {}", self.subject, detail.join(" "))?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

/// The report as it is written: each finding printed when found (a
/// provider's check can take seconds), failures counted.
struct Report<'a> {
    out: &'a mut dyn Write,
    failures: usize,
    warnings: usize,
}

impl Report<'_> {
    fn add(&mut self, finding: Finding) {
        match finding.level {
            Level::Fail => self.failures += 1,
            Level::Warn => self.warnings += 1,
            Level::Ok => {}
        }
        let _ = writeln!(self.out, "{finding}");
    }

    fn extend(&mut self, findings: impl IntoIterator<Item = Finding>) {
        for f in findings {
            self.add(f);
        }
    }
}

/// Runs every check on the configuration at `path` (or the defaults),
/// writing the report to `out`. Returns the exit code: 1 on a failure.
pub async fn run(path: Option<&Path>, out: &mut dyn Write) -> i32 {
    let mut report = Report {
        out,
        failures: 0,
        warnings: 0,
    };
    let shown = path.map_or("defaults (no dss.toml)".to_string(), |p| {
        p.display().to_string()
    });
    let config = match Config::load(path) {
        Ok(c) => {
            report.add(Finding::ok("configuration", shown));
            c
        }
        Err(e) => {
            report.add(Finding::fail(
                "configuration",
                e.to_string(),
                "correct the file (`dss config` prints the effective configuration; the README lists every key)",
            ));
            return 1;
        }
    };
    report.extend(tools::nginx(&config));
    let (findings, ffmpeg) = tools::ffmpeg(&config);
    report.extend(findings);
    report.extend(places::ports(&config));
    report.extend(places::directories(&config));
    report.extend(places::ownership(&config));
    report.add(providers::store(&config).await);
    let needs = providers::instances(&config, &mut |f| report.add(f)).await;
    if let Some(ffmpeg) = ffmpeg {
        report.extend(tools::ffmpeg_needs(&config, &ffmpeg, &needs));
    }
    let (failures, warnings) = (report.failures, report.warnings);
    let _ = writeln!(
        report.out,
        "{failures} failure{}, {warnings} warning{}",
        if failures == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    );
    i32::from(failures > 0)
}

/// What the listed streams need of FFmpeg: protocols and formats, each
/// with the instances that need it.
#[derive(Debug, Default)]
pub struct Needs {
    /// Input protocols (`rtsp`, `tcp`, `file`, ...).
    pub protocols: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Formats and devices named with `-f` (`lavfi`, `flv`, `mpegts`).
    pub formats: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl Needs {
    /// Adds what FFmpeg's argument vector `argv` uses, for `instance`.
    pub fn add_argv(&mut self, instance: &str, argv: &[String]) {
        for pair in argv.windows(2) {
            match pair[0].as_str() {
                "-f" => {
                    self.formats
                        .entry(pair[1].clone())
                        .or_default()
                        .insert(instance.to_string());
                }
                "-protocol_whitelist" => {
                    for p in pair[1].split(',').filter(|p| !p.is_empty()) {
                        self.protocols
                            .entry(p.to_string())
                            .or_default()
                            .insert(instance.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds one need by name.
    pub fn add(&mut self, kind: NeedKind, name: &str, instance: &str) {
        let map = match kind {
            NeedKind::Protocol => &mut self.protocols,
            NeedKind::Format => &mut self.formats,
        };
        map.entry(name.to_string())
            .or_default()
            .insert(instance.to_string());
    }
}

/// The kinds of [`Needs`].
#[derive(Debug, Clone, Copy)]
pub enum NeedKind {
    /// An input protocol.
    Protocol,
    /// A format or device.
    Format,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_is_one_line_with_its_fix() {
        assert_eq!(
            Finding::fail("nginx", "not found", "apt install nginx").to_string(),
            "FAIL  nginx: not found — fix: apt install nginx"
        );
        assert_eq!(
            Finding::ok("ffmpeg", "5.1").to_string(),
            "ok    ffmpeg: 5.1"
        );
        assert_eq!(
            Finding::warn("x", "parse error\n  |\n1 | a = \n", "fix it").to_string(),
            "warn  x: parse error | 1 | a = — fix: fix it"
        );
    }

    #[test]
    fn needs_come_from_formats_and_protocol_whitelists() {
        let mut n = Needs::default();
        let argv: Vec<String> = [
            "-protocol_whitelist",
            "rtsp,rtp,udp,tcp",
            "-i",
            "rtsp://cam/1",
            "-f",
            "flv",
            "rtmp://x",
        ]
        .map(String::from)
        .to_vec();
        n.add_argv("cams", &argv);
        assert_eq!(
            n.protocols.keys().collect::<Vec<_>>(),
            ["rtp", "rtsp", "tcp", "udp"]
        );
        assert_eq!(n.formats.keys().collect::<Vec<_>>(), ["flv"]);
        assert!(n.formats["flv"].contains("cams"));
    }

    #[tokio::test]
    async fn a_configuration_that_does_not_load_is_one_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("dss.toml");
        std::fs::write(&file, "[nginx]\nhttp_prot = 1\n").expect("write");
        let mut out = Vec::new();
        let code = run(Some(&file), &mut out).await;
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(code, 1);
        assert!(
            out.starts_with("FAIL  configuration: ") && out.contains("http_prot"),
            "{out}"
        );
    }
}
