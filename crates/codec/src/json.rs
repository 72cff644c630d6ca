//! Seal any `Serialize` value as compact JSON, open into any `DeserializeOwned` type.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cipher::Cipher;
use crate::compress::Compressor;
use crate::envelope::SealContext;
use crate::error::{Error, Result};
use crate::value_codec::{Opened, Sealed, ValueCodec};

thread_local! {
    static JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<C: Compressor, K: Cipher> ValueCodec<C, K> {
    /// Serializes `value` to compact JSON (into a reused per-thread buffer) and seals it.
    ///
    /// # Errors
    /// [`Error::Serialize`] (the serde message is withheld), then as [`ValueCodec::seal`].
    pub fn seal_json<T: Serialize + ?Sized>(
        &self,
        ctx: &SealContext<'_>,
        value: &T,
    ) -> Result<Sealed> {
        JSON.with(|cell| {
            let mut fresh = Vec::new();
            let mut guard = cell.try_borrow_mut();
            let buf = match guard.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut fresh,
            };
            buf.clear();
            serde_json::to_writer(&mut *buf, value).map_err(|_| Error::Serialize)?;
            self.seal(ctx, buf)
        })
    }

    /// Opens a stored value and deserializes it from JSON.
    ///
    /// # Errors
    /// As [`ValueCodec::open`], then [`Error::Deserialize`].
    pub fn open_json<T: DeserializeOwned>(
        &self,
        ctx: &SealContext<'_>,
        stored: &[u8],
    ) -> Result<T> {
        self.open(ctx, stored)?.deserialize_json()
    }
}

impl Opened {
    /// Deserializes the plaintext from JSON.
    ///
    /// # Errors
    /// [`Error::Deserialize`] with the position only: serde's message can quote plaintext.
    pub fn deserialize_json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(self.as_bytes()).map_err(|e| Error::Deserialize {
            line: e.line(),
            column: e.column(),
        })
    }
}
