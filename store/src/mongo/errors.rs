//! What a driver error means for the store: an outage (queue and retry),
//! refused credentials, or a refusal for good; and the duplicate-key
//! refusal a racing upsert gets.

use mongodb::error::{ErrorKind, WriteFailure};

/// Server error codes that mean "not reachable right now": the driver's
/// retryable-read codes (host unreachable/not found, network timeout,
/// shutdown, stepdown, not primary, …).
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

/// Server error codes that mean the credentials or a privilege were
/// refused: 13 Unauthorized, 18 AuthenticationFailed.
const AUTH_CODES: &[i32] = &[13, 18];

/// What a driver error means for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Unreachable now: queue and retry.
    Transient,
    /// Credentials or a privilege refused: the database answered, but an
    /// operator may fix it, so acknowledged writes are kept and retried.
    Auth,
    /// Refused for good.
    Permanent,
}

/// The server error codes a driver error carries.
fn codes(e: &mongodb::error::Error) -> Vec<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => vec![c.code],
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => vec![w.code],
        ErrorKind::Write(WriteFailure::WriteError(w)) => vec![w.code],
        ErrorKind::InsertMany(i) => i
            .write_errors
            .iter()
            .flatten()
            .map(|w| w.code)
            .chain(i.write_concern_error.iter().map(|w| w.code))
            .collect(),
        _ => Vec::new(),
    }
}

/// Classifies a driver error. Refused credentials are checked first: they
/// are no network blip, and must not read as "unreachable".
pub(super) fn classify(e: &mongodb::error::Error) -> Class {
    let codes = codes(e);
    if matches!(&*e.kind, ErrorKind::Authentication { .. })
        || codes.iter().any(|c| AUTH_CODES.contains(c))
    {
        return Class::Auth;
    }
    if e.contains_label("RetryableWriteError") || e.contains_label("RetryableError") {
        return Class::Transient;
    }
    let transient = match &*e.kind {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. } => true,
        // Of an insert_many, only a write concern error can be an outage.
        ErrorKind::InsertMany(i) => i
            .write_concern_error
            .as_ref()
            .is_some_and(|w| TRANSIENT_CODES.contains(&w.code)),
        _ => codes.iter().any(|c| TRANSIENT_CODES.contains(c)),
    };
    if transient {
        Class::Transient
    } else {
        Class::Permanent
    }
}

/// A duplicate-key refusal: MongoDB's code 11000, or CongoDB's "Duplicate
/// key error" (code 1).
pub(super) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    codes(e).contains(&11000) || e.to_string().contains("Duplicate key")
}

#[cfg(test)]
mod tests {
    use super::{classify, Class};
    use bson::doc;
    use mongodb::error::{CommandError, Error, ErrorKind, IndexedWriteError, WriteError};
    use mongodb::error::{InsertManyError, WriteConcernError, WriteFailure};

    /// A server's answer with this error code, as the driver reports it.
    fn command(code: i32, name: &str) -> Error {
        let e: CommandError = bson::from_document(doc! {
            "code": code, "codeName": name, "errmsg": format!("{name} (test)"),
        })
        .expect("a command error");
        Error::from(ErrorKind::Command(e))
    }

    fn write(code: i32) -> Error {
        let e: WriteError =
            bson::from_document(doc! {"code": code, "errmsg": "test"}).expect("a write error");
        Error::from(ErrorKind::Write(WriteFailure::WriteError(e)))
    }

    /// A write concern error; its labels become the error's.
    fn write_concern(code: i32, labels: &[&str]) -> Error {
        let e: WriteConcernError = bson::from_document(doc! {
            "code": code, "codeName": "test", "errmsg": "test", "errorLabels": labels,
        })
        .expect("a write concern error");
        Error::from(ErrorKind::Write(WriteFailure::WriteConcernError(e)))
    }

    fn insert_many(code: i32) -> Error {
        let w: IndexedWriteError =
            bson::from_document(doc! {"index": 0, "code": code, "errmsg": "test"})
                .expect("an indexed write error");
        let e: InsertManyError =
            bson::from_document(doc! {"writeErrors": [bson::to_bson(&w).expect("bson")]})
                .expect("an insert_many error");
        Error::from(ErrorKind::InsertMany(e))
    }

    #[test]
    fn refused_credentials_are_auth_failures_not_outages() {
        assert_eq!(classify(&command(18, "AuthenticationFailed")), Class::Auth);
        assert_eq!(classify(&command(13, "Unauthorized")), Class::Auth);
        assert_eq!(classify(&write(13)), Class::Auth);
        assert_eq!(classify(&insert_many(13)), Class::Auth);
        // Still auth when the server also labels it retryable.
        let e = write_concern(13, &["RetryableWriteError"]);
        assert!(e.contains_label("RetryableWriteError"));
        assert_eq!(classify(&e), Class::Auth);
    }

    #[test]
    fn outages_are_transient_and_refusals_permanent() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&Error::from(io)), Class::Transient);
        assert_eq!(
            classify(&command(91, "ShutdownInProgress")),
            Class::Transient
        );
        assert_eq!(
            classify(&command(10107, "NotWritablePrimary")),
            Class::Transient
        );
        assert_eq!(classify(&write(11600)), Class::Transient);
        assert_eq!(
            classify(&write_concern(64, &["RetryableWriteError"])),
            Class::Transient
        );
        assert_eq!(classify(&write_concern(64, &[])), Class::Permanent);

        assert_eq!(classify(&command(2, "BadValue")), Class::Permanent);
        assert_eq!(classify(&write(11000)), Class::Permanent);
        assert_eq!(classify(&insert_many(11000)), Class::Permanent);
        assert_eq!(
            classify(&command(121, "DocumentValidationFailure")),
            Class::Permanent
        );
    }
}
