//! Tenants, subjects and erasure over HTTP, on the real binary: two server replicas on one Redis
//! (and on a TLS Redis Cluster) with scoped API keys of two tenants. The same request under two
//! tenants never shares an answer; `DELETE /v1/subjects/{subject}` makes that subject's entries miss
//! on both replicas within a second while another subject's stay; erasure needs its scope;
//! shared entries carry no TTL; no subject id reaches the logs (request paths included) or Redis.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sealcache_config_gen::api_keys::{KeyId, Scopes, Tenant, mint};
use sealcache_testkit::cluster::{ClusterOptions, RedisCluster};
use sealcache_testkit::free_port;
use serde_json::{Value, json};

#[path = "common/server.rs"]
mod common;
use common::{Server, Stack, start_server};

const ANN: &str = "ann-4711@patients.example";
const BOB: &str = "bob-0815@patients.example";

struct Keys {
    acme: String,
    globex: String,
    admin: String,
    sharer: String,
    auditor: String,
}

fn mint_keys(dir: &std::path::Path) -> (std::path::PathBuf, Keys) {
    let path = dir.join("api_keys.toml");
    let key = |id: &str, tenant: &str, scopes: &str| {
        mint(
            &path,
            &KeyId::new(id).unwrap(),
            &Tenant::new(tenant).unwrap(),
            Scopes::parse_list(scopes).unwrap(),
        )
        .unwrap()
        .expose_secret()
        .to_owned()
    };
    let keys = Keys {
        acme: key("acme-web", "acme", "lookup,store,erase"),
        globex: key("globex-web", "globex", "lookup,store"),
        admin: key("ops", "operations", "admin"),
        sharer: key("publisher", "acme", "lookup,store_shared"),
        auditor: key("auditor", "operations", "lookup,admin"),
    };
    (path, keys)
}

struct Fleet {
    a: Server,
    b: Server,
    keys: Keys,
    http: Client,
    logs: Vec<std::path::PathBuf>,
}

impl Fleet {
    fn start(vars: impl Fn(&str) -> Vec<(String, String)>, dir: &std::path::Path) -> Self {
        let (file, keys) = mint_keys(dir);
        let mut logs = Vec::new();
        let mut servers = Vec::new();
        for name in ["a", "b"] {
            let listen = format!("127.0.0.1:{}", free_port());
            let mut env = vars(&listen);
            env.push((
                "SEALCACHE_API_KEYS_FILE".to_owned(),
                file.to_string_lossy().into_owned(),
            ));
            env.push((
                "SEALCACHE_SHARED_OPERATIONS".to_owned(),
                "translate".to_owned(),
            ));
            env.push(("SEALCACHE_LOG".to_owned(), "debug".to_owned()));
            let log = dir.join(format!("server-{name}.log"));
            servers.push(start_server(&env, Some(&log)));
            logs.push(log);
        }
        let b = servers.pop().unwrap();
        let a = servers.pop().unwrap();
        Self {
            a,
            b,
            keys,
            http: Client::new(),
            logs,
        }
    }

