//! Leases: one computation per entry across every process on one Redis (or Redis Cluster).
//!
//! A miss takes a short lease before computing: `SET {namespace}:lease:{<entry key>} <secret> NX PX
//! ttl`, pipelined with a `GET` of the entry in the same round trip. The braces are a Redis Cluster
//! hash tag: the lease hashes to the entry's own slot, so both commands go to one node, and the key
//! stays inside the namespace the ACL grants (`~namespace:*`). Then:
//!
//! * the **holder** computes, stores the entry, and releases the lease; inside the cache it renews
//!   the lease (`PEXPIRE`) every third of its TTL while it computes, so the TTL bounds how long the
//!   others wait after a holder dies, not how long a computation may take;
//! * every **other caller** (in any process) waits: it looks for the entry when the coherence
//!   channel says the entry was stored or the lease released (see `wake`; a holder's release
//!   publishes a wake-up), and at the latest every poll interval (the fallback: no channel, a lost
//!   message, a holder that died), and takes the lease over if it vanished (the holder released it
//!   without storing, was cancelled, or died and the lease expired), bounded by its wait timeout;
//! * if Redis cannot be reached, nobody waits: the computation runs locally, as without leases.
//!
//! Ordering: a holder stores the entry **before** it releases the lease, and a look sets the lease
//! **before** it reads the entry (one pipeline, executed in order). So a caller that gets the lease
//! and no entry knows that no earlier holder finished: an entry stored by a holder is seen by every
//! later look.
//!
//! **Token-checked release without scripts.** The application's ACL user may not run `EVAL` (see
//! `sealcache-config-gen`'s `APP_COMMANDS`), so a release is `GET` + `PTTL` (one round trip),
//! compare in constant time, then `UNLINK`. Between the two round trips the lease could expire and be
//! taken by another holder, whose lease the `UNLINK` would then remove. The release therefore skips
//! the `UNLINK` when the lease has less than twice the measured round trip (plus 2 ms) left: it is
//! about to expire anyway. What remains is a holder stalled for longer than its remaining TTL
//! between two round trips; its only effect is that a third caller may start a duplicate
//! computation, never that a wrong answer is served (every answer is a complete, sealed entry of
//! the same request). Renewal (`GET`, compare, `PEXPIRE`) has the same bounded race.
//!
//! **HTTP tokens.** A lease handed to an HTTP client is named by a token that lets the server find
//! the lease key without any state: `{operation}.{64 hex digest}.{32 hex secret}`. The operation
//! and digest are the entry key's own (already visible in Redis: an HMAC, not request text), and the
//! server rebuilds the key from them with its own namespace after checking each part strictly, so a
//! token can name no key outside the namespace. The 128-bit secret is the capability: a release
//! or completion only touches the lease when the secret matches what Redis holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealcache_monitor::NoopObserver;

use crate::backend::LeaseProbe;
use crate::cache::{Cached, Looked, SealedCache};
use crate::error::{Error, Result};
use crate::key::is_digest;
use crate::stored_value::now_ms;
use crate::wake::pause;

/// Bytes of a lease secret (128 bits).
const SECRET_BYTES: usize = 16;

/// The lease key of `entry_key`, in its slot (`None` for a key holding `{` or `}`: its hash tag
/// could not be reproduced, so such keys get no cross-process lease, only in-process
/// single-flight).
pub(crate) fn lease_key(namespace: &str, entry_key: &str) -> Option<String> {
    if entry_key.contains(['{', '}']) {
        return None;
    }
    Some(format!("{namespace}:lease:{{{entry_key}}}"))
}

/// The entry key a lease key (from [`lease_key`]) leases.
pub(crate) fn entry_of_lease(lease_key: &str) -> Option<&str> {
    let (_, tagged) = lease_key.split_once(":lease:{")?;
    tagged.strip_suffix('}')
}

