//! Verification of a running stack: every hardening item of docs/architecture.md §6, observed.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use sealcache_config_gen::layout;
use serde::Serialize;

use crate::deploy::UID;
use crate::docker::{Compose, docker, inspect};
use crate::http::request;

/// One verified item.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) passed: bool,
    pub(crate) detail: String,
}

pub(crate) fn check(name: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        passed,
        detail: detail.into(),
    }
}

/// Prints one `✅`/`❌` line per check.
pub(crate) fn print_checks(checks: &[Check]) {
    for c in checks {
        println!(
            "{} {}: {}",
            if c.passed { "✅" } else { "❌" },
            c.name,
            c.detail
        );
    }
}

/// The failed check when `docker inspect` does not answer for a container.
pub(crate) fn inspect_failed() -> Check {
    check("containers_inspectable", false, "docker inspect failed")
}

/// Whether a container (its `docker inspect` output `ri`) publishes a port on the host.
pub(crate) fn publishes_port(ri: &serde_json::Value) -> bool {
    ri["HostConfig"]["PortBindings"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
        || ri["NetworkSettings"]["Ports"]
            .as_object()
            .is_some_and(|m| m.values().any(|v| !v.is_null()))
}

/// Read-only rootfs, every capability dropped, a non-root user, no-new-privileges, limits, and no
/// CA key mounted, for one container's `docker inspect` output `c`: whether all hold, and what
/// was seen.
pub(crate) fn hardened(c: &serde_json::Value) -> (bool, String) {
    let ro = c["HostConfig"]["ReadonlyRootfs"] == true;
    let caps = c["HostConfig"]["CapDrop"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "ALL"))
        && c["HostConfig"]["CapAdd"]
            .as_array()
            .is_none_or(Vec::is_empty);
    let user = c["Config"]["User"].as_str().unwrap_or("");
    let non_root = !user.is_empty() && !user.starts_with('0') && !user.starts_with("root");
    let nnp = c["HostConfig"]["SecurityOpt"].as_array().is_some_and(|a| {
        a.iter().any(|v| {
            v.as_str()
                .is_some_and(|s| s.starts_with("no-new-privileges"))
        })
    });
    let limits = c["HostConfig"]["Memory"].as_i64().unwrap_or(0) > 0
        && c["HostConfig"]["PidsLimit"].as_i64().unwrap_or(0) > 0;
    let ca_dir = format!("/{}/", layout::CA_DIR);
    let ca_key = c["Mounts"].as_array().is_some_and(|m| {
        m.iter().any(|m| {
            m["Source"].as_str().is_some_and(|s| {
                s.ends_with(&format!("/{}", layout::CA_KEY)) || s.contains(&ca_dir)
            })
        })
    });
    (
        ro && caps && non_root && nnp && limits && !ca_key,
        format!(
            "read-only rootfs={ro}, cap_drop ALL={caps}, user={user}, no-new-privileges={nnp}, limits={limits}, CA key mounted={ca_key}"
        ),
    )
}

/// `no_secret_in_docker_inspect`: none of `secrets` (and there are some) in `shown`, the
/// containers' inspect output; the detail is the number of secrets and `searched`.
pub(crate) fn no_secret_shown(secrets: &[String], shown: &str, searched: &str) -> Check {
    let leaked = secrets.iter().any(|s| shown.contains(s.as_str()));
    check(
        "no_secret_in_docker_inspect",
        !leaked && !secrets.is_empty(),
        format!("{} {searched}", secrets.len()),
    )
}

