//! `sealcache-server`: loads the settings, applies the strict policy, serves the API.

// The binary reports start-up refusals on stderr.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sealcache::KeyringReload;
use sealcache_env_detect::{FeatureContext, Policy, Requirement};
use sealcache_monitor::{AclLogPoller, CacheObserver, Telemetry};
use sealcache_server::{
    AclPosture, ApiKeys, AppState, AuthThrottle, SharedState, ThrottleConfig, app,
};
use sealcache_settings::{SecretString, SecuritySettings};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--healthcheck") {
        return healthcheck();
    }
    // The settings come first: the telemetry, and with it the tracing layer that exports spans,
    // is built from them before logging starts (that layer cannot be added later).
    let settings = match SecuritySettings::load() {
        Ok(settings) => settings,
        Err(err) => {
            init_logging(None);
            eprintln!("❌ sealcache-server refused to start: invalid settings: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The loaded settings are the one input: `environment` in sealcache.toml counts.
    let environment = settings.detect_environment(FeatureContext::SecurityEnforcement);
    let telemetry = Telemetry::builder(
        &settings.otel_service_name,
        environment.environment().as_str(),
    )
    .with_prometheus()
    .and_then(|b| b.with_otlp_if_configured(|v| std::env::var(v).ok()))
    .map(sealcache_monitor::TelemetryBuilder::build);
    let telemetry = match telemetry {
        Ok(t) => t,
        Err(err) => {
            init_logging(None);
            eprintln!("❌ sealcache-server refused to start: telemetry: {err}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(Some(&telemetry));
    if let Ok(name) = std::env::var("OTEL_TRACES_SAMPLER")
        && !matches!(
            name.trim(),
            "always_on"
                | "always_off"
                | "traceidratio"
                | "parentbased_always_on"
                | "parentbased_always_off"
                | "parentbased_traceidratio"
        )
    {
        tracing::warn!(
            sampler = %name.chars().filter(char::is_ascii_graphic).take(40).collect::<String>(),
            "OTEL_TRACES_SAMPLER names no supported sampler: parentbased_always_on applies"
        );
    }
    for (alias, canonical) in &settings.deprecated_aliases {
        tracing::warn!(
            alias,
            canonical,
            "deprecated variable name: use {canonical} instead of {alias}"
        );
    }
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
    match runtime.block_on(run(settings, environment, telemetry)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("❌ sealcache-server refused to start: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (`SEALCACHE_LOG` filter, `SEALCACHE_LOG_FORMAT=json`), and, when traces are
/// exported, hands sealcache's spans (request, cache, Redis command; debug level, so the log
/// filter never has to admit them) to the OpenTelemetry layer.
fn init_logging(telemetry: Option<&Telemetry>) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("SEALCACHE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let json = std::env::var("SEALCACHE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let plain = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let structured = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    // The exporter gets sealcache's spans only (see `export_filter`), and cache and Redis spans
    // are made only in sampled requests (see `SpanGate`: innermost, on the registry itself).
    let spans = telemetry
        .and_then(Telemetry::tracing_layer)
        .map(|layer| layer.with_filter(sealcache_server::export_filter()));
    let gate = spans
        .is_some()
        .then(|| sealcache_server::SpanGate::new(filter().max_level_hint()));
    let _ = tracing_subscriber::registry()
        .with(gate)
        .with(plain)
        .with(structured)
        .with(spans)
        .try_init();
}

async fn run(
    settings: SecuritySettings,
    environment: sealcache_env_detect::EnvironmentInfo,
    telemetry: Telemetry,
) -> anyhow::Result<()> {
    // The reload signals before anything else: SIGHUP's default action would end the process.
    let reloads = ReloadSignals::register();
    let policy = Policy::for_env(&environment);
    tracing::info!(
        environment = %environment.environment(),
        confidence = environment.confidence(),
        detected_by = %environment.detected_by(),
        strict = policy.is_strict(),
        reasoning = %environment.reasoning(),
        traces = telemetry.traces_enabled(),
        "environment detected"
    );
    if policy.development_override() {
        tracing::warn!("REDIS_SECURITY_MODE=development: the development override is active");
    }
    let keys = ApiKeys::new(settings.api_keys.iter().map(|k| k.expose_secret()));
    // Fail closed: a keys file that cannot be read or is invalid refuses to start (the error names
    // the line and field, never a key or digest).
    sealcache_server::keys_reload::load_at_start(&keys, settings.api_keys_file.as_deref())?;
    if keys.is_empty() && policy.refuses_without(Requirement::ApiKey) {
        anyhow::bail!(
            "no API key is configured (API_KEY_FILE, API_KEY, ADDITIONAL_API_KEYS or SEALCACHE_API_KEYS_FILE); the API refuses to run open in {}",
            environment.environment()
        );
    }
    if keys.is_empty() {
        tracing::warn!(
            "no API key is configured (API_KEY_FILE, API_KEY, ADDITIONAL_API_KEYS or SEALCACHE_API_KEYS_FILE): every protected endpoint answers 401"
        );
    }
    let otel: Arc<dyn CacheObserver> = Arc::new(telemetry.observer());
    let limits = settings.limits.clone();
    let l1_max_bytes = limits.l1_max_bytes.unwrap_or_else(default_l1_bytes);
    tracing::info!(
        l1_max_bytes,
        l1_max_entry_bytes = limits.l1_max_entry_bytes,
        max_connections = limits.max_connections,
        max_in_flight = limits.max_in_flight,
        "limits"
    );
    let options = sealcache::CacheOptions::default()
        .with_l1_capacity(limits.l1_capacity)
        .with_l1_max_bytes(l1_max_bytes)
        .with_l1_max_entry_bytes(limits.l1_max_entry_bytes);
    let throttle = Arc::new(AuthThrottle::new(
        ThrottleConfig::from_limits(&limits).map_err(anyhow::Error::msg)?,
    ));
    let cache = sealcache::from_settings_with(&settings, environment.clone(), Some(otel), options)
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // Server-side events: ACL LOG as the monitor user, when one is configured (restarted by a
    // reload that finds new monitor credentials).
    let posture = Arc::new(AclPosture::new(&settings));
    let credentials = Credentials::start(&settings, &cache, posture.clone());
    spawn_reloader(reloads, cache.clone(), credentials, keys.clone());

    let state = AppState::new(SharedState {
        redis_host: sealcache::RedisConfig::new(primary_url(&settings)).host_and_port(),
        cache,
        telemetry: telemetry.clone(),
        keys,
        isolation_claimed: settings.redis_network_isolation,
        metrics_public: settings.metrics_public,
        limits: limits.clone(),
        throttle: throttle.clone(),
        posture,
    });
    let gauge_every = settings.status_interval;
    sealcache_server::telemetry::spawn_status_gauges(
        state.clone(),
        &telemetry.meter(),
        gauge_every,
        gauge_every * 20,
    );
    // Aggregated API-key failure records of windows that ended.
    tokio::spawn(async move {
        let mut every = tokio::time::interval(throttle.config().window);
        loop {
            every.tick().await;
            throttle.flush();
        }
    });
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    tracing::info!(listen = %settings.listen, "sealcache-server listening");
    spawn_watchdog();
    sealcache_server::serve(listener, app(state), &limits, shutdown()).await?;
    let _ = telemetry.shutdown();
    tracing::info!("sealcache-server stopped");
    Ok(())
}

/// The Redis URL this process reports and probes: `REDIS_URL`, or the first cluster seed.
fn primary_url(settings: &SecuritySettings) -> String {
    settings
        .redis_cluster_nodes
        .first()
        .unwrap_or(&settings.redis_url)
        .clone()
}

/// Starts the `ACL LOG` pollers as the monitor user, when one is configured: one for the Redis
/// node, or one per cluster seed (each node keeps its own ACL LOG).
fn spawn_acl_poller(
    settings: &SecuritySettings,
    cache: &sealcache::AiResponseCache,
) -> Vec<tokio::task::AbortHandle> {
    let urls = sealcache_server::posture::node_urls(settings);
    let mut pollers = Vec::with_capacity(urls.len());
    for url in urls {
        let Some(config) = sealcache_server::posture::monitor_config(settings, &url) else {
            return Vec::new();
        };
        // The poller owns its connection: database 0 whatever REDIS_URL says (the monitor user
        // may not SELECT), a timeout on every query, a new connection after any error, and its
        // baseline kept across reconnects.
        match config.client() {
            Ok(client) => pollers.push(
                tokio::spawn(AclLogPoller::new().run_with_client(
                    client,
                    cache.observer().clone(),
                    Duration::from_secs(10),
                ))
                .abort_handle(),
            ),
            Err(e) => tracing::warn!(error = %e, "ACL LOG poller disabled"),
        }
    }
    pollers
}

/// The Redis credentials this process runs with, and the poller and posture probe that use the
/// monitor's.
struct Credentials {
    app: Option<SecretString>,
    monitor_user: Option<String>,
    monitor_password: Option<SecretString>,
    poller: Vec<tokio::task::AbortHandle>,
    posture: Arc<AclPosture>,
}

fn same_secret(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.ct_eq(b.expose_secret()),
        _ => false,
    }
}

impl Credentials {
    fn start(
        settings: &SecuritySettings,
        cache: &sealcache::AiResponseCache,
        posture: Arc<AclPosture>,
    ) -> Self {
        Self {
            app: settings.redis_password.clone(),
            monitor_user: settings.redis_monitor_username.clone(),
            monitor_password: settings.redis_monitor_password.clone(),
            poller: spawn_acl_poller(settings, cache),
            posture,
        }
    }

    /// After a reload: a new monitor credential restarts the poller and the posture probe with
    /// it; a new app password
    /// authenticates the cache's new connections from now on (open ones stay authenticated).
    fn refresh(&mut self, settings: &SecuritySettings, cache: &sealcache::AiResponseCache) {
        if !same_secret(self.app.as_ref(), settings.redis_password.as_ref()) {
            match settings.redis_password.as_ref() {
                Some(password) => match cache.sealed().set_redis_password(password.expose_secret())
                {
                    Ok(()) => tracing::info!(
                        target: "sealcache::security",
                        "the Redis password (REDIS_PASSWORD_FILE) changed: new connections authenticate with it"
                    ),
                    Err(err) => tracing::warn!(
                        target: "sealcache::security",
                        error = %err,
                        "the Redis password (REDIS_PASSWORD_FILE) changed but cannot be applied: new connections use the previous one"
                    ),
                },
                None => tracing::warn!(
                    target: "sealcache::security",
                    "REDIS_PASSWORD_FILE no longer yields a password: new connections keep the previous one"
                ),
            }
            self.app = settings.redis_password.clone();
        }
        if self.monitor_user != settings.redis_monitor_username
            || !same_secret(
                self.monitor_password.as_ref(),
                settings.redis_monitor_password.as_ref(),
            )
        {
            for poller in self.poller.drain(..) {
                poller.abort();
            }
            self.monitor_user = settings.redis_monitor_username.clone();
            self.monitor_password = settings.redis_monitor_password.clone();
            self.poller = spawn_acl_poller(settings, cache);
            self.posture.reconfigure(settings);
            tracing::info!(
                running = self.poller.len(),
                "ACL LOG poller restarted with the reloaded monitor credentials"
            );
        }
    }
}

/// `SIGHUP` (checked keyring reload) and `SIGUSR1` (forced) streams.
struct ReloadSignals {
    hup: Option<tokio::signal::unix::Signal>,
    usr1: Option<tokio::signal::unix::Signal>,
}

impl ReloadSignals {
    fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::warn!(error = %err, "{name} cannot be handled: keyring reloads on {name} are off");
                None
            }
        };
        Self {
            hup: listen(SignalKind::hangup(), "SIGHUP"),
            usr1: listen(SignalKind::user_defined1(), "SIGUSR1"),
        }
    }

    /// The next reload asked for; `None` once neither signal can arrive any more.
    async fn next(&mut self) -> Option<KeyringReload> {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match s {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        }
        if self.hup.is_none() && self.usr1.is_none() {
            return None;
        }
        tokio::select! {
            got = recv(&mut self.hup) => got.map(|()| KeyringReload::Checked),
            got = recv(&mut self.usr1) => got.map(|()| KeyringReload::Forced),
        }
    }
}

/// Reloads the keyring, the monitor's credentials and the API keys file on each reload signal,
/// one at a time.
fn spawn_reloader(
    mut signals: ReloadSignals,
    cache: sealcache::AiResponseCache,
    mut credentials: Credentials,
    keys: ApiKeys,
) {
    tokio::spawn(async move {
        while let Some(mode) = signals.next().await {
            let loaded = sealcache_server::reload::load_settings().await;
            let _ = sealcache_server::reload::reload_keyring(
                &cache,
                loaded.as_ref().map_err(Clone::clone),
                mode,
            )
            .await;
            if let Ok(settings) = &loaded {
                credentials.refresh(settings, &cache);
                // Applied whole or not at all; a refusal is logged and counted there.
                let _ = sealcache_server::keys_reload::reload(
                    &keys,
                    settings.api_keys_file.clone(),
                    cache.observer(),
                )
                .await;
            }
        }
    });
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

/// L1's default byte budget: a quarter of the cgroup memory limit (capped at 1 GiB), or 64 MiB when
/// the process has no limit.
fn default_l1_bytes() -> usize {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    // cgroup v2, then v1 (whose "no limit" is a huge number).
    let limit = read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .filter(|&l| l < 1 << 46);
    match limit {
        Some(l) => usize::try_from((l / 4).min(1 << 30)).unwrap_or(sealcache::DEFAULT_L1_MAX_BYTES),
        None => sealcache::DEFAULT_L1_MAX_BYTES,
    }
}

/// A watchdog outside the async runtime: a task on the runtime beats every second; a thread checks
/// the beat every 5 s and, when it is older than 30 s (every worker blocked: the process is
/// wedged), logs the fact and exits with status 70 so that the restart policy brings up a fresh
/// process. It does not go through the listener, so a flood that fills the connection cap cannot
/// make it restart a healthy server.
fn spawn_watchdog() {
    use std::sync::atomic::{AtomicU64, Ordering};
    const STALE: Duration = Duration::from_secs(30);
    let base = std::time::Instant::now();
    let beat = Arc::new(AtomicU64::new(0));
    let writer = beat.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let now = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
            writer.store(now, Ordering::Relaxed);
        }
    });
    let started = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                let last = Duration::from_millis(beat.load(Ordering::Relaxed));
                let age = base.elapsed().saturating_sub(last);
                if age > STALE {
                    tracing::error!(
                        stale_secs = age.as_secs(),
                        "watchdog: the runtime has not run for too long; exiting so that the process is restarted"
                    );
                    std::process::exit(70);
                }
            }
        });
    if let Err(err) = started {
        tracing::warn!(error = %err, "watchdog not started");
    }
}

/// GET /health on the local listener: the status line's code, if any answer came. An unspecified
/// listen address (`0.0.0.0`, `[::]`) is reached through the loopback of its family.
fn probe(listen: &str, timeout: Duration) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs as _};
    let mut addr = listen.to_socket_addrs().ok()?.next()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 16];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(head.get(..n)?).ok()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// `sealcache-server --healthcheck`: GET /health on the local listener (the container health check;
/// no curl in the image). Exit 0 when it answers 200.
fn healthcheck() -> ExitCode {
    // The same settings as the server (variables and sealcache.toml), so the probe knocks where
    // the server listens.
    let Ok(settings) = SecuritySettings::load() else {
        return ExitCode::FAILURE;
    };
    let listen = settings.listen;
    match probe(&listen, Duration::from_secs(2)) {
        Some(200) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