    fn store(&self, server: &Server, key: &str, body: &Value) -> u16 {
        self.http
            .put(format!("{}/v1/cache/entries", server.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }

    fn lookup(&self, server: &Server, key: &str, body: &Value) -> Value {
        let r = self
            .http
            .post(format!("{}/v1/cache/lookup", server.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    }

    fn delete(&self, server: &Server, key: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{}{path}", server.base))
            .bearer_auth(key)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn check(&self) {
        let k = &self.keys;
        let request = json!({"text": "the same question", "operation": "qa"});
        let with = |extra: Value| {
            let mut body = request.clone();
            for (name, value) in extra.as_object().unwrap() {
                body[name] = value.clone();
            }
            body
        };

        // Two tenants, one request: never one answer.
        let acme_store = with(json!({"response": {"v": "acme"}}));
        assert_eq!(self.store(&self.a, &k.acme, &acme_store), 201);
        assert_eq!(self.lookup(&self.b, &k.globex, &request)["hit"], false);
        let hit = self.lookup(&self.b, &k.acme, &request);
        assert_eq!(hit["response"], json!({"v": "acme"}));
        assert!(hit["ttl_remaining_seconds"].as_u64().unwrap() > 0);
        assert_eq!(
            self.store(
                &self.b,
                &k.globex,
                &with(json!({"response": {"v": "globex"}}))
            ),
            201
        );
        assert_eq!(
            self.lookup(&self.a, &k.acme, &request)["response"],
            json!({"v": "acme"})
        );
        assert_eq!(
            self.lookup(&self.a, &k.globex, &request)["response"],
            json!({"v": "globex"})
        );

        // Two subjects of one tenant, read on both replicas (each twice: L1 copies).
        for (who, v) in [(ANN, "ann's"), (BOB, "bob's")] {
            let body = with(json!({"subject": who, "response": {"v": v}}));
            assert_eq!(self.store(&self.a, &k.acme, &body), 201);
        }
        for server in [&self.a, &self.b, &self.a, &self.b] {
            assert_eq!(
                self.lookup(server, &k.acme, &with(json!({"subject": ANN})))["response"],
                json!({"v": "ann's"})
            );
            assert_eq!(
                self.lookup(server, &k.acme, &with(json!({"subject": BOB})))["response"],
                json!({"v": "bob's"})
            );
        }
        assert_eq!(
            self.lookup(&self.a, &k.globex, &with(json!({"subject": ANN})))["hit"],
            false
        );

        // Erasure needs its scope (globex's key has none), then erases.
        let subject_path = format!("/v1/subjects/{ANN}");
        let (status, body) = self.delete(&self.a, &k.globex, &subject_path);
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        // A wrong key on that path: refused, and its (logged) path redacted.
        let (status, _) = self.delete(&self.a, "not-a-key", &subject_path);
        assert_eq!(status, 401);
        let (status, body) = self.delete(&self.a, &k.acme, &subject_path);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["erased"], true);
        let id = body["data_key_id"].as_str().unwrap();
        assert_eq!(id.len(), 32, "{body}");
        assert!(body["erased_at"].as_str().unwrap().ends_with('Z'), "{body}");
        let started = Instant::now();
        let mut gone = false;
        while started.elapsed() < Duration::from_secs(1) {
            if self.lookup(&self.b, &k.acme, &with(json!({"subject": ANN})))["hit"] == false {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            gone,
            "replica B served ann's entry a second after her erasure"
        );
        assert_eq!(
            self.lookup(&self.a, &k.acme, &with(json!({"subject": ANN})))["hit"],
            false
        );
        for server in [&self.a, &self.b] {
            assert_eq!(
                self.lookup(server, &k.acme, &with(json!({"subject": BOB})))["response"],
                json!({"v": "bob's"})
            );
        }

        // A tenant's erasure is for admin keys only.
        let (status, _) = self.delete(&self.b, &k.acme, "/v1/tenants/globex");
        assert_eq!(status, 403);
        let (status, body) = self.delete(&self.b, &k.admin, "/v1/tenants/globex");
        assert_eq!(status, 200, "{body}");
        // Replica A drops its L1 copy when the erasure's message arrives: within a second.
        let started = Instant::now();
        while self.lookup(&self.a, &k.globex, &request)["hit"] != false {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "replica A served globex's entry a second after the tenant's erasure"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            self.lookup(&self.a, &k.acme, &request)["response"],
            json!({"v": "acme"})
        );

        // Shared entries: stored by `store_shared` keys only, read by every tenant, no TTL shown.
        let shared = json!({"text": "bonjour", "operation": "translate", "response": "hello"});
        assert_eq!(self.store(&self.a, &k.acme, &shared), 403);
        assert_eq!(self.store(&self.a, &k.sharer, &shared), 201);
        let hit = self.lookup(
            &self.b,
            &k.globex,
            &json!({"text": "bonjour", "operation": "translate"}),
        );
        assert_eq!(hit["response"], "hello", "{hit}");
        assert!(hit.get("ttl_remaining_seconds").is_none(), "{hit}");
        // An admin caller sees neither the TTL nor which key (of which tenant) stored it.
        let hit = self.lookup(
            &self.b,
            &k.auditor,
            &json!({"text": "bonjour", "operation": "translate"}),
        );
        assert_eq!(hit["response"], "hello", "{hit}");
        assert!(hit.get("ttl_remaining_seconds").is_none(), "{hit}");
        assert!(hit.get("written_by").is_none(), "{hit}");
        let per_request = json!({"text": "x", "operation": "qa", "shared": true, "response": 1});
        assert_eq!(self.store(&self.a, &k.sharer, &per_request), 201);
        let hit = self.lookup(
            &self.a,
            &k.globex,
            &json!({"text": "x", "operation": "qa", "shared": true}),
        );
        assert_eq!(hit["response"], 1, "{hit}");
        assert!(hit.get("ttl_remaining_seconds").is_none(), "{hit}");
        let bad = json!({"text": "x", "operation": "qa", "shared": true, "subject": ANN});
        assert_eq!(self.lookup_status(&self.a, &k.globex, &bad), 400);

        // Live events of a shared entry's lease need `store_shared`, as storing it does: a
        // `store` key of one tenant must not push events every tenant follows, even with the
        // token. Taking that lease needs `store_shared` too: a `store` key is refused.
        let shared_lease =
            json!({"text": "live shared", "operation": "translate", "lease": {"ttl_ms": 10_000}});
        assert_eq!(self.lookup_status(&self.a, &k.acme, &shared_lease), 403);
        let leased = self.lookup(
            &self.a,
            &k.sharer,
            &json!({"text": "live shared", "operation": "translate", "lease": {"ttl_ms": 10_000}}),
        );
        let token = leased["lease"]["token"].as_str().unwrap();
        let append = |key: &str| {
            self.http
                .post(format!("{}/v1/cache/leases/{token}/events", self.a.base))
                .bearer_auth(key)
                .json(&json!({"from": 0, "events": [{"data": "injected?"}]}))
                .send()
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(
            append(&k.acme),
            403,
            "a store key appended to a shared stream"
        );
        assert_eq!(append(&k.sharer), 200);

        // A tenant's lease token acts for that tenant only: another tenant's key holding the
        // token (with `store`) can neither publish events on it nor release it.
        let tenant_lease =
            json!({"text": "acme's lease", "operation": "qa", "lease": {"ttl_ms": 10_000}});
        let leased = self.lookup(&self.a, &k.acme, &tenant_lease);
        let token = leased["lease"]["token"].as_str().unwrap().to_owned();
        let appended = self
            .http
            .post(format!("{}/v1/cache/leases/{token}/events", self.b.base))
            .bearer_auth(&k.globex)
            .json(&json!({"from": 0, "events": [{"data": "injected?"}]}))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(appended, 409, "globex published on acme's lease");
        let lease_path = format!("/v1/cache/leases/{token}");
        let (status, body) = self.delete(&self.b, &k.globex, &lease_path);
        assert_eq!((status, &body["released"]), (200, &json!(false)), "{body}");
        let (status, body) = self.delete(&self.b, &k.acme, &lease_path);
        assert_eq!((status, &body["released"]), (200, &json!(true)), "{body}");

        // A wrong key on a lease's path (B's first authentication failure, logged as it
        // happens): the token, a capability, is logged as the route's template, never as sent.
        const TOKEN: &str = "lease-token-7f3a9c51";
        let (status, _) = self.delete(&self.b, "not-a-key", &format!("/v1/cache/leases/{TOKEN}"));
        assert_eq!(status, 401);

        // No subject id or lease token in any log line (request paths included).
        let mut templated = false;
        for log in &self.logs {
            for file in [log.clone(), log.with_extension("out")] {
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                templated |= text.contains("/v1/cache/leases/{token}");
                for id in [ANN, BOB, "ann-4711", TOKEN] {
                    assert!(!text.contains(id), "{id} in {}", file.display());
                }
            }
        }
        assert!(
            templated,
            "the refused lease request was logged by its route"
        );
    }

    fn lookup_status(&self, server: &Server, key: &str, body: &Value) -> u16 {
        self.http
            .post(format!("{}/v1/cache/lookup", server.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }
}

#[test]
fn tenants_subjects_and_erasure_on_two_replicas_of_one_redis() {
    let stack = Stack::start();
    let fleet = Fleet::start(
        |listen| stack.server_env(&stack.redis_url(), listen),
        stack.path(),
    );
    fleet.check();
    // Nothing of the ids in Redis either.
    let mut admin = stack.admin();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    for key in &keys {
        for id in [ANN, BOB, "acme", "globex"] {
            assert!(!key.contains(id), "{id} in {key}");
        }
        if let Ok(value) = redis::cmd("GET").arg(key).query::<Vec<u8>>(&mut admin) {
            for id in [ANN, BOB] {
                assert!(
                    !value.windows(id.len()).any(|w| w == id.as_bytes()),
                    "{id} in the value of {key}"
                );
            }
        }
    }
}

#[test]
fn tenants_subjects_and_erasure_on_two_replicas_of_a_cluster() {
    let stack = Stack::start();
    let cluster = RedisCluster::start(ClusterOptions::default());
    let fleet = Fleet::start(
        |listen| stack.cluster_server_env(&cluster, listen),
        stack.path(),
    );
    fleet.check();
}
