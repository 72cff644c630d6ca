//! Round trips, tampering, truncation, context binding, rotation and error hygiene.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sealcache_codec::{
    Error, Keyring, NoCompression, SealContext, SecretKey, Source, ValueCodec, Zstd,
    envelope::{CIPHERTEXT_OFFSET, OVERHEAD},
};

fn ring(byte: u8) -> Keyring {
    Keyring::single(SecretKey::from_bytes([byte; 32]))
}

const CTX: SealContext<'static> = SealContext::new("ai_cache", "ai_cache:v2:qa:0011223344");

/// Bytes that compress (repeated phrases) or not (noise), from 0 to 1 MiB.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..=4096),
        proptest::collection::vec(any::<u8>(), 0..=(1 << 20)),
        (
            proptest::collection::vec(any::<u8>(), 1..64),
            0usize..=(1 << 20)
        )
            .prop_map(|(phrase, len)| phrase.iter().copied().cycle().take(len).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn open_of_seal_is_identity_compressed(plain in payload()) {
        let codec = ValueCodec::new(&ring(1));
        let sealed = codec.seal(&CTX, &plain).unwrap();
        prop_assert!(sealed.stored_len() <= plain.len() + OVERHEAD);
        prop_assert_eq!(codec.open(&CTX, sealed.as_bytes()).unwrap().into_bytes(), plain);
    }

    #[test]
    fn open_of_seal_is_identity_uncompressed(plain in payload()) {
        let codec = ValueCodec::with_parts(NoCompression, sealcache_codec::DefaultCipher::new(&ring(1)));
        let sealed = codec.seal(&CTX, &plain).unwrap();
        prop_assert!(!sealed.is_compressed());
        prop_assert_eq!(sealed.stored_len(), plain.len() + OVERHEAD);
        // A zstd codec opens what the uncompressed one sealed, and vice versa.
        let zstd = ValueCodec::new(&ring(1));
        prop_assert_eq!(zstd.open(&CTX, sealed.as_bytes()).unwrap().into_bytes(), plain.clone());
        let z = zstd.seal(&CTX, &plain).unwrap();
        prop_assert_eq!(codec.open(&CTX, z.as_bytes()).unwrap().into_bytes(), plain);
    }

    #[test]
    fn arbitrary_bytes_never_open_and_never_panic(stored in proptest::collection::vec(any::<u8>(), 0..512)) {
        let codec = ValueCodec::new(&ring(1));
        let err = codec.open(&CTX, &stored).unwrap_err();
        prop_assert!(err.is_stored_value_failure());
        prop_assert!(err.kind() != sealcache_codec::ErrorKind::Sealing);
    }
}

fn every_bit_flip_fails(plain: &[u8]) {
    let codec = ValueCodec::new(&ring(1));
    let sealed = codec.seal(&CTX, plain).unwrap().into_bytes();
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut v = sealed.clone();
            v[byte] ^= 1 << bit;
            let err = codec.open(&CTX, &v).unwrap_err();
            assert!(
                err.is_stored_value_failure(),
                "byte {byte} bit {bit}: {err:?}"
            );
            if byte >= 7 || (byte == 2 && bit == 0) {
                // Nonce, ciphertext, tag and the zstd flag are decided by the tag only.
                assert!(
                    matches!(err, Error::Unauthentic),
                    "byte {byte} bit {bit}: {err:?}"
                );
            }
        }
    }
}

#[test]
fn every_single_bit_flip_fails_uncompressed_and_compressed() {
    every_bit_flip_fails(br#"{"answer":"short"}"#);
    let long = "A model answer that repeats itself, as model answers do. ".repeat(20);
    every_bit_flip_fails(long.as_bytes());
}

#[test]
fn every_truncation_fails() {
    let codec = ValueCodec::new(&ring(1));
    let sealed = codec.seal(&CTX, &[42u8; 300]).unwrap().into_bytes();
    for len in 0..sealed.len() {
        let err = codec.open(&CTX, &sealed[..len]).unwrap_err();
        if len < OVERHEAD {
            assert!(matches!(err, Error::Truncated), "len {len}: {err:?}");
        } else {
            assert!(matches!(err, Error::Unauthentic), "len {len}: {err:?}");
        }
    }
    // Appending bytes fails as well.
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(matches!(codec.open(&CTX, &longer), Err(Error::Unauthentic)));
}

#[test]
fn a_value_is_bound_to_its_redis_key_namespace_and_encryption_key() {
    let codec = ValueCodec::new(&ring(1));
    let sealed = codec.seal(&CTX, b"answer for A").unwrap();
    let other_key = SealContext::new("ai_cache", "ai_cache:v2:qa:5566778899");
    let other_ns = SealContext::new("ai_cache2", "ai_cache:v2:qa:0011223344");
    for ctx in [other_key, other_ns] {
        assert!(matches!(
            codec.open(&ctx, sealed.as_bytes()),
            Err(Error::Unauthentic)
        ));
    }
    // Same key id, different key bytes: indistinguishable from tampering.
    let wrong = ValueCodec::new(&ring(2));
    assert!(matches!(
        wrong.open(&CTX, sealed.as_bytes()),
        Err(Error::Unauthentic)
    ));
}

#[test]
fn rotation_keeps_old_values_readable_and_seals_with_the_new_id() {
    let old = ring(1);
    let before = ValueCodec::new(&old)
        .seal(&CTX, b"sealed before rotation")
        .unwrap();
    assert_eq!(before.key_id(), 1);
    let rotated = old.rotate(SecretKey::generate().unwrap());
    let codec = ValueCodec::new(&rotated);
    let opened = codec.open(&CTX, before.as_bytes()).unwrap();
    assert_eq!(opened.as_bytes(), b"sealed before rotation");
    assert_eq!(
        opened.source(),
        Source::Sealed {
            key_id: 1,
            compressed: false
        }
    );
    let after = codec.seal(&CTX, b"sealed after").unwrap();
    assert_eq!(after.key_id(), 2);
    assert_eq!(&after.as_bytes()[3..7], &2u32.to_be_bytes());

    // Once the old key is dropped, its values name an unknown key id.
    let dropped = ValueCodec::new(&rotated.without_key(1).unwrap());
    let err = dropped.open(&CTX, before.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::UnknownKeyId(1)));
    assert_eq!(err.kind(), sealcache_codec::ErrorKind::UnknownKeyId);
}

