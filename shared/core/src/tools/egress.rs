//! Where a tool may send requests: the SSRF guard. In AWS a tool endpoint must be HTTPS on
//! a public address; loopback, link-local (the instance metadata service among them),
//! private, shared (CGNAT), multicast and reserved addresses are refused, whether written
//! as an address or reached through a name (the HTTP adapter checks every address a name
//! resolves to before it connects, and follows no redirects). On one machine loopback is
//! allowed too, and plain HTTP, for a local n8n.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressPolicy {
    pub allow_loopback: bool,
    pub allow_http: bool,
}

impl EgressPolicy {
    /// AWS: public HTTPS endpoints only.
    pub const PUBLIC: Self = Self { allow_loopback: false, allow_http: false };
    /// One machine: also loopback, and HTTP.
    pub const EMBEDDED: Self = Self { allow_loopback: true, allow_http: true };

    /// Whether a request may go to `ip`.
    pub fn allows(self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.allows_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.allows_v4(v4),
                None => self.allows_v6(v6),
            },
        }
    }

    fn allows_v4(self, ip: Ipv4Addr) -> bool {
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        let [a, b, ..] = ip.octets();
        let shared = a == 100 && (64..128).contains(&b); // 100.64.0.0/10, carrier-grade NAT
        let benchmarking = a == 198 && (b == 18 || b == 19);
        !(ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip.is_documentation()
            || shared
            || benchmarking
            || a == 0
            || a >= 240)
    }

    fn allows_v6(self, ip: Ipv6Addr) -> bool {
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        let first = ip.segments()[0];
        let unique_local = first & 0xfe00 == 0xfc00;
        let link_local = first & 0xffc0 == 0xfe80;
        let documentation = first == 0x2001 && ip.segments()[1] == 0x0db8;
        let nat64 = first == 0x0064 && ip.segments()[1] == 0xff9b;
        !(ip.is_unspecified() || ip.is_multicast() || unique_local || link_local || documentation || nat64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_policy_refuses_every_internal_address() {
        for refused in [
            "127.0.0.1",
            "10.0.0.8",
            "172.16.4.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!EgressPolicy::PUBLIC.allows(refused.parse().unwrap()), "{refused}");
        }
        for allowed in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(EgressPolicy::PUBLIC.allows(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn one_machine_allows_loopback_and_nothing_else_internal() {
        assert!(EgressPolicy::EMBEDDED.allows("127.0.0.1".parse().unwrap()));
        assert!(EgressPolicy::EMBEDDED.allows("::1".parse().unwrap()));
        assert!(!EgressPolicy::EMBEDDED.allows("169.254.169.254".parse().unwrap()));
        assert!(!EgressPolicy::EMBEDDED.allows("10.1.2.3".parse().unwrap()));
    }
}
