//! The verifying client: `cargo xtask partitions-agent` (hidden), started by the harness inside a
//! host's namespace with `ip netns exec`, talking only to that host's own backend on its
//! `127.0.0.1:8080`.
//!
//! `run` keeps several threads calling the backend until a stop file appears: each key has one
//! writer host (the owner), which stores increasing versions of it one at a time (`{"k": key,
//! "v": version, "w": host}`), some keys often and some rarely, while every host looks up every
//! key between the writes. Every call is recorded with
//! its start and end time (the machine's wall clock, shared by every namespace), the version
//! written or read, and the HTTP status (0: no answer within the client's timeout), so that the
//! judge can tell a wrong answer (another key's value, or a version nobody wrote), a stale one, a
//! lost write, and how long each call took. `call`, `fill` and `read-all` are one-shot helpers.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// How long the client waits for an answer: longer than the call bound, so that a call that
/// overruns it is measured, not cut at the bound.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    /// `POST /v1/cache/lookup`.
    Read,
    /// `PUT /v1/cache/entries`.
    Write,
    /// `POST /internal/cache/invalidate` of an operation.
    Invalidate,
    /// Anything else (`/health`, the security status): not a cache request.
    Status,
}

/// One call, as the judge reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The host (0-based) whose backend answered.
    pub host: usize,
    pub op: Op,
    /// The key (the request's `text`); the operation for an invalidation.
    pub key: String,
    /// The request's `operation`.
    pub operation: String,
    /// The version written, or read (`None`: a miss, or no answer).
    pub version: Option<u64>,
    /// Start and end, Unix milliseconds.
    pub t0: f64,
    pub t1: f64,
    /// HTTP status; 0 when no answer came (timeout, refused connection).
    pub status: u16,
    /// Why the answer is wrong on its face (another key's value, not the stored shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrong: Option<String>,
}

impl Record {
    /// A store the backend acknowledged, or an invalidation it answered 200.
    pub(crate) fn acknowledged(&self) -> bool {
        match self.op {
            Op::Write => self.status == 201,
            Op::Invalidate => self.status == 200,
            Op::Read | Op::Status => false,
        }
    }

    /// A lookup answered with a value.
    pub(crate) fn hit(&self) -> bool {
        self.op == Op::Read && self.status == 200 && self.version.is_some()
    }
}

/// One key of a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlanKey {
    pub key: String,
    pub operation: String,
    /// The host that writes it (`None`: written once before, by the harness).
    pub owner: Option<usize>,
    /// How often its owner writes it, on average (hot keys often, cold keys rarely: a cold key's
    /// copy lives in every L1 for seconds, so a lost invalidation shows).
    #[serde(default)]
    pub write_every_ms: u64,
}

/// What `run` does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub host: usize,
    pub port: u16,
    pub api_key_file: PathBuf,
    pub keys: Vec<PlanKey>,
    pub threads: usize,
    pub pause_ms: u64,
    pub stop_file: PathBuf,
    pub out: PathBuf,
}

/// `cargo xtask partitions-agent` (run by the harness inside a host; not for people).
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Call the backend until the plan's stop file appears; write the records.
    Run {
        #[arg(long)]
        plan: PathBuf,
    },
    /// One call; prints its record (and the answer's body on a second line).
    Call {
        #[arg(long)]
        host: usize,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        api_key_file: PathBuf,
        #[arg(long)]
        method: String,
        #[arg(long)]
        path: String,
        /// The request body (JSON; never a secret).
        #[arg(long)]
        body: Option<String>,
        /// The operation invalidated (recorded as an invalidation).
        #[arg(long)]
        invalidates: Option<String>,
    },
    /// Store `count` entries `{prefix}{i}` of `operation` (version 1), recording each.
    Fill {
        #[arg(long)]
        plan: PathBuf,
        #[arg(long)]
        operation: String,
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: usize,
    },
    /// Look up every key of the plan once, printing the records.
    ReadAll {
        #[arg(long)]
        plan: PathBuf,
    },
}

