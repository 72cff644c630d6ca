//! `get_or_compute_stream`: single-flight for streamed answers, with callers attaching to the live
//! stream.
//!
//! The first caller in a process to miss starts the computation; every caller of the same request
//! in this process that arrives while it streams **attaches to the live stream**: it gets the
//! events already sent, then each new one as it arrives, in order. Across processes the lease
//! decides who computes (see `lease`); the holder publishes each event as a sealed frame (see
//! `live_remote`), and the callers in other processes follow the frames live (one follower per
//! process, which the other callers there attach to), then the stored stream.
//!
//! The computation runs in a task of its own, so that a consumer that stops reading does not
//! stall the others. It stops at its next event once no consumer is left (nothing is stored
//! then), and the stream is stored only when the upstream ended without an error: the same rule
//! as [`crate::StreamRecorder`].

use std::any::Any;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};

use crate::cache::SealedCache;
use crate::lease::{Holding, Leading};
use crate::stream::{SseEvent, StreamRecorder};

/// Why a live stream ended without completing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError<E> {
    /// The computation's stream yielded this error (shared by every attached caller).
    #[error("the streamed computation failed")]
    Compute(Arc<E>),
    /// The computation went away without finishing (its task panicked, or was cancelled).
    #[error("the streamed computation was abandoned")]
    Abandoned,
}

/// How a live stream ended.
enum End<E> {
    Done,
    Failed(Arc<E>),
    Abandoned,
}

struct State<E> {
    events: Vec<SseEvent>,
    end: Option<End<E>>,
}

/// One live stream: its events so far, how it ended, and a signal per change.
struct Live<E> {
    state: Mutex<State<E>>,
    changed: tokio::sync::watch::Sender<u64>,
    /// Every consumer holds the token this points to: the computation stops once none is left.
    consumers: Mutex<Weak<()>>,
}

impl<E> Live<E> {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                events: Vec::new(),
                end: None,
            }),
            changed: tokio::sync::watch::Sender::new(0),
            consumers: Mutex::new(Weak::new()),
        }
    }

    /// A consumer's token.
    fn consumer(&self) -> Arc<()> {
        let mut weak = self
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = weak.upgrade() {
            return token;
        }
        let token = Arc::new(());
        *weak = Arc::downgrade(&token);
        token
    }

    /// Whether any consumer is left.
    fn has_consumers(&self) -> bool {
        self.consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .strong_count()
            > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn push(&self, event: SseEvent) {
        self.lock().events.push(event);
        self.bump();
    }

    fn end(&self, end: End<E>) {
        let mut state = self.lock();
        if state.end.is_none() {
            state.end = Some(end);
        }
        drop(state);
        self.bump();
    }
}

/// The live streams of this process, by Redis key (type-erased: one registry for every error
/// type).
#[derive(Default)]
pub(crate) struct LiveStreams {
    running: Mutex<HashMap<String, Weak<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for LiveStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStreams").finish_non_exhaustive()
    }
}

impl LiveStreams {
    /// The running stream of `key` with error type `E`, or a new one registered for it (`true`:
    /// this caller leads).
    fn join<E: Send + Sync + 'static>(&self, key: &str) -> (Arc<Live<E>>, bool) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = running
            .get(key)
            .and_then(Weak::upgrade)
            .and_then(|any| any.downcast::<Live<E>>().ok())
        {
            return (live, false);
        }
        let live = Arc::new(Live::<E>::new());
        let erased: Arc<dyn Any + Send + Sync> = live.clone();
        running.insert(key.to_owned(), Arc::downgrade(&erased));
        (live, true)
    }

    /// Unregisters `live` (a newer stream under the same key is left alone).
    fn remove<E: Send + Sync + 'static>(&self, key: &str, live: &Arc<Live<E>>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let ours = running
            .get(key)
            .and_then(Weak::upgrade)
            .is_some_and(|any| std::ptr::addr_eq(Arc::as_ptr(&any), Arc::as_ptr(live)));
        if ours {
            running.remove(key);
        }
    }

    /// Live streams now.
    pub(crate) fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

