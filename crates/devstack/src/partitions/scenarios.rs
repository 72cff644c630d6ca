//! The four scenarios. Each runs the verifying clients on every host (3 s of warm-up, so that
//! every L1 holds copies), applies its fault, heals it, lets the clients run on, stops them,
//! checks that the three backends converge without a restart, judges the records, and gives
//! every formed primary its role back for the next scenario.
//!
//! | scenario | fault |
//! |---|---|
//! | `isolate_host` | host 3 dropped from the network (every packet, both ways) for 14 s (> `cluster-node-timeout`, 5 s): its primary fails over to host 2 |
//! | `isolate_bus` | only host 3's cluster bus ports (16379, 16380) dropped for 14 s: clients still reach every node, the nodes lose each other |
//! | `pause_primary` | host 2's primary stopped (`SIGSTOP`) for 14 s during the writes, then continued: it fails over to host 1 |
//! | `kill_backend_during_invalidation` | host 3's backend killed (`SIGKILL`) while it walks an invalidation of 3000 entries; the client retries on host 1; the backend restarted |

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::agent::{Plan, PlanKey, Record, now_ms, read_records};
use super::judge::{self, CALL_BOUND_MS, COHERENCE_BOUND_MS, Timeline, Verdict};
use super::net::HOSTS;
use super::stack::{API_PORT, NodeId, Stack};
use super::{Harness, say};
use crate::verify::{Check, check};

/// The scenarios, in the order they run.
pub(crate) const NAMES: [&str; 4] = [
    "isolate_host",
    "isolate_bus",
    "pause_primary",
    "kill_backend_during_invalidation",
];

/// Keys each host writes per scenario.
const KEYS_PER_HOST: usize = 12;
/// How often a key is written, by key: hot, warm and cold (a cold key's copies stay in every L1
/// for seconds, so an invalidation that never arrives shows as a stale answer).
const WRITE_EVERY_MS: [u64; 3] = [300, 1500, 6000];
/// Warm-up before the fault, and the run after the heal.
const WARM_UP: Duration = Duration::from_secs(3);
const AFTER_HEAL: Duration = Duration::from_secs(8);
/// How long a partition (or a pause) lasts: longer than `cluster-node-timeout` (5 s) plus the
/// replica's election, so that a failover happens during it.
const PARTITION: Duration = Duration::from_secs(14);
const PAUSE: Duration = Duration::from_secs(14);
/// Entries the invalidation walks when its backend is killed, and how many of them the clients
/// read.
const BULK: usize = 3000;
const BULK_TRACKED: usize = 24;
/// The three backends must agree (and serve L1) within this after the clients stop.
const CONVERGENCE: Duration = Duration::from_secs(30);

/// One scenario's result.
#[derive(Debug)]
pub(crate) struct Outcome {
    name: &'static str,
    verdict: Verdict,
    checks: Vec<Check>,
}

impl Outcome {
    pub(crate) fn passed(&self) -> bool {
        self.verdict.wrong == 0
            && self.verdict.stale_beyond_bound == 0
            && (self.verdict.longest_call_ms as f64) <= CALL_BOUND_MS
            && self.checks.iter().all(|c| c.passed)
    }

    /// The contract's object: exactly these fields, in this order.
    pub(crate) fn json(&self) -> Summary {
        Summary {
            scenario: self.name,
            requests: self.verdict.requests,
            wrong: self.verdict.wrong,
            stale_beyond_bound: self.verdict.stale_beyond_bound,
            lost_acknowledged: self.verdict.lost_acknowledged,
            longest_call_ms: self.verdict.longest_call_ms,
        }
    }

    /// The ✅/❌ line, the checks and the findings (on standard error in `--json` mode).
    pub(crate) fn print(&self, json: bool) {
        let v = &self.verdict;
        say!(
            json,
            "{} {}: {} requests, {} wrong, {} stale beyond {COHERENCE_BOUND_MS:.0} ms, {} lost acknowledged, longest call {} ms (bound {CALL_BOUND_MS:.0} ms)",
            if self.passed() { "✅" } else { "❌" },
            self.name,
            v.requests,
            v.wrong,
            v.stale_beyond_bound,
            v.lost_acknowledged,
            v.longest_call_ms
        );
        for c in &self.checks {
            say!(
                json,
                "   {} {}: {}",
                if c.passed { "✅" } else { "❌" },
                c.name,
                c.detail
            );
        }
        for f in &v.findings {
            say!(json, "   · {f}");
        }
    }
}

