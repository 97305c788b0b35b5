//! `DSS_*` environment variables: overrides of the keys of `dss.toml`.

/// Applies `DSS_SECTION__KEY=value` variables (`DSS_LISTEN`,
/// `DSS_NGINX__HTTP_PORT`, ...). Values are read as TOML when they parse
/// (numbers, booleans, arrays), else as strings.
pub(super) fn apply_env(doc: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("DSS_") else {
            continue;
        };
        // DSS_CONFIG names the file itself (`--config`), not a key in it.
        if rest == "CONFIG" {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        let mut table = &mut *doc;
        for key in &path[..path.len() - 1] {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            let toml::Value::Table(t) = entry else {
                unreachable!("just made a table")
            };
            table = t;
        }
        table.insert(path[path.len() - 1].clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn env_overrides_file_values() {
        let dir = std::env::temp_dir().join(format!("dss-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dss.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[nginx]\nhttp_port = 81\n",
        )
        .unwrap();
        let env = [
            ("DSS_NGINX__HTTP_PORT".to_string(), "8181".to_string()),
            ("DSS_NGINX__APP".to_string(), "live".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let c = Config::load_with_env(Some(&file), env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.nginx.http_port, 8181);
        assert_eq!(c.nginx.app, "live");
        assert_eq!(c.base_dir, dir);
        assert_eq!(c.providers.modules_dir, dir.join("providers"));
    }

    #[test]
    fn dss_config_names_the_file_not_a_key() {
        let env = [("DSS_CONFIG".to_string(), "/etc/dss.toml".to_string())];
        assert!(Config::load_with_env(None, env).is_ok());
    }
}
