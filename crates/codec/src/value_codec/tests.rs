use super::*;
use crate::keyring::SecretKey;

fn codec() -> ValueCodec {
    ValueCodec::new(&Keyring::single(SecretKey::from_bytes([3; 32])))
}

const CTX: SealContext<'static> = SealContext::new("ns", "ns:v2:op:abc");

#[test]
fn small_values_are_not_compressed_large_ones_are() {
    let c = codec();
    let small = c.seal(&CTX, b"tiny").unwrap();
    assert!(!small.is_compressed());
    assert_eq!(small.stored_len(), 4 + OVERHEAD);
    let text = "the same sentence again and again. ".repeat(100);
    let big = c.seal(&CTX, text.as_bytes()).unwrap();
    assert!(big.is_compressed());
    assert!(big.stored_len() < text.len() / 4);
    assert_eq!(big.as_bytes()[2], FLAG_ZSTD);
    assert_eq!(
        c.open(&CTX, big.as_bytes()).unwrap().as_bytes(),
        text.as_bytes()
    );
}

#[test]
fn plaintext_cap_applies_to_seal_and_open() {
    let c = codec().with_max_plaintext(1000);
    let err = c.seal(&CTX, &[0u8; 1001]).unwrap_err();
    assert!(matches!(
        err,
        Error::PlaintextTooLarge {
            size: 1001,
            limit: 1000
        }
    ));
    let sealed = codec().seal(&CTX, &[9u8; 1001]).unwrap();
    let err = c.open(&CTX, sealed.as_bytes()).unwrap_err();
    assert!(matches!(err, Error::DecompressedTooLarge { limit: 1000 }));
    let random: Vec<u8> = (0..1001u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let sealed = codec().seal(&CTX, &random).unwrap();
    assert!(matches!(
        c.open(&CTX, sealed.as_bytes()).unwrap_err(),
        Error::DecompressedTooLarge { limit: 1000 }
    ));
}

#[test]
fn header_failures_are_distinct() {
    let c = codec();
    let sealed = c.seal(&CTX, b"value").unwrap().into_bytes();
    let with = |i: usize, b: u8| {
        let mut v = sealed.clone();
        v[i] = b;
        c.open(&CTX, &v).unwrap_err()
    };
    assert!(matches!(with(0, 0x02), Error::UnsupportedVersion(0x02)));
    assert!(matches!(with(1, 0x02), Error::UnsupportedAlgorithm(0x02)));
    assert!(matches!(with(2, 0x80), Error::UnsupportedFlags(0x80)));
    assert!(matches!(with(6, 0x09), Error::UnknownKeyId(9)));
    assert!(matches!(with(2, FLAG_ZSTD), Error::Unauthentic));
    assert!(matches!(c.open(&CTX, &[]).unwrap_err(), Error::Truncated));
}

#[test]
fn legacy_json_needs_an_open_window() {
    let legacy = br#"{"result": "plain answer from the python template"}"#;
    assert!(matches!(
        codec().open(&CTX, legacy).unwrap_err(),
        Error::LegacyRejected
    ));
    let future = SystemTime::now() + std::time::Duration::from_secs(3600);
    let open = codec()
        .dangerous()
        .accept_legacy_plaintext_until(future)
        .done();
    let opened = open.open(&CTX, legacy).unwrap();
    assert_eq!(opened.source(), Source::LegacyPlaintext);
    assert_eq!(opened.as_bytes(), legacy);
    // Strings, malformed JSON and expired windows stay rejected.
    assert!(matches!(
        open.open(&CTX, br#""a string""#).unwrap_err(),
        Error::LegacyRejected
    ));
    assert!(matches!(
        open.open(&CTX, b"{not json").unwrap_err(),
        Error::LegacyRejected
    ));
    let past = SystemTime::now() - std::time::Duration::from_secs(1);
    let expired = codec()
        .dangerous()
        .accept_legacy_plaintext_until(past)
        .done();
    assert!(matches!(
        expired.open(&CTX, legacy).unwrap_err(),
        Error::LegacyRejected
    ));
}

#[test]
fn seal_counts_follow_the_primary() {
    let ring = Keyring::single(SecretKey::from_bytes([1; 32]));
    let rotated = ring.rotate(SecretKey::from_bytes([2; 32]));
    let c = ValueCodec::new(&rotated);
    for _ in 0..5 {
        c.seal(&CTX, b"x").unwrap();
    }
    assert_eq!(c.cipher().seal_count(2), Some(5));
    assert_eq!(c.cipher().seal_count(1), Some(0));
    assert_eq!(c.cipher().seal_count(7), None);
    assert_eq!(c.cipher().seal_counts(), vec![(2, 5), (1, 0)]);
}