/// A stream of events: a cached stream replayed, or a live one this caller attached to (or
/// started).
pub type LiveStream<E> =
    Pin<Box<dyn Stream<Item = Result<SseEvent, StreamError<E>>> + Send + 'static>>;

/// A consumer of `live` from its first event.
fn consume<E: Send + Sync + 'static>(live: Arc<Live<E>>) -> LiveStream<E> {
    let receiver = live.changed.subscribe();
    let token = live.consumer();
    let state = (live, receiver, token, 0usize, false);
    Box::pin(futures_util::stream::unfold(
        state,
        |(live, mut receiver, token, next, over)| async move {
            if over {
                return None;
            }
            loop {
                receiver.borrow_and_update();
                {
                    let state = live.lock();
                    if let Some(event) = state.events.get(next) {
                        let event = event.clone();
                        drop(state);
                        return Some((Ok(event), (live, receiver, token, next + 1, false)));
                    }
                    match &state.end {
                        Some(End::Done) => return None,
                        Some(End::Failed(e)) => {
                            let e = StreamError::Compute(e.clone());
                            drop(state);
                            return Some((Err(e), (live, receiver, token, next, true)));
                        }
                        Some(End::Abandoned) => {
                            drop(state);
                            let e = StreamError::Abandoned;
                            return Some((Err(e), (live, receiver, token, next, true)));
                        }
                        None => {}
                    }
                }
                if receiver.changed().await.is_err() {
                    // The computation's task is gone without an end (it panicked).
                    return Some((
                        Err(StreamError::Abandoned),
                        (live, receiver, token, next, true),
                    ));
                }
            }
        },
    ))
}

/// A cached stream as a [`LiveStream`].
fn replay<E: Send + Sync + 'static>(events: Vec<SseEvent>) -> LiveStream<E> {
    Box::pin(futures_util::stream::iter(events.into_iter().map(Ok)))
}

impl SealedCache {
    /// The cached stream of `redis_key`, or `compute()`'s, streamed live to this caller and to
    /// every caller of this process that attaches while it runs; stored once it completed
    /// normally. See the module `live` docs and `docs/cache.md`, "Streams".
    pub(crate) async fn get_or_compute_stream_raw<E, F, S>(
        &self,
        redis_key: &str,
        operation: &str,
        ttl: Duration,
        compute: F,
    ) -> LiveStream<E>
    where
        E: Send + Sync + 'static,
        F: FnOnce() -> S,
        S: Stream<Item = Result<SseEvent, E>> + Send + 'static,
    {
        let cached = |hit: &crate::Cached| hit.events().ok();
        let looked = self.timed_lookup(redis_key, operation, true, None).await;
        let redis_up = !matches!(looked, crate::cache::Looked::Unavailable);
        if let Some(events) = looked.hit().as_ref().and_then(cached) {
            return replay(events);
        }
        let (live, leads) = self.inner.live.join::<E>(redis_key);
        if !leads {
            self.inner.observer.singleflight_coalesced();
            return consume(live);
        }
        // This caller leads for the process: the consumer is made before anything can end.
        let stream = consume(live.clone());
        let leading = if redis_up {
            self.lead_or_wait(redis_key, true, cached).await
        } else {
            Leading::Alone
        };
        let holding = match leading {
            Leading::Found(events) => {
                self.inner.live.remove(redis_key, &live);
                for e in events {
                    live.push(e);
                }
                live.end(End::Done);
                return stream;
            }
            Leading::Follow(secret) => {
                // Another process streams it: this process's callers follow its frames.
                let follower = self.follow(redis_key, secret, None, None);
                let (cache, key) = (self.clone(), redis_key.to_owned());
                tokio::spawn(async move {
                    let mut follower = Box::pin(follower);
                    let mut end = End::Done;
                    while let Some(item) = follower.next().await {
                        match item {
                            Ok(event) => live.push(event),
                            Err(_) => {
                                end = End::Abandoned;
                                break;
                            }
                        }
                    }
                    cache.inner.live.remove(&key, &live);
                    live.end(end);
                });
                return stream;
            }
            Leading::Hold(holding) => Some(holding),
            Leading::Alone => None,
        };
        // The holder publishes its events as frames for the other processes' callers.
        let frames = holding
            .as_ref()
            .map(|h| FrameWriter::start(self.clone(), redis_key, h.secret().to_vec()));
        let recorder = StreamRecorder::new(self.clone(), redis_key.to_owned(), ttl);
        let upstream = compute();
        let driver = Driver {
            cache: self.clone(),
            key: redis_key.to_owned(),
            live: live.clone(),
            frames,
            _holding: holding,
        };
        tokio::spawn(driver.run(upstream, recorder));
        stream
    }

