//! The strict startup policy (DESIGN.md §5): production, staging and unknown need TLS, a named ACL
//! user with a password, and an encryption key, unless `REDIS_SECURITY_MODE=development`.

use sealcache_env_detect::EnvironmentInfo;

use crate::connect::RedisConfig;
use crate::error::{PolicyViolation, Requirement};

/// Every requirement `redis` and `has_key` leave unmet (empty when all are met).
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

/// `Ok(false)`: all met. `Ok(true)`: unmet requirements tolerated by the explicit development
/// override or a development/testing environment (the caller logs and counts it). `Err`: refused.
pub(crate) fn check(
    env: &EnvironmentInfo,
    redis: &RedisConfig,
    has_key: bool,
) -> Result<bool, PolicyViolation> {
    let unmet = unmet_requirements(redis, has_key);
    if unmet.is_empty() {
        return Ok(false);
    }
    if env.strict_policy() {
        return Err(PolicyViolation {
            environment: env.environment.to_string(),
            unmet,
        });
    }
    Ok(true)
}
