//! The settings read by their own function ([`super::readers::Custom`]): the transport
//! (`REDIS_URL`, `REDIS_CLUSTER_NODES`, `REDIS_TLS_ENABLED`, checked against each other), the
//! keyring (parsed by the codec), the API keys (a secret pair plus a list) and the security mode.

use std::collections::BTreeMap;

use sealcache_codec::Keyring;

use super::DEFAULT_REDIS_URL;
use super::readers::{Ctx, secret, split_list};
use super::values::{invalid, truthy};
use crate::error::{Error, Result};
use crate::secret::SecretString;

/// `REDIS_SECURITY_MODE=development` (any case, blanks around it ignored).
pub(super) fn development_override(ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<bool> {
    Ok(vars
        .first()
        .and_then(|var| ctx.text(var))
        .is_some_and(|mode| mode.trim().eq_ignore_ascii_case("development")))
}

pub(super) fn redis_url(ctx: &Ctx<'_>, _: &[&'static str]) -> Result<String> {
    transport(ctx).map(|t| t.url)
}

pub(super) fn redis_cluster_nodes(ctx: &Ctx<'_>, _: &[&'static str]) -> Result<Vec<String>> {
    transport(ctx).map(|t| t.nodes)
}

pub(super) fn redis_tls_enabled(ctx: &Ctx<'_>, _: &[&'static str]) -> Result<bool> {
    transport(ctx).map(|t| t.tls)
}

/// The transport settings, agreeing with each other.
struct Transport {
    url: String,
    nodes: Vec<String>,
    tls: bool,
}

/// `REDIS_URL`, `REDIS_CLUSTER_NODES` and `REDIS_TLS_ENABLED`, checked against each other: the
/// TLS flag must agree with the URL scheme (or the cluster nodes' one scheme), and cluster nodes
/// exclude a `REDIS_URL` other than the default. URLs may hold credentials: no error shows one.
fn transport(ctx: &Ctx<'_>) -> Result<Transport> {
    let sources = ctx.sources;
    let given_url = ctx.trimmed("REDIS_URL");
    let url = given_url
        .clone()
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    let scheme_tls = url.starts_with("rediss://");
    if !scheme_tls && !url.starts_with("redis://") && !url.starts_with("unix://") {
        return Err(invalid(
            "REDIS_URL",
            sources,
            "expected a rediss://, redis:// or unix:// URL",
        ));
    }
    let nodes = ctx
        .trimmed("REDIS_CLUSTER_NODES")
        .map(|list| split_list(&list))
        .unwrap_or_default();
    let scheme_tls = if nodes.is_empty() {
        scheme_tls
    } else {
        if given_url.is_some_and(|u| u != DEFAULT_REDIS_URL) {
            return Err(invalid(
                "REDIS_CLUSTER_NODES",
                sources,
                "cannot be combined with REDIS_URL: set one of them",
            ));
        }
        let tls = nodes.iter().filter(|n| n.starts_with("rediss://")).count();
        let plain = nodes.iter().filter(|n| n.starts_with("redis://")).count();
        if tls + plain != nodes.len() || (tls > 0 && plain > 0) {
            return Err(invalid(
                "REDIS_CLUSTER_NODES",
                sources,
                "expected comma-separated URLs, all rediss:// or all redis://",
            ));
        }
        tls > 0
    };
    let tls = truthy("REDIS_TLS_ENABLED", ctx.raw, scheme_tls, sources)?;
    if tls != scheme_tls && !url.starts_with("unix://") {
        let scheme_of = if nodes.is_empty() {
            "REDIS_URL"
        } else {
            "REDIS_CLUSTER_NODES"
        };
        return Err(invalid(
            "REDIS_TLS_ENABLED",
            sources,
            format!("disagrees with the {scheme_of} scheme (rediss:// means TLS on)"),
        ));
    }
    Ok(Transport { url, nodes, tls })
}

/// `REDIS_ENCRYPTION_KEY` (one key or an inline keyring) or `REDIS_ENCRYPTION_KEYS_FILE`; both
/// set is an error naming the pair. Codec errors never echo the key: the setting and its source
/// are named around them.
pub(super) fn keyring(ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Option<Keyring>> {
    let (Some(&var), Some(&file_var)) = (vars.first(), vars.get(1)) else {
        return Ok(None);
    };
    match (ctx.text(var), ctx.text(file_var)) {
        (Some(_), Some(_)) => Err(Error::BothPlainAndFileSet { var, file_var }),
        (Some(text), None) => Keyring::parse(&zeroize::Zeroizing::new(text))
            .map(Some)
            .map_err(|e| key_error(var, ctx.sources, &e)),
        (None, Some(path)) => Keyring::from_file(path)
            .map(Some)
            .map_err(|e| key_error(file_var, ctx.sources, &e)),
        (None, None) => Ok(None),
    }
}

/// A keyring that cannot be used, as an error naming the setting and where it came from.
fn key_error(key: &str, sources: &BTreeMap<String, String>, err: &sealcache_codec::Error) -> Error {
    Error::InvalidSetting {
        key: key.to_owned(),
        source_name: sources.get(key).cloned().unwrap_or_default(),
        problem: err.to_string(),
    }
}

/// `API_KEY` / `API_KEY_FILE` (a secret pair), then `ADDITIONAL_API_KEYS` (comma-separated).
pub(super) fn api_keys(ctx: &Ctx<'_>, vars: &[&'static str]) -> Result<Vec<SecretString>> {
    let mut keys: Vec<SecretString> = secret(ctx, vars)?.into_iter().collect();
    if let Some(extra) = vars.get(2).and_then(|var| ctx.text(var)) {
        let extra = zeroize::Zeroizing::new(extra);
        keys.extend(
            extra
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(SecretString::from),
        );
    }
    Ok(keys)
}
