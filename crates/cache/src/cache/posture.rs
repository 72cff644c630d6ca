//! The observed security posture ([`SecurityStatus`]).

use super::SealedCache;
use crate::status::SecurityStatus;

impl SealedCache {
    /// Whether Redis answers now (and the breaker is not open).
    pub async fn redis_available(&self) -> bool {
        self.inner.backend.ping().await.is_ok()
    }

    /// The observed security posture (see [`SecurityStatus`]; assessed in one place,
    /// `status::assess`).
    pub async fn security_status(&self) -> SecurityStatus {
        let inner = &self.inner;
        // Starts the invalidation subscriber if no request has yet (and waits for its first try).
        let _ = self.served_l1().await;
        let config = inner.backend.config();
        let ping = inner.backend.ping().await;
        let whoami = inner.backend.whoami().await;
        // Connections of their own: reused for a few seconds (see `posture`).
        let probes = inner
            .probes
            .get_or_probe(async {
                let topology = inner.backend.topology().await;
                crate::posture::probe(config, topology).await
            })
            .await;
        let security = inner.monitor.security_summary();
        let active = inner.keyring.current();
        let pending_erasures = self.pending_erasures().await;
        let mut status = crate::status::assess(crate::status::Observations {
            environment: &inner.environment,
            uses_tls: config.uses_tls(),
            ping,
            whoami,
            refusal: inner.backend.last_refusal(),
            probe: probes.tls.clone(),
            anonymous_refused: probes.anonymous_refused,
            client_certificate_required: probes.client_certificate_required,
            keyring_reloads: inner.keyring.reloads(),
            redis_password_generation: inner
                .password_generation
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            client_cert: match (&config.client_cert_pem, &config.client_cert_path) {
                (Some(pem), _) => Some(crate::status::pem_days(pem)),
                (None, path) => path.as_deref().map(crate::status::file_days),
            },
            ca_cert: match (&config.ca_pem, &config.ca_path) {
                (Some(pem), _) => Some(crate::status::pem_days(pem)),
                (None, path) => path.as_deref().map(crate::status::file_days),
            },
            primary_key_id: active.primary_key_id,
            decrypt_only_key_ids: active.decrypt_only_key_ids.clone(),
            recent_security_events: security.last_hour.values().sum(),
            security_events_by_type: security.events_by_type,
            write_failures: inner.monitor.performance_summary().write_failures,
            topology: probes.topology.clone(),
            l1_coherence: self.l1_coherence().map(|(subscribed, losses)| {
                crate::status::L1CoherenceStatus::new(subscribed, losses)
            }),
        });
        status.pending_erasures = pending_erasures;
        status
    }
}
