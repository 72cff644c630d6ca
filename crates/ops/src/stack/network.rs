//! Redis administered over the network with redis-rs, for where no `redis-cli` and no Docker
//! exist: inside the backend container, whose image holds only the two sealcache binaries. The
//! connection is the backend's own (the `REDIS_URL` host, TLS with the directory's CA and client
//! certificate); the reply is rendered as `redis-cli` prints it when its output is no terminal
//! (one line per element), so that every caller parses one shape whatever reached Redis.

use std::path::Path;
use std::time::Duration;

use redis::{ClientTlsConfig, IntoConnectionInfo as _, TlsCertificates, Value};

use crate::error::{OpsError, Result, StepExt as _};
use sealcache_config_gen::{SecretString, layout};

/// How long connecting, and then each reply, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `AUTH user password`, then `command` (split on whitespace), on `host:port`: the reply lines
/// of both as `redis-cli` prints them (`OK` first when `AUTH` passed, else its error code).
///
/// # Errors
/// [`OpsError::Command`] when the TLS material cannot be read or no connection can be made (the
/// reason, never the password).
pub(crate) fn run(
    dir: &Path,
    host: &str,
    port: u16,
    tls: bool,
    user: &str,
    password: &SecretString,
    command: &str,
) -> Result<String> {
    let target = format!("{host}:{port}");
    let failed = |detail: String| OpsError::Command {
        program: format!("redis-rs to {target}"),
        detail,
    };
    let scheme = if tls { "rediss" } else { "redis" };
    let info = format!("{scheme}://{target}")
        .as_str()
        .into_connection_info()
        .map_err(|e| failed(format!("not an address ({:?})", e.kind())))?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(settings);
    let client = if tls {
        install_crypto_provider();
        let read = |rel: &str| std::fs::read(dir.join(rel)).step(|| format!("cannot read {rel}"));
        redis::Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: Some(ClientTlsConfig {
                    client_cert: read(layout::CLIENT_CERT)?,
                    client_key: read(layout::CLIENT_KEY)?,
                }),
                root_cert: Some(read(layout::CA_CERT)?),
            },
        )
    } else {
        redis::Client::open(info)
    }
    .map_err(|e| failed(format!("TLS material rejected ({:?})", e.kind())))?;
    let mut connection = client
        .get_connection_with_timeout(TIMEOUT)
        .map_err(|e| failed(format!("cannot connect ({:?})", e.kind())))?;
    connection
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| failed(format!("cannot set timeouts ({:?})", e.kind())))?;
    let mut lines = Vec::new();
    let auth = redis::cmd("AUTH")
        .arg(user)
        .arg(password.expose_secret().trim())
        .query::<Value>(&mut connection);
    let authenticated = auth.is_ok();
    render_result(auth, &mut lines);
    if authenticated {
        let mut cmd = redis::Cmd::new();
        for word in command.split_whitespace() {
            cmd.arg(word);
        }
        render_result(cmd.query::<Value>(&mut connection), &mut lines);
    }
    Ok(lines.join("\n"))
}

/// rustls's `ring` provider as the process default when none is installed (redis-rs builds its
/// TLS configuration with the default).
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// A reply, or the error Redis answered with (`CODE detail`, as `redis-cli` prints it).
fn render_result(reply: redis::RedisResult<Value>, lines: &mut Vec<String>) {
    match reply {
        Ok(value) => render(&value, lines),
        Err(e) => lines.push(format!(
            "{} {}",
            e.code().unwrap_or("ERR"),
            e.detail().unwrap_or("")
        )),
    }
}

/// `value` as `redis-cli` prints it to a pipe: one line per element, nested arrays flattened,
/// nil as an empty line, a bulk string as its text (INFO's lines stay lines).
fn render(value: &Value, lines: &mut Vec<String>) {
    match value {
        Value::Nil => lines.push(String::new()),
        Value::Int(n) => lines.push(n.to_string()),
        Value::BulkString(bytes) => lines.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => lines.push(s.clone()),
        Value::Okay => lines.push("OK".to_owned()),
        Value::Array(items) | Value::Set(items) => {
            for item in items {
                render(item, lines);
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                render(k, lines);
                render(v, lines);
            }
        }
        Value::Double(d) => lines.push(d.to_string()),
        Value::Boolean(b) => lines.push(if *b { "1" } else { "0" }.to_owned()),
        Value::VerbatimString { text, .. } => lines.push(text.clone()),
        Value::ServerError(e) => {
            lines.push(format!("{} {}", e.code(), e.details().unwrap_or_default()));
        }
        other => lines.push(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{Value, render};

    #[test]
    fn replies_render_as_redis_cli_prints_them_to_a_pipe() {
        let mut lines = Vec::new();
        render(
            &Value::Array(vec![
                Value::BulkString(b"user cache_app on #ab ~* +get".to_vec()),
                Value::Array(vec![Value::Int(3), Value::Nil]),
                Value::Okay,
            ]),
            &mut lines,
        );
        assert_eq!(lines, ["user cache_app on #ab ~* +get", "3", "", "OK"]);
    }
}