    /// Live streams in progress in this process now.
    #[must_use]
    pub fn live_streams_in_progress(&self) -> usize {
        self.inner.live.len()
    }
}

/// The task that runs a streamed computation.
struct Driver<E> {
    cache: SealedCache,
    key: String,
    live: Arc<Live<E>>,
    /// The frames for other processes (when this process holds the lease).
    frames: Option<FrameWriter>,
    /// The lease, released when the driver ends (after the store).
    _holding: Option<Holding>,
}

/// Publishes a holder's events as frames, in order, from a task of its own (the local readers do
/// not wait for Redis); once the driver ends it removes them (followers then read the stored
/// entry, or learn that the holder went away).
struct FrameWriter {
    events: tokio::sync::mpsc::UnboundedSender<SseEvent>,
}

impl FrameWriter {
    fn start(cache: SealedCache, key: &str, secret: Vec<u8>) -> Self {
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<SseEvent>();
        let key = key.to_owned();
        tokio::spawn(async move {
            let mut written = 0_u64;
            let mut failed = false;
            while let Some(event) = received.recv().await {
                // A frame that cannot be written stops the frames (followers wait for it, then
                // read the stored entry): never a gap.
                if !failed {
                    failed = cache
                        .append_frames(&key, &secret, written, std::slice::from_ref(&event))
                        .await
                        .is_err();
                    if !failed {
                        written += 1;
                    }
                }
            }
            cache.remove_frames(&key, &secret, written).await;
        });
        Self { events }
    }

    fn push(&self, event: &SseEvent) {
        // The writer task ends only after this sender is dropped.
        let _ = self.events.send(event.clone());
    }
}

impl<E: Send + Sync + 'static> Driver<E> {
    async fn run<S>(self, upstream: S, mut recorder: StreamRecorder)
    where
        S: Stream<Item = Result<SseEvent, E>> + Send + 'static,
    {
        // Ends the stream as abandoned if this task is dropped or panics before an end.
        let _guard = AbandonGuard {
            streams: &self.cache.inner.live,
            key: &self.key,
            live: &self.live,
        };
        let mut upstream = Box::pin(upstream);
        loop {
            // A live stream nobody reads any more is not finished (nor stored).
            if !self.live.has_consumers() {
                return;
            }
            match upstream.next().await {
                Some(Ok(event)) => {
                    // A recording that cannot keep this event is spoilt (not stored); the
                    // readers still get every event.
                    let _ = recorder.push(event.clone());
                    if let Some(frames) = &self.frames {
                        frames.push(&event);
                    }
                    self.live.push(event);
                }
                Some(Err(e)) => {
                    self.cache.inner.live.remove(&self.key, &self.live);
                    self.live.end(End::Failed(Arc::new(e)));
                    return;
                }
                None => {
                    // Stored before the stream ends, so a caller arriving after it finds the
                    // entry; a failed store is counted by the cache and changes nothing here.
                    let _ = recorder.finish().await;
                    self.cache.inner.live.remove(&self.key, &self.live);
                    self.live.end(End::Done);
                    return;
                }
            }
        }
    }
}

struct AbandonGuard<'a, E: Send + Sync + 'static> {
    streams: &'a LiveStreams,
    key: &'a str,
    live: &'a Arc<Live<E>>,
}

impl<E: Send + Sync + 'static> Drop for AbandonGuard<'_, E> {
    fn drop(&mut self) {
        self.streams.remove(self.key, self.live);
        // No-op after an end.
        self.live.end(End::Abandoned);
    }
}
