//! The HTTP server's protective limits (`SEALCACHE_*`).

use std::time::Duration;

use super::values::{Raw, Sources, number};
use crate::error::Result;

/// The HTTP server's protective limits (`SEALCACHE_*`). Every value has a safe default; zero is
/// refused where it would switch a protection off.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// `SEALCACHE_BODY_LIMIT`: largest request body in bytes; a larger declared `Content-Length`
    /// is answered 413 at once (default 1 MiB).
    pub body_limit: usize,
    /// `SEALCACHE_HEADER_READ_TIMEOUT_SECS`: time to receive a request's whole header section,
    /// counted from when the connection is ready for a request, so it also closes idle keep-alive
    /// connections (default 10 s).
    pub header_read_timeout: Duration,
    /// `SEALCACHE_REQUEST_TIMEOUT_SECS`: longest time from the header to the response, body read
    /// included; then 408 (default 30 s).
    pub request_timeout: Duration,
    /// `SEALCACHE_BODY_READ_TIMEOUT_SECS`: longest wait for the next piece of a request body
    /// (default 10 s).
    pub body_read_timeout: Duration,
    /// `SEALCACHE_MAX_HEADER_BYTES`: connection read buffer, which bounds the header section;
    /// larger headers get 431 (default 16 KiB, at least 8 KiB).
    pub max_header_bytes: usize,
    /// `SEALCACHE_MAX_CONNECTIONS`: open connections; further ones wait in the kernel's accept
    /// queue (default 512).
    pub max_connections: usize,
    /// `SEALCACHE_MAX_IN_FLIGHT`: requests handled at once; more are answered 503 with
    /// `Retry-After` (default 64).
    pub max_in_flight: usize,
    /// `SEALCACHE_MAX_IN_FLIGHT_BYTES`: declared request-body bytes handled at once (a request
    /// without `Content-Length` counts as a full body); a request that does not fit is answered
    /// 503 with `Retry-After`. Bounds the memory a flood of large stores can take (default
    /// 32 MiB).
    pub max_in_flight_bytes: usize,
    /// `SEALCACHE_L1_CAPACITY`: L1 entries (default 10 000; 0 turns L1 off).
    pub l1_capacity: usize,
    /// `SEALCACHE_L1_MAX_BYTES`: L1 plaintext bytes (default: a quarter of the cgroup memory
    /// limit when one is set, else 64 MiB).
    pub l1_max_bytes: Option<usize>,
    /// `SEALCACHE_L1_MAX_ENTRY_BYTES`: larger values are served from Redis only (default 256 KiB).
    pub l1_max_entry_bytes: usize,
    /// `SEALCACHE_AUTH_FAILURE_LIMIT`: failed API-key attempts per peer and window before the
    /// peer is refused (default 10).
    pub auth_failure_limit: u32,
    /// `SEALCACHE_AUTH_FAILURE_WINDOW_SECS` (default 60 s).
    pub auth_failure_window: Duration,
    /// `SEALCACHE_AUTH_BLOCK_SECS`: how long a peer over the limit gets 429 (default 300 s).
    pub auth_block: Duration,
    /// `SEALCACHE_TRUSTED_PROXIES`: comma-separated addresses or CIDR ranges of reverse proxies
    /// whose `X-Forwarded-For` names the peer (default none: the socket peer counts).
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            body_limit: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
            max_connections: 512,
            max_in_flight: 64,
            max_in_flight_bytes: 32 << 20,
            l1_capacity: 10_000,
            l1_max_bytes: None,
            l1_max_entry_bytes: 256 << 10,
            auth_failure_limit: 10,
            auth_failure_window: Duration::from_secs(60),
            auth_block: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
        }
    }
}

pub(super) fn limits(raw: &Raw, sources: &Sources) -> Result<ServerLimits> {
    let d = ServerLimits::default();
    let secs = |key: &str, default: Duration| -> Result<Duration> {
        number(key, raw, default.as_secs(), 1, sources).map(Duration::from_secs)
    };
    let l1_max_bytes = match raw
        .get("sealcache_l1_max_bytes")
        .filter(|v| !v.text().trim().is_empty())
    {
        Some(_) => Some(number("SEALCACHE_L1_MAX_BYTES", raw, 0usize, 0, sources)?),
        None => None,
    };
    Ok(ServerLimits {
        body_limit: number("SEALCACHE_BODY_LIMIT", raw, d.body_limit, 1024, sources)?,
        header_read_timeout: secs("SEALCACHE_HEADER_READ_TIMEOUT_SECS", d.header_read_timeout)?,
        request_timeout: secs("SEALCACHE_REQUEST_TIMEOUT_SECS", d.request_timeout)?,
        body_read_timeout: secs("SEALCACHE_BODY_READ_TIMEOUT_SECS", d.body_read_timeout)?,
        max_header_bytes: number(
            "SEALCACHE_MAX_HEADER_BYTES",
            raw,
            d.max_header_bytes,
            8192,
            sources,
        )?,
        max_connections: number(
            "SEALCACHE_MAX_CONNECTIONS",
            raw,
            d.max_connections,
            1,
            sources,
        )?,
        max_in_flight: number("SEALCACHE_MAX_IN_FLIGHT", raw, d.max_in_flight, 1, sources)?,
        max_in_flight_bytes: number(
            "SEALCACHE_MAX_IN_FLIGHT_BYTES",
            raw,
            d.max_in_flight_bytes,
            1 << 20,
            sources,
        )?,
        l1_capacity: number("SEALCACHE_L1_CAPACITY", raw, d.l1_capacity, 0, sources)?,
        l1_max_bytes,
        l1_max_entry_bytes: number(
            "SEALCACHE_L1_MAX_ENTRY_BYTES",
            raw,
            d.l1_max_entry_bytes,
            0,
            sources,
        )?,
        auth_failure_limit: number(
            "SEALCACHE_AUTH_FAILURE_LIMIT",
            raw,
            d.auth_failure_limit,
            1,
            sources,
        )?,
        auth_failure_window: secs("SEALCACHE_AUTH_FAILURE_WINDOW_SECS", d.auth_failure_window)?,
        auth_block: secs("SEALCACHE_AUTH_BLOCK_SECS", d.auth_block)?,
        trusted_proxies: raw
            .get("sealcache_trusted_proxies")
            .map(|v| {
                v.text()
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}
