//! What kind of address an IP address is: the one classification both
//! outbound gates (a provider's `http-get` and FFmpeg's sources) use to
//! refuse loopback, private, link-local and other non-public addresses.

use std::net::{IpAddr, Ipv4Addr};

/// The kind of a non-public address, `None` for a public one.
pub fn address_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_unspecified() || o[0] == 0 {
                Some("an unspecified (\"this network\")")
            } else if v4.is_loopback() {
                Some("a loopback")
            } else if v4.is_private() {
                Some("a private")
            } else if v4.is_link_local() {
                Some("a link-local")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                // 100.64.0.0/10.
                Some("a carrier-grade NAT")
            } else if v4.is_multicast() {
                Some("a multicast")
            } else if v4.is_broadcast() || o[0] >= 240 {
                Some("a reserved")
            } else if v4.is_documentation() {
                Some("a documentation")
            } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
                // 198.18.0.0/15, benchmarking.
                Some("a benchmarking")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                // 192.0.0.0/24, IETF protocol assignments.
                Some("a reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return address_kind(IpAddr::V4(v4));
            }
            if v6.is_unspecified() {
                Some("an unspecified")
            } else if v6.is_loopback() {
                Some("a loopback")
            } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                // 64:ff9b::/96, NAT64: judged by the IPv4 address inside.
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                address_kind(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            } else if s[0] == 0x2002 {
                // 2002::/16, 6to4: judged by the IPv4 address inside.
                let [a, b] = s[1].to_be_bytes();
                let [c, d] = s[2].to_be_bytes();
                address_kind(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
                // ::a.b.c.d, IPv4-compatible (deprecated).
                Some("a reserved")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("a unique-local")
            } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
                Some("a link-local")
            } else if (s[0] & 0xff00) == 0xff00 {
                Some("a multicast")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("a documentation")
            } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
                // 100::/64, discard-only.
                Some("a reserved")
            } else {
                None
            }
        }
    }
}

/// Whether `ip` is a public (globally routable) address.
pub fn is_public(ip: IpAddr) -> bool {
    address_kind(ip).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_kinds() {
        for ip in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "::127.0.0.1",
        ] {
            assert!(address_kind(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2001:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(address_kind(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
