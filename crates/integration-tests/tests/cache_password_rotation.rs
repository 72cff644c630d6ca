//! A rotated ACL password reaches a running cache: after `set_redis_password`, connections made
//! from then on authenticate with the new password (the old one is refused by Redis), with no
//! rebuild and no failed call once Redis dropped the old connections. And a connection the
//! application owns is used as it is (its password stays the application's).

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cache.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Stack;
use sealcache::AiRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_authenticates_the_next_connections() {
    let stack = Stack::start();
    let cache = stack.cache();
    let req = AiRequest::new("qa", "rotation");
    cache
        .set(&req, &serde_json::json!({"v": 1}), None)
        .await
        .unwrap();
    let mut admin = stack.admin().await;
    // Phase 1 of a two-phase rotation: the new password beside the old one.
    let new = "a-new-password-of-a-sufficient-length-0123456789";
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("cache_app")
        .arg(format!(">{new}"))
        .query_async(&mut admin)
        .await
        .unwrap();
    cache.sealed().set_redis_password(new).unwrap();
    // Phase 3: the old password removed, and every connection of cache_app dropped.
    let old = stack.secret(sealcache_config_gen::layout::APP_PASSWORD);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("cache_app")
        .arg(format!("<{}", old.trim()))
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("cache_app")
        .query_async(&mut admin)
        .await
        .unwrap();
    // The cache reconnects with the new password (the first call may meet the dropped
    // connection).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cache
            .set(&req, &serde_json::json!({"v": 2}), None)
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = cache.get(&req).await.unwrap().unwrap();
    assert_eq!(got.parse::<serde_json::Value>().unwrap()["v"], 2);
    assert_eq!(
        cache.security_status().await.authenticated_user.as_deref(),
        Some("cache_app")
    );
    // A cache still holding only the old password is refused now.
    let stale = stack.cache();
    assert!(
        stale
            .set(&req, &serde_json::json!({"v": 3}), None)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_manager_the_application_owns_is_used_as_it_is() {
    let stack = Stack::start();
    let config = stack.redis_config("cache_app", sealcache_config_gen::layout::APP_PASSWORD);
    let manager = redis::aio::ConnectionManager::new(config.client().unwrap())
        .await
        .unwrap();
    let cache = sealcache::CacheBuilder::new(common::env("production"))
        .keyring(stack.keyring())
        .redis(config.with_connection_manager(manager))
        .build()
        .unwrap();
    let req = AiRequest::new("qa", "owned");
    cache
        .set(&req, &serde_json::json!({"owned": true}), None)
        .await
        .unwrap();
    // Read back through a cache with its own connection: the same Redis.
    let other = stack.cache();
    assert!(other.get(&req).await.unwrap().is_some());
    let status = cache.security_status().await;
    assert_eq!(status.authenticated_user.as_deref(), Some("cache_app"));
    assert!(cache.sealed().set_redis_password("x").is_err());
}
