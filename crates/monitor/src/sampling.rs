//! Ratio sampling decided from the trace id, as OpenTelemetry's `TraceIdRatioBased` decides it, so
//! that every service of a trace that samples by ratio makes the same decision (feature `otlp`).
//!
//! The rule (opentelemetry-sdk's `TraceIdRatioBased`, the OpenTelemetry specification's
//! `TraceIdRatioBased` sampler): a trace is kept when the low 64 bits of its id, shifted right by
//! one, are below `ratio × 2^63`. A service with the same or a higher ratio keeps every trace a
//! service with a lower ratio kept.
//!
//! Head sampling decides before any span exists ([`crate::export::HeadSampler`]), so for a root
//! request the decision is made on a trace id drawn for it, and only a kept request builds spans.
//! The SDK then gives the root span its trace id from [`RatioTraceIds`], which draws ids **among
//! those the ratio keeps**: the exported trace's id carries the decision that was made, and a
//! downstream service that samples by the same ratio from the trace id (not parent-based) keeps it
//! too. (Drawing a random id and keeping the request when the id passes, and drawing the kept
//! request's id uniformly among passing ids, give the same distribution of decisions and ids.)

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// A caller's trace, from its valid W3C `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteParent {
    /// The trace id (128 bits, big-endian as in the header).
    pub trace_id: u128,
    /// The `sampled` flag.
    pub sampled: bool,
}

/// `ratio × 2^63`, the bound the low half of a kept trace id stays under (`None`: keep all).
fn bound(ratio: f64) -> Option<u64> {
    if ratio >= 1.0 {
        return None;
    }
    // Saturating float-to-int conversion: a negative or NaN ratio keeps nothing.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    Some(bound)
}

/// Whether `TraceIdRatioBased(ratio)` keeps the trace `trace_id`.
pub(crate) fn keeps(ratio: f64, trace_id: u128) -> bool {
    match bound(ratio) {
        None => true,
        // The low 64 bits of the id (a truncation on purpose).
        #[allow(clippy::cast_possible_truncation)]
        Some(bound) => ((trace_id as u64) >> 1) < bound,
    }
}

/// A fresh random trace id, as the SDK draws them.
pub(crate) fn random_trace_id() -> u128 {
    u128::from_be_bytes(RandomIdGenerator::default().new_trace_id().to_bytes())
}

/// The SDK's id generator under head sampling: random span ids, and random trace ids among those
/// `TraceIdRatioBased(ratio)` keeps (see the module docs). Only requests head sampling kept build
/// spans, so every root trace id the SDK asks for belongs to a kept trace.
#[derive(Debug, Clone, Copy)]
pub struct RatioTraceIds {
    ratio: f64,
}

impl RatioTraceIds {
    /// Trace ids that `TraceIdRatioBased(ratio)` keeps.
    #[must_use]
    pub fn new(ratio: f64) -> Self {
        Self { ratio }
    }
}

impl IdGenerator for RatioTraceIds {
    fn new_trace_id(&self) -> TraceId {
        let random = random_trace_id();
        let Some(bound) = bound(self.ratio).filter(|&b| b > 0) else {
            // Every id is kept (or, at ratio 0, none is: no root span is ever built then).
            return TraceId::from_bytes(random.to_be_bytes());
        };
        // The low half mapped uniformly onto the kept range (multiply-shift), keeping its last
        // bit; the high half stays random.
        #[allow(clippy::cast_possible_truncation)]
        let low = random as u64;
        #[allow(clippy::cast_possible_truncation)]
        let kept = ((u128::from(low >> 1) * u128::from(bound)) >> 63) as u64;
        let id = (random >> 64 << 64) | u128::from((kept << 1) | (low & 1));
        // An all-zero trace id is invalid (a chance of 2^-64 or less).
        let id = if id == 0 { 1 << 64 } else { id };
        TraceId::from_bytes(id.to_be_bytes())
    }

