//! The pending-request table: routing responses by id, deregistering on drop,
//! failing calls in bulk, deadlines, and concurrent use.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pybridge_protocol::{
    Error, ErrorCode, ErrorObject, Id, Pending, PendingError, PendingResult, PendingTable, Response,
};

type Table = PendingTable<String>;

fn poll(pending: &mut Pending<String>) -> Poll<PendingResult<String>> {
    Pin::new(pending).poll(&mut Context::from_waker(Waker::noop()))
}

/// What a pending call resolved to, for comparison.
#[derive(Debug, PartialEq)]
enum Outcome {
    Waiting,
    Answered { id: Id, result: String },
    Failed(String),
    Deadline,
    Other(String),
}

fn outcome(pending: &mut Pending<String>) -> Outcome {
    match poll(pending) {
        Poll::Pending => Outcome::Waiting,
        Poll::Ready(Ok(response)) => Outcome::Answered {
            id: response.id.clone(),
            result: match &response.result {
                Ok(raw) => raw.get().to_owned(),
                Err(e) => format!("error {}", e.code),
            },
        },
        Poll::Ready(Err(PendingError::Failed(reason))) => Outcome::Failed(reason),
        Poll::Ready(Err(PendingError::DeadlineExceeded)) => Outcome::Deadline,
        Poll::Ready(Err(other)) => Outcome::Other(other.to_string()),
    }
}

fn check(pending: &mut Pending<String>, expected: Outcome) {
    assert_eq!(outcome(pending), expected, "call {}", pending.id());
}

fn answered(id: impl Into<Id>, result: &str) -> Outcome {
    Outcome::Answered {
        id: id.into(),
        result: result.to_owned(),
    }
}

fn response(id: impl Into<Id>, result: i64) -> Response {
    Response::success(id, &result).expect("an integer serializes")
}

#[test]
fn register_and_complete() {
    let table = Table::new();
    assert!(table.is_empty());
    let mut one = table.register(Id::Number(1)).expect("new id");
    let mut two = table.register(Id::from("two")).expect("new id");
    assert_eq!(table.len(), 2);
    assert!(table.contains(&Id::Number(1)));
    assert_eq!(one.id(), &Id::Number(1));
    check(&mut one, Outcome::Waiting);

    table.complete(response("two", 2)).expect("pending");
    table
        .complete(Response::error(
            1,
            ErrorObject::standard(ErrorCode::METHOD_NOT_FOUND),
        ))
        .expect("pending");
    assert!(table.is_empty());
    check(&mut two, answered("two", "2"));
    check(&mut one, answered(1, "error -32601"));
}

#[test]
fn unknown_and_late_responses_are_given_back() {
    let table = Table::new();
    let back = table
        .complete(response(5, 1))
        .expect_err("nobody waits for 5");
    assert_eq!(back.id, Id::Number(5));
    let mut call = table.register(Id::Number(5)).expect("new id");
    table.complete(response(5, 1)).expect("pending");
    // A second response for the same id arrives late.
    let back = table
        .complete(response(5, 2))
        .expect_err("already answered");
    assert_eq!(back.result.expect("a result").get(), "2");
    check(&mut call, answered(5, "1"));
    // Ids of different kinds are different ids.
    let _call = table.register(Id::Number(7)).expect("new id");
    assert!(table.complete(response("7", 0)).is_err());
    assert!(table.complete(response(Id::Null, 0)).is_err());
}

