//! The MongoDB test server (CongoDB in CI), when there is one.

/// The MongoDB URL of the test server (`MONGO_TEST_URI`) with database
/// `db`, or `None` when no server is configured. With `CI=true` a missing
/// server is an error, not a skip.
pub fn mongo_url(db: &str) -> Option<String> {
    let Ok(uri) = std::env::var("MONGO_TEST_URI") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but MONGO_TEST_URI is not set: .ci/run must start CongoDB"
        );
        eprintln!("MONGO_TEST_URI not set: skipping the MongoDB part");
        return None;
    };
    let (base, query) = uri.split_once('?').unwrap_or((&uri, ""));
    let host = base.trim_end_matches('/').trim_start_matches("mongodb://");
    let host = host.split('/').next().unwrap_or(host);
    Some(format!("mongodb://{host}/{db}?{query}"))
}
