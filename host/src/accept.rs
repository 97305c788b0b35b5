//! What every listener of the host (the API, the mobile ingest) does when
//! accepting a connection fails.

use std::io;
use std::time::Duration;

/// After an accept error that is not about one connection (out of file
/// descriptors), the loop waits this long before accepting again rather
/// than spinning; connections closing in the meantime free descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Logs an accept error; waits a little when it is not about a single
/// connection (no file descriptors left).
pub async fn on_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}
