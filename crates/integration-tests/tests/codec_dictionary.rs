//! Trained zstd dictionaries: smaller sealed values, carried and rotated with the keyring, never
//! needed to open older values, and an unknown one is a typed failure (never a guess).

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use sealcache_codec::{Dictionary, Error, ErrorKind, Keyring, SealContext, SecretKey, ValueCodec};

fn corpus(class: &str) -> Vec<Vec<u8>> {
    let path = std::env::var_os("SEALCACHE_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/corpus.jsonl"),
        PathBuf::from,
    );
    std::fs::read_to_string(path)
        .expect("the benchmark corpus (SEALCACHE_CORPUS)")
        .lines()
        .filter(|l| {
            l.contains(&format!("\"size_class\": \"{class}\""))
                || l.contains(&format!("\"size_class\":\"{class}\""))
        })
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn trained(docs: &[Vec<u8>]) -> Dictionary {
    let samples: Vec<&[u8]> = docs.iter().step_by(2).map(Vec::as_slice).collect();
    #[cfg(feature = "dictionary-training")]
    return Dictionary::train(&samples, 16 * 1024).unwrap();
    #[cfg(not(feature = "dictionary-training"))]
    return Dictionary::from_bytes(zstd::dict::from_samples(&samples, 16 * 1024).unwrap()).unwrap();
}

const CTX: SealContext<'static> = SealContext::new("ai_cache", "ai_cache:v2:qa:00ff");

#[test]
fn a_trained_dictionary_makes_small_values_smaller_and_round_trips() {
    let docs = corpus("small");
    assert!(
        docs.len() >= 20,
        "small documents in the corpus: {}",
        docs.len()
    );
    let dictionary = trained(&docs);
    let plain_ring = Keyring::generate().unwrap();
    let dict_ring = plain_ring
        .with_dictionary(dictionary.clone(), true)
        .unwrap();
    let (without, with) = (ValueCodec::new(&plain_ring), ValueCodec::new(&dict_ring));
    let (mut size_without, mut size_with) = (0usize, 0usize);
    // Documents the trainer never saw.
    for doc in docs.iter().skip(1).step_by(2) {
        let a = without.seal(&CTX, doc).unwrap();
        let b = with.seal(&CTX, doc).unwrap();
        size_without += a.stored_len();
        size_with += b.stored_len();
        assert_eq!(
            with.open(&CTX, b.as_bytes()).unwrap().as_bytes(),
            doc.as_slice()
        );
        // Values sealed without the dictionary open with the dictionary codec, and back.
        assert_eq!(
            with.open(&CTX, a.as_bytes()).unwrap().as_bytes(),
            doc.as_slice()
        );
    }
    assert!(
        size_with * 10 < size_without * 9,
        "a dictionary should save more than 10 % on small values: {size_with} vs {size_without}"
    );
}

#[test]
fn dictionaries_rotate_with_the_keyring_and_an_unknown_one_is_typed() {
    let docs = corpus("small");
    let first = trained(&docs);
    let second = trained(&docs[1..]);
    assert_ne!(first.id(), second.id());
    let ring = Keyring::generate()
        .unwrap()
        .with_dictionary(first.clone(), true)
        .unwrap();
    let doc = &docs[1];
    let sealed_first = ValueCodec::new(&ring).seal(&CTX, doc).unwrap();

    // Rotation: the new dictionary seals, the old one still opens.
    let rotated = ring.with_dictionary(second.clone(), true).unwrap();
    assert_eq!(
        rotated.dictionaries().sealing().map(Dictionary::id),
        Some(second.id())
    );
    let codec = ValueCodec::new(&rotated);
    assert_eq!(
        codec
            .open(&CTX, sealed_first.as_bytes())
            .unwrap()
            .as_bytes(),
        doc.as_slice()
    );
    let sealed_second = codec.seal(&CTX, doc).unwrap();

    // Dropped too early: the value is a typed miss, counted as an unknown-key event.
    let dropped = rotated.without_dictionary(first.id());
    let err = ValueCodec::new(&dropped)
        .open(&CTX, sealed_first.as_bytes())
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownDictionary(id) if id == first.id()),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::UnknownDictionary);
    assert!(err.is_stored_value_failure());
    // A codec without any dictionary cannot open dictionary values either (no guessing).
    let none = ValueCodec::new(&Keyring::single(SecretKey::generate().unwrap()));
    assert!(none.open(&CTX, sealed_second.as_bytes()).is_err());

    // The dictionary id is inside the authenticated payload: a flipped bit anywhere is refused.
    let mut tampered = sealed_second.as_bytes().to_vec();
    tampered[20] ^= 0x01;
    assert!(matches!(
        codec.open(&CTX, &tampered),
        Err(Error::Unauthentic)
    ));
}

