//! Seal and open AI responses with rotation and the legacy policy; no Redis needed.
//!
//! Run: `cargo run -p sealcache-codec --example seal_open`

// An example program prints what it shows.
#![allow(clippy::print_stdout)]

use std::time::{Duration, SystemTime};

use sealcache_codec::{Keyring, SealContext, SecretKey, Source, ValueCodec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keyring = Keyring::generate()?;
    let codec = ValueCodec::new(&keyring);
    let ctx = SealContext::new("ai_cache", "ai_cache:v2:summarize:5d41402abc4b2a76");

    let answer = serde_json::json!({
        "summary": "The report finds that caching model answers cut latency by 80 %. ".repeat(20),
        "model": "gpt-4o-mini",
    });
    let plain_len = serde_json::to_vec(&answer)?.len();
    let sealed = codec.seal_json(&ctx, &answer)?;
    println!(
        "sealed {plain_len} bytes of JSON into {} bytes (compressed: {}, key id {})",
        sealed.stored_len(),
        sealed.is_compressed(),
        sealed.key_id()
    );

    // Rotate: the new primary seals, the old key keeps opening what it sealed.
    let rotated = keyring.rotate(SecretKey::generate()?);
    let after = ValueCodec::new(&rotated);
    let back: serde_json::Value = after.open_json(&ctx, sealed.as_bytes())?;
    assert_eq!(back, answer);
    println!(
        "after rotation: primary key id {}, decrypt-only {:?}; old value still opens",
        rotated.primary_id(),
        rotated.decrypt_only_ids()
    );

    // A value copied onto another key is refused, with the event the monitor would count.
    let other = SealContext::new("ai_cache", "ai_cache:v2:summarize:7d793037a0760186");
    match after.open(&other, sealed.as_bytes()) {
        Ok(_) => return Err("a value copied onto another key opened".into()),
        Err(err) => println!("copied to another key: {err} (kind: {:?})", err.kind()),
    }

    // Legacy plaintext from the Python template: rejected unless a migration window is open.
    let legacy = br#"{"result": "stored in the clear by the old template"}"#;
    match after.open(&ctx, legacy) {
        Ok(_) => return Err("legacy plaintext opened without a migration window".into()),
        Err(err) => println!("legacy plaintext: {err} (kind: {:?})", err.kind()),
    }
    let migrating = ValueCodec::new(&rotated)
        .dangerous()
        .accept_legacy_plaintext_until(SystemTime::now() + Duration::from_secs(7 * 86_400))
        .done();
    let opened = migrating.open(&ctx, legacy)?;
    assert_eq!(opened.source(), Source::LegacyPlaintext);
    println!("legacy plaintext inside the migration window: accepted, reported as legacy");
    Ok(())
}
