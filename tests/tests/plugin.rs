//! The plugin runtime on real components: the compile cache and call
//! measurements, through the host library.

use dss_e2e::*;
use dss_host::config::Limits;
use dss_host::plugin::cache::Origin;
use dss_host::plugin::module::Grant;
use dss_host::plugin::{PluginEngine, ProviderModule};

#[test]
fn a_second_engine_loads_from_the_compile_cache() {
    let cache = tempfile::tempdir().expect("tempdir");
    let limits = Limits::default();
    let path = module("static-list");
    let first = PluginEngine::new(Some(cache.path().to_path_buf())).expect("engine");
    let m = ProviderModule::load(&first, &path, &limits).expect("load");
    assert_eq!(m.origin, Origin::Compiled);
    assert_eq!(m.info.name, "static-list");
    let second = PluginEngine::new(Some(cache.path().to_path_buf())).expect("engine");
    let m2 = ProviderModule::load(&second, &path, &limits).expect("load");
    assert_eq!(
        m2.origin,
        Origin::Cached,
        "no recompilation on a second start"
    );
    assert_eq!(m2.hash, m.hash);

    // A corrupt cache entry costs a compilation, not a failure. (Replaced
    // whole, as anything that writes there must: the modules loaded above
    // still map the old files, which must never be rewritten in place.)
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        let tmp = path.with_extension("garbage");
        std::fs::write(&tmp, b"garbage").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    let third = PluginEngine::new(Some(cache.path().to_path_buf())).expect("engine");
    let m3 = ProviderModule::load(&third, &path, &limits).expect("load");
    assert_eq!(m3.origin, Origin::Compiled);
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_run_on_fresh_instances_with_reports() {
    let engine = PluginEngine::new(None).expect("engine");
    let m = ProviderModule::load(&engine, &module("mobile-ts"), &Limits::default()).expect("load");
    let grant = Grant::new("phones", Limits::default());
    let out = tokio::task::spawn_blocking(move || {
        let cfg = r#"{"phones":[{"key":"a"}]}"#;
        let (streams, report) = m.list_streams(&grant, cfg).expect("list");
        assert_eq!(streams.len(), 1);
        assert!(report.peak_memory > 0);
        let (meta, _) = m
            .transform_metadata(
                &grant,
                cfg,
                "a",
                r#"{"type":"coord","content":{"latitude":-22.9,"longitude":-43.2}}"#,
            )
            .expect("transform");
        meta
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["geo"]["lat"], -22.9);
    assert!(
        v["time_ms"].as_u64().unwrap() > 1_600_000_000_000,
        "host clock"
    );
}
