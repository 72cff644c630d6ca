//! Fresh 96-bit nonces from a fast CSPRNG seeded by the operating system.
//!
//! Each thread keeps a ChaCha-based [`StdRng`] seeded from the OS generator (`getrandom`) and
//! reseeds it from the OS every [`RESEED_AFTER`] nonces. Drawing a nonce is then a few dozen
//! nanoseconds instead of a system call, which matters for small values. Random nonces are safe
//! for AES-GCM while a key seals far fewer than 2^32 values (NIST SP 800-38D §8.3); the cipher
//! counts seals per key and stops at that bound.
//!
//! Unlike `rand::ThreadRng`, a failing OS generator is an [`Error::Randomness`], never a panic.

use std::cell::RefCell;

use rand::rngs::{StdRng, SysRng};
use rand::{Rng as _, SeedableRng as _};

use crate::envelope::NONCE_LEN;
use crate::error::{Error, Result};

/// Nonces drawn before the thread's generator is reseeded from the OS.
pub(crate) const RESEED_AFTER: u32 = 1 << 16;

struct ThreadNonces {
    rng: StdRng,
    remaining: u32,
}

thread_local! {
    static NONCES: RefCell<Option<ThreadNonces>> = const { RefCell::new(None) };
}

/// Returns a fresh random nonce.
pub(crate) fn fresh_nonce() -> Result<[u8; NONCE_LEN]> {
    NONCES.with(|cell| {
        let mut slot = cell.borrow_mut();
        let state = match slot.as_mut() {
            Some(state) if state.remaining > 0 => state,
            _ => slot.insert(ThreadNonces {
                rng: StdRng::try_from_rng(&mut SysRng).map_err(|_| Error::Randomness)?,
                remaining: RESEED_AFTER,
            }),
        };
        state.remaining -= 1;
        let mut nonce = [0u8; NONCE_LEN];
        state.rng.fill_bytes(&mut nonce);
        Ok(nonce)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_do_not_repeat_across_reseeds() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(RESEED_AFTER as usize + 1000) {
            assert!(seen.insert(fresh_nonce().unwrap()));
        }
    }
}