/// A scenario in `--json` output.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Summary {
    scenario: &'static str,
    requests: u64,
    wrong: u64,
    stale_beyond_bound: u64,
    lost_acknowledged: u64,
    longest_call_ms: u64,
}

/// What a fault reports back.
#[derive(Debug, Default)]
struct Fault {
    /// When it started and ended (Unix ms).
    start: f64,
    healed: f64,
    /// When a replica took over (Unix ms), if one did.
    failover: Option<f64>,
    /// Whether writes may be lost meanwhile (a primary lost its replica's company).
    may_lose: bool,
    /// The host cut off from the others, if any: its backend must stop serving L1.
    minority: Option<usize>,
    /// Calls the harness made (the invalidations of the last scenario).
    records: Vec<Record>,
    checks: Vec<Check>,
}

fn keys(name: &str) -> Vec<PlanKey> {
    let mut keys: Vec<PlanKey> = (0..HOSTS)
        .flat_map(|owner| {
            (0..KEYS_PER_HOST).map(move |i| PlanKey {
                key: format!("{name}-h{}-k{i:02}", owner + 1),
                operation: "qa".to_owned(),
                owner: Some(owner),
                write_every_ms: WRITE_EVERY_MS[i % WRITE_EVERY_MS.len()],
            })
        })
        .collect();
    if name == "kill_backend_during_invalidation" {
        keys.extend((0..BULK_TRACKED).map(|i| PlanKey {
            key: format!("{}{i}", bulk_prefix(name)),
            operation: "bulk".to_owned(),
            owner: None,
            write_every_ms: 0,
        }));
    }
    keys
}

fn bulk_prefix(name: &str) -> String {
    format!("{name}-bulk-")
}

fn plan(h: &Harness, name: &str, host: usize, dir: &Path) -> Plan {
    Plan {
        host,
        port: API_PORT,
        api_key_file: h.stack.api_key_file(),
        keys: keys(name),
        threads: 4,
        pause_ms: 20,
        stop_file: dir.join("stop"),
        out: dir.join(format!("records-h{}.jsonl", host + 1)),
    }
}

