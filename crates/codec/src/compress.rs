//! The `Compressor` seam: zstd (the default) and no compression.
//!
//! The envelope has one compression flag (bit 0, zstd), so a compressor decides *whether* and
//! *how hard* to compress; the stored format is always a zstd frame when the flag is set. Both
//! implementations can open zstd-flagged payloads, so turning compression off never strands
//! entries written before.
//!
//! Decompression is capped: the payload must be exactly one frame, the frame header's declared size is checked against the cap before
//! any output buffer is allocated, frames that do not declare their size are decoded as a stream
//! that stops one byte past the cap, and the decoder's window is bounded
//! ([`MAX_WINDOW_LOG`]), so a decompression bomb costs neither memory nor time.

use std::cell::RefCell;
use std::io::Read as _;

use crate::dictionary::{Dictionaries, Dictionary};
use crate::error::{Error, Result};

/// Default zstd level, chosen from the level curve in docs/benchmarks.md.
pub const DEFAULT_ZSTD_LEVEL: i32 = 2;
/// Values shorter than this are stored uncompressed by default.
pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 256;
/// Largest zstd window the decoder accepts (2^24 = 16 MiB, matching the default value cap).
pub const MAX_WINDOW_LOG: u32 = 24;

/// Compresses values before encryption and decompresses them, under a hard cap, after.
pub trait Compressor: Send + Sync + std::fmt::Debug {
    /// Compresses `plain` into `out` (cleared first) and returns `true`, or returns `false` when
    /// the value should be stored uncompressed (below the threshold, or not smaller compressed).
    ///
    /// # Errors
    /// [`Error::Compression`] if the compressor fails.
    fn compress(&self, plain: &[u8], out: &mut Vec<u8>) -> Result<bool>;

    /// As [`Compressor::compress`], with a trained dictionary whose id goes into the frame
    /// header (the default ignores the dictionary).
    ///
    /// # Errors
    /// [`Error::Compression`] if the compressor fails.
    fn compress_with_dictionary(
        &self,
        plain: &[u8],
        dictionary: &Dictionary,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let _ = dictionary;
        self.compress(plain, out)
    }

    /// Compresses `plain` (with `dictionary`, if given) onto the end of `out`, keeping what `out`
    /// already holds, and returns `true`; or returns `false` with `out` unchanged when the value
    /// should be stored uncompressed. The sealer uses this to compress straight into the
    /// envelope after its header. The default compresses into a temporary buffer and appends it;
    /// [`Zstd`] writes in place.
    ///
    /// # Errors
    /// [`Error::Compression`] if the compressor fails.
    fn compress_append(
        &self,
        plain: &[u8],
        dictionary: Option<&Dictionary>,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let mut compressed = Vec::new();
        let smaller = match dictionary {
            Some(dictionary) => {
                self.compress_with_dictionary(plain, dictionary, &mut compressed)?
            }
            None => self.compress(plain, &mut compressed)?,
        };
        if smaller {
            out.extend_from_slice(&compressed);
        }
        Ok(smaller)
    }

    /// Decompresses a zstd payload into a new buffer of at most `limit` bytes.
    ///
    /// # Errors
    /// [`Error::DecompressedTooLarge`] past the cap (decided before allocating when the frame
    /// declares its size); [`Error::CorruptPayload`] for an invalid stream.
    fn decompress(&self, compressed: &[u8], limit: usize) -> Result<Vec<u8>> {
        zstd_decompress_capped(compressed, limit, &Dictionaries::none())
    }
}

/// zstd at a configurable level, above a configurable size threshold.
///
/// Compression contexts are kept per thread and reused across calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zstd {
    level: i32,
    threshold: usize,
}

impl Default for Zstd {
    fn default() -> Self {
        Self {
            level: DEFAULT_ZSTD_LEVEL,
            threshold: DEFAULT_COMPRESSION_THRESHOLD,
        }
    }
}

impl Zstd {
    /// zstd at `level` (clamped to 1..=19) for values of at least `threshold` bytes.
    #[must_use]
    pub fn new(level: i32, threshold: usize) -> Self {
        Self {
            level: level.clamp(1, 19),
            threshold,
        }
    }

    /// The compression level.
    #[must_use]
    pub fn level(&self) -> i32 {
        self.level
    }

    /// The size threshold in bytes.
    #[must_use]
    pub fn threshold(&self) -> usize {
        self.threshold
    }
}

