//! The probes behind [`crate::SealedCache::security_status`] that open connections of their own:
//! a TLS handshake with the cache's settings, the same handshake without the client certificate,
//! an unauthenticated `PING`, and the same for every cluster node.
//!
//! Their results are kept for [`PROBE_INTERVAL`] and shared by concurrent callers (one probe in
//! flight at a time), so a status endpoint polled hard opens at most a few connections per
//! interval instead of two per call, and the cache's requests never wait behind probes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::connect::RedisConfig;
use crate::status::{TlsProbe, Topology};

/// How long a probe's result is reused.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What the connection probes observed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probes {
    /// The TLS handshake with the cache's own settings (`None`: plaintext transport).
    pub(crate) tls: Option<TlsProbe>,
    /// An unauthenticated client is refused (`None`: not observed).
    pub(crate) anonymous_refused: Option<bool>,
    /// A client without a certificate is refused (`None`: no client certificate is configured,
    /// or nothing could be observed).
    pub(crate) client_certificate_required: Option<bool>,
    /// Redis Cluster only: every node, probed.
    pub(crate) topology: Option<Topology>,
}

/// The last probe and when it ran; the lock is held while a probe runs, so concurrent callers
/// wait for it and share its result.
#[derive(Debug, Default)]
pub(crate) struct ProbeCache {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Probes>)>>,
}

impl ProbeCache {
    /// The probes of the last [`PROBE_INTERVAL`], or new ones from `probe`.
    pub(crate) async fn get_or_probe<F>(&self, probe: F) -> Arc<Probes>
    where
        F: std::future::Future<Output = Probes>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, probes)) = last.as_ref()
            && at.elapsed() < PROBE_INTERVAL
        {
            return Arc::clone(probes);
        }
        let probes = Arc::new(probe.await);
        *last = Some((Instant::now(), Arc::clone(&probes)));
        probes
    }
}

/// Runs every connection probe for `config` (`topology`: the cluster's slot map, if any).
pub(crate) async fn probe(config: &RedisConfig, topology: Option<Topology>) -> Probes {
    let tls = if config.uses_tls() {
        Some(crate::tls_probe::probe_tls(config).await)
    } else {
        None
    };
    let client_certificate_required = if config.uses_tls() && has_client_certificate(config) {
        crate::tls_probe::client_certificate_required(config).await
    } else {
        None
    };
    Probes {
        tls,
        anonymous_refused: anonymous_refused(config).await,
        client_certificate_required,
        topology: match topology {
            Some(t) => Some(probe_nodes(config, t).await),
            None => None,
        },
    }
}

fn has_client_certificate(config: &RedisConfig) -> bool {
    config.client_cert_pem.is_some() || config.client_cert_path.is_some()
}

/// Probes every cluster node as a single node is probed: a TLS handshake and an anonymous `PING`,
/// every node at once (each probe is bounded by the connect timeout, so a partition that
/// black-holes several nodes costs one timeout, not one per node, and the status still answers
/// within its request deadline).
async fn probe_nodes(config: &RedisConfig, mut topology: Topology) -> Topology {
    let probes = topology.nodes.iter().map(|node| {
        let scheme = if config.uses_tls() { "rediss" } else { "redis" };
        let host = if node.host.contains(':') {
            format!("[{}]", node.host)
        } else {
            node.host.clone()
        };
        let mut one = config.clone();
        one.url = format!("{scheme}://{host}:{}", node.port);
        one.cluster_nodes = Vec::new();
        async move {
            let tls_version = if one.uses_tls() {
                let probe = crate::tls_probe::probe_tls(&one).await;
                probe.failure.is_none().then_some(probe.version).flatten()
            } else {
                None
            };
            (tls_version, anonymous_refused(&one).await)
        }
    });
    let observed = futures_util::future::join_all(probes).await;
    for (node, (tls_version, anonymous)) in topology.nodes.iter_mut().zip(observed) {
        node.tls_version = tls_version;
        node.anonymous_refused = anonymous;
    }
    topology
}

/// `url` without its path: a database index (`rediss://host:port/3`) would make the client send
/// `SELECT` first, which an unauthenticated client cannot, so the probe would observe nothing.
fn without_database(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path("");
            parsed.into()
        }
        Err(_) => url.to_owned(),
    }
}

/// Connects with the cache's transport but no credentials (and database 0) and sends `PING`:
/// `Some(true)` when refused (NOAUTH/WRONGPASS), `Some(false)` when answered, `None` when nothing
/// could be observed.
pub(crate) async fn anonymous_refused(config: &RedisConfig) -> Option<bool> {
    let mut anonymous = config.clone();
    anonymous.username = None;
    anonymous.password = None;
    anonymous.url = without_database(&config.url);
    let attempt = async {
        // Built off the async workers (it reads the certificate files), within the timeout.
        let client = {
            let anonymous = anonymous.clone();
            tokio::task::spawn_blocking(move || crate::connect::client(&anonymous)).await
        };
        let Ok(Ok(client)) = client else {
            return Ok(None);
        };
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&crate::connect::connection_config(
                config,
            ))
            .await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(Some)
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(Ok(Some(_))) => Some(false),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            let code = e.code().unwrap_or_default();
            matches!(code, "NOAUTH" | "WRONGPASS")
                .then_some(true)
                .or_else(|| {
                    let text = e.to_string();
                    (text.contains("NOAUTH") || text.contains("WRONGPASS")).then_some(true)
                })
        }
        Err(_) => None,
    }
}

/// The generation of a Redis password as the security status reports it: the first 12 hex
/// digits of its SHA-256, which is the start of the `#<sha256>` hash Redis and `users.acl` keep
/// for it. A rotation compares it with the password files to know which password each running
/// process uses, without the password leaving the process. (The passwords sealcache generates
/// carry 128 bits or more, so 48 bits of their hash tell nothing usable.)
#[must_use]
pub fn password_generation(password: &str) -> String {
    let digest = Sha256::digest(password.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_index_is_dropped_for_the_anonymous_probe() {
        assert_eq!(
            without_database("rediss://redis:6379/3"),
            "rediss://redis:6379"
        );
        assert_eq!(
            without_database("rediss://redis:6379"),
            "rediss://redis:6379"
        );
        assert_eq!(
            without_database("redis://127.0.0.1:7000/0#insecure"),
            "redis://127.0.0.1:7000#insecure"
        );
    }

    #[test]
    fn the_password_generation_is_the_start_of_the_acl_hash() {
        // `users.acl` holds `#` + hex SHA-256 of the password.
        let generation = password_generation("password");
        assert_eq!(generation, "5e884898da28");
        assert_eq!(generation.len(), 12);
    }

    #[tokio::test]
    async fn probes_are_reused_within_the_interval() {
        let cache = ProbeCache::default();
        let runs = std::sync::atomic::AtomicU32::new(0);
        for _ in 0..5 {
            cache
                .get_or_probe(async {
                    runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Probes::default()
                })
                .await;
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
