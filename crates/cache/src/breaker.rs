//! A circuit breaker: after N consecutive failures Redis is skipped for a cool-down, then one
//! trial call decides.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sealcache_monitor::BreakerState;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long Redis is skipped once open.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cool_down: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
}

/// What the breaker says about the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Call Redis.
    Allowed,
    /// Call Redis once to test it.
    Trial,
    /// Skip Redis.
    Denied,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
        }
    }

    fn until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.open_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn permit(&self) -> Permit {
        if self.failures.load(Ordering::Relaxed) < self.config.failure_threshold {
            return Permit::Allowed;
        }
        let mut until = self.until();
        match *until {
            Some(t) if Instant::now() < t => Permit::Denied,
            _ => {
                // Let one caller through; the others keep skipping until it reports.
                *until = Some(Instant::now() + self.config.cool_down);
                Permit::Trial
            }
        }
    }

    /// Returns the new state when it changed. The common case (no failures before) touches one
    /// atomic and no lock: this runs after every successful Redis command.
    pub(crate) fn success(&self) -> Option<BreakerState> {
        if self.failures.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let before = self.failures.swap(0, Ordering::Relaxed);
        *self.until() = None;
        (before >= self.config.failure_threshold).then_some(BreakerState::Closed)
    }

    /// Returns the new state when it changed.
    pub(crate) fn failure(&self) -> Option<BreakerState> {
        let now = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if now == self.config.failure_threshold {
            *self.until() = Some(Instant::now() + self.config.cool_down);
            return Some(BreakerState::Open);
        }
        None
    }

    pub(crate) fn state(&self) -> BreakerState {
        if self.failures.load(Ordering::Relaxed) < self.config.failure_threshold {
            BreakerState::Closed
        } else if self.until().is_some_and(|t| Instant::now() < t) {
            BreakerState::Open
        } else {
            BreakerState::HalfOpen
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_millis(50),
        });
        assert_eq!(b.permit(), Permit::Allowed);
        assert_eq!(b.failure(), None);
        assert_eq!(b.failure(), Some(BreakerState::Open));
        assert_eq!(b.permit(), Permit::Denied);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.permit(), Permit::Trial);
        assert_eq!(b.permit(), Permit::Denied, "only one trial at a time");
        assert_eq!(b.success(), Some(BreakerState::Closed));
        assert_eq!(b.permit(), Permit::Allowed);
    }
}
