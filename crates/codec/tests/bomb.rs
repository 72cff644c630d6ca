//! A zstd bomb sealed with a valid key must fail with the size error without allocating (or
//! writing) the expanded output. This file is its own test binary so that the process's peak
//! resident memory (VmHWM) measures this test alone.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;

use sealcache_codec::{
    Compressor, DefaultCipher, Error, Keyring, SealContext, SecretKey, ValueCodec,
};

/// A compressor that ignores its input and emits a prepared zstd frame: how a holder of the key
/// (or a bug) could store a bomb.
#[derive(Debug)]
struct Emit(Vec<u8>);

impl Compressor for Emit {
    fn compress(&self, _plain: &[u8], out: &mut Vec<u8>) -> sealcache_codec::Result<bool> {
        out.clear();
        out.extend_from_slice(&self.0);
        Ok(true)
    }
}

/// Peak resident set size of this process in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 256 MiB of zeros, compressed by streaming (little memory), with or without the size declared.
fn bomb(declare_size: bool) -> Vec<u8> {
    const SIZE: u64 = 256 << 20;
    let mut enc = zstd::stream::read::Encoder::new(std::io::repeat(0).take(SIZE), 1).unwrap();
    if declare_size {
        enc.set_pledged_src_size(Some(SIZE)).unwrap();
    }
    enc.include_contentsize(declare_size).unwrap();
    let mut out = Vec::new();
    enc.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn bombs_fail_with_the_size_error_without_expanding() {
    let ring = Keyring::single(SecretKey::generate().unwrap());
    let ctx = SealContext::new("ai_cache", "ai_cache:v2:summarize:bomb");
    let opener = ValueCodec::new(&ring); // default cap: 16 MiB
    let declared = bomb(true);
    let undeclared = bomb(false);
    assert!(declared.len() < 200_000 && undeclared.len() < 200_000);

    let before = peak_rss_kib();
    for frame in [declared, undeclared] {
        let sealer = ValueCodec::with_parts(Emit(frame), DefaultCipher::new(&ring));
        let sealed = sealer.seal(&ctx, b"anything").unwrap();
        let err = opener.open(&ctx, sealed.as_bytes()).unwrap_err();
        assert!(
            matches!(err, Error::DecompressedTooLarge { limit } if limit == 16 << 20),
            "{err:?}"
        );
        assert_eq!(err.kind(), sealcache_codec::ErrorKind::DecompressedTooLarge);
    }
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    // Expanding either bomb would touch 256 MiB; the declared one must cost nothing and the stream
    // at most the cap (16 MiB) plus decoder state.
    assert!(
        grown_mib < 64,
        "peak RSS grew by {grown_mib} MiB while opening bombs"
    );
}
