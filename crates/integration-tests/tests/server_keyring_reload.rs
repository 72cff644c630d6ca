//! The server binary reloads its keyring file on `SIGHUP` (checked) and `SIGUSR1` (forced),
//! against a real TLS + mTLS + ACL redis-server: a two-phase rotation keeps old entries readable
//! and seals new ones with the new key; a keyring with another name secret, or one that drops the
//! primary or a live key, is refused and the running one keeps serving.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sealcache_codec::{KeyNameSecret, Keyring, SecretKey};
use sealcache_config_gen::layout;
use sealcache_config_gen::rotation::replace_file;
use sealcache_testkit::free_port;
use serde_json::{Value, json};

#[path = "common/server.rs"]
mod common;
use common::{Server, Stack, start_server};

struct Api {
    http: Client,
    base: String,
    key: String,
}

impl Api {
    fn status(&self) -> Value {
        self.http
            .get(format!("{}/internal/cache/security-status", self.base))
            .bearer_auth(&self.key)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn key_ids(&self) -> (u64, Vec<u64>) {
        let s = self.status();
        let mut others: Vec<u64> = s["decrypt_only_key_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        others.sort_unstable();
        (s["primary_key_id"].as_u64().unwrap(), others)
    }

    fn events(&self, kind: &str) -> u64 {
        self.status()["security_events_by_type"][kind]
            .as_u64()
            .unwrap_or(0)
    }

    fn store(&self, text: &str) {
        let status = self
            .http
            .put(format!("{}/v1/cache/entries", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"text": text, "operation": "qa", "response": {"answer": text}}))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 201, "store {text}");
    }