impl AgentArgs {
    /// Runs the verifying client inside a host (`cargo xtask partitions-agent`).
    ///
    /// # Errors
    /// A plan or record that cannot be read or written, a call that cannot be made.
    pub fn run(self) -> anyhow::Result<std::process::ExitCode> {
        match self.mode {
            Mode::Run { plan } => run(&read_plan(&plan)?)?,
            Mode::Call {
                host,
                port,
                api_key_file,
                method,
                path,
                body,
                invalidates,
            } => {
                let client = Client::new(port, &api_key_file)?;
                let t0 = now_ms();
                let answer = client.call(&method, &path, body.as_deref());
                let t1 = now_ms();
                let (status, text) = answer.unwrap_or((0, String::new()));
                let record = Record {
                    host,
                    op: if invalidates.is_some() {
                        Op::Invalidate
                    } else {
                        Op::Status
                    },
                    key: invalidates.clone().unwrap_or_default(),
                    operation: invalidates.unwrap_or_default(),
                    version: None,
                    t0,
                    t1,
                    status,
                    wrong: None,
                };
                println!("{}", serde_json::to_string(&record)?);
                println!("{}", text.replace('\n', " "));
            }
            Mode::Fill {
                plan,
                operation,
                prefix,
                count,
            } => {
                let plan = read_plan(&plan)?;
                fill(&plan, &operation, &prefix, count)?;
            }
            Mode::ReadAll { plan } => {
                let plan = read_plan(&plan)?;
                let client = Client::new(plan.port, &plan.api_key_file)?;
                for k in &plan.keys {
                    let record = read(&client, plan.host, k);
                    println!("{}", serde_json::to_string(&record)?);
                }
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    }
}

fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let text =
        std::fs::read(path).with_context(|| format!("cannot read the plan {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not a plan", path.display()))
}

/// Unix time in milliseconds (the wall clock every namespace shares).
pub(crate) fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A small xorshift generator: the workload needs variety, not secrecy.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// `every_ms` give or take half.
fn jitter(rng: &mut Rng, every_ms: u64) -> Duration {
    let half = every_ms / 2;
    Duration::from_millis(half + rng.next() % (every_ms.max(1)))
}

/// HTTP/1.1 to the host's own backend, one connection per call (`Connection: close`).
struct Client {
    addr: SocketAddr,
    api_key: String,
}

impl Client {
    fn new(port: u16, api_key_file: &Path) -> anyhow::Result<Self> {
        let api_key = std::fs::read_to_string(api_key_file)
            .with_context(|| format!("cannot read {}", api_key_file.display()))?
            .trim()
            .to_owned();
        Ok(Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            api_key,
        })
    }

    /// (status, body), or an error when no whole answer came within [`CLIENT_TIMEOUT`].
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let left = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::TimedOut))
        };
        let mut stream = TcpStream::connect_timeout(&self.addr, left()?)?;
        stream.set_write_timeout(Some(left()?))?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {}\r\n",
            self.api_key
        );
        if let Some(b) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        request.push_str("\r\n");
        if let Some(b) = body {
            request.push_str(b);
        }
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        let mut buf = [0_u8; 16 * 1024];
        loop {
            stream.set_read_timeout(Some(left()?))?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        parse_response(&raw)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not HTTP"))
    }
}

/// Status and body of a whole HTTP/1.1 response (`Content-Length` or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = body.as_slice();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = rest.get(line_end + 2..)?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = out;
    }
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The stored value of `key` at `version`, written by `host`.
fn value(key: &str, version: u64, host: usize) -> serde_json::Value {
    serde_json::json!({"k": key, "v": version, "w": host, "pad": "sealcache-partitions"})
}

fn write(client: &Client, host: usize, k: &PlanKey, version: u64) -> Record {
    let body = serde_json::json!({
        "text": k.key,
        "operation": k.operation,
        "response": value(&k.key, version, host),
        "ttl_seconds": 900,
    })
    .to_string();
    let t0 = now_ms();
    let answer = client.call("PUT", "/v1/cache/entries", Some(&body));
    let t1 = now_ms();
    Record {
        host,
        op: Op::Write,
        key: k.key.clone(),
        operation: k.operation.clone(),
        version: Some(version),
        t0,
        t1,
        status: answer.map_or(0, |(s, _)| s),
        wrong: None,
    }
}

