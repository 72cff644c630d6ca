//! `sealcache-server`: loads the settings, applies the strict policy, serves the API.

// The binary reports start-up refusals on stderr.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sealcache_config_gen::SecuritySettings;
use sealcache_env_detect::{FeatureContext, detect};
use sealcache_monitor::{AclLogPoller, CacheObserver, Telemetry};
use sealcache_server::{ApiKeys, AppState, DEFAULT_BODY_LIMIT, app};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--healthcheck") {
        return healthcheck();
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("❌ cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("❌ sealcache-server refused to start: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALCACHE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("SEALCACHE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run() -> anyhow::Result<()> {
    let settings = SecuritySettings::load().context("invalid settings")?;
    let environment = detect(FeatureContext::SecurityEnforcement);
    tracing::info!(
        environment = %environment.environment,
        confidence = environment.confidence,
        detected_by = %environment.detected_by,
        "environment detected"
    );
    if environment.development_override() {
        tracing::warn!("REDIS_SECURITY_MODE=development: the development override is active");
    }
    let keys = ApiKeys::new(settings.api_keys.iter().map(|k| k.expose_secret()));
    if keys.is_empty() && environment.strict_policy() {
        anyhow::bail!(
            "no API key is configured (API_KEY_FILE, API_KEY or ADDITIONAL_API_KEYS); the API refuses to run open in {}",
            environment.environment
        );
    }
    let service =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "sealcache-server".to_owned());
    let telemetry = Telemetry::builder(&service, environment.environment.as_str())
        .with_prometheus()?
        .with_otlp_if_configured(|v| std::env::var(v).ok())?
        .build();
    let otel: Arc<dyn CacheObserver> = Arc::new(telemetry.observer());
    let mut options = sealcache::CacheOptions::default();
    if let Some(capacity) = std::env::var("SEALCACHE_L1_CAPACITY")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options = options.with_l1_capacity(capacity);
    }
    let cache = sealcache::from_settings_with(&settings, environment.clone(), Some(otel), options)
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // Server-side events: ACL LOG as the monitor user, when one is configured.
    if let (Some(user), Some(password)) = (
        &settings.redis_monitor_username,
        &settings.redis_monitor_password,
    ) {
        let mut config = sealcache::RedisConfig::new(settings.redis_url.clone())
            .acl_user(user.clone(), password.expose_secret());
        config.ca_path = settings.redis_tls_ca_path.clone();
        config.client_cert_path = settings.redis_tls_cert_path.clone();
        config.client_key_path = settings.redis_tls_key_path.clone();
        let observer = cache.observer().clone();
        tokio::spawn(async move {
            loop {
                match config.client() {
                    Ok(client) => match client.get_multiplexed_async_connection().await {
                        Ok(conn) => {
                            AclLogPoller::new()
                                .run(conn, observer.clone(), Duration::from_secs(10))
                                .await;
                        }
                        Err(e) => {
                            tracing::warn!(kind = ?e.kind(), "ACL LOG poller cannot connect; retrying");
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "ACL LOG poller disabled");
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        });
    }

    let gauge_every = std::env::var("SEALCACHE_STATUS_INTERVAL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    sealcache_server::telemetry::spawn_status_gauges(
        cache.clone(),
        &telemetry.meter(),
        Duration::from_secs(gauge_every),
        Duration::from_secs(gauge_every * 20),
    );
    let state = AppState {
        redis_host: sealcache::RedisConfig::new(settings.redis_url.clone()).host_and_port(),
        cache,
        telemetry: telemetry.clone(),
        keys,
        isolation_claimed: settings.redis_network_isolation,
        metrics_public: settings.metrics_public,
        body_limit: std::env::var("SEALCACHE_BODY_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_BODY_LIMIT),
    };
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(listen = %settings.listen, "sealcache-server listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    let _ = telemetry.shutdown();
    tracing::info!("sealcache-server stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown signal received, draining requests");
}

/// `sealcache-server --healthcheck`: GET /health on the local listener (the container health check;
/// no curl in the image). Exit 0 when it answers 200.
fn healthcheck() -> ExitCode {
    use std::io::{Read as _, Write as _};
    let listen = std::env::var("SEALCACHE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let port = listen.rsplit(':').next().unwrap_or("8080");
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port.parse().unwrap_or(8080)))
    else {
        return ExitCode::FAILURE;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    let mut head = [0u8; 16];
    match stream.read(&mut head) {
        Ok(n) if head[..n].starts_with(b"HTTP/1.1 200") => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