fn write_plan(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(plan)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs scenario `name`.
pub(crate) fn run(h: &mut Harness, name: &'static str) -> anyhow::Result<Outcome> {
    let dir = h.stack.state.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pids_before: Vec<Option<u32>> = (0..HOSTS)
        .map(|host| h.procs.pid(&Stack::backend_name(host)))
        .collect();
    let mut plan_paths = Vec::new();
    for host in 0..HOSTS {
        let path = dir.join(format!("plan-h{}.json", host + 1));
        write_plan(&plan(h, name, host, &dir), &path)?;
        plan_paths.push(path);
    }
    let mut setup_records = Vec::new();
    if name == "kill_backend_during_invalidation" {
        setup_records = fill_bulk(h, name, &dir)?;
    }
    for (host, path) in plan_paths.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("agent-h{}.log", host + 1)))
            .context("cannot create an agent log")?;
        let child = h
            .agent(host)
            .arg("run")
            .arg("--plan")
            .arg(path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot reopen an agent log")?)
            .stderr(log)
            .spawn()
            .context("cannot start a verifying client")?;
        h.procs.push(agent_name(host), child);
    }
    std::thread::sleep(WARM_UP);
    let fault = match name {
        "isolate_host" => isolate_host(h)?,
        "isolate_bus" => isolate_bus(h)?,
        "pause_primary" => pause_primary(h)?,
        _ => kill_backend_during_invalidation(h)?,
    };
    std::thread::sleep(AFTER_HEAL);
    stop_agents(h, &dir)?;
    let mut checks = fault.checks;
    let mut records = read_agent_records(&dir)?;
    records.extend(fault.records);
    records.extend(setup_records);
    let (converged, final_state, convergence_reads) = converge(h, name, &dir);
    records.extend(convergence_reads);
    checks.push(converged);
    // No backend restarted, except the one the scenario killed.
    let restarted: Vec<usize> = (0..HOSTS)
        .filter(|&host| h.procs.pid(&Stack::backend_name(host)) != pids_before[host])
        .collect();
    let expected: Vec<usize> = if name == "kill_backend_during_invalidation" {
        vec![2]
    } else {
        Vec::new()
    };
    checks.push(check(
        "no_restart",
        restarted == expected,
        if expected.is_empty() {
            "the three backends converged in the processes that ran before the fault".to_owned()
        } else {
            "host 3's backend was restarted after its kill; the others kept their processes"
                .to_owned()
        },
    ));
    if let Some(host) = fault.minority {
        checks.push(minority_l1(
            &h.stack.backend_log(host),
            host,
            fault.start,
            fault.healed,
        ));
    }
    let timeline = Timeline {
        loss_windows: if fault.may_lose {
            vec![(fault.start - 1000.0, fault.healed + 1000.0)]
        } else {
            Vec::new()
        },
        settled: fault.failover.unwrap_or(fault.healed),
        final_state,
        origin: fault.start,
    };
    let verdict = judge::judge(&records, &timeline);
    if verdict.unknown_fate > 0 {
        checks.push(check(
            "loss_window_accounted",
            true,
            format!(
                "{} writes acknowledged in the loss window were neither answered again nor contradicted after the heal (left out of the judgement)",
                verdict.unknown_fate
            ),
        ));
    }
    h.stack
        .restore_roles()
        .context("cannot give the primaries their role back")?;
    for host in 0..HOSTS {
        h.wait_backend(host, Duration::from_secs(30))?;
    }
    Ok(Outcome {
        name,
        verdict,
        checks,
    })
}

fn agent_name(host: usize) -> String {
    format!("agent-h{}", host + 1)
}

fn stop_agents(h: &mut Harness, dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("stop"), b"").context("cannot write the stop file")?;
    // A call in flight may wait for the client's whole timeout.
    let deadline = Instant::now() + super::agent::CLIENT_TIMEOUT + Duration::from_secs(5);
    for host in 0..HOSTS {
        while h.procs.pid(&agent_name(host)).is_some() {
            if Instant::now() >= deadline {
                h.procs.kill(&agent_name(host));
                bail!("the verifying client of host {} did not stop", host + 1);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        h.procs.kill(&agent_name(host));
    }
    Ok(())
}

fn read_agent_records(dir: &Path) -> anyhow::Result<Vec<Record>> {
    let mut records = Vec::new();
    for host in 0..HOSTS {
        let path = dir.join(format!("records-h{}.jsonl", host + 1));
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("the verifying client of host {} wrote no records", host + 1)
        })?;
        records.extend(read_records(&text));
    }
    Ok(records)
}

