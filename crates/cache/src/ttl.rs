//! Per-operation TTLs.

use std::collections::BTreeMap;
use std::time::Duration;

/// TTLs by operation, with the reference's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlPolicy {
    default: Duration,
    per_operation: BTreeMap<String, Duration>,
}

impl Default for TtlPolicy {
    /// summarize 7200 s, sentiment 3600, key_points 5400, questions 4800, qa 3600; others 3600.
    fn default() -> Self {
        let per_operation = [
            ("summarize", 7200),
            ("sentiment", 3600),
            ("key_points", 5400),
            ("questions", 4800),
            ("qa", 3600),
        ]
        .into_iter()
        .map(|(op, s)| (op.to_owned(), Duration::from_secs(s)))
        .collect();
        Self {
            default: Duration::from_secs(3600),
            per_operation,
        }
    }
}

impl TtlPolicy {
    /// Overrides the TTL of `operation`.
    #[must_use]
    pub fn with(mut self, operation: &str, ttl: Duration) -> Self {
        self.per_operation.insert(operation.to_owned(), ttl);
        self
    }

    /// Sets the TTL of operations without their own.
    #[must_use]
    pub fn with_default(mut self, ttl: Duration) -> Self {
        self.default = ttl;
        self
    }

    /// The TTL for `operation`.
    #[must_use]
    pub fn ttl(&self, operation: &str) -> Duration {
        self.per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.default)
    }

    /// The longest TTL (how long to keep an old encryption key after a rotation).
    #[must_use]
    pub fn longest(&self) -> Duration {
        self.per_operation
            .values()
            .copied()
            .chain([self.default])
            .max()
            .unwrap_or(self.default)
    }
}
