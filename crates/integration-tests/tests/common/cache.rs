//! Shared test fixtures: a generated deployment, a TLS+mTLS+ACL redis-server, caches and an admin
//! connection that reads raw bytes.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealcache::{AiResponseCache, CacheBuilder, CacheOptions, RedisConfig};
use sealcache_codec::Keyring;
use sealcache_config_gen::{DeploymentOptions, SecureConfigGenerator, layout, write_deployment};
use sealcache_env_detect::{
    Environment, EnvironmentDetector, EnvironmentInfo, FeatureContext, MapSource,
};
use sealcache_testkit::{RedisOptions, RedisServer, TlsFiles};

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub server: RedisServer,
}

pub fn env(name: &str) -> EnvironmentInfo {
    EnvironmentDetector::new(MapSource::new().var("ENVIRONMENT", name))
        .detect(FeatureContext::SecurityEnforcement)
}

impl Stack {
    /// A generated production deployment and a redis-server running it (TLS, client certs, ACL).
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// As [`Stack::start`], with extra `redis.conf` lines (a later `bind` replaces the default).
    pub fn start_with(extra: Vec<String>) -> Self {
        let info = env("production");
        let config =
            SecureConfigGenerator::generate_for_environment(&info, Some(Environment::Production))
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_deployment(&config, dir.path(), &DeploymentOptions::default()).unwrap();
        let server = RedisServer::start(RedisOptions {
            acl_file: Some(dir.path().join(layout::USERS_ACL)),
            tls: Some(TlsFiles {
                ca: dir.path().join(layout::CA_CERT),
                cert: dir.path().join(layout::SERVER_CERT),
                key: dir.path().join(layout::SERVER_KEY),
                require_client_certs: true,
            }),
            extra,
            ..RedisOptions::default()
        });
        Self { dir, server }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn secret(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn redis_config(&self, user: &str, password_file: &str) -> RedisConfig {
        RedisConfig::new(format!("rediss://localhost:{}/0", self.server.port()))
            .acl_user(user, self.secret(password_file))
            .tls_files(
                self.path(layout::CA_CERT),
                self.path(layout::CLIENT_CERT),
                self.path(layout::CLIENT_KEY),
            )
    }

    pub fn keyring(&self) -> Keyring {
        Keyring::from_file(self.path(layout::ENCRYPTION_KEYRING)).unwrap()
    }

    pub fn cache(&self) -> AiResponseCache {
        self.cache_with(CacheOptions::default())
    }

    pub fn cache_with(&self, options: CacheOptions) -> AiResponseCache {
        CacheBuilder::new(env("production"))
            .options(options)
            .keyring(self.keyring())
            .redis(self.redis_config("cache_app", layout::APP_PASSWORD))
            .build()
            .unwrap()
    }

    /// A raw connection as `cache_admin` (reads and writes bytes behind the cache's back).
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        sealcache_testkit::tls_client(
            self.server.port(),
            "cache_admin",
            &self.secret(layout::ADMIN_PASSWORD),
            &self.path(layout::CA_CERT),
            &self.path(layout::CLIENT_CERT),
            &self.path(layout::CLIENT_KEY),
        )
        .get_multiplexed_async_connection()
        .await
        .unwrap()
    }
}

/// The shared benchmark corpus: every document as (operation, compact JSON).
pub fn corpus() -> Vec<(String, serde_json::Value)> {
    let path = std::env::var_os("SEALCACHE_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/corpus.jsonl"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("corpus at {}: {e}", path.display()));
    let docs: Vec<_> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["operation"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(docs.len(), 220, "the corpus has 220 documents");
    docs
}

pub fn shared<T>(v: T) -> Arc<T> {
    Arc::new(v)
}
