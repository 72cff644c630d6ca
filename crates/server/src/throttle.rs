//! API-key brute force: per-peer failure counting, temporary refusal, aggregated logging.
//!
//! After `limit` failed API-key attempts from one peer within `window`, that peer is blocked for
//! `block` and one `api_rate_limited` event is recorded. A block refuses **failed attempts only**:
//! the key is always checked first (in constant time), a request with a valid key goes through
//! even while its peer is blocked, and one with a missing or wrong key gets 429 with
//! `Retry-After` instead of 401. Behind NAT or docker-proxy every client is one peer, so a block
//! that refused valid keys too would lock the real application out because of another client's
//! (or an attacker's) failures; a valid key is never refused because other requests failed.
//!
//! The trade-off: a block no longer stops a guesser from confirming a right guess. That never
//! mattered: a generated API key carries at least 192 bits of entropy (`validate` flags any key
//! under 32 characters), so a right guess is infeasible at any request rate, blocked or not. What
//! the block bounds is what failed attempts cost: a refused attempt is answered before any
//! handler, writes no log record, and neither extends the block nor counts toward another.
//!
//! Each failed attempt counts as `api_auth_failed`, refused ones during a block included. Log
//! records are aggregated: the first failure of a peer in a window is logged as it happens, the
//! rest of that window as one record with the count (`event=api_auth_failures peer=...
//! count=...`), written when the window ends or the peer is blocked; failures refused during a
//! block write none. So a flood cannot rotate older security records out of the logs.
//!
//! The peer is the socket's address; an IPv6 peer counts by its /64 (one host usually holds a
//! whole /64). Behind a reverse proxy, list the proxy in `SEALCACHE_TRUSTED_PROXIES`: for requests
//! from it the peer is the right-most `X-Forwarded-For` address that is not itself a trusted proxy
//! (entries left of it can be written by the client and are ignored). Without that setting
//! `X-Forwarded-For` is never read. At most [`MAX_PEERS`] peers are tracked (least recently seen
//! dropped first), so memory stays bounded under a flood from many addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::Request;
use ipnet::IpNet;
use lru::LruCache;

/// Peers tracked at once.
pub const MAX_PEERS: usize = 16_384;

/// The throttle's settings.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures per window before a peer is blocked.
    pub limit: u32,
    /// The counting window.
    pub window: Duration,
    /// How long a blocked peer is refused.
    pub block: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl ThrottleConfig {
    /// The throttle settings of the server's limits.
    ///
    /// # Errors
    /// A `SEALCACHE_TRUSTED_PROXIES` entry that is neither an address nor a CIDR range.
    pub fn from_limits(limits: &sealcache_settings::ServerLimits) -> Result<Self, String> {
        Ok(Self {
            limit: limits.auth_failure_limit,
            window: limits.auth_failure_window,
            block: limits.auth_block,
            trusted_proxies: Self::parse_proxies(&limits.trusted_proxies)?,
        })
    }

    /// Parses `SEALCACHE_TRUSTED_PROXIES` entries (addresses or CIDR ranges).
    ///
    /// # Errors
    /// The first entry that is neither, by position (never echoing it).
    pub fn parse_proxies(entries: &[String]) -> Result<Vec<IpNet>, String> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "SEALCACHE_TRUSTED_PROXIES entry {} is not an IP address or CIDR range",
                            i + 1
                        )
                    })
            })
            .collect()
    }
}

#[derive(Debug)]
struct Peer {
    window_start: Instant,
    failures: u32,
    /// Failures of this window not yet in a log record.
    unlogged: u64,
}

/// What the throttle says about a failed attempt's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not blocked: record the failure ([`AuthThrottle::failure`]) and answer 401.
    Allow,
    /// Blocked for this long still: answer 429.
    Blocked(Duration),
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The first failure of the peer's window: log it as it happens.
    pub log_now: bool,
    /// This failure blocked the peer: record one `api_rate_limited` event.
    pub blocked: bool,
}

/// Per-peer failure state.
#[derive(Debug)]
pub struct AuthThrottle {
    config: ThrottleConfig,
    peers: Mutex<LruCache<IpAddr, Peer>>,
    /// Blocked peers and until when, apart from the failure table so that no flood of other
    /// addresses can evict a block (bounded by [`MAX_PEERS`] too; expired blocks go first).
    blocks: Mutex<HashMap<IpAddr, Instant>>,
    /// Entries in `blocks`: zero means no request needs a lock.
    blocked: AtomicUsize,
}