/// Runs every check against the running stack.
pub(crate) fn verify(compose: &Compose, dir: &Path, port: u16, secure: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    let (redis, backend) = match (compose.container("redis"), compose.container("backend")) {
        (Ok(r), Ok(b)) => (r, b),
        (r, b) => {
            checks.push(check(
                "containers_running",
                false,
                format!("redis: {:?}, backend: {:?}", r.err(), b.err()),
            ));
            return checks;
        }
    };
    let (ri, bi) = match (inspect(&redis), inspect(&backend)) {
        (Ok(r), Ok(b)) => (r, b),
        _ => {
            checks.push(inspect_failed());
            return checks;
        }
    };

    // Redis publishes no port.
    let published = publishes_port(&ri);
    checks.push(check(
        "redis_publishes_no_port",
        !published,
        if published {
            "Redis has a published port"
        } else {
            "no ports: section, nothing published"
        },
    ));

    // Redis is only on the internal network, and that network is internal.
    let nets = ri["NetworkSettings"]["Networks"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let internal_name = format!("{}_redis_internal", compose.project());
    let internal = inspect(&internal_name)
        .ok()
        .is_some_and(|n| n["Internal"] == true);
    let only_internal = nets.len() == 1 && nets.contains_key(&internal_name);
    checks.push(check(
        "redis_network_internal",
        internal && only_internal,
        format!(
            "networks {:?}, {internal_name} internal={internal}",
            nets.keys().collect::<Vec<_>>()
        ),
    ));
    let redis_ip = nets
        .get(&internal_name)
        .and_then(|n| n["IPAddress"].as_str())
        .unwrap_or("")
        .to_owned();

    // The host reaches Redis neither through a published port nor at its container address.
    // Asked of the kernel without sending a packet: if no local interface reaches the address, a
    // connection attempt would leave through the default route, off this machine (never done).
    let route = local_route(&redis_ip);
    let host_reach = match &route {
        LocalRoute::Bridge(dev) => {
            let ip: std::net::IpAddr = redis_ip
                .parse()
                .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
            let reached = TcpStream::connect_timeout(
                &SocketAddr::new(ip, layout::REDIS_PORT),
                Duration::from_secs(2),
            )
            .is_ok();
            (
                !reached,
                format!(
                    "the host has an address on {dev}; TCP connect to {redis_ip}:{} {}",
                    layout::REDIS_PORT,
                    if reached { "succeeded" } else { "is refused" }
                ),
            )
        }
        LocalRoute::None(how) => (
            true,
            format!(
                "no interface of the host reaches {redis_ip} ({how}): the internal bridge has no host address"
            ),
        ),
    };
    checks.push(check(
        "host_cannot_reach_redis",
        host_reach.0 && !redis_ip.is_empty(),
        host_reach.1,
    ));

    // A container on another network cannot reach Redis: the name does not resolve there, and the
    // address is probed only when it is on a local bridge (so no packet leaves the machine).
    let frontend = format!("{}_frontend", compose.project());
    let image = ri["Config"]["Image"].as_str().unwrap_or("").to_owned();
    let by_name = probe_container(&frontend, &image, "getent", &["hosts", "redis"]);
    let by_ip = match &route {
        LocalRoute::Bridge(_) => {
            // The address and port are bash's positional parameters, never part of the script.
            let port = layout::REDIS_PORT.to_string();
            let script = r#"echo > "/dev/tcp/$1/$2""#;
            let args = ["3", "bash", "-c", script, "bash", &redis_ip, &port];
            Some(probe_container(&frontend, &image, "timeout", &args).is_ok())
        }
        LocalRoute::None(_) => None,
    };
    checks.push(check(
        "other_networks_cannot_reach_redis",
        by_name.is_err() && by_ip != Some(true),
        format!(
            "on {frontend}: `redis` {}; by address: {}",
            if by_name.is_err() {
                "does not resolve"
            } else {
                "resolves"
            },
            match by_ip {
                Some(true) => "reached".to_owned(),
                Some(false) => "refused".to_owned(),
                None => "no route from any local bridge".to_owned(),
            }
        ),
    ));

    // docker inspect shows no secret anywhere (environment, command line, health check, labels).
    let secrets = crate::secrets::secret_values(dir);
    let shown = format!("{ri}{bi}");
    checks.push(no_secret_shown(
        &secrets,
        &shown,
        "secret values searched in both containers' inspect output",
    ));

    for (name, c) in [("redis", &ri), ("backend", &bi)] {
        let (ok, detail) = hardened(c);
        checks.push(check(
            if name == "redis" {
                "redis_hardened"
            } else {
                "backend_hardened"
            },
            ok,
            detail,
        ));
    }

    // The backend reaches Redis, reports isolation and production readiness, and serves.
    let key = api_key(dir);
    match sealcache_ops::status::backend_status(port, &key) {
        Ok(response) => {
            let status = response.status;
            let level = status.security_level;
            checks.push(check(
                "backend_reports_network_isolated",
                status.network_isolated == Some(true),
                status
                    .check(sealcache_api::CheckName::NetworkIsolated)
                    .map_or_else(String::new, |c| c.detail.clone()),
            ));
            let want = if secure {
                sealcache_api::SecurityLevel::ProductionReady
            } else {
                sealcache_api::SecurityLevel::Development
            };
            checks.push(check(
                "backend_security_level",
                level == want,
                format!(
                    "security_level={level} (want {want}){}",
                    sealcache_ops::status::failing_checks(&status)
                ),
            ));
        }
        other => checks.push(check(
            "backend_security_status",
            false,
            format!("{other:?}"),
        )),
    }
    checks.push(end_to_end(port, &key));
    checks
}

/// The checks of `cargo xtask test` that `secure-up` never makes: when `up` succeeded, the
/// `sealcache` operator command runs from the backend container of compose project `project`
/// (service `service`), then the crash-and-restart proof (`secure-up` does not harm what it
/// deploys): the server process is killed and must be replaced by the `unless-stopped` policy
/// and serve again; `checks` come back with both appended.
pub(crate) fn with_crash_and_restart(
    mut checks: Vec<Check>,
    up: &anyhow::Result<std::process::ExitCode>,
    project: &str,
    service: &str,
    dir: &Path,
    port: u16,
) -> Vec<Check> {
    if !matches!(up, Ok(code) if *code == std::process::ExitCode::SUCCESS) {
        return checks;
    }
    let filters = [
        format!("label=com.docker.compose.project={project}"),
        format!("label=com.docker.compose.service={service}"),
    ];
    let found = docker(&["ps", "-q", "--filter", &filters[0], "--filter", &filters[1]]);
    // A single-node stack: `secure-up` again on the healthy stack changes nothing.
    if matches!(
        sealcache_config_gen::cluster_dir::cluster_record(dir),
        Ok(None)
    ) {
        checks.push(secure_up_again_changes_nothing(project, dir, port));
    }
    checks.push(match found.as_deref().map(str::trim) {
        Ok(id) if !id.is_empty() && !id.contains(char::is_whitespace) => cli_in_image(id),
        other => check(
            "sealcache_cli_in_image",
            false,
            format!("no single {service} container in project {project}: {other:?}"),
        ),
    });
    checks.push(match found.as_deref().map(str::trim) {
        Ok(id) if !id.is_empty() && !id.contains(char::is_whitespace) => {
            crash_and_restart(id, port, &api_key(dir))
        }
        other => check(
            "backend_restarts_after_crash",
            false,
            format!("no single {service} container in project {project}: {other:?}"),
        ),
    });
    checks
}

/// Kills the backend's server process from the host (a crash, not `docker stop`/`docker kill`,
/// which the restart policy deliberately ignores) and waits until the restart policy has brought
/// up a new one that serves the API again.
pub(crate) fn crash_and_restart(container: &str, port: u16, key: &str) -> Check {
    let outcome = (|| -> anyhow::Result<String> {
        let before = inspect(container)?;
        let restarts = before["RestartCount"].as_i64().unwrap_or(0);
        let init = before["State"]["Pid"].as_i64().unwrap_or(0);
        anyhow::ensure!(init > 0, "the backend has no process");
        // With `init: true` the server is the init process's child.
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default();
        let server = children
            .split_whitespace()
            .next()
            .map_or(init.to_string(), str::to_owned);
        let server: u32 = server
            .parse()
            .map_err(|_| anyhow::anyhow!("docker top named {server:?} as the server"))?;
        crate::local::signal(server, rustix::process::Signal::KILL)
            .map_err(|e| e.context(format!("kill -KILL {server}")))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let now = inspect(container)?;
            let restarted = now["RestartCount"].as_i64().unwrap_or(0) > restarts;
            if restarted && end_to_end(port, key).passed {
                return Ok(format!(
                    "server process killed; restarted by the `unless-stopped` policy (restart count {}) and serving again",
                    now["RestartCount"]
                ));
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "not serving again 90 s after the crash (restarted={restarted})"
            );
        }
    })();
    match outcome {
        Ok(detail) => check("backend_restarts_after_crash", true, detail),
        Err(e) => check("backend_restarts_after_crash", false, format!("{e:#}")),
    }
}