#[test]
fn duplicate_id_is_an_error() {
    let table = Table::new();
    let _first = table.register(Id::Number(1)).expect("new id");
    let err = table.register(Id::Number(1)).expect_err("duplicate");
    assert!(
        matches!(&err, Error::DuplicateId { id } if id == &Id::Number(1)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "request id 1 is already pending");
    assert!(!err.is_retryable());
    assert!(
        table
            .register_with_deadline(Id::Number(1), Instant::now())
            .is_err()
    );
    assert_eq!(table.len(), 1);
}

#[test]
fn dropping_a_call_deregisters_it() {
    let table = Table::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let call = table.register(Id::Number(1)).expect("new id");
    let timed = table
        .register_with_deadline(Id::Number(2), deadline)
        .expect("new id");
    assert_eq!(table.len(), 2);
    assert_eq!(table.next_deadline(), Some(deadline));
    drop(call);
    drop(timed);
    assert_eq!(table.len(), 0);
    assert_eq!(
        table.next_deadline(),
        None,
        "the deadline goes with the call"
    );
    assert!(table.complete(response(1, 0)).is_err());
    // The id can be used again.
    let mut again = table.register(Id::Number(1)).expect("free again");
    table.complete(response(1, 9)).expect("pending");
    check(&mut again, answered(1, "9"));
}

#[test]
fn an_old_guard_does_not_remove_a_new_registration() {
    let table = Table::new();
    let old = table.register(Id::Number(1)).expect("new id");
    // Answered but never polled, then the id is reused.
    table.complete(response(1, 0)).expect("pending");
    let mut new = table.register(Id::Number(1)).expect("free again");
    drop(old);
    assert!(
        table.contains(&Id::Number(1)),
        "the new call is still registered"
    );
    table
        .complete(response(1, 2))
        .expect("the new call is pending");
    check(&mut new, answered(1, "2"));

    // The same after the old call was failed rather than answered.
    let old = table.register(Id::Number(3)).expect("new id");
    assert!(table.fail(&Id::Number(3), "gone".into()));
    let _new = table.register(Id::Number(3)).expect("free again");
    drop(old);
    assert_eq!(table.len(), 1);
}

#[test]
fn fail_fail_all_and_close() {
    let table = Table::new();
    let mut a = table.register(Id::Number(1)).expect("new id");
    let mut b = table.register(Id::Number(2)).expect("new id");
    let mut c = table
        .register_with_deadline(Id::Number(3), Instant::now() + Duration::from_secs(1))
        .expect("new id");
    assert!(table.fail(&Id::Number(1), "bad params".into()));
    assert!(
        !table.fail(&Id::Number(1), "twice".into()),
        "no longer pending"
    );
    check(&mut a, Outcome::Failed("bad params".into()));

    assert_eq!(table.fail_all(&"worker 3 exited".to_owned()), 2);
    assert!(table.is_empty());
    assert_eq!(table.next_deadline(), None);
    check(&mut b, Outcome::Failed("worker 3 exited".into()));
    check(&mut c, Outcome::Failed("worker 3 exited".into()));

    // After fail_all the table still takes calls.
    let mut d = table.register(Id::Number(4)).expect("open");
    assert_eq!(table.close(&"shut down".to_owned()), 1);
    check(&mut d, Outcome::Failed("shut down".into()));
    // After close every registration fails at once, duplicates included.
    let mut e = table
        .register(Id::Number(5))
        .expect("registered already failed");
    let mut f = table
        .register(Id::Number(5))
        .expect("registered already failed");
    let mut g = table
        .register_with_deadline(Id::Number(6), Instant::now())
        .expect("registered already failed");
    assert!(table.is_empty());
    check(&mut e, Outcome::Failed("shut down".into()));
    check(&mut f, Outcome::Failed("shut down".into()));
    check(&mut g, Outcome::Failed("shut down".into()));
    assert_eq!(table.fail_all(&"again".to_owned()), 0);
    assert_eq!(table.expire(Instant::now() + Duration::from_secs(9)), 0);
}

#[test]
fn deadlines() {
    let table = Table::new();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut late = table
        .register_with_deadline(Id::Number(3), at(30))
        .expect("new id");
    let mut early = table
        .register_with_deadline(Id::Number(1), at(10))
        .expect("new id");
    let mut same = table
        .register_with_deadline(Id::Number(2), at(10))
        .expect("new id");
    let mut none = table.register(Id::Number(4)).expect("new id");
    assert_eq!(table.next_deadline(), Some(at(10)));

    assert_eq!(table.expire(at(9)), 0);
    check(&mut early, Outcome::Waiting);
    // A deadline fires at its instant, not only after it; both ties fire.
    assert_eq!(table.expire(at(10)), 2);
    check(&mut early, Outcome::Deadline);
    check(&mut same, Outcome::Deadline);
    assert_eq!(table.next_deadline(), Some(at(30)));
    assert_eq!(table.len(), 2);

    // A response before the deadline wins, and removes the deadline.
    table.complete(response(3, 1)).expect("pending");
    assert_eq!(table.next_deadline(), None);
    assert_eq!(table.expire(at(1000)), 0);
    check(&mut late, answered(3, "1"));
    check(&mut none, Outcome::Waiting);
    assert!(
        table.complete(response(1, 1)).is_err(),
        "an expired call is gone"
    );

    // The owner learns which calls expired, in deadline order.
    let mut a = table
        .register_with_deadline(Id::Number(5), at(50))
        .expect("new id");
    let mut b = table
        .register_with_deadline(Id::Number(6), at(40))
        .expect("new id");
    let mut c = table
        .register_with_deadline(Id::Number(7), at(60))
        .expect("new id");
    assert_eq!(table.expire_ids(at(55)), vec![Id::Number(6), Id::Number(5)]);
    check(&mut a, Outcome::Deadline);
    check(&mut b, Outcome::Deadline);
    check(&mut c, Outcome::Waiting);
    assert_eq!(table.next_deadline(), Some(at(60)));
}

#[test]
fn completion_wakes_the_waiting_task() {
    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let table = Table::new();
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut call = table.register(Id::Number(1)).expect("new id");
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut call).poll(&mut cx).is_pending());
    assert!(Pin::new(&mut call).poll(&mut cx).is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    table.complete(response(1, 1)).expect("pending");
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert!(Pin::new(&mut call).poll(&mut cx).is_ready());
}