impl AuthThrottle {
    /// A throttle with `config`.
    #[must_use]
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            peers: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_PEERS).unwrap_or(NonZeroUsize::MIN),
            )),
            blocks: Mutex::new(HashMap::new()),
            blocked: AtomicUsize::new(0),
        }
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<IpAddr, Peer>> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The peer a request counts against (see the module docs); `None` without a socket address
    /// (a request made in-process, as in tests).
    #[must_use]
    pub fn peer<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let socket = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip();
        let trusted = |ip: &IpAddr| self.config.trusted_proxies.iter().any(|n| n.contains(ip));
        let mut peer = socket;
        if trusted(&socket) {
            let entries: Vec<&str> = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .collect();
            // From the right: each hop was appended by the one after it. Stop at the first hop
            // that is not a trusted proxy, or at anything unreadable (then the last trusted hop
            // counts: what lies left of it cannot be believed).
            for entry in entries.into_iter().rev() {
                let Some(hop) = parse_hop(entry) else {
                    break;
                };
                peer = hop;
                if !trusted(&hop) {
                    break;
                }
            }
        }
        Some(bucket(peer))
    }

    /// Whether any peer is blocked now (one atomic read: the common case needs nothing more).
    #[must_use]
    pub fn any_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) > 0
    }

    /// Whether `peer` is blocked. Asked only for a request whose key failed: a valid key is never
    /// refused because of a block.
    pub fn check(&self, peer: IpAddr) -> Verdict {
        if self.blocked.load(Ordering::Relaxed) == 0 {
            return Verdict::Allow;
        }
        let now = Instant::now();
        let mut blocks = self.blocks();
        match blocks.get(&peer) {
            Some(&until) if until > now => Verdict::Blocked(until - now),
            Some(_) => {
                blocks.remove(&peer);
                self.blocked.store(blocks.len(), Ordering::Relaxed);
                Verdict::Allow
            }
            None => Verdict::Allow,
        }
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a failed attempt from `peer`.
    pub fn failure(&self, peer: IpAddr) -> Failure {
        let now = Instant::now();
        let mut peers = self.lock();
        if !peers.contains(&peer) {
            let fresh = Peer {
                window_start: now,
                failures: 0,
                unlogged: 0,
            };
            // A peer pushed out of the table still gets its aggregated record.
            if let Some((old_peer, mut old)) = peers.push(peer, fresh)
                && old_peer != peer
            {
                summarize(old_peer, &mut old, self.config.window);
            }
        }
        let Some(state) = peers.get_mut(&peer) else {
            return Failure {
                log_now: true,
                blocked: false,
            };
        };
        if now.duration_since(state.window_start) >= self.config.window {
            summarize(peer, state, self.config.window);
            state.window_start = now;
            state.failures = 0;
        }
        state.failures = state.failures.saturating_add(1);
        let log_now = state.failures == 1;
        if !log_now {
            state.unlogged += 1;
        }
        let mut blocked = false;
        if state.failures >= self.config.limit {
            summarize(peer, state, self.config.window);
            state.failures = 0;
            state.window_start = now;
            let mut blocks = self.blocks();
            if blocks.len() >= MAX_PEERS {
                blocks.retain(|_, until| *until > now);
            }
            if blocks.len() < MAX_PEERS && !blocks.contains_key(&peer) {
                blocks.insert(peer, now + self.config.block);
                blocked = true;
            }
            self.blocked.store(blocks.len(), Ordering::Relaxed);
        }
        Failure { log_now, blocked }
    }

    /// Writes the aggregated records of windows that have ended (call periodically).
    pub fn flush(&self) {
        let now = Instant::now();
        let mut peers = self.lock();
        for (peer, state) in peers.iter_mut() {
            if state.unlogged > 0 && now.duration_since(state.window_start) >= self.config.window {
                summarize(*peer, state, self.config.window);
            }
        }
    }
}

/// One record for the failures of a window that were not logged one by one.
fn summarize(peer: IpAddr, state: &mut Peer, window: Duration) {
    if state.unlogged == 0 {
        return;
    }
    tracing::warn!(
        target: "sealcache::security",
        event = "api_auth_failures",
        r#type = "api_auth_failed",
        peer = %peer,
        count = state.unlogged,
        window_secs = window.as_secs(),
        "failed API-key attempts (aggregated)"
    );
    state.unlogged = 0;
}

/// An `X-Forwarded-For` entry: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse().ok())
}

/// IPv6 peers count by their /64; IPv4 (and IPv4-mapped) by address.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(proxies: &[&str]) -> AuthThrottle {
        AuthThrottle::new(ThrottleConfig {
            limit: 3,
            window: Duration::from_secs(60),
            block: Duration::from_secs(5),
            trusted_proxies: ThrottleConfig::parse_proxies(
                &proxies.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>(),
            )
            .unwrap(),
        })
    }

    fn request(from: &str, xff: Option<&str>) -> Request<()> {
        let mut r = Request::builder();
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        let mut r = r.body(()).unwrap();
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(from.parse().unwrap(), 5555)));
        r
    }

    #[test]
    fn a_peer_is_blocked_after_the_limit_and_others_are_not() {
        let t = throttle(&[]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            t.failure(a),
            Failure {
                log_now: true,
                blocked: false
            }
        );
        assert_eq!(
            t.failure(a),
            Failure {
                log_now: false,
                blocked: false
            }
        );
        assert_eq!(t.check(a), Verdict::Allow);
        assert_eq!(
            t.failure(a),
            Failure {
                log_now: false,
                blocked: true
            }
        );
        assert!(matches!(t.check(a), Verdict::Blocked(d) if d <= Duration::from_secs(5)));
        assert_eq!(t.check(b), Verdict::Allow);
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let t = throttle(&["10.0.0.0/8"]);
        // Untrusted socket peer: the header is ignored.
        assert_eq!(
            t.peer(&request("192.0.2.9", Some("198.51.100.7"))),
            Some("192.0.2.9".parse().unwrap())
        );
        // Trusted proxy: the right-most untrusted hop; a client-written left part is ignored.
        assert_eq!(
            t.peer(&request(
                "10.1.2.3",
                Some("203.0.113.5, 198.51.100.7, 10.9.9.9")
            )),
            Some("198.51.100.7".parse().unwrap())
        );
        // IPv6 peers count by /64.
        assert_eq!(
            t.peer(&request("2001:db8:1:2:aaaa::1", None)),
            Some("2001:db8:1:2::".parse().unwrap())
        );
        assert!(ThrottleConfig::parse_proxies(&["nonsense".into()]).is_err());
    }
}