#[test]
fn the_keyring_file_carries_dictionaries() {
    let docs = corpus("small");
    let (first, second) = (trained(&docs), trained(&docs[1..]));
    let ring = Keyring::generate()
        .unwrap()
        .with_dictionary(first.clone(), false)
        .unwrap()
        .with_dictionary(second.clone(), true)
        .unwrap();
    let text = ring.to_text();
    assert!(text.contains(&format!("seal-dictionary {} ", second.id())));
    assert!(text.contains(&format!("\ndictionary {} ", first.id())));
    let parsed = Keyring::parse(&text).unwrap();
    assert_eq!(parsed.dictionaries(), ring.dictionaries());
    // With a byte order mark and CRLF line ends too.
    let crlf = format!("\u{feff}{}", text.replace('\n', "\r\n"));
    assert_eq!(
        Keyring::parse(&crlf).unwrap().dictionaries(),
        ring.dictionaries()
    );
    // Sealed by one, opened by the other.
    let sealed = ValueCodec::new(&ring).seal(&CTX, &docs[3]).unwrap();
    assert_eq!(
        ValueCodec::new(&parsed)
            .open(&CTX, sealed.as_bytes())
            .unwrap()
            .as_bytes(),
        docs[3].as_slice()
    );

    // An id that is not the dictionary's own, bytes that are no dictionary, two sealing entries.
    let wrong_id = text.replace(
        &format!("seal-dictionary {} ", second.id()),
        &format!("seal-dictionary {} ", second.id().wrapping_add(1)),
    );
    assert!(matches!(
        Keyring::parse(&wrong_id),
        Err(Error::KeyringSyntax { .. })
    ));
    let not_a_dictionary = format!("{}dictionary 7 aGVsbG8gd29ybGQ=\n", ring.to_text().as_str());
    assert!(matches!(
        Keyring::parse(&not_a_dictionary),
        Err(Error::InvalidDictionary(_))
    ));
    let two = text.replace(
        &format!("\ndictionary {} ", first.id()),
        &format!("\nseal-dictionary {} ", first.id()),
    );
    assert!(matches!(
        Keyring::parse(&two),
        Err(Error::KeyringSyntax { .. })
    ));
    // Debug shows ids and sizes, never the bytes.
    assert!(!format!("{first:?}").contains(&format!("{:?}", &first.as_bytes()[..8])));
}

#[test]
fn a_damaged_dictionary_is_refused_when_loaded_and_adding_one_again_is_harmless() {
    let docs = corpus("small");
    let dictionary = trained(&docs);
    // Header (magic and id) intact, the tables zeroed: refused at load, not at the first seal.
    let mut damaged = dictionary.as_bytes().to_vec();
    for b in &mut damaged[8..208] {
        *b = 0;
    }
    assert!(matches!(
        Dictionary::from_bytes(damaged),
        Err(Error::InvalidDictionary(_))
    ));
    let truncated = dictionary.as_bytes()[..40].to_vec();
    assert!(matches!(
        Dictionary::from_bytes(truncated),
        Err(Error::InvalidDictionary(_))
    ));
    // Training is deterministic: the same dictionary again only makes it the sealing one.
    let other = trained(&docs[1..]);
    let ring = Keyring::generate()
        .unwrap()
        .with_dictionary(dictionary.clone(), true)
        .unwrap()
        .with_dictionary(other.clone(), true)
        .unwrap();
    let again = ring.with_dictionary(dictionary.clone(), true).unwrap();
    assert_eq!(
        again.dictionaries().sealing().map(Dictionary::id),
        Some(dictionary.id())
    );
    assert_eq!(again.dictionaries().iter().count(), 2);
    // The same line twice in a keyring file is still refused.
    let text = again.to_text();
    let line = text
        .lines()
        .find(|l| l.starts_with("seal-dictionary"))
        .unwrap()
        .replace("seal-dictionary", "dictionary");
    assert!(Keyring::parse(&format!("{}{line}\n", text.as_str())).is_err());
}