thread_local! {
    /// One compression context per thread, re-levelled when a different level asks for it.
    static CCTX: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    /// The same with a dictionary loaded, keyed by (level, dictionary id) and dictionary id.
    static DICT_CCTX: RefCell<Option<(i32, u32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DICT_DCTX: RefCell<Option<(u32, zstd::bulk::Decompressor<'static>)>> = const { RefCell::new(None) };
}

impl Zstd {
    /// Compresses `plain` onto the end of `out` with the thread's context for this level (and
    /// `dictionary`), writing straight into `out`'s spare capacity: no intermediate buffer.
    fn compress_onto(
        &self,
        plain: &[u8],
        dictionary: Option<&Dictionary>,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        if plain.len() < self.threshold {
            return Ok(false);
        }
        let start = out.len();
        out.reserve(zstd::zstd_safe::compress_bound(plain.len()));
        // The cursor starts after what `out` already holds (the envelope header, when sealing).
        let mut at = std::io::Cursor::new(&mut *out);
        at.set_position(start as u64);
        match dictionary {
            None => CCTX.with(|cell| {
                let mut slot = cell.borrow_mut();
                let ctx = match slot.as_mut() {
                    Some((level, ctx)) if *level == self.level => ctx,
                    _ => {
                        let mut ctx = zstd::bulk::Compressor::new(self.level)
                            .map_err(|_| Error::Compression)?;
                        // The AEAD tag already authenticates the payload: no frame checksum, and
                        // no dictionary id. The frame keeps its content size so the reader can
                        // check the cap before allocating.
                        ctx.include_checksum(false)
                            .map_err(|_| Error::Compression)?;
                        ctx.include_dictid(false).map_err(|_| Error::Compression)?;
                        ctx.include_contentsize(true)
                            .map_err(|_| Error::Compression)?;
                        &mut slot.insert((self.level, ctx)).1
                    }
                };
                ctx.compress_to_buffer(plain, &mut at)
                    .map_err(|_| Error::Compression)
            })?,
            Some(dictionary) => DICT_CCTX.with(|cell| {
                let mut slot = cell.borrow_mut();
                let ctx = match slot.as_mut() {
                    Some((level, id, ctx)) if *level == self.level && *id == dictionary.id() => ctx,
                    _ => {
                        let mut ctx = zstd::bulk::Compressor::with_dictionary(
                            self.level,
                            dictionary.as_bytes(),
                        )
                        .map_err(|_| Error::Compression)?;
                        // The frame names its dictionary (the id is authenticated with the
                        // payload).
                        ctx.include_checksum(false)
                            .map_err(|_| Error::Compression)?;
                        ctx.include_dictid(true).map_err(|_| Error::Compression)?;
                        ctx.include_contentsize(true)
                            .map_err(|_| Error::Compression)?;
                        &mut slot.insert((self.level, dictionary.id(), ctx)).2
                    }
                };
                ctx.compress_to_buffer(plain, &mut at)
                    .map_err(|_| Error::Compression)
            })?,
        };
        if out.len() - start < plain.len() {
            Ok(true)
        } else {
            out.truncate(start);
            Ok(false)
        }
    }
}

impl Compressor for Zstd {
    fn compress(&self, plain: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        self.compress_onto(plain, None, out)
    }

    fn compress_with_dictionary(
        &self,
        plain: &[u8],
        dictionary: &Dictionary,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        // A dictionary pays off from the first bytes: the threshold still applies (the frame
        // header alone would outweigh a tiny value).
        out.clear();
        self.compress_onto(plain, Some(dictionary), out)
    }

    fn compress_append(
        &self,
        plain: &[u8],
        dictionary: Option<&Dictionary>,
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.compress_onto(plain, dictionary, out)
    }
}

/// Never compresses; still opens zstd payloads written while compression was on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoCompression;

impl Compressor for NoCompression {
    fn compress(&self, _plain: &[u8], _out: &mut Vec<u8>) -> Result<bool> {
        Ok(false)
    }
}

/// Decompresses `compressed`, which must be exactly one zstd frame, into at most `limit` bytes,
/// with the dictionary its frame names (from `dictionaries`; [`Error::UnknownDictionary`] when
/// it is not held).
///
/// The sealer always writes a single frame; several frames or trailing bytes are a
/// [`Error::CorruptPayload`], which keeps the size check below exact.
pub(crate) fn zstd_decompress_capped(
    compressed: &[u8],
    limit: usize,
    dictionaries: &Dictionaries,
) -> Result<Vec<u8>> {
    let too_large = Error::DecompressedTooLarge { limit };
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(compressed)
        .map_err(|_| Error::CorruptPayload)?;
    if frame_len != compressed.len() {
        return Err(Error::CorruptPayload);
    }
    let dictionary = match zstd::zstd_safe::get_dict_id_from_frame(compressed) {
        Some(id) => Some(
            dictionaries
                .get(id.get())
                .ok_or(Error::UnknownDictionary(id.get()))?,
        ),
        None => None,
    };
    match zstd::zstd_safe::get_frame_content_size(compressed) {
        Ok(Some(size)) => {
            let size = usize::try_from(size).map_err(|_| Error::DecompressedTooLarge { limit })?;
            if size > limit {
                return Err(too_large);
            }
            let mut out = Vec::with_capacity(size);
            // A frame whose real output exceeds its declared size fails here: the buffer has
            // exactly the declared capacity.
            match dictionary {
                None => DCTX.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    let ctx = match slot.as_mut() {
                        Some(ctx) => ctx,
                        None => slot.insert(new_decompressor(None)?),
                    };
                    ctx.decompress_to_buffer(compressed, &mut out)
                        .map_err(|_| Error::CorruptPayload)
                })?,
                Some(dictionary) => DICT_DCTX.with(|cell| {
                    let mut slot = cell.borrow_mut();
                    let ctx = match slot.as_mut() {
                        Some((id, ctx)) if *id == dictionary.id() => ctx,
                        _ => {
                            &mut slot
                                .insert((dictionary.id(), new_decompressor(Some(dictionary))?))
                                .1
                        }
                    };
                    ctx.decompress_to_buffer(compressed, &mut out)
                        .map_err(|_| Error::CorruptPayload)
                })?,
            };
            if out.len() != size {
                return Err(Error::CorruptPayload);
            }
            Ok(out)
        }
        // The frame does not declare its size: decode as a stream, stop past the cap.
        Ok(None) => {
            let mut decoder = match dictionary {
                None => zstd::stream::read::Decoder::new(compressed),
                Some(d) => zstd::stream::read::Decoder::with_dictionary(
                    std::io::BufReader::new(compressed),
                    d.as_bytes(),
                ),
            }
            .map_err(|_| Error::CorruptPayload)?;
            decoder
                .window_log_max(MAX_WINDOW_LOG)
                .map_err(|_| Error::CorruptPayload)?;
            let mut out = Vec::new();
            let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            decoder
                .take(cap)
                .read_to_end(&mut out)
                .map_err(|_| Error::CorruptPayload)?;
            if out.len() > limit {
                return Err(too_large);
            }
            Ok(out)
        }
        Err(_) => Err(Error::CorruptPayload),
    }
}