    fn hit(&self, text: &str) -> bool {
        let v: Value = self
            .http
            .post(format!("{}/v1/cache/lookup", self.base))
            .bearer_auth(&self.key)
            .json(&json!({"text": text, "operation": "qa"}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["hit"] == true
    }
}

fn signal(server: &Server, sig: sealcache_testkit::Signal) {
    sealcache_testkit::send_signal(server.child.id(), sig).unwrap();
}

/// Waits until the server reports `want`; then a little longer, so a reload that would wrongly
/// change the ids has had its chance.
fn settle(api: &Api, want: &(u64, Vec<u64>)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.key_ids() != *want {
        assert!(
            Instant::now() < deadline,
            "key ids {:?}, want {want:?}",
            api.key_ids()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`refused`] for the reload on `SIGHUP`, then for the one on `SIGUSR1`.
fn refused_on_both_signals(api: &Api, server: &Server, keep: &(u64, Vec<u64>)) {
    refused(api, server, sealcache_testkit::Signal::HUP, keep);
    refused(api, server, sealcache_testkit::Signal::USR1, keep);
}

/// Sends `sig` and waits until the server has counted one more refusal.
fn refused(api: &Api, server: &Server, sig: sealcache_testkit::Signal, keep: &(u64, Vec<u64>)) {
    let before = api.events("config_weak");
    signal(server, sig);
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.events("config_weak") == before {
        assert!(Instant::now() < deadline, "the reload was not refused");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        api.key_ids(),
        *keep,
        "a refused keyring must keep the running one"
    );
}

fn write(stack: &Stack, ring: &Keyring) {
    replace_file(
        &stack.path().join(layout::ENCRYPTION_KEYRING),
        ring.to_text().as_bytes(),
    )
    .unwrap();
}

/// The key id of the envelope stored for `text` (bytes 3..7 of envelope v1).
fn sealed_with(stack: &Stack, ring: &Keyring, text: &str) -> u32 {
    let scheme = sealcache::KeyScheme::new("ai_cache", ring.name_secret()).unwrap();
    let key = scheme
        .shared_ai_key(&sealcache::AiRequest::new("qa", text))
        .unwrap();
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query(&mut stack.admin())
        .unwrap();
    u32::from_be_bytes(bytes[3..7].try_into().unwrap())
}

#[test]
fn sighup_rotates_in_two_phases_and_refuses_unsafe_keyrings() {
    let stack = Stack::start();
    let log = stack.path().join("server.log");
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    // Shared entries are sealed under the keyring itself (a tenant's under its data key, which
    // rotation re-wraps): these tests watch the keyring seal and open.
    vars.push(("SEALCACHE_SHARED_OPERATIONS".to_owned(), "qa".to_owned()));
    // L1 off: every lookup opens the value from Redis with the keyring in use.
    vars.push(("SEALCACHE_L1_CAPACITY".to_owned(), "0".to_owned()));
    let server = start_server(&vars, Some(&log));
    let api = Api {
        http: Client::new(),
        base: server.base.clone(),
        key: stack.secret(layout::API_KEY),
    };
    let first = Keyring::from_file(stack.path().join(layout::ENCRYPTION_KEYRING)).unwrap();
    assert_eq!(api.key_ids(), (1, vec![]));
    let before: Vec<String> = (0..10).map(|i| format!("before rotation {i}")).collect();
    for text in &before {
        api.store(text);
    }

    // Stage add: the new key decrypt-only; the primary still seals.
    let (added, new_id) = first.with_decrypt_only_key(SecretKey::generate().unwrap());
    assert_eq!(new_id, 2);
    write(&stack, &added);
    signal(&server, sealcache_testkit::Signal::HUP);
    settle(&api, &(1, vec![2]));
    api.store("between add and promote");
    assert_eq!(sealed_with(&stack, &added, "between add and promote"), 1);

    // Stage promote: the new key seals, the old one opens.
    let promoted = added.with_primary(2).unwrap();
    write(&stack, &promoted);
    signal(&server, sealcache_testkit::Signal::HUP);
    settle(&api, &(2, vec![1]));
    for text in &before {
        assert!(
            api.hit(text),
            "{text} sealed under key 1 must stay readable"
        );
    }
    assert!(api.hit("between add and promote"));
    api.store("after promote");
    assert_eq!(sealed_with(&stack, &promoted, "after promote"), 2);
    assert_eq!(api.events("unknown_key_id"), 0);

    // Another key-name secret would turn every entry into a miss: refused, even forced.
    let keys: Vec<(u32, SecretKey)> = promoted.keys().map(|(id, k)| (id, k.clone())).collect();
    let renamed = Keyring::from_parts(
        keys[0].clone(),
        keys[1..].to_vec(),
        KeyNameSecret::new(SecretKey::generate().unwrap()),
    )
    .unwrap();
    write(&stack, &renamed);
    refused_on_both_signals(&api, &server, &(2, vec![1]));
    assert!(
        api.hit("after promote") && api.hit(&before[0]),
        "the old keyring keeps serving"
    );

    // Dropping the primary is refused, forced or not: every entry sealed since its promotion would
    // become a miss. So is a keyring that skips promote (a new primary, the running one gone).
    let no_primary = promoted.with_primary(1).unwrap().without_key(2).unwrap();
    write(&stack, &no_primary);
    refused_on_both_signals(&api, &server, &(2, vec![1]));
    let (skipped, third) = promoted.with_decrypt_only_key(SecretKey::generate().unwrap());
    let skipped = skipped.with_primary(third).unwrap().without_key(2).unwrap();
    write(&stack, &skipped);
    refused(
        &api,
        &server,
        sealcache_testkit::Signal::USR1,
        &(2, vec![1]),
    );
    assert!(
        api.hit("after promote"),
        "entries sealed under the running primary stay readable"
    );
    // The status says so until a reload is applied: the running keyring is not the file's.
    let status = api.status();
    assert!(
        status["keyring_reloads"]["refused"].as_u64().unwrap() >= 5,
        "{status}"
    );
    assert!(
        status["keyring_reloads"]["last_refusal"]
            .as_str()
            .unwrap()
            .contains("key id 2"),
        "{status}"
    );
    let check = status["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "keyring_reload")
        .unwrap()
        .clone();
    assert_eq!(check["passed"], false, "{check}");
    assert_ne!(status["security_level"], "production_ready", "{status}");

    // Dropping the key demoted a moment ago is refused on SIGHUP (entries it sealed are alive),
    // and done on SIGUSR1 (forced): its values become misses.
    let retired = promoted.without_key(1).unwrap();
    write(&stack, &retired);
    refused(&api, &server, sealcache_testkit::Signal::HUP, &(2, vec![1]));
    assert!(api.hit(&before[1]));
    signal(&server, sealcache_testkit::Signal::USR1);
    settle(&api, &(2, vec![]));
    assert!(api.hit("after promote"));
    assert_eq!(api.events("unknown_key_id"), 0);
    assert!(!api.hit(&before[2]), "a retired key's value is a miss");
    assert_eq!(api.events("unknown_key_id"), 1);
    let status = api.status();
    assert!(
        status["keyring_reloads"]["last_refusal"].is_null(),
        "an applied reload clears the refusal: {status}"
    );

    // The log says what happened, with key ids and never a key.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("keyring reload applied"), "{text}");
    assert!(text.contains("keyring reload refused"), "{text}");
    assert!(text.contains("key-name secret differs"), "{text}");
    for ring in [&first, &added, &renamed] {
        for (_, key) in ring.keys() {
            assert!(
                !text.contains(key.expose_text().as_str()),
                "a key in the log"
            );
        }
        assert!(!text.contains(ring.name_secret().as_key().expose_text().as_str()));
    }
}

/// A forced reload that drops a key also drops every L1 copy it could have sealed: nothing opened
/// under a retired (perhaps leaked) key is served from memory afterwards.
#[test]
fn a_forced_key_drop_flushes_l1() {
    let stack = Stack::start();
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    vars.push(("SEALCACHE_SHARED_OPERATIONS".to_owned(), "qa".to_owned()));
    let server = start_server(&vars, None);
    let api = Api {
        http: Client::new(),
        base: server.base.clone(),
        key: stack.secret(layout::API_KEY),
    };
    let first = Keyring::from_file(stack.path().join(layout::ENCRYPTION_KEYRING)).unwrap();
    let (added, new_id) = first.with_decrypt_only_key(SecretKey::generate().unwrap());
    write(&stack, &added);
    signal(&server, sealcache_testkit::Signal::HUP);
    settle(&api, &(1, vec![2]));
    api.store("sealed under key 1");
    assert!(api.hit("sealed under key 1"));
    let promoted = added.with_primary(new_id).unwrap();
    write(&stack, &promoted);
    signal(&server, sealcache_testkit::Signal::HUP);
    settle(&api, &(2, vec![1]));
    // Read once more so that an L1 copy surely exists (a reload that removes nothing keeps L1).
    assert!(api.hit("sealed under key 1"));
    let l1_before = api.status()["l1_coherence"].clone();
    assert_eq!(l1_before["subscribed"], true, "L1 is served: {l1_before}");
    write(&stack, &promoted.without_key(1).unwrap());
    signal(&server, sealcache_testkit::Signal::USR1);
    settle(&api, &(2, vec![]));
    assert!(
        !api.hit("sealed under key 1"),
        "an L1 copy of a value sealed under a dropped key must not be served"
    );
}
