//! The API as a contract: Schemathesis (PyPI, pinned by
//! `scripts/python-tools.sh`) reads a live demo host's OpenAPI document
//! (`/api/openapi.json`, generated from the handlers) and sends every
//! documented operation examples, boundary values, property-based bad
//! inputs and sequences (a listed id fed to the routes that take one), on
//! both surfaces: the public one through nginx's port without the token,
//! the private one on the host's port with it. Every check is on
//! (`tests/contract/schemathesis.toml` says what is bounded and why): no
//! server error, no undocumented status, content type or header, no body
//! off its schema, bad input refused, good input accepted, 405 with
//! `Allow` for undocumented methods, bearer-only operations refused
//! without the token.
//!
//! Each run's summary (operations, cases generated, failures by check)
//! is printed and its JSON report kept under `target/schemathesis/`.

use dss_e2e::timeout::T30 as T;
use dss_e2e::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A surface's run: its exit status and JSON report.
fn run(st: &Path, schema: &str, token: Option<&str>, secret: &str, name: &str) -> (bool, Value) {
    let root = repo_root();
    let out = root.join("target/schemathesis");
    std::fs::create_dir_all(&out).expect("mkdir target/schemathesis");
    let report = out.join(format!("{name}.json"));
    let _ = std::fs::remove_file(&report);
    let mut cmd = Command::new("timeout");
    // A bound from outside: Schemathesis's own --max-time is a budget it
    // always spends.
    cmd.arg("600").arg(st);
    cmd.current_dir(&out)
        .env("HYPOTHESIS_STORAGE_DIRECTORY", out.join("hypothesis"))
        .env("ST_CALLBACK_SECRET", secret)
        .args(["--no-color", "--config-file"])
        .arg(root.join("tests/contract/schemathesis.toml"))
        .args(["run", schema, "--report-json-path"])
        .arg(&report);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let output = cmd.output().expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let ok = output.status.success();
    if !ok {
        eprintln!("--- schemathesis ({name}) ---\n{stdout}");
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    let json = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (ok, json)
}

/// One line of what a run did.
fn summary(name: &str, r: &Value) -> String {
    let failures: Vec<String> = r["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{} {}", f["code"].as_str().unwrap_or("?"), f["count"]))
        .collect();
    format!(
        "schemathesis {name}: {} operations tested of {}, {} cases generated, {} with failures [{}], {} errors",
        r["operations"]["tested"],
        r["operations"]["total"],
        r["test_cases"]["generated"],
        r["test_cases"]["with_failures"],
        failures.join(", "),
        r["errors"].as_array().map_or(0, Vec::len),
    )
}

#[test]
fn schemathesis_finds_nothing_on_either_surface() {
    let Some(st) = schemathesis_bin() else {
        return;
    };
    let mut s = Setup::new();
    s.with_nginx(2);
    s.demo();
    let host = s.start();
    for p in ["demo", "traffic", "phones"] {
        assert_eq!(host.provider_settled(p)["state"], "ready", "{p}");
    }
    // A phone streaming and reporting positions, so its routes have one.
    let mut phone = s.phone(600, "-22.90,-43.20;-22.91,-43.21");
    let id = format!("phones-{}", phone.wait_id(T));
    host.wait_stream(&id, "the phone live", T, |v| v["state"] == "live");

    let secret = s.callback_secret();
    let public = run(
        &st,
        &format!("{}/api/openapi.json", s.nginx_base()),
        None,
        &secret,
        "public",
    );
    // Nothing the public can send ends a phone's session (with the token,
    // an admin's stop may).
    let health = host.get("/healthz").json();
    if health["mobile"]["connected"] != 1 {
        let log = host.log_text();
        for line in log
            .lines()
            .filter(|l| l.contains("mobile") || l.contains(&id))
        {
            eprintln!("{line}");
        }
    }
    assert_eq!(health["mobile"]["connected"], 1, "{health}");
    let private = run(
        &st,
        &format!("{}/api/openapi.json", host.base),
        Some(&s.api_token()),
        &secret,
        "private",
    );
    for (name, (_, r)) in [("public", &public), ("private", &private)] {
        eprintln!("{}", summary(name, r));
    }
    // The public surface documents fewer operations than the private one.
    assert!(
        public.1["operations"]["total"].as_u64() < private.1["operations"]["total"].as_u64(),
        "public {} private {}",
        public.1["operations"]["total"],
        private.1["operations"]["total"]
    );
    assert!(public.0, "{}", summary("public", &public.1));
    assert!(private.0, "{}", summary("private", &private.1));
    // And the host took it all in its stride.
    assert_eq!(host.get("/healthz").json()["status"], "ok");
    for p in ["demo", "traffic", "phones"] {
        assert_eq!(host.provider_settled(p)["state"], "ready", "{p}");
    }
    phone.kill();
}
