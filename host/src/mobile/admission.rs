//! Whether a phone may connect, as pure functions: the id it gets, its
//! registered token, its claim on an id that is connected or kept for its
//! phone, and the rate of connections from one address.
//!
//! [`super::session::Phones`] gathers what these look at (the catalog, the
//! instance's tokens, who holds the id, the clock) and keeps their state;
//! the rules themselves are unit-tested here without a host.

use crate::tokens::constant_time_eq;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Longest id a phone may choose (the original's were 24 hex digits).
const MAX_ID_LEN: usize = 64;

/// The window of `[mobile] max_connects_per_minute`.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Why a phone was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `max_sessions` phones are connected.
    #[error("{0} phones are connected ([mobile] max_sessions)")]
    Full(usize),
    /// The id is unusable and new phones are not admitted.
    #[error("phone id {0:?} is not registered and [mobile] allow_unknown is false")]
    Unknown(String),
    /// The phone has a token and did not present it.
    #[error("wrong or missing token for phone {0:?}")]
    Token(String),
    /// The instance did not list the phone in time.
    #[error("instance {0:?} did not list the phone: {1}")]
    NotListed(String, crate::providers::NotServing),
    /// The id is connected, and the newcomer does not hold its secret.
    #[error("phone {0:?} is connected: taking it over needs its session secret")]
    Taken(String),
    /// The id left a moment ago and is kept for its phone.
    #[error("phone {0:?} left {1} s ago and is kept for its session secret for {2} s more")]
    Reserved(String, u64, u64),
    /// Too many sessions from one address.
    #[error("{0} phones are connected from this address ([mobile] max_sessions_per_address)")]
    AddressFull(usize),
    /// Too many connections from one address in a minute.
    #[error(
        "more than {0} connections a minute from this address ([mobile] max_connects_per_minute)"
    )]
    TooFast(u32),
    /// A position for a phone whose secret was not presented.
    #[error("positions of phone {0:?} need its session secret")]
    NotOwner(String),
}