/// A fresh secret from the OS generator, as 32 lowercase hex digits (`None` if it failed: then no
/// lease is taken, and the computation runs locally).
fn random_secret() -> Option<String> {
    use rand::TryRng as _;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::SysRng.try_fill_bytes(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Hex digits of a bound secret's random part (the rest is its [`crate::key::KeyScheme::lease_tag`]).
const NONCE_HEX: usize = SECRET_BYTES;

/// Compares a secret with what Redis holds, in time independent of where they differ.
fn same_secret(stored: &[u8], secret: &[u8]) -> bool {
    if stored.len() != secret.len() {
        // The length is public: every secret is 32 hex digits.
        return false;
    }
    stored
        .iter()
        .zip(secret)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// A lease token for HTTP clients: names an AI entry (operation and digest) and carries the
/// lease's secret. Its text form is `{operation}.{64 hex}.{32 hex}`.
///
/// `Debug` shows the operation only: the token is a capability and never belongs in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseToken {
    text: String,
    /// Length of the operation (the text is `operation.digest.secret`).
    operation_len: usize,
}

impl std::fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseToken")
            .field("operation", &self.operation())
            .finish_non_exhaustive()
    }
}

impl LeaseToken {
    /// Parses a token strictly: an operation name (`a-z 0-9 _ -`, 1 to 64), a dot, 64 lowercase
    /// hex digits, a dot, 32 lowercase hex digits; nothing else.
    ///
    /// # Errors
    /// [`Error::InvalidLeaseToken`].
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.split('.');
        let (Some(operation), Some(digest), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::InvalidLeaseToken);
        };
        let secret_ok = secret.len() == 2 * SECRET_BYTES
            && secret
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if crate::key::validate_operation(operation).is_err() || !is_digest(digest) || !secret_ok {
            return Err(Error::InvalidLeaseToken);
        }
        Ok(Self {
            text: text.to_owned(),
            operation_len: operation.len(),
        })
    }

    fn new(operation: &str, digest: &str, secret: &str) -> Self {
        Self {
            text: format!("{operation}.{digest}.{secret}"),
            operation_len: operation.len(),
        }
    }

    /// The token's text (give it to the client; never log it).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The operation of the leased entry.
    #[must_use]
    pub fn operation(&self) -> &str {
        &self.text[..self.operation_len]
    }

    fn digest(&self) -> &str {
        &self.text[self.operation_len + 1..self.operation_len + 65]
    }

    pub(crate) fn secret(&self) -> &str {
        &self.text[self.operation_len + 66..]
    }
}

/// A lease this caller holds: compute, store with the token, or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    token: LeaseToken,
    ttl: Duration,
}

impl Lease {
    /// The token naming the lease.
    #[must_use]
    pub fn token(&self) -> &LeaseToken {
        &self.token
    }

    /// How long the lease lives from when it was taken (not renewed by the cache: store or
    /// release before then).
    #[must_use]
    pub fn expires_in(&self) -> Duration {
        self.ttl
    }
}

/// A [`Lease`] kept while its holder computes ([`crate::AiResponseCache::hold_lease`]): renewed
/// every third of its TTL (so the TTL bounds how long the others wait after this process dies,
/// not how long the computation may take), and released when dropped (a cancelled computation
/// lets a waiter take over at once) or by [`HeldLease::release`] after the store. Renewal and the
/// release on drop run on the Tokio runtime current when it was made; without one the lease is
/// neither renewed nor released on drop (it expires).
#[derive(Debug)]
pub struct HeldLease {
    holding: Holding,
}

