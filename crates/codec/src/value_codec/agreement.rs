//! The sealing and opening paths of round 3 (compression straight into the envelope, joined parts,
//! decryption in place) against the round-2 paths they replaced, written out here as they were:
//! with the same nonce they must produce the same bytes, and each must open the other's values.
//! Envelope v1 is a contract (DESIGN.md §3).

use super::*;
use crate::keyring::SecretKey;

use std::path::PathBuf;

/// The corpus documents of `class` (`../shared/bench/corpus.jsonl`, or `SEALCACHE_CORPUS`).
fn corpus(class: &str) -> Vec<Vec<u8>> {
    let path = std::env::var_os("SEALCACHE_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/corpus.jsonl"),
        PathBuf::from,
    );
    let docs: Vec<Vec<u8>> = std::fs::read_to_string(path)
        .expect("the benchmark corpus (SEALCACHE_CORPUS)")
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["size_class"] == class)
        .map(|l| l.as_bytes().to_vec())
        .collect();
    assert!(docs.len() >= 20, "{class} documents: {}", docs.len());
    docs
}

/// What a round-2 cache sealed in front of a JSON value (marker, expiry, store time: 45 bytes).
fn prefix(i: usize) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(&(1_765_000_000_000u64 + i as u64).to_be_bytes());
    p.extend_from_slice(b"\r\n\t ");
    p.extend((0..32).map(|d| [b' ', b'\t', b'\n', b'\r'][(i + d) % 4]));
    p
}

/// Round 2's `seal`: compress into a separate buffer (a fresh zstd context configured as the
/// sealer's), copy header, nonce and payload into the envelope, encrypt in place, append the tag.
fn old_seal(
    codec: &ValueCodec,
    ctx: &SealContext<'_>,
    plain: &[u8],
    nonce: Nonce,
    dictionary: Option<&crate::Dictionary>,
) -> Vec<u8> {
    let mut payload = Vec::new();
    let compressed = plain.len() >= crate::DEFAULT_COMPRESSION_THRESHOLD && {
        let mut z = match dictionary {
            Some(d) => zstd::bulk::Compressor::with_dictionary(2, d.as_bytes()).unwrap(),
            None => zstd::bulk::Compressor::new(2).unwrap(),
        };
        z.include_checksum(false).unwrap();
        z.include_dictid(dictionary.is_some()).unwrap();
        z.include_contentsize(true).unwrap();
        payload = z.compress(plain).unwrap();
        payload.len() < plain.len()
    };
    let payload = if compressed { &payload[..] } else { plain };
    let header = Header {
        alg: crate::envelope::ALG_AES_256_GCM,
        flags: if compressed { FLAG_ZSTD } else { 0 },
        key_id: codec.cipher().sealing_key_id(),
    }
    .to_bytes();
    let mut out = Vec::new();
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(payload);
    let mut aad = Vec::new();
    envelope::associated_data(&header, ctx, &mut aad).unwrap();
    let tag = codec
        .cipher()
        .encrypt_in_place(&nonce, &aad, &mut out[CIPHERTEXT_OFFSET..])
        .unwrap();
    out.extend_from_slice(&tag);
    out
}

/// Round 2's `open`: decrypt out of place into a zero-filled buffer, then decompress.
fn old_open(codec: &ValueCodec, ctx: &SealContext<'_>, stored: &[u8]) -> Vec<u8> {
    let header = Header::parse_v1(stored).unwrap();
    let nonce: Nonce = stored[HEADER_LEN..CIPHERTEXT_OFFSET].try_into().unwrap();
    let tag_at = stored.len() - TAG_LEN;
    let tag: Tag = stored[tag_at..].try_into().unwrap();
    let ciphertext = &stored[CIPHERTEXT_OFFSET..tag_at];
    let mut aad = Vec::new();
    envelope::associated_data(&header.to_bytes(), ctx, &mut aad).unwrap();
    let mut out = vec![0u8; ciphertext.len()];
    codec
        .cipher()
        .decrypt(header.key_id, &nonce, &aad, ciphertext, &tag, &mut out)
        .unwrap();
    if header.flags & FLAG_ZSTD != 0 {
        zstd_decompress_capped(&out, DEFAULT_MAX_PLAINTEXT, codec.dictionaries()).unwrap()
    } else {
        out
    }
}

