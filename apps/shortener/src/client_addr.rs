//! The client's address behind reverse proxies.
//!
//! Only when the TCP peer is a trusted proxy (`SHORTENER_TRUSTED_PROXIES`)
//! are its headers believed: the client is the rightmost address in
//! `X-Forwarded-For` (or, without it, in RFC 7239 `Forwarded`) that is not
//! itself a trusted proxy. Anyone else could write any address there, so
//! from an untrusted peer the headers are ignored and the peer is the
//! client. The rate limits and `visitor_key` use this address.

use std::net::IpAddr;

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of CIDRs (a bare address is a /32 or /128).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpAddr>()
                    .map(|ip| IpNet::from(canonical(ip)))
                    .or_else(|_| part.parse::<IpNet>())
                    .map_err(|_| format!("{part:?} is not a CIDR (e.g. 10.0.0.0/8, ::1/128)"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the request's forwarding headers,
    /// and whether `peer` is a trusted proxy (one check serves both).
    pub fn client(
        &self,
        peer: IpAddr,
        forwarded_for: Option<&str>,
        forwarded: Option<&str>,
    ) -> (IpAddr, bool) {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return (peer, false);
        }
        let hops: Vec<Option<IpAddr>> = match (forwarded_for, forwarded) {
            (Some(list), _) => list.split(',').map(parse_hop).collect(),
            (None, Some(list)) => list.split(',').map(forwarded_for_of).collect(),
            (None, None) => return (peer, true),
        };
        // From the nearest hop outwards; the first one not trusted is the
        // client. A hop that does not parse ends the walk: nothing beyond
        // it can be believed.
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.contains(*ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        (client, true)
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]`, `[::1]:80`, optionally quoted.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok().map(canonical);
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok().map(canonical)
}

/// The `for=` of one element of a `Forwarded` header.
fn forwarded_for_of(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_hop(value))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    impl TrustedProxies {
        fn client_ip(&self, peer: IpAddr, xff: Option<&str>, fwd: Option<&str>) -> IpAddr {
            self.client(peer, xff, fwd).0
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("203.0.113.9"), Some("1.1.1.1"), None),
            ip("203.0.113.9")
        );
        let some = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            some.client_ip(ip("203.0.113.9"), Some("1.1.1.1"), None),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let peer = ip("127.0.0.1");
        // A client that forged its own header gets its real address taken.
        assert_eq!(
            trusted.client_ip(peer, Some("6.6.6.6, 198.51.100.7, 10.1.1.1"), None),
            ip("198.51.100.7")
        );
        assert_eq!(
            trusted.client_ip(peer, Some("198.51.100.7:5555"), None),
            ip("198.51.100.7")
        );
        assert_eq!(
            trusted.client_ip(peer, Some("[2001:db8::1]:443"), None),
            ip("2001:db8::1")
        );
        // Only trusted hops: the farthest is the client.
        assert_eq!(
            trusted.client_ip(peer, Some("10.0.0.5, 10.0.0.6"), None),
            ip("10.0.0.5")
        );
        // Garbage ends the walk at the last hop that was believed.
        assert_eq!(
            trusted.client_ip(peer, Some("nonsense, 10.0.0.6"), None),
            ip("10.0.0.6")
        );
        assert_eq!(trusted.client_ip(peer, None, None), peer);
    }

    #[test]
    fn rfc_7239_forwarded_is_read_without_x_forwarded_for() {
        let trusted = TrustedProxies::parse("127.0.0.1/32").unwrap();
        let header = r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#;
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), None, Some(header)),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), Some("198.51.100.1"), Some(header)),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn bad_cidrs_are_named() {
        let error = TrustedProxies::parse("10.0.0.0/8, nope").unwrap_err();
        assert!(error.contains("nope"), "{error}");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(
            TrustedProxies::parse("::ffff:127.0.0.1")
                .unwrap()
                .contains(ip("127.0.0.1"))
        );
    }
}
