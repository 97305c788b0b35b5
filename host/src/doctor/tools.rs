//! The programs the host runs: nginx with its RTMP module, and FFmpeg (5
//! or later, with the protocols and formats the listed streams need).

use super::{Finding, Needs};
use crate::config::Config;
use std::collections::BTreeSet;
use std::process::Command;

/// The oldest FFmpeg the host's argument vectors are written for
/// (`-rw_timeout` on every protocol, the `fps_mode` option).
const FFMPEG_MIN_MAJOR: u32 = 5;

/// nginx: the binary, its version and the RTMP module.
pub(super) fn nginx(config: &Config) -> Vec<Finding> {
    let n = &config.nginx;
    if n.managed == Some(false) {
        return vec![Finding::ok(
            "nginx",
            "run by the operator ([nginx] managed = false): `dss nginx-conf` prints the configuration it needs",
        )];
    }
    let Some(binary) = crate::nginx::managed::find_binary(&n.binary) else {
        return vec![Finding::fail(
            "nginx",
            format!("{} not found", n.binary.display()),
            "apt install nginx libnginx-mod-rtmp (or set [nginx] binary to its path)",
        )];
    };
    // `nginx -V` prints the version and the build's options on stderr.
    let version = match Command::new(&binary).arg("-V").output() {
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => {
            return vec![Finding::fail(
                "nginx",
                format!("cannot run {}: {e}", binary.display()),
                "reinstall nginx (apt install --reinstall nginx)",
            )]
        }
    };
    let shown = nginx_version(&version).unwrap_or("(version unknown)");
    let mut out = vec![Finding::ok(
        "nginx",
        format!("{} {shown}", binary.display()),
    )];
    out.push(if n.rtmp_module.as_os_str().is_empty() {
        if version.contains("rtmp") {
            Finding::ok("nginx RTMP module", "built in")
        } else {
            Finding::fail(
                "nginx RTMP module",
                "[nginx] rtmp_module is empty (built in), but this nginx was not built with it",
                "apt install libnginx-mod-rtmp and set [nginx] rtmp_module to its .so",
            )
        }
    } else if n.rtmp_module.is_file() {
        Finding::ok("nginx RTMP module", n.rtmp_module.display().to_string())
    } else {
        Finding::fail(
            "nginx RTMP module",
            format!("{} not found", n.rtmp_module.display()),
            "apt install libnginx-mod-rtmp (or set [nginx] rtmp_module to the module's .so)",
        )
    });
    out
}

/// `nginx/1.22.1` from `nginx -V`'s output.
fn nginx_version(output: &str) -> Option<&str> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("nginx version: "))
        .map(str::trim)
}

/// What an FFmpeg build has.
#[derive(Debug, Default)]
pub(super) struct Ffmpeg {
    input_protocols: BTreeSet<String>,
    formats: BTreeSet<String>,
}