    fn new_span_id(&self) -> SpanId {
        RandomIdGenerator::default().new_span_id()
    }
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed assertion.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use opentelemetry::trace::SpanKind;
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample as _};

    fn sdk_keeps(ratio: f64, trace_id: u128) -> bool {
        let result = Sampler::TraceIdRatioBased(ratio).should_sample(
            None,
            TraceId::from_bytes(trace_id.to_be_bytes()),
            "span",
            &SpanKind::Server,
            &[],
            &[],
        );
        result.decision == SamplingDecision::RecordAndSample
    }

    #[test]
    fn the_decision_is_the_sdks_for_the_same_trace_id() {
        for ratio in [0.0, 0.001, 0.1, 0.5, 0.9, 1.0, 2.0, -1.0] {
            let mut kept = 0u32;
            for _ in 0..20_000 {
                let id = random_trace_id();
                assert_eq!(keeps(ratio, id), sdk_keeps(ratio, id), "{ratio} {id:032x}");
                kept += u32::from(keeps(ratio, id));
            }
            let expected = 20_000.0 * ratio.clamp(0.0, 1.0);
            assert!(
                (f64::from(kept) - expected).abs() < 400.0,
                "{kept} kept at {ratio}"
            );
        }
        // The edges of the rule, by hand.
        let bound = (0.1 * (1u64 << 63) as f64) as u64;
        let at = |low: u64| u128::from(low) | 7 << 64;
        assert!(keeps(0.1, at((bound - 1) << 1 | 1)) && sdk_keeps(0.1, at((bound - 1) << 1 | 1)));
        assert!(!keeps(0.1, at(bound << 1)) && !sdk_keeps(0.1, at(bound << 1)));
    }

    #[test]
    fn head_sampling_decides_from_the_parents_trace_id() {
        use crate::export::HeadSampler;
        let sampler = |name: &'static str| {
            HeadSampler::from_vars(&move |var: &str| match var {
                "OTEL_TRACES_SAMPLER" => Some(name.to_owned()),
                "OTEL_TRACES_SAMPLER_ARG" => Some("0.1".to_owned()),
                _ => None,
            })
        };
        let (ratio, parent_based) = (sampler("traceidratio"), sampler("parentbased_traceidratio"));
        let mut kept = 0;
        for _ in 0..5_000 {
            let trace_id = random_trace_id();
            for sampled in [true, false] {
                let parent = Some(RemoteParent { trace_id, sampled });
                // By ratio: the caller's trace id decides, as the SDK's sampler would.
                assert_eq!(ratio.sample_trace(parent), sdk_keeps(0.1, trace_id));
                // Parent-based: the caller's flag.
                assert_eq!(parent_based.sample_trace(parent), sampled);
            }
            kept += usize::from(parent_based.sample_trace(None));
        }
        assert!((350..650).contains(&kept), "{kept} roots of 5000 at 0.1");
        // The SDK's root trace ids then carry the decision.
        let id = ratio.id_generator().new_trace_id();
        assert!(sdk_keeps(0.1, u128::from_be_bytes(id.to_bytes())));
    }

    #[test]
    fn generated_trace_ids_are_kept_by_the_ratio_and_spread_over_it() {
        for ratio in [0.1, 0.5, 0.0001, 1.0] {
            let ids = RatioTraceIds::new(ratio);
            let mut lows = std::collections::HashSet::new();
            let mut above_half_of_range = 0;
            for _ in 0..10_000 {
                let id = u128::from_be_bytes(ids.new_trace_id().to_bytes());
                assert!(id != 0);
                assert!(sdk_keeps(ratio, id), "{ratio} {id:032x}");
                #[allow(clippy::cast_possible_truncation)]
                let low = id as u64;
                lows.insert(low);
                let half = bound(ratio).unwrap_or(1 << 63) / 2;
                above_half_of_range += usize::from((low >> 1) >= half);
            }
            assert!(lows.len() > 9_990, "random ids at {ratio}");
            assert!(
                (4_500..5_500).contains(&above_half_of_range),
                "uniform over the kept range at {ratio}: {above_half_of_range}"
            );
        }
        let span = RatioTraceIds::new(0.1).new_span_id();
        assert_ne!(span, SpanId::INVALID);
    }
}
