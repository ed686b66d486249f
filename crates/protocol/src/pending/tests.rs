//! A model-based test of the pending table: random operations applied to the
//! table and to a simple model must agree, and the table's internal indexes
//! must stay consistent.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{Deadline, Pending, PendingError, PendingTable, TableState, lock};
use crate::{Id, Response};

#[derive(Debug, Clone)]
enum Op {
    Register { id: u8, deadline: Option<u8> },
    Complete(u8),
    Fail(u8),
    FailAll,
    Close,
    Expire(u8),
    Drop(usize),
    Poll(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, prop::option::of(0u8..20)).prop_map(|(id, deadline)| Op::Register { id, deadline }),
        3 => (0u8..6).prop_map(Op::Complete),
        1 => (0u8..6).prop_map(Op::Fail),
        1 => Just(Op::FailAll),
        1 => Just(Op::Close),
        2 => (0u8..25).prop_map(Op::Expire),
        2 => any::<usize>().prop_map(Op::Drop),
        2 => any::<usize>().prop_map(Op::Poll),
    ]
}

/// What a call should resolve to.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Waiting,
    Answered(u8),
    Failed(String),
    Deadline,
}

struct Handle {
    id: u8,
    pending: Pending<String>,
    expected: Expected,
}

#[derive(Default)]
struct Model {
    /// Pending ids: which handle (by serial number) waits, and its deadline.
    entries: HashMap<u8, (u64, Option<u8>)>,
    closed: Option<String>,
}

fn id(n: u8) -> Id {
    Id::Number(i64::from(n))
}

fn check_internals(table: &PendingTable<String>, model: &Model, base: Instant) {
    let state = lock(&table.shared.state);
    assert_eq!(state.entries.len(), model.entries.len());
    let with_deadline = model.entries.values().filter(|(_, d)| d.is_some()).count();
    let live: Vec<&Deadline> = state
        .deadlines
        .iter()
        .map(|Reverse(d)| d)
        .filter(|d| TableState::is_live(&state.entries, d))
        .collect();
    assert_eq!(live.len(), with_deadline, "a live deadline per timed entry");
    for deadline in live {
        let entry = &state.entries[&deadline.id];
        assert_eq!(entry.deadline, Some(deadline.key()));
    }

    drop(state);
    let earliest = model
        .entries
        .values()
        .filter_map(|(_, d)| *d)
        .min()
        .map(|s| base + Duration::from_secs(u64::from(s)));
    assert_eq!(table.next_deadline(), earliest);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_table_behaves_like_its_model(ops in prop::collection::vec(op(), 1..60)) {
        let base = Instant::now();
        let at = |s: u8| base + Duration::from_secs(u64::from(s));
        let table = PendingTable::<String>::new();
        let mut model = Model::default();
        let mut handles: Vec<(u64, Handle)> = Vec::new();
        let mut serial = 0u64;
        let resolve = |handles: &mut Vec<(u64, Handle)>, who: u64, outcome: Expected| {
            if let Some((_, h)) = handles.iter_mut().find(|(s, _)| *s == who) {
                assert_eq!(h.expected, Expected::Waiting);
                h.expected = outcome;
            }
        };

        for op in ops {
            match op {
                Op::Register { id: n, deadline } => {
                    let result = match deadline {
                        Some(d) => table.register_with_deadline(id(n), at(d)),
                        None => table.register(id(n)),
                    };
                    serial += 1;
                    if let Some(reason) = &model.closed {
                        let pending = result.expect("a closed table registers failed calls");
                        handles.push((serial, Handle { id: n, pending, expected: Expected::Failed(reason.clone()) }));
                    } else if let std::collections::hash_map::Entry::Vacant(slot) = model.entries.entry(n) {
                        let pending = result.expect("a free id registers");
                        slot.insert((serial, deadline));
                        handles.push((serial, Handle { id: n, pending, expected: Expected::Waiting }));
                    } else {
                        assert!(matches!(result, Err(crate::Error::DuplicateId { .. })));
                    }
                }
                Op::Complete(n) => {
                    let response = Response::success(id(n), &n).expect("serializes");
                    let result = table.complete(response);
                    match model.entries.remove(&n) {
                        Some((who, _)) => {
                            prop_assert!(result.is_ok());
                            resolve(&mut handles, who, Expected::Answered(n));
                        }
                        None => prop_assert!(result.is_err()),
                    }
                }
                Op::Fail(n) => {
                    let failed = table.fail(&id(n), format!("fail {n}"));
                    match model.entries.remove(&n) {
                        Some((who, _)) => {
                            prop_assert!(failed);
                            resolve(&mut handles, who, Expected::Failed(format!("fail {n}")));
                        }
                        None => prop_assert!(!failed),
                    }
                }
                Op::FailAll | Op::Close => {
                    let reason = format!("{op:?}");
                    let n = if matches!(op, Op::Close) {
                        model.closed = Some(reason.clone());
                        table.close(&reason)
                    } else {
                        table.fail_all(&reason)
                    };
                    prop_assert_eq!(n, model.entries.len());
                    for (_, (who, _)) in model.entries.drain() {
                        resolve(&mut handles, who, Expected::Failed(reason.clone()));
                    }
                }
                Op::Expire(t) => {
                    let n = table.expire(at(t));
                    let due: Vec<u8> = model
                        .entries
                        .iter()
                        .filter(|(_, (_, d))| d.is_some_and(|d| d <= t))
                        .map(|(id, _)| *id)
                        .collect();
                    prop_assert_eq!(n, due.len());
                    for id in due {
                        let (who, _) = model.entries.remove(&id).expect("due ids are pending");
                        resolve(&mut handles, who, Expected::Deadline);
                    }
                }
                Op::Drop(i) if !handles.is_empty() => {
                    let (who, handle) = handles.remove(i % handles.len());
                    if model.entries.get(&handle.id).is_some_and(|(w, _)| *w == who) {
                        model.entries.remove(&handle.id);
                    }
                    drop(handle.pending);
                }
                Op::Poll(i) if !handles.is_empty() => {
                    let index = i % handles.len();
                    let handle = &mut handles[index].1;
                    let polled = Pin::new(&mut handle.pending).poll(&mut Context::from_waker(Waker::noop()));
                    let got = match polled {
                        Poll::Pending => Expected::Waiting,
                        Poll::Ready(Ok(response)) => {
                            prop_assert_eq!(&response.id, &id(handle.id));
                            Expected::Answered(response.result_as::<u8>().expect("a number"))
                        }
                        Poll::Ready(Err(PendingError::Failed(reason))) => Expected::Failed(reason),
                        Poll::Ready(Err(PendingError::DeadlineExceeded)) => Expected::Deadline,
                        Poll::Ready(Err(other)) => panic!("unexpected outcome {other:?}"),
                    };
                    prop_assert_eq!(&got, &handle.expected);
                    if got != Expected::Waiting {
                        // A resolved future is done; dropping it must change nothing.
                        let (_, handle) = handles.remove(index);
                        drop(handle.pending);
                    }
                }
                Op::Drop(_) | Op::Poll(_) => {}
            }
            check_internals(&table, &model, base);
            prop_assert_eq!(table.len(), model.entries.len());
        }
        // Dropping every remaining call leaves the table empty.
        handles.clear();
        prop_assert!(table.is_empty());
        check_internals(&table, &Model::default(), base);
    }
}

