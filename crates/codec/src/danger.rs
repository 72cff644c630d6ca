//! Options that weaken the codec's guarantees.
//!
//! **Audit every use.** Each method here says in its name what it turns off, logs a warning when
//! used, and is reachable only through [`ValueCodec::dangerous`]. Callers that run a monitor must
//! count each use as an `override_used` security event.

use std::time::SystemTime;

use crate::cipher::Cipher;
use crate::compress::Compressor;
use crate::value_codec::{LegacyPolicy, ValueCodec};

/// The weakening options of a [`ValueCodec`], obtained with [`ValueCodec::dangerous`].
#[derive(Debug)]
pub struct DangerousCodecOptions<C, K> {
    codec: ValueCodec<C, K>,
}

impl<C: Compressor, K: Cipher> DangerousCodecOptions<C, K> {
    pub(crate) fn new(codec: ValueCodec<C, K>) -> Self {
        Self { codec }
    }

    /// Accepts legacy plaintext JSON objects and arrays (values the Python template stored
    /// unencrypted) until `deadline`, for a bounded migration. Opened legacy values report
    /// [`crate::Source::LegacyPlaintext`]: count them and re-store them sealed. No other format is
    /// ever accepted, and JSON strings, numbers and everything else stay rejected.
    #[must_use]
    pub fn accept_legacy_plaintext_until(mut self, deadline: SystemTime) -> Self {
        tracing::warn!(
            "legacy plaintext values are accepted until the configured deadline (migration window)"
        );
        self.codec
            .set_legacy_policy(LegacyPolicy::accept_json_until(deadline));
        self
    }

    /// Back to the codec.
    #[must_use]
    pub fn done(self) -> ValueCodec<C, K> {
        self.codec
    }
}