/// `secure-up` run again on the healthy single-node stack of compose project `project` from
/// `dir`: it succeeds, and every container of the project is the same one, started at the same
/// time (nothing recreated or restarted).
fn secure_up_again_changes_nothing(project: &str, dir: &Path, port: u16) -> Check {
    let label = format!("label=com.docker.compose.project={project}");
    let started = || -> Option<Vec<String>> {
        let ids = docker(&["ps", "-q", "--filter", &label]).ok()?;
        let mut out: Vec<String> = ids
            .split_whitespace()
            .map(|id| {
                inspect(id).map_or_else(
                    |_| format!("{id}: not inspectable"),
                    |v| format!("{} {}", v["Id"], v["State"]["StartedAt"]),
                )
            })
            .collect();
        out.sort();
        Some(out)
    };
    let before = started();
    let mut args = crate::deploy::UpArgs::for_test(dir.to_path_buf(), port);
    args.set_project(project);
    let again = args.run(true);
    let after = started();
    let same = before.is_some() && before == after;
    check(
        "secure_up_again_changes_nothing",
        matches!(again, Ok(ref code) if *code == std::process::ExitCode::SUCCESS) && same,
        format!(
            "secure-up again: {}; {} container(s) {}",
            match &again {
                Ok(code) if *code == std::process::ExitCode::SUCCESS => "verified".to_owned(),
                Ok(code) => format!("exit {code:?}"),
                Err(e) => format!("{e:#}"),
            },
            before.as_ref().map_or(0, Vec::len),
            if same {
                "unchanged (same ids, same start times)"
            } else {
                "changed"
            }
        ),
    )
}

