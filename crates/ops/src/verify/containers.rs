//! The checks of a compose stack's containers, observed through `docker inspect`, the kernel's
//! routes and throw-away probe containers: the same for one Redis node or six.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use sealcache_config_gen::layout;

use super::{Check, check, secret_values};
use crate::runtime::docker::{docker, inspect};
use crate::stack::{Backend, Redis, Targets};

/// The user and group probe containers run as: the stack's own (the images' `sealcache` user).
const PROBE_USER: &str = "999:999";

/// One Redis container of the stack.
struct Node {
    /// Its compose service (`redis`, `redis-node-N`).
    service: String,
    /// `docker inspect` of it.
    inspect: serde_json::Value,
}

/// Whether a container (its `docker inspect` output `ri`) publishes a port on the host.
#[must_use]
pub fn publishes_port(ri: &serde_json::Value) -> bool {
    ri["HostConfig"]["PortBindings"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
        || ri["NetworkSettings"]["Ports"]
            .as_object()
            .is_some_and(|m| m.values().any(|v| !v.is_null()))
}

/// Read-only rootfs, every capability dropped, a non-root user, no-new-privileges, memory and
/// pids limits, no CA key of the deployment `dir` reachable through a mount (a mount of the
/// directory hides `ca/` under a tmpfs), and no writable bind mount but `/data` and, under
/// [`crate::stack::CONTAINER_DEPLOYMENT_DIR`], the directory's `secrets/` and `rotation.json`
/// (the backend's, for a rotation run inside it), for one container's `docker inspect` output
/// `c`: whether all hold, and what was seen.
#[must_use]
pub fn hardened(c: &serde_json::Value, dir: &Path) -> (bool, String) {
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
    let mounts = c["Mounts"].as_array().map_or(&[][..], Vec::as_slice);
    let ca_dir = dir.join(layout::CA_DIR);
    // A tmpfs at the path where a mount would show `ca/` hides it (`tmpfs:` entries are in
    // `HostConfig.Tmpfs`, long-syntax ones among the mounts).
    let hidden = |destination: &Path| {
        c["HostConfig"]["Tmpfs"]
            .as_object()
            .is_some_and(|t| t.keys().any(|k| Path::new(k) == destination))
            || mounts.iter().any(|m| {
                m["Type"] == "tmpfs"
                    && m["Destination"]
                        .as_str()
                        .is_some_and(|d| Path::new(d) == destination)
            })
    };
    let ca_key = mounts.iter().any(|m| {
        let (Some(source), Some(destination)) = (m["Source"].as_str(), m["Destination"].as_str())
        else {
            return false;
        };
        let source = Path::new(source);
        if source.starts_with(&ca_dir) {
            return true;
        }
        // A mount of `dir` (or above it) shows `ca/` unless a tmpfs hides it there.
        ca_dir
            .strip_prefix(source)
            .is_ok_and(|rel| !hidden(&Path::new(destination).join(rel)))
    });
    let rw_mounts: Vec<&str> = mounts
        .iter()
        .filter(|m| m["RW"] == true && m["Type"] == "bind")
        .filter_map(|m| m["Destination"].as_str())
        .collect();
    // What a rotation inside the backend writes: the secrets and the rotation record, each
    // mounted at its place under the deployment's mount point, from this directory.
    let deployment = |d: &str| {
        [layout::SECRETS_DIR, layout::ROTATION_FILE]
            .iter()
            .any(|rel| {
                Path::new(d) == Path::new(crate::stack::CONTAINER_DEPLOYMENT_DIR).join(rel)
                    && mounts.iter().any(|m| {
                        m["Destination"] == d
                            && m["Source"]
                                .as_str()
                                .is_some_and(|s| Path::new(s) == dir.join(rel))
                    })
            })
    };
    let rw_ok = rw_mounts.iter().all(|d| *d == "/data" || deployment(d));
    (
        ro && caps && non_root && nnp && limits && !ca_key && rw_ok,
        format!(
            "read-only rootfs={ro}, cap_drop ALL={caps}, user={user}, no-new-privileges={nnp}, limits={limits}, CA key reachable={ca_key}, writable mounts={rw_mounts:?}"
        ),
    )
}

/// How the host would reach an address, asked of the kernel (`ip route get`, no packet sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRoute {
    /// Through a local bridge (directly connected, no gateway): the bridge.
    Bridge(String),
    /// Not through any local interface (only via a gateway, or no route at all): how.
    None(String),
    /// The kernel could not be asked (`ip` missing or failing): why.
    Unknown(String),
}

