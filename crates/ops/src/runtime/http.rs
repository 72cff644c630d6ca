//! The backend's HTTP API on 127.0.0.1, through reqwest's blocking client: one client per
//! process (connections are reused), never through a proxy (the operations talk to the local
//! backend only, whatever `HTTP_PROXY` says).

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{OpsError, Result};

/// How long one request may take, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn client(target: &str) -> Result<&'static reqwest::blocking::Client> {
    static CLIENT: OnceLock<std::result::Result<reqwest::blocking::Client, String>> =
        OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| OpsError::Unhealthy {
            target: target.to_owned(),
            detail: format!("no HTTP client: {e}"),
        })
}

/// Sends one request to `http://127.0.0.1:port{path}` (`api_key` as a bearer token, `body` as
/// JSON) and returns the answer's status and body.
///
/// # Errors
/// [`OpsError::Unhealthy`] when nothing answered in time or the answer could not be read.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    api_key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let target = format!("{method} {url}");
    let unhealthy = |detail: String| OpsError::Unhealthy {
        target: target.clone(),
        detail,
    };
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| unhealthy("not an HTTP method".to_owned()))?;
    let mut req = client(&target)?.request(method, &url);
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    if let Some(b) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.to_owned());
    }
    let answer = req.send().map_err(|e| {
        unhealthy(if e.is_connect() {
            format!("cannot connect to 127.0.0.1:{port}")
        } else if e.is_timeout() {
            format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
        } else {
            "the request failed".to_owned()
        })
    })?;
    let status = answer.status().as_u16();
    let text = answer
        .text()
        .map_err(|_| unhealthy("the answer could not be read".to_owned()))?;
    Ok((status, text))
}
