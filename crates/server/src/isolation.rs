//! Observing network isolation (never copied from `REDIS_NETWORK_ISOLATION`).
//!
//! What is checked, exactly: the Redis host from `REDIS_URL` is resolved; isolation holds when it
//! resolves to at least one address and **every** address is
//! * a loopback address (reachable from this host only), or
//! * a private or link-local IPv4 address (RFC 1918, RFC 3927) or unique-local/link-local IPv6
//!   address, **and** reached through a directly connected network of this host (a route with no
//!   gateway in `/proc/net/route`) on an interface that does not carry the default route.
//!
//! In the compose stack the Redis container is on an `internal: true` network that the backend
//! joins as a second interface, while its default route leaves through the external network: the
//! check passes. A Redis reached through a gateway, over the default-route interface, or at a public
//! address fails it. `REDIS_NETWORK_ISOLATION=true` is reported as confirmed only when the check
//! passes.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

/// The observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Isolation {
    /// The check passed.
    pub isolated: bool,
    /// What was seen, per address.
    pub detail: String,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    iface_default: bool,
    dest: u32,
    mask: u32,
    gateway: u32,
}

fn routes() -> (Vec<(String, Route)>, Option<String>) {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let mut out = Vec::new();
    let mut default_iface = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(dest), Some(gw), Some(mask)) =
            (f.first(), f.get(1), f.get(2), f.get(7))
        else {
            continue;
        };
        let parse = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::from_be);
        let (Some(dest), Some(gateway), Some(mask)) = (parse(dest), parse(gw), parse(mask)) else {
            continue;
        };
        if dest == 0 && mask == 0 {
            default_iface = Some((*iface).to_owned());
        }
        out.push((
            (*iface).to_owned(),
            Route {
                iface_default: false,
                dest,
                mask,
                gateway,
            },
        ));
    }
    if let Some(d) = &default_iface {
        for (iface, r) in &mut out {
            r.iface_default = iface == d;
        }
    }
    (out, default_iface)
}

fn private_v4(ip: Ipv4Addr) -> bool {
    ip.is_private() || ip.is_link_local()
}

fn classify(ip: IpAddr, table: &[(String, Route)]) -> Result<String, String> {
    if ip.is_loopback() {
        return Ok(format!("{ip}: loopback"));
    }
    match ip {
        IpAddr::V4(v4) => {
            if !private_v4(v4) {
                return Err(format!("{ip}: not a private address"));
            }
            // Longest-prefix match on host-order integers (`routes` converts /proc's native-endian
            // hex of network-order bytes with `u32::from_be`).
            let addr = u32::from(v4);
            let best = table
                .iter()
                .filter(|(_, r)| addr & r.mask == r.dest & r.mask)
                .max_by_key(|(_, r)| r.mask.count_ones());
            match best {
                Some((iface, r)) if r.gateway == 0 && !r.iface_default && r.mask != 0 => Ok(
                    format!("{ip}: directly connected on {iface}, not the default-route interface"),
                ),
                Some((iface, r)) if r.gateway == 0 && r.mask != 0 => Err(format!(
                    "{ip}: on {iface}, which also carries the default route"
                )),
                Some((iface, _)) => Err(format!("{ip}: reached through a gateway on {iface}")),
                None => Err(format!("{ip}: no route")),
            }
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments()[0];
            if (seg & 0xfe00) == 0xfc00 || (seg & 0xffc0) == 0xfe80 {
                Ok(format!("{ip}: unique-local or link-local IPv6"))
            } else {
                Err(format!("{ip}: not a private address"))
            }
        }
    }
}

/// Resolves `host` and checks every address (see the module docs).
pub async fn observe(host: &str, port: u16) -> Isolation {
    let addrs: Vec<IpAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(it) => it.map(|a| a.ip()).collect(),
        Err(_) => {
            return Isolation {
                isolated: false,
                detail: format!("{host} does not resolve"),
            };
        }
    };
    if addrs.is_empty() {
        return Isolation {
            isolated: false,
            detail: format!("{host} resolves to nothing"),
        };
    }
    let (table, _) = routes();
    let mut details = Vec::new();
    let mut isolated = true;
    for ip in addrs {
        match classify(ip, &table) {
            Ok(d) => details.push(d),
            Err(d) => {
                isolated = false;
                details.push(d);
            }
        }
    }
    Isolation {
        isolated,
        detail: details.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A /proc/net/route field (native-endian hex of network-order bytes) as `routes()` parses it.
    fn proc_hex(h: &str) -> u32 {
        u32::from_be(u32::from_str_radix(h, 16).unwrap())
    }

    fn route(iface: &str, default: bool, dest: &str, mask: &str, gateway: &str) -> (String, Route) {
        let r = Route {
            iface_default: default,
            dest: proc_hex(dest),
            mask: proc_hex(mask),
            gateway: proc_hex(gateway),
        };
        (iface.to_owned(), r)
    }

    #[test]
    fn public_and_gatewayed_addresses_are_not_isolated() {
        // Lines as /proc/net/route prints them on x86_64: a backend with the frontend on eth0
        // (default route via 192.168.1.1) and the internal network 172.30.0.0/16 on eth1.
        let table = vec![
            route("eth0", true, "00000000", "00000000", "0101A8C0"),
            route("eth0", true, "0001A8C0", "00FFFFFF", "00000000"),
            route("eth1", false, "00001EAC", "0000FFFF", "00000000"),
        ];
        assert!(classify("127.0.0.1".parse().unwrap(), &table).is_ok());
        let internal = classify("172.30.0.5".parse().unwrap(), &table);
        assert!(
            internal.is_ok(),
            "internal network on a non-default interface: {internal:?}"
        );
        assert!(
            classify("192.168.1.7".parse().unwrap(), &table).is_err(),
            "on the default-route interface"
        );
        assert!(
            classify("10.9.9.9".parse().unwrap(), &table).is_err(),
            "through a gateway"
        );
        assert!(
            classify("8.8.8.8".parse().unwrap(), &table).is_err(),
            "public"
        );
    }
}
