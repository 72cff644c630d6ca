//! The judge: what the verifying clients recorded, against what must hold (docs/deployment.md,
//! "Partitions: what holds").
//!
//! * **Wrong**: a lookup answered with another key's value, with something that is not a stored
//!   value, with a version of the key that nobody ever tried to write, or with a version whose
//!   write started only after the lookup had returned.
//! * **Stale beyond the bound**: a lookup that started more than [`COHERENCE_BOUND_MS`] after an
//!   acknowledged change (an overwrite with a newer version, or an invalidation of the key's
//!   operation that started after the version read was acknowledged) and still returned the older
//!   value. A write that Redis Cluster lost (below) does not make older answers stale; a write
//!   whose fate is unknown is left out of the judgement both ways.
//! * **Lost (acknowledged)**: a store acknowledged within a scenario's loss window (the time a
//!   primary could take writes its replica would never see: from just before the fault until just
//!   after the heal) that, once the failover (or the heal) and the coherence bound passed, no
//!   backend answered again before the key's next acknowledged store while an older version was
//!   answered instead, or whose key holds an older version in the converged final state (a miss
//!   is no evidence: an entry may also go because a later store was refused and undone). Redis Cluster's
//!   documented loss window; counted, never hidden. A write in the window that no later answer
//!   confirms or contradicts, while older answers followed it, has an unknown fate and is left
//!   out of the judgement.
//! * **Longest call**: the longest lookup, store or invalidation, answered or not (a client that
//!   got no answer counts its whole wait).

use std::collections::{BTreeMap, HashMap};

use super::agent::{Op, Record};

/// How long after an acknowledged change an L1 copy may still be served (docs/cache.md, "L1
/// coherence across processes": a replica stops serving L1 within two heartbeats, 1 s each, of
/// its channel failing, and a delivered message removes the copy at once).
pub(crate) const COHERENCE_BOUND_MS: f64 = 2000.0;
/// Every call answers within this (docs/deployment.md): connect 2 s + 0.5 s, then at most three
/// Redis commands of 2.25 s each (a store: `SET`, `PUBLISH`, and the undo `UNLINK`).
pub(crate) const CALL_BOUND_MS: f64 = 10_000.0;

/// What a scenario adds to the records.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    /// Where writes may be lost: `[start, end]` in Unix ms.
    pub loss_windows: Vec<(f64, f64)>,
    /// From when (Unix ms) no primary that can lose writes answers any more: the failover, or
    /// the heal when there was none. Lost writes are looked for from then on.
    pub settled: f64,
    /// The converged state after the heal: each key's version (`None`: a miss everywhere).
    pub final_state: HashMap<String, Option<u64>>,
    /// When the fault began (Unix ms): findings give their times from it.
    pub origin: f64,
}

/// What a scenario measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub requests: u64,
    pub wrong: u64,
    pub stale_beyond_bound: u64,
    pub lost_acknowledged: u64,
    pub longest_call_ms: u64,
    /// Writes in a loss window whose fate no answer told.
    pub unknown_fate: u64,
    /// The first few findings, for people.
    pub findings: Vec<String>,
}

/// The fate of an acknowledged store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Survived,
    Lost,
    Unknown,
}

fn in_window(t: f64, windows: &[(f64, f64)]) -> bool {
    windows.iter().any(|(a, b)| *a <= t && t <= *b)
}

