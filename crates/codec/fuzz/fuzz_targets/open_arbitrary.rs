//! Opens arbitrary bytes: must never panic, and every failure must be a stored-value failure.
//! Half of the runs start from a valid envelope with fuzzer-chosen bytes mutated into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealcache_codec::{Keyring, SealContext, SecretKey, ValueCodec};

fuzz_target!(|data: &[u8]| {
    let codec = ValueCodec::new(&Keyring::single(SecretKey::from_bytes([7; 32])));
    let ctx = SealContext::new("ai_cache", "ai_cache:v1:fuzz:00");
    if let Err(err) = codec.open(&ctx, data) {
        assert!(err.is_stored_value_failure(), "{err:?}");
    }
    if let Some((&first, rest)) = data.split_first() {
        let mut sealed = codec.seal(&ctx, rest).map(|s| s.into_bytes()).unwrap_or_default();
        if !sealed.is_empty() {
            let at = usize::from(first) % sealed.len();
            sealed[at] ^= first | 1;
            assert!(codec.open(&ctx, &sealed).is_err(), "a modified envelope opened");
        }
    }
});
