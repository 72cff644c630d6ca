//! The connection both backends share: made on first use (so the cache builds while Redis is
//! down), made once for all concurrent callers, a failure shared with the callers that waited for
//! it (each new attempt would cost them a connect timeout), and replaced with a new client when the
//! password changes. A connection the application handed over is used as it is.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use super::connect_error;
use crate::error::{Error, Result};

/// A lazily made, shared connection `Co` from a client `Cl`.
pub(crate) struct Lazy<Cl, Co> {
    /// `None` for a connection the application handed over (it owns reconnection then).
    client: RwLock<Option<Cl>>,
    connection: RwLock<Option<Co>>,
    connecting: tokio::sync::Mutex<()>,
    /// Failed attempts so far: a caller that waited for another's attempt shares its failure.
    failed_attempts: AtomicU64,
    /// What the last failed attempt met, as the waiters report it (a refusal stays a refusal).
    last_failure: std::sync::Mutex<Option<Error>>,
    /// The longest wait for a connection (the connect timeout plus a margin).
    bound: Duration,
}

impl<Cl: Clone, Co: Clone> Lazy<Cl, Co> {
    /// Connects with `client` on first use, waiting at most `connect_timeout` plus a margin.
    pub(crate) fn new(client: Cl, connect_timeout: Duration) -> Self {
        Self::with(Some(client), None, connect_timeout)
    }

    /// Uses `connection`, which the application owns.
    pub(crate) fn owned(connection: Co, connect_timeout: Duration) -> Self {
        Self::with(None, Some(connection), connect_timeout)
    }

    fn with(client: Option<Cl>, connection: Option<Co>, connect_timeout: Duration) -> Self {
        Self {
            client: RwLock::new(client),
            connection: RwLock::new(connection),
            connecting: tokio::sync::Mutex::new(()),
            failed_attempts: AtomicU64::new(0),
            last_failure: std::sync::Mutex::new(None),
            bound: connect_timeout + Duration::from_millis(500),
        }
    }

    fn cached(&self) -> Option<Co> {
        self.connection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The shared connection, made with `connect` when there is none.
    ///
    /// Every command awaits this: with a connection at hand it is ready at once, and its future
    /// holds only `connect` and a box for the connecting path (which is large: a lock, timers and
    /// the connect future), so the command's own future stays small.
    pub(crate) async fn get<F, Fut>(&self, connect: F) -> Result<Co>
    where
        F: FnOnce(Cl) -> Fut,
        Fut: Future<Output = redis::RedisResult<Co>>,
    {
        match self.cached() {
            Some(c) => Ok(c),
            None => Box::pin(self.connect(connect)).await,
        }
    }

    /// Makes the shared connection with `connect` (once, for every caller waiting for it).
    async fn connect<F, Fut>(&self, connect: F) -> Result<Co>
    where
        F: FnOnce(Cl) -> Fut,
        Fut: Future<Output = redis::RedisResult<Co>>,
    {
        let seen = self.failed_attempts.load(Ordering::Acquire);
        let _guard = tokio::time::timeout(self.bound, self.connecting.lock())
            .await
            .map_err(|_| Error::Unavailable)?;
        if self.failed_attempts.load(Ordering::Acquire) != seen {
            let last = self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            return Err(last.as_ref().map_or(Error::Unavailable, shared));
        }
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let Some(client) = self
            .client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return Err(Error::Unavailable);
        };
        let attempt = tokio::time::timeout(self.bound, connect(client))
            .await
            .map_err(|_| Error::Unavailable)
            .and_then(|r| r.map_err(|e| connect_error(&e)));
        let connection = attempt.inspect_err(|e| {
            *self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(shared(e));
            self.failed_attempts.fetch_add(1, Ordering::AcqRel);
        })?;
        *self
            .connection
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }

    /// Connects with `client` from now on: the shared connection is dropped (the commands in
    /// flight on it finish). Refused for an application-owned connection.
    pub(crate) fn replace_client(&self, make: impl FnOnce() -> Result<Cl>) -> Result<()> {
        let mut client = self.client.write().unwrap_or_else(PoisonError::into_inner);
        if client.is_none() {
            return Err(Error::Config(
                "the Redis password of an application-owned connection is the application's to change".into(),
            ));
        }
        *client = Some(make()?);
        *self
            .connection
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
}

/// A failure as the callers that waited for it report it: refused credentials and failed
/// handshakes keep their names (the status reports them), anything else is unavailability.
fn shared(e: &Error) -> Error {
    match e {
        Error::AuthenticationRefused { code } => Error::AuthenticationRefused { code },
        Error::Tls { failure } => Error::Tls { failure: *failure },
        _ => Error::Unavailable,
    }
}