/// The `sealcache` operator command, run inside the backend container `id` as its own user:
/// `config generate --dry-run` plans a production deployment in the container's tmpfs and
/// validates it (exit 0), with no file left behind and no secret printed.
fn cli_in_image(id: &str) -> Check {
    let out = docker(&[
        "exec",
        id,
        "sealcache",
        "config",
        "generate",
        "--environment",
        "production",
        "--out",
        "/tmp/sealcache-cli-check",
        "--dry-run",
    ]);
    let left = docker(&["exec", id, "ls", "/tmp/sealcache-cli-check"]).is_ok();
    match out {
        Ok(text) if text.contains("nothing was written") && !left => check(
            "sealcache_cli_in_image",
            true,
            format!(
                "`docker exec {} sealcache config generate --dry-run`: {} files planned, nothing written",
                crate::verify::short_id(id),
                text.matches("would write").count()
            ),
        ),
        Ok(text) => check(
            "sealcache_cli_in_image",
            false,
            format!(
                "unexpected output (left a directory: {left}): {}",
                text.lines().last().unwrap_or("")
            ),
        ),
        Err(e) => check("sealcache_cli_in_image", false, format!("{e:#}")),
    }
}

/// The first 12 characters of a container id.
pub(crate) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// How the host would reach an address, asked of the kernel (`ip route get`, no packet sent).
pub(crate) enum LocalRoute {
    /// Through a local bridge (directly connected, no gateway).
    Bridge(String),
    /// Not through any local interface (only via a gateway, or no route at all).
    None(String),
}