/// How the host would reach `ip` (`ip -o route get IP`).
#[must_use]
pub fn local_route(ip: &str) -> LocalRoute {
    match std::process::Command::new("ip")
        .args(["-o", "route", "get", ip])
        .output()
    {
        Ok(o) if o.status.success() => route_of(&String::from_utf8_lossy(&o.stdout)),
        Ok(o) => LocalRoute::Unknown(format!(
            "`ip route get {ip}` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => LocalRoute::Unknown(format!("`ip` cannot run ({e}): install iproute2")),
    }
}

/// The route `ip -o route get` printed as `text`.
fn route_of(text: &str) -> LocalRoute {
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

/// A throw-away container on `network`, as unprivileged as the stack's own ([`PROBE_USER`], no
/// capabilities), running `entrypoint args`.
fn probe_container(
    network: &str,
    image: &str,
    entrypoint: &str,
    args: &[&str],
) -> crate::error::Result<String> {
    let mut argv = vec![
        "run",
        "--rm",
        "--network",
        network,
        "--user",
        PROBE_USER,
        "--cap-drop",
        "ALL",
        "--entrypoint",
        entrypoint,
        image,
    ];
    argv.extend_from_slice(args);
    docker(&argv)
}

/// Every container check of the compose stack `targets` found for `dir`.
pub(super) fn checks(dir: &Path, targets: &Targets) -> Vec<Check> {
    let mut nodes = Vec::new();
    for redis in &targets.redis {
        if let Redis::Container { id, service } = redis {
            match inspect(id) {
                Ok(v) => nodes.push(Node {
                    service: service.clone(),
                    inspect: v,
                }),
                Err(e) => return vec![check("containers_inspectable", false, e.to_string())],
            }
        }
    }
    let mut backends = Vec::new();
    for backend in &targets.backends {
        if let Backend::Container { id, .. } = backend {
            match inspect(id) {
                Ok(v) => backends.push(v),
                Err(e) => return vec![check("containers_inspectable", false, e.to_string())],
            }
        }
    }
    let Some(first) = nodes.first() else {
        return vec![check("containers_running", false, "no Redis container")];
    };
    let project = first.inspect["Config"]["Labels"]["com.docker.compose.project"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let image = first.inspect["Config"]["Image"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let several = nodes.len() > 1;
    let mut checks = Vec::new();

    // Redis publishes no port.
    let published: Vec<&str> = nodes
        .iter()
        .filter(|n| publishes_port(&n.inspect))
        .map(|n| n.service.as_str())
        .collect();
    checks.push(check(
        "redis_publishes_no_port",
        published.is_empty(),
        if published.is_empty() {
            format!(
                "{} node(s): no ports: section, nothing published",
                nodes.len()
            )
        } else {
            format!("published: {published:?}")
        },
    ));

    // Redis is only on the internal network, and that network is internal.
    let internal_name = format!("{project}_redis_internal");
    let network = inspect(&internal_name).ok();
    let internal = network.as_ref().is_some_and(|n| n["Internal"] == true);
    // The internal network's own bridge: its name option, else `br-` and the id's first 12
    // characters. A probe connects only over it (a host bridge that overlaps the subnet is not).
    let own_bridge = network.as_ref().map(|n| {
        n["Options"]["com.docker.network.bridge.name"]
            .as_str()
            .map_or_else(
                || {
                    format!(
                        "br-{}",
                        n["Id"].as_str().unwrap_or("").get(..12).unwrap_or("")
                    )
                },
                str::to_owned,
            )
    });
    let only_internal = nodes.iter().all(|n| {
        n.inspect["NetworkSettings"]["Networks"]
            .as_object()
            .is_some_and(|m| m.len() == 1 && m.contains_key(&internal_name))
    });
    checks.push(check(
        "redis_network_internal",
        internal && only_internal,
        format!(
            "{} node(s) only on {internal_name} (internal={internal})",
            nodes.len()
        ),
    ));

    // The host reaches no node: asked of the kernel (no packet sent), and probed only over a
    // directly connected bridge.
    let mut host_ok = true;
    let mut routes = Vec::new();
    let mut bridged = Vec::new();
    for n in &nodes {
        let ip = n.inspect["NetworkSettings"]["Networks"][&internal_name]["IPAddress"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        host_ok &= !ip.is_empty();
        match local_route(&ip) {
            LocalRoute::Bridge(dev) if own_bridge.as_deref() == Some(dev.as_str()) => {
                let reached = ip.parse::<IpAddr>().is_ok_and(|addr| {
                    TcpStream::connect_timeout(
                        &SocketAddr::new(addr, layout::REDIS_PORT),
                        Duration::from_secs(2),
                    )
                    .is_ok()
                });
                host_ok &= !reached;
                routes.push(format!(
                    "{} {ip} via {dev}: {}",
                    n.service,
                    if reached { "reached" } else { "refused" }
                ));
                bridged.push(ip);
            }
            LocalRoute::Bridge(dev) => routes.push(format!(
                "{} {ip}: via {dev}, not the network's own bridge (not probed)",
                n.service
            )),
            LocalRoute::None(how) => routes.push(format!("{} {ip}: {how}", n.service)),
            LocalRoute::Unknown(why) => {
                host_ok = false;
                routes.push(format!("{} {ip}: {why}", n.service));
            }
        }
    }
    checks.push(check(
        "host_cannot_reach_redis",
        host_ok,
        format!(
            "no interface of the host reaches the node(s): {}",
            routes.join("; ")
        ),
    ));

    // A container on another network cannot reach Redis: the names do not resolve there, and
    // the addresses are probed only when they are on a local bridge (so no packet leaves the
    // machine). The address and port are bash's positional parameters, never part of the script.
    let frontend = format!("{project}_frontend");
    let resolved: Vec<&str> = nodes
        .iter()
        .filter(|n| probe_container(&frontend, &image, "getent", &["hosts", &n.service]).is_ok())
        .map(|n| n.service.as_str())
        .collect();
    let port = layout::REDIS_PORT.to_string();
    let reached = bridged
        .iter()
        .filter(|ip| {
            let script = r#"echo > "/dev/tcp/$1/$2""#;
            let args = ["3", "bash", "-c", script, "bash", ip.as_str(), &port];
            probe_container(&frontend, &image, "timeout", &args).is_ok()
        })
        .count();
    checks.push(check(
        "other_networks_cannot_reach_redis",
        resolved.is_empty() && reached == 0,
        format!(
            "on {frontend}: {} of {} node name(s) resolve; by address: {}",
            resolved.len(),
            nodes.len(),
            if bridged.is_empty() {
                "no route from any local bridge".to_owned()
            } else {
                format!("{reached} reached")
            }
        ),
    ));

    // docker inspect shows no secret anywhere (environment, command line, health check, labels).
    let secrets = secret_values(dir);
    let shown: String = nodes
        .iter()
        .map(|n| &n.inspect)
        .chain(&backends)
        .map(ToString::to_string)
        .collect();
    let leaked = secrets.iter().any(|s| shown.contains(s.as_str()));
    checks.push(check(
        "no_secret_in_docker_inspect",
        !leaked && !secrets.is_empty(),
        format!(
            "{} secret values searched in {} containers' inspect output",
            secrets.len(),
            nodes.len() + backends.len()
        ),
    ));

    for (name, group) in [
        (
            "redis_hardened",
            nodes.iter().map(|n| &n.inspect).collect::<Vec<_>>(),
        ),
        ("backend_hardened", backends.iter().collect()),
    ] {
        let results: Vec<(bool, String)> = group.into_iter().map(|c| hardened(c, dir)).collect();
        let failing = results.iter().find(|(ok, _)| !ok).or(results.first());
        checks.push(check(
            name,
            !results.is_empty() && results.iter().all(|(ok, _)| *ok),
            if several {
                format!(
                    "{} containers: {}",
                    results.len(),
                    failing.map_or("", |(_, d)| d.as_str())
                )
            } else {
                failing.map_or_else(String::new, |(_, d)| d.clone())
            },
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_without_sending_a_packet_and_a_gateway_is_no_bridge() {
        assert_eq!(
            route_of("172.18.0.2 dev br-1a2b src 172.18.0.1 uid 0 \\    cache"),
            LocalRoute::Bridge("br-1a2b".to_owned())
        );
        assert!(matches!(
            route_of("172.18.0.2 via 10.0.0.1 dev eth0 src 10.0.0.5"),
            LocalRoute::None(_)
        ));
        assert!(matches!(route_of(""), LocalRoute::None(_)));
    }

    #[test]
    fn a_container_is_hardened_only_with_every_item() {
        let good = serde_json::json!({
            "HostConfig": {"ReadonlyRootfs": true, "CapDrop": ["ALL"], "CapAdd": null,
                "SecurityOpt": ["no-new-privileges:true"], "Memory": 1, "PidsLimit": 1},
            "Config": {"User": "999:999"},
            "Mounts": [{"Type": "volume", "RW": true, "Destination": "/data", "Source": "/v"},
                {"Type": "bind", "RW": false, "Destination": "/run/secrets/redis", "Source": "/d/secrets/redis"}]
        });
        let dir = Path::new("/d");
        assert!(hardened(&good, dir).0, "{}", hardened(&good, dir).1);
        let mut writable = good.clone();
        writable["Mounts"][1]["RW"] = true.into();
        assert!(!hardened(&writable, dir).0);
        let mut root = good.clone();
        root["Config"]["User"] = "0".into();
        assert!(!hardened(&root, dir).0);
        // The deployment's CA key is refused; a path that merely holds a `ca` component is not.
        let mut ca = good.clone();
        ca["Mounts"][1]["Source"] = "/d/ca/ca.key".into();
        assert!(!hardened(&ca, dir).0);
        let mut elsewhere = good.clone();
        elsewhere["Mounts"][1]["Source"] = "/srv/ca/tls".into();
        assert!(hardened(&elsewhere, dir).0);
        // The deployment directory, read-only at its place with its ca/ hidden by a tmpfs, and
        // its secrets and rotation record writable there; the directory itself writable, or
        // those anywhere else, is refused.
        let mut deployment = good;
        let mounts = serde_json::json!([
            {"Type": "bind", "RW": false, "Destination": "/srv/sealcache", "Source": "/d"},
            {"Type": "bind", "RW": true, "Destination": "/srv/sealcache/secrets", "Source": "/d/secrets"},
            {"Type": "bind", "RW": true, "Destination": "/srv/sealcache/rotation.json", "Source": "/d/rotation.json"}
        ]);
        deployment["Mounts"] = mounts;
        assert!(!hardened(&deployment, dir).0, "ca/ is visible");
        deployment["HostConfig"]["Tmpfs"] = serde_json::json!({"/srv/sealcache/ca": "mode=0000"});
        assert!(
            hardened(&deployment, dir).0,
            "{}",
            hardened(&deployment, dir).1
        );
        let mut whole = deployment.clone();
        whole["Mounts"][0]["RW"] = true.into();
        assert!(!hardened(&whole, dir).0, "the directory itself writable");
        let mut moved = deployment.clone();
        moved["Mounts"][1]["Destination"] = "/srv/other".into();
        assert!(!hardened(&moved, dir).0, "writable elsewhere");
        let mut parent = deployment;
        parent["Mounts"][0]["Source"] = "/".into();
        assert!(!hardened(&parent, dir).0, "the host's root shows /d/ca");
        assert!(publishes_port(
            &serde_json::json!({"HostConfig": {"PortBindings": {"6379/tcp": []}}})
        ));
    }
}
