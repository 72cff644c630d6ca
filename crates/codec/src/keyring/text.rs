//! Parsing and rendering the keyring text format (documented in the parent module).

use std::fmt::Write as _;

use zeroize::Zeroizing;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{KeyNameSecret, Keyring, SecretKey};
use crate::dictionary::{Dictionaries, Dictionary};
use crate::error::{Error, Result};

pub(super) fn parse(text: &str) -> Result<Keyring> {
    let mut primary: Option<(u32, SecretKey)> = None;
    let mut others: Vec<(u32, SecretKey)> = Vec::new();
    let mut name_secret: Option<KeyNameSecret> = None;
    let mut dictionaries = Dictionaries::none();

    for (index, raw) in text.split(['\n', ';']).enumerate() {
        let line = index + 1;
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let syntax = |reason| Error::KeyringSyntax { line, reason };
        let mut words = entry.split_whitespace();
        let role = words.next().ok_or(syntax("empty entry"))?;
        match role {
            "primary" | "decrypt-only" => {
                let id = words
                    .next()
                    .ok_or(syntax("missing key id"))?
                    .parse::<u32>()
                    .map_err(|_| syntax("key id is not a decimal u32"))?;
                let key = SecretKey::parse(words.next().ok_or(syntax("missing key"))?)?;
                if words.next().is_some() {
                    return Err(syntax("unexpected text after the key"));
                }
                let taken = primary.as_ref().is_some_and(|(p, _)| *p == id)
                    || others.iter().any(|(o, _)| *o == id);
                if taken {
                    return Err(Error::DuplicateKeyId(id));
                }
                if role == "primary" {
                    if primary.is_some() {
                        return Err(Error::MultiplePrimaryKeys);
                    }
                    primary = Some((id, key));
                } else {
                    others.push((id, key));
                }
            }
            "name-secret" => {
                let key = SecretKey::parse(words.next().ok_or(syntax("missing key"))?)?;
                if words.next().is_some() {
                    return Err(syntax("unexpected text after the key"));
                }
                if name_secret.replace(KeyNameSecret::new(key)).is_some() {
                    return Err(syntax("second name-secret entry"));
                }
            }
            "seal-dictionary" | "dictionary" => {
                let id = words
                    .next()
                    .ok_or(syntax("missing dictionary id"))?
                    .parse::<u32>()
                    .map_err(|_| syntax("dictionary id is not a decimal u32"))?;
                let encoded = words.next().ok_or(syntax("missing dictionary"))?;
                if words.next().is_some() {
                    return Err(syntax("unexpected text after the dictionary"));
                }
                let bytes = STANDARD
                    .decode(encoded)
                    .map_err(|_| syntax("dictionary is not standard base64"))?;
                let dictionary = Dictionary::from_bytes(bytes)?;
                if dictionary.id() != id {
                    return Err(syntax("dictionary id differs from the id in its header"));
                }
                if dictionaries.get(id).is_some() {
                    return Err(syntax("second entry for one dictionary id"));
                }
                let seal = role == "seal-dictionary";
                if seal && dictionaries.sealing().is_some() {
                    return Err(syntax("second seal-dictionary entry"));
                }
                dictionaries.add(dictionary, seal)?;
            }
            _ => {
                return Err(syntax(
                    "unknown entry; expected `primary`, `decrypt-only`, `name-secret`, `seal-dictionary` or `dictionary`",
                ));
            }
        }
    }

    let primary = primary.ok_or(Error::NoPrimaryKey)?;
    let mut ring = match name_secret {
        Some(name) => Keyring::from_parts(primary, others, name)?,
        None if others.is_empty() => {
            let mut ring = Keyring::single(primary.1);
            ring.primary_id = primary.0;
            ring.keys[0].0 = primary.0;
            ring
        }
        None => {
            return Err(Error::KeyringSyntax {
                line: 0,
                reason: "a keyring with several keys needs a `name-secret` entry",
            });
        }
    };
    ring.dictionaries = dictionaries;
    Ok(ring)
}

pub(super) fn render(ring: &Keyring) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(64 * (ring.keys.len() + 2)));
    out.push_str("# sealcache keyring v1: keep this file secret (mode 0600)\n");
    for (id, key) in &ring.keys {
        let role = if *id == ring.primary_id {
            "primary"
        } else {
            "decrypt-only"
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{role} {id} {}", key.expose_text().as_str());
    }
    let _ = writeln!(
        out,
        "name-secret {}",
        ring.name_secret.as_key().expose_text().as_str()
    );
    let sealing = ring.dictionaries.sealing().map(Dictionary::id);
    for d in ring.dictionaries.iter() {
        let role = if Some(d.id()) == sealing {
            "seal-dictionary"
        } else {
            "dictionary"
        };
        let _ = writeln!(out, "{role} {} {}", d.id(), STANDARD.encode(d.as_bytes()));
    }
    out
}
