//! Unit tests for the pool internals.

use crate::process::id_in_head;

fn check(head: &str, expected: Option<i64>) {
    assert_eq!(id_in_head(head.as_bytes()), expected, "{head}");
}

#[test]
fn the_id_of_a_truncated_response_is_read_from_its_head() {
    check(r#"{"jsonrpc":"2.0","id":42,"result":"xxxx"#, Some(42));
    check(r#"{ "id" : -7 , "result": 1"#, Some(-7));
    check(r#"{"jsonrpc":"2.0","result":{"id":5,"data":"xx"#, None);
    check(
        r#"{"result":"an \"id\":3 inside a string","id":9,"#,
        Some(9),
    );
    check(r#"{"result":["id",{"id":1}],"id":2,"#, Some(2));
    check(r#"{"jsonrpc":"2.0","id":"abc","result":1"#, None);
    check(r#"{"jsonrpc":"2.0","result":"xxxxxxxxxx"#, None);
    // Digits that run to the end of the head may be cut short: no guess.
    check(r#"{"id":12"#, None);
    check("", None);
}

#[test]
fn recycling_thresholds_spread_within_the_jitter() {
    for _ in 0..1000 {
        let n = crate::process::jittered(1000, 0.1);
        assert!((900..=1100).contains(&n), "{n}");
    }
    assert_eq!(crate::process::jittered(1000, 0.0), 1000);
    assert!(crate::process::jittered(1, 0.5) >= 1);
}

#[test]
fn programs_resolve_against_path_once() {
    use std::ffi::OsStr;
    use std::path::Path;
    let dir = tempfile_dir();
    let program = dir.join("my-worker");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let resolve =
        |p: &str, path: &str| crate::config::resolve_program(Path::new(p), Some(OsStr::new(path)));
    assert!(
        resolve("my-worker", dir.to_str().unwrap()).is_err(),
        "not executable yet"
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        resolve("my-worker", &format!("/nonexistent:{}", dir.display())).unwrap(),
        program
    );
    assert_eq!(resolve(program.to_str().unwrap(), "").unwrap(), program);
    assert!(resolve("", dir.to_str().unwrap()).is_err());
    assert!(resolve("./nope", dir.to_str().unwrap()).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pybridge-pool-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The slot and parking protocol of `admission`, step by step in every order
/// the reader, the deadline sweep, the caller and the worker's end can take
/// it, with no process: each order must end with every slot free.
mod admission {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use pybridge_protocol::{Codec, Framing, Id, PendingError, Response};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use crate::admission::{Admission, Call, Settled};
    use crate::worker::{Outgoing, Worker, WorkerParts};
    use crate::{FailureReason, WorkerFailure, WorkerId};

    /// Long, so that a stalled test machine cannot make a call overdue
    /// between parking it and checking; the tests move the clock past it.
    const GRACE: Duration = Duration::from_secs(3600);

    struct Fixture {
        admission: Arc<Admission>,
        worker: Arc<Worker>,
        inbox: mpsc::Receiver<Outgoing>,
    }

    fn fixture() -> Fixture {
        let codec = Codec::new(Framing::Ndjson, 1 << 20);
        let admission = Arc::new(Admission::new(16, GRACE, codec));
        let (outbox, inbox) = mpsc::channel(64);
        let worker = Arc::new(Worker::new(WorkerParts {
            id: WorkerId(1),
            slot: 0,
            pid: 0,
            restarts: 0,
            recycle_after: None,
            cap: 4,
            outbox,
            stderr_tail: Arc::new(Mutex::new(Default::default())),
            endpoint: None,
        }));
        assert!(worker.set_ready());
        admission.join(Arc::clone(&worker));
        Fixture {
            admission,
            worker,
            inbox,
        }
    }

    impl Fixture {
        /// A call holding a slot, registered to expire at `deadline`, sent or not.
        async fn call(&self, id: i64, deadline: Instant, send: bool) -> Call {
            let far = Instant::now() + Duration::from_secs(60);
            let (slot, _) = self
                .admission
                .acquire(far, Instant::now())
                .await
                .expect("a free slot");
            let mut call = slot.register(id, deadline).expect("a new id");
            if send {
                call.send(&self.worker, Bytes::from_static(b"{}\n"))
                    .await
                    .expect("the outbox is open");
            }
            call
        }

        fn held(&self) -> usize {
            self.worker.lot.in_flight()
        }

        fn answer(&self, id: i64) -> Settled {
            let response = Response::success(Id::Number(id), &1).expect("a response");
            self.worker.lot.settle_answer(response)
        }

        /// The `$/cancelRequest` notifications sent so far.
        fn cancels(&mut self) -> usize {
            let mut n = 0;
            while let Ok(message) = self.inbox.try_recv() {
                n += usize::from(message.id.is_none());
            }
            n
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answer_settled_before_the_caller_leaves_frees_the_slot_at_once() {
        let mut f = fixture();
        let call = f.call(1, far(), true).await;
        assert!(matches!(f.answer(1), Settled::Delivered));
        assert_eq!(f.held(), 1, "the caller still holds it");
        drop(call);
        assert_eq!(f.held(), 0);
        assert_eq!(f.cancels(), 0, "nothing to cancel");
        assert!(matches!(f.answer(1), Settled::Unknown(_)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_caller_that_leaves_first_parks_the_call_until_its_late_answer() {
        let mut f = fixture();
        drop(f.call(1, far(), true).await);
        assert_eq!(f.held(), 1, "parked with its slot");
        assert_eq!(f.cancels(), 1);
        assert!(!f.worker.lot.overdue(Instant::now()));
        assert!(f.worker.lot.overdue(Instant::now() + GRACE));
        assert!(matches!(f.answer(1), Settled::Late));
        assert_eq!(f.held(), 0);
        assert!(!f.worker.lot.overdue(Instant::now() + GRACE));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_ping_given_up_on_takes_its_late_answer_once_and_an_answered_one_none() {
        let f = fixture();
        let ping = f.worker.lot.register_ping(7).expect("a new id");
        drop(ping);
        assert!(matches!(f.answer(7), Settled::LatePing));
        assert!(matches!(f.answer(7), Settled::Unknown(_)), "once only");

        let mut ping = f.worker.lot.register_ping(8).expect("a new id");
        assert!(matches!(f.answer(8), Settled::Delivered));
        assert!((&mut ping.pending).await.is_ok());
        ping.settled = true;
        drop(ping);
        assert!(matches!(f.answer(8), Settled::Unknown(_)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_never_handed_to_the_writer_is_not_parked() {
        let mut f = fixture();
        drop(f.call(1, far(), false).await);
        assert_eq!(f.held(), 0);
        assert_eq!(f.cancels(), 0);
        assert!(!f.worker.lot.overdue(Instant::now() + GRACE * 10));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_expired_call_answered_before_its_caller_wakes_frees_the_slot_then() {
        let mut f = fixture();
        let mut call = f.call(1, Instant::now(), true).await;
        f.admission
            .expire_due(&f.worker, Instant::now() + Duration::from_millis(1));
        assert!(matches!(f.answer(1), Settled::Late));
        assert_eq!(f.held(), 1, "the caller has not handed its slot over yet");
        assert!(matches!(
            call.outcome().await,
            Err(PendingError::DeadlineExceeded)
        ));
        drop(call);
        assert_eq!(f.held(), 0);
        assert_eq!(f.cancels(), 0, "answered already");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_expired_call_whose_caller_wakes_first_keeps_its_slot_parked() {
        let mut f = fixture();
        let mut call = f.call(1, Instant::now(), true).await;
        f.admission
            .expire_due(&f.worker, Instant::now() + Duration::from_millis(1));
        assert!(matches!(
            call.outcome().await,
            Err(PendingError::DeadlineExceeded)
        ));
        drop(call);
        assert_eq!(f.held(), 1);
        assert_eq!(f.cancels(), 1);
        assert!(matches!(f.answer(1), Settled::Late));
        assert_eq!(f.held(), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_expired_call_dropped_without_waking_keeps_its_slot_parked() {
        let mut f = fixture();
        let call = f.call(1, Instant::now(), true).await;
        f.admission
            .expire_due(&f.worker, Instant::now() + Duration::from_millis(1));
        drop(call);
        assert_eq!(f.held(), 1);
        assert_eq!(f.cancels(), 1);
        assert!(matches!(f.answer(1), Settled::Late));
        assert_eq!(f.held(), 0);
    }

    /// The reader settling an answer and the caller dropping its call at the
    /// same moment, on two threads released together, many times: whichever
    /// wins, the slot ends free and nothing stays parked.
    #[test]
    fn an_answer_and_a_departure_racing_on_two_threads_always_free_the_slot() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let mut f = fixture();
        let (mut delivered, mut late) = (0, 0);
        for id in 0..15_000 {
            let call = runtime.block_on(f.call(id, far(), true));
            let start = Arc::new(std::sync::Barrier::new(2));
            let caller = {
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    drop(call);
                })
            };
            start.wait();
            match f.answer(id) {
                Settled::Delivered => delivered += 1,
                Settled::Late => late += 1,
                Settled::LatePing | Settled::Unknown(_) => {
                    panic!("round {id}: the answer found no call")
                }
            }
            caller.join().expect("the caller thread");
            assert_eq!(f.held(), 0, "round {id}: the slot is free");
            assert!(!f.worker.lot.overdue(far()), "round {id}: nothing parked");
            f.cancels();
        }
        assert_eq!(delivered + late, 15_000);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_end_of_a_worker_frees_its_parked_and_held_slots() {
        let f = fixture();
        drop(f.call(1, far(), true).await);
        let mut held = f.call(2, far(), true).await;
        assert_eq!(f.held(), 2);
        let failure = Arc::new(WorkerFailure {
            worker: WorkerId(1),
            pid: None,
            reason: FailureReason::Exited,
            status: None,
            stderr_tail: Vec::new(),
        });
        assert_eq!(f.worker.lot.close(&failure, &[]), 1, "one call was waiting");
        assert_eq!(
            f.held(),
            1,
            "the parked slot is free; the caller's is its own"
        );
        assert!(matches!(held.outcome().await, Err(PendingError::Failed(_))));
        drop(held);
        assert_eq!(f.held(), 0);
        // A call dropped after the end finds it failed, and does not park.
        let late = f.call(3, far(), true).await;
        drop(late);
        assert_eq!(f.held(), 0);
    }
}

/// Reading and checking the `$/ready` announcement.
mod handshake {
    use pybridge_protocol::PROTOCOL_VERSION;
    use serde_json::value::RawValue;

    use crate::handshake::{Ready, manifest_difference};

    fn ready(params: &str) -> Result<Ready, String> {
        let raw = RawValue::from_string(params.to_string()).expect("JSON");
        Ready::from_params(Some(&raw))
    }

    #[test]
    fn the_manifest_is_the_params_minus_the_pid() {
        let r = ready(r#"{"pid":7,"name":"w","max_concurrency":3,"methods":["a"]}"#).unwrap();
        assert_eq!(r.protocol_version.as_deref(), Some("1.0"));
        assert_eq!(r.max_concurrency, Some(3));
        assert_eq!(
            r.manifest.as_deref(),
            Some(&serde_json::json!({"name":"w","max_concurrency":3,"methods":["a"]}))
        );
        assert_eq!(ready(r#"{"pid":7}"#).unwrap().manifest, None);
    }

    #[test]
    fn bad_announcements_are_refused_with_what_was_seen() {
        for bad in [
            r#"{"pid":1,"max_concurrency":0}"#,
            r#"{"pid":1,"max_concurrency":"4"}"#,
            r#"{"pid":1,"protocol_version":1}"#,
            r#"[1]"#,
        ] {
            assert!(ready(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn another_major_version_is_refused_naming_both() {
        let ok = ready(r#"{"pid":1,"protocol_version":"1.7"}"#).unwrap();
        assert_eq!(ok.check_version(), Ok(()));
        let err = ready(r#"{"pid":1,"protocol_version":"2.0"}"#)
            .unwrap()
            .check_version()
            .unwrap_err();
        assert!(
            err.contains("2.0") && err.contains(PROTOCOL_VERSION),
            "{err}"
        );
        assert!(
            ready(r#"{"pid":1,"protocol_version":"one"}"#)
                .unwrap()
                .check_version()
                .is_err()
        );
        assert_eq!(Ready::default().check_version(), Ok(()));
    }

    #[test]
    fn manifests_are_compared_as_values() {
        let a = serde_json::json!({"name":"w","methods":["x"],"version":"1"});
        let b = serde_json::json!({"version":"1","methods":["x"],"name":"w"});
        assert_eq!(manifest_difference(Some(&a), Some(&b)), None);
        let c = serde_json::json!({"name":"w","methods":["y"],"version":"1"});
        let diff = manifest_difference(Some(&a), Some(&c)).unwrap();
        assert!(diff.contains("methods") && !diff.contains("name"), "{diff}");
        assert!(manifest_difference(Some(&a), None).is_some());
        assert_eq!(manifest_difference(None, None), None);
    }
}

#[test]
fn junk_is_quoted_by_its_first_80_bytes_escaped() {
    use crate::process::quote_head;
    assert_eq!(quote_head(b"hello"), "hello");
    assert_eq!(quote_head(b"a\x01\xff\"b"), "a\\x01\\xff\\\"b");
    let long = vec![b'x'; 200];
    let quoted = quote_head(&long);
    assert_eq!(quoted, format!("{}...", "x".repeat(80)));
}

/// Frames cut from a thread's shared buffer stay intact while later frames
/// are written after them, whatever their sizes, across buffer changes, after
/// a refused frame, in both framings and on several threads at once.
#[test]
fn frames_cut_from_the_shared_buffer_never_change_afterwards() {
    use bytes::BufMut;
    use pybridge_protocol::{Codec, Framing};

    fn body(n: usize, size: usize) -> String {
        let fill = char::from(b'a' + u8::try_from(n % 26).expect("a letter"));
        format!(
            "{{\"n\":{n},\"data\":\"{}\"}}",
            fill.to_string().repeat(size)
        )
    }
    fn framed(framing: Framing, body: &str) -> Vec<u8> {
        match framing {
            Framing::Ndjson => format!("{body}\n").into_bytes(),
            _ => format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes(),
        }
    }
    let run = |framing: Framing| {
        let codec = Codec::new(framing, 64 * 1024);
        // Sizes around the buffer's own and well past it, so that frames
        // span buffer changes and some take a buffer of their own.
        let sizes = [0, 10, 100, 3_000, 9_000, 15_900, 16_500, 40_000, 1];
        let mut kept = Vec::new();
        for n in 0..400 {
            let size = sizes[n % sizes.len()];
            let text = body(n, size);
            let frame = crate::worker::encode_frame_sized(&codec, text.len(), |buf| {
                buf.put_slice(text.as_bytes());
            })
            .expect("within the frame limit");
            kept.push((framed(framing, &text), frame));
            if n % 7 == 0 {
                // A frame over the limit is refused and leaves nothing behind.
                let refused = crate::worker::encode_frame_sized(&codec, 10, |buf| {
                    buf.put_slice(&vec![b'x'; 70_000]);
                });
                assert!(refused.is_err(), "a 70,000-byte frame is over the limit");
                // Written with a 10-byte estimate, it grew the thread's
                // buffer: that allocation is not kept.
                assert!(crate::worker::frame_buffer_capacity() <= 2 * 16 * 1024);
            }
            if n % 5 == 0 {
                // Some frames are written and dropped, as after their write.
                kept.swap_remove(n % kept.len());
            }
        }
        for (expected, frame) in &kept {
            assert_eq!(&frame[..], &expected[..]);
        }
    };
    let threads: Vec<_> = [Framing::Ndjson, Framing::ContentLength, Framing::Ndjson]
        .into_iter()
        .map(|framing| std::thread::spawn(move || run(framing)))
        .collect();
    for thread in threads {
        thread.join().expect("no frame changed");
    }
}
