//! Wake-ups for callers waiting on an entry: a lease waiter sleeps until the coherence channel
//! says its entry (or its lease) changed, or until its poll interval ends, whichever is first.
//!
//! The coherence subscriber (see `coherence`) hands every message about a key to
//! [`Wakers::wake`], its own process's messages included (they come back on the subscription
//! too), so a waiter is woken by a store or a lease release in any process. A waiter subscribes
//! **before** its look at Redis: a message that arrives between the look and the sleep is not
//! lost (the receiver has seen a change, and the sleep returns at once). Without a confirmed
//! subscription nobody is woken and the poll interval alone bounds the wait, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;

/// The waiters of this process, by Redis key (the entry key they wait for).
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    waiting: Mutex<HashMap<String, Weak<watch::Sender<u64>>>>,
}

/// One waiter's subscription to its key's wake-ups; unregistered when dropped.
#[derive(Debug)]
pub(crate) struct Wake {
    wakers: Arc<Wakers>,
    key: String,
    sender: Arc<watch::Sender<u64>>,
    receiver: watch::Receiver<u64>,
}

impl Wakers {
    /// Subscribes to wake-ups for `key`.
    pub(crate) fn subscribe(self: &Arc<Self>, key: &str) -> Wake {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = match waiting.get(key).and_then(Weak::upgrade) {
            Some(sender) => sender,
            None => {
                let sender = Arc::new(watch::Sender::new(0));
                waiting.insert(key.to_owned(), Arc::downgrade(&sender));
                sender
            }
        };
        let receiver = sender.subscribe();
        Wake {
            wakers: Arc::clone(self),
            key: key.to_owned(),
            sender,
            receiver,
        }
    }

    /// Wakes every waiter of `key` (nothing when nobody waits for it).
    pub(crate) fn wake(&self, key: &str) {
        let sender = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .and_then(Weak::upgrade);
        if let Some(sender) = sender {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Keys with waiters now (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Wake {
    /// Sleeps for `at_most`, or until a wake-up for the key arrived since the last call (or since
    /// the subscription): whichever is first.
    pub(crate) async fn sleep(&mut self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.receiver.changed()).await;
        self.receiver.borrow_and_update();
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        let mut waiting = self
            .wakers
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The registry's entry dies with its last waiter (this one and the registry's weak copy).
        let last = Arc::strong_count(&self.sender) == 1;
        if last
            && waiting
                .get(&self.key)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.sender)))
        {
            waiting.remove(&self.key);
        }
    }
}

/// Sleeps for `at_most`, ended early by `wake` when there is one.
pub(crate) async fn pause(wake: Option<&mut Wake>, at_most: Duration) {
    match wake {
        Some(wake) => wake.sleep(at_most).await,
        None => tokio::time::sleep(at_most).await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_wake_ends_the_sleep_and_is_not_lost_before_it() {
        let wakers = Arc::new(Wakers::default());
        let mut a = wakers.subscribe("k");
        let mut b = wakers.subscribe("k");
        assert_eq!(wakers.len(), 1);
        // Woken before the sleep began: the sleep returns at once.
        wakers.wake("k");
        let started = Instant::now();
        a.sleep(Duration::from_secs(5)).await;
        b.sleep(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        // Seen: the next sleep runs its course.
        let started = Instant::now();
        a.sleep(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        // Another key wakes nobody here.
        wakers.wake("other");
        let started = Instant::now();
        a.sleep(Duration::from_millis(50)).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(a);
        assert_eq!(wakers.len(), 1);
        drop(b);
        assert_eq!(wakers.len(), 0);
    }
}
