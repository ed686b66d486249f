//! An OTLP/HTTP trace receiver on 127.0.0.1, inside the test: it answers
//! `POST /v1/traces` and decodes each `ExportTraceServiceRequest` with the
//! protocol's own message types, so the tests see what a collector would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One received span, ids as lowercase hex.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent: String,
    /// The OTLP span kind (2 server, 3 client).
    pub kind: i32,
    /// The status code (2 error).
    pub status: i32,
    pub attributes: BTreeMap<String, String>,
    pub service: String,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    task: JoinHandle<()>,
}

/// What the receiver was sent.
#[derive(Debug, Default)]
struct Record {
    spans: Vec<Span>,
    /// Each request's line and headers, lowercased.
    heads: Vec<String>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts answering on a free port.
    pub async fn start() -> Receiver {
        Receiver::start_with(true).await
    }

    /// Accepts connections but never answers: a collector that hangs.
    pub async fn silent() -> Receiver {
        Receiver::start_with(false).await
    }

    async fn start_with(answer: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port for the receiver");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let record = Arc::new(Mutex::new(Record::default()));
        let sink = Arc::clone(&record);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                connections.spawn(async move {
                    if answer {
                        serve(stream, sink).await;
                    } else {
                        // Hold the connection open, read nothing, say nothing.
                        let _stream = stream;
                        std::future::pending::<()>().await;
                    }
                });
            }
        });
        Receiver { addr, record, task }
    }

    /// The base address, as `telemetry.otlp_endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.record
            .lock()
            .expect("no test panicked holding the record")
            .spans
            .clone()
    }

    /// The request line and headers of each export, lowercased.
    pub fn heads(&self) -> Vec<String> {
        self.record
            .lock()
            .expect("no test panicked holding the record")
            .heads
            .clone()
    }
}

/// The spans of `spans` named `name`.
pub fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The only span named `name` among `spans` whose parent is `parent`.
pub fn child<'a>(spans: &'a [Span], parent: &Span, name: &str) -> &'a Span {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.parent == parent.span_id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} under {} expected, got {found:#?}\nall: {spans:#?}",
        parent.name
    );
    found[0]
}

/// Answers HTTP/1.1 requests on one connection until the client closes it.
async fn serve(mut stream: TcpStream, sink: Arc<Mutex<Record>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("the exporter sends a content-length");
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
        assert!(head.starts_with("post /v1/traces "), "request: {head}");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        {
            let mut record = sink.lock().expect("no test panicked holding the record");
            record.spans.extend(flatten(request));
            record.heads.push(head);
        }
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref().map(text))
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)))
                    })
                    .collect();
                out.push(Span {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    kind: span.kind,
                    status: span.status.map_or(0, |s| s.code),
                    attributes,
                    service: service.clone(),
                });
            }
        }
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
