//! Scoped API keys on the real server binary against a real TLS + ACL redis-server: a key's
//! scopes decide what it may do (403 `forbidden`, counted `api_scope_denied`), the legacy
//! `API_KEY_FILE` keeps every scope, `SIGHUP` adds and removes keys without a restart, a bad keys
//! file on reload keeps the running keys and a bad one at start refuses to start, the status
//! counts keys per scope, and neither a key nor its digest ever reaches the log.

// Test code: a failed unwrap is a failed assertion.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::needless_pass_by_value
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder};
use sealcache_config_gen::api_keys::{Digest, KeyId, Scopes, Tenant, load, mint};
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use serde_json::{Value, json};

#[path = "common/server.rs"]
mod common;
use common::{Server, Stack, start_server};

fn mint_key(path: &Path, id: &str, tenant: &str, scopes: &str) -> String {
    mint(
        path,
        &KeyId::new(id).unwrap(),
        &Tenant::new(tenant).unwrap(),
        Scopes::parse_list(scopes).unwrap(),
    )
    .unwrap()
    .expose_secret()
    .to_owned()
}

struct Api {
    http: Client,
    base: String,
}

impl Api {
    fn call(&self, key: &str, request: RequestBuilder) -> (u16, Value) {
        let response = request.bearer_auth(key).send().unwrap();
        let status = response.status().as_u16();
        let body = response.json().unwrap_or(Value::Null);
        (status, body)
    }

    fn lookup(&self, key: &str, text: &str) -> (u16, Value) {
        self.call(
            key,
            self.http
                .post(format!("{}/v1/cache/lookup", self.base))
                .json(&json!({"text": text, "operation": "qa"})),
        )
    }

    fn store(&self, key: &str, text: &str) -> (u16, Value) {
        self.call(
            key,
            self.http
                .put(format!("{}/v1/cache/entries", self.base))
                .json(&json!({"text": text, "operation": "qa", "response": {"answer": text}})),
        )
    }

    fn invalidate(&self, key: &str, body: Value) -> (u16, Value) {
        self.call(
            key,
            self.http
                .post(format!("{}/internal/cache/invalidate", self.base))
                .json(&body),
        )
    }

    fn get(&self, key: &str, path: &str) -> (u16, Value) {
        self.call(key, self.http.get(format!("{}{path}", self.base)))
    }

    fn delete(&self, key: &str, path: &str) -> (u16, Value) {
        self.call(key, self.http.delete(format!("{}{path}", self.base)))
    }

    fn status(&self, admin: &str) -> Value {
        let (code, body) = self.get(admin, "/internal/cache/security-status");
        assert_eq!(code, 200, "{body}");
        body
    }

    fn events(&self, admin: &str, kind: &str) -> u64 {
        self.status(admin)["security_events_by_type"][kind]
            .as_u64()
            .unwrap_or(0)
    }

