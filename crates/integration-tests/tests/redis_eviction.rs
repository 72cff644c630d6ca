//! The eviction policy the deployment ships (`deploy/redis/*.conf`), on a real redis-server at its
//! memory limit: cached values (all with a TTL) are evicted, the tenants' data-key records and
//! erasure tombstones (no TTL) never are. An evicted tombstone would let a data-key record
//! restored from a snapshot open again; an evicted record would destroy a tenant's data key.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use sealcache_testkit::{RedisOptions, RedisServer};

/// The `maxmemory-policy` of a shipped Redis configuration file.
fn shipped_policy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/redis")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("maxmemory-policy "))
        .unwrap_or_else(|| panic!("{} sets no maxmemory-policy", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn every_shipped_configuration_evicts_the_same_way() {
    let single = shipped_policy("redis.conf");
    for file in ["redis.cluster.conf", "redis.dev.conf"] {
        assert_eq!(shipped_policy(file), single, "{file}");
    }
}

#[test]
fn at_the_memory_limit_values_go_and_key_records_and_tombstones_stay() {
    let policy = shipped_policy("redis.conf");
    let redis = RedisServer::start(RedisOptions {
        extra: vec![
            "maxmemory 4mb".to_owned(),
            format!("maxmemory-policy {policy}"),
        ],
        ..RedisOptions::default()
    });
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    // The layouts of crates/cache/src/data_key.rs, written first and never read again: the keys
    // an LRU policy over every key would evict first.
    let kept: Vec<String> = (0..50)
        .flat_map(|i| {
            [
                format!("sealcache:dk:{i:064x}:_"),
                format!("sealcache:erased:{i:032x}"),
            ]
        })
        .collect();
    for key in &kept {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(vec![7u8; 120])
            .query(&mut conn)
            .unwrap();
    }
    // 16 MiB of cached values, each with a TTL as the cache writes them, into 4 MiB.
    let value = vec![1u8; 16 * 1024];
    for i in 0..1024 {
        let _: () = redis::cmd("SET")
            .arg(format!("sealcache:v3:{i:08x}"))
            .arg(&value)
            .arg("PX")
            .arg(600_000)
            .query(&mut conn)
            .unwrap();
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut conn).unwrap();
    let evicted: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        evicted > 0,
        "nothing was evicted: the limit was never reached"
    );
    for key in &kept {
        let exists: bool = redis::cmd("EXISTS").arg(key).query(&mut conn).unwrap();
        assert!(
            exists,
            "{key} was evicted under `maxmemory-policy {policy}` ({evicted} keys evicted)"
        );
    }
}
