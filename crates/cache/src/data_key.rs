//! Data keys: one random 256-bit key per tenant and per (tenant, subject), stored in Redis wrapped
//! under the keyring's primary key, cached unwrapped in process (bounded), destroyed by erasure.
//!
//! # Records
//!
//! ```text
//! {namespace}:dk:{tenant tag}:{subject tag | _}   the wrapped data key (no expiry)
//!     "SDK1" ‖ data-key id (16 random bytes) ‖ envelope v1 of the 32-byte key under the keyring
//!     (associated data: namespace and "{record key}#{hex id}")
//! {namespace}:erased:{hex id}                     a tombstone (no expiry)
//!     "{wrapping key id} {erased at, Unix ms}"
//! ```
//!
//! Tags are 128-bit HMACs of the tenant (and subject) under the key-name secret (see `key`), so
//! no id is ever written in clear. A record is created on the first write (`SET NX`, then read
//! back, so concurrent replicas agree on one key), and read on the first use in a process. A
//! record whose id has a tombstone (a copy restored from a snapshot taken before its erasure)
//! opens nothing, and is counted.
//!
//! # Values sealed under a data key
//!
//! ```text
//! 0x10 ‖ tenant tag (16) ‖ subject tag (16, all zero: none) ‖ data-key id (16) ‖ envelope v1
//! ```
//!
//! The inner envelope is sealed under the data key (key id 1 of a one-key keyring) with associated
//! data binding the namespace, the Redis key and the 49 header bytes, so neither the value nor its
//! header can be moved to another key, tenant, subject or data key. The first byte is neither an
//! envelope v1 (`0x01`) nor JSON, so a keyring-only reader refuses the value as unsupported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use sealcache_codec::{DefaultCipher, Keyring, SealContext, SecretKey, ValueCodec};
use sealcache_monitor::{CacheObserver, EventSource, SecurityEvent, SecurityEventType};

use crate::backend::SetCond;
use crate::cache::SealedCache;
use crate::error::{Error, Result};
use crate::scope::{DataKeyScope, hex};

/// The first byte of a value sealed under a data key.
pub(crate) const DATA_KEY_ENVELOPE: u8 = 0x10;
/// Bytes of a data-key id.
pub(crate) const ID_LEN: usize = 16;
/// The value header: marker, tenant tag, subject tag, id.
const HEADER_LEN: usize = 1 + 16 + 16 + ID_LEN;
/// The record's first bytes.
const RECORD_MAGIC: &[u8; 4] = b"SDK1";
/// Offset of the key id in an envelope v1 header (version, alg, flags, key id).
const ENVELOPE_KEY_ID_AT: usize = 3;
/// Most tombstones the status counts (a scan of each).
const STATUS_SCAN_LIMIT: usize = 100_000;
/// Reads outstanding at once when every data-key record or tombstone is read (retire check,
/// status): enough to fill a round trip, few enough for the breaker and the in-flight limits.
const READS_IN_FLIGHT: usize = 32;
/// Default number of unwrapped data keys held in process.
pub const DEFAULT_DATA_KEY_CACHE_ENTRIES: usize = 10_000;
/// Default bytes of unwrapped data keys held in process (weights).
pub const DEFAULT_DATA_KEY_CACHE_BYTES: usize = 16 << 20;
/// What one unwrapped key weighs (the codec, the cipher's key schedule, the map slot).
const ENTRY_WEIGHT: usize = 1024;
/// How long an unwrapped key is trusted when no invalidation channel tells this process of an
/// erasure elsewhere.
const UNCOORDINATED_FRESHNESS: Duration = Duration::from_secs(1);

/// A data key's id: 16 random bytes (named in hex).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DataKeyId(pub(crate) [u8; ID_LEN]);

impl std::fmt::Debug for DataKeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl DataKeyId {
    /// Lowercase hex.
    pub(crate) fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// An unwrapped data key, ready to seal and open.
pub(crate) struct DataKey {
    pub(crate) id: DataKeyId,
    /// The keyring key id the record was wrapped under when it was read.
    pub(crate) wrapping_key_id: u32,
    pub(crate) codec: ValueCodec,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("wrapping_key_id", &self.wrapping_key_id)
            .finish_non_exhaustive()
    }
}

/// The record key of `scope`'s data key.
pub(crate) fn record_key(namespace: &str, scope: &DataKeyScope) -> String {
    format!(
        "{namespace}:dk:{}:{}",
        scope.tenant_hex(),
        scope.subject_hex()
    )
}

/// The prefix an erasure publishes: every data key of the tenant (`subject: None` and
/// `whole_tenant`), or the one of `scope`.
pub(crate) fn erasure_prefix(namespace: &str, scope: &DataKeyScope, whole_tenant: bool) -> String {
    if whole_tenant {
        format!("{namespace}:dk:{}:", scope.tenant_hex())
    } else {
        format!("{}:", record_key(namespace, scope))
    }
}

/// The tombstone key of a data-key id.
pub(crate) fn tombstone_key(namespace: &str, id: &DataKeyId) -> String {
    format!("{namespace}:erased:{}", id.hex())
}

