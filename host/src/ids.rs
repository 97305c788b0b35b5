//! Provider ids, stream keys and stream ids: the only strings that reach
//! RTMP names, directories, file names and FFmpeg argv, so they are checked
//! here, once, before anything else sees them.
//!
//! A stream id is `<provider>-<key>`: provider ids are `[a-z][a-z0-9_]*`
//! (no `-`, so the first `-` splits the id), keys are `[A-Za-z0-9_.-]+`
//! without a leading dot.

/// Longest provider id.
pub const MAX_PROVIDER_ID: usize = 32;
/// Longest stream key (keeps ids well under file-name limits).
pub const MAX_KEY: usize = 64;

/// [`check_provider_id`] as a regular expression (ECMA, for the OpenAPI
/// document).
pub const PROVIDER_ID_PATTERN: &str = "^[a-z][a-z0-9_]{0,31}$";
/// [`check_key`] as a regular expression.
pub const KEY_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$";
/// [`parse_stream_id`] as a regular expression.
pub const STREAM_ID_PATTERN: &str = "^[a-z][a-z0-9_]{0,31}-[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$";

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a valid provider id.
    #[error("invalid provider id {0:?}: expected [a-z][a-z0-9_]*, at most 32 characters")]
    Provider(String),
    /// Not a valid stream key.
    #[error("invalid stream key {0:?}: expected [A-Za-z0-9_.-]+ without a leading dot, at most 64 characters")]
    Key(String),
    /// Not of the form `<provider>-<key>`.
    #[error("invalid stream id {0:?}: expected <provider>-<key>")]
    Stream(String),
}

/// Checks a provider id.
pub fn check_provider_id(id: &str) -> Result<(), IdError> {
    let mut bytes = id.bytes();
    let ok = id.len() <= MAX_PROVIDER_ID
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError::Provider(truncate(id)))
    }
}

/// Checks a stream key.
pub fn check_key(key: &str) -> Result<(), IdError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdError::Key(truncate(key)))
    }
}

/// Splits and checks a stream id into (provider, key).
pub fn parse_stream_id(id: &str) -> Result<(&str, &str), IdError> {
    let (provider, key) = id
        .split_once('-')
        .ok_or_else(|| IdError::Stream(truncate(id)))?;
    check_provider_id(provider).map_err(|_| IdError::Stream(truncate(id)))?;
    check_key(key).map_err(|_| IdError::Stream(truncate(id)))?;
    Ok((provider, key))
}

/// Makes the stream id of `key` in `provider` (both already checked).
pub fn stream_id(provider: &str, key: &str) -> String {
    format!("{provider}-{key}")
}

/// Bounds what an error message repeats of hostile input.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// `bytes` random bytes from the kernel, as hex: unguessable tokens and
/// secrets (publish tokens, the callback secret).
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut b = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(hex::encode(b))
}

/// [`random_hex`], or, without kernel randomness (a warning; never seen
/// on Linux), hex from the standard hasher's per-process random keys mixed
/// with the clock and a counter: ids and tokens that must not collide.
pub fn unguessable_hex(bytes: usize) -> String {
    random_hex(bytes).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no kernel randomness");
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut out = String::with_capacity(bytes * 2 + 16);
        while out.len() < bytes * 2 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(now);
            h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out.truncate(bytes * 2);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        assert_eq!(parse_stream_id("demo-cam1"), Ok(("demo", "cam1")));
        assert_eq!(parse_stream_id("t_2-a.b-c_D"), Ok(("t_2", "a.b-c_D")));
        assert!(check_provider_id("a").is_ok());
    }

    #[test]
    fn hostile_ids_are_refused() {
        for id in [
            "../x",
            "demo-../x",
            "demo-.hidden",
            "demo-a b",
            "demo-a/b",
            "demo-",
            "-x",
            "Demo-x",
            "demo-a%2fb",
            "demo-a\0",
            "demo-\u{e9}",
            "1demo-x",
            "",
        ] {
            assert!(parse_stream_id(id).is_err(), "{id:?} accepted");
        }
        let long = format!("demo-{}", "a".repeat(65));
        assert!(parse_stream_id(&long).is_err());
        assert!(check_provider_id(&"a".repeat(33)).is_err());
        assert!(check_provider_id("has-dash").is_err());
    }

    #[test]
    fn errors_do_not_echo_unbounded_input() {
        let e = check_key(&"x/".repeat(1000)).unwrap_err().to_string();
        assert!(e.len() < 300);
    }
}
