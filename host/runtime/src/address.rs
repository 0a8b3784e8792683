//! Classification of IP addresses that components must not reach through a
//! wildcard allow-list entry: loopback, private, link-local (which includes
//! the 169.254.169.254 cloud metadata service), shared, multicast and
//! reserved ranges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Returns the class of a restricted address (for logs and errors), or
/// `None` when components may reach it.
pub(crate) fn restricted_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

/// Reports whether `ip` is link-local or a known cloud metadata address.
/// Such addresses are rejected for host names even when an allow-list entry
/// names the host, so a DNS answer that points at the metadata service gains
/// nothing. Only an entry with the IP literal itself reaches them.
pub(crate) fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_link_local_or_metadata(IpAddr::V4(v4)),
            None => {
                (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            }
        },
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.0.0/16, home of 169.254.169.254 (instance metadata).
        Some("link-local or metadata")
    } else if a == 100 && (64..=127).contains(&b) {
        // 100.64.0.0/10 carrier-grade NAT; 100.100.100.200 is a metadata address.
        Some("shared address space")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol assignments")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

fn restricted_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) addresses
    // reach the embedded IPv4 address, so they inherit its class.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return restricted_v4(v4);
    }
    let segments = ip.segments();
    if segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6] == [0, 0, 0, 0] {
        let [_, _, _, _, _, _, hi, lo] = segments;
        return restricted_v4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        ));
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (segments[0] & 0xfe00) == 0xfc00 {
        // fc00::/7 unique local, including fd00:ec2::254 (metadata).
        Some("private")
    } else if (segments[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        Some("documentation")
    } else if segments[0..6] == [0, 0, 0, 0, 0, 0] {
        // Deprecated IPv4-compatible addresses (::a.b.c.d).
        Some("reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        restricted_reason(s.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_restricted() {
        for addr in [
            "127.0.0.1",
            "127.8.8.8",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
        ] {
            assert!(reason(addr).is_some(), "{addr} should be restricted");
        }
    }

    #[test]
    fn metadata_addresses_are_recognised() {
        for addr in [
            "169.254.169.254",
            "100.100.100.200",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_link_local_or_metadata(addr.parse().unwrap()), "{addr}");
        }
        for addr in ["127.0.0.1", "10.0.0.1", "::1"] {
            assert!(!is_link_local_or_metadata(addr.parse().unwrap()), "{addr}");
        }
    }

    #[test]
    fn public_addresses_are_not_restricted() {
        for addr in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert_eq!(reason(addr), None, "{addr}");
        }
    }
}
