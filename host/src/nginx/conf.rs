//! Renders `nginx/nginx.conf` (built in, or `[nginx] template`) with the
//! configuration's paths and ports.

use crate::config::Config;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The built-in template.
pub const TEMPLATE: &str = include_str!("../../../nginx/nginx.conf");

/// Errors rendering the template.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The custom template could not be read.
    #[error("cannot read nginx template {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The template names a value the host does not know.
    #[error("nginx template: unknown placeholder {{{{{0}}}}}")]
    Unknown(String),
    /// The callback secret could not be read or made.
    #[error("callback secret: {0}")]
    Secret(std::io::Error),
    /// A value contains characters that would break the nginx syntax.
    #[error("nginx template: value of {0} contains a quote, semicolon, brace or newline")]
    Unsafe(String),
}

/// The values available to the template; `secret` is the callback
/// secret, part of every callback URL (`{{hooks}}`).
pub fn values(config: &Config, managed: bool, secret: &str) -> BTreeMap<&'static str, String> {
    let n = &config.nginx;
    let mut v = BTreeMap::new();
    let module = if n.rtmp_module.as_os_str().is_empty() {
        String::new()
    } else {
        format!("load_module {};", n.rtmp_module.display())
    };
    v.insert("load_module", module);
    // A master running as root starts its workers as the media user (the
    // one FFmpeg runs as); empty otherwise (nginx's own default applies).
    let user = config
        .security
        .media_user
        .as_ref()
        .map(|u| format!("user {} {};", u.name, u.group))
        .unwrap_or_default();
    v.insert("user", user);
    v.insert("daemon", if managed { "off" } else { "on" }.to_string());
    v.insert("run_dir", config.run_dir().display().to_string());
    v.insert("log_dir", config.log_dir().display().to_string());
    v.insert("record_dir", config.record_dir().display().to_string());
    v.insert("state_dir", config.state_dir.display().to_string());
    v.insert(
        "rtmp_listen",
        SocketAddr::new(n.bind, n.rtmp_port).to_string(),
    );
    v.insert(
        "http_listen",
        SocketAddr::new(n.bind, n.http_port).to_string(),
    );
    v.insert("app", n.app.clone());
    v.insert("hooks", format!("{}/hooks/{secret}", config.host_url()));
    v.insert("secret", secret.to_string());
    v.insert("host_url", config.host_url());
    v
}

/// Renders the template for `config`.
pub fn render(config: &Config, managed: bool) -> Result<String, ConfError> {
    let template = match &config.nginx.template {
        Some(p) => std::fs::read_to_string(p).map_err(|error| ConfError::Read {
            path: p.display().to_string(),
            error,
        })?,
        None => TEMPLATE.to_string(),
    };
    let secret = config.callback_secret().map_err(ConfError::Secret)?;
    render_with(&template, &values(config, managed, &secret))
}

/// Replaces every `{{name}}` of `template` with `values[name]`.
pub fn render_with(
    template: &str,
    values: &BTreeMap<&'static str, String>,
) -> Result<String, ConfError> {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| ConfError::Unknown(after.chars().take(20).collect()))?;
        let name = after[..end].trim();
        let value = values
            .get(name)
            .ok_or_else(|| ConfError::Unknown(name.to_string()))?;
        let unsafe_char = |c: char| {
            matches!(c, '"' | '\'' | '{' | '}' | '\n' | '\r')
                || (c == ';' && !matches!(name, "load_module" | "user"))
        };
        if value.chars().any(unsafe_char) {
            return Err(ConfError::Unsafe(name.to_string()));
        }
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_with_defaults() {
        let mut c = Config::load_with_env(None, []).unwrap();
        c.security.callback_secret = Some("ab".repeat(16));
        let text = render(&c, true).unwrap();
        assert!(!text.contains("{{"));
        assert!(text.contains("listen 0.0.0.0:1935;"));
        assert!(text.contains("listen 0.0.0.0:8080;"));
        assert!(text.contains("application dss {"));
        assert!(text.contains(&format!(
            "on_play http://127.0.0.1:8000/hooks/{}/on_play;",
            "ab".repeat(16)
        )));
        assert!(text.contains("daemon off;"));
        // nginx's own statistics only under the secret; no rtmp_control.
        assert!(text.contains(&format!("location = /{}/stat {{", "ab".repeat(16))));
        assert!(!text.contains("location = /stat"));
        assert!(!text.contains("rtmp_control"));
        assert!(text.contains(&format!("X-DSS-Proxied {};", "ab".repeat(16))));
        assert!(text.contains("worker_processes 1;"));
        let mut directives = text.lines().filter(|l| !l.trim_start().starts_with('#'));
        assert!(
            !directives.any(|l| l.contains("on_connect")),
            "on_connect would refuse all RTMP when the host is down"
        );
    }

    #[test]
    fn unknown_placeholders_and_unsafe_values_are_errors() {
        let mut v = BTreeMap::new();
        v.insert("app", "dss".to_string());
        assert!(matches!(
            render_with("{{nope}}", &v),
            Err(ConfError::Unknown(_))
        ));
        v.insert("app", "x; include /etc/passwd".to_string());
        assert!(matches!(
            render_with("{{app}}", &v),
            Err(ConfError::Unsafe(_))
        ));
    }
}