fn read(client: &Client, host: usize, k: &PlanKey) -> Record {
    let body = serde_json::json!({"text": k.key, "operation": k.operation}).to_string();
    let t0 = now_ms();
    let answer = client.call("POST", "/v1/cache/lookup", Some(&body));
    let t1 = now_ms();
    let mut record = Record {
        host,
        op: Op::Read,
        key: k.key.clone(),
        operation: k.operation.clone(),
        version: None,
        t0,
        t1,
        status: 0,
        wrong: None,
    };
    let Ok((status, text)) = answer else {
        return record;
    };
    record.status = status;
    if status != 200 {
        return record;
    }
    let Ok(answer) = serde_json::from_str::<serde_json::Value>(&text) else {
        record.wrong = Some("the answer is not JSON".to_owned());
        return record;
    };
    match answer["hit"].as_bool() {
        Some(false) => {}
        Some(true) => {
            let response = &answer["response"];
            match (response["k"].as_str(), response["v"].as_u64()) {
                (Some(got), Some(v)) if got == k.key => record.version = Some(v),
                (Some(got), Some(v)) => {
                    record.version = Some(v);
                    record.wrong = Some(format!("the value of `{got}` (version {v})"));
                }
                _ => record.wrong = Some(format!("not a stored value: {response}")),
            }
        }
        None => record.wrong = Some(format!("no `hit` in {answer}")),
    }
    record
}

fn seed(host: usize, thread: usize) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    nanos ^ ((host as u64) << 32) ^ ((thread as u64) << 16) ^ u64::from(std::process::id())
}

fn run(plan: &Plan) -> anyhow::Result<()> {
    let client = std::sync::Arc::new(Client::new(plan.port, &plan.api_key_file)?);
    let owned: Vec<&PlanKey> = plan
        .keys
        .iter()
        .filter(|k| k.owner == Some(plan.host))
        .collect();
    let records = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for thread in 0..plan.threads.max(1) {
            // Each owned key is written by exactly one thread, one version at a time, so the
            // versions of a key are written in order.
            let mine: Vec<PlanKey> = owned
                .iter()
                .enumerate()
                .filter(|(i, _)| i % plan.threads.max(1) == thread)
                .map(|(_, k)| (*k).clone())
                .collect();
            let client = std::sync::Arc::clone(&client);
            handles.push(scope.spawn(move || {
                let mut rng = Rng::new(seed(plan.host, thread));
                let mut next_version = vec![0_u64; mine.len()];
                let mut due: Vec<Instant> = mine
                    .iter()
                    .map(|k| Instant::now() + jitter(&mut rng, k.write_every_ms))
                    .collect();
                let mut out = Vec::new();
                while !plan.stop_file.exists() {
                    let now = Instant::now();
                    if let Some(i) = (0..mine.len()).find(|&i| due[i] <= now) {
                        next_version[i] += 1;
                        out.push(write(&client, plan.host, &mine[i], next_version[i]));
                        due[i] = Instant::now() + jitter(&mut rng, mine[i].write_every_ms);
                    } else {
                        let k = &plan.keys[rng.below(plan.keys.len())];
                        out.push(read(&client, plan.host, k));
                    }
                    std::thread::sleep(Duration::from_millis(plan.pause_ms));
                }
                out
            }));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect::<Vec<Record>>()
    });
    write_records(&plan.out, &records)
}

fn fill(plan: &Plan, operation: &str, prefix: &str, count: usize) -> anyhow::Result<()> {
    let client = Client::new(plan.port, &plan.api_key_file)?;
    let threads = plan.threads.max(1);
    let records = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let client = &client;
                scope.spawn(move || {
                    (0..count)
                        .filter(|i| i % threads == t)
                        .map(|i| {
                            let k = PlanKey {
                                key: format!("{prefix}{i}"),
                                operation: operation.to_owned(),
                                owner: None,
                                write_every_ms: 0,
                            };
                            write(client, plan.host, &k, 1)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect::<Vec<Record>>()
    });
    write_records(&plan.out, &records)
}

fn write_records(path: &Path, records: &[Record]) -> anyhow::Result<()> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The records of a JSON-lines file (lines that are not records are skipped).
pub(crate) fn read_records(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn responses_parse_with_a_length_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\n{\"hit\":false}";
        assert_eq!(
            parse_response(plain),
            Some((200, "{\"hit\":false}".to_owned()))
        );
        let chunked =
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((201, "{\"a\":1}".to_owned())));
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn an_answer_for_another_key_is_wrong_on_its_face() {
        let record = Record {
            host: 0,
            op: Op::Read,
            key: "a".into(),
            operation: "qa".into(),
            version: Some(3),
            t0: 0.0,
            t1: 1.0,
            status: 200,
            wrong: None,
        };
        assert!(record.hit() && !record.acknowledged());
        let line = serde_json::to_string(&record).unwrap();
        assert_eq!(read_records(&format!("{line}\nnot json\n")).len(), 1);
    }
}
