//! A circuit breaker per provider. It opens after a run of consecutive
//! failures. After a cool-down it lets one probe request through
//! (half-open), and the probe's outcome closes or reopens the circuit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The state reported by `/v1/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight; other requests skip the provider.
    HalfOpen,
}

/// Whether a request may go to the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Allowed,
    /// The request is the one probe of a half-open circuit.
    Probe,
    /// The circuit is open for this much longer.
    Rejected {
        remaining: Duration,
    },
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    provider: String,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl CircuitBreaker {
    pub(crate) fn new(provider: &str, threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            provider: provider.to_string(),
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        match *self.state.lock().unwrap() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if now >= until => CircuitState::HalfOpen,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen => CircuitState::HalfOpen,
        }
    }

    pub(crate) fn admit(&self, now: Instant) -> Admission {
        let mut state = self.state.lock().unwrap();
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                tracing::info!(provider = %self.provider, "circuit half-open: sending one probe request");
                Admission::Probe
            }
            State::Open { until } => Admission::Rejected {
                remaining: until - now,
            },
            State::HalfOpen => Admission::Rejected {
                remaining: Duration::ZERO,
            },
        }
    }

    pub(crate) fn record_success(&self) {
        let mut state = self.state.lock().unwrap();
        if !matches!(*state, State::Closed { .. }) {
            tracing::info!(provider = %self.provider, "circuit closed after a successful request");
        }
        *state = State::Closed { failures: 0 };
    }

    pub(crate) fn record_failure(&self, now: Instant) {
        let mut state = self.state.lock().unwrap();
        let open = match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => true,
            State::Closed { failures } => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            // A failed probe reopens the circuit for another cool-down.
            State::HalfOpen => true,
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: now + self.cooldown,
            };
            tracing::warn!(
                provider = %self.provider,
                cooldown_ms = self.cooldown.as_millis() as u64,
                "circuit opened after consecutive failures"
            );
        }
    }

    /// Returns a probe's slot when it ended without a verdict on the
    /// provider (a request error), so the next request probes again.
    pub(crate) fn release_probe(&self, now: Instant) {
        let mut state = self.state.lock().unwrap();
        if matches!(*state, State::HalfOpen) {
            *state = State::Open { until: now };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let breaker = CircuitBreaker::new("p", 3, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.record_failure(t0);
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), CircuitState::Closed);
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), CircuitState::Open);
        assert_eq!(
            breaker.admit(t0 + Duration::from_secs(4)),
            Admission::Rejected {
                remaining: Duration::from_secs(6)
            }
        );

        let later = t0 + Duration::from_secs(10);
        assert_eq!(breaker.admit(later), Admission::Probe);
        assert!(matches!(breaker.admit(later), Admission::Rejected { .. }));
        breaker.record_success();
        assert_eq!(breaker.state(later), CircuitState::Closed);
        assert_eq!(breaker.admit(later), Admission::Allowed);
    }

    #[test]
    fn failed_probe_reopens() {
        let breaker = CircuitBreaker::new("p", 1, Duration::from_secs(5));
        let t0 = Instant::now();
        breaker.record_failure(t0);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(breaker.admit(t1), Admission::Probe);
        breaker.record_failure(t1);
        assert_eq!(breaker.state(t1), CircuitState::Open);
        assert_eq!(
            breaker.state(t1 + Duration::from_secs(5)),
            CircuitState::HalfOpen
        );
    }

    #[test]
    fn success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new("p", 2, Duration::from_secs(5));
        let t0 = Instant::now();
        breaker.record_failure(t0);
        breaker.record_success();
        breaker.record_failure(t0);
        assert_eq!(breaker.state(t0), CircuitState::Closed);
    }
}
