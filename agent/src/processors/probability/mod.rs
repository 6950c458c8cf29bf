//! Consistent probability sampling for a downstream sampler (an agent on the collection
//! path), per the OpenTelemetry specification "TraceState: Probability Sampling" (OTEP 235)
//! and W3C Trace Context Level 2 randomness.
//!
//! Owns [`Sampler`] (a configured percentage and mode), the span decision (randomness from
//! the `ot` entry's `rv`, else the trace id's low 56 bits; keep when `R >= T`; the outgoing
//! `th` written back into the tracestate), the log-record decision, and [`FastRng`] for
//! records without a trace id. It knows nothing of OTLP encoding: callers pass the trace
//! id, tracestate and flags they read, and write back the tracestate this module produces.
//! It must never raise an incoming threshold's sampling probability (a downstream sampler
//! may only lower it) and never allocate unless the tracestate changes.
//!
//! # Span decision
//! 1. Randomness `R`: a valid `rv` in the `ot` entry, else the trace id's last 7 bytes. With
//!    neither (no valid `rv`, trace id not 16 non-zero bytes) the span is dropped
//!    ([`Anomalies::MISSING_RANDOMNESS`]): fail closed, as the Collector's probabilistic
//!    sampler does by default.
//! 2. Incoming threshold `T_s`: a valid `th`, else none (unknown probability). A `T_s` with
//!    `R < T_s` could not have been sampled: it is erased ([`Anomalies::INCONSISTENT_TH`]),
//!    as the specification asks.
//! 3. Outgoing threshold `T_o`:
//!    - [`Mode::Equalizing`]: `max(T_s, T_d)`: the configured threshold `T_d`, unless the
//!      span already went through a stricter stage;
//!    - [`Mode::Proportional`]: the threshold of `p × probability(T_s)`: every span's
//!      probability is multiplied by the configured `p`; below 2^-56 the span is dropped.
//! 4. Keep when `R >= T_o`. A kept span whose tracestate does not already say `th:T_o`
//!    gets a rewritten tracestate ([`TraceStateEdit::Rewritten`]).
//!
//! # Log records
//! A record with a valid trace id gets the same decision as that trace's spans at this
//! threshold (`R` from the trace id, `R >= T_d`); one without draws `R` from a [`FastRng`].

mod threshold;
mod tracestate;

#[cfg(test)]
mod tests;

pub use threshold::{
    ProbabilityError, Randomness, ThValue, Threshold, DEFAULT_PRECISION, MAX_ADJUSTED_COUNT,
};
pub use tracestate::{TraceState, TraceStateError, MAX_MEMBERS, MAX_VALUE_LEN};

/// How a downstream sampler combines its probability with an earlier stage's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Aim for the configured probability for every span (the specification's "equalizing"
    /// sampler): spans already sampled at a lower probability pass unchanged.
    #[default]
    Equalizing,
    /// Multiply every span's probability by the configured one (the "proportional" sampler).
    Proportional,
}

/// What went wrong in the inputs of one decision, for the caller's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Anomalies(u8);

impl Anomalies {
    /// The tracestate header breaks the W3C list rules: ignored for sampling, not rewritten.
    pub const MALFORMED_TRACESTATE: Anomalies = Anomalies(1);
    /// The `ot` entry's value breaks its grammar (dropped on rewrite).
    pub const MALFORMED_OT: Anomalies = Anomalies(1 << 1);
    /// `th` is not 1–14 hex digits: treated as absent.
    pub const INVALID_TH: Anomalies = Anomalies(1 << 2);
    /// `rv` is not 14 hex digits: treated as absent.
    pub const INVALID_RV: Anomalies = Anomalies(1 << 3);
    /// The incoming `th` is above the randomness: erased.
    pub const INCONSISTENT_TH: Anomalies = Anomalies(1 << 4);
    /// No `rv` and no usable trace id: the item is dropped.
    pub const MISSING_RANDOMNESS: Anomalies = Anomalies(1 << 5);
    /// Randomness taken from a trace id whose W3C "random" flag (0x02) is not set: the
    /// specification presumes it random during migration; counted so operators can see it.
    pub const PRESUMED_RANDOM_TRACE_ID: Anomalies = Anomalies(1 << 6);
    /// The rewritten `ot` value would exceed 256 characters: the tracestate is left as it
    /// was (so it carries no `th` for this stage).
    pub const OT_TOO_LONG: Anomalies = Anomalies(1 << 7);

