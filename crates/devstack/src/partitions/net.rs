//! Three hosts as network namespaces on one bridge, sealed off from every other network.
//!
//! ```text
//!   scpart-h1 (10.213.7.1/24, eth0) ─┐
//!   scpart-h2 (10.213.7.2/24, eth0) ─┼─ br0 in scpart-br (no address, no route, no uplink)
//!   scpart-h3 (10.213.7.3/24, eth0) ─┘
//! ```
//!
//! The bridge lives in a namespace of its own, so the root namespace gets neither an address nor a
//! route into the hosts' subnet. No namespace has a default route or any route through a gateway:
//! each host's only route is its own /24 on `eth0`, and every packet it sends can go only to the two
//! other hosts. This is checked with `ip route get` inside every namespace before anything starts
//! (each peer resolves to `eth0` with no `via`; TEST-NET 192.0.2.1 is "Network is unreachable"), and
//! the harness refuses to run otherwise. Nothing ever connects anywhere to learn reachability.
//!
//! Faults are `iptables` DROP rules inside a host's namespace (both directions on `eth0`, so both
//! sides see silent timeouts, not refusals), removed to heal. [`Net`] deletes every namespace
//! (after killing, by pid, whatever still runs inside) when dropped, also on a panic, and
//! [`Net::create`] first removes what an aborted run left behind.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

/// Hosts of the harness.
pub(crate) const HOSTS: usize = 3;
/// Every namespace of the harness starts with this (leftovers are found by it).
const PREFIX: &str = "scpart-";
/// The bridge's namespace.
const BRIDGE_NS: &str = "scpart-br";
/// The hosts' subnet: a /24 used nowhere else on this machine (checked).
const SUBNET: [u8; 3] = [10, 213, 7];
/// An address outside every network here (TEST-NET-1, RFC 5737): must be unreachable.
const OUTSIDE: &str = "192.0.2.1";
/// The host side of each veth, inside its namespace.
pub(crate) const HOST_IF: &str = "eth0";

/// The namespace of host `i` (0-based).
pub(crate) fn host_ns(i: usize) -> String {
    format!("{PREFIX}h{}", i + 1)
}

/// The address of host `i` (0-based).
pub(crate) fn host_ip(i: usize) -> String {
    format!("{}.{}.{}.{}", SUBNET[0], SUBNET[1], SUBNET[2], i + 1)
}

fn subnet_prefix() -> String {
    format!("{}.{}.{}.", SUBNET[0], SUBNET[1], SUBNET[2])
}

/// Runs `ip ARGS` and fails with its output when it fails.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(args))
}

/// Runs `cmd` (standard input closed), returning its standard output; an error with both streams
/// when it fails.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", cmd.get_program().to_string_lossy()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}{}",
            cmd.get_program().to_string_lossy(),
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text)
}

/// Every namespace whose name starts with [`PREFIX`].
fn our_namespaces() -> anyhow::Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect())
}

