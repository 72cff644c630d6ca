//! The deployment directory layout: a contract read by the compose stack and scripts.
//!
//! ```text
//! DIR/.env                               non-secret settings and *_FILE paths (0600)
//! DIR/rotation.json                      rotation stages and times (no secret; see `rotation`)
//! DIR/secrets/                           0700
//! DIR/secrets/redis/                     0700, mounted (as a directory) into the Redis container
//! DIR/secrets/redis/users.acl            0600 (password hashes only)
//! DIR/secrets/redis/redis_health_password  0600 (cache_health)
//! DIR/secrets/backend/                   0700, mounted (as a directory) into the backend
//! DIR/secrets/backend/redis_app_password 0600 (cache_app)
//! DIR/secrets/backend/redis_monitor_password 0600 (cache_monitor)
//! DIR/secrets/backend/encryption_keyring 0600 (codec keyring format)
//! DIR/secrets/redis_admin_password       0600 (cache_admin, operators only, never mounted)
//! DIR/secrets/pending/                   0700, never mounted: passwords staged by a rotation
//! DIR/secrets/api_key                    0600
//! DIR/secrets/tls/                       0700: ca.crt redis.crt redis.key client.crt client.key (0600)
//! DIR/ca/                                0700
//! DIR/ca/ca.key                          0600, never mounted into a container
//! ```
//!
//! Files that change while the stack runs (the ACL file, the passwords, the keyring) live in the
//! directories mounted whole: a rotation replaces them by write-then-rename, and a single-file
//! bind mount would keep showing the container the old inode.

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
/// The Redis container's rotating secrets (mounted as a directory).
pub const REDIS_SECRETS_DIR: &str = "secrets/redis";
/// The backend's rotating secrets (mounted as a directory).
pub const BACKEND_SECRETS_DIR: &str = "secrets/backend";
/// Passwords staged by `config rotate --stage add` until `--stage promote` (never mounted).
pub const PENDING_DIR: &str = "secrets/pending";
/// The rotation record (stages and times, no secret).
pub const ROTATION_FILE: &str = "rotation.json";
/// `cache_app`'s password.
pub const APP_PASSWORD: &str = "secrets/backend/redis_app_password";
/// `cache_health`'s password.
pub const HEALTH_PASSWORD: &str = "secrets/redis/redis_health_password";
/// `cache_monitor`'s password.
pub const MONITOR_PASSWORD: &str = "secrets/backend/redis_monitor_password";
/// `cache_admin`'s password.
pub const ADMIN_PASSWORD: &str = "secrets/redis_admin_password";
/// The ACL file.
pub const USERS_ACL: &str = "secrets/redis/users.acl";
/// The encryption keyring.
pub const ENCRYPTION_KEYRING: &str = "secrets/backend/encryption_keyring";
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

/// Every file of a deployment directory that holds a secret value (passwords, the API key, the
/// keyring, private keys); certificates and `users.acl` (hashes only) are not among them. Tools
/// that check that no secret leaks (into `docker inspect`, logs, command output) search for the
/// values of these files.
pub const SECRET_FILES: &[&str] = &[
    APP_PASSWORD,
    HEALTH_PASSWORD,
    MONITOR_PASSWORD,
    ADMIN_PASSWORD,
    API_KEY,
    ENCRYPTION_KEYRING,
    SERVER_KEY,
    CLIENT_KEY,
    CA_KEY,
];

/// The port Redis listens on (TLS) in the deployment, the port of `.env`'s `REDIS_URL`.
pub const REDIS_PORT: u16 = 6379;
/// Where the backend listens inside its container (`SEALCACHE_LISTEN` in the generated `.env`;
/// the compose file publishes it on the host's loopback only).
pub const CONTAINER_LISTEN: &str = "0.0.0.0:8080";

/// Where `secrets/` is mounted inside the containers.
pub const CONTAINER_SECRETS: &str = "/run/secrets";

/// The path inside a container of a file under `secrets/`.
#[must_use]
pub fn container_path(relative: &str) -> String {
    let inner = relative.strip_prefix("secrets/").unwrap_or(relative);
    format!("{CONTAINER_SECRETS}/{inner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret file added to the deployment without being listed in `SECRET_FILES` would escape
    /// every leak check.
    #[test]
    fn secret_files_are_every_written_file_but_certificates_the_acl_and_env() {
        let config = crate::test_support::config_for("production");
        let dir = tempfile::tempdir().unwrap();
        let written =
            crate::write_deployment(&config, dir.path(), &crate::DeploymentOptions::default())
                .unwrap();
        for file in SECRET_FILES {
            assert!(
                written.files.iter().any(|f| f == file),
                "{file} is not written"
            );
        }
        for file in &written.files {
            let public = [ENV_FILE, USERS_ACL, CA_CERT, SERVER_CERT, CLIENT_CERT];
            assert!(
                SECRET_FILES.contains(&file.as_str()) || public.contains(&file.as_str()),
                "{file} is neither listed as secret nor known to be public"
            );
        }
    }
}