#[test]
fn dropping_the_table_clears_its_indexes_and_wakes_waiters() {
    let table = PendingTable::<String>::new();
    let mut timed = table
        .register_with_deadline(id(1), Instant::now())
        .expect("new id");
    let mut plain = table.register(id(2)).expect("new id");
    let weak = std::sync::Arc::downgrade(&table.shared);
    drop(table);
    assert!(
        weak.upgrade().is_none(),
        "calls do not keep the table alive"
    );
    for call in [&mut timed, &mut plain] {
        let polled = Pin::new(call).poll(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(
            polled,
            Poll::Ready(Err(PendingError::TableDropped))
        ));
    }
}

/// Answered calls leave their deadlines behind in the heap; the table drops
/// them once they outnumber the live, and a stale deadline of a reused id
/// never fires the call that holds the id now.
#[test]
fn stale_deadlines_are_dropped_and_never_fire_a_later_call() {
    let table = PendingTable::<String>::new();
    let base = Instant::now();
    let early = base + Duration::from_secs(1);
    let late = base + Duration::from_secs(100);
    // Four calls stay pending throughout, with deadlines after the others'.
    let kept: Vec<_> = (0..4)
        .map(|n| {
            table
                .register_with_deadline(Id::Number(1_000_000 + n), late)
                .expect("a new id")
        })
        .collect();
    for round in 0..10_000_i64 {
        let id = Id::Number(round % 7);
        let call = table
            .register_with_deadline(id.clone(), early)
            .expect("the id is free again");
        let heap = lock(&table.shared.state).deadlines.len();
        assert!(
            heap <= 2 * table.len() + 64,
            "round {round}: {heap} deadlines kept"
        );
        let response = Response {
            id,
            result: Ok(serde_json::value::RawValue::from_string("1".into()).expect("JSON")),
        };
        assert!(table.complete(response).is_ok());
        drop(call);
    }
    // Id 3 is registered again, due late: the stale early deadlines of
    // every earlier id 3 must not fire it.
    let again = table
        .register_with_deadline(Id::Number(3), late)
        .expect("a free id");
    assert_eq!(table.next_deadline(), Some(late));
    assert_eq!(table.expire(early + Duration::from_secs(1)), 0);
    assert!(table.contains(&Id::Number(3)));
    assert_eq!(table.expire(late), 5);
    drop((kept, again));
    assert!(table.is_empty());
}