/// After the clients stopped: every backend serves its L1 and sees the cluster ok, and all three
/// answer every key with the same version (a hit) — without a restart. Returns the check, the
/// agreed state, and every lookup made meanwhile (judged like the others).
fn converge(
    h: &Harness,
    name: &str,
    dir: &Path,
) -> (Check, HashMap<String, Option<u64>>, Vec<Record>) {
    let started = Instant::now();
    let mut reads = Vec::new();
    let mut last = String::new();
    while started.elapsed() < CONVERGENCE {
        let ready: Vec<(bool, bool, bool)> = (0..HOSTS).map(|host| h.backend_state(host)).collect();
        if ready.iter().any(|s| *s != (true, true, true)) {
            last = format!("backends (reachable, L1, cluster ok): {ready:?}");
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        let mut views: Vec<BTreeMap<String, Option<u64>>> = Vec::new();
        for host in 0..HOSTS {
            let plan = dir.join(format!("plan-h{}.json", host + 1));
            let text = super::net::run(h.agent(host).args(["read-all", "--plan"]).arg(&plan))
                .unwrap_or_default();
            let got = read_records(&text);
            let view = got
                .iter()
                .filter(|r| r.status == 200 && r.wrong.is_none())
                .map(|r| (r.key.clone(), r.version))
                .collect::<BTreeMap<_, _>>();
            let complete = got.len() == view.len() && view.len() == keys(name).len();
            reads.extend(got);
            if complete {
                views.push(view);
            }
        }
        if views.len() == HOSTS && views.windows(2).all(|w| w[0] == w[1]) {
            let state = views
                .first()
                .map(|v| v.clone().into_iter().collect())
                .unwrap_or_default();
            return (
                check(
                    "converged",
                    true,
                    format!(
                        "the three backends serve L1 and answer all {} keys alike {:.1}s after the clients stopped",
                        keys(name).len(),
                        started.elapsed().as_secs_f64()
                    ),
                ),
                state,
                reads,
            );
        }
        last = format!(
            "{} of {HOSTS} backends answered every key; their answers differ",
            views.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    (
        check(
            "converged",
            false,
            format!("not within {CONVERGENCE:?}: {last}"),
        ),
        HashMap::new(),
        reads,
    )
}

/// The isolated host's backend stopped serving L1 within the bound after the cut and did not
/// serve it again before the heal, as its log tells (the cache logs each change: "L1
/// invalidation subscription confirmed: L1 served" and "... lost: L1 flushed and bypassed").
/// The security status would say the same, but on a cut-off host it answers only after its node
/// probes time out, seconds later.
fn minority_l1(log: &Path, host: usize, start: f64, healed: f64) -> Check {
    let transitions = l1_transitions(&std::fs::read_to_string(log).unwrap_or_default());
    let from = start + COHERENCE_BOUND_MS;
    let served_at = |t: f64| {
        transitions
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .is_some_and(|(_, served)| *served)
    };
    let off_since = transitions
        .iter()
        .filter(|(at, served)| !served && *at >= start && *at <= from)
        .map(|(at, _)| *at)
        .next();
    let resumed = transitions
        .iter()
        .filter(|(at, served)| *served && *at > from && *at < healed)
        .count();
    let passed = !served_at(from) && resumed == 0;
    let detail = match (off_since, passed) {
        (Some(at), true) => format!(
            "host {}'s backend stopped serving L1 {:.0} ms after the cut and served none until the heal",
            host + 1,
            at - start
        ),
        (_, true) => format!(
            "host {}'s backend served no L1 from the cut to the heal",
            host + 1
        ),
        (_, false) => format!(
            "host {}'s backend served L1 while cut off: {} at {COHERENCE_BOUND_MS:.0} ms after the cut, and confirmed its subscription again {resumed} times before the heal",
            host + 1,
            if served_at(from) { "still on" } else { "off" }
        ),
    };
    check("minority_stops_l1", passed, detail)
}

/// When the backend started (`true`) and stopped (`false`) serving L1, from its JSON log.
fn l1_transitions(log: &str) -> Vec<(f64, bool)> {
    log.lines()
        .filter(|l| l.contains("L1 invalidation subscription"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let message = v["fields"]["message"].as_str()?;
            let served = if message.starts_with("L1 invalidation subscription confirmed") {
                true
            } else if message.starts_with("L1 invalidation subscription lost") {
                false
            } else {
                return None;
            };
            Some((unix_ms(v["timestamp"].as_str()?)?, served))
        })
        .collect()
}

/// `2026-12-06T05:43:09.311129Z` in Unix milliseconds.
fn unix_ms(timestamp: &str) -> Option<f64> {
    let (date, time) = timestamp.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss) * 1000.0)
}

/// Polls until `node` reports `want` as its role (`master`), up to `timeout`; the time it did.
fn wait_role(stack: &Stack, node: NodeId, want: &str, timeout: Duration) -> Option<f64> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if stack.role(node).as_deref() == Some(want) {
            return Some(now_ms());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn failover_check(
    stack: &Stack,
    replica: NodeId,
    start: f64,
    within: Duration,
) -> (Check, Option<f64>, Instant) {
    let until = Instant::now() + within;
    let promoted = wait_role(stack, replica, "master", within);
    let detail = match promoted {
        Some(t) => format!(
            "{} (the replica on another host) took over {:.1}s after the fault began",
            replica.name(),
            (t - start) / 1000.0
        ),
        None => format!("{} was not promoted during the fault", replica.name()),
    };
    (
        check("failover", promoted.is_some(), detail),
        promoted,
        until,
    )
}

fn sleep_until(until: Instant) {
    if let Some(d) = until.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

fn isolate_host(h: &mut Harness) -> anyhow::Result<Fault> {
    let host = 2;
    let start = now_ms();
    h.net.isolate_host(host)?;
    say!(
        h.json,
        "   host 3 cut off (every packet dropped, both ways)"
    );
    // Host 3's primary; its replica is host 2's `b` node.
    let (failover, promoted, until) =
        failover_check(&h.stack, NodeId { host: 1, slot: 1 }, start, PARTITION);
    sleep_until(until);
    h.net.heal(host)?;
    let healed = now_ms();
    say!(h.json, "   healed after {:.1}s", (healed - start) / 1000.0);
    Ok(Fault {
        start,
        healed,
        failover: promoted,
        may_lose: true,
        minority: Some(host),
        records: Vec::new(),
        checks: vec![failover],
    })
}

fn isolate_bus(h: &mut Harness) -> anyhow::Result<Fault> {
    let host = 2;
    let start = now_ms();
    let ports: Vec<u16> = (0..2)
        .map(|slot| NodeId { host, slot }.bus_port())
        .collect();
    h.net.isolate_ports(host, &ports)?;
    say!(
        h.json,
        "   host 3's cluster bus ports {ports:?} cut off (clients still reach every node)"
    );
    let (failover, promoted, until) =
        failover_check(&h.stack, NodeId { host: 1, slot: 1 }, start, PARTITION);
    sleep_until(until);
    h.net.heal(host)?;
    let healed = now_ms();
    say!(h.json, "   healed after {:.1}s", (healed - start) / 1000.0);
    Ok(Fault {
        start,
        healed,
        failover: promoted,
        may_lose: true,
        minority: None,
        records: Vec::new(),
        checks: vec![failover],
    })
}

fn pause_primary(h: &mut Harness) -> anyhow::Result<Fault> {
    let primary = NodeId { host: 1, slot: 0 };
    let start = now_ms();
    h.procs
        .signal(&primary.name(), rustix::process::Signal::STOP)?;
    say!(
        h.json,
        "   {} (host 2's primary) stopped with SIGSTOP",
        primary.name()
    );
    // Host 2's primary; its replica is host 1's `b` node.
    let (failover, promoted, until) =
        failover_check(&h.stack, NodeId { host: 0, slot: 1 }, start, PAUSE);
    sleep_until(until);
    h.procs
        .signal(&primary.name(), rustix::process::Signal::CONT)?;
    let healed = now_ms();
    say!(
        h.json,
        "   continued after {:.1}s",
        (healed - start) / 1000.0
    );
    Ok(Fault {
        start,
        healed,
        failover: promoted,
        may_lose: true,
        minority: None,
        records: Vec::new(),
        checks: vec![failover],
    })
}

/// Fills operation `bulk` with [`BULK`] entries through host 1 (the clients read the first
/// [`BULK_TRACKED`]); returns the tracked entries' store records.
fn fill_bulk(h: &Harness, name: &str, dir: &Path) -> anyhow::Result<Vec<Record>> {
    let started = Instant::now();
    let plan = dir.join("plan-h1.json");
    super::net::run(
        h.agent(0)
            .args([
                "fill",
                "--operation",
                "bulk",
                "--prefix",
                &bulk_prefix(name),
            ])
            .args(["--count", &BULK.to_string()])
            .arg("--plan")
            .arg(&plan),
    )?;
    // `fill` writes its records where the plan says: read them back, keep the tracked keys.
    let out = dir.join("records-h1.jsonl");
    let records = read_records(&std::fs::read_to_string(&out).unwrap_or_default());
    let stored = records.iter().filter(|r| r.acknowledged()).count();
    if stored != BULK {
        bail!("only {stored} of {BULK} bulk entries were stored");
    }
    let _ = std::fs::remove_file(&out);
    let tracked: std::collections::HashSet<String> = keys(name)
        .into_iter()
        .filter(|k| k.owner.is_none())
        .map(|k| k.key)
        .collect();
    say!(
        h.json,
        "   {BULK} entries of operation `bulk` stored in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(records
        .into_iter()
        .filter(|r| tracked.contains(&r.key))
        .collect())
}

/// Entries in the primaries (`DBSIZE` of each `a` node: every scenario starts as formed).
fn entries(stack: &Stack) -> Option<u64> {
    (0..HOSTS)
        .map(|host| {
            stack
                .admin(NodeId { host, slot: 0 }, &["DBSIZE"])
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
        })
        .sum()
}

fn kill_backend_during_invalidation(h: &mut Harness) -> anyhow::Result<Fault> {
    let host = 2;
    let before = entries(&h.stack).context("cannot count the entries")?;
    let start = now_ms();
    let mut call = h
        .call_command(
            host,
            "POST",
            "/internal/cache/invalidate",
            Some(r#"{"operation":"bulk"}"#),
            Some("bulk"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the invalidation")?;
    // Killed once the walk has visibly begun (entries are going) and before it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut at_kill = before;
    while Instant::now() < deadline {
        if let Some(now) = entries(&h.stack) {
            at_kill = now;
            if now + 50 <= before {
                break;
            }
        }
        if matches!(call.try_wait(), Ok(Some(_))) {
            break;
        }
    }
    h.procs.kill(&Stack::backend_name(host));
    let killed = now_ms();
    say!(
        h.json,
        "   host 3's backend killed {:.0} ms into the invalidation",
        killed - start
    );
    let out = call
        .wait_with_output()
        .context("the invalidation call did not end")?;
    let (interrupted, _) = super::parse_call(&String::from_utf8_lossy(&out.stdout))?;
    let after_kill = entries(&h.stack).unwrap_or(before);
    let during =
        interrupted.status != 200 && after_kill < before && after_kill + 100 > before - BULK as u64;
    let mut checks = vec![check(
        "killed_during_invalidation",
        during,
        format!(
            "the walk had removed {} of {BULK} entries when the backend was killed ({} by the time it died); the caller got {}",
            before.saturating_sub(at_kill),
            before.saturating_sub(after_kill),
            if interrupted.status == 0 {
                "no answer".to_owned()
            } else {
                format!("HTTP {}", interrupted.status)
            }
        ),
    )];
    // The caller retries on another host: acknowledged there.
    let (retry, _) = h.call(
        0,
        "POST",
        "/internal/cache/invalidate",
        Some(r#"{"operation":"bulk"}"#),
        Some("bulk"),
    )?;
    checks.push(check(
        "retried_elsewhere",
        retry.status == 200,
        format!(
            "the retry through host 1 answered HTTP {} in {:.0} ms",
            retry.status,
            retry.t1 - retry.t0
        ),
    ));
    h.stack.start_backend(&mut h.procs, host)?;
    h.wait_backend(host, Duration::from_secs(30))?;
    let healed = now_ms();
    say!(
        h.json,
        "   host 3's backend restarted and ready {:.1}s after the kill",
        (healed - killed) / 1000.0
    );
    Ok(Fault {
        start,
        healed,
        failover: None,
        may_lose: false,
        minority: None,
        records: vec![interrupted, retry],
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_timestamps_and_l1_transitions_are_read() {
        assert_eq!(unix_ms("1970-01-01T00:00:01.5Z"), Some(1500.0));
        assert_eq!(
            unix_ms("2026-12-06T05:43:09.311Z"),
            Some(1_796_535_789_311.0)
        );
        let log = r#"{"timestamp":"1970-01-01T00:00:01Z","fields":{"message":"L1 invalidation subscription confirmed: L1 served"}}
{"timestamp":"1970-01-01T00:00:02Z","fields":{"message":"something else"}}
{"timestamp":"1970-01-01T00:00:03Z","fields":{"message":"L1 invalidation subscription lost: L1 flushed and bypassed until re-subscribed"}}"#;
        assert_eq!(l1_transitions(log), vec![(1000.0, true), (3000.0, false)]);
    }
}
