//! Encoding: the exact bytes written, encode→decode round trips, and the
//! typed helpers that build params, results and error data.

use pybridge_protocol::{
    Error, ErrorCode, ErrorObject, Id, Message, Meta, Notification, Request, Response, Rule,
    to_raw, write_message, write_notification, write_request, write_request_with_meta,
    write_response,
};
use serde_json::json;
use serde_json::value::RawValue;

use crate::support::{Decoded, decode, describe_message, invalid};

/// Checks the exact encoding of `message`, and that it decodes back to the same message.
fn check(message: Message, expected: &str) {
    let bytes = message.to_vec();
    assert_eq!(String::from_utf8_lossy(&bytes), expected);
    let mut written = Vec::new();
    write_message(&mut written, &message);
    assert_eq!(written, bytes, "write_message and to_vec agree");
    let serialized = serde_json::to_vec(&message).expect("serializes");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&serialized).expect("json"),
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("json"),
        "the Serialize impl writes the same message"
    );
    assert_eq!(
        decode(expected),
        describe_message(&message),
        "round trip of {expected}"
    );
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("valid JSON")
}

#[test]
fn exact_encodings() {
    check(
        Message::Request(Request {
            id: Id::Number(1),
            method: "subtract".into(),
            params: Some(raw("[42,23]")),
        }),
        r#"{"jsonrpc":"2.0","id":1,"method":"subtract","params":[42,23]}"#,
    );
    check(
        Message::Request(Request {
            id: Id::from("a\"\\\n\u{1}é"),
            method: "m\t\"".into(),
            params: None,
        }),
        r#"{"jsonrpc":"2.0","id":"a\"\\\n\u0001é","method":"m\t\""}"#,
    );
    check(
        Message::Notification(Notification {
            method: "update".into(),
            params: Some(raw(r#"{"a": [1, 2]}"#)),
        }),
        r#"{"jsonrpc":"2.0","method":"update","params":{"a": [1, 2]}}"#,
    );
    check(
        Message::Response(Response {
            id: Id::Null,
            result: Err(ErrorObject::standard(ErrorCode::PARSE_ERROR)),
        }),
        r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#,
    );
    check(
        Message::Response(Response {
            id: Id::Number(i64::MIN),
            result: Err(ErrorObject::new(ErrorCode(7), "x")
                .with_data(&json!(null))
                .expect("json")),
        }),
        r#"{"jsonrpc":"2.0","error":{"code":7,"message":"x","data":null},"id":-9223372036854775808}"#,
    );
    check(
        Message::Response(Response {
            id: Id::Number(i64::MAX),
            result: Ok(raw("null")),
        }),
        r#"{"jsonrpc":"2.0","result":null,"id":9223372036854775807}"#,
    );
    check(
        Message::Batch(vec![
            Ok(Message::Notification(Notification {
                method: "n".into(),
                params: None,
            })),
            Ok(Message::Response(
                Response::success(3, &[1, 2]).expect("json"),
            )),
        ]),
        r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","result":[1,2],"id":3}]"#,
    );
}

#[test]
fn invalid_batch_entries_have_no_encoding() {
    let batch = Message::Batch(vec![
        Err(Error::Invalid {
            rule: Rule::NotAnObject,
            id: Id::Null,
        }),
        Ok(Message::Notification(Notification {
            method: "n".into(),
            params: None,
        })),
        Err(Error::Invalid {
            rule: Rule::Version,
            id: Id::Number(1),
        }),
    ]);
    assert_eq!(batch.to_vec(), br#"[{"jsonrpc":"2.0","method":"n"}]"#);
    assert_eq!(
        serde_json::to_string(&batch).expect("serializes"),
        r#"[{"jsonrpc":"2.0","method":"n"}]"#
    );
    // With nothing valid left the batch encodes as empty, which decodes as invalid.
    let empty = Message::Batch(vec![Err(Error::Invalid {
        rule: Rule::NotAnObject,
        id: Id::Null,
    })]);
    assert_eq!(empty.to_vec(), b"[]");
    assert_eq!(decode("[]"), invalid(Rule::EmptyBatch, Id::Null));
}

#[test]
fn writers_append_to_any_buffer() {
    let params = raw("[1]");
    let mut out = bytes::BytesMut::from(&b"prefix "[..]);
    write_request(&mut out, &Id::from("x"), "m", Some(&params));
    assert_eq!(
        &out[..],
        br#"prefix {"jsonrpc":"2.0","id":"x","method":"m","params":[1]}"#
    );

    let mut out = Vec::new();
    write_notification(&mut out, "$/cancelRequest", None);
    assert_eq!(out, br#"{"jsonrpc":"2.0","method":"$/cancelRequest"}"#);

    let mut out = Vec::new();
    let error = ErrorObject::new(ErrorCode::TIMEOUT, "too slow");
    write_response(&mut out, &Id::Number(5), Err(&error));
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","error":{"code":-32001,"message":"too slow"},"id":5}"#
    );
}

#[test]
fn request_new_accepts_only_structured_params() {
    let request = Request::new(1, "m", &json!({"a": 1})).expect("an object");
    assert_eq!(
        request.params.as_deref().map(RawValue::get),
        Some(r#"{"a":1}"#)
    );
    let request = Request::new("s", "m", &(1, "two")).expect("a tuple is an array");
    assert_eq!(
        request.params.as_deref().map(RawValue::get),
        Some(r#"[1,"two"]"#)
    );
    assert_eq!(request.id, Id::from("s"));
    #[derive(serde::Serialize)]
    struct P {
        x: u8,
    }
    assert!(Request::new(1, "m", &P { x: 1 }).is_ok());
    assert!(Request::new(1, "m", &Vec::<u8>::new()).is_ok());

    for bad in [json!(1), json!("s"), json!(null), json!(true), json!(1.5)] {
        let err = Request::new(1, "m", &bad).expect_err("not structured");
        assert!(
            matches!(
                err,
                Error::Invalid {
                    rule: Rule::ParamsNotStructured,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = Notification::new("m", &bad).expect_err("not structured");
        assert!(
            matches!(
                err,
                Error::Invalid {
                    rule: Rule::ParamsNotStructured,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert!(Request::new(1, "m", &()).is_err(), "unit is null");

    // A value that cannot be JSON at all.
    let mut map = std::collections::HashMap::new();
    map.insert((1, 2), 3);
    assert!(matches!(
        Request::new(1, "m", &map),
        Err(Error::Serialize(_))
    ));
    assert!(matches!(to_raw(&map), Err(Error::Serialize(_))));

    let notification = Notification::new("n", &[1, 2]).expect("an array");
    assert_eq!(
        notification.params.as_deref().map(RawValue::get),
        Some("[1,2]")
    );
}

#[test]
fn response_result_as() {
    let response = Response::success(1, &json!({"sum": 3})).expect("json");
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Sum {
        sum: i32,
    }
    assert_eq!(response.result_as::<Sum>().expect("shape"), Sum { sum: 3 });
    // A result of the wrong shape.
    match response.result_as::<Vec<i32>>() {
        Err(Err(_)) => {}
        other => panic!("wrong shape reported as {other:?}"),
    }
    // A failed response gives its error object back.
    let error = ErrorObject::new(ErrorCode::METHOD_NOT_FOUND, "no");
    let response = Response::error(2, error.clone());
    match response.result_as::<Sum>() {
        Err(Ok(e)) => assert_eq!(e, &error),
        other => panic!("error response reported as {other:?}"),
    }
    // Borrowing deserialization works on the raw result.
    let response = Response::success(3, &"text").expect("json");
    assert_eq!(response.result_as::<&str>().expect("borrowed"), "text");
}

#[test]
fn error_object_data() {
    let error = ErrorObject::new(ErrorCode::INVALID_PARAMS, "bad")
        .with_data(&json!({"field": "x", "problems": [1, 2]}))
        .expect("json");
    assert_eq!(
        error.data.as_deref().map(RawValue::get),
        Some(r#"{"field":"x","problems":[1,2]}"#)
    );
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Data {
        field: String,
        problems: Vec<u8>,
    }
    assert_eq!(
        error.data_as::<Data>().expect("present").expect("shape"),
        Data {
            field: "x".into(),
            problems: vec![1, 2]
        }
    );
    assert!(error.data_as::<String>().expect("present").is_err());
    assert!(
        ErrorObject::new(ErrorCode(1), "m")
            .data_as::<String>()
            .is_none()
    );
    let mut map = std::collections::HashMap::new();
    map.insert((1, 2), 3);
    assert!(ErrorObject::new(ErrorCode(1), "m").with_data(&map).is_err());
    assert_eq!(error.to_string(), "bad (-32602)");

    // Equality compares data as text.
    let a = ErrorObject::new(ErrorCode(1), "m")
        .with_data(&1)
        .expect("json");
    let b = ErrorObject::new(ErrorCode(1), "m")
        .with_data(&2)
        .expect("json");
    assert_ne!(a, b);
    assert_eq!(a, a.clone());
    assert_ne!(a, ErrorObject::new(ErrorCode(1), "m"));

    // The serde impls round-trip, keeping a null data member.
    let with_null = ErrorObject::new(ErrorCode(1), "m")
        .with_data(&())
        .expect("json");
    let text = serde_json::to_string(&with_null).expect("serializes");
    assert_eq!(text, r#"{"code":1,"message":"m","data":null}"#);
    let back: ErrorObject = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(back, with_null);
}

#[test]
fn error_codes() {
    let standard = [
        (ErrorCode::PARSE_ERROR, -32700, "Parse error"),
        (ErrorCode::INVALID_REQUEST, -32600, "Invalid Request"),
        (ErrorCode::METHOD_NOT_FOUND, -32601, "Method not found"),
        (ErrorCode::INVALID_PARAMS, -32602, "Invalid params"),
        (ErrorCode::INTERNAL_ERROR, -32603, "Internal error"),
    ];
    for (code, value, message) in standard {
        assert_eq!(code.0, value);
        assert_eq!(code.standard_message(), Some(message));
        assert!(code.is_reserved());
        assert!(!code.is_server_error());
        assert_eq!(ErrorObject::standard(code).message, message);
    }
    for code in [
        ErrorCode::SERVER_ERROR,
        ErrorCode::TIMEOUT,
        ErrorCode::CIRCUIT_OPEN,
        ErrorCode::OVERLOADED,
        ErrorCode::WORKER_FAILED,
        ErrorCode::SHUTTING_DOWN,
        ErrorCode(-32099),
    ] {
        assert!(code.is_server_error(), "{code}");
        assert!(code.is_reserved(), "{code}");
        assert_eq!(code.standard_message(), None);
        assert_eq!(ErrorObject::standard(code).message, "Server error");
    }
    assert!(!ErrorCode(-32100).is_server_error());
    assert!(ErrorCode(-32100).is_reserved());
    assert!(!ErrorCode(-31999).is_server_error());
    assert!(!ErrorCode(-31999).is_reserved());
    assert!(ErrorCode(-32768).is_reserved());
    assert!(!ErrorCode(-32769).is_reserved());
    assert!(!ErrorCode::REQUEST_CANCELLED.is_server_error());
    assert_eq!(ErrorCode::from(12), ErrorCode(12));
    assert_eq!(ErrorCode(-5).to_string(), "-5");
}

#[test]
fn ids() {
    assert_eq!(Id::from(5).as_number(), Some(5));
    assert_eq!(Id::from("5").as_number(), None);
    assert_eq!(Id::from(String::from("s")), Id::from("s"));
    assert!(Id::Null.is_null());
    assert!(!Id::from(0).is_null());
    assert_eq!(Id::from(-3).to_string(), "-3");
    assert_eq!(Id::from("a\"b").to_string(), r#""a\"b""#);
    assert_eq!(Id::Null.to_string(), "null");
    for id in [Id::from(-3), Id::from("x\u{1}"), Id::Null] {
        let text = serde_json::to_string(&id).expect("serializes");
        assert_eq!(serde_json::from_str::<Id>(&text).expect("deserializes"), id);
    }
    assert!(serde_json::from_str::<Id>("1.5").is_err());
    assert!(serde_json::from_str::<Id>("true").is_err());
    assert!(serde_json::from_str::<Id>("18446744073709551615").is_err());
}

#[test]
fn decoded_messages_encode_to_what_was_sent() {
    // Compact input round-trips byte for byte, members in canonical order.
    for text in [
        r#"{"jsonrpc":"2.0","id":1,"method":"a.b","params":{"x":[1,2,{"y":null}]}}"#,
        r#"{"jsonrpc":"2.0","id":"\u0000\"","method":"\\"}"#,
        r#"{"jsonrpc":"2.0","method":"n","params":[]}"#,
        r#"{"jsonrpc":"2.0","result":{"big":1e400},"id":-1}"#,
        r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"","data":[{}]},"id":"z"}"#,
        r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","result":0,"id":0}]"#,
    ] {
        let message = Message::from_slice(text.as_bytes()).expect("valid");
        let again = Message::from_slice(&message.to_vec()).expect("valid");
        assert_eq!(
            describe_message(&again),
            describe_message(&message),
            "{text}"
        );
        assert_ne!(describe_message(&message), Decoded::Parse);
    }
}

/// Writes a request with `meta` and returns the text.
fn with_meta(meta: Option<&Meta<'_>>) -> String {
    let params = raw(r#"{"a":1}"#);
    let mut out = Vec::new();
    write_request_with_meta(&mut out, &Id::Number(7), "calc.add", Some(&params), meta);
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn meta_is_a_top_level_member_after_params() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(
        with_meta(Some(&Meta::trace(tp, "vendor=value"))),
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"calc.add","params":{{"a":1}},"_meta":{{"traceparent":"{tp}","tracestate":"vendor=value"}}}}"#
        )
    );
}

#[test]
fn an_empty_tracestate_is_left_out_and_an_empty_meta_writes_nothing() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert_eq!(
        with_meta(Some(&Meta::trace(tp, ""))),
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"calc.add","params":{{"a":1}},"_meta":{{"traceparent":"{tp}"}}}}"#
        )
    );
    let plain = r#"{"jsonrpc":"2.0","id":7,"method":"calc.add","params":{"a":1}}"#;
    assert_eq!(with_meta(None), plain);
    assert_eq!(with_meta(Some(&Meta::trace("", ""))), plain);
    assert_eq!(with_meta(Some(&Meta::default())), plain);
}

#[test]
fn a_request_with_meta_decodes_as_the_same_request() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let text = with_meta(Some(&Meta::trace(tp, "a=b")));
    let Message::Request(request) = Message::from_slice(text.as_bytes()).expect("decodes") else {
        panic!("a request was written");
    };
    assert_eq!(request.id, Id::Number(7));
    assert_eq!(request.method, "calc.add");
    assert_eq!(
        request.params.as_deref().map(RawValue::get),
        Some(r#"{"a":1}"#)
    );
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(value["_meta"]["tracestate"], "a=b");
}
