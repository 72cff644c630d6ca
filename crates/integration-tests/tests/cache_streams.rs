//! Sealed streamed answers: recorded OpenAI and Anthropic SSE streams stored and replayed
//! byte-exact; a stream whose events were dropped, duplicated, reordered or spliced in Redis is a
//! miss and a counted `decrypt_failed`; a stream that did not complete normally is never stored.

// Test code: a failed unwrap is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt as _;
use sealcache::{AiRequest, AiResponseCache, CacheOptions, EntryKind, SseEvent, render_sse};

#[path = "common/cache.rs"]
mod common;
#[path = "common/sse.rs"]
mod sse;
use common::Stack;

fn count(cache: &AiResponseCache, kind: &str) -> u64 {
    cache
        .monitor()
        .security_summary()
        .events_by_type
        .get(kind)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_streams_replay_byte_exact() {
    let stack = Stack::start();
    let cache = stack.cache();
    let fresh = stack.cache_with(CacheOptions::default().with_l1_capacity(0));
    for (name, bytes) in sse::fixtures() {
        let events = sse::parse(&bytes);
        assert!(events.len() > 10, "{name}");
        assert_eq!(render_sse(&events), bytes, "{name}: the parser is exact");
        let request = AiRequest::new("chat", name).model("recorded");
        cache.set_events(&request, &events, None).await.unwrap();
        // From L1 (this process) and from Redis (another).
        for reader in [&cache, &fresh] {
            let hit = reader.get(&request).await.unwrap().unwrap();
            assert_eq!(hit.kind(), EntryKind::EventStream);
            assert_eq!(hit.sse_bytes().unwrap(), bytes, "{name}");
            assert_eq!(hit.events().unwrap(), events);
            assert!(
                hit.parse::<serde_json::Value>().is_err(),
                "not a JSON value"
            );
            let replayed: Vec<SseEvent> = reader
                .get_stream(&request)
                .await
                .unwrap()
                .unwrap()
                .collect()
                .await;
            assert_eq!(render_sse(&replayed), bytes, "{name}");
        }
    }
    // A JSON value is not a stream.
    let plain = AiRequest::new("chat", "plain");
    cache
        .set(&plain, &serde_json::json!(1), None)
        .await
        .unwrap();
    assert!(cache.get_stream(&plain).await.unwrap().is_none());
    assert!(matches!(
        cache.get(&plain).await.unwrap().unwrap().events(),
        Err(sealcache::Error::NotAStream)
    ));
    // Events that could not replay exactly as given are refused, and so is an empty stream.
    for bad in [
        vec![SseEvent::new("a\r\nb")],
        vec![SseEvent::named("x\ny", "a")],
        vec![],
    ] {
        assert!(matches!(
            cache.set_events(&plain, &bad, None).await,
            Err(sealcache::Error::InvalidEvent(_))
        ));
    }
}

/// Every way of changing a stream's events in Redis changes the sealed bytes, which then fail
/// authentication: a miss and a counted `decrypt_failed`, never a shorter, longer or reordered
/// replay. (The events of one stream are one sealed value; nobody without the key can re-seal.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_streams_are_misses_and_counted() {
    let stack = Stack::start();
    // L1 off: every read goes to Redis, where the tampering happens.
    let cache = stack.cache_with(CacheOptions::default().with_l1_capacity(0));
    let fixtures = sse::fixtures();
    let a = AiRequest::new("chat", "stream a");
    let b = AiRequest::new("chat", "stream b");
    cache
        .set_events(&a, &sse::parse(&fixtures[0].1), None)
        .await
        .unwrap();
    cache
        .set_events(&b, &sse::parse(&fixtures[1].1), None)
        .await
        .unwrap();
    let (key_a, key_b) = (cache.key(&a).unwrap(), cache.key(&b).unwrap());
    let mut admin = stack.admin().await;
    let get = async |admin: &mut redis::aio::MultiplexedConnection, key: &str| -> Vec<u8> {
        redis::cmd("GET").arg(key).query_async(admin).await.unwrap()
    };
    let original_a = get(&mut admin, &key_a).await;
    let original_b = get(&mut admin, &key_b).await;
    // Past the 49-byte data-key header and the 19-byte envelope header: inside the ciphertext.
    let (s, e) = (80, 120);
    let dropped = [&original_a[..s], &original_a[e..]].concat();
    let duplicated = [&original_a[..e], &original_a[s..]].concat();
    let swapped = [
        &original_a[..s],
        &original_a[s + 20..e],
        &original_a[s..s + 20],
        &original_a[e..],
    ]
    .concat();
    let half = original_a.len().min(original_b.len()) / 2;
    let spliced = [&original_a[..half], &original_b[half..]].concat();
    let truncated = original_a[..original_a.len() - 16].to_vec();
    for (what, bytes) in [
        ("a range of events dropped", dropped),
        ("a range of events duplicated", duplicated),
        ("two ranges swapped", swapped),
        ("spliced with another stream", spliced),
        ("cut short", truncated),
        ("another stream's whole value", original_b.clone()),
    ] {
        let before = count(&cache, "decrypt_failed");
        let _: () = redis::cmd("SET")
            .arg(&key_a)
            .arg(&bytes)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(cache.get(&a).await.unwrap().is_none(), "{what}: a miss");
        assert!(cache.get_stream(&a).await.unwrap().is_none(), "{what}");
        assert_eq!(
            count(&cache, "decrypt_failed"),
            before + 2,
            "{what}: counted"
        );
    }
    // Put back, it replays again.
    let _: () = redis::cmd("SET")
        .arg(&key_a)
        .arg(&original_a)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        cache.get(&a).await.unwrap().unwrap().sse_bytes().unwrap(),
        fixtures[0].1
    );

    // The count is checked too: an authentic value whose count disagrees with its events (only a
    // writer with the key could make one, a bug) is never served, and counted as `bad_envelope`.
    // Sealed under the keyring, as shared entries are (an owner's entry is sealed under its data
    // key: one under the keyring at an owner's key is refused before its count is read).
    let shared = cache.shared();
    let key_a = shared.key(&a).unwrap();
    let events = br#"[{"data":"1"},{"data":"2"}]"#;
    let mut plain = vec![1u8];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    plain.extend_from_slice(&(now + 60_000).to_be_bytes());
    plain.extend_from_slice(&now.to_be_bytes());
    plain.extend_from_slice(&3u32.to_be_bytes());
    plain.extend_from_slice(events);
    let sealed = sealcache_codec::ValueCodec::new(&stack.keyring())
        .seal(
            &sealcache_codec::SealContext::new("ai_cache", &key_a),
            &plain,
        )
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key_a)
        .arg(sealed.as_bytes())
        .arg("PX")
        .arg(60_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let before = count(&cache, "bad_envelope");
    assert!(shared.get(&a).await.unwrap().is_none());
    assert_eq!(count(&cache, "bad_envelope"), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_did_not_complete_normally_is_never_stored() {
    let stack = Stack::start();
    let cache = stack.cache();
    let events = sse::parse(&sse::fixtures()[1].1);
    let request = |n: u32| AiRequest::new("chat", format!("aborted {n}"));

    // Dropped (the client went away, the task was cancelled) or aborted: nothing stored.
    let mut recorder = cache.record_stream(&request(1), None).unwrap();
    for e in &events[..5] {
        recorder.push(e.clone()).unwrap();
    }
    drop(recorder);
    let mut recorder = cache.record_stream(&request(2), None).unwrap();
    recorder.push(events[0].clone()).unwrap();
    recorder.abort();
    // An event that cannot be replayed as given spoils the recording.
    let mut recorder = cache.record_stream(&request(3), None).unwrap();
    recorder.push(events[0].clone()).unwrap();
    assert!(recorder.push(SseEvent::new("a\rb")).is_err());
    assert!(recorder.push(events[1].clone()).is_err(), "stays spoilt");
    assert!(recorder.finish().await.is_err());
    // Nothing recorded: no stream.
    let recorder = cache.record_stream(&request(4), None).unwrap();
    assert!(recorder.finish().await.is_err());

    // Through `tee`: an upstream error, or a consumer that stops reading, stores nothing.
    let upstream = |fail_at: Option<usize>| {
        let events = events.clone();
        futures_util::stream::iter(events.into_iter().enumerate().map(move |(i, e)| {
            if Some(i) == fail_at {
                Err(std::io::Error::other("the model call failed"))
            } else {
                Ok(e)
            }
        }))
    };
    let recorder = cache.record_stream(&request(5), None).unwrap();
    let seen: Vec<_> = recorder.tee(upstream(Some(7))).collect().await;
    assert_eq!(seen.len(), events.len(), "the caller still sees everything");
    assert!(seen[7].is_err());
    let recorder = cache.record_stream(&request(6), None).unwrap();
    let partial: Vec<_> = recorder.tee(upstream(None)).take(4).collect().await;
    assert_eq!(partial.len(), 4);
    for n in 1..=6 {
        assert!(
            cache.get(&request(n)).await.unwrap().is_none(),
            "aborted stream {n} was stored"
        );
    }

    // Read to its end without an error: stored, and replayed exactly.
    let recorder = cache
        .record_stream(&request(7), Some(Duration::from_secs(60)))
        .unwrap();
    let all: Vec<_> = recorder.tee(upstream(None)).collect().await;
    assert_eq!(all.len(), events.len());
    let hit = cache.get(&request(7)).await.unwrap().unwrap();
    assert_eq!(hit.events().unwrap(), events);
    assert!(hit.ttl_remaining().unwrap() <= Duration::from_secs(60));
}

/// An upstream the test feeds event by event.
fn fed() -> (
    tokio::sync::mpsc::UnboundedSender<Result<SseEvent, std::io::Error>>,
    impl futures_util::Stream<Item = Result<SseEvent, std::io::Error>> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (tx, stream)
}

/// Callers of one process attach to the live stream (every event from the first, as they
/// arrive); a caller in another process follows the lease holder's stream and gets every event;
/// the computation runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_attach_to_the_live_stream() {
    let stack = Stack::start();
    let cache = stack.cache();
    let other_replica = stack.cache();
    let events = sse::parse(&sse::fixtures()[1].1);
    let request = AiRequest::new("chat", "live");
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, upstream) = fed();
    let counted = |runs: &std::sync::Arc<std::sync::atomic::AtomicUsize>| {
        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    };
    let mut first = cache
        .get_or_compute_stream(&request, None, || {
            counted(&runs);
            upstream
        })
        .await
        .unwrap();
    tx.send(Ok(events[0].clone())).unwrap();
    tx.send(Ok(events[1].clone())).unwrap();
    assert_eq!(first.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(first.next().await.unwrap().unwrap(), events[1]);

    // A second caller attaches mid-stream: it gets the first two at once, then the rest live.
    let mut second = cache
        .get_or_compute_stream(&request, None, || {
            counted(&runs);
            fed().1
        })
        .await
        .unwrap();
    assert_eq!(second.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(second.next().await.unwrap().unwrap(), events[1]);
    // Another replica waits for the lease holder (this process) instead of computing.
    let remote = {
        let (other_replica, request, runs) = (other_replica.clone(), request.clone(), runs.clone());
        tokio::spawn(async move {
            other_replica
                .get_or_compute_stream(&request, None, move || {
                    counted(&runs);
                    fed().1
                })
                .await
                .unwrap()
                .collect::<Vec<_>>()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!remote.is_finished(), "the other replica waits");
    assert_eq!(cache.sealed().live_streams_in_progress(), 1);
    for e in &events[2..] {
        tx.send(Ok(e.clone())).unwrap();
    }
    drop(tx);
    let rest_first: Vec<_> = first.map(Result::unwrap).collect().await;
    let rest_second: Vec<_> = second.map(Result::unwrap).collect().await;
    assert_eq!(rest_first, events[2..]);
    assert_eq!(rest_second, events[2..]);
    let remote: Vec<_> = remote
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(remote, events, "followed live, then from Redis");
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "computed once"
    );
    assert_eq!(cache.sealed().live_streams_in_progress(), 0);
    assert_eq!(
        cache
            .get(&request)
            .await
            .unwrap()
            .unwrap()
            .sse_bytes()
            .unwrap(),
        sse::fixtures()[1].1
    );

    // An upstream error reaches every attached caller, and nothing is stored.
    let failing = AiRequest::new("chat", "live, failing");
    let (tx, upstream) = fed();
    let mut a = cache
        .get_or_compute_stream(&failing, None, || upstream)
        .await
        .unwrap();
    let mut b = cache
        .get_or_compute_stream(&failing, None, || fed().1)
        .await
        .unwrap();
    tx.send(Ok(events[0].clone())).unwrap();
    tx.send(Err(std::io::Error::other("model down"))).unwrap();
    for s in [&mut a, &mut b] {
        assert_eq!(s.next().await.unwrap().unwrap(), events[0]);
        match s.next().await.unwrap() {
            Err(sealcache::StreamError::Compute(e)) => assert_eq!(e.to_string(), "model down"),
            other => panic!("{other:?}"),
        }
        assert!(s.next().await.is_none());
    }
    assert!(cache.get(&failing).await.unwrap().is_none());

    // Every consumer gone: the computation stops at its next event and stores nothing.
    let gone = AiRequest::new("chat", "live, nobody left");
    let (tx, upstream) = fed();
    let mut only = cache
        .get_or_compute_stream(&gone, None, || upstream)
        .await
        .unwrap();
    tx.send(Ok(events[0].clone())).unwrap();
    assert!(only.next().await.unwrap().is_ok());
    drop(only);
    tx.send(Ok(events[1].clone())).unwrap();
    let _ = tx.send(Ok(events[2].clone()));
    drop(tx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(cache.get(&gone).await.unwrap().is_none());
    assert_eq!(cache.sealed().live_streams_in_progress(), 0);
}

/// A caller in another replica follows the lease holder's stream live: it gets the first events
/// while the holder's upstream is still open, then the rest; the computation runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_replica_follows_the_live_stream() {
    let stack = Stack::start();
    let (a, b) = (stack.cache(), stack.cache());
    let events = sse::parse(&sse::fixtures()[0].1);
    let request = AiRequest::new("chat", "followed across replicas");
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, upstream) = fed();
    let mut holder = a
        .get_or_compute_stream(&request, None, || {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            upstream
        })
        .await
        .unwrap();
    tx.send(Ok(events[0].clone())).unwrap();
    tx.send(Ok(events[1].clone())).unwrap();
    assert_eq!(holder.next().await.unwrap().unwrap(), events[0]);
    let mut follower = tokio::time::timeout(
        Duration::from_secs(5),
        b.get_or_compute_stream(&request, None, || {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            fed().1
        }),
    )
    .await
    .expect("the follower attaches while the holder streams")
    .unwrap();
    // Live: the upstream is still open (only two events sent).
    for e in &events[..2] {
        let got = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .expect("an event arrives live")
            .unwrap()
            .unwrap();
        assert_eq!(&got, e);
    }
    for e in &events[2..] {
        tx.send(Ok(e.clone())).unwrap();
    }
    drop(tx);
    let rest: Vec<_> = follower.map(Result::unwrap).collect().await;
    assert_eq!(rest, events[2..]);
    let _: Vec<_> = holder.collect().await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The frames are removed once the entry is stored.
    let mut admin = stack.admin().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(frames(&mut admin).await.is_empty());
}

/// The frame keys in Redis, in sequence order.
async fn frames(admin: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("ai_cache:live:*")
        .query_async(admin)
        .await
        .unwrap();
    keys.sort_by_key(|k| k.rsplit(':').next().unwrap().parse::<u64>().unwrap());
    keys
}

/// The HTTP shape in the crate: a lease holder publishes events with its token
/// (`append_live_events`), a caller in another replica follows them (`lookup_or_follow`), then
/// the stored stream; frames swapped in Redis fail authentication (a counted `decrypt_failed`, the
/// stream ends with an error); a holder that releases without storing ends the followers' streams
/// with an error; a token that lost its lease publishes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_read_frames_then_the_entry_and_fail_closed() {
    use sealcache::{FollowError, Followed, LookupOptions, LookupOutcome};
    let stack = Stack::start();
    let (a, b) = (stack.cache(), stack.cache());
    let events = sse::parse(&sse::fixtures()[2].1);
    let leased = LookupOptions::default().lease(Duration::from_secs(10));
    let waiting = LookupOptions::default().wait(Duration::from_secs(3));
    let lease = |cache: &AiResponseCache, request: &AiRequest| {
        let (cache, request) = (cache.clone(), request.clone());
        async move {
            match cache.lookup_or_lease(&request, leased).await.unwrap() {
                LookupOutcome::Lease(lease) => lease,
                other => panic!("{other:?}"),
            }
        }
    };
    let live = |followed: Followed| match followed {
        Followed::Live(live) => live,
        other => panic!("{other:?}"),
    };

    // Completed: frames, then the stored entry.
    let request = AiRequest::new("chat", "http holder");
    let held = lease(&a, &request).await;
    a.append_live_events(held.token(), 0, &events[..2])
        .await
        .unwrap();
    let mut follower = live(b.lookup_or_follow(&request, waiting).await.unwrap());
    assert_eq!(follower.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(follower.next().await.unwrap().unwrap(), events[1]);
    a.append_live_events(held.token(), 2, &events[2..3])
        .await
        .unwrap();
    assert_eq!(follower.next().await.unwrap().unwrap(), events[2]);
    a.set_events(&request, &events, None).await.unwrap();
    assert!(a.release_lease(held.token()).await.unwrap());
    let rest: Vec<_> = follower.map(Result::unwrap).collect().await;
    assert_eq!(rest, events[3..], "the rest from the stored stream");
    // Lost: a released token publishes nothing.
    assert!(matches!(
        a.append_live_events(held.token(), 3, &events[3..4]).await,
        Err(sealcache::Error::LeaseLost)
    ));

    // Swapped frames: authentication fails, counted, the stream ends with an error.
    let mut admin = stack.admin().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    let request = AiRequest::new("chat", "tampered frames");
    let held = lease(&a, &request).await;
    a.append_live_events(held.token(), 0, &events[..3])
        .await
        .unwrap();
    let keys = frames(&mut admin).await;
    assert_eq!(keys.len(), 3);
    let one: Vec<u8> = redis::cmd("GET")
        .arg(&keys[1])
        .query_async(&mut admin)
        .await
        .unwrap();
    let two: Vec<u8> = redis::cmd("GET")
        .arg(&keys[2])
        .query_async(&mut admin)
        .await
        .unwrap();
    for (k, v) in [(&keys[1], &two), (&keys[2], &one)] {
        let _: () = redis::cmd("SET")
            .arg(k)
            .arg(v)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    let before = count(&b, "decrypt_failed");
    let mut follower = live(b.lookup_or_follow(&request, waiting).await.unwrap());
    assert_eq!(follower.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(
        follower.next().await.unwrap().unwrap_err(),
        FollowError::Tampered
    );
    assert!(follower.next().await.is_none());
    assert_eq!(count(&b, "decrypt_failed"), before + 1);
    // A duplicated frame (0 copied over 1) too.
    let zero: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&keys[1])
        .arg(&zero)
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut follower = live(b.lookup_or_follow(&request, waiting).await.unwrap());
    assert_eq!(follower.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(
        follower.next().await.unwrap().unwrap_err(),
        FollowError::Tampered
    );
    assert_eq!(count(&b, "decrypt_failed"), before + 2);

    // Abandoned: the holder releases without storing; followers end with an error, quickly.
    let request = AiRequest::new("chat", "abandoned live stream");
    let held = lease(&a, &request).await;
    a.append_live_events(held.token(), 0, &events[..1])
        .await
        .unwrap();
    let mut follower = live(b.lookup_or_follow(&request, waiting).await.unwrap());
    assert_eq!(follower.next().await.unwrap().unwrap(), events[0]);
    assert!(a.release_lease(held.token()).await.unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(2), follower.next())
        .await
        .expect("the follower learns the holder went away");
    assert_eq!(ended.unwrap().unwrap_err(), FollowError::Abandoned);
    assert!(b.get(&request).await.unwrap().is_none(), "nothing stored");

    // A holder that streams nothing: the follower waits for the entry as lookup_or_lease does.
    let request = AiRequest::new("chat", "not streamed");
    let held = lease(&a, &request).await;
    let waiter = {
        let (b, request) = (b.clone(), request.clone());
        tokio::spawn(async move { b.lookup_or_follow(&request, waiting).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.set(&request, &serde_json::json!({"v": 1}), None)
        .await
        .unwrap();
    assert!(a.release_lease(held.token()).await.unwrap());
    match waiter.await.unwrap() {
        Followed::Outcome(LookupOutcome::Hit(hit)) => assert_eq!(hit.json_bytes(), br#"{"v":1}"#),
        other => panic!("{other:?}"),
    }
}

/// A follower never passes a mixed stream off as complete (issue 25, H1), and never takes frames
/// sealed under another data key than its own (H3):
/// * a `no_cache` holder streaming a fresh answer over an older stored one: the follower waits for
///   the holder's frames while the lease is held (the old code switched to the old entry's tail as
///   soon as a frame was not there yet);
/// * a holder that releases without storing while another writer's answer stands at the entry:
///   that answer does not continue the events already sent, so the stream ends with an error
///   (`Abandoned`: the answer is authentic, nothing to count), never with its tail;
/// * frames a holder appended under another scope (the tenant's own key for a subject's lease)
///   end the stream `Tampered`, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_never_passes_off_a_mixed_stream() {
    use sealcache::{FollowError, Followed, LookupOptions, LookupOutcome};
    let stack = Stack::start();
    let (a, b) = (stack.cache(), stack.cache());
    let events = sse::parse(&sse::fixtures()[2].1);
    assert!(events.len() >= 5, "the fixture has a tail to mix");
    let older: Vec<SseEvent> = (0..events.len())
        .map(|i| SseEvent::new(format!("an older answer, part {i}")))
        .collect();
    let live = |followed: Followed| match followed {
        Followed::Live(live) => live,
        other => panic!("{other:?}"),
    };
    let lease = |cache: &AiResponseCache, request: &AiRequest, options: LookupOptions| {
        let (cache, request) = (cache.clone(), request.clone());
        async move {
            match cache.lookup_or_lease(&request, options).await.unwrap() {
                LookupOutcome::Lease(lease) => lease,
                other => panic!("{other:?}"),
            }
        }
    };
    let fresh = LookupOptions::default()
        .lease(Duration::from_secs(10))
        .no_cache(true);
    // The follower wants an answer newer than the stored one: it follows the holder.
    let newer = || {
        LookupOptions::default()
            .wait(Duration::from_secs(5))
            .max_age(Duration::from_millis(1))
    };

    // 1. no_cache over an older entry: frames 0..2, a pause, then the rest.
    let request = AiRequest::new("chat", "fresh over old");
    a.set_events(&request, &older, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let held = lease(&a, &request, fresh).await;
    a.append_live_events(held.token(), 0, &events[..2])
        .await
        .unwrap();
    let mut follower = live(b.lookup_or_follow(&request, newer()).await.unwrap());
    assert_eq!(follower.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(follower.next().await.unwrap().unwrap(), events[1]);
    let third = tokio::spawn(async move {
        let next = follower.next().await;
        (next, follower)
    });
    // The holder is slow: frame 2 is not there yet, the older entry is.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.append_live_events(held.token(), 2, &events[2..])
        .await
        .unwrap();
    a.set_events(&request, &events, None).await.unwrap();
    assert!(a.release_lease(held.token()).await.unwrap());
    let (next, follower) = third.await.unwrap();
    let mut got = vec![events[0].clone(), events[1].clone(), next.unwrap().unwrap()];
    got.extend(follower.map(Result::unwrap).collect::<Vec<_>>().await);
    assert_eq!(
        got, events,
        "the holder's answer, never the older one's tail"
    );

    // 2. Released without storing while another answer stands there: an error, not its tail.
    let request = AiRequest::new("chat", "another writer's answer");
    let held = lease(&a, &request, fresh).await;
    a.append_live_events(held.token(), 0, &events[..2])
        .await
        .unwrap();
    let mut follower = live(b.lookup_or_follow(&request, newer()).await.unwrap());
    assert_eq!(follower.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(follower.next().await.unwrap().unwrap(), events[1]);
    stack
        .cache()
        .set_events(&request, &older, None)
        .await
        .unwrap();
    let before = count(&b, "decrypt_failed");
    assert!(a.release_lease(held.token()).await.unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(3), follower.next())
        .await
        .expect("the follower ends");
    assert_eq!(ended.unwrap().unwrap_err(), FollowError::Abandoned);
    assert!(follower.next().await.is_none());
    assert_eq!(
        count(&b, "decrypt_failed"),
        before,
        "authentic: no attack counted"
    );

    // 3. Frames appended under another scope than the lease's: Tampered, counted.
    let ann_a = a.tenant("acme").unwrap().subject("ann").unwrap();
    let ann_b = b.tenant("acme").unwrap().subject("ann").unwrap();
    let tenant_a = a.tenant("acme").unwrap();
    let request = AiRequest::new("chat", "ann's question");
    let held = lease(
        &ann_a,
        &request,
        LookupOptions::default().lease(Duration::from_secs(10)),
    )
    .await;
    // Ann's own first frame, then one sealed under the tenant's key (no subject) with her token.
    ann_a
        .append_live_events(held.token(), 0, &events[..1])
        .await
        .unwrap();
    tenant_a
        .append_live_events(held.token(), 1, &events[1..2])
        .await
        .unwrap();
    let before = count(&ann_b, "decrypt_failed");
    let waiting = LookupOptions::default().wait(Duration::from_secs(3));
    let mut follower = live(ann_b.lookup_or_follow(&request, waiting).await.unwrap());
    assert_eq!(follower.next().await.unwrap().unwrap(), events[0]);
    assert_eq!(
        follower.next().await.unwrap().unwrap_err(),
        FollowError::Tampered
    );
    assert_eq!(count(&ann_b, "decrypt_failed"), before + 1);
    assert!(ann_a.release_lease(held.token()).await.unwrap());
}

/// Followers are bounded per process (`max_live_followers`): each one reads Redis until its
/// stream ends. Beyond the bound a waiting caller waits for the stored entry instead (it gets the
/// whole answer once stored); a finished follower gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn followers_are_bounded_per_process() {
    use sealcache::{Followed, LookupOptions, LookupOutcome};
    let stack = Stack::start();
    let holder = stack.cache();
    let bounded = stack.cache_with(CacheOptions::default().with_max_live_followers(1));
    let events = sse::parse(&sse::fixtures()[2].1);
    let request = AiRequest::new("chat", "one follower only");
    let lease = match holder
        .lookup_or_lease(
            &request,
            LookupOptions::default().lease(Duration::from_secs(10)),
        )
        .await
        .unwrap()
    {
        LookupOutcome::Lease(lease) => lease,
        other => panic!("{other:?}"),
    };
    holder
        .append_live_events(lease.token(), 0, &events[..2])
        .await
        .unwrap();
    let waiting = LookupOptions::default().wait(Duration::from_secs(5));
    let mut first = match bounded.lookup_or_follow(&request, waiting).await.unwrap() {
        Followed::Live(live) => live,
        other => panic!("the first caller follows: {other:?}"),
    };
    assert_eq!(first.next().await.unwrap().unwrap(), events[0]);
    // The second caller of that process waits for the entry.
    let second = {
        let (bounded, request) = (bounded.clone(), request.clone());
        tokio::spawn(async move { bounded.lookup_or_follow(&request, waiting).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "it waits");
    holder.set_events(&request, &events, None).await.unwrap();
    assert!(holder.release_lease(lease.token()).await.unwrap());
    match second.await.unwrap() {
        Followed::Outcome(LookupOutcome::Hit(hit)) => assert_eq!(hit.events().unwrap(), events),
        other => panic!("the second caller gets the stored entry: {other:?}"),
    }
    let rest: Vec<_> = first.map(Result::unwrap).collect().await;
    assert_eq!(rest, events[1..]);

    // The place was given back: the next stream is followed again.
    let request = AiRequest::new("chat", "followed again");
    let lease = match holder
        .lookup_or_lease(
            &request,
            LookupOptions::default().lease(Duration::from_secs(10)),
        )
        .await
        .unwrap()
    {
        LookupOutcome::Lease(lease) => lease,
        other => panic!("{other:?}"),
    };
    holder
        .append_live_events(lease.token(), 0, &events[..1])
        .await
        .unwrap();
    assert!(matches!(
        bounded.lookup_or_follow(&request, waiting).await.unwrap(),
        Followed::Live(_)
    ));
    assert!(holder.release_lease(lease.token()).await.unwrap());
}