/// What a data-key prefix names (see [`erasure_prefix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PrefixTarget {
    tenant: [u8; 16],
    /// `None`: every data key of the tenant. `Some(None)`: the tenant's own key only.
    subject: Option<Option<[u8; 16]>>,
}

impl PrefixTarget {
    /// Whether `scope`'s data key is one of those named.
    pub(crate) fn covers(&self, scope: &DataKeyScope) -> bool {
        scope.tenant == self.tenant && self.subject.is_none_or(|s| s == scope.subject)
    }
}

fn parse_tag(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0_u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The data keys a prefix from [`erasure_prefix`] names (`None` for any other prefix).
pub(crate) fn parse_prefix(prefix: &str) -> Option<PrefixTarget> {
    let (_, rest) = prefix.split_once(":dk:")?;
    let rest = rest.strip_suffix(':')?;
    match rest.split_once(':') {
        None => Some(PrefixTarget {
            tenant: parse_tag(rest)?,
            subject: None,
        }),
        Some((tenant, "_")) => Some(PrefixTarget {
            tenant: parse_tag(tenant)?,
            subject: Some(None),
        }),
        Some((tenant, subject)) => Some(PrefixTarget {
            tenant: parse_tag(tenant)?,
            subject: Some(Some(parse_tag(subject)?)),
        }),
    }
}

/// The parts of a value sealed under a data key.
pub(crate) struct Parts<'a> {
    pub(crate) scope: DataKeyScope,
    pub(crate) id: DataKeyId,
    header: &'a [u8],
    pub(crate) inner: &'a [u8],
}

impl Parts<'_> {
    /// The context the inner envelope is bound to.
    pub(crate) fn context(&self, redis_key: &str) -> String {
        value_context(redis_key, self.header)
    }
}

/// `redis_key#hex(header)`, built in one allocation of its exact length (it is made on every open).
fn value_context(redis_key: &str, header: &[u8]) -> String {
    let mut context = String::with_capacity(redis_key.len() + 1 + header.len() * 2);
    context.push_str(redis_key);
    context.push('#');
    crate::scope::push_hex(&mut context, header);
    context
}

/// Splits a value sealed under a data key (`None`: any other value).
pub(crate) fn split(stored: &[u8]) -> Option<Parts<'_>> {
    if stored.first() != Some(&DATA_KEY_ENVELOPE) || stored.len() < HEADER_LEN {
        return None;
    }
    let (header, inner) = stored.split_at(HEADER_LEN);
    let tenant: [u8; 16] = header.get(1..17)?.try_into().ok()?;
    let subject: [u8; 16] = header.get(17..33)?.try_into().ok()?;
    let id: [u8; ID_LEN] = header.get(33..HEADER_LEN)?.try_into().ok()?;
    Some(Parts {
        scope: DataKeyScope::from_bytes(tenant, subject),
        id: DataKeyId(id),
        header,
        inner,
    })
}

/// A value sealed under a data key, with the figures the cache records.
pub(crate) struct SealedUnder {
    pub(crate) bytes: Vec<u8>,
    pub(crate) plain_len: usize,
    pub(crate) payload_len: usize,
}

/// Seals the concatenation of `plain`'s parts for `redis_key` under `key` (of `scope`).
pub(crate) fn seal(
    namespace: &str,
    redis_key: &str,
    scope: &DataKeyScope,
    key: &DataKey,
    plain: &[&[u8]],
) -> Result<SealedUnder> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.push(DATA_KEY_ENVELOPE);
    header.extend_from_slice(&scope.tenant);
    header.extend_from_slice(&scope.subject_bytes());
    header.extend_from_slice(&key.id.0);
    let context = value_context(redis_key, &header);
    let sealed = key
        .codec
        .seal_parts(&SealContext::new(namespace, &context), plain)
        .map_err(Error::Seal)?;
    let (plain_len, payload_len) = (sealed.plain_len(), sealed.payload_len());
    header.reserve_exact(sealed.as_bytes().len());
    header.extend_from_slice(sealed.as_bytes());
    Ok(SealedUnder {
        bytes: header,
        plain_len,
        payload_len,
    })
}

/// A codec over one data key, with the running codec's compression, dictionaries and cap.
fn data_key_codec(material: [u8; 32], like: &ValueCodec) -> ValueCodec {
    let keyring = Keyring::single(SecretKey::from_bytes(material));
    ValueCodec::with_parts(*like.compressor(), DefaultCipher::new(&keyring))
        .with_dictionaries(like.dictionaries().clone())
        .with_max_plaintext(like.max_plaintext())
}

/// A parsed record: its id and the wrapped key (an envelope v1).
struct Record<'a> {
    id: DataKeyId,
    wrapped: &'a [u8],
}

impl Record<'_> {
    fn parse(bytes: &[u8]) -> Option<Record<'_>> {
        let rest = bytes.strip_prefix(RECORD_MAGIC.as_slice())?;
        if rest.len() < ID_LEN {
            return None;
        }
        let (id, wrapped) = rest.split_at(ID_LEN);
        Some(Record {
            id: DataKeyId(id.try_into().ok()?),
            wrapped,
        })
    }

    /// The keyring key id the record is wrapped under (from the envelope header; public).
    fn wrapping_key_id(&self) -> Option<u32> {
        let bytes = self
            .wrapped
            .get(ENVELOPE_KEY_ID_AT..ENVELOPE_KEY_ID_AT + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }
}