/// FFmpeg: runs, is 5 or later; what it has, for [`ffmpeg_needs`].
pub(super) fn ffmpeg(config: &Config) -> (Vec<Finding>, Option<Ffmpeg>) {
    let binary = &config.ffmpeg.binary;
    let run = |args: &[&str]| -> std::io::Result<String> {
        let o = Command::new(binary)
            .arg("-hide_banner")
            .args(args)
            .output()?;
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let version = match run(&["-version"]) {
        Ok(v) => v,
        Err(e) => {
            return (
                vec![Finding::fail(
                    "ffmpeg",
                    format!("cannot run {}: {e}", binary.display()),
                    "apt install ffmpeg (or set [ffmpeg] binary to its path)",
                )],
                None,
            )
        }
    };
    let finding = match ffmpeg_version(&version) {
        Some((shown, major)) if major >= FFMPEG_MIN_MAJOR => {
            Finding::ok("ffmpeg", format!("{} {shown}", binary.display()))
        }
        Some((shown, _)) => Finding::fail(
            "ffmpeg",
            format!(
                "{} is {shown}; DSS needs {FFMPEG_MIN_MAJOR} or later",
                binary.display()
            ),
            "install FFmpeg 5 or later (Debian 12's ffmpeg is 5.1)",
        ),
        None => Finding::warn(
            "ffmpeg",
            format!(
                "{}: cannot tell its version from {:?}",
                binary.display(),
                version.lines().next().unwrap_or("")
            ),
            format!("make sure it is FFmpeg {FFMPEG_MIN_MAJOR} or later"),
        ),
    };
    let caps = Ffmpeg {
        input_protocols: input_protocols(&run(&["-protocols"]).unwrap_or_default()),
        formats: formats(&run(&["-formats"]).unwrap_or_default()),
    };
    (vec![finding], Some(caps))
}

/// The version and its major number from `ffmpeg -version`'s first line
/// (`ffmpeg version 5.1.6-0+deb12u1 ...`, `ffmpeg version n6.1 ...`);
/// `None` for builds named by a git revision (`N-112345-g...`).
fn ffmpeg_version(output: &str) -> Option<(&str, u32)> {
    let v = output
        .lines()
        .next()?
        .strip_prefix("ffmpeg version ")?
        .split_whitespace()
        .next()?;
    let major = v
        .trim_start_matches('n')
        .split(['.', '-'])
        .next()?
        .parse()
        .ok()?;
    Some((v, major))
}

/// The input protocols of `ffmpeg -protocols`' output.
fn input_protocols(output: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut input = false;
    for line in output.lines() {
        match line.trim() {
            "Input:" => input = true,
            "Output:" => input = false,
            name if input && !name.is_empty() => {
                out.insert(name.to_string());
            }
            _ => {}
        }
    }
    out
}

/// The formats and devices of `ffmpeg -formats`' output (` DE flv ...`,
/// names separated by commas for one entry: ` D  mov,mp4,m4a ...`).
fn formats(output: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut listing = false;
    for line in output.lines() {
        if line.trim() == "--" {
            listing = true;
            continue;
        }
        if !listing {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(_flags), Some(names)) = (words.next(), words.next()) else {
            continue;
        };
        out.extend(names.split(',').map(str::to_string));
    }
    out
}

/// Whether FFmpeg has what the listed streams (and the host itself:
/// publishing to nginx) need.
pub(super) fn ffmpeg_needs(config: &Config, ffmpeg: &Ffmpeg, needs: &Needs) -> Vec<Finding> {
    let mut out = Vec::new();
    let binary = config.ffmpeg.binary.display();
    let mut missing = |what: &str, name: &str, users: &BTreeSet<String>| {
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        out.push(Finding::fail(
            "ffmpeg",
            format!(
                "{binary} has no {what} {name:?}, which {} needs",
                users.join(", ")
            ),
            "install an FFmpeg built with it (Debian's ffmpeg package has every one DSS uses)",
        ));
    };
    for (name, users) in &needs.protocols {
        if !ffmpeg.input_protocols.contains(name) {
            missing("protocol", name, users);
        }
    }
    for (name, users) in &needs.formats {
        if !ffmpeg.formats.contains(name) {
            missing("format", name, users);
        }
    }
    if out.is_empty() {
        let names = |m: &std::collections::BTreeMap<String, BTreeSet<String>>| {
            m.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
        };
        out.push(Finding::ok(
            "ffmpeg",
            format!(
                "has what the listed streams need: protocols {}; formats {}",
                names(&needs.protocols),
                names(&needs.formats)
            ),
        ));
    }
    out
}

/// Whether `path` names a program that runs (for the tests).
#[cfg(test)]
fn runs(path: &std::path::Path) -> bool {
    Command::new(path).arg("-version").output().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_programs_words() {
        assert_eq!(
            ffmpeg_version("ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024"),
            Some(("5.1.6-0+deb12u1", 5))
        );
        assert_eq!(
            ffmpeg_version("ffmpeg version n6.1 Copyright"),
            Some(("n6.1", 6))
        );
        assert_eq!(
            ffmpeg_version("ffmpeg version 4.4.2-0ubuntu0.22.04.1"),
            Some(("4.4.2-0ubuntu0.22.04.1", 4))
        );
        assert_eq!(ffmpeg_version("ffmpeg version N-112345-gabcdef"), None);
        assert_eq!(
            nginx_version("nginx version: nginx/1.22.1\nbuilt with OpenSSL"),
            Some("nginx/1.22.1")
        );
    }

    #[test]
    fn protocol_and_format_lists_are_parsed() {
        let protocols = "Supported file protocols:\nInput:\n  file\n  rtmp\n  rtsp\nOutput:\n  file\n  rtmp\n  icecast\n";
        let p = input_protocols(protocols);
        assert!(p.contains("rtsp") && p.contains("rtmp") && !p.contains("icecast"));
        let listing = "File formats:\n D. = Demuxing supported\n .E = Muxing supported\n --\n DE flv             FLV (Flash Video)\n D  lavfi           Libavfilter virtual input device\n D  mov,mp4,m4a     QuickTime / MOV\n";
        let f = formats(listing);
        assert!(f.contains("flv") && f.contains("lavfi") && f.contains("mp4"));
    }

    #[test]
    fn an_ffmpeg_older_than_5_and_a_missing_one_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("ffmpeg");
        std::fs::write(
            &old,
            "#!/bin/sh\necho 'ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright'\n",
        )
        .expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(runs(&old));
        let mut config = Config::default();
        config.ffmpeg.binary = old;
        let (f, _) = ffmpeg(&config);
        assert_eq!(f[0].level, super::super::Level::Fail, "{}", f[0]);
        assert!(f[0].detail.contains("4.4.2"), "{}", f[0]);
        config.ffmpeg.binary = dir.path().join("none");
        let (f, caps) = ffmpeg(&config);
        assert_eq!(f[0].level, super::super::Level::Fail, "{}", f[0]);
        assert!(caps.is_none());
    }

    #[test]
    fn a_protocol_or_format_the_build_lacks_fails_naming_who_needs_it() {
        let ffmpeg = Ffmpeg {
            input_protocols: ["file", "tcp"].map(String::from).into(),
            formats: ["flv"].map(String::from).into(),
        };
        let mut needs = Needs::default();
        needs.add(super::super::NeedKind::Protocol, "rtsp", "cams");
        needs.add(super::super::NeedKind::Format, "lavfi", "demo");
        needs.add(super::super::NeedKind::Format, "flv", "demo");
        let f = ffmpeg_needs(&Config::default(), &ffmpeg, &needs);
        let text: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(f.len(), 2, "{text:?}");
        assert!(
            text[0].starts_with("FAIL") && text[0].contains("\"rtsp\"") && text[0].contains("cams")
        );
        assert!(text[1].contains("\"lavfi\"") && text[1].contains("demo"));
    }

    #[test]
    fn a_missing_nginx_or_rtmp_module_fails() {
        let mut config = Config::default();
        config.nginx.managed = None;
        config.nginx.binary = "/nonexistent/nginx".into();
        let f = nginx(&config);
        assert_eq!(f[0].level, super::super::Level::Fail, "{}", f[0]);
        if let Some(n) = crate::nginx::managed::find_binary(std::path::Path::new("nginx")) {
            config.nginx.binary = n;
            config.nginx.rtmp_module = "/nonexistent/ngx_rtmp_module.so".into();
            let f = nginx(&config);
            assert_eq!(f[0].level, super::super::Level::Ok, "{}", f[0]);
            assert_eq!(f[1].level, super::super::Level::Fail, "{}", f[1]);
            assert!(f[1]
                .fix
                .as_deref()
                .is_some_and(|x| x.contains("libnginx-mod-rtmp")));
        }
    }
}