#[test]
fn json_helpers_round_trip_and_hide_plaintext_in_errors() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Answer {
        summary: String,
        tokens: u32,
    }
    let codec = ValueCodec::new(&ring(1));
    let value = Answer {
        summary: "secret-user-text".into(),
        tokens: 7,
    };
    let sealed = codec.seal_json(&CTX, &value).unwrap();
    let back: Answer = codec.open_json(&CTX, sealed.as_bytes()).unwrap();
    assert_eq!(back, value);
    let err = codec.open_json::<u32>(&CTX, sealed.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::Deserialize { line: 1, .. }));
    assert!(!format!("{err} {err:?}").contains("secret-user-text"));
}

#[test]
fn no_error_display_or_debug_contains_key_material_or_plaintext() {
    let key = SecretKey::from_bytes([0xa7; 32]);
    let key_text = key.expose_text().to_string();
    let key_hex: String = key
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let plain = b"user-secret-prompt-text";
    let codec = ValueCodec::new(&Keyring::single(key.clone()));
    let sealed = codec.seal(&CTX, plain).unwrap().into_bytes();

    let mut errors: Vec<Error> = Vec::new();
    for i in [0usize, 1, 2, 5, CIPHERTEXT_OFFSET, sealed.len() - 1] {
        let mut v = sealed.clone();
        v[i] ^= 0x41;
        errors.push(codec.open(&CTX, &v).unwrap_err());
    }
    errors.push(codec.open(&CTX, &sealed[..10]).unwrap_err());
    errors.push(
        codec
            .open(&CTX, br#"{"legacy": "user-secret-prompt-text"}"#)
            .unwrap_err(),
    );
    errors.push(SecretKey::parse(&key_text[..40]).unwrap_err());
    errors
        .push(Keyring::parse(&format!("primary 1 {key_text}; primary 2 {key_text}")).unwrap_err());
    errors.push(Keyring::parse(&format!("primary one {key_text}")).unwrap_err());
    errors.push(codec.with_max_plaintext(4).seal(&CTX, plain).unwrap_err());
    assert!(errors.len() >= 12);
    for err in &errors {
        let shown = format!("{err} | {err:?}");
        for secret in [
            key_text.as_str(),
            &key_text[..20],
            key_hex.as_str(),
            "user-secret-prompt-text",
        ] {
            assert!(
                !shown.contains(secret),
                "error shows secret material: {shown}"
            );
        }
    }
    let debug = format!(
        "{:?} {:?}",
        key,
        ValueCodec::new(&Keyring::single(key.clone()))
    );
    assert!(
        !debug.contains(&key_text) && !debug.contains(&key_hex),
        "{debug}"
    );
}

#[test]
fn envelope_overhead_is_35_bytes_and_version_first() {
    let codec = ValueCodec::with_parts(
        Zstd::new(3, usize::MAX),
        sealcache_codec::DefaultCipher::new(&ring(1)),
    );
    for len in [0usize, 1, 255, 4096] {
        let sealed = codec.seal(&CTX, &vec![b'x'; len]).unwrap();
        assert_eq!(sealed.stored_len(), len + 35);
        assert_eq!(sealed.as_bytes()[0], 0x01);
    }
}

#[test]
fn nonces_are_fresh_for_every_seal() {
    let codec = ValueCodec::new(&ring(1));
    let mut nonces = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let sealed = codec.seal(&CTX, b"same value").unwrap();
        assert!(nonces.insert(sealed.as_bytes()[7..19].to_vec()));
    }
}
