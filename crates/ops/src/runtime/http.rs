//! A minimal HTTP/1.1 client over TCP (the operations talk to the local backend only).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::error::{OpsError, Result, StepExt as _};

/// Sends one request to `127.0.0.1:port` and returns (status, body).
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    api_key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .step(|| format!("cannot connect to 127.0.0.1:{port}"))?;
    let failed = || format!("{method} http://127.0.0.1:{port}{path}");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .step(failed)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(key) = api_key {
        req.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    stream.write_all(req.as_bytes()).step(failed)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).step(failed)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| OpsError::Unhealthy {
            target: failed(),
            detail: "no HTTP status in the answer".to_owned(),
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // Unchunk the simple case (axum uses content-length for JSON bodies).
    Ok((status, body))
}
