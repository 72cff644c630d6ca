//! AES-256-GCM known-answer vectors (McGrew & Viega, "The Galois/Counter Mode of Operation",
//! test cases 13-16; the 256-bit-key cases NIST's GCM validation starts from), run through the
//! `Cipher` trait so the seam itself is checked, in both directions, through every implementation
//! built (ring's, the default, and RustCrypto's with the `rustcrypto` feature); and values sealed by
//! one implementation open with the other.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sealcache_codec::{Cipher, Error, KeyNameSecret, Keyring, SecretKey};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

struct Vector {
    name: &'static str,
    key: &'static str,
    iv: &'static str,
    aad: &'static str,
    plaintext: &'static str,
    ciphertext: &'static str,
    tag: &'static str,
}

const K2: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
const P: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const C: &str = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";

const VECTORS: &[Vector] = &[
    Vector {
        name: "test case 13 (empty)",
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        plaintext: "",
        ciphertext: "",
        tag: "530f8afbc74536b9a963b4f1c4cb738b",
    },
    Vector {
        name: "test case 14 (one zero block)",
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        plaintext: "00000000000000000000000000000000",
        ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
        tag: "d0d1c8a799996bf0265b98b5d48ab919",
    },
    Vector {
        name: "test case 15 (four blocks)",
        key: K2,
        iv: "cafebabefacedbaddecaf888",
        aad: "",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        tag: "b094dac5d93471bdec1a502270e3cc6c",
    },
    Vector {
        name: "test case 16 (partial block, associated data)",
        key: K2,
        iv: "cafebabefacedbaddecaf888",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        plaintext: P,
        ciphertext: C,
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
];

fn keyring_for(key_hex: &str, id: u32) -> Keyring {
    let key: [u8; 32] = hex(key_hex).try_into().unwrap();
    let name = KeyNameSecret::new(SecretKey::from_bytes([0; 32]));
    Keyring::from_parts((id, SecretKey::from_bytes(key)), vec![], name).unwrap()
}

/// Every cipher implementation built, over `keyring`, with its name.
#[allow(clippy::vec_init_then_push)] // each push is behind its own feature
fn ciphers(keyring: &Keyring) -> Vec<(&'static str, Box<dyn Cipher>)> {
    let mut all: Vec<(&'static str, Box<dyn Cipher>)> = Vec::new();
    #[cfg(feature = "ring")]
    all.push((
        "ring",
        Box::new(sealcache_codec::RingAes256Gcm::new(keyring)),
    ));
    #[cfg(feature = "rustcrypto")]
    all.push((
        "rustcrypto",
        Box::new(sealcache_codec::Aes256GcmCipher::new(keyring)),
    ));
    assert!(!all.is_empty());
    all
}

#[test]
fn encrypts_to_the_published_ciphertext_and_tag() {
    for v in VECTORS {
        for (name, cipher) in ciphers(&keyring_for(v.key, 5)) {
            assert_eq!(cipher.sealing_key_id(), 5);
            let nonce: [u8; 12] = hex(v.iv).try_into().unwrap();
            let mut buf = hex(v.plaintext);
            let tag = cipher
                .encrypt_in_place(&nonce, &hex(v.aad), &mut buf)
                .unwrap();
            assert_eq!(buf, hex(v.ciphertext), "{name} {}: ciphertext", v.name);
            assert_eq!(tag.to_vec(), hex(v.tag), "{name} {}: tag", v.name);
            assert_eq!(cipher.seal_count(5), Some(1));
        }
    }
}

#[test]
fn decrypts_the_published_ciphertext_and_rejects_any_change() {
    for v in VECTORS {
        for (name, cipher) in ciphers(&keyring_for(v.key, 9)) {
            let nonce: [u8; 12] = hex(v.iv).try_into().unwrap();
            let ct = hex(v.ciphertext);
            let tag: [u8; 16] = hex(v.tag).try_into().unwrap();
            let mut out = vec![0u8; ct.len()];
            cipher
                .decrypt(9, &nonce, &hex(v.aad), &ct, &tag, &mut out)
                .unwrap();
            assert_eq!(out, hex(v.plaintext), "{name} {}", v.name);

            let mut bad_tag = tag;
            bad_tag[0] ^= 0x80;
            let mut out = vec![0u8; ct.len()];
            let err = cipher.decrypt(9, &nonce, &hex(v.aad), &ct, &bad_tag, &mut out);
            assert!(matches!(err, Err(Error::Unauthentic)), "{name} {}", v.name);
            assert!(
                out.iter().all(|b| *b == 0),
                "{name}: no plaintext is left in the output when the tag fails"
            );

            let mut aad = hex(v.aad);
            aad.push(0);
            let err = cipher.decrypt(9, &nonce, &aad, &ct, &tag, &mut out);
            assert!(matches!(err, Err(Error::Unauthentic)), "{name} {}", v.name);
            assert!(out.iter().all(|b| *b == 0), "{name}: output wiped");

            let err = cipher.decrypt(10, &nonce, &hex(v.aad), &ct, &tag, &mut out);
            assert!(
                matches!(err, Err(Error::UnknownKeyId(10))),
                "{name} {}",
                v.name
            );
        }
    }
}

/// Envelopes sealed by either implementation open with the other, byte for byte, compressed or
/// not, and tampering fails in both.
#[cfg(all(feature = "ring", feature = "rustcrypto"))]
#[test]
fn ring_and_rustcrypto_envelopes_interoperate() {
    use sealcache_codec::{Aes256GcmCipher, RingAes256Gcm, SealContext, ValueCodec, Zstd};
    let keyring = keyring_for(
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        3,
    );
    let ring = ValueCodec::with_parts(Zstd::default(), RingAes256Gcm::new(&keyring));
    let rc = ValueCodec::with_parts(Zstd::default(), Aes256GcmCipher::new(&keyring));
    let ctx = SealContext::new("ai_cache", "ai_cache:v2:qa:interop");
    for len in [0usize, 1, 15, 16, 17, 255, 256, 1000, 4096, 100_000] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        for (from, to) in [(&ring as &dyn Open, &rc as &dyn Open), (&rc, &ring)] {
            let sealed = from.seal_bytes(&ctx, &plain);
            assert_eq!(to.open_bytes(&ctx, &sealed).unwrap(), plain, "len {len}");
            let mut tampered = sealed.clone();
            let last = tampered.len() - 1;
            tampered[last] ^= 1;
            assert!(matches!(
                to.open_bytes(&ctx, &tampered),
                Err(Error::Unauthentic)
            ));
        }
    }

    trait Open {
        fn seal_bytes(&self, ctx: &SealContext<'_>, plain: &[u8]) -> Vec<u8>;
        fn open_bytes(&self, ctx: &SealContext<'_>, stored: &[u8]) -> Result<Vec<u8>, Error>;
    }
    impl<K: Cipher> Open for ValueCodec<Zstd, K> {
        fn seal_bytes(&self, ctx: &SealContext<'_>, plain: &[u8]) -> Vec<u8> {
            self.seal(ctx, plain).unwrap().as_bytes().to_vec()
        }
        fn open_bytes(&self, ctx: &SealContext<'_>, stored: &[u8]) -> Result<Vec<u8>, Error> {
            self.open(ctx, stored).map(|o| o.into_bytes())
        }
    }
}
