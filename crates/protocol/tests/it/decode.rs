//! Strict decoding: each rule of the specification broken and named, ids,
//! method classification, and the shapes of `params`, `result` and `error`.

use pybridge_protocol::{Error, ErrorCode, Id, Message, MethodKind, Notification, Request, Rule};

use crate::support::{Decoded, NULL, decode, failure, invalid, notification, request, success};

fn check(input: &str, expected: Decoded) {
    assert_eq!(decode(input), expected, "decoding {input}");
}

/// Checks that a request whose id member is the raw text `id` decodes to `expected`.
fn check_id(id: &str, expected: Result<Id, Rule>) {
    let input = format!(r#"{{"jsonrpc":"2.0","method":"m","id":{id}}}"#);
    let want = match expected.clone() {
        Ok(id) => request(id, "m", None),
        Err(rule) => invalid(rule, NULL),
    };
    check(&input, want);
    // The same id on a response.
    let input = format!(r#"{{"jsonrpc":"2.0","result":0,"id":{id}}}"#);
    let want = match expected {
        Ok(id) => success(id, "0"),
        Err(rule) => invalid(rule, NULL),
    };
    check(&input, want);
}

#[test]
fn not_an_object() {
    for text in ["1", "\"x\"", "null", "true", "-2.5"] {
        check(text, invalid(Rule::NotAnObject, NULL));
    }
    check(
        r#"[{"jsonrpc":"2.0","method":"m"}, "x", null]"#,
        Decoded::Batch(vec![
            notification("m", None),
            invalid(Rule::NotAnObject, NULL),
            invalid(Rule::NotAnObject, NULL),
        ]),
    );
}

#[test]
fn version() {
    for member in [
        "",
        r#""jsonrpc":"1.0","#,
        r#""jsonrpc":2.0,"#,
        r#""jsonrpc":"2.0 ","#,
        r#""jsonrpc":"2","#,
        r#""jsonrpc":null,"#,
    ] {
        check(
            &format!(r#"{{{member}"method":"m","id":7}}"#),
            invalid(Rule::Version, 7),
        );
    }
    // The version is compared as a string, not as bytes: an escaped "2.0" is "2.0".
    check(
        r#"{"jsonrpc":"2\u002e0","method":"m","id":7}"#,
        request(7, "m", None),
    );
}

#[test]
fn method_type() {
    for method in ["1", "null", "{}", "[\"m\"]", "true"] {
        check(
            &format!(r#"{{"jsonrpc":"2.0","method":{method},"id":"a"}}"#),
            invalid(Rule::MethodType, "a"),
        );
    }
    // Escapes in the method are decoded.
    check(
        r#"{"jsonrpc":"2.0","method":"a\"b\u00e9\n"}"#,
        notification("a\"b\u{e9}\n", None),
    );
}

#[test]
fn params_must_be_structured() {
    for params in ["\"bar\"", "3", "-1.5", "null", "true"] {
        check(
            &format!(r#"{{"jsonrpc":"2.0","method":"m","params":{params},"id":2}}"#),
            invalid(Rule::ParamsNotStructured, 2),
        );
        check(
            &format!(r#"{{"jsonrpc":"2.0","method":"m","params":{params}}}"#),
            invalid(Rule::ParamsNotStructured, NULL),
        );
    }
    // Structured params are kept as their exact raw text.
    check(
        r#"{"jsonrpc":"2.0","method":"m","params": [ 1 , {"a" : [] } ] ,"id":2}"#,
        request(2, "m", Some(r#"[ 1 , {"a" : [] } ]"#)),
    );
    check(
        r#"{"jsonrpc":"2.0","method":"m","params":{}}"#,
        notification("m", Some("{}")),
    );
}

#[test]
fn ids() {
    check_id("0", Ok(Id::Number(0)));
    check_id("-0", Ok(Id::Number(0)));
    check_id("42", Ok(Id::Number(42)));
    check_id("-7", Ok(Id::Number(-7)));
    check_id("9223372036854775807", Ok(Id::Number(i64::MAX)));
    check_id("-9223372036854775808", Ok(Id::Number(i64::MIN)));
    check_id(r#""""#, Ok(Id::from("")));
    check_id(r#""abc""#, Ok(Id::from("abc")));
    check_id(
        r#""a\"b\\c\u0000\ud83d\ude00""#,
        Ok(Id::from("a\"b\\c\0\u{1f600}")),
    );
    check_id("null", Ok(Id::Null));

    // Fractions and exponents, even of whole numbers.
    for id in ["1.5", "1.0", "-0.0", "1e3", "1E3", "-1e-2", "0.1e1", "2E+0"] {
        check_id(id, Err(Rule::IdType));
    }
    // Outside the range of i64.
    for id in [
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "123456789012345678901234567890",
    ] {
        check_id(id, Err(Rule::IdType));
    }
    // Not a number, string or null.
    for id in ["true", "false", "[]", "[1]", "{}", r#"{"id":1}"#] {
        check_id(id, Err(Rule::IdType));
    }
}

#[test]
fn a_request_without_id_is_a_notification_and_a_null_id_is_a_request() {
    check(r#"{"jsonrpc":"2.0","method":"m"}"#, notification("m", None));
    check(
        r#"{"jsonrpc":"2.0","method":"m","id":null}"#,
        request(NULL, "m", None),
    );
}

#[test]
fn method_classification() {
    let cases = [
        ("rpc.discover", MethodKind::RpcReserved),
        ("rpc.", MethodKind::RpcReserved),
        ("$/cancelRequest", MethodKind::Bridge),
        ("$/", MethodKind::Bridge),
        ("rpc", MethodKind::Application),
        ("rpcx.y", MethodKind::Application),
        ("RPC.discover", MethodKind::Application),
        ("$", MethodKind::Application),
        ("$x/y", MethodKind::Application),
        ("math.add", MethodKind::Application),
        ("", MethodKind::Application),
    ];
    for (method, kind) in cases {
        assert_eq!(MethodKind::of(method), kind, "{method}");
        let text = format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":1}}"#);
        let Ok(Message::Request(r)) = Message::from_slice(text.as_bytes()) else {
            panic!("{text} is a request");
        };
        assert_eq!(r.method_kind(), kind, "{method}");
        let text = format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#);
        let Ok(Message::Notification(n)) = Message::from_slice(text.as_bytes()) else {
            panic!("{text} is a notification");
        };
        assert_eq!(n.method_kind(), kind, "{method}");
    }
    assert_eq!(pybridge_protocol::RPC_RESERVED_PREFIX, "rpc.");
    assert_eq!(pybridge_protocol::BRIDGE_RESERVED_PREFIX, "$/");
}

#[test]
fn duplicate_members() {
    for text in [
        r#"{"jsonrpc":"2.0","jsonrpc":"2.0","method":"m","id":1}"#,
        r#"{"jsonrpc":"2.0","method":"m","id":1,"id":1}"#,
        r#"{"jsonrpc":"2.0","method":"m","method":"m","id":1}"#,
        r#"{"jsonrpc":"2.0","method":"m","params":[],"params":[],"id":1}"#,
        r#"{"jsonrpc":"2.0","result":1,"result":1,"id":1}"#,
        r#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"},"error":{"code":1,"message":"x"},"id":1}"#,
    ] {
        check(text, invalid(Rule::DuplicateMember, NULL));
    }
    // Inside the error object too.
    check(
        r#"{"jsonrpc":"2.0","error":{"code":1,"code":2,"message":"m"},"id":3}"#,
        invalid(Rule::DuplicateMember, 3),
    );
    // A member name spelled with escapes is the same member.
    check(
        r#"{"jsonrpc":"2.0","method":"m","\u006dethod":"n"}"#,
        invalid(Rule::DuplicateMember, NULL),
    );
}

#[test]
fn unknown_members_are_ignored() {
    check(
        r#"{"jsonrpc":"2.0","method":"m","id":1,"extra":{"deep":[1,2]},"x":null}"#,
        request(1, "m", None),
    );
    check(
        r#"{"jsonrpc":"2.0","result":true,"id":1,"params":[1]}"#,
        success(1, "true"),
    );
}

#[test]
fn result_and_error() {
    check(
        r#"{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"m"},"id":4}"#,
        invalid(Rule::ResultAndError, 4),
    );
    check(
        r#"{"jsonrpc":"2.0","result":null,"error":null,"id":4}"#,
        invalid(Rule::ResultAndError, 4),
    );
    check(r#"{"jsonrpc":"2.0","id":4}"#, invalid(Rule::NotAMessage, 4));
    check(r#"{"jsonrpc":"2.0"}"#, invalid(Rule::NotAMessage, NULL));
    check(
        r#"{"jsonrpc":"2.0","method":"m","result":1,"id":4}"#,
        invalid(Rule::MethodInResponse, 4),
    );
    check(
        r#"{"jsonrpc":"2.0","method":"m","error":{"code":1,"message":"m"}}"#,
        invalid(Rule::MethodInResponse, NULL),
    );
    check(
        r#"{"jsonrpc":"2.0","result":1}"#,
        invalid(Rule::MissingResponseId, NULL),
    );
    check(
        r#"{"jsonrpc":"2.0","error":{"code":1,"message":"m"}}"#,
        invalid(Rule::MissingResponseId, NULL),
    );
    // A null result is a result.
    check(
        r#"{"jsonrpc":"2.0","result":null,"id":4}"#,
        success(4, "null"),
    );
    check(
        r#"{"jsonrpc":"2.0","result": {"a" : [1, 2.5e3]} ,"id":4}"#,
        success(4, r#"{"a" : [1, 2.5e3]}"#),
    );
}

#[test]
fn error_objects() {
    let check_error = |error: &str, expected: Decoded| {
        check(
            &format!(r#"{{"jsonrpc":"2.0","error":{error},"id":9}}"#),
            expected,
        );
    };
    check_error(
        r#"{"code":-32601,"message":"Method not found"}"#,
        failure(9, -32601, "Method not found", None),
    );
    check_error(
        r#"{"message":"m","data":{"k":[1]},"code":7}"#,
        failure(9, 7, "m", Some(r#"{"k":[1]}"#)),
    );
    // A null data member is kept, not dropped.
    check_error(
        r#"{"code":1,"message":"m","data":null}"#,
        failure(9, 1, "m", Some("null")),
    );
    check_error(
        r#"{"code":1,"message":"m","extra":true}"#,
        failure(9, 1, "m", None),
    );
    for bad in [
        "null",
        "\"oops\"",
        "1",
        "[]",
        // serde would read a struct from an array of its fields.
        r#"[1,"m"]"#,
        r#"[1,"m",null]"#,
        "{}",
        r#"{"code":1}"#,
        r#"{"message":"m"}"#,
        r#"{"code":"1","message":"m"}"#,
        r#"{"code":1.5,"message":"m"}"#,
        r#"{"code":1e2,"message":"m"}"#,
        r#"{"code":null,"message":"m"}"#,
        r#"{"code":1,"message":2}"#,
        r#"{"code":1,"message":null}"#,
        r#"{"code":9223372036854775808,"message":"m"}"#,
    ] {
        check_error(bad, invalid(Rule::ErrorObjectShape, 9));
    }
}

#[test]
fn batches() {
    check("[]", invalid(Rule::EmptyBatch, NULL));
    check(" \n[ \t]\r\n", invalid(Rule::EmptyBatch, NULL));
    check(
        r#"[[], [{"jsonrpc":"2.0","method":"m"}], {"jsonrpc":"2.0","method":"m"}]"#,
        Decoded::Batch(vec![
            invalid(Rule::NestedBatch, NULL),
            invalid(Rule::NestedBatch, NULL),
            notification("m", None),
        ]),
    );
    // Each entry fails on its own, with its own id.
    check(
        r#"[{"jsonrpc":"1.0","method":"m","id":1},{"jsonrpc":"2.0","result":1,"id":2},{"id":1,"id":2}]"#,
        Decoded::Batch(vec![
            invalid(Rule::Version, 1),
            success(2, "1"),
            invalid(Rule::DuplicateMember, NULL),
        ]),
    );
}

#[test]
fn parse_errors() {
    for text in [
        "",
        "   ",
        "{",
        "{\"jsonrpc\":\"2.0\",}",
        "[1,]",
        "[1",
        "{\"a\":1} {}",
        "{\"a\":1} x",
        "nul",
        "{'jsonrpc':'2.0'}",
        "\u{feff}{}",
    ] {
        check(text, Decoded::Parse);
    }
    let text = b"{\n  \"a\": tru\n}";
    let err = Message::from_slice(text).expect_err("not JSON");
    let Error::Parse {
        line,
        column,
        message,
    } = &err
    else {
        panic!("{err:?} is a parse error");
    };
    // The position is the JSON parser's own.
    let json = serde_json::from_slice::<serde_json::Value>(text).expect_err("not JSON");
    assert_eq!((*line, *column), (json.line(), json.column()));
    assert!(*line > 1);
    assert!(
        !message.contains("line"),
        "the position is in the fields: {message}"
    );
    assert_eq!(
        err.to_string(),
        format!("invalid JSON at line {line}, column {column}: {message}")
    );
    // Invalid UTF-8 inside a string is a parse error too.
    let bytes = b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}";
    assert_eq!(describe_bytes(bytes), Decoded::Parse);
}

fn describe_bytes(bytes: &[u8]) -> Decoded {
    crate::support::describe(&Message::from_slice(bytes))
}

#[test]
fn deep_nesting_is_neither_a_crash_nor_parsed() {
    // Raw params are validated without recursion, so depth is no danger here;
    // they are kept as they came.
    let depth = 100_000;
    let params = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let text = format!(r#"{{"jsonrpc":"2.0","method":"m","params":{params}}}"#);
    let Ok(Message::Notification(n)) = Message::from_slice(text.as_bytes()) else {
        panic!("deeply nested params are still JSON");
    };
    assert_eq!(n.params.as_deref().map(|p| p.get().len()), Some(2 * depth));
    // A deep batch is one nested entry; a truncated one is not JSON.
    let batch = format!("[{params}]");
    assert_eq!(
        decode(&batch),
        Decoded::Batch(vec![invalid(Rule::NestedBatch, NULL)])
    );
    assert_eq!(decode(&"[".repeat(depth)), Decoded::Parse);
    // A deep id or method is rejected by type, without descending into it.
    let text = format!(r#"{{"jsonrpc":"2.0","method":"m","id":{params}}}"#);
    assert_eq!(decode(&text), invalid(Rule::IdType, NULL));
    let text = format!(r#"{{"jsonrpc":"2.0","method":{params}}}"#);
    assert_eq!(decode(&text), invalid(Rule::MethodType, NULL));
    let text =
        format!(r#"{{"jsonrpc":"2.0","error":{{"code":1,"message":"m","data":{params}}},"id":1}}"#);
    assert!(matches!(decode(&text), Decoded::Failure { .. }));
}

#[test]
fn errors_say_how_to_answer_and_whether_to_retry() {
    let err =
        Message::from_slice(br#"{"jsonrpc":"2.0","method":1,"id":"q"}"#).expect_err("invalid");
    assert_eq!(err.code(), ErrorCode::INVALID_REQUEST);
    assert_eq!(err.id(), &Id::from("q"));
    assert!(!err.is_retryable());
    let object = err.to_error_object();
    assert_eq!(object.code, ErrorCode::INVALID_REQUEST);
    assert_eq!(object.message, "Invalid Request");
    assert_eq!(
        object.data_as::<String>().expect("data").expect("a string"),
        "invalid message: \"method\" must be a string"
    );

    let err = Message::from_slice(b"{").expect_err("not JSON");
    assert_eq!(err.code(), ErrorCode::PARSE_ERROR);
    assert_eq!(err.to_error_object().message, "Parse error");
    assert!(!err.is_retryable());

    let io = Error::from(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"));
    assert!(io.is_retryable());
    assert_eq!(io.code(), ErrorCode::INTERNAL_ERROR);
    assert_eq!(io.id(), &Id::Null);
    assert!(std::error::Error::source(&io).is_some());

    let big = Error::FrameTooLarge {
        limit: 10,
        declared: Some(11),
    };
    assert_eq!(big.code(), ErrorCode::INVALID_REQUEST);
    assert!(!big.is_retryable());
    assert_eq!(big.to_string(), "frame exceeds the limit of 10 bytes");
    let utf8 = Error::InvalidUtf8 { valid_up_to: 3 };
    assert_eq!(utf8.code(), ErrorCode::PARSE_ERROR);
}

#[test]
fn every_rule_has_a_description() {
    let rules = [
        Rule::NotAnObject,
        Rule::Version,
        Rule::MethodType,
        Rule::ParamsNotStructured,
        Rule::IdType,
        Rule::ResultAndError,
        Rule::NotAMessage,
        Rule::MethodInResponse,
        Rule::MissingResponseId,
        Rule::ErrorObjectShape,
        Rule::EmptyBatch,
        Rule::NestedBatch,
        Rule::DuplicateMember,
    ];
    let texts: std::collections::HashSet<String> = rules.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), rules.len(), "descriptions are distinct");
    for text in &texts {
        assert!(
            text.starts_with(|c: char| c.is_lowercase() || c == '"'),
            "{text}"
        );
        assert!(!text.ends_with('.'), "{text}");
    }
}

#[test]
fn params_as_reads_typed_params() {
    let Ok(Message::Request(request)) =
        Message::from_slice(br#"{"jsonrpc":"2.0","method":"m","params":{"a":1,"b":"x"},"id":1}"#)
    else {
        panic!("a request");
    };
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct P {
        a: u8,
        b: String,
    }
    assert_eq!(
        request.params_as::<P>().expect("shape"),
        P {
            a: 1,
            b: "x".into()
        }
    );
    assert!(request.params_as::<Vec<u8>>().is_err());
    let none = Request {
        id: Id::Number(1),
        method: "m".into(),
        params: None,
    };
    assert_eq!(none.params_as::<Option<P>>().expect("null"), None);
    let notification = Notification {
        method: "m".into(),
        params: Some(pybridge_protocol::to_raw(&[1, 2]).expect("json")),
    };
    assert_eq!(notification.params_as::<Vec<i32>>().expect("array"), [1, 2]);
}
