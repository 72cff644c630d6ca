//! Golden envelope v1 vectors, written by an independent implementation of the documented layout
//! (`tests/vectors/envelope_v1.json`): every pass vector opens to its plaintext, every fail vector
//! fails with exactly its named variant. A format change needs a new version byte and new vectors.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealcache_codec::{Error, KeyNameSecret, Keyring, SealContext, SecretKey, ValueCodec};
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn variant_name(err: &Error) -> &'static str {
    match err {
        Error::Truncated => "Truncated",
        Error::UnsupportedVersion(_) => "UnsupportedVersion",
        Error::UnsupportedAlgorithm(_) => "UnsupportedAlgorithm",
        Error::UnsupportedFlags(_) => "UnsupportedFlags",
        Error::UnknownKeyId(_) => "UnknownKeyId",
        Error::Unauthentic => "Unauthentic",
        Error::DecompressedTooLarge { .. } => "DecompressedTooLarge",
        Error::CorruptPayload => "CorruptPayload",
        Error::LegacyRejected => "LegacyRejected",
        _ => "other",
    }
}

#[test]
fn golden_vectors() {
    let vectors: Value = serde_json::from_str(include_str!("vectors/envelope_v1.json")).unwrap();
    let key: [u8; 32] = hex(vectors["key_hex"].as_str().unwrap())
        .try_into()
        .unwrap();
    let ring = Keyring::from_parts(
        (1, SecretKey::from_bytes(key)),
        vec![(2, SecretKey::from_bytes(key))],
        KeyNameSecret::new(SecretKey::from_bytes([0; 32])),
    )
    .unwrap();
    let ctx = SealContext::new(
        vectors["namespace"].as_str().unwrap(),
        vectors["redis_key"].as_str().unwrap(),
    );

    let pass = vectors["pass"].as_array().unwrap();
    assert_eq!(pass.len(), 2);
    for v in pass {
        let opened = ValueCodec::new(&ring)
            .open(&ctx, &hex(v["stored_hex"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{}: {e:?}", v["name"]));
        assert_eq!(
            opened.as_bytes(),
            hex(v["plaintext_hex"].as_str().unwrap()),
            "{}",
            v["name"]
        );
    }

    let fail = vectors["fail"].as_array().unwrap();
    assert!(fail.len() >= 15);
    for v in fail {
        let mut codec = ValueCodec::new(&ring);
        if let Some(cap) = v["max_plaintext"].as_u64() {
            codec = codec.with_max_plaintext(usize::try_from(cap).unwrap());
        }
        let err = codec
            .open(&ctx, &hex(v["stored_hex"].as_str().unwrap()))
            .expect_err(v["name"].as_str().unwrap());
        assert_eq!(
            variant_name(&err),
            v["error"].as_str().unwrap(),
            "{}: {err:?}",
            v["name"]
        );
    }
}
