//! Applying the one [`Policy`](sealcache_env_detect::Policy) at build time: what the cache's
//! configuration leaves unmet, and whether the policy refuses it.

use sealcache_env_detect::{EnvironmentInfo, Policy};

use crate::connect::RedisConfig;
use crate::error::{PolicyViolation, Requirement};

/// Every cache requirement `redis` and `has_key` leave unmet (empty when all are met).
#[must_use]
pub fn unmet_requirements(redis: &RedisConfig, has_key: bool) -> Vec<Requirement> {
    let mut unmet = Vec::new();
    if !redis.uses_tls() {
        unmet.push(Requirement::Tls);
    }
    match redis.username.as_deref() {
        None | Some("" | "default") => unmet.push(Requirement::AclUser),
        Some(_) => {}
    }
    if redis.password.as_ref().is_none_or(|p| p.is_empty()) {
        unmet.push(Requirement::Password);
    }
    if !has_key {
        unmet.push(Requirement::EncryptionKey);
    }
    unmet
}

/// `Ok(unmet)`: the requirements left unmet that the policy tolerates (the caller logs them; empty
/// when all are met). `Err`: refused, listing every unmet requirement the policy enforces.
pub(crate) fn check(
    env: &EnvironmentInfo,
    redis: &RedisConfig,
    has_key: bool,
) -> Result<Vec<Requirement>, PolicyViolation> {
    let policy = Policy::for_env(env);
    let unmet = unmet_requirements(redis, has_key);
    let refused = policy.refused(&unmet);
    if !refused.is_empty() {
        return Err(PolicyViolation {
            environment: env.environment().to_string(),
            unmet: refused,
        });
    }
    Ok(unmet)
}
