//! [`OtelObserver`] as a [`CacheObserver`]: each call recorded on its instrument.

use std::time::Duration;

use opentelemetry::KeyValue;

use super::OtelObserver;
use crate::event::SecurityEvent;
use crate::observer::{
    BreakerState, CacheObserver, LookupResult, OperationKind, SizeStage, Tier, WriteFailure,
};

fn tier_index(t: Tier) -> usize {
    usize::from(t == Tier::Redis)
}

fn result_index(r: LookupResult) -> usize {
    match r {
        LookupResult::Hit => 0,
        LookupResult::Miss => 1,
        LookupResult::Error => 2,
    }
}

impl CacheObserver for OtelObserver {
    fn lookup(&self, operation: &str, tier: Tier, result: LookupResult) {
        let attrs = &self.operation_attrs(operation)[tier_index(tier)][result_index(result)];
        self.lookups.add(1, attrs);
    }

    fn operation(&self, kind: OperationKind, elapsed: Duration) {
        self.op_duration
            .record(elapsed.as_secs_f64(), &self.op_kinds[kind as usize]);
    }

    fn lookup_duration(&self, tier: Tier, elapsed: Duration) {
        self.op_duration
            .record(elapsed.as_secs_f64(), &self.get_tiers[tier_index(tier)]);
    }

    fn redis_command(&self, command: &'static str, elapsed: Duration, ok: bool) {
        let prepared = self.db_ok.iter().find(|(c, _)| *c == command);
        match (prepared, ok) {
            (Some((_, attrs)), true) => self.db_duration.record(elapsed.as_secs_f64(), attrs),
            _ => {
                let mut attrs = vec![
                    KeyValue::new("db.system.name", "redis"),
                    KeyValue::new("db.operation.name", command),
                ];
                if !ok {
                    attrs.push(KeyValue::new("error.type", "redis_error"));
                }
                self.db_duration.record(elapsed.as_secs_f64(), &attrs);
            }
        }
    }

    fn entry_size(&self, stage: SizeStage, bytes: u64) {
        let i = match stage {
            SizeStage::Plain => 0,
            SizeStage::Compressed => 1,
            SizeStage::Stored => 2,
        };
        self.entry_size.record(bytes, &self.stages[i]);
    }

    fn seal(&self, key_id: u32) {
        self.seals
            .add(1, &[KeyValue::new("key_id", i64::from(key_id))]);
    }

    fn l1_entries(&self, entries: u64) {
        self.l1_entries.record(entries, &[]);
    }

    fn l1_bytes(&self, bytes: u64) {
        self.l1_size.record(bytes, &[]);
    }

    fn invalidation(&self, keys: u64) {
        self.invalidations.add(1, &[]);
        self.invalidated_keys.add(keys, &[]);
    }

    fn singleflight_coalesced(&self) {
        self.coalesced.add(1, &[]);
    }

    fn write_failure(&self, reason: WriteFailure) {
        self.write_failures
            .add(1, &self.write_reasons[reason.index()]);
    }

    fn redis_available(&self, available: bool) {
        self.redis_available.record(u64::from(available), &[]);
    }

    fn breaker_state(&self, state: BreakerState) {
        self.breaker.record(state.as_gauge(), &[]);
    }

    fn security_event(&self, event: SecurityEvent) {
        self.security
            .add(event.occurrences(), &self.event_types[event.kind.index()]);
        #[cfg(feature = "otlp")]
        if let Some(logs) = &self.security_logs {
            logs.emit(&event);
        }
    }
}
