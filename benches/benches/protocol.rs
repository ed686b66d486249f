//! Protocol benchmarks: encoding and decoding requests (params) and responses
//! (results) of 100 B, 4 KiB and 64 KiB, each next to serde_json parsing the
//! same bytes into a `serde_json::Value`, the baseline the ratios are taken
//! against. A `Value` encode of the same message is measured as a second
//! reference for the encoders.
//!
//! Run with `cargo bench -p pybridge-benches --bench protocol`.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pybridge_protocol::{Id, Message, write_request, write_response};
use serde_json::Value;
use serde_json::value::RawValue;

/// Payload sizes: a small call, a typical record batch, a large document.
const SIZES: [(&str, usize); 3] = [("100B", 100), ("4KiB", 4 * 1024), ("64KiB", 64 * 1024)];

/// Builds a JSON object of about `target` bytes shaped like real call data:
/// records of integers, floats, short strings (some with escapes), booleans
/// and nested arrays.
fn payload(target: usize) -> Box<RawValue> {
    let mut out = String::from("{\"items\":[");
    let mut i = 0u32;
    loop {
        let mut record = String::new();
        write!(
            record,
            r#"{{"id":{i},"name":"item-{i}","score":{}.{},"tags":["red","blue"],"ok":{}"#,
            i * 7 % 1000,
            i % 100,
            i.is_multiple_of(2)
        )
        .expect("writing to a String cannot fail");
        if i % 5 == 4 {
            record.push_str(r#","note":"line\nbreak \"quoted\" caf\u00e9""#);
        }
        record.push('}');
        let separator = usize::from(i > 0);
        if i > 0 && out.len() + separator + record.len() + 2 > target {
            break;
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(&record);
        i += 1;
    }
    out.push_str("]}");
    RawValue::from_string(out).expect("the payload is JSON")
}

/// One message kind at one size: its encoded bytes and the parts to encode it from.
struct Case {
    name: &'static str,
    payload: Box<RawValue>,
    bytes: Vec<u8>,
}

fn request_case(name: &'static str, size: usize) -> Case {
    let payload = payload(size);
    let mut bytes = Vec::new();
    write_request(
        &mut bytes,
        &Id::Number(1_234_567),
        "service.method",
        Some(&payload),
    );
    Case {
        name,
        payload,
        bytes,
    }
}

fn response_case(name: &'static str, size: usize) -> Case {
    let payload = payload(size);
    let mut bytes = Vec::new();
    write_response(&mut bytes, &Id::Number(1_234_567), Ok(&payload));
    Case {
        name,
        payload,
        bytes,
    }
}

fn throughput(case: &Case) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: 1,
        bytes: case.bytes.len() as u64,
    }
}

fn bench_kind(c: &mut Criterion, group: &str, cases: &[Case], encode: fn(&mut Vec<u8>, &RawValue)) {
    let mut group = c.benchmark_group(group);
    for case in cases {
        group.throughput(throughput(case));
        let value: Value = serde_json::from_slice(&case.bytes).expect("the message is JSON");

        group.bench_with_input(
            BenchmarkId::new("decode", case.name),
            &case.bytes,
            |b, bytes| {
                b.iter(|| Message::from_slice(black_box(bytes)).expect("a valid message"));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("baseline_value_parse", case.name),
            &case.bytes,
            |b, bytes| {
                b.iter(|| serde_json::from_slice::<Value>(black_box(bytes)).expect("JSON"));
            },
        );
        let mut out = Vec::with_capacity(case.bytes.len());
        group.bench_with_input(
            BenchmarkId::new("encode", case.name),
            &case.payload,
            |b, raw| {
                b.iter(|| {
                    out.clear();
                    encode(&mut out, black_box(raw));
                    black_box(out.len())
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("reference_value_encode", case.name),
            &value,
            |b, value| {
                b.iter(|| {
                    out.clear();
                    serde_json::to_writer(&mut out, black_box(value)).expect("a Value serializes");
                    black_box(out.len())
                });
            },
        );
    }
    group.finish();
}

fn requests(c: &mut Criterion) {
    let cases: Vec<Case> = SIZES
        .iter()
        .map(|&(name, size)| request_case(name, size))
        .collect();
    bench_kind(c, "protocol_request", &cases, |out, params| {
        write_request(out, &Id::Number(1_234_567), "service.method", Some(params));
    });
}

fn responses(c: &mut Criterion) {
    let cases: Vec<Case> = SIZES
        .iter()
        .map(|&(name, size)| response_case(name, size))
        .collect();
    bench_kind(c, "protocol_response", &cases, |out, result| {
        write_response(out, &Id::Number(1_234_567), Ok(result));
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = requests, responses
}
criterion_main!(benches);