/// Kills (SIGKILL, by pid) every process inside namespace `ns`, then deletes it; bounded.
fn remove_namespace(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<u32> = ip(&["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        // Only processes inside our own namespaces: ours, started by this harness (or by an
        // earlier, aborted run of it).
        for &pid in &pids {
            let _ = crate::local::signal(pid, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = ip(&["netns", "del", ns]);
}

/// The three hosts; deleted when dropped.
#[derive(Debug)]
pub(crate) struct Net {
    namespaces: Vec<String>,
}

impl Net {
    /// Removes an aborted run's namespaces, creates the bridge and the three hosts, and checks
    /// that they are sealed off (see the module documentation); fails closed.
    pub(crate) fn create() -> anyhow::Result<Self> {
        for ns in our_namespaces()? {
            println!("   removing {ns}, left by an earlier run");
            remove_namespace(&ns);
        }
        check_subnet_unused()?;
        // The guard exists before the first namespace, so that a failure half-way removes what
        // was made.
        let mut net = Self {
            namespaces: Vec::new(),
        };
        ip(&["netns", "add", BRIDGE_NS])?;
        net.namespaces.push(BRIDGE_NS.to_owned());
        ip(&["-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", BRIDGE_NS, "link", "set", "br0", "up"])?;
        for i in 0..HOSTS {
            let ns = host_ns(i);
            ip(&["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            let temporary = format!("{PREFIX}v{}", i + 1);
            let port = format!("p{}", i + 1);
            // Both ends are made directly inside their namespaces: nothing appears in the root
            // namespace, even for a moment.
            ip(&[
                "link", "add", &temporary, "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", BRIDGE_NS,
            ])?;
            ip(&["-n", BRIDGE_NS, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", BRIDGE_NS, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", &temporary, "name", HOST_IF])?;
            for (key, value) in [
                ("net.ipv4.ip_forward", "0"),
                ("net.ipv6.conf.all.disable_ipv6", "1"),
                ("net.ipv6.conf.default.disable_ipv6", "1"),
            ] {
                run(Command::new("ip").args([
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-q",
                    "-w",
                    &format!("{key}={value}"),
                ]))?;
            }
            let address = format!("{}/24", host_ip(i));
            ip(&["-n", &ns, "addr", "add", &address, "dev", HOST_IF])?;
            ip(&["-n", &ns, "link", "set", HOST_IF, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        net.check_sealed()
            .context("the namespaces are not sealed off: refusing to run")?;
        Ok(net)
    }

    /// Every peer resolves to `eth0` with no gateway, the outside is unreachable, and no route
    /// leaves the subnet, in every namespace.
    fn check_sealed(&self) -> anyhow::Result<()> {
        let routes = ip(&["-n", BRIDGE_NS, "route", "show", "table", "all"])?;
        ensure!(
            !routes
                .lines()
                .any(|l| !l.trim().is_empty() && !is_local_table(l)),
            "the bridge namespace has routes: {routes}"
        );
        let addresses = ip(&["-n", BRIDGE_NS, "-o", "addr", "show"])?;
        ensure!(
            !addresses.contains(" inet "),
            "the bridge namespace has an IPv4 address: {addresses}"
        );
        unreachable(BRIDGE_NS)?;
        for i in 0..HOSTS {
            let ns = host_ns(i);
            let routes = ip(&["-n", &ns, "route", "show"])?;
            let expected = format!("{}0/24 dev {HOST_IF}", subnet_prefix());
            ensure!(
                routes.lines().count() == 1 && routes.starts_with(&expected),
                "{ns}: expected only `{expected} ...`, found routes:\n{routes}"
            );
            ensure!(
                !routes.contains("default") && !routes.contains(" via "),
                "{ns} has a default or gateway route:\n{routes}"
            );
            for j in (0..HOSTS).filter(|&j| j != i) {
                let peer = host_ip(j);
                let got = ip(&["-n", &ns, "route", "get", &peer])?;
                ensure!(
                    got.contains(&format!("dev {HOST_IF}")) && !got.contains(" via "),
                    "{ns}: {peer} does not resolve to {HOST_IF} directly: {got}"
                );
            }
            unreachable(&ns)?;
        }
        Ok(())
    }

    /// `ip netns exec HOST program`: a command that runs inside host `i`.
    pub(crate) fn exec(i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host_ns(i)]).arg(program);
        cmd
    }

    fn iptables(i: usize, rule: &[&str]) -> anyhow::Result<()> {
        run(Self::exec(i, "iptables").args(["-w", "5"]).args(rule)).map(|_| ())
    }

    /// Drops every packet in and out of host `i`'s `eth0` (its own loopback still works).
    pub(crate) fn isolate_host(&self, i: usize) -> anyhow::Result<()> {
        Self::iptables(i, &["-A", "INPUT", "-i", HOST_IF, "-j", "DROP"])?;
        Self::iptables(i, &["-A", "OUTPUT", "-o", HOST_IF, "-j", "DROP"])
    }

    /// Drops the TCP traffic of `ports` (both ends, both directions) on host `i`'s `eth0`: its
    /// nodes' cluster bus, while clients still reach them.
    pub(crate) fn isolate_ports(&self, i: usize, ports: &[u16]) -> anyhow::Result<()> {
        for port in ports {
            let port = port.to_string();
            for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
                for end in ["--dport", "--sport"] {
                    Self::iptables(
                        i,
                        &[
                            "-A", chain, dir, HOST_IF, "-p", "tcp", end, &port, "-j", "DROP",
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Removes every rule of host `i`.
    pub(crate) fn heal(&self, i: usize) -> anyhow::Result<()> {
        Self::iptables(i, &["-F", "INPUT"])?;
        Self::iptables(i, &["-F", "OUTPUT"])
    }
}

/// `local`/`broadcast` entries of the kernel's local table (made for every interface that is up).
fn is_local_table(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    matches!(first, "local" | "broadcast" | "multicast" | "unreachable")
        || line.contains("table local")
        || line.starts_with("fe80::")
        || line.starts_with("ff00::")
}

/// `ip route get` of [`OUTSIDE`] inside `ns` must fail with "Network is unreachable".
fn unreachable(ns: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["-n", ns, "route", "get", OUTSIDE])
        .stdin(Stdio::null())
        .output()
        .context("cannot run ip route get")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        !out.status.success() && text.contains("Network is unreachable"),
        "{ns}: {OUTSIDE} is not unreachable: {}",
        text.trim()
    );
    Ok(())
}

/// The subnet must not be in use in the root namespace (no address, no route).
fn check_subnet_unused() -> anyhow::Result<()> {
    let prefix = subnet_prefix();
    let addresses = ip(&["-o", "addr", "show"])?;
    let routes = ip(&["route", "show", "table", "all"])?;
    ensure!(
        !addresses.contains(&format!("inet {prefix}")) && !routes.contains(&prefix),
        "{prefix}0/24 is already used on this machine: refusing to run"
    );
    Ok(())
}

impl Drop for Net {
    fn drop(&mut self) {
        // Hosts first (their processes, then the namespace), the bridge last.
        for ns in self.namespaces.iter().rev() {
            remove_namespace(ns);
        }
    }
}