fn record_context(record_key: &str, id: &DataKeyId) -> String {
    format!("{record_key}#{}", id.hex())
}

/// Wraps `material` (id `id`) for `record_key` under the keyring's primary key.
fn wrap(
    codec: &ValueCodec,
    namespace: &str,
    record_key: &str,
    id: &DataKeyId,
    material: &[u8; 32],
) -> Result<Vec<u8>> {
    let context = record_context(record_key, id);
    let sealed = codec
        .seal(&SealContext::new(namespace, &context), material)
        .map_err(Error::Seal)?;
    let mut out = Vec::with_capacity(RECORD_MAGIC.len() + ID_LEN + sealed.stored_len());
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&id.0);
    out.extend_from_slice(sealed.as_bytes());
    Ok(out)
}

/// An unwrapped data key held in process.
struct Slot {
    key: Arc<DataKey>,
    loaded: Instant,
}

/// The unwrapped data keys of this process: bounded in count and bytes (the oldest goes first),
/// each trusted for a while (see [`DataKeyCache::get`]), dropped by erasures (here and, through
/// the L1 invalidation channel, in every process) and by keyring reloads.
pub(crate) struct DataKeyCache {
    slots: Mutex<HashMap<DataKeyScope, Slot>>,
    /// Bumped by every removal: a key read from Redis before a removal is not cached after it.
    generation: AtomicU64,
    max_entries: usize,
}