impl HeldLease {
    /// Releases the lease now (store the entry first); whether this holder still held it.
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::Redis`].
    pub async fn release(self) -> Result<bool> {
        let mut holding = self.holding;
        if let Some(renewer) = holding.renewer.take() {
            renewer.abort();
        }
        // Taken out: `holding`'s drop then has nothing left to release.
        let lease_key = std::mem::take(&mut holding.lease_key);
        let secret = std::mem::take(&mut holding.secret);
        holding
            .cache
            .release_lease(&lease_key, secret.as_bytes())
            .await
    }
}

impl std::fmt::Debug for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret (a lease capability).
        f.debug_struct("Holding").finish_non_exhaustive()
    }
}

impl SealedCache {
    /// Keeps `lease` (see [`HeldLease`]).
    ///
    /// # Errors
    /// [`Error::InvalidLeaseToken`].
    pub(crate) fn hold_lease(&self, lease: &Lease) -> Result<HeldLease> {
        let lease_key = self.token_lease_key(&lease.token, None)?;
        Ok(HeldLease {
            holding: Holding::start(self, lease_key, lease.token.secret().to_owned(), lease.ttl),
        })
    }
}

/// Per-request cache control and lease options of [`crate::AiResponseCache::lookup_or_lease`].
///
/// The meanings mirror HTTP's `Cache-Control` request directives and LiteLLM's per-request cache
/// controls (see `docs/cache.md`, "Per-request cache control").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LookupOptions {
    /// Serve only an entry stored at most this long ago (HTTP `max-age`, LiteLLM `s-maxage`); an
    /// entry of unknown age (stored before the store time was recorded) is a miss.
    pub max_age: Option<Duration>,
    /// Skip the lookup (HTTP `no-cache`, LiteLLM `no-cache`): the caller computes, or waits for a
    /// holder's entry stored after the call began.
    pub no_cache: bool,
    /// Take a lease of this TTL on a miss, when nobody holds one.
    pub lease: Option<Duration>,
    /// How long to wait for another holder's entry before answering a miss.
    pub wait: Duration,
}

impl LookupOptions {
    /// Sets `max_age`.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Sets `no_cache`.
    #[must_use]
    pub fn no_cache(mut self, on: bool) -> Self {
        self.no_cache = on;
        self
    }

    /// Asks for a lease of `ttl` on a miss.
    #[must_use]
    pub fn lease(mut self, ttl: Duration) -> Self {
        self.lease = Some(ttl);
        self
    }

    /// Sets how long to wait for another holder's entry.
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

/// What [`crate::AiResponseCache::lookup_or_lease`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LookupOutcome {
    /// A cached answer (found at once, or stored by the holder this caller waited for).
    Hit(Cached),
    /// A miss, and this caller holds the lease: compute, then store with its token (or release
    /// it).
    Lease(Lease),
    /// A miss without a lease: none was asked for, another caller holds it and did not finish
    /// within the wait, or Redis is unavailable (then compute without storing, or store without a
    /// token).
    Miss,
}

/// What the leader of an in-process flight does next (`get_or_compute`).
pub(crate) enum Leading<R> {
    /// Another process's entry, usable by this caller.
    Found(R),
    /// This process holds the lease: compute, store, then release it.
    Hold(Holding),
    /// No lease (off, Redis unavailable, the wait ran out, a key without a slot of its own):
    /// compute locally.
    Alone,
    /// Another process holds the lease and streams its computation live (see `live_remote`):
    /// follow the stream of this lease secret.
    Follow(Vec<u8>),
}

/// What a wait for another holder found, for callers that can follow a live stream.
pub(crate) enum Awaited {
    /// As [`crate::AiResponseCache::lookup_or_lease`] answers.
    Outcome(LookupOutcome),
    /// Another process holds the lease and streams live: follow the stream of this secret,
    /// taking its stored entry only if stored at or after `since` (Unix ms; the caller's
    /// `max_age`/`no_cache`).
    Follow {
        /// The holder's lease secret.
        secret: Vec<u8>,
        /// The oldest store time the caller accepts.
        since: Option<u64>,
        /// This follower's place among [`crate::CacheOptions::max_live_followers`].
        permit: tokio::sync::OwnedSemaphorePermit,
    },
}

/// A lease held by a computation inside this process: renewed while it lives, released when it is
/// released or dropped (a cancelled leader releases in a spawned task).
pub(crate) struct Holding {
    cache: SealedCache,
    lease_key: String,
    secret: String,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Holding {
    fn start(cache: &SealedCache, lease_key: String, secret: String, ttl: Duration) -> Self {
        let renewer = tokio::runtime::Handle::try_current().ok().map(|handle| {
            let (cache, key, secret) = (cache.clone(), lease_key.clone(), secret.clone());
            handle.spawn(async move {
                let every = ttl / 3;
                loop {
                    tokio::time::sleep(every).await;
                    // Lost (expired and taken, or removed): stop; a failed call: try again.
                    if let Ok(false) = cache.renew_lease(&key, secret.as_bytes(), ttl).await {
                        break;
                    }
                }
            })
        });
        Self {
            cache: cache.clone(),
            lease_key,
            secret,
            renewer,
        }
    }

    /// A lease taken but not needed (the entry was there): released in the background.
    fn unneeded(cache: &SealedCache, lease_key: String, secret: String) -> Self {
        Self {
            cache: cache.clone(),
            lease_key,
            secret,
            renewer: None,
        }
    }
}

impl Holding {
    /// The lease's secret (names its live stream: see `live_remote`).
    pub(crate) fn secret(&self) -> &[u8] {
        self.secret.as_bytes()
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        // Released already (`HeldLease::release`).
        if self.lease_key.is_empty() {
            return;
        }
        // Released in the background: after a store (which happened before this drop) nobody
        // needs to wait for it, and a cancelled leader cannot wait at all. Without a runtime the
        // lease simply expires.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let cache = self.cache.clone();
            let key = std::mem::take(&mut self.lease_key);
            let secret = std::mem::take(&mut self.secret);
            handle.spawn(async move {
                let _ = cache.release_lease(&key, secret.as_bytes()).await;
            });
        }
    }
}

impl SealedCache {
    /// One lease step: set (or observe) the lease and read the entry in one round trip, opening the
    /// entry with `observer` (quietly, `NoopObserver`, when the caller's lookup already counted
    /// what this read finds).
    async fn lease_look(
        &self,
        entry_key: &str,
        lease_key: &str,
        probe: LeaseProbe<'_>,
        observer: &dyn sealcache_monitor::CacheObserver,
    ) -> Result<(bool, Option<Cached>)> {
        let (flag, entry) = self
            .inner
            .backend
            .lease_step(lease_key, probe, entry_key)
            .await?;
        let found = match entry {
            Some(bytes) => {
                self.open_stored(entry_key, &bytes, None, true, observer, None)
                    .await
            }
            None => None,
        };
        Ok((flag, found))
    }

    /// Releases a lease if `secret` still holds it (see the module docs for the check); whether it
    /// did.
    pub(crate) async fn release_lease(&self, lease_key: &str, secret: &[u8]) -> Result<bool> {
        let started = Instant::now();
        let Some((held, left)) = self.inner.backend.get_with_ttl(lease_key).await? else {
            return Ok(false);
        };
        if !same_secret(&held, secret) {
            return Ok(false);
        }
        // About to expire: an UNLINK arriving after it did could remove the next holder's lease.
        let margin = started.elapsed() * 2 + Duration::from_millis(2);
        if left.is_some_and(|left| left <= margin) {
            return Ok(true);
        }
        let removed = self.inner.backend.unlink(&[lease_key.to_owned()]).await? > 0;
        if removed {
            self.publish_wake(lease_key).await;
        }
        Ok(removed)
    }

    /// Tells the waiters of a lease's entry, in every process, that the lease is gone (one of
    /// them takes it over at once instead of at its next poll). Best effort: a waiter that hears
    /// nothing still polls.
    pub(crate) async fn publish_wake(&self, lease_key: &str) {
        let (Some(coherence), Some(entry_key)) = (&self.inner.coherence, entry_of_lease(lease_key))
        else {
            return;
        };
        let message = coherence.wake_message(entry_key);
        let _ = self
            .inner
            .backend
            .publish(coherence.channel(), &message, Some(lease_key))
            .await;
    }

    /// Wake-ups for a waiter of `entry_key` (`None` without the coherence channel: then only the
    /// poll interval ends a wait).
    pub(crate) fn wake_on(&self, entry_key: &str) -> Option<crate::wake::Wake> {
        self.inner
            .coherence
            .as_ref()
            .map(|c| c.wakers().subscribe(entry_key))
    }

    /// Extends a lease `secret` still holds to `ttl`; whether it still held it.
    async fn renew_lease(&self, lease_key: &str, secret: &[u8], ttl: Duration) -> Result<bool> {
        let Some(held) = self.inner.backend.get(lease_key).await? else {
            return Ok(false);
        };
        if !same_secret(&held, secret) {
            return Ok(false);
        }
        self.inner.backend.pexpire(lease_key, ttl).await
    }

    /// For the leader of an in-process flight on a miss: take the lease, or wait for the holder's
    /// entry (`usable` turns it into what the caller returns; an entry it rejects is waited past),
    /// taking the lease over when it vanishes, for at most the configured wait.
    pub(crate) async fn lead_or_wait<R>(
        &self,
        entry_key: &str,
        follow: bool,
        mut usable: impl FnMut(&Cached) -> Option<R>,
    ) -> Leading<R> {
        let options = &self.inner.options;
        if !options.leases {
            return Leading::Alone;
        }
        let (Some(lease_key), Some(secret)) = (
            lease_key(self.inner.keys.namespace(), entry_key),
            random_secret(),
        ) else {
            return Leading::Alone;
        };
        let deadline = Instant::now() + options.lease_wait;
        let mut waited = false;
        // Subscribed before the first look: a store or release after it is never missed.
        let mut wake = self.wake_on(entry_key);
        loop {
            let probe = LeaseProbe::Acquire {
                value: secret.as_bytes(),
                ttl: options.lease_ttl,
            };
            match self
                .lease_look(entry_key, &lease_key, probe, &NoopObserver)
                .await
            {
                // Redis cannot be asked: compute locally (fail safe).
                Err(_) => return Leading::Alone,
                Ok((acquired, found)) => {
                    if let Some(value) = found.as_ref().and_then(&mut usable) {
                        if acquired {
                            drop(Holding::unneeded(self, lease_key, secret));
                        }
                        return Leading::Found(value);
                    }
                    if acquired {
                        return Leading::Hold(Holding::start(
                            self,
                            lease_key,
                            secret,
                            options.lease_ttl,
                        ));
                    }
                    if follow && let Some(holder) = self.live_stream_of(entry_key).await {
                        return Leading::Follow(holder);
                    }
                }
            }
            if !waited {
                waited = true;
                self.inner.observer.singleflight_coalesced();
            }
            let now = Instant::now();
            if now >= deadline {
                return Leading::Alone;
            }
            pause(wake.as_mut(), options.lease_poll.min(deadline - now)).await;
        }
    }

    /// [`crate::AiResponseCache::lookup_or_lease`] on an AI entry key.
    pub(crate) async fn lookup_or_lease_raw(
        &self,
        entry_key: &str,
        operation: &str,
        options: LookupOptions,
    ) -> LookupOutcome {
        match self
            .lookup_or_await(entry_key, operation, options, false)
            .await
        {
            Awaited::Outcome(outcome) => outcome,
            // Not asked for.
            Awaited::Follow { .. } => LookupOutcome::Miss,
        }
    }

    /// [`SealedCache::lookup_or_lease_raw`]; with `follow`, a wait for a holder that streams
    /// live ends at its first frame with [`Awaited::Follow`].
    pub(crate) async fn lookup_or_await(
        &self,
        entry_key: &str,
        operation: &str,
        options: LookupOptions,
        follow: bool,
    ) -> Awaited {
        use Awaited::Outcome as Done;
        let arrived = now_ms();
        let max_age_since = options
            .max_age
            .map(|age| arrived.saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)));
        if !options.no_cache {
            match self
                .timed_lookup(entry_key, operation, true, max_age_since)
                .await
            {
                Looked::Hit(hit) => return Done(LookupOutcome::Hit(hit)),
                // Fail safe: nobody waits on a Redis that cannot be asked.
                Looked::Unavailable => return Done(LookupOutcome::Miss),
                Looked::Miss => {}
            }
        }
        if options.lease.is_none() && options.wait.is_zero() {
            return Done(LookupOutcome::Miss);
        }
        // While waiting, a `no_cache` caller takes only an entry stored after it arrived: after
        // the millisecond it arrived in (store times are milliseconds), so an entry stored just
        // before it, in the same millisecond, is never taken for a fresh one. (An entry another
        // caller stores within that millisecond is not taken either: this caller computes.)
        let since = if options.no_cache {
            Some(arrived.saturating_add(1).max(max_age_since.unwrap_or(0)))
        } else {
            max_age_since
        };
        let Some(lease_key) = lease_key(self.inner.keys.namespace(), entry_key) else {
            return Done(LookupOutcome::Miss);
        };
        let Some((leased_operation, digest)) = self.inner.keys.ai_key_parts(entry_key) else {
            return Done(LookupOutcome::Miss);
        };
        // A token's secret is half random, half a keyed tag of this view's owner: a token only
        // acts for the tenant (or the shared view) whose caller took it.
        let acquire = match options.lease {
            Some(ttl) => match random_secret() {
                Some(random) => {
                    let nonce = &random[..NONCE_HEX];
                    let tag = self
                        .inner
                        .keys
                        .lease_tag(&self.lease_binding(), &lease_key, nonce);
                    Some((format!("{nonce}{tag}"), ttl))
                }
                None => return Done(LookupOutcome::Miss),
            },
            None => None,
        };
        let deadline = Instant::now() + options.wait;
        let mut counted = !options.no_cache;
        let mut waited = false;
        let mut wake = self.wake_on(entry_key);
        loop {
            let probe = match &acquire {
                Some((secret, ttl)) => LeaseProbe::Acquire {
                    value: secret.as_bytes(),
                    ttl: *ttl,
                },
                None => LeaseProbe::Observe,
            };
            // A `no_cache` caller made no counted lookup: its first look counts what it finds (a
            // value that fails to open); later looks, and every look after a counted lookup,
            // are quiet (the same value is not counted again every poll).
            let observer: &dyn sealcache_monitor::CacheObserver = if counted {
                &NoopObserver
            } else {
                &*self.inner.observer
            };
            counted = true;
            let Ok((flag, found)) = self
                .lease_look(entry_key, &lease_key, probe, observer)
                .await
            else {
                return Done(LookupOutcome::Miss);
            };
            if let Some(hit) = found.filter(|hit| hit.stored_since(since)) {
                if let (true, Some((secret, _))) = (flag, &acquire) {
                    drop(Holding::unneeded(self, lease_key, secret.clone()));
                }
                return Done(LookupOutcome::Hit(hit));
            }
            match (&acquire, flag) {
                (Some((secret, ttl)), true) => {
                    return Done(LookupOutcome::Lease(Lease {
                        token: LeaseToken::new(leased_operation, digest, secret),
                        ttl: *ttl,
                    }));
                }
                // Nobody holds a lease: there is nothing to wait for.
                (None, false) => return Done(LookupOutcome::Miss),
                _ => {}
            }
            // Held by another caller: follow its live stream, if it streams one.
            // Only with a follower's permit: otherwise wait for the stored entry, as a caller
            // that cannot follow does.
            if follow
                && let Ok(permit) = Arc::clone(&self.inner.live_followers).try_acquire_owned()
                && let Some(secret) = self.live_stream_of(entry_key).await
            {
                return Awaited::Follow {
                    secret,
                    since,
                    permit,
                };
            }
            if !waited {
                waited = true;
                self.inner.observer.singleflight_coalesced();
            }
            let now = Instant::now();
            if now >= deadline {
                return Done(LookupOutcome::Miss);
            }
            pause(
                wake.as_mut(),
                self.inner.options.lease_poll.min(deadline - now),
            )
            .await;
        }
    }

    /// The owner a token this view issues is bound to: its tenant's tag (whatever the subject),
    /// or the shared view.
    fn lease_binding(&self) -> Vec<u8> {
        match &self.scope {
            Some(scope) => [&b"T"[..], &scope.tenant].concat(),
            None => b"H".to_vec(),
        }
    }

    /// Whether `token` was issued to this view's owner for `lease_key` (compared in constant
    /// time).
    fn issued_here(&self, token: &LeaseToken, lease_key: &str) -> bool {
        let secret = token.secret();
        let (nonce, tag) = secret.split_at(NONCE_HEX.min(secret.len()));
        let expected = self
            .inner
            .keys
            .lease_tag(&self.lease_binding(), lease_key, nonce);
        same_secret(expected.as_bytes(), tag.as_bytes())
    }

    /// The lease key a token names, after checking it leases `entry_key` (when given).
    fn token_lease_key(&self, token: &LeaseToken, entry_key: Option<&str>) -> Result<String> {
        let leased = self.inner.keys.ai_key_of(token.operation(), token.digest());
        if entry_key.is_some_and(|k| k != leased) {
            return Err(Error::LeaseNotForRequest);
        }
        lease_key(self.inner.keys.namespace(), &leased).ok_or(Error::InvalidLeaseToken)
    }

    /// The entry key `token` leases, when its secret still holds the lease.
    ///
    /// # Errors
    /// [`Error::InvalidLeaseToken`], [`Error::Unavailable`], [`Error::Redis`].
    pub(crate) async fn held_entry(&self, token: &LeaseToken) -> Result<Option<String>> {
        let lease_key = self.token_lease_key(token, None)?;
        // Another owner's token holds nothing here (as a lost lease's).
        if !self.issued_here(token, &lease_key) {
            return Ok(None);
        }
        let held = self.inner.backend.get(&lease_key).await?;
        let holds = held.is_some_and(|held| same_secret(&held, token.secret().as_bytes()));
        Ok(holds
            .then(|| entry_of_lease(&lease_key).map(str::to_owned))
            .flatten())
    }

    /// The entry key `token` leases.
    ///
    /// # Errors
    /// [`Error::InvalidLeaseToken`].
    pub(crate) fn token_entry_key(&self, token: &LeaseToken) -> Result<String> {
        let lease_key = self.token_lease_key(token, None)?;
        entry_of_lease(&lease_key)
            .map(str::to_owned)
            .ok_or(Error::InvalidLeaseToken)
    }

    /// Checks that `token` leases `entry_key` and was issued to this view's owner.
    pub(crate) fn check_lease(&self, token: &LeaseToken, entry_key: &str) -> Result<()> {
        let lease_key = self.token_lease_key(token, Some(entry_key))?;
        if self.issued_here(token, &lease_key) {
            Ok(())
        } else {
            Err(Error::LeaseNotForRequest)
        }
    }

    /// Releases the lease `token` names, if it still holds it; whether it did.
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::Redis`].
    pub async fn release_lease_token(&self, token: &LeaseToken) -> Result<bool> {
        let lease_key = self.token_lease_key(token, None)?;
        // Another owner's token (another tenant's, or a forged secret) releases nothing.
        if !self.issued_here(token, &lease_key) {
            return Ok(false);
        }
        self.release_lease(&lease_key, token.secret().as_bytes())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SECRET: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn lease_keys_share_the_entry_slot_and_stay_in_the_namespace() {
        let key = format!("ai_cache:v2:qa:{DIGEST}");
        assert_eq!(
            lease_key("ai_cache", &key).unwrap(),
            format!("ai_cache:lease:{{{key}}}")
        );
        assert_eq!(lease_key("ai_cache", "ai_cache:kv:a{b}"), None);
        let lease = lease_key("ai_cache", &key).unwrap();
        assert_eq!(entry_of_lease(&lease), Some(key.as_str()));
        assert_eq!(entry_of_lease("ai_cache:kv:x"), None);
    }

    #[test]
    fn tokens_are_parsed_strictly() {
        let good = format!("qa.{DIGEST}.{SECRET}");
        let token = LeaseToken::parse(&good).unwrap();
        assert_eq!(token.operation(), "qa");
        assert_eq!(token.digest(), DIGEST);
        assert_eq!(token.secret(), SECRET);
        assert_eq!(token.as_str(), good);
        assert!(!format!("{token:?}").contains(SECRET));
        for bad in [
            String::new(),
            "qa".to_owned(),
            format!("qa.{DIGEST}"),
            format!("qa.{DIGEST}.{SECRET}.x"),
            format!(".{DIGEST}.{SECRET}"),
            format!("QA.{DIGEST}.{SECRET}"),
            format!("q:a.{DIGEST}.{SECRET}"),
            format!("q*.{DIGEST}.{SECRET}"),
            format!("../x.{DIGEST}.{SECRET}"),
            format!("qa.{}.{SECRET}", DIGEST.to_uppercase()),
            format!("qa.{}.{SECRET}", &DIGEST[1..]),
            format!("qa.{DIGEST}0.{SECRET}"),
            format!("qa.{DIGEST}.{}", &SECRET[1..]),
            format!("qa.{DIGEST}.{SECRET}0"),
            format!("qa.{}}}.{SECRET}", &DIGEST[1..]),
            format!("qa.{DIGEST}.{}g", &SECRET[1..]),
            format!("qa.{DIGEST}.{SECRET}\n"),
            format!("qa.{DIGEST}.{}é", &SECRET[2..]),
        ] {
            assert!(LeaseToken::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abcd", b"abcd"));
        assert!(!same_secret(b"abcd", b"abce"));
        assert!(!same_secret(b"abc", b"abcd"));
        let s = random_secret().unwrap();
        assert_eq!(s.len(), 32);
        assert_ne!(s, random_secret().unwrap());
    }
}