/// Judges `records` (every host's, plus the harness's own calls).
pub(crate) fn judge(records: &[Record], timeline: &Timeline) -> Verdict {
    let mut verdict = Verdict::default();
    let note = |verdict: &mut Verdict, text: String| {
        if verdict.findings.len() < 12 {
            verdict.findings.push(text);
        }
    };
    let cache_calls = records.iter().filter(|r| r.op != Op::Status);
    for r in cache_calls.clone() {
        verdict.requests += 1;
        let ms = (r.t1 - r.t0).max(0.0).round() as u64;
        verdict.longest_call_ms = verdict.longest_call_ms.max(ms);
    }

    // Every write attempt per key (acknowledged or not), by version.
    let mut attempts: HashMap<&str, BTreeMap<u64, &Record>> = HashMap::new();
    for r in records.iter().filter(|r| r.op == Op::Write) {
        if let Some(v) = r.version {
            attempts.entry(r.key.as_str()).or_default().insert(v, r);
        }
    }
    let invalidations: Vec<&Record> = records
        .iter()
        .filter(|r| r.op == Op::Invalidate && r.acknowledged())
        .collect();

    // The fate of each acknowledged write in a loss window.
    let mut fates: HashMap<(&str, u64), Fate> = HashMap::new();
    for (key, writes) in &attempts {
        let acked: Vec<&Record> = writes
            .values()
            .copied()
            .filter(|w| w.acknowledged())
            .collect();
        for (i, w) in acked.iter().enumerate() {
            let Some(v) = w.version else { continue };
            if !in_window(w.t1, &timeline.loss_windows) {
                fates.insert((key, v), Fate::Survived);
                continue;
            }
            // Answers that would be stale if this write survived.
            let contradicted = records.iter().any(|r| {
                r.hit()
                    && r.key == **key
                    && r.version.is_some_and(|u| u < v)
                    && r.t0 > w.t1 + COHERENCE_BOUND_MS
            });
            let from = timeline.settled.max(w.t1) + COHERENCE_BOUND_MS;
            let until = acked.get(i + 1).map_or(f64::INFINITY, |next| next.t0);
            let seen: Vec<u64> = records
                .iter()
                .filter(|r| r.hit() && r.key == **key && r.t0 >= from && r.t0 < until)
                .filter_map(|r| r.version)
                .collect();
            let fate = if seen.iter().any(|&s| s >= v) {
                Fate::Survived
            } else if seen.iter().any(|&s| s < v)
                || (i + 1 == acked.len()
                    && timeline
                        .final_state
                        .get(*key)
                        .is_some_and(|f| f.is_some_and(|f| f < v)))
            {
                // An older version answered: Redis lost this one. (A miss is no evidence: an
                // entry may go for other reasons, such as the undo of a later, refused store.)
                Fate::Lost
            } else if contradicted {
                Fate::Unknown
            } else {
                // Nothing depends on it: no answer older than it came after it.
                Fate::Survived
            };
            match fate {
                Fate::Lost => {
                    verdict.lost_acknowledged += 1;
                    note(
                        &mut verdict,
                        format!(
                            "lost: `{key}` version {v}, acknowledged by host {} at {:+.1}s",
                            w.host + 1,
                            (w.t1 - timeline.origin) / 1000.0
                        ),
                    );
                }
                Fate::Unknown => verdict.unknown_fate += 1,
                Fate::Survived => {}
            }
            fates.insert((key, v), fate);
        }
    }

    for r in records
        .iter()
        .filter(|r| r.op == Op::Read && r.status == 200)
    {
        if let Some(why) = &r.wrong {
            verdict.wrong += 1;
            note(
                &mut verdict,
                format!("wrong: host {} asked `{}`, got {why}", r.host + 1, r.key),
            );
            continue;
        }
        let Some(u) = r.version else { continue };
        let written = attempts.get(r.key.as_str()).and_then(|w| w.get(&u));
        let Some(written) = written else {
            verdict.wrong += 1;
            note(
                &mut verdict,
                format!(
                    "wrong: host {} got version {u} of `{}`, which nobody wrote",
                    r.host + 1,
                    r.key
                ),
            );
            continue;
        };
        if written.t0 > r.t1 {
            verdict.wrong += 1;
            note(
                &mut verdict,
                format!(
                    "wrong: host {} got version {u} of `{}` before it was written",
                    r.host + 1,
                    r.key
                ),
            );
            continue;
        }
        // A newer version acknowledged (and not lost) long enough before this lookup started.
        let newer = attempts.get(r.key.as_str()).and_then(|writes| {
            writes.range(u + 1..).map(|(_, w)| *w).find(|w| {
                w.acknowledged()
                    && w.t1 + COHERENCE_BOUND_MS < r.t0
                    && w.version
                        .and_then(|v| fates.get(&(w.key.as_str(), v)))
                        .is_some_and(|f| *f == Fate::Survived)
            })
        });
        // An invalidation of the key's operation that started after this version was
        // acknowledged, and was acknowledged long enough before this lookup started.
        let invalidated = invalidations.iter().find(|i| {
            i.key == r.operation
                && written.acknowledged()
                && written.t1 < i.t0
                && i.t1 + COHERENCE_BOUND_MS < r.t0
        });
        if let Some(w) = newer {
            verdict.stale_beyond_bound += 1;
            note(
                &mut verdict,
                format!(
                    "stale: host {} answered `{}` version {u} at {:+.1}s, {:.0} ms after version {} was acknowledged",
                    r.host + 1,
                    r.key,
                    (r.t0 - timeline.origin) / 1000.0,
                    r.t0 - w.t1,
                    w.version.unwrap_or(0)
                ),
            );
        } else if let Some(i) = invalidated {
            verdict.stale_beyond_bound += 1;
            note(
                &mut verdict,
                format!(
                    "stale: host {} answered `{}` version {u} at {:+.1}s, {:.0} ms after `{}` was invalidated",
                    r.host + 1,
                    r.key,
                    (r.t0 - timeline.origin) / 1000.0,
                    r.t0 - i.t1,
                    i.key
                ),
            );
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(host: usize, op: Op, key: &str, version: Option<u64>, t0: f64, status: u16) -> Record {
        Record {
            host,
            op,
            key: key.to_owned(),
            operation: if op == Op::Invalidate {
                key.to_owned()
            } else {
                "qa".to_owned()
            },
            version,
            t0,
            t1: t0 + 10.0,
            status,
            wrong: None,
        }
    }

    fn w(host: usize, key: &str, v: u64, t0: f64) -> Record {
        rec(host, Op::Write, key, Some(v), t0, 201)
    }

    fn r(host: usize, key: &str, v: Option<u64>, t0: f64) -> Record {
        rec(host, Op::Read, key, v, t0, 200)
    }

    #[test]
    fn an_older_version_within_the_bound_is_fine_beyond_it_stale() {
        let records = vec![
            w(0, "a", 1, 0.0),
            w(0, "a", 2, 1000.0),
            r(1, "a", Some(1), 1500.0),
            r(1, "a", Some(1), 2900.0),
            r(2, "a", Some(1), 3100.0),
            r(2, "a", Some(2), 3200.0),
            r(2, "a", None, 9000.0),
        ];
        let v = judge(&records, &Timeline::default());
        assert_eq!(v.requests, 7);
        assert_eq!(
            (v.wrong, v.stale_beyond_bound, v.lost_acknowledged),
            (0, 1, 0)
        );
        assert_eq!(v.longest_call_ms, 10);
    }

    #[test]
    fn another_keys_value_and_unwritten_versions_are_wrong() {
        let mut other = r(1, "a", Some(1), 50.0);
        other.wrong = Some("the value of `b`".into());
        let records = vec![
            w(0, "a", 1, 0.0),
            other,
            r(1, "a", Some(7), 60.0),
            // Version 2 was tried (not acknowledged): reading it is not wrong.
            rec(0, Op::Write, "a", Some(2), 70.0, 503),
            r(2, "a", Some(2), 100.0),
            // Read before its write started.
            w(0, "a", 3, 500.0),
            r(2, "a", Some(3), 200.0),
        ];
        let v = judge(&records, &Timeline::default());
        assert_eq!(v.wrong, 3, "{:?}", v.findings);
        assert_eq!(v.stale_beyond_bound, 0);
    }

    #[test]
    fn an_invalidated_value_beyond_the_bound_is_stale() {
        let mut bulk = w(0, "b1", 1, 0.0);
        bulk.operation = "bulk".into();
        let read = |t0: f64| {
            let mut x = r(1, "b1", Some(1), t0);
            x.operation = "bulk".into();
            x
        };
        let records = vec![
            bulk,
            rec(2, Op::Invalidate, "bulk", None, 100.0, 200),
            read(1500.0),
            read(2200.0),
        ];
        let v = judge(&records, &Timeline::default());
        assert_eq!(v.stale_beyond_bound, 1, "{:?}", v.findings);
    }

    #[test]
    fn a_write_lost_at_failover_is_counted_and_excuses_older_answers() {
        // Version 2 acknowledged during the fault by the isolated host, then every backend
        // answers version 1 after the heal: lost, and not stale.
        let records = vec![
            w(2, "a", 1, 0.0),
            w(2, "a", 2, 5000.0),
            r(0, "a", Some(1), 12_500.0),
            r(2, "a", Some(1), 12_600.0),
            w(2, "a", 3, 13_000.0),
            r(1, "a", Some(3), 16_000.0),
            // Version 2 again after version 3 was acknowledged: stale.
            r(0, "a", Some(2), 16_100.0),
        ];
        let timeline = Timeline {
            loss_windows: vec![(4000.0, 11_000.0)],
            settled: 10_000.0,
            final_state: HashMap::from([("a".to_owned(), Some(3))]),
            origin: 0.0,
        };
        let v = judge(&records, &timeline);
        assert_eq!(v.lost_acknowledged, 1, "{:?}", v.findings);
        assert_eq!(v.stale_beyond_bound, 1, "{:?}", v.findings);
        // Without a read after the heal, the final state decides.
        let records = vec![w(2, "b", 1, 0.0), w(2, "b", 2, 5000.0)];
        let timeline = Timeline {
            final_state: HashMap::from([("b".to_owned(), Some(1))]),
            ..timeline
        };
        assert_eq!(judge(&records, &timeline).lost_acknowledged, 1);
        // A miss at the end is no evidence (the entry may have gone for other reasons).
        let timeline = Timeline {
            final_state: HashMap::from([("b".to_owned(), None)]),
            ..timeline
        };
        assert_eq!(judge(&records, &timeline).lost_acknowledged, 0);
    }

    #[test]
    fn a_write_in_the_window_seen_after_the_heal_survived() {
        let records = vec![
            w(0, "a", 1, 5000.0),
            r(1, "a", Some(1), 12_500.0),
            // Older than nothing: version 1 survived, so a miss is just a miss.
            r(2, "a", None, 12_600.0),
        ];
        let timeline = Timeline {
            loss_windows: vec![(4000.0, 11_000.0)],
            settled: 10_000.0,
            final_state: HashMap::from([("a".to_owned(), Some(1))]),
            origin: 0.0,
        };
        let v = judge(&records, &timeline);
        assert_eq!((v.lost_acknowledged, v.unknown_fate), (0, 0));
    }
}
