//! Single-flight bookkeeping: at most one computation per key at a time, shared by the callers that
//! arrive while it runs, and nothing left behind when it ends or is cancelled.
//!
//! The first caller for a key becomes the leader and gets a [`Leader`] guard; later callers get a
//! [`Waiter`]. The guard owns the cleanup:
//! * [`Leader::finish`] removes the flight from the registry **before** publishing the outcome, so
//!   a call that starts after the computation ended never sees that outcome (it reads the cache, or
//!   computes again).
//! * Dropping the guard without finishing (the leader's future was cancelled, or the computation
//!   panicked) removes the flight and closes its channel: every waiter wakes up with
//!   [`Waited::Abandoned`] and tries again, one of them as the new leader.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// A finished computation's outcome, type-erased (one registry serves every value type).
pub(crate) type Outcome = Arc<dyn Any + Send + Sync>;

type Slot = watch::Receiver<Option<Outcome>>;

/// The flights in progress, by Redis key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    running: Mutex<HashMap<String, Slot>>,
}

/// What [`Flights::join`] makes of a caller.
pub(crate) enum Joined<'a> {
    /// Run the computation and call [`Leader::finish`].
    Leader(Leader<'a>),
    /// Wait for the leader.
    Waiter(Waiter),
}

/// The leader's duty: finish, or be dropped (which abandons the flight).
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    sender: watch::Sender<Option<Outcome>>,
    /// This flight's registry entry, to recognise it.
    own: Slot,
}

/// A caller waiting for a leader.
pub(crate) struct Waiter {
    receiver: Slot,
}

/// How a wait ended.
pub(crate) enum Waited {
    /// The leader published this outcome.
    Done(Outcome),
    /// The leader went away without an outcome (cancelled or panicked).
    Abandoned,
}

impl Flights {
    /// Joins the flight for `key`, starting one if none runs.
    pub(crate) fn join(&self, key: &str) -> Joined<'_> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(receiver) = running.get(key) {
            return Joined::Waiter(Waiter {
                receiver: receiver.clone(),
            });
        }
        let (sender, receiver) = watch::channel(None);
        running.insert(key.to_owned(), receiver.clone());
        Joined::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            sender,
            own: receiver,
        })
    }

    /// Flights in progress (for tests and diagnostics).
    pub(crate) fn len(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Removes `key`'s entry if it is still this leader's flight (a newer flight under the same
    /// key, started after this one was removed, is left alone).
    fn remove(&self, key: &str, own: &Slot) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.get(key).is_some_and(|slot| own.same_channel(slot)) {
            running.remove(key);
        }
    }
}

impl Leader<'_> {
    /// Ends the flight: unregisters it, then hands `outcome` to the callers that waited for it.
    pub(crate) fn finish(self, outcome: Outcome) {
        self.flights.remove(&self.key, &self.own);
        // No receiver left is fine: nobody waited.
        let _ = self.sender.send(Some(outcome));
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // After `finish` this finds a newer flight or none and removes nothing; otherwise the
        // flight is abandoned: unregister it, and dropping the sender wakes every waiter.
        self.flights.remove(&self.key, &self.own);
    }
}

impl Waiter {
    /// Waits until the leader finishes or goes away.
    pub(crate) async fn wait(mut self) -> Waited {
        match self.receiver.wait_for(Option::is_some).await {
            Ok(outcome) => match outcome.as_ref() {
                Some(outcome) => Waited::Done(outcome.clone()),
                None => Waited::Abandoned,
            },
            Err(_) => Waited::Abandoned,
        }
    }
}