impl std::fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl DataKeyCache {
    /// A cache of at most `entries` keys and `bytes` bytes (at least one key).
    pub(crate) fn new(entries: usize, bytes: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            max_entries: entries.min(bytes / ENTRY_WEIGHT).max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DataKeyScope, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key of `scope`, if held and loaded less than `fresh_for` ago.
    pub(crate) fn get(&self, scope: &DataKeyScope, fresh_for: Duration) -> Option<Arc<DataKey>> {
        let slots = self.lock();
        let slot = slots.get(scope)?;
        (slot.loaded.elapsed() < fresh_for).then(|| Arc::clone(&slot.key))
    }

    /// The generation now (taken before reading Redis).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Holds `key` for `scope`, unless something was removed since `generation`.
    pub(crate) fn insert(&self, scope: DataKeyScope, key: Arc<DataKey>, generation: u64) {
        let mut slots = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if !slots.contains_key(&scope) && slots.len() >= self.max_entries {
            let oldest = slots
                .iter()
                .min_by_key(|(_, slot)| slot.loaded)
                .map(|(scope, _)| *scope);
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        slots.insert(
            scope,
            Slot {
                key,
                loaded: Instant::now(),
            },
        );
    }

    /// Drops every key.
    pub(crate) fn clear(&self) {
        let mut slots = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        slots.clear();
    }

    /// Drops the keys a removed prefix names: an erasure's (see [`erasure_prefix`]), or all of
    /// them for the empty prefix and a whole namespace (`{namespace}:`, a clear); an operation's
    /// prefix names none.
    pub(crate) fn remove_prefix(&self, prefix: &str) {
        if let Some(target) = parse_prefix(prefix) {
            let mut slots = self.lock();
            self.generation.fetch_add(1, Ordering::AcqRel);
            slots.retain(|scope, _| !target.covers(scope));
        } else if prefix.is_empty() || prefix.find(':') == Some(prefix.len() - 1) {
            self.clear();
        }
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What reading a record found.
enum Loaded {
    /// No record.
    Missing,
    /// A record that opened.
    Key(DataKey),
    /// A record that must not be used (erased, malformed, or failing to open): counted already.
    Refused {
        /// Whether the record may be deleted and replaced by a new key: erased or broken. A
        /// record wrapped under a keyring key this process does not hold (another replica's newer
        /// keyring) is not: deleting it would destroy a valid key for every replica.
        replaceable: bool,
    },
}

/// What an erasure destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Erasure {
    /// The id of the erased data key (of the subject, or of the tenant itself), in hex; `None`
    /// when there was none (nothing was ever stored under it, or it was erased already).
    pub data_key_id: Option<String>,
    /// Every data key destroyed (a tenant's erasure destroys its subjects' too).
    pub data_keys_destroyed: u64,
    /// When.
    pub erased_at: std::time::SystemTime,
}

impl SealedCache {
    /// How long an unwrapped data key is trusted: while the invalidation channel is confirmed, as
    /// long as an L1 copy (an erasure elsewhere reaches this process through it); otherwise one
    /// second.
    fn data_key_freshness(&self) -> Duration {
        match &self.inner.coherence {
            Some(c) if c.is_subscribed() => self.inner.options.l1_max_ttl,
            _ => UNCOORDINATED_FRESHNESS,
        }
    }

    /// Counts a data key that cannot be used.
    fn data_key_event(
        &self,
        observer: &dyn CacheObserver,
        kind: SecurityEventType,
        why: &str,
        scope: &DataKeyScope,
    ) {
        observer.security_event(SecurityEvent::new(kind).source(EventSource::Client).detail(
            format!(
                "{why}; tenant #{}, subject #{}",
                &scope.tenant_hex()[..8],
                &scope.subject_hex()[..scope.subject_hex().len().min(8)]
            ),
        ));
    }

    /// Reads and opens `scope`'s record.
    async fn load_data_key(
        &self,
        scope: &DataKeyScope,
        observer: &dyn CacheObserver,
    ) -> Result<Loaded> {
        let inner = &self.inner;
        let namespace = inner.keys.namespace();
        let record_key = record_key(namespace, scope);
        let Some(bytes) = inner.backend.get(&record_key).await? else {
            return Ok(Loaded::Missing);
        };
        let Some(record) = Record::parse(&bytes) else {
            self.data_key_event(
                observer,
                SecurityEventType::BadEnvelope,
                "a data-key record is malformed",
                scope,
            );
            return Ok(Loaded::Refused { replaceable: true });
        };
        if inner
            .backend
            .get(&tombstone_key(namespace, &record.id))
            .await?
            .is_some()
        {
            self.data_key_event(
                observer,
                SecurityEventType::UnknownKeyId,
                "a data-key record whose key was erased is back in Redis (restored from a snapshot?) and was refused",
                scope,
            );
            return Ok(Loaded::Refused { replaceable: true });
        }
        let active = inner.keyring.current();
        let context = record_context(&record_key, &record.id);
        match active
            .codec
            .open(&SealContext::new(namespace, &context), record.wrapped)
        {
            Ok(opened) => {
                let Ok(material) = <[u8; 32]>::try_from(opened.as_bytes()) else {
                    self.data_key_event(
                        observer,
                        SecurityEventType::BadEnvelope,
                        "a data-key record holds no 256-bit key",
                        scope,
                    );
                    return Ok(Loaded::Refused { replaceable: true });
                };
                let material = zeroize::Zeroizing::new(material);
                Ok(Loaded::Key(DataKey {
                    id: record.id,
                    wrapping_key_id: record.wrapping_key_id().unwrap_or(0),
                    codec: data_key_codec(*material, &active.codec),
                }))
            }
            Err(err) => {
                let kind = crate::cache::stored_value_event(err.kind());
                self.data_key_event(
                    observer,
                    kind,
                    &format!("a data-key record failed to open ({err})"),
                    scope,
                );
                Ok(Loaded::Refused {
                    replaceable: kind != SecurityEventType::UnknownKeyId,
                })
            }
        }
    }

    /// The data key a value of `scope` is sealed under: held, read, or created (race-safe: `SET
    /// NX`, then whatever is there is read back).
    ///
    /// # Errors
    /// [`Error::DataKeyUnavailable`] (counted when a record refused to open), [`Error::Seal`]
    /// (randomness), and Redis errors.
    pub(crate) async fn data_key_for_seal(&self, scope: &DataKeyScope) -> Result<Arc<DataKey>> {
        let cache = &self.inner.data_keys;
        if let Some(key) = cache.get(scope, self.data_key_freshness()) {
            return Ok(key);
        }
        let observer = &*self.inner.observer;
        for _ in 0..2 {
            let generation = cache.generation();
            match self.load_data_key(scope, observer).await? {
                Loaded::Key(key) => {
                    let key = Arc::new(key);
                    cache.insert(*scope, Arc::clone(&key), generation);
                    return Ok(key);
                }
                Loaded::Refused { replaceable: false } => return Err(Error::DataKeyUnavailable),
                Loaded::Refused { replaceable: true } => {
                    // An erased key restored from a snapshot (or a broken record) must not block
                    // the tenant or subject for good: it goes, and a new key is made.
                    let record = record_key(self.inner.keys.namespace(), scope);
                    self.inner.backend.unlink(&[record]).await?;
                }
                Loaded::Missing => {}
            }
            if let Some(key) = self.create_data_key(scope).await? {
                cache.insert(*scope, Arc::clone(&key), generation);
                return Ok(key);
            }
        }
        Err(Error::DataKeyUnavailable)
    }

    /// Creates `scope`'s data key unless a record exists (`None`: one does; read it instead).
    async fn create_data_key(&self, scope: &DataKeyScope) -> Result<Option<Arc<DataKey>>> {
        let inner = &self.inner;
        let namespace = inner.keys.namespace();
        // Both from the OS generator (through the codec's key generation).
        let key = SecretKey::generate().map_err(Error::Seal)?;
        let material = zeroize::Zeroizing::new(*key.expose_secret());
        let id_source = SecretKey::generate().map_err(Error::Seal)?;
        let mut id = [0_u8; ID_LEN];
        id.copy_from_slice(&id_source.expose_secret()[..ID_LEN]);
        let id = DataKeyId(id);
        let record_key = record_key(namespace, scope);
        let active = inner.keyring.current();
        let record = wrap(&active.codec, namespace, &record_key, &id, &material)?;
        if !inner
            .backend
            .set_cond(&record_key, &record, SetCond::Absent)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(Arc::new(DataKey {
            id,
            wrapping_key_id: active.primary_key_id,
            codec: data_key_codec(*material, &active.codec),
        })))
    }

    /// The data key a value names, if it is `scope`'s current key (`None`: erased, replaced, or
    /// never stored here; counted as `unknown_key_id`).
    pub(crate) async fn data_key_for_open(
        &self,
        scope: &DataKeyScope,
        id: &DataKeyId,
        observer: &dyn CacheObserver,
    ) -> Option<Arc<DataKey>> {
        let cache = &self.inner.data_keys;
        if let Some(key) = cache.get(scope, self.data_key_freshness())
            && key.id == *id
        {
            return Some(key);
        }
        let generation = cache.generation();
        match self.load_data_key(scope, observer).await {
            Ok(Loaded::Key(key)) if key.id == *id => {
                let key = Arc::new(key);
                cache.insert(*scope, Arc::clone(&key), generation);
                Some(key)
            }
            Ok(Loaded::Key(key)) => {
                cache.insert(*scope, Arc::new(key), generation);
                self.data_key_event(
                    observer,
                    SecurityEventType::UnknownKeyId,
                    "a value names a data key that is no longer this owner's (erased and replaced)",
                    scope,
                );
                None
            }
            Ok(Loaded::Missing) => {
                self.data_key_event(
                    observer,
                    SecurityEventType::UnknownKeyId,
                    "a value names a data key that does not exist (erased, or cleared)",
                    scope,
                );
                None
            }
            Ok(Loaded::Refused { .. }) | Err(_) => None,
        }
    }

    /// Unwrapped data keys held in this process.
    #[must_use]
    pub fn data_keys_held(&self) -> usize {
        self.inner.data_keys.len()
    }

    /// Destroys `scope`'s data key (and, with `whole_tenant`, every data key of its tenant):
    /// a tombstone for each id first (so a restored copy of the record opens nothing), then the
    /// record; L1 copies and unwrapped keys are dropped here and, through the invalidation
    /// channel, in every process. Counted as `data_erased`, with one audit record (keyed tags).
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::Redis`], [`Error::InvalidationNotPublished`] (the keys
    /// are destroyed, but other processes could not be told: they stop serving L1).
    pub(crate) async fn erase_data_keys(
        &self,
        scope: &DataKeyScope,
        whole_tenant: bool,
    ) -> Result<Erasure> {
        let inner = &self.inner;
        let namespace = inner.keys.namespace();
        let own = record_key(namespace, scope);
        let records = if whole_tenant {
            let mut found = inner
                .backend
                .scan_keys(
                    &format!("{namespace}:dk:{}:*", scope.tenant_hex()),
                    usize::MAX,
                )
                .await?;
            if !found.contains(&own) {
                found.push(own.clone());
            }
            // In a fixed order (SCAN's is arbitrary): an erasure that fails part-way has
            // destroyed a predictable part, and one run again goes the same way.
            found.sort_unstable();
            found
        } else {
            vec![own.clone()]
        };
        let erased_at = std::time::SystemTime::now();
        let erased_ms = erased_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut data_key_id = None;
        let mut destroyed = 0_u64;
        // A failure part-way (Redis gone after the first record) still drops what was destroyed
        // here and everywhere, and is audited, before the error is returned: no process keeps
        // serving the plaintext of an erased key from L1, and no erasure goes unrecorded.
        let destroying: Result<()> = async {
            for record_key in &records {
                let Some(bytes) = inner.backend.get(record_key).await? else {
                    continue;
                };
                if let Some(record) = Record::parse(&bytes) {
                    let tombstone =
                        format!("{} {erased_ms}", record.wrapping_key_id().unwrap_or(0));
                    inner
                        .backend
                        .set_cond(
                            &tombstone_key(namespace, &record.id),
                            tombstone.as_bytes(),
                            SetCond::Always,
                        )
                        .await?;
                    if *record_key == own {
                        data_key_id = Some(record.id.hex());
                    }
                }
                destroyed += inner
                    .backend
                    .unlink(std::slice::from_ref(record_key))
                    .await?;
            }
            Ok(())
        }
        .await;
        let prefix = erasure_prefix(namespace, scope, whole_tenant);
        // Here first (L1 copies and unwrapped keys), then everywhere else.
        inner.data_keys.remove_prefix(&prefix);
        self.drop_l1_prefix(&prefix);
        let published = self.publish_prefix(&prefix).await;
        self.inner.observer.security_event(
            SecurityEvent::new(SecurityEventType::DataErased)
                .source(EventSource::Client)
                .outcome(sealcache_monitor::Outcome::Allowed)
                .detail(format!(
                    "{} erased{}: tenant #{}{}, {destroyed} data key(s) destroyed",
                    if whole_tenant { "tenant" } else { "subject" },
                    if destroying.is_err() {
                        " in part (Redis failed part-way; run the erasure again)"
                    } else {
                        ""
                    },
                    &scope.tenant_hex()[..8],
                    if whole_tenant {
                        String::new()
                    } else {
                        format!(", subject #{}", &scope.subject_hex()[..8])
                    },
                )),
        );
        tracing::info!(
            target: "sealcache::audit",
            action = if whole_tenant { "erase_tenant" } else { "erase_subject" },
            tenant_tag = %scope.tenant_hex(),
            subject_tag = %if whole_tenant { "*".to_owned() } else { scope.subject_hex() },
            data_key_id = data_key_id.as_deref().unwrap_or("none"),
            data_keys_destroyed = destroyed,
            erased_at_ms = erased_ms,
            complete = destroying.is_ok(),
            "data erased"
        );
        destroying?;
        published?;
        Ok(Erasure {
            data_key_id,
            data_keys_destroyed: destroyed,
            erased_at,
        })
    }

    /// Re-wraps every data-key record not wrapped under the keyring's primary key (after a
    /// promotion, so that retiring the old key leaves no record only it opens); how many. An
    /// erased record is never brought back: one whose id has a tombstone (restored from a
    /// snapshot) is deleted instead of re-wrapped, and one erased while it was being re-wrapped is
    /// deleted again after the write (`SET XX` alone could write it back over the deletion).
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::Redis`].
    pub async fn rewrap_data_keys(&self) -> Result<u64> {
        let inner = &self.inner;
        let namespace = inner.keys.namespace();
        let records = inner
            .backend
            .scan_keys(&format!("{namespace}:dk:*"), usize::MAX)
            .await?;
        // Records are re-wrapped with up to `READS_IN_FLIGHT` outstanding (one after the other,
        // four round trips each, a large deployment outlasted a rotation stage).
        // Every record in flight is finished even after one fails (a re-wrap dropped between its
        // write and its tombstone check could leave an erased key written back), then the first
        // error is returned.
        let mut rewrapped = 0;
        let mut failed = None;
        let mut done = futures_util::stream::iter(records)
            .map(|record_key| self.rewrap_one(record_key))
            .buffer_unordered(READS_IN_FLIGHT);
        while let Some(one) = done.next().await {
            match one {
                Ok(one) => rewrapped += u64::from(one),
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
        }
        if let Some(err) = failed {
            return Err(err);
        }
        if rewrapped > 0 {
            tracing::info!(
                target: "sealcache::security",
                rewrapped,
                "data keys re-wrapped under the primary key"
            );
        }
        Ok(rewrapped)
    }

    /// Re-wraps the record at `record_key` under the primary key (`true`), or leaves it (`false`:
    /// gone, unreadable, already under the primary, or erased: an erased record is deleted).
    async fn rewrap_one(&self, record_key: String) -> Result<bool> {
        let inner = &self.inner;
        let namespace = inner.keys.namespace();
        let Some(bytes) = inner.backend.get(&record_key).await? else {
            return Ok(false);
        };
        let Some(record) = Record::parse(&bytes) else {
            return Ok(false);
        };
        let tombstone = tombstone_key(namespace, &record.id);
        if inner.backend.get(&tombstone).await?.is_some() {
            inner
                .backend
                .unlink(std::slice::from_ref(&record_key))
                .await?;
            return Ok(false);
        }
        let active = inner.keyring.current();
        if record.wrapping_key_id() == Some(active.primary_key_id) {
            return Ok(false);
        }
        let context = record_context(&record_key, &record.id);
        let Ok(opened) = active
            .codec
            .open(&SealContext::new(namespace, &context), record.wrapped)
        else {
            return Ok(false);
        };
        let Ok(material) = <[u8; 32]>::try_from(opened.as_bytes()) else {
            return Ok(false);
        };
        let material = zeroize::Zeroizing::new(material);
        let again = wrap(&active.codec, namespace, &record_key, &record.id, &material)?;
        if !inner
            .backend
            .set_cond(&record_key, &again, SetCond::Present)
            .await?
        {
            return Ok(false);
        }
        // Erased between the read and the write: the erasure deleted the record and wrote the
        // tombstone first, so the tombstone is there now and the record written back goes.
        if inner.backend.get(&tombstone).await?.is_some() {
            inner
                .backend
                .unlink(std::slice::from_ref(&record_key))
                .await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Before a keyring that drops key ids is applied (a `retire`): re-wraps under the running
    /// primary every data-key record still wrapped under a key it drops, then checks that no
    /// record the running keyring opens is left under one. Applying such a keyring anyway would
    /// destroy those tenants' and subjects' data keys (every one of their entries a miss, for
    /// good); a record no running key opens is lost already and does not hold it up.
    ///
    /// # Errors
    /// [`Error::KeyringRefused`] with [`crate::KeyringRefusal::WrapsDataKeys`], or
    /// [`crate::KeyringRefusal::DataKeysUnchecked`] when Redis cannot be asked (nothing is
    /// dropped on a guess).
    pub async fn prepare_key_removal(&self, keyring: &Keyring) -> Result<()> {
        let inner = &self.inner;
        let active = inner.keyring.current();
        let mut kept = keyring.decrypt_only_ids();
        kept.push(keyring.primary_id());
        let mut dropped: Vec<u32> = active
            .decrypt_only_key_ids
            .iter()
            .chain(std::iter::once(&active.primary_key_id))
            .filter(|id| !kept.contains(id))
            .copied()
            .collect();
        dropped.sort_unstable();
        let Some(&first) = dropped.first() else {
            return Ok(());
        };
        let unchecked = || Error::KeyringRefused {
            reason: crate::error::KeyringRefusal::DataKeysUnchecked { key_id: first },
        };
        if self.rewrap_data_keys().await.is_err() {
            return Err(unchecked());
        }
        let namespace = inner.keys.namespace();
        let records = inner
            .backend
            .scan_keys(&format!("{namespace}:dk:*"), usize::MAX)
            .await
            .map_err(|_| unchecked())?;
        // Each record is read (and, when it is wrapped under a dropped key, its tombstone) with
        // up to `READS_IN_FLIGHT` reads outstanding: one after the other, tens of thousands of
        // subjects on a distant Redis outlasted the rotation stage's confirmation.
        let verdicts: Vec<std::result::Result<Option<u32>, ()>> =
            futures_util::stream::iter(records)
                .map(|record_key| {
                    let dropped = &dropped;
                    let active = &active;
                    async move {
                        let bytes = match inner.backend.get(&record_key).await {
                            Ok(Some(bytes)) => bytes,
                            Ok(None) => return Ok(None),
                            Err(_) => return Err(()),
                        };
                        let Some(record) = Record::parse(&bytes) else {
                            return Ok(None);
                        };
                        let Some(id) = record.wrapping_key_id().filter(|id| dropped.contains(id))
                        else {
                            return Ok(None);
                        };
                        // Only a record the re-wrap could have kept (one that opens to a 256-bit
                        // key) holds the retire up; an erased one (tombstone) is deleted by the
                        // next re-wrap anyway.
                        let context = record_context(&record_key, &record.id);
                        let usable = active
                            .codec
                            .open(&SealContext::new(namespace, &context), record.wrapped)
                            .is_ok_and(|opened| opened.as_bytes().len() == 32);
                        let erased = matches!(
                            inner
                                .backend
                                .get(&tombstone_key(namespace, &record.id))
                                .await,
                            Ok(Some(_))
                        );
                        Ok((usable && !erased).then_some(id))
                    }
                })
                .buffer_unordered(READS_IN_FLIGHT)
                .collect()
                .await;
        let mut left: HashMap<u32, u64> = HashMap::new();
        for verdict in verdicts {
            match verdict {
                Ok(Some(id)) => *left.entry(id).or_default() += 1,
                Ok(None) => {}
                Err(()) => return Err(unchecked()),
            }
        }
        match left.into_iter().min() {
            Some((key_id, records)) => Err(Error::KeyringRefused {
                reason: crate::error::KeyringRefusal::WrapsDataKeys { key_id, records },
            }),
            None => Ok(()),
        }
    }

    /// Erasures whose tombstone names a wrapping key still in the keyring (a restored snapshot
    /// of the record could still be unwrapped by it, were the tombstone lost too); `None` when
    /// Redis could not be asked.
    pub async fn pending_erasures(&self) -> Option<u64> {
        let inner = &self.inner;
        let namespace = inner.keys.namespace();
        let tombstones = inner
            .backend
            .scan_keys(&format!("{namespace}:erased:*"), STATUS_SCAN_LIMIT)
            .await
            .ok()?;
        let active = inner.keyring.current();
        let values: Vec<Option<Vec<u8>>> = futures_util::stream::iter(tombstones)
            .map(|key| async move { inner.backend.get(&key).await.ok().flatten() })
            .buffer_unordered(READS_IN_FLIGHT)
            .collect()
            .await;
        let mut pending = 0;
        for value in values.into_iter().flatten() {
            let wrapping: Option<u32> = std::str::from_utf8(&value)
                .ok()
                .and_then(|t| t.split(' ').next())
                .and_then(|id| id.parse().ok());
            if let Some(id) = wrapping
                && (id == active.primary_key_id || active.decrypt_only_key_ids.contains(&id))
            {
                pending += 1;
            }
        }
        Some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(subject: Option<[u8; 16]>) -> DataKeyScope {
        DataKeyScope {
            tenant: [7; 16],
            subject,
        }
    }

    #[test]
    fn a_value_context_is_its_key_a_hash_and_the_header_in_lowercase_hex() {
        // Stored values are bound to this exact text: it must never change.
        assert_eq!(
            value_context("ns:ai:v1:ab", &[0x00, 0x0f, 0xa5, 0xff]),
            "ns:ai:v1:ab#000fa5ff"
        );
        let header: Vec<u8> = (0..=u8::MAX).collect();
        let context = value_context("k", &header);
        let hex: String = header.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(context, format!("k#{hex}"));
        assert_eq!(
            context.len(),
            context.capacity(),
            "one allocation of the exact length"
        );
        assert_eq!(value_context("", &[]), "#");
    }

    #[test]
    fn erasure_prefixes_name_exactly_their_keys() {
        let tenant_only = scope(None);
        let ann = scope(Some([1; 16]));
        let bob = scope(Some([2; 16]));
        let other_tenant = DataKeyScope {
            tenant: [8; 16],
            subject: Some([1; 16]),
        };
        let ann_prefix = parse_prefix(&erasure_prefix("ns", &ann, false)).unwrap();
        assert!(ann_prefix.covers(&ann));
        assert!(!ann_prefix.covers(&bob) && !ann_prefix.covers(&tenant_only));
        assert!(!ann_prefix.covers(&other_tenant));
        let own = parse_prefix(&erasure_prefix("ns", &tenant_only, false)).unwrap();
        assert!(own.covers(&tenant_only) && !own.covers(&ann));
        let whole = parse_prefix(&erasure_prefix("ns", &tenant_only, true)).unwrap();
        assert!(whole.covers(&tenant_only) && whole.covers(&ann) && whole.covers(&bob));
        assert!(!whole.covers(&other_tenant));
        for other in ["", "ns:", "ns:v3:qa:", "ns:dk:zz:", "ns:dk:"] {
            assert!(parse_prefix(other).is_none(), "{other}");
        }
    }

    #[test]
    fn values_and_records_split_back() {
        let keyring = Keyring::generate().unwrap();
        let codec = ValueCodec::new(&keyring);
        let key = DataKey {
            id: DataKeyId([3; 16]),
            wrapping_key_id: 1,
            codec: data_key_codec([9; 32], &codec),
        };
        let ann = scope(Some([1; 16]));
        let sealed = seal("ns", "ns:v3:qa:00", &ann, &key, &[&b"ans"[..], &b"wer"[..]]).unwrap();
        let parts = split(&sealed.bytes).unwrap();
        assert_eq!(parts.scope, ann);
        assert_eq!(parts.id, key.id);
        let ctx = parts.context("ns:v3:qa:00");
        let opened = key
            .codec
            .open(&SealContext::new("ns", &ctx), parts.inner)
            .unwrap();
        assert_eq!(opened.as_bytes(), b"answer");
        // Under another key name, or with the header changed, nothing opens.
        let moved = parts.context("ns:v3:qa:01");
        assert!(
            key.codec
                .open(&SealContext::new("ns", &moved), parts.inner)
                .is_err()
        );
        let mut tampered = sealed.bytes.clone();
        tampered[20] ^= 1;
        let parts = split(&tampered).unwrap();
        let ctx = parts.context("ns:v3:qa:00");
        assert!(
            key.codec
                .open(&SealContext::new("ns", &ctx), parts.inner)
                .is_err()
        );
        // A keyring-only reader refuses it.
        assert!(
            codec
                .open(&SealContext::new("ns", "ns:v3:qa:00"), &sealed.bytes)
                .is_err()
        );
        // Records.
        let rk = record_key("ns", &ann);
        let record = wrap(&codec, "ns", &rk, &key.id, &[5; 32]).unwrap();
        let parsed = Record::parse(&record).unwrap();
        assert_eq!(parsed.id, key.id);
        assert_eq!(parsed.wrapping_key_id(), Some(keyring.primary_id()));
        let ctx = record_context(&rk, &parsed.id);
        let material = codec
            .open(&SealContext::new("ns", &ctx), parsed.wrapped)
            .unwrap();
        assert_eq!(material.as_bytes(), &[5; 32]);
        // Bound to its record key and id.
        let other = record_context(&record_key("ns", &scope(Some([2; 16]))), &parsed.id);
        assert!(
            codec
                .open(&SealContext::new("ns", &other), parsed.wrapped)
                .is_err()
        );
    }

    #[test]
    fn the_cache_is_bounded_and_drops_what_erasures_name() {
        let keyring = Keyring::generate().unwrap();
        let codec = ValueCodec::new(&keyring);
        let key = |n: u8| {
            Arc::new(DataKey {
                id: DataKeyId([n; 16]),
                wrapping_key_id: 1,
                codec: data_key_codec([n; 32], &codec),
            })
        };
        let cache = DataKeyCache::new(2, 1 << 20);
        let fresh = Duration::from_secs(60);
        let (a, b, c) = (scope(Some([1; 16])), scope(Some([2; 16])), scope(None));
        cache.insert(a, key(1), cache.generation());
        std::thread::sleep(Duration::from_millis(2));
        cache.insert(b, key(2), cache.generation());
        cache.insert(c, key(3), cache.generation());
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&a, fresh).is_none(), "the oldest went");
        assert!(cache.get(&b, Duration::ZERO).is_none(), "stale");
        // An insert that raced a removal is dropped.
        let before = cache.generation();
        cache.remove_prefix(&erasure_prefix("ns", &b, false));
        assert!(cache.get(&b, fresh).is_none() && cache.get(&c, fresh).is_some());
        cache.insert(b, key(2), before);
        assert!(cache.get(&b, fresh).is_none());
        // An operation's prefix drops nothing, the namespace's everything.
        cache.remove_prefix("ns:v3:qa:");
        assert_eq!(cache.len(), 1);
        cache.remove_prefix("ns:");
        assert_eq!(cache.len(), 0);
        // Bytes bound the count too.
        assert_eq!(DataKeyCache::new(10_000, 4 * ENTRY_WEIGHT).max_entries, 4);
    }
}
