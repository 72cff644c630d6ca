//! The deployment directory layout: a contract read by the compose stack and scripts.
//!
//! ```text
//! DIR/.env                               non-secret settings and *_FILE paths (0600)
//! DIR/secrets/                           0700
//! DIR/secrets/redis_app_password         0600 (cache_app)
//! DIR/secrets/redis_health_password      0600 (cache_health)
//! DIR/secrets/redis_monitor_password     0600 (cache_monitor)
//! DIR/secrets/redis_admin_password       0600 (cache_admin, operators only)
//! DIR/secrets/users.acl                  0600 (password hashes only)
//! DIR/secrets/encryption_keyring         0600 (codec keyring format)
//! DIR/secrets/api_key                    0600
//! DIR/secrets/tls/                       0700: ca.crt redis.crt redis.key client.crt client.key (0600)
//! DIR/ca/                                0700
//! DIR/ca/ca.key                          0600, never mounted into a container
//! ```

/// `.env`.
pub const ENV_FILE: &str = ".env";
/// The flat seed format's file.
pub const ENV_SECURE_FILE: &str = ".env.secure";
/// The secrets directory.
pub const SECRETS_DIR: &str = "secrets";
/// TLS material directory.
pub const TLS_DIR: &str = "secrets/tls";
/// The CA directory.
pub const CA_DIR: &str = "ca";
/// The CA private key.
pub const CA_KEY: &str = "ca/ca.key";
/// `cache_app`'s password.
pub const APP_PASSWORD: &str = "secrets/redis_app_password";
/// `cache_health`'s password.
pub const HEALTH_PASSWORD: &str = "secrets/redis_health_password";
/// `cache_monitor`'s password.
pub const MONITOR_PASSWORD: &str = "secrets/redis_monitor_password";
/// `cache_admin`'s password.
pub const ADMIN_PASSWORD: &str = "secrets/redis_admin_password";
/// The ACL file.
pub const USERS_ACL: &str = "secrets/users.acl";
/// The encryption keyring.
pub const ENCRYPTION_KEYRING: &str = "secrets/encryption_keyring";
/// The HTTP API key.
pub const API_KEY: &str = "secrets/api_key";
/// CA certificate.
pub const CA_CERT: &str = "secrets/tls/ca.crt";
/// Redis server certificate.
pub const SERVER_CERT: &str = "secrets/tls/redis.crt";
/// Redis server key.
pub const SERVER_KEY: &str = "secrets/tls/redis.key";
/// Client certificate.
pub const CLIENT_CERT: &str = "secrets/tls/client.crt";
/// Client key.
pub const CLIENT_KEY: &str = "secrets/tls/client.key";

/// Where `secrets/` is mounted inside the containers.
pub const CONTAINER_SECRETS: &str = "/run/secrets";

/// The path inside a container of a file under `secrets/`.
#[must_use]
pub fn container_path(relative: &str) -> String {
    let inner = relative.strip_prefix("secrets/").unwrap_or(relative);
    format!("{CONTAINER_SECRETS}/{inner}")
}
