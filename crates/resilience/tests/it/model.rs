//! A model-based test of the circuit breaker: random sequences of calls,
//! outcomes, durations, clock advances, isolations and resets, checked step
//! by step against a deliberately simple reference model.
//!
//! The model keeps plain counters and lists where the breaker packs an
//! atomic word and ring buffers; what must agree is everything observable:
//! admission or rejection (with its reason and retry time), whether a permit
//! is a probe, the reported state and retry time, and the state-change events.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use pybridge_resilience::{
    BreakerConfig, CircuitBreaker, Event, Outcome, OwnedPermit, RejectReason, State, StateChange,
    TransitionReason,
};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::support::nz;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Consecutive {
        threshold: u32,
    },
    Count {
        rate: f64,
        size: u32,
        min_calls: u32,
    },
    Time {
        rate: f64,
        window_ms: u64,
        min_calls: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Break {
    Fixed {
        ms: u64,
    },
    /// Doubling from `initial_ms`, capped at `max_ms`.
    Doubling {
        initial_ms: u64,
        max_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    mode: Mode,
    slow_ms: Option<u64>,
    pause: Break,
    probes: u32,
    successes: u32,
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Complete {
        permit: Pick,
        outcome: Outcome,
        took_ms: u64,
    },
    Drop {
        permit: Pick,
    },
    Advance {
        ms: u64,
    },
    Isolate,
    Reset,
}

/// Which outstanding permit an operation applies to. Mostly the newest, so
/// that probes are completed while their half-open period lasts, and
/// sometimes any, so that stale permits from earlier periods report too.
#[derive(Debug, Clone)]
enum Pick {
    Newest,
    Any(Index),
}

impl Pick {
    fn index(&self, len: usize) -> usize {
        match self {
            Pick::Newest => len - 1,
            Pick::Any(index) => index.index(len),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Admission {
    Admitted {
        probe: bool,
    },
    Rejected {
        reason: RejectReason,
        retry_at_ms: Option<u64>,
    },
}

#[derive(Debug, Clone)]
struct ModelPermit {
    generation: u64,
    probe: bool,
}

#[derive(Debug, Clone)]
struct Model {
    config: Config,
    now_ms: u64,
    state: State,
    generation: u64,
    consecutive: u32,
    recent: VecDeque<bool>,
    /// (bucket index, failed) of each call in the current closed period.
    timed: Vec<(u64, bool)>,
    probes: u32,
    probe_successes: u32,
    trips: u32,
    open_until_ms: u64,
    permits: Vec<ModelPermit>,
    /// What the last operation should have produced.
    admission: Option<Admission>,
    changes: Vec<(State, State, TransitionReason, u64)>,
}

impl Model {
    fn new(config: Config) -> Self {
        Model {
            config,
            now_ms: 0,
            state: State::Closed,
            generation: 0,
            consecutive: 0,
            recent: VecDeque::new(),
            timed: Vec::new(),
            probes: 0,
            probe_successes: 0,
            trips: 0,
            open_until_ms: 0,
            permits: Vec::new(),
            admission: None,
            changes: Vec::new(),
        }
    }

    fn reported_state(&self) -> State {
        if self.state == State::Open && self.now_ms >= self.open_until_ms {
            State::HalfOpen
        } else {
            self.state
        }
    }

    fn break_ms(&self) -> u64 {
        match self.config.pause {
            Break::Fixed { ms } => ms,
            Break::Doubling { initial_ms, max_ms } => {
                let factor = 1_u64.checked_shl(self.trips - 1).unwrap_or(u64::MAX);
                initial_ms.saturating_mul(factor).min(max_ms)
            }
        }
    }

    fn transition(&mut self, to: State, reason: TransitionReason) {
        let from = self.state;
        self.generation += 1;
        self.consecutive = 0;
        self.recent.clear();
        self.timed.clear();
        self.probes = 0;
        self.probe_successes = 0;
        match to {
            State::Open => {
                self.trips = if from == State::HalfOpen {
                    self.trips + 1
                } else {
                    1
                };
                self.open_until_ms = self.now_ms + self.break_ms();
            }
            State::Closed => self.trips = 0,
            _ => {}
        }
        self.state = to;
        if from != to {
            self.changes.push((from, to, reason, self.now_ms));
        }
    }

    fn acquire(&mut self) -> Admission {
        if self.state == State::Open && self.now_ms >= self.open_until_ms {
            self.transition(State::HalfOpen, TransitionReason::BreakElapsed);
        }
        let rejected = |reason, retry_at_ms| Admission::Rejected {
            reason,
            retry_at_ms,
        };
        match self.state {
            State::Closed => {
                self.permits.push(ModelPermit {
                    generation: self.generation,
                    probe: false,
                });
                Admission::Admitted { probe: false }
            }
            State::Open => rejected(RejectReason::Open, Some(self.open_until_ms)),
            State::HalfOpen if self.probes < self.config.probes => {
                self.probes += 1;
                self.permits.push(ModelPermit {
                    generation: self.generation,
                    probe: true,
                });
                Admission::Admitted { probe: true }
            }
            State::HalfOpen => rejected(RejectReason::HalfOpenFull, None),
            _ => rejected(RejectReason::Isolated, None),
        }
    }

    fn release(&mut self, permit: &ModelPermit) {
        if permit.probe && permit.generation == self.generation && self.state == State::HalfOpen {
            self.probes -= 1;
        }
    }

    fn complete(&mut self, permit: ModelPermit, outcome: Outcome, took_ms: u64) {
        let failed = match outcome {
            Outcome::Ignored => return self.release(&permit),
            Outcome::Failure => true,
            _ => self.config.slow_ms.is_some_and(|slow| took_ms > slow),
        };
        if permit.generation != self.generation {
            return;
        }
        if permit.probe {
            if self.state != State::HalfOpen {
                return;
            }
            if failed {
                self.transition(State::Open, TransitionReason::ProbeFailed);
            } else {
                self.probe_successes += 1;
                if self.probe_successes >= self.config.successes {
                    let successes = self.probe_successes;
                    self.transition(
                        State::Closed,
                        TransitionReason::ProbesSucceeded { successes },
                    );
                } else {
                    self.probes -= 1;
                }
            }
            return;
        }
        if self.state != State::Closed {
            return;
        }
        let (rate, min_calls, failures, calls) = match self.config.mode {
            Mode::Consecutive { threshold } => {
                self.consecutive = if failed { self.consecutive + 1 } else { 0 };
                if self.consecutive >= threshold {
                    let failures = self.consecutive;
                    self.transition(
                        State::Open,
                        TransitionReason::ConsecutiveFailures { failures },
                    );
                }
                return;
            }
            Mode::Count {
                rate,
                size,
                min_calls,
            } => {
                self.recent.push_back(failed);
                if self.recent.len() > size as usize {
                    self.recent.pop_front();
                }
                let failures = self.recent.iter().filter(|f| **f).count() as u32;
                (rate, min_calls, failures, self.recent.len() as u32)
            }
            Mode::Time {
                rate,
                window_ms,
                min_calls,
            } => {
                let bucket = self.now_ms / (window_ms / 10);
                self.timed.push((bucket, failed));
                let live: Vec<bool> = self
                    .timed
                    .iter()
                    .filter(|(b, _)| bucket - b < 10)
                    .map(|(_, f)| *f)
                    .collect();
                let failures = live.iter().filter(|f| **f).count() as u32;
                (rate, min_calls, failures, live.len() as u32)
            }
        };
        if calls >= min_calls && f64::from(failures) / f64::from(calls) >= rate {
            self.transition(
                State::Open,
                TransitionReason::FailureRate { failures, calls },
            );
        }
    }
}

struct Reference;

fn any_config() -> impl Strategy<Value = Config> {
    let rate = prop::sample::select(vec![0.25, 0.5, 0.75, 1.0]);
    let mode = prop_oneof![
        (1_u32..=4).prop_map(|threshold| Mode::Consecutive { threshold }),
        (rate.clone(), 1_u32..=6)
            .prop_flat_map(|(rate, size)| (Just(rate), Just(size), 1..=size))
            .prop_map(|(rate, size, min_calls)| Mode::Count {
                rate,
                size,
                min_calls
            }),
        (
            rate,
            prop::sample::select(vec![1_000_u64, 2_000, 5_000]),
            1_u32..=4
        )
            .prop_map(|(rate, window_ms, min_calls)| Mode::Time {
                rate,
                window_ms,
                min_calls
            }),
    ];
    let pause = prop_oneof![
        (50_u64..=500).prop_map(|ms| Break::Fixed { ms }),
        (50_u64..=250, 1_u64..=8).prop_map(|(initial_ms, times)| Break::Doubling {
            initial_ms,
            max_ms: initial_ms * times
        }),
    ];
    (
        mode,
        prop::option::of(10_u64..=200),
        pause,
        1_u32..=3,
        1_u32..=3,
    )
        .prop_map(|(mode, slow_ms, pause, probes, successes)| Config {
            mode,
            slow_ms,
            pause,
            probes,
            successes,
        })
}

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        any_config().prop_map(Model::new).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let outcome = prop_oneof![
            3 => Just(Outcome::Success),
            3 => Just(Outcome::Failure),
            1 => Just(Outcome::Ignored),
        ];
        let pick = prop_oneof![3 => Just(Pick::Newest), 1 => any::<Index>().prop_map(Pick::Any)];
        // Durations around the slow-call threshold, so that its boundary is
        // exercised, plus any duration.
        let took_ms = match state.config.slow_ms {
            Some(slow) => prop_oneof![
                prop::sample::select(vec![0, slow - 1, slow, slow + 1]),
                0_u64..=300,
            ]
            .boxed(),
            None => (0_u64..=300).boxed(),
        };
        // Isolation is sticky until a reset, so it is rare: most of a
        // sequence should exercise the automatic transitions.
        prop_oneof![
            24 => Just(Op::Acquire),
            24 => (pick.clone(), outcome, took_ms)
                .prop_map(|(permit, outcome, took_ms)| Op::Complete { permit, outcome, took_ms }),
            4 => pick.prop_map(|permit| Op::Drop { permit }),
            12 => prop_oneof![0_u64..=50, 50_u64..=1_000].prop_map(|ms| Op::Advance { ms }),
            1 => Just(Op::Isolate),
            1 => Just(Op::Reset),
        ]
        .boxed()
    }

    fn apply(mut model: Model, op: &Op) -> Model {
        model.admission = None;
        model.changes.clear();
        match op {
            Op::Acquire => model.admission = Some(model.acquire()),
            Op::Complete {
                permit,
                outcome,
                took_ms,
            } => {
                if !model.permits.is_empty() {
                    let permit = model.permits.remove(permit.index(model.permits.len()));
                    model.complete(permit, *outcome, *took_ms);
                }
            }
            Op::Drop { permit } => {
                if !model.permits.is_empty() {
                    let permit = model.permits.remove(permit.index(model.permits.len()));
                    model.release(&permit);
                }
            }
            Op::Advance { ms } => model.now_ms += ms,
            Op::Isolate => {
                if model.state != State::Isolated {
                    model.transition(State::Isolated, TransitionReason::Isolated);
                }
            }
            Op::Reset => model.transition(State::Closed, TransitionReason::Reset),
        }
        model
    }
}

struct Sut {
    runtime: tokio::runtime::Runtime,
    breaker: CircuitBreaker,
    start: Instant,
    permits: Vec<OwnedPermit>,
    events: broadcast::Receiver<Event>,
}

fn build(config: &Config) -> BreakerConfig {
    let builder = BreakerConfig::builder()
        .half_open_max_probes(nz(config.probes))
        .half_open_successes(nz(config.successes));
    let builder = match config.mode {
        Mode::Consecutive { threshold } => builder.consecutive_failures(nz(threshold)),
        Mode::Count {
            rate,
            size,
            min_calls,
        } => builder.failure_rate_over_calls(rate, nz(size), nz(min_calls)),
        Mode::Time {
            rate,
            window_ms,
            min_calls,
        } => builder.failure_rate_over_time(rate, Duration::from_millis(window_ms), nz(min_calls)),
    };
    let builder = match config.slow_ms {
        Some(ms) => builder.slow_call_threshold(Duration::from_millis(ms)),
        None => builder,
    };
    let builder = match config.pause {
        Break::Fixed { ms } => builder.break_duration(Duration::from_millis(ms)),
        Break::Doubling { initial_ms, max_ms } => builder.growing_break_duration(
            Duration::from_millis(initial_ms),
            2.0,
            Duration::from_millis(max_ms),
        ),
    };
    builder.build().expect("generated configurations are valid")
}

struct BreakerMatchesModel;

impl StateMachineTest for BreakerMatchesModel {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(model: &Model) -> Sut {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a test runtime");
        let (breaker, start) = runtime.block_on(async {
            let breaker = CircuitBreaker::new(build(&model.config));
            (breaker, Instant::now())
        });
        let events = breaker.subscribe();
        Sut {
            runtime,
            breaker,
            start,
            permits: Vec::new(),
            events,
        }
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        let at = |ms: u64| sut.start + Duration::from_millis(ms);
        let runtime = &sut.runtime;
        runtime.block_on(async {
            match op {
                Op::Acquire => {
                    let admission = match sut.breaker.try_acquire_owned() {
                        Ok(permit) => {
                            let probe = permit.is_probe();
                            sut.permits.push(permit);
                            Admission::Admitted { probe }
                        }
                        Err(rejected) => {
                            let retry_at_ms = rejected.retry_at().map(|retry_at| {
                                u64::try_from((retry_at - sut.start).as_millis()).unwrap()
                            });
                            if let Some(retry_at_ms) = retry_at_ms {
                                assert_eq!(
                                    rejected.retry_after(),
                                    Some(Duration::from_millis(retry_at_ms - model.now_ms))
                                );
                            }
                            Admission::Rejected {
                                reason: rejected.reason(),
                                retry_at_ms,
                            }
                        }
                    };
                    assert_eq!(Some(admission), model.admission, "admission");
                }
                Op::Complete {
                    permit,
                    outcome,
                    took_ms,
                } => {
                    if !sut.permits.is_empty() {
                        let permit = sut.permits.remove(permit.index(sut.permits.len()));
                        permit.record(outcome, Duration::from_millis(took_ms));
                    }
                }
                Op::Drop { permit } => {
                    if !sut.permits.is_empty() {
                        drop(sut.permits.remove(permit.index(sut.permits.len())));
                    }
                }
                Op::Advance { ms } => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::Isolate => sut.breaker.isolate(),
                Op::Reset => sut.breaker.reset(),
            }
            let changes: Vec<_> = std::iter::from_fn(|| sut.events.try_recv().ok())
                .map(|event| match event {
                    Event::StateChanged(StateChange {
                        from,
                        to,
                        reason,
                        at,
                        ..
                    }) => (from, to, reason, at),
                    other => panic!("unexpected event {other:?}"),
                })
                .collect();
            let expected: Vec<_> = model
                .changes
                .iter()
                .map(|&(from, to, reason, ms)| (from, to, reason, at(ms)))
                .collect();
            assert_eq!(changes, expected, "state changes");
        });
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        sut.runtime.block_on(async {
            assert_eq!(sut.breaker.state(), model.reported_state(), "state");
            let expected = (model.state == State::Open)
                .then(|| sut.start + Duration::from_millis(model.open_until_ms));
            assert_eq!(sut.breaker.retry_at(), expected, "retry time");
            assert_eq!(sut.permits.len(), model.permits.len());
        });
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        .. ProptestConfig::default()
    })]

    #[test]
    fn the_breaker_matches_its_model(sequential 1..150 => BreakerMatchesModel);
}
