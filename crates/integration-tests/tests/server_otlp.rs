//! The OTLP path: a test receiver (OTLP/HTTP protobuf, decoded with the OpenTelemetry proto types)
//! gets the server's metrics pushed through `OTEL_EXPORTER_OTLP_ENDPOINT`; names, units and a
//! scripted counter value are checked.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

#[path = "common/server.rs"]
mod common;
use common::{Stack, start_server};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message as _;
use sealcache_config_gen::layout;
use sealcache_testkit::free_port;
use sealcache_testkit::otlp::receiver;

#[test]
fn metrics_are_pushed_over_otlp_http_with_names_units_and_values() {
    let (otlp_port, got) = receiver();
    let stack = Stack::start();
    let mut vars = stack.server_env(&stack.redis_url(), &format!("127.0.0.1:{}", free_port()));
    vars.extend([
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://127.0.0.1:{otlp_port}"),
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), "500".to_owned()),
        (
            "OTEL_SERVICE_NAME".to_owned(),
            "sealcache-otlp-test".to_owned(),
        ),
    ]);
    let server = start_server(&vars, None);
    let http = reqwest::blocking::Client::new();
    let api = server.base.clone();
    // The script: two requests with a bad API key, one lookup miss.
    for _ in 0..2 {
        assert_eq!(
            http.get(format!("{api}/internal/cache/metrics"))
                .bearer_auth("bad")
                .send()
                .unwrap()
                .status(),
            401
        );
    }
    let key = stack.secret(layout::API_KEY);
    let r = http
        .post(format!("{api}/v1/cache/lookup"))
        .bearer_auth(key.trim())
        .json(&serde_json::json!({"text": "x", "operation": "qa"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // Wait for a push that carries the scripted values.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (units, api_auth_failed, lookups_miss, service) = loop {
        let requests: Vec<ExportMetricsServiceRequest> = got
            .lock()
            .unwrap()
            .metrics
            .iter()
            .filter_map(|b| ExportMetricsServiceRequest::decode(b.as_slice()).ok())
            .collect();
        let mut units = std::collections::BTreeMap::new();
        let (mut auth, mut miss, mut service) = (None, None, None);
        for req in &requests {
            for rm in &req.resource_metrics {
                for kv in rm
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default()
                {
                    if kv.key == "service.name" {
                        service = kv.value.map(|v| format!("{:?}", v.value));
                    }
                }
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        units.insert(m.name.clone(), m.unit.clone());
                        if let Some(Data::Sum(sum)) = &m.data {
                            for dp in &sum.data_points {
                                let attr = |k: &str| {
                                    dp.attributes
                                        .iter()
                                        .find(|a| a.key == k)
                                        .and_then(|a| a.value.clone())
                                        .map(|v| format!("{:?}", v.value))
                                };
                                let value = match dp.value {
                                    Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(i)) => i,
                                    _ => -1,
                                };
                                if m.name == "sealcache.security.events"
                                    && attr("type").is_some_and(|t| t.contains("api_auth_failed"))
                                {
                                    auth = Some(value);
                                }
                                if m.name == "sealcache.lookups"
                                    && attr("result").is_some_and(|t| t.contains("\"miss\""))
                                {
                                    miss = Some(value);
                                }
                            }
                        }
                    }
                }
            }
        }
        if auth == Some(2) && miss == Some(1) {
            break (units, auth, miss, service);
        }
        assert!(
            Instant::now() < deadline,
            "no push with the scripted values arrived ({} requests, auth {auth:?}, miss {miss:?})",
            requests.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(server);
    assert_eq!(api_auth_failed, Some(2));
    assert_eq!(lookups_miss, Some(1));
    assert!(service.unwrap_or_default().contains("sealcache-otlp-test"));
    for (name, unit) in [
        ("sealcache.security.events", "{event}"),
        ("sealcache.lookups", "{lookup}"),
        ("sealcache.operation.duration", "s"),
        ("db.client.operation.duration", "s"),
        ("http.server.request.duration", "s"),
    ] {
        assert_eq!(
            units.get(name).map(String::as_str),
            Some(unit),
            "{name} in {units:?}"
        );
    }
}