    /// Waits until `key` gets `want` from a lookup.
    fn until_lookup(&self, key: &str, want: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, _) = self.lookup(key, "reload probe");
            if code == want {
                return;
            }
            assert!(Instant::now() < deadline, "lookup {code}, want {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn forbidden(answer: (u16, Value), what: &str) {
    assert_eq!(answer.0, 403, "{what}: {}", answer.1);
    assert_eq!(answer.1["error"]["code"], "forbidden", "{what}");
}

fn hup(server: &Server) {
    sealcache_testkit::send_signal(server.child.id(), sealcache_testkit::Signal::HUP).unwrap();
}

fn vars_with_keys(stack: &Stack, keys_file: &Path) -> Vec<(String, String)> {
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    vars.push((
        "SEALCACHE_API_KEYS_FILE".to_owned(),
        keys_file.to_string_lossy().into_owned(),
    ));
    vars.push(("SEALCACHE_LOG".to_owned(), "debug".to_owned()));
    vars
}

/// The keys file without the key `id` (as an operator revokes one).
fn remove_key(path: &Path, id: &str) {
    let kept: String = load(path)
        .unwrap()
        .entries()
        .iter()
        .filter(|e| e.id.as_str() != id)
        .map(|e| e.to_toml() + "\n")
        .collect();
    std::fs::write(path, kept).unwrap();
}

#[test]
fn scopes_are_enforced_and_sighup_reloads_the_keys_file_without_a_restart() {
    let stack = Stack::start();
    let keys_file: PathBuf = stack.path().join("api_keys.toml");
    let reader = mint_key(&keys_file, "reader", "acme", "lookup");
    let writer = mint_key(&keys_file, "writer", "acme", "lookup,store");
    let operator = mint_key(&keys_file, "operator", "acme", "admin");
    let legacy = stack.secret(layout::API_KEY);
    let log = stack.path().join("server.log");
    let server = start_server(&vars_with_keys(&stack, &keys_file), Some(&log));
    let api = Api {
        http: Client::new(),
        base: server.base.clone(),
    };

    // The posture: counts only (tenants acme and default; the legacy key holds every scope).
    let keys = api.status(&legacy)["api_keys"].clone();
    assert_eq!(keys["keys_file"], true);
    assert_eq!(keys["scoped_keys"], 3);
    assert_eq!(keys["legacy_keys"], 1);
    assert_eq!(keys["tenants"], 2);
    assert_eq!(keys["keys_per_scope"]["lookup"], 3);
    assert_eq!(keys["keys_per_scope"]["store"], 2);
    assert_eq!(keys["keys_per_scope"]["admin"], 2);
    assert_eq!(keys["keys_per_scope"]["erase"], 1);
    assert_eq!(keys["keys_per_scope"]["store_shared"], 1);
    assert_eq!(keys["reloads_refused"], 0);

    // A lookup-only key: lookups, and 403 forbidden everywhere else, each counted.
    let denied_before = api.events(&legacy, "api_scope_denied");
    assert_eq!(api.store(&writer, "asked once").0, 201);
    let (code, body) = api.lookup(&reader, "asked once");
    assert_eq!((code, &body["hit"]), (200, &json!(true)), "{body}");
    forbidden(api.store(&reader, "not mine to write"), "store");
    forbidden(
        api.invalidate(&reader, json!({"operation": "qa"})),
        "invalidate",
    );
    forbidden(
        api.invalidate(&reader, json!({"all": true, "confirm": "invalidate-all"})),
        "clear",
    );
    forbidden(
        api.delete(&reader, "/v1/subjects/someone"),
        "erase a subject",
    );
    forbidden(api.delete(&reader, "/v1/tenants/acme"), "erase a tenant");
    forbidden(
        api.delete(&reader, "/v1/cache/leases/abc"),
        "abandon a lease",
    );
    forbidden(
        api.get(&reader, "/internal/cache/security-status"),
        "status",
    );
    forbidden(api.get(&reader, "/internal/cache/metrics"), "metrics");
    forbidden(api.get(&reader, "/metrics"), "prometheus metrics");
    // The body is not read before the scope check: even a malformed one is 403.
    let (code, _) = api.call(
        &reader,
        api.http
            .put(format!("{}/v1/cache/entries", api.base))
            .header("content-type", "application/json")
            .body("{not json"),
    );
    assert_eq!(code, 403);
    assert_eq!(api.events(&legacy, "api_scope_denied") - denied_before, 10);
    assert!(
        api.lookup(&reader, "asked once").1["hit"] == json!(true),
        "nothing was removed"
    );

    // clear = admin; an operation's invalidation needs `invalidate`, which admin alone lacks.
    forbidden(
        api.invalidate(&operator, json!({"operation": "qa"})),
        "admin invalidating an operation",
    );
    let (code, body) = api.invalidate(&operator, json!({"all": true, "confirm": "invalidate-all"}));
    assert_eq!(code, 200, "{body}");
    forbidden(api.store(&operator, "admin only"), "admin storing");

    // The legacy key holds every scope.
    assert_eq!(api.store(&legacy, "legacy").0, 201);
    assert_eq!(api.lookup(&legacy, "legacy").0, 200);
    assert_eq!(api.invalidate(&legacy, json!({"operation": "qa"})).0, 200);
    let (code, body) = api.invalidate(&legacy, json!({"all": true, "confirm": "invalidate-all"}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(api.get(&legacy, "/internal/cache/metrics").0, 200);
    assert_eq!(api.get(&legacy, "/metrics").0, 200);

    // SIGHUP adds a key minted while the server runs...
    let late = mint_key(&keys_file, "late", "globex", "lookup,store");
    assert_eq!(api.lookup(&late, "reload probe").0, 401);
    hup(&server);
    api.until_lookup(&late, 200);
    assert_eq!(api.store(&late, "late").0, 201);
    assert_eq!(api.status(&legacy)["api_keys"]["tenants"], 3);
    // ... and removes a revoked one.
    remove_key(&keys_file, "reader");
    hup(&server);
    api.until_lookup(&reader, 401);
    assert_eq!(api.lookup(&writer, "reload probe").0, 200);

    // A bad file on reload: refused, counted, the running keys keep serving.
    let weak_before = api.events(&legacy, "config_weak");
    let good = std::fs::read_to_string(&keys_file).unwrap();
    std::fs::write(
        &keys_file,
        format!("{good}\n[[key]]\nid = \"broken\"\ntenant = \"acme\"\nscopes = [\"lookup\"]\nsha256 = \"{reader}\"\n"),
    )
    .unwrap();
    hup(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.status(&legacy)["api_keys"]["reloads_refused"] != 1 {
        assert!(Instant::now() < deadline, "the bad file was not refused");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(api.events(&legacy, "config_weak"), weak_before + 1);
    assert_eq!(api.lookup(&late, "reload probe").0, 200);
    assert_eq!(api.lookup(&writer, "reload probe").0, 200);
    assert_eq!(api.lookup(&reader, "reload probe").0, 401);
    assert_eq!(api.status(&legacy)["api_keys"]["scoped_keys"], 3);
    // Fixed: the next reload applies.
    std::fs::write(&keys_file, good).unwrap();
    remove_key(&keys_file, "late");
    hup(&server);
    api.until_lookup(&late, 401);

    // A file its group or others could write (anyone who can write it can grant any scope):
    // refused on reload like a bad one, the running keys keep serving.
    let mode = |m: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(0o620);
    hup(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.status(&legacy)["api_keys"]["reloads_refused"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the group-writable file was applied"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(api.lookup(&writer, "reload probe").0, 200);
    mode(0o600);
    // A file that is gone revokes every scoped key (the operator deleted it); the legacy keys
    // stay. The old code kept serving the deleted file's keys.
    let weak_before = api.events(&legacy, "config_weak");
    std::fs::remove_file(&keys_file).unwrap();
    hup(&server);
    api.until_lookup(&writer, 401);
    assert_eq!(api.lookup(&operator, "reload probe").0, 401);
    assert_eq!(api.lookup(&legacy, "reload probe").0, 200);
    assert_eq!(api.status(&legacy)["api_keys"]["scoped_keys"], 0);
    assert_eq!(api.events(&legacy, "config_weak"), weak_before + 1);
    assert!(server.child.id() > 0, "one process throughout");

    // The log: the refusal names line and field; no key and no digest anywhere; denials name
    // the key id and the scope.
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("line") && text.contains("field `sha256`"),
        "the refusal names line and field"
    );
    assert!(text.contains("api_scope_denied") && text.contains("API key reader lacks scope store"));
    for key in [&reader, &writer, &operator, &late, &legacy] {
        let digest = Digest::of(key.as_bytes()).to_hex();
        assert!(!text.contains(key.as_str()), "a key in the log");
        assert!(!text.contains(&digest), "a digest in the log");
        assert!(!text.contains(&digest[..16]), "part of a digest in the log");
    }
}

#[test]
fn a_bad_keys_file_refuses_to_start_naming_line_and_field_never_the_key() {
    let stack = Stack::start();
    let keys_file = stack.path().join("api_keys.toml");
    let key = mint_key(&keys_file, "web", "acme", "lookup");
    // An operator pasted the key where its digest belongs.
    let text = std::fs::read_to_string(&keys_file).unwrap();
    let digest = Digest::of(key.as_bytes()).to_hex();
    std::fs::write(&keys_file, text.replace(&digest, &key)).unwrap();
    let output = Command::new(common::server_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars_with_keys(&stack, &keys_file))
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a bad keys file must refuse to start"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("SEALCACHE_API_KEYS_FILE") && stderr.contains("line 5: field `sha256`"),
        "{stderr}"
    );
    assert!(!stderr.contains(&key), "the key in the error");
    // A file others can write refuses to start, whatever it holds.
    std::fs::write(&keys_file, &text).unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(0o602)).unwrap();
    }
    // Bounded: a server that wrongly starts is killed (and fails the test) instead of hanging it.
    let output = Command::new("timeout")
        .arg("20")
        .arg(common::server_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars_with_keys(&stack, &keys_file))
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a world-writable keys file must refuse to start"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("written by its group or others"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A missing file refuses too.
    std::fs::remove_file(&keys_file).unwrap();
    let output = Command::new(common::server_binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars_with_keys(&stack, &keys_file))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

/// An operation's invalidation removes that operation's entries of every tenant (entry keys are
/// keyed digests), so a key of a tenant other than `default` needs `admin` as well as
/// `invalidate`: a tenant's `invalidate` key is refused (403, counted) and removes nothing of
/// another tenant's; a `default` tenant's `invalidate` key and an operator's `invalidate,admin`
/// key of any tenant may. The old code let acme's key remove globex's answers.
#[test]
fn a_tenant_key_cannot_invalidate_every_tenants_entries() {
    let stack = Stack::start();
    let keys_file: PathBuf = stack.path().join("api_keys.toml");
    let acme = mint_key(
        &keys_file,
        "acme-invalidate",
        "acme",
        "lookup,store,invalidate",
    );
    let globex = mint_key(&keys_file, "globex-app", "globex", "lookup,store");
    let own = mint_key(&keys_file, "ops", "default", "invalidate");
    let operator = mint_key(&keys_file, "acme-operator", "acme", "invalidate,admin");
    let reader = mint_key(&keys_file, "acme-reader", "acme", "lookup");
    let legacy = stack.secret(layout::API_KEY);
    let server = start_server(&vars_with_keys(&stack, &keys_file), None);
    let api = Api {
        http: Client::new(),
        base: server.base.clone(),
    };
    assert_eq!(api.store(&globex, "globex's question").0, 201);
    let denied_before = api.events(&legacy, "api_scope_denied");
    forbidden(
        api.invalidate(&acme, json!({"operation": "qa"})),
        "a tenant's key invalidating every tenant's qa entries",
    );
    assert_eq!(api.events(&legacy, "api_scope_denied"), denied_before + 1);
    let (code, body) = api.lookup(&globex, "globex's question");
    assert_eq!(
        (code, &body["hit"]),
        (200, &json!(true)),
        "globex's answer stays: {body}"
    );
    let (code, body) = api.invalidate(&own, json!({"operation": "qa"}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["invalidated"], 1);
    assert_eq!(api.store(&globex, "globex's question").0, 201);
    let (code, body) = api.invalidate(&operator, json!({"operation": "qa"}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["invalidated"], 1);

    // A lease is a promise to store: a lookup-only key may look up, never lease.
    let lease = |key: &str| {
        api.call(
            key,
            api.http
                .post(format!("{}/v1/cache/lookup", api.base))
                .json(&json!({"text": "leased", "operation": "qa", "lease": {"ttl_ms": 30000}})),
        )
    };
    forbidden(lease(&reader), "a lookup-only key taking a lease");
    assert_eq!(api.lookup(&reader, "leased").0, 200);
    let (code, body) = lease(&acme);
    assert_eq!(code, 200, "{body}");
    let token = body["lease"]["token"].as_str().unwrap().to_owned();

    // One append publishes at most 1000 events (each is one sealed write); nothing of a refused
    // one is published.
    let append = |count: usize| {
        let events: Vec<Value> = (0..count)
            .map(|i| json!({"data": format!("e{i}")}))
            .collect();
        api.call(
            &acme,
            api.http
                .post(format!("{}/v1/cache/leases/{token}/events", api.base))
                .json(&json!({"from": 0, "events": events})),
        )
    };
    let (code, body) = append(1001);
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    let (code, body) = append(3);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["next"], 3);
}

/// The id of the API key that stored an entry is sealed inside it and shown as `written_by` to
/// callers holding `admin`, never to others (and never in clear in Redis).
#[test]
fn written_by_names_the_storing_key_to_admin_callers_only() {
    let stack = Stack::start();
    let keys_file: PathBuf = stack.path().join("api_keys.toml");
    let writer = mint_key(&keys_file, "web-app_7", "acme", "lookup,store");
    let operator = mint_key(&keys_file, "acme-ops", "acme", "lookup,admin");
    let reader = mint_key(&keys_file, "acme-reader", "acme", "lookup");
    let server = start_server(&vars_with_keys(&stack, &keys_file), None);
    let api = Api {
        http: Client::new(),
        base: server.base.clone(),
    };
    assert_eq!(api.store(&writer, "who wrote this").0, 201);
    let (code, body) = api.lookup(&operator, "who wrote this");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["hit"], true, "{body}");
    assert_eq!(body["written_by"], "web-app_7", "{body}");
    for key in [&reader, &writer] {
        let (code, body) = api.lookup(key, "who wrote this");
        assert_eq!((code, &body["hit"]), (200, &json!(true)), "{body}");
        assert!(body.get("written_by").is_none(), "{body}");
    }
    // The legacy keys are `legacy`; the id is nowhere in Redis in clear.
    let legacy = stack.secret(layout::API_KEY);
    let text = "written with the legacy key";
    let stored = api.call(
        &legacy,
        api.http
            .put(format!("{}/v1/cache/entries", api.base))
            .json(&json!({"text": text, "operation": "qa", "response": {"answer": 1}})),
    );
    assert_eq!(stored.0, 201);
    let (_, body) = api.lookup(&legacy, text);
    assert_eq!(body["written_by"], "legacy", "{body}");
    let mut admin = stack.admin();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(!key.contains("web-app_7"), "{key}");
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query(&mut admin)
            .unwrap_or(None);
        let value = value.unwrap_or_default();
        assert!(
            !value.windows(9).any(|w| w == b"web-app_7"),
            "a writer id in clear at {key}"
        );
    }
}