/// At most 64 characters of untrusted text, for a log line.
pub(super) fn show(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The id a phone gets: the one it asks for if usable (and listed, when
/// unknown phones are not admitted), else a new one from `mint` when
/// unknown phones are admitted.
pub(super) fn key_for(
    asked: Option<&str>,
    allow_unknown: bool,
    listed: impl Fn(&str) -> bool,
    mint: impl FnOnce() -> String,
) -> Result<String, Refused> {
    let usable = asked.filter(|i| i.len() <= MAX_ID_LEN && crate::ids::check_key(i).is_ok());
    let key = match usable {
        Some(k) => k.to_string(),
        None if allow_unknown => mint(),
        None => return Err(Refused::Unknown(show(asked.unwrap_or_default()))),
    };
    if !allow_unknown && !listed(&key) {
        return Err(Refused::Unknown(show(&key)));
    }
    Ok(key)
}

/// Checks the token phone `key` presents (`given`) against the one its
/// instance registers for it, if any.
pub(super) fn check_token(
    key: &str,
    registered: Option<&str>,
    given: Option<&str>,
) -> Result<(), Refused> {
    match registered {
        Some(t) if !constant_time_eq(t.as_bytes(), given.unwrap_or_default().as_bytes()) => {
            Err(Refused::Token(show(key)))
        }
        _ => Ok(()),
    }
}

/// Who has an id now.
#[derive(Debug, Clone, Copy)]
pub(super) enum Holder<'a> {
    /// Nobody.
    Free,
    /// A connected phone, with its session secret.
    Connected(&'a str),
    /// A phone that left `ago`, with its last session's secret.
    Departed(&'a str, Duration),
}

/// Whether a newcomer may have `key`: a connected phone, or one that left
/// within the `grace` period, is kept for whoever proves to be it (its
/// session secret `presented`, or its registered token: `token_proves`).
/// Whether a phone proves it is the one holding a session whose secret
/// is `held`: it presents that secret, or its registered token proves it
/// (asked only when the secret does not match). The one rule for a
/// takeover and for a position sent over HTTP.
pub(super) fn proves(
    held: &str,
    presented: Option<&str>,
    token_proves: impl FnOnce() -> bool,
) -> bool {
    presented.is_some_and(|s| constant_time_eq(s.as_bytes(), held.as_bytes())) || token_proves()
}

pub(super) fn check_claim(
    key: &str,
    holder: Holder<'_>,
    presented: Option<&str>,
    token_proves: bool,
    grace: Duration,
) -> Result<(), Refused> {
    let proves = |secret: &str| proves(secret, presented, || token_proves);
    match holder {
        Holder::Connected(secret) if !proves(secret) => Err(Refused::Taken(show(key))),
        Holder::Departed(secret, ago) if ago < grace && !proves(secret) => {
            let ago = ago.as_secs();
            Err(Refused::Reserved(
                show(key),
                ago,
                grace.as_secs().saturating_sub(ago).max(1),
            ))
        }
        _ => Ok(()),
    }
}

/// Connections counted per address and minute (`[mobile]
/// max_connects_per_minute`).
#[derive(Debug, Default)]
pub(super) struct ConnectRate(HashMap<IpAddr, (Instant, u32)>);

impl ConnectRate {
    /// Counts a connection from `addr` at `now`; refuses one beyond `max`
    /// in its minute (0: no limit).
    pub(super) fn count(&mut self, addr: IpAddr, now: Instant, max: u32) -> Result<(), Refused> {
        if max == 0 {
            return Ok(());
        }
        let (start, n) = self.0.entry(addr).or_insert((now, 0));
        if now.duration_since(*start) >= RATE_WINDOW {
            *start = now;
            *n = 0;
        }
        *n += 1;
        if *n > max {
            return Err(Refused::TooFast(max));
        }
        Ok(())
    }

    /// Forgets the minutes that are over at `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        self.0
            .retain(|_, (start, _)| now.duration_since(*start) < RATE_WINDOW);
    }

    /// Addresses counted.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_or_else_the_token_proves_a_phone() {
        assert!(proves("s3", Some("s3"), || panic!("the secret is enough")));
        assert!(proves("s3", Some("other"), || true));
        assert!(proves("s3", None, || true));
        assert!(!proves("s3", Some("other"), || false));
        assert!(!proves("s3", None, || false));
        assert!(!proves("s3", Some(""), || false));
    }

    fn mint() -> String {
        "0123456789abcdef01234567".into()
    }

    #[test]
    fn a_phone_gets_its_id_or_a_new_one_when_unknown_phones_are_admitted() {
        let none = |_: &str| false;
        assert_eq!(
            key_for(Some("van1"), true, none, mint).as_deref(),
            Ok("van1")
        );
        assert_eq!(key_for(None, true, none, mint), Ok(mint()));
        // Unusable ids (path tricks, too long) get a new id, never used.
        assert_eq!(key_for(Some("../x"), true, none, mint), Ok(mint()));
        let long = "a".repeat(65);
        assert_eq!(key_for(Some(&long), true, none, mint), Ok(mint()));
    }

    #[test]
    fn only_listed_phones_connect_when_unknown_phones_are_not_admitted() {
        let listed = |k: &str| k == "van1";
        assert_eq!(
            key_for(Some("van1"), false, listed, mint).as_deref(),
            Ok("van1")
        );
        assert_eq!(
            key_for(Some("van2"), false, listed, mint),
            Err(Refused::Unknown("van2".into()))
        );
        assert!(matches!(
            key_for(None, false, listed, mint),
            Err(Refused::Unknown(_))
        ));
        // What a refusal echoes of an id is bounded.
        let long = "b".repeat(500);
        match key_for(Some(&long), false, listed, mint) {
            Err(Refused::Unknown(shown)) => assert_eq!(shown.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_registered_token_must_be_presented() {
        assert_eq!(check_token("van1", None, None), Ok(()));
        assert_eq!(check_token("van1", Some("t0k"), Some("t0k")), Ok(()));
        assert_eq!(
            check_token("van1", Some("t0k"), Some("nope")),
            Err(Refused::Token("van1".into()))
        );
        assert_eq!(
            check_token("van1", Some("t0k"), None),
            Err(Refused::Token("van1".into()))
        );
    }

    #[test]
    fn a_connected_phone_is_taken_over_only_by_its_secret_or_token() {
        let grace = Duration::from_secs(30);
        let held = Holder::Connected("s3cret-of-the-phone");
        assert_eq!(
            check_claim("p", held, None, false, grace),
            Err(Refused::Taken("p".into()))
        );
        assert_eq!(
            check_claim("p", held, Some("guess"), false, grace),
            Err(Refused::Taken("p".into()))
        );
        assert_eq!(
            check_claim("p", held, Some("s3cret-of-the-phone"), false, grace),
            Ok(())
        );
        assert_eq!(check_claim("p", held, None, true, grace), Ok(()));
        assert_eq!(check_claim("p", Holder::Free, None, false, grace), Ok(()));
    }

    #[test]
    fn a_departed_phone_s_id_is_kept_for_the_grace_period() {
        let grace = Duration::from_secs(30);
        let left = |secs| Holder::Departed("s3cret", Duration::from_secs(secs));
        assert_eq!(
            check_claim("p", left(10), None, false, grace),
            Err(Refused::Reserved("p".into(), 10, 20))
        );
        assert_eq!(
            check_claim("p", left(10), Some("s3cret"), false, grace),
            Ok(())
        );
        // After the grace period the id is anyone's again.
        assert_eq!(check_claim("p", left(30), None, false, grace), Ok(()));
    }

    #[test]
    fn connections_are_counted_per_address_and_minute() {
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "192.0.2.2".parse().expect("address");
        let mut rate = ConnectRate::default();
        for _ in 0..3 {
            assert_eq!(rate.count(a, t0, 3), Ok(()));
        }
        assert_eq!(rate.count(a, t0, 3), Err(Refused::TooFast(3)));
        assert_eq!(rate.count(b, t0, 3), Ok(()));
        // The next minute starts over.
        assert_eq!(rate.count(a, t0 + RATE_WINDOW, 3), Ok(()));
        rate.expire(t0 + RATE_WINDOW + Duration::from_secs(1));
        assert_eq!(rate.len(), 1);
        // 0: no limit.
        let mut free = ConnectRate::default();
        for _ in 0..1000 {
            assert_eq!(free.count(a, t0, 0), Ok(()));
        }
    }
}