pub(crate) fn local_route(ip: &str) -> LocalRoute {
    let out = std::process::Command::new("ip")
        .args(["-o", "route", "get", ip])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    let dev = words
        .iter()
        .position(|w| *w == "dev")
        .and_then(|i| words.get(i + 1))
        .map(|d| (*d).to_owned());
    let via = words.contains(&"via");
    match dev {
        Some(d) if !via && (d.starts_with("br-") || d.starts_with("docker")) => {
            LocalRoute::Bridge(d)
        }
        Some(d) if via => LocalRoute::None(format!("only via a gateway on {d}")),
        Some(d) => LocalRoute::None(format!("via {d}")),
        None => LocalRoute::None("no route".to_owned()),
    }
}

/// The operation the verification stores under: one no application uses (the cache's
/// per-operation TTLs, invalidations and dashboards never see it).
pub(crate) const VERIFY_OPERATION: &str = "sealcache-verify";
/// The verification entry's TTL: it expires by itself, so the check invalidates nothing (no
/// invalidation is counted) and leaves nothing in the cache.
const VERIFY_TTL_SECONDS: u64 = 2;

/// Stores a throw-away entry through the API (operation [`VERIFY_OPERATION`], a text unique to
/// this run, a TTL of [`VERIFY_TTL_SECONDS`]), looks it up again, then waits until it has
/// expired: the check leaves nothing in the cache it verified and changes no counter but lookups.
pub(crate) fn end_to_end(port: u16, key: &str) -> Check {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let text = format!("sealcache verification {}-{nonce}", std::process::id());
    let store = serde_json::json!({
        "text": text,
        "operation": VERIFY_OPERATION,
        "response": {"answer": "ok"},
        "ttl_seconds": VERIFY_TTL_SECONDS,
    })
    .to_string();
    let lookup = serde_json::json!({"text": text, "operation": VERIFY_OPERATION}).to_string();
    let hit = |body: &str| body.contains("\"hit\":true");
    let stored = request(port, "PUT", "/v1/cache/entries", Some(key), Some(&store)).map(|(s, _)| s);
    let found = request(port, "POST", "/v1/cache/lookup", Some(key), Some(&lookup))
        .map(|(s, b)| s == 200 && hit(&b));
    let served = matches!(stored, Ok(201)) && matches!(found, Ok(true));
    // Then gone: every tier (L1 keeps an entry no longer than its Redis TTL) misses it.
    let deadline = std::time::Instant::now() + Duration::from_secs(VERIFY_TTL_SECONDS + 8);
    let mut gone = false;
    while served && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        if let Ok((200, body)) = request(port, "POST", "/v1/cache/lookup", Some(key), Some(&lookup))
            && !hit(&body)
        {
            gone = true;
            break;
        }
    }
    check(
        "store_and_lookup_end_to_end",
        served && gone,
        format!(
            "store {stored:?}, lookup hit {found:?}; the entry (operation {VERIFY_OPERATION}, TTL {VERIFY_TTL_SECONDS} s) {}",
            if gone {
                "expired: nothing left in the cache"
            } else {
                "did not expire"
            }
        ),
    )
}

/// A throw-away container on `network`, as unprivileged as the stack's own ([`UID`], no
/// capabilities), running `entrypoint args`.
pub(crate) fn probe_container(
    network: &str,
    image: &str,
    entrypoint: &str,
    args: &[&str],
) -> anyhow::Result<String> {
    let user = format!("{UID}:{UID}");
    let mut argv = vec![
        "run",
        "--rm",
        "--network",
        network,
        "--user",
        &user,
        "--cap-drop",
        "ALL",
        "--entrypoint",
        entrypoint,
        image,
    ];
    argv.extend_from_slice(args);
    docker(&argv)
}

/// The deployment's API key.
pub(crate) fn api_key(dir: &Path) -> String {
    sealcache_ops::runtime::api_key(dir)
}