fn check_class(codec: &ValueCodec, dictionary: Option<&crate::Dictionary>, docs: &[Vec<u8>]) {
    let ctx = SealContext::new("ai_cache", "ai_cache:v2:summarize:0f1e2d3c4b5a6978");
    let mut compressed = 0;
    for (i, doc) in docs.iter().enumerate() {
        let nonce: Nonce = std::array::from_fn(|b| (i * 31 + b) as u8);
        let head = prefix(i);
        let joined = [&head[..], doc].concat();
        let old = old_seal(codec, &ctx, &joined, nonce, dictionary);
        let new = codec.seal_with_nonce(&ctx, &joined, || Ok(nonce)).unwrap();
        assert_eq!(new.as_bytes(), &old[..], "seal, document {i}");
        let parts = codec
            .seal_parts_with_nonce(&ctx, &[&head, doc], || Ok(nonce))
            .unwrap();
        assert_eq!(parts.as_bytes(), &old[..], "seal_parts, document {i}");
        assert_eq!(parts.plain_len(), joined.len());
        compressed += usize::from(parts.is_compressed());
        // Each path opens the other's values.
        assert_eq!(codec.open(&ctx, &old).unwrap().as_bytes(), &joined[..]);
        assert_eq!(old_open(codec, &ctx, parts.as_bytes()), joined);
        // Values too small to compress take the same path through one buffer.
        let tiny = &doc[..doc.len().min(200)];
        let old = old_seal(codec, &ctx, &[&head[..], tiny].concat(), nonce, dictionary);
        let new = codec
            .seal_parts_with_nonce(&ctx, &[&head, tiny], || Ok(nonce))
            .unwrap();
        assert!(!new.is_compressed());
        assert_eq!(new.as_bytes(), &old[..], "small value, document {i}");
    }
    assert_eq!(compressed, docs.len(), "every corpus value compresses");
}

#[test]
fn new_and_old_paths_agree_byte_for_byte_on_the_corpus() {
    let ring = Keyring::single(SecretKey::from_bytes([5; 32]));
    for class in ["small", "medium", "large"] {
        check_class(&ValueCodec::new(&ring), None, &corpus(class));
    }
    // With a trained dictionary in the keyring (its id in the frame header).
    let small = corpus("small");
    let samples: Vec<&[u8]> = small.iter().step_by(2).map(Vec::as_slice).collect();
    let dictionary =
        crate::Dictionary::from_bytes(zstd::dict::from_samples(&samples, 16 * 1024).unwrap())
            .unwrap();
    let with = ring.with_dictionary(dictionary.clone(), true).unwrap();
    check_class(&ValueCodec::new(&with), Some(&dictionary), &small);
}

#[test]
fn joined_parts_keep_the_cap_and_every_shape() {
    let c =
        ValueCodec::new(&Keyring::single(SecretKey::from_bytes([6; 32]))).with_max_plaintext(100);
    let ctx = SealContext::new("ns", "ns:v2:op:1");
    assert!(matches!(
        c.seal_parts(&ctx, &[&[1; 60], &[2; 41]]),
        Err(Error::PlaintextTooLarge {
            size: 101,
            limit: 100
        })
    ));
    for parts in [&[][..], &[&b""[..]], &[&b"ab"[..], b"", b"c"]] {
        let sealed = c.seal_parts(&ctx, parts).unwrap();
        assert_eq!(
            c.open(&ctx, sealed.as_bytes()).unwrap().as_bytes(),
            &parts.concat()[..]
        );
    }
}

/// A cipher from outside the crate that implements only `decrypt`: the trait's default
/// `decrypt_in_place` opens its values and wipes the buffer when the tag fails.
#[derive(Debug)]
struct OutOfPlaceOnly(crate::DefaultCipher);

impl Cipher for OutOfPlaceOnly {
    fn algorithm(&self) -> u8 {
        self.0.algorithm()
    }
    fn sealing_key_id(&self) -> u32 {
        self.0.sealing_key_id()
    }
    fn has_key(&self, key_id: u32) -> bool {
        self.0.has_key(key_id)
    }
    fn encrypt_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag> {
        self.0.encrypt_in_place(nonce, aad, buf)
    }
    fn decrypt(
        &self,
        key_id: u32,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &Tag,
        out: &mut [u8],
    ) -> Result<()> {
        self.0.decrypt(key_id, nonce, aad, ciphertext, tag, out)
    }
    fn seal_count(&self, key_id: u32) -> Option<u64> {
        self.0.seal_count(key_id)
    }
}

#[test]
fn the_default_in_place_decryption_opens_and_fails_closed() {
    let ring = Keyring::single(SecretKey::from_bytes([7; 32]));
    let c = ValueCodec::with_parts(
        Zstd::default(),
        OutOfPlaceOnly(crate::DefaultCipher::new(&ring)),
    );
    let ctx = SealContext::new("ns", "ns:v2:op:2");
    let text = "a sentence that compresses well. ".repeat(40);
    for plain in [&b"short"[..], text.as_bytes()] {
        let sealed = c.seal(&ctx, plain).unwrap();
        assert_eq!(c.open(&ctx, sealed.as_bytes()).unwrap().as_bytes(), plain);
        // The same values through the built-in cipher: identical envelopes open either way.
        assert_eq!(
            ValueCodec::new(&ring)
                .open(&ctx, sealed.as_bytes())
                .unwrap()
                .as_bytes(),
            plain
        );
    }
    let sealed = c.seal(&ctx, b"secret answer").unwrap().into_bytes();
    let mut buf = sealed[CIPHERTEXT_OFFSET..sealed.len() - TAG_LEN].to_vec();
    let nonce: Nonce = sealed[HEADER_LEN..CIPHERTEXT_OFFSET].try_into().unwrap();
    let wrong_tag: Tag = [0; TAG_LEN];
    let err = c
        .cipher()
        .decrypt_in_place(1, &nonce, b"aad", &mut buf, &wrong_tag)
        .unwrap_err();
    assert!(matches!(err, Error::Unauthentic));
    assert!(buf.iter().all(|&b| b == 0), "the buffer is wiped");
}
