//! The exporter against a scripted collector on loopback: what it sends,
//! when it retries, and what it reads back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use super::*;

/// One request as the collector saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// Answers the requests it gets with `script`, in order (the last answer
/// repeats), and keeps what it saw.
struct Collector {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Collector {
    fn start(script: Vec<Vec<u8>>) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the collector");
        let url = format!(
            "http://{}/v1/traces",
            listener.local_addr().expect("its address")
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (sink, script) = (Arc::clone(&sink), script.clone());
                std::thread::spawn(move || serve(stream, &sink, &script));
            }
        });
        Collector { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the collector's record").clone()
    }
}

fn serve(stream: TcpStream, sink: &Mutex<Vec<Seen>>, script: &[Vec<u8>]) {
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut writer = stream;
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = {
            let mut seen = sink.lock().expect("the collector's record");
            seen.push(Seen { head, body });
            script[(seen.len() - 1).min(script.len() - 1)].clone()
        };
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

fn answer(status: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\n{extra}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

fn exporter_to(url: &str, headers: HeaderMap, timeout: Duration) -> Exporter {
    let gate = Arc::new(Gate {
        pending: AtomicUsize::new(0),
        capacity: 16,
    });
    match Exporter::new(
        Target {
            url,
            headers,
            timeout,
        },
        gate,
    ) {
        Ok(exporter) => exporter,
        Err(e) => panic!("building the exporter: {e}"),
    }
}

#[test]
fn an_answer_that_asks_for_a_retry_gets_one_with_the_same_body_and_headers() {
    let partial = [0x0A, 0x04, 0x08, 0x02, 0x12, 0x00];
    let collector = Collector::start(vec![
        answer("503 Service Unavailable", "retry-after: 0\r\n", b""),
        answer("429 Too Many Requests", "", b""),
        answer("200 OK", "", &partial),
    ]);
    let mut configured = BTreeMap::new();
    configured.insert("x-api-key".to_string(), "from config".to_string());
    let headers = headers(
        Some((
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=env, x-team = a%20b%2Cc",
        )),
        &configured,
    )
    .expect("valid headers");
    let exporter = exporter_to(&collector.url, headers, Duration::from_secs(10));
    let started = Instant::now();
    let result = exporter.send(Bytes::from_static(b"spans"));
    assert_eq!(
        result,
        Ok(Some((2, String::new()))),
        "the partial success is read"
    );
    let seen = collector.seen();
    assert_eq!(seen.len(), 3, "two retries: {seen:?}");
    for request in &seen {
        assert_eq!(request.body, b"spans");
        assert!(
            request.head.starts_with("post /v1/traces http/1.1"),
            "{}",
            request.head
        );
        assert!(
            request
                .head
                .contains("content-type: application/x-protobuf")
        );
        assert!(
            request.head.contains("x-api-key: from config"),
            "config wins: {}",
            request.head
        );
        assert!(
            request.head.contains("x-team: a b,c"),
            "percent-decoded: {}",
            request.head
        );
        assert!(request.head.contains("user-agent: pybridge/"));
    }
    // Retry-After 0, then the second backoff: 200 ms plus at most 100 ms
    // jitter.
    let took = started.elapsed();
    assert!(
        took >= 2 * FIRST_BACKOFF,
        "the second retry waited: {took:?}"
    );
}

#[test]
fn an_answer_that_is_not_retryable_fails_the_export_at_once() {
    for status in [
        "400 Bad Request",
        "401 Unauthorized",
        "500 Internal Server Error",
        "307 Temporary Redirect",
    ] {
        // A redirect is not followed: the export's headers stay here.
        let collector = Collector::start(vec![answer(status, "location: /elsewhere\r\n", b"")]);
        let exporter = exporter_to(&collector.url, HeaderMap::new(), Duration::from_secs(10));
        let result = exporter.send(Bytes::from_static(b"x"));
        let failure = result.expect_err("a failed export");
        assert!(failure.contains(&status[..3]), "{failure}");
        assert_eq!(collector.seen().len(), 1, "{status} is not retried");
    }
}

#[test]
fn a_collector_that_keeps_refusing_costs_at_most_the_retries_within_the_timeout() {
    let collector = Collector::start(vec![answer(
        "503 Service Unavailable",
        "retry-after: 0\r\n",
        b"",
    )]);
    let exporter = exporter_to(&collector.url, HeaderMap::new(), Duration::from_secs(10));
    let failure = exporter
        .send(Bytes::from_static(b"x"))
        .expect_err("it fails");
    assert!(failure.contains("503"), "{failure}");
    assert_eq!(collector.seen().len(), 1 + RETRIES as usize);

    // A Retry-After past the export timeout: no wait, the export fails.
    let slow = Collector::start(vec![answer(
        "503 Service Unavailable",
        "retry-after: 3600\r\n",
        b"",
    )]);
    let exporter = exporter_to(&slow.url, HeaderMap::new(), Duration::from_secs(5));
    let started = Instant::now();
    let failure = exporter
        .send(Bytes::from_static(b"x"))
        .expect_err("it fails");
    assert!(
        failure.contains("503"),
        "the collector's answer is the reason: {failure}"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "no wait for nothing: {took:?}"
    );
    assert_eq!(slow.seen().len(), 1);
}

#[test]
fn an_unreachable_collector_fails_the_export_after_its_retries() {
    // Bound and never listening, and held so that no other test takes it:
    // connections are refused.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("a free port");
    let port = socket.local_addr().expect("its address").port();
    let url = format!("http://127.0.0.1:{port}/v1/traces");
    let exporter = exporter_to(&url, HeaderMap::new(), Duration::from_secs(10));
    let started = Instant::now();
    let failure = exporter
        .send(Bytes::from_static(b"x"))
        .expect_err("refused");
    assert!(failure.starts_with("sending"), "{failure}");
    // Three backoffs: 100, 200 and 400 ms, each with up to 100 ms jitter.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(700), "it retried: {took:?}");
}

#[test]
fn headers_from_the_environment_and_the_config_are_checked() {
    let none = BTreeMap::new();
    let env = |value| headers(Some(("OTEL_EXPORTER_OTLP_TRACES_HEADERS", value)), &none);
    let ok = env(" a=1 ,, b = x%3Dy ").expect("valid");
    assert_eq!(ok.get("a").map(HeaderValue::as_bytes), Some(&b"1"[..]));
    assert_eq!(ok.get("b").map(HeaderValue::as_bytes), Some(&b"x=y"[..]));
    assert!(
        ok.get("a").is_some_and(HeaderValue::is_sensitive),
        "kept out of debug output"
    );
    for (value, says) in [
        (
            "a=1,Authorization: Bearer s3cr3t",
            "entry 2 is not a key=value pair",
        ),
        ("bad name=1", "`bad name` is not a valid header name"),
        ("a=%zz", "not valid percent-encoded UTF-8"),
        ("a=%ff", "not valid percent-encoded UTF-8"),
        (
            "a=line%0Abreak",
            "the value of `a` is not a valid header value",
        ),
        (
            "content-type=text/plain",
            "`content-type` is set by pybridge",
        ),
        ("Host=elsewhere", "`Host` is set by pybridge"),
        (
            "transfer-encoding=chunked",
            "`transfer-encoding` is set by pybridge",
        ),
    ] {
        let failure = env(value).expect_err(value);
        assert!(
            !failure.contains("s3cr3t"),
            "no secret in an error: {failure}"
        );
        assert!(
            failure.starts_with("OTEL_EXPORTER_OTLP_TRACES_HEADERS: "),
            "{failure}"
        );
        assert!(failure.contains(says), "{value}: {failure}");
    }
    let mut configured = BTreeMap::new();
    configured.insert("x\ny".to_string(), "1".to_string());
    let failure = headers(None, &configured).expect_err("a bad configured name");
    assert!(failure.starts_with("telemetry.headers: "), "{failure}");
}

#[test]
fn only_uncompressed_protobuf_over_http_is_accepted() {
    assert_eq!(check_wire(None, None), Ok(()));
    assert_eq!(
        check_wire(
            Some(("OTEL_EXPORTER_OTLP_COMPRESSION", "None")),
            Some(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
        ),
        Ok(())
    );
    let failure = check_wire(
        Some(("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")),
        None,
    )
    .expect_err("gzip");
    assert!(
        failure.starts_with("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip"),
        "{failure}"
    );
    for protocol in ["grpc", "http/json"] {
        let failure =
            check_wire(None, Some(("OTEL_EXPORTER_OTLP_PROTOCOL", protocol))).expect_err(protocol);
        assert!(failure.contains("http/protobuf"), "{failure}");
    }
}

#[test]
fn an_endpoint_that_is_not_an_http_url_is_refused() {
    let gate = || {
        Arc::new(Gate {
            pending: AtomicUsize::new(0),
            capacity: 1,
        })
    };
    for url in [
        "127.0.0.1:4318",
        "ftp://127.0.0.1/v1/traces",
        "http://",
        // No TLS in this build: refused at start, not failed at every export.
        "https://127.0.0.1:4318/v1/traces",
    ] {
        let target = Target {
            url,
            headers: HeaderMap::new(),
            timeout: Duration::from_secs(1),
        };
        let failure = Exporter::new(target, gate()).expect_err(url);
        assert!(failure.contains(url), "{failure}");
    }
}

/// A finished span of the `pybridge` scope.
fn finished_span(id: u64) -> SpanData {
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(7_u128),
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: "pybridge.call".into(),
        start_time: std::time::UNIX_EPOCH + Duration::from_secs(1),
        end_time: std::time::UNIX_EPOCH + Duration::from_secs(2),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: opentelemetry_sdk::trace::SpanEvents::default(),
        links: opentelemetry_sdk::trace::SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: opentelemetry::InstrumentationScope::builder("pybridge").build(),
    }
}

/// Runs one export to its end: it blocks rather than waits (it runs on the
/// batch processor's own thread), so one poll finishes it.
fn export_now(exporter: &Exporter, batch: Vec<SpanData>) -> OTelSdkResult {
    let mut export = std::pin::pin!(exporter.export(batch));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match export.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => panic!("an export never waits on a waker"),
    }
}

#[test]
fn exported_rejected_and_failed_spans_are_counted_and_give_their_places_back() {
    use pybridge_test_support::recorder::TestRecorder;

    let exported = metrics::SPANS_EXPORTED_TOTAL;
    let dropped = |reason: &str| format!("{}{{reason={reason}}}", metrics::SPANS_DROPPED_TOTAL);
    // Two rejected of five, with a message.
    let partial = [0x0A, 0x05, 0x08, 0x02, 0x12, 0x01, b'x'];
    let collector = Collector::start(vec![
        answer("200 OK", "", &partial),
        answer("200 OK", "", b""),
        answer("400 Bad Request", "", b""),
    ]);
    let exporter = exporter_to(&collector.url, HeaderMap::new(), Duration::from_secs(10));
    let batch = |from: u64, n: u64| (from..from + n).map(finished_span).collect::<Vec<_>>();
    let recorder = TestRecorder::default();
    ::metrics::with_local_recorder(&recorder, || {
        for _ in 0..12 {
            assert!(exporter.gate.try_take());
        }
        assert!(export_now(&exporter, batch(1, 5)).is_ok());
        assert!(export_now(&exporter, batch(10, 3)).is_ok());
        assert!(export_now(&exporter, batch(20, 4)).is_err(), "the 400");
    });
    assert_eq!(
        recorder.get(&format!("{exported}{{}}")),
        Some(6.0),
        "3 of 5, then 3"
    );
    assert_eq!(recorder.get(&dropped("rejected")), Some(2.0));
    assert_eq!(recorder.get(&dropped("export_failed")), Some(4.0));
    assert_eq!(
        exporter
            .gate
            .pending
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "every export gave its spans' places back"
    );
    // Every export reached the collector, carrying the spans.
    let seen = collector.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].body.windows(13).any(|w| w == b"pybridge.call"));
}
