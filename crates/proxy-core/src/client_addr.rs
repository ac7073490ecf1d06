//! Which address a request came from. Behind a reverse proxy the connection's peer is
//! the proxy; with the proxy trusted (`--trusted-proxy`), the client is the address it
//! reports in `X-Forwarded-For`. Used for the audit trail's `client_ip` and for the
//! dashboard's login limiter, so both name the same client.

use std::net::IpAddr;

use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Addresses (`10.0.0.5`, `::1`) and networks (`10.0.0.0/8`, `fd00::/8`); the error
    /// names the entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut networks = Vec::new();
        for entry in entries
            .iter()
            .map(|e| e.as_ref().trim())
            .filter(|e| !e.is_empty())
        {
            let network = match entry.parse::<IpNet>() {
                Ok(network) => network,
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("{entry:?} is not an IP address or network")),
                },
            };
            networks.push(network);
        }
        Ok(Self(networks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; else, walking
    /// `X-Forwarded-For` from its end (the hop nearest this server), the first address
    /// that is not a trusted proxy. An entry that is no address ends the walk at the
    /// hop that reported it: what lies beyond cannot be believed.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops = forwarded_for.unwrap_or_default().split(',').rev();
        for hop in hops.map(str::trim).filter(|h| !h.is_empty()) {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    hop.rsplit_once(':')?.0.parse().ok()
}

/// IPv4 as itself, not as an IPv4-mapped IPv6 address (a dual-stack listener's form).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.1"), Some("203.0.113.7")), ip("127.0.0.1"));
        let local = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).expect("valid");
        assert_eq!(
            local.client(ip("127.0.0.1"), Some("203.0.113.7")),
            ip("203.0.113.7")
        );
        assert_eq!(
            local.client(ip("198.51.100.1"), Some("203.0.113.7")),
            ip("198.51.100.1"),
            "an untrusted peer's header is its own invention"
        );
        assert_eq!(local.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
    }

    #[test]
    fn the_walk_skips_trusted_hops_from_the_end() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).expect("valid");
        // A client that forged a first entry: the hop nearest us is believed, no further.
        let header = "6.6.6.6, 203.0.113.7, 10.1.1.1";
        assert_eq!(proxies.client(ip("10.0.0.2"), Some(header)), ip("203.0.113.7"));
        assert_eq!(
            proxies.client(ip("10.0.0.2"), Some("garbage, 10.1.1.1")),
            ip("10.1.1.1"),
            "past an entry that is no address nothing is believed"
        );
        assert_eq!(
            proxies.client(ip("10.0.0.2"), Some("203.0.113.9:5050")),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.2"), Some("[2001:db8::1]:443")),
            ip("2001:db8::1")
        );
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.2"), Some("203.0.113.7")),
            ip("203.0.113.7"),
            "a dual-stack peer is seen as IPv4"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let error = TrustedProxies::parse(&["10.0.0.0/8", "proxy.local"]).expect_err("invalid");
        assert!(error.contains("proxy.local"), "{error}");
        assert!(TrustedProxies::parse(&["", " ::1 "]).is_ok_and(|t| !t.is_empty()));
    }
}