fn new_decompressor(dictionary: Option<&Dictionary>) -> Result<zstd::bulk::Decompressor<'static>> {
    let mut ctx = match dictionary {
        None => zstd::bulk::Decompressor::new(),
        Some(d) => zstd::bulk::Decompressor::with_dictionary(d.as_bytes()),
    }
    .map_err(|_| Error::CorruptPayload)?;
    ctx.window_log_max(MAX_WINDOW_LOG)
        .map_err(|_| Error::CorruptPayload)?;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_threshold_is_stored_plain() {
        let mut out = Vec::new();
        assert!(!Zstd::default().compress(&[b'a'; 255], &mut out).unwrap());
        assert!(Zstd::default().compress(&[b'a'; 256], &mut out).unwrap());
        assert!(out.len() < 64);
        assert_eq!(
            Zstd::default().decompress(&out, 256).unwrap(),
            vec![b'a'; 256]
        );
        assert!(!NoCompression.compress(&[b'a'; 4096], &mut out).unwrap());
    }

    #[test]
    fn declared_size_over_cap_fails_before_allocating() {
        let big = vec![0u8; 8 << 20];
        let bomb = zstd::bulk::compress(&big, 19).unwrap();
        assert!(bomb.len() < 2048);
        let err = zstd_decompress_capped(&bomb, 1 << 20, &Dictionaries::none()).unwrap_err();
        assert!(matches!(err, Error::DecompressedTooLarge { limit } if limit == 1 << 20));
    }

    #[test]
    fn undeclared_size_stream_stops_at_cap() {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &vec![7u8; 4 << 20]).unwrap();
        let frame = enc.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).unwrap(),
            None
        );
        let err = zstd_decompress_capped(&frame, 1 << 20, &Dictionaries::none()).unwrap_err();
        assert!(matches!(err, Error::DecompressedTooLarge { .. }));
        assert_eq!(
            zstd_decompress_capped(&frame, 4 << 20, &Dictionaries::none())
                .unwrap()
                .len(),
            4 << 20
        );
    }

    #[test]
    fn two_frames_or_trailing_bytes_are_corrupt() {
        let one = zstd::bulk::compress(&[1u8; 1000], 3).unwrap();
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert!(matches!(
            zstd_decompress_capped(&two, 1 << 20, &Dictionaries::none()),
            Err(Error::CorruptPayload)
        ));
        let mut trailing = one.clone();
        trailing.push(0);
        assert!(matches!(
            zstd_decompress_capped(&trailing, 1 << 20, &Dictionaries::none()),
            Err(Error::CorruptPayload)
        ));
        assert_eq!(
            zstd_decompress_capped(&one, 1000, &Dictionaries::none()).unwrap(),
            vec![1u8; 1000]
        );
    }

    #[test]
    fn garbage_is_corrupt_payload() {
        let err = zstd_decompress_capped(b"definitely not zstd", 1024, &Dictionaries::none())
            .unwrap_err();
        assert!(matches!(err, Error::CorruptPayload));
    }
}