    /// Every anomaly with its metric `reason` label.
    pub const ALL: [(Anomalies, &'static str); 8] = [
        (Anomalies::MALFORMED_TRACESTATE, "malformed_tracestate"),
        (Anomalies::MALFORMED_OT, "malformed_ot"),
        (Anomalies::INVALID_TH, "invalid_th"),
        (Anomalies::INVALID_RV, "invalid_rv"),
        (Anomalies::INCONSISTENT_TH, "inconsistent_th"),
        (Anomalies::MISSING_RANDOMNESS, "missing_randomness"),
        (
            Anomalies::PRESUMED_RANDOM_TRACE_ID,
            "presumed_random_trace_id",
        ),
        (Anomalies::OT_TOO_LONG, "ot_too_long"),
    ];

    /// No anomaly.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every anomaly in `other` is present.
    pub fn contains(self, other: Anomalies) -> bool {
        self.0 & other.0 == other.0
    }

    /// The reason labels of the anomalies present.
    pub fn reasons(self) -> impl Iterator<Item = &'static str> {
        Anomalies::ALL
            .into_iter()
            .filter(move |(a, _)| self.contains(*a))
            .map(|(_, r)| r)
    }

    fn insert(&mut self, other: Anomalies) {
        self.0 |= other.0;
    }
}

/// Where the randomness of a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomnessSource {
    /// The `rv` sub-key.
    Explicit,
    /// The trace id's low 56 bits.
    TraceId,
    /// A pseudo-random draw (log records without a trace id).
    Drawn,
    /// None was available (the item is dropped).
    Missing,
}

/// What happened to the tracestate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStateEdit {
    /// Keep the incoming tracestate as it is.
    Unchanged,
    /// Replace it with the buffer the caller passed.
    Rewritten,
}

/// The decision for one span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanDecision {
    /// Keep the span.
    pub keep: bool,
    /// The threshold the kept span carries out (`None` when dropped, or when the
    /// tracestate could not be rewritten).
    pub threshold: Option<Threshold>,
    pub trace_state: TraceStateEdit,
    pub randomness: RandomnessSource,
    pub anomalies: Anomalies,
}

/// The decision for one log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDecision {
    pub keep: bool,
    pub randomness: RandomnessSource,
}

/// The span fields a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct SpanInput<'a> {
    /// The span's trace id (16 bytes when valid).
    pub trace_id: &'a [u8],
    /// The span's W3C tracestate header (empty when none).
    pub trace_state: &'a str,
    /// The span's OTLP `flags` (the low 8 bits are the W3C trace flags; 0x02 is "random").
    pub flags: u32,
}

/// The W3C Level 2 "random" trace flag.
pub const RANDOM_TRACE_FLAG: u32 = 0x02;

/// A configured downstream sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    threshold: Threshold,
    probability: f64,
    mode: Mode,
    precision: u8,
}

impl Sampler {
    /// A sampler keeping `percentage` percent (0–100; 0 keeps nothing) in `mode`, encoding
    /// thresholds with `precision` hex digits ([`DEFAULT_PRECISION`] is 4).
    pub fn new(percentage: f64, mode: Mode, precision: u8) -> Result<Sampler, ProbabilityError> {
        if !(0.0..=100.0).contains(&percentage) {
            return Err(ProbabilityError::OutOfRange(percentage / 100.0));
        }
        let threshold = Threshold::from_percentage(percentage, precision)?;
        Ok(Sampler {
            threshold,
            probability: threshold.probability(),
            mode,
            precision,
        })
    }

