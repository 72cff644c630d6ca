use super::*;

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes([byte; KEY_LEN])
}

#[test]
fn single_key_is_primary_one_with_derived_name_secret() {
    let text = key(1).expose_text();
    let ring = Keyring::parse(&text).unwrap();
    assert_eq!(ring.primary_id(), FIRST_KEY_ID);
    assert!(ring.decrypt_only_ids().is_empty());
    assert_eq!(
        ring.name_secret().expose_secret(),
        KeyNameSecret::derive_from(&key(1)).expose_secret()
    );
}

#[test]
fn text_format_round_trips_through_rotation() {
    let ring = Keyring::single(key(1)).rotate(key(2));
    assert_eq!(ring.primary_id(), 2);
    assert_eq!(ring.decrypt_only_ids(), vec![1]);
    let text = ring.to_text();
    let back = Keyring::parse(&text).unwrap();
    assert_eq!(back.primary_id(), 2);
    assert_eq!(back.decrypt_only_ids(), vec![1]);
    assert_eq!(back.key(1).unwrap().expose_secret(), &[1; 32]);
    // The derived name secret survives rotation unchanged.
    assert_eq!(
        back.name_secret().expose_secret(),
        KeyNameSecret::derive_from(&key(1)).expose_secret()
    );
    let dropped = back.without_key(1).unwrap();
    assert!(dropped.decrypt_only_ids().is_empty());
    assert!(matches!(back.without_key(2), Err(Error::NoPrimaryKey)));
    assert!(matches!(back.without_key(9), Err(Error::UnknownKeyId(9))));
}

#[test]
fn semicolon_separated_keyring_fits_in_one_variable() {
    let text = format!(
        "primary 7 {}; decrypt-only 3 {}; name-secret {}",
        key(7).expose_text().as_str(),
        key(3).expose_text().as_str(),
        key(9).expose_text().as_str()
    );
    let ring = Keyring::parse(&text).unwrap();
    assert_eq!(ring.primary_id(), 7);
    assert_eq!(ring.decrypt_only_ids(), vec![3]);
    assert_eq!(ring.name_secret().expose_secret(), &[9; 32]);
}

#[test]
fn syntax_errors_are_specific_and_never_echo_keys() {
    let k = key(5).expose_text();
    type Expect = fn(&Error) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        (format!("decrypt-only 1 {}", k.as_str()), |e| {
            matches!(e, Error::NoPrimaryKey)
        }),
        (format!("primary 1 {0}\nprimary 2 {0}", k.as_str()), |e| {
            matches!(e, Error::MultiplePrimaryKeys)
        }),
        (
            format!("primary 1 {0}\ndecrypt-only 1 {0}", k.as_str()),
            |e| matches!(e, Error::DuplicateKeyId(1)),
        ),
        (format!("primary x {}", k.as_str()), |e| {
            matches!(e, Error::KeyringSyntax { line: 1, .. })
        }),
        (format!("# c\nsecondary 1 {}", k.as_str()), |e| {
            matches!(e, Error::KeyringSyntax { line: 2, .. })
        }),
        (
            format!("primary 1 {0}\ndecrypt-only 2 {0}", k.as_str()),
            |e| matches!(e, Error::KeyringSyntax { line: 0, .. }),
        ),
        ("primary 1 c2hvcnQ=".to_owned(), |e| {
            matches!(e, Error::KeyLength { decoded: 5 })
        }),
    ];
    for (text, expected) in cases {
        let err = Keyring::parse(&text).unwrap_err();
        assert!(expected(&err), "unexpected {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(k.as_str()), "error echoes a key: {shown}");
    }
}

#[test]
fn keyring_file_is_read_and_debug_shows_ids_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption_keyring");
    let ring = Keyring::generate()
        .unwrap()
        .rotate(SecretKey::generate().unwrap());
    std::fs::write(&path, ring.to_text().as_bytes()).unwrap();
    let back = Keyring::from_file(&path).unwrap();
    assert_eq!(back.primary_id(), ring.primary_id());
    let debug = format!("{back:?}");
    assert_eq!(
        debug,
        "Keyring { primary_id: 2, decrypt_only_ids: [1], .. }"
    );
    for (_, k) in back.keys() {
        assert!(!debug.contains(k.expose_text().as_str()));
    }
    let missing = Keyring::from_file(dir.path().join("nope")).unwrap_err();
    assert!(matches!(missing, Error::KeyringFile { .. }));
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::generate()
        .unwrap()
        .rotate(SecretKey::generate().unwrap());
    let plain = dir.path().join("plain");
    std::fs::write(&plain, ring.to_text().as_bytes()).unwrap();
    let windows = dir.path().join("windows");
    let text = format!("\u{feff}{}", ring.to_text().replace('\n', "\r\n"));
    std::fs::write(&windows, text.as_bytes()).unwrap();
    let (a, b) = (
        Keyring::from_file(&plain).unwrap(),
        Keyring::from_file(&windows).unwrap(),
    );
    assert_eq!(a.primary_id(), b.primary_id());
    assert_eq!(a.decrypt_only_ids(), b.decrypt_only_ids());
    for ((id_a, key_a), (id_b, key_b)) in a.keys().zip(b.keys()) {
        assert_eq!(id_a, id_b);
        assert_eq!(key_a.expose_secret(), key_b.expose_secret());
    }
    assert_eq!(
        a.name_secret().expose_secret(),
        b.name_secret().expose_secret()
    );

    // A file holding one bare key, saved with a mark and a CRLF.
    let single = dir.path().join("single");
    let k = key(7).expose_text();
    std::fs::write(&single, format!("\u{feff}{}\r\n", k.as_str())).unwrap();
    let ring = Keyring::from_file(&single).unwrap();
    assert_eq!(ring.key(FIRST_KEY_ID).unwrap().expose_secret(), &[7; 32]);
    // Only one mark: a second one is not whitespace and fails as a key.
    assert!(Keyring::parse(&format!("\u{feff}\u{feff}{}", k.as_str())).is_err());
}

#[test]
fn two_phase_rotation_adds_decrypt_only_then_promotes() {
    let ring = Keyring::single(key(1));
    let (added, id) = ring.with_decrypt_only_key(key(2));
    assert_eq!(id, 2);
    assert_eq!(
        added.primary_id(),
        1,
        "the primary is unchanged by the first stage"
    );
    assert_eq!(added.decrypt_only_ids(), vec![2]);
    let promoted = Keyring::parse(&added.to_text())
        .unwrap()
        .with_primary(2)
        .unwrap();
    assert_eq!(promoted.primary_id(), 2);
    assert_eq!(promoted.decrypt_only_ids(), vec![1]);
    assert_eq!(promoted.keys().next().map(|(id, _)| id), Some(2));
    let back = Keyring::parse(&promoted.to_text()).unwrap();
    assert_eq!(back.primary_id(), 2);
    assert_eq!(back.key(1).unwrap().expose_secret(), &[1; 32]);
    // The name secret (derived from key 1 at first) never changes.
    assert_eq!(
        back.name_secret().expose_secret(),
        KeyNameSecret::derive_from(&key(1)).expose_secret()
    );
    assert!(matches!(back.with_primary(9), Err(Error::UnknownKeyId(9))));
    assert!(back.without_key(1).unwrap().decrypt_only_ids().is_empty());
}