#[tokio::test]
async fn awaited_on_a_runtime() {
    let table = Table::new();
    let call = table.register(Id::Number(1)).expect("new id");
    let reader = table.clone();
    let waiter = tokio::spawn(call);
    tokio::task::yield_now().await;
    reader.complete(response(1, 42)).expect("pending");
    let response = waiter.await.expect("task ran").expect("answered");
    assert_eq!(response.result_as::<i64>().expect("an integer"), 42);
    assert!(table.is_empty());
}

#[test]
fn dropping_the_table_fails_waiting_calls() {
    let table = Table::new();
    let mut call = table.register(Id::Number(1)).expect("new id");
    let clone = table.clone();
    drop(table);
    check(&mut call, Outcome::Waiting);
    drop(clone);
    // No one can answer any more, so the call must not wait forever.
    assert!(matches!(
        poll(&mut call),
        Poll::Ready(Err(PendingError::TableDropped))
    ));
}

#[test]
fn completion_racing_with_drop() {
    for round in 0..200 {
        let table = Table::new();
        let calls: Vec<_> = (0..32)
            .map(|i| table.register(Id::Number(i)).expect("new id"))
            .collect();
        let (completed, not_found) = std::thread::scope(|s| {
            let completer = s.spawn(|| {
                let mut completed = 0;
                let mut not_found = 0;
                for i in 0..32 {
                    match table.complete(response(i, i)) {
                        Ok(()) => completed += 1,
                        Err(_) => not_found += 1,
                    }
                }
                (completed, not_found)
            });
            s.spawn(move || drop(calls));
            completer.join().expect("no panic")
        });
        assert_eq!(completed + not_found, 32, "round {round}");
        assert!(table.is_empty(), "round {round}: {} left", table.len());
    }
}

#[test]
fn many_threads_register_and_complete() {
    const THREADS: i64 = 4;
    const PER_THREAD: i64 = 2_000;
    let table = Table::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Id>(64);
    let rx = std::sync::Mutex::new(rx);
    let calls = std::thread::scope(|s| {
        let registrars: Vec<_> = (0..THREADS)
            .map(|t| {
                let table = table.clone();
                let tx = tx.clone();
                s.spawn(move || {
                    let mut calls = Vec::new();
                    for i in 0..PER_THREAD {
                        let id = if i % 2 == 0 {
                            Id::Number(t * PER_THREAD + i)
                        } else {
                            Id::from(format!("{t}/{i}"))
                        };
                        let call = table.register(id.clone()).expect("ids are distinct");
                        // Every third caller gives up before its answer comes.
                        if i % 3 == 0 {
                            drop(call);
                        } else {
                            calls.push(call);
                        }
                        tx.send(id).expect("completers run");
                    }
                    calls
                })
            })
            .collect();
        drop(tx);
        for _ in 0..THREADS {
            let table = table.clone();
            let rx = &rx;
            s.spawn(move || {
                loop {
                    let next = rx.lock().expect("not poisoned").recv();
                    let Ok(id) = next else { break };
                    let n = match &id {
                        Id::Number(n) => *n,
                        _ => -1,
                    };
                    // A dropped call's id is simply not found.
                    let _ = table.complete(response(id, n));
                }
            });
        }
        registrars
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect::<Vec<_>>()
    });
    assert!(table.is_empty(), "{} left", table.len());
    let expected = (THREADS * PER_THREAD - THREADS * ((PER_THREAD + 2) / 3)) as usize;
    assert_eq!(calls.len(), expected);
    for mut call in calls {
        let id = call.id().clone();
        let n = match &id {
            Id::Number(n) => *n,
            _ => -1,
        };
        check(&mut call, answered(id, &n.to_string()));
    }
}

#[test]
fn handles_are_cheap_to_share() {
    fn assert_handle<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    fn assert_send<T: Send + std::fmt::Debug + 'static>() {}
    assert_handle::<PendingTable<String>>();
    assert_send::<Pending<String>>();
    assert_handle::<PendingError<String>>();
    assert_eq!(
        PendingError::<String>::DeadlineExceeded.to_string(),
        "deadline passed before the response arrived"
    );
    let failed = PendingError::Failed(std::io::Error::other("exit 9"));
    assert_eq!(
        failed.to_string(),
        "request failed before its response arrived"
    );
    assert!(std::error::Error::source(&failed).is_some());
    let table: PendingTable<String> = PendingTable::default();
    assert!(table.is_empty());
}