    /// The configured threshold `T_d`.
    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// Decides for one span. When the decision says [`TraceStateEdit::Rewritten`], `out`
    /// holds the new tracestate; otherwise `out` is not touched.
    pub fn sample_span(&self, span: SpanInput<'_>, out: &mut String) -> SpanDecision {
        let mut anomalies = Anomalies::default();
        let parsed = match TraceState::parse(span.trace_state) {
            Ok(ts) => Some(ts),
            Err(_) => {
                anomalies.insert(Anomalies::MALFORMED_TRACESTATE);
                None
            }
        };
        if let Some(ts) = &parsed {
            if ts.ot_malformed {
                anomalies.insert(Anomalies::MALFORMED_OT);
            }
            if ts.th_invalid {
                anomalies.insert(Anomalies::INVALID_TH);
            }
            if ts.rv_invalid {
                anomalies.insert(Anomalies::INVALID_RV);
            }
        }
        let explicit = parsed.as_ref().and_then(|ts| ts.rv);
        let (r, randomness) = match (explicit, Randomness::from_trace_id(span.trace_id)) {
            (Some(rv), _) => (rv, RandomnessSource::Explicit),
            (None, Some(r)) => {
                if span.flags & RANDOM_TRACE_FLAG == 0 {
                    anomalies.insert(Anomalies::PRESUMED_RANDOM_TRACE_ID);
                }
                (r, RandomnessSource::TraceId)
            }
            (None, None) => {
                anomalies.insert(Anomalies::MISSING_RANDOMNESS);
                return SpanDecision {
                    keep: false,
                    threshold: None,
                    trace_state: TraceStateEdit::Unchanged,
                    randomness: RandomnessSource::Missing,
                    anomalies,
                };
            }
        };
        let mut incoming = parsed.as_ref().and_then(|ts| ts.th);
        if incoming.is_some_and(|t| !t.keeps(r)) {
            anomalies.insert(Anomalies::INCONSISTENT_TH);
            incoming = None;
        }
        let outgoing = self.outgoing(incoming);
        let keep = outgoing.keeps(r);
        let mut decision = SpanDecision {
            keep,
            threshold: keep.then_some(outgoing),
            trace_state: TraceStateEdit::Unchanged,
            randomness,
            anomalies,
        };
        let Some(ts) = parsed.filter(|_| keep) else {
            if keep {
                decision.threshold = None; // a malformed tracestate is not rewritten
            }
            return decision;
        };
        let clean = !anomalies.contains(Anomalies::MALFORMED_OT)
            && !anomalies.contains(Anomalies::INVALID_TH)
            && !anomalies.contains(Anomalies::INVALID_RV)
            && !anomalies.contains(Anomalies::INCONSISTENT_TH);
        if clean && ts.th == Some(outgoing) {
            return decision;
        }
        match ts.write_with_threshold(outgoing, out) {
            Ok(()) => decision.trace_state = TraceStateEdit::Rewritten,
            Err(_) => {
                decision.anomalies.insert(Anomalies::OT_TOO_LONG);
                decision.threshold = None;
            }
        }
        decision
    }

    fn outgoing(&self, incoming: Option<Threshold>) -> Threshold {
        match self.mode {
            Mode::Equalizing => incoming.map_or(self.threshold, |t| t.max(self.threshold)),
            Mode::Proportional => {
                if self.threshold == Threshold::NEVER {
                    return Threshold::NEVER;
                }
                let p = self.probability * incoming.map_or(1.0, Threshold::probability);
                // Below 2^-56 there is no threshold: the span is not sampled.
                let t = Threshold::from_probability(p, self.precision).unwrap_or(Threshold::NEVER);
                // Rounding must never lower an incoming threshold.
                incoming.map_or(t, |i| t.max(i))
            }
        }
    }

    /// Decides for one log record: by its trace id when it has a valid one (the same
    /// decision as the trace's spans at `T_d`), else by a draw from `rng`.
    pub fn sample_log(&self, trace_id: &[u8], rng: &mut FastRng) -> LogDecision {
        match Randomness::from_trace_id(trace_id) {
            Some(r) => LogDecision {
                keep: self.threshold.keeps(r),
                randomness: RandomnessSource::TraceId,
            },
            None => LogDecision {
                keep: self.threshold.keeps(Randomness::from_bits(rng.next_u64())),
                randomness: RandomnessSource::Drawn,
            },
        }
    }
}

/// SplitMix64: a small, fast, statistically sound (not cryptographic) generator for the
/// random decisions of records without a trace id. One per worker; not shared.
#[derive(Debug, Clone)]
pub struct FastRng {
    state: u64,
}

impl FastRng {
    /// A generator with a fixed seed (tests, reproducible runs).
    pub fn from_seed(seed: u64) -> FastRng {
        FastRng { state: seed }
    }

    /// A generator seeded from the operating system's random source.
    pub fn from_entropy() -> Result<FastRng, ring::error::Unspecified> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 8];
        ring::rand::SystemRandom::new().fill(&mut seed)?;
        Ok(FastRng {
            state: u64::from_le_bytes(seed),
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
