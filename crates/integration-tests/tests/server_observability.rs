//! The shipped dashboards and alerts, proven against live metrics: Debian's Prometheus scrapes a
//! locally started sealcache-server (TLS + ACL redis-server), a scripted workload with known counts
//! runs, then every panel query and every alert expression of the shipped files is run against
//! Prometheus' HTTP API.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;

#[path = "common/server.rs"]
mod common;
use common::{Stack, start_server};
use serde_json::{Value, json};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn observability(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/observability")
        .join(file)
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn query(http: &Client, prom: &str, expr: &str) -> Vec<Value> {
    let encoded: String = expr
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let r: Value = http
        .get(format!("{prom}/api/v1/query?query={encoded}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{expr}: {r}");
    r["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn scalar(result: &[Value]) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn every_panel_and_alert_has_live_data_and_the_figures_match_the_script() {
    // promtool accepts the shipped files.
    let (rules_file, config_file) = (observability("alerts.yml"), observability("prometheus.yml"));
    for args in [
        vec!["check", "rules", rules_file.to_str().unwrap()],
        vec![
            "check",
            "config",
            "--syntax-only",
            config_file.to_str().unwrap(),
        ],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .output()
            .expect("promtool (Debian package prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let stack = Stack::start();
    let d = stack.path();
    let p = |rel: &str| stack.file(rel);
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    vars.extend([
        ("SEALCACHE_L1_CAPACITY".to_owned(), "0".to_owned()),
        ("SEALCACHE_STATUS_INTERVAL_SECS".to_owned(), "1".to_owned()),
    ]);
    let server = start_server(&vars, None);
    let (api, api_port) = (server.base.clone(), server.port);
    let http = Client::new();

    // Prometheus: the shipped job (bearer token from the API key file), local target, fast intervals,
    // the shipped alert rules.
    let prom_port = free_port();
    let prom_dir = tempfile::tempdir().unwrap();
    let prom_config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: sealcache-backend\n    metrics_path: /metrics\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    static_configs:\n      - targets: [\"127.0.0.1:{api_port}\"]\n",
            observability("alerts.yml").display(),
            p(layout::API_KEY)
        ),
    )
    .unwrap();
    let _prometheus = Kill(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package)"),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_until("Prometheus", 30, || {
        http.get(format!("{prom}/-/ready"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    wait_until("the first scrape", 20, || {
        !query(&http, &prom, "up{job=\"sealcache-backend\"} == 1").is_empty()
    });

    // The script: 10 stores, 30 hits, 10 misses, 1 value tampered in Redis (a miss and a decrypt
    // failure), 3 bad API keys. Two phases, so every rate has increases between scrapes.
    let key = std::fs::read_to_string(d.join(layout::API_KEY)).unwrap();
    let auth = |r: reqwest::blocking::RequestBuilder| r.bearer_auth(&key);
    let (mut hits, mut misses) = (0u32, 0u32);
    for phase in 0..2 {
        for i in 0..5 {
            let n = phase * 5 + i;
            let body = json!({"text": format!("doc {n}"), "operation": if n % 2 == 0 { "summarize" } else { "qa" }, "response": {"answer": "x".repeat(600), "n": n}});
            assert_eq!(
                auth(http.put(format!("{api}/v1/cache/entries")))
                    .json(&body)
                    .send()
                    .unwrap()
                    .status(),
                201
            );
        }
        for i in 0..15 {
            let n = phase * 5 + i % 5;
            let body = json!({"text": format!("doc {n}"), "operation": if n % 2 == 0 { "summarize" } else { "qa" }});
            let r: Value = auth(http.post(format!("{api}/v1/cache/lookup")))
                .json(&body)
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(r["hit"], true);
            hits += 1;
        }
        for i in 0..5 {
            let r: Value = auth(http.post(format!("{api}/v1/cache/lookup")))
                .json(&json!({"text": format!("never {phase} {i}"), "operation": "qa"}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            assert_eq!(r["hit"], false);
            misses += 1;
        }
        std::thread::sleep(Duration::from_millis(2500));
    }
    // Tamper with doc 0 in Redis (flip its last byte as the admin user), then look it up.
    let ring = sealcache_codec::Keyring::from_file(d.join(layout::ENCRYPTION_KEYRING)).unwrap();
    let redis_key = sealcache::KeyScheme::new("ai_cache", ring.name_secret())
        .unwrap()
        .ai_key(&sealcache::AiRequest::new("summarize", "doc 0"))
        .unwrap();
    let mut admin = stack.admin();
    let mut raw: Vec<u8> = redis::cmd("GET").arg(&redis_key).query(&mut admin).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(&redis_key)
        .arg(raw)
        .query(&mut admin)
        .unwrap();
    let r: Value = auth(http.post(format!("{api}/v1/cache/lookup")))
        .json(&json!({"text": "doc 0", "operation": "summarize"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["hit"], false, "a tampered value is never served");
    misses += 1;
    for bad in ["wrong-1", "wrong-2", "wrong-3"] {
        assert_eq!(
            http.post(format!("{api}/v1/cache/lookup"))
                .bearer_auth(bad)
                .json(&json!({"text": "x", "operation": "qa"}))
                .send()
                .unwrap()
                .status(),
            401
        );
    }

    // Let Prometheus scrape the final state and evaluate the rules.
    let decrypt = "sum(sealcache_security_events_total{type=\"decrypt_failed\"})";
    wait_until("the final counters in Prometheus", 20, || {
        query(&http, &prom, decrypt)
            .first()
            .is_some_and(|v| v["value"][1] == "1")
    });
    std::thread::sleep(Duration::from_secs(3));

    // Every panel query of the shipped dashboard returns data.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(observability("grafana/dashboards/sealcache.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 14);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let result = query(&http, &prom, expr);
            assert!(
                !result.is_empty(),
                "panel {:?}: `{expr}` returned no data",
                panel["title"]
            );
        }
    }

    // The figures equal the script.
    let expected_ratio = f64::from(hits) / f64::from(hits + misses);
    let ratio = scalar(&query(
        &http,
        &prom,
        panels[0]["targets"][0]["expr"].as_str().unwrap(),
    ));
    assert!(
        (ratio - expected_ratio).abs() <= 0.01,
        "hit ratio {ratio} vs scripted {expected_ratio}"
    );
    assert_eq!(scalar(&query(&http, &prom, decrypt)), 1.0);
    assert_eq!(
        scalar(&query(
            &http,
            &prom,
            "sum(sealcache_security_events_total{type=\"api_auth_failed\"})"
        )),
        3.0
    );

    // Every alert expression runs; every rule's data query has data; the decrypt alert fires.
    let rules = std::fs::read_to_string(observability("alerts.yml")).unwrap();
    let mut alert_count = 0;
    for line in rules.lines().map(str::trim) {
        if let Some(expr) = line.strip_prefix("expr: ") {
            let _ = query(&http, &prom, expr);
            alert_count += 1;
        }
        if let Some(expr) = line.strip_prefix("data_query: ") {
            assert!(
                !query(&http, &prom, expr).is_empty(),
                "alert data query `{expr}` returned no data"
            );
        }
    }
    assert_eq!(alert_count, 5);
    wait_until("the decrypt-failure alert to fire", 20, || {
        let alerts: Value = http
            .get(format!("{prom}/api/v1/alerts"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        alerts["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "SealcacheDecryptFailure" && a["state"] == "firing"
            })
    });
}
