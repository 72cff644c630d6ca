//! HTTP to the local backend: the operations crate's client (reqwest, blocking), with xtask's
//! error type.

/// Sends one request to `127.0.0.1:port` and returns (status, body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    api_key: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    Ok(sealcache_ops::runtime::request(
        port, method, path, api_key, body,
    )?)
}
