//! Every example of the "Examples" section of the JSON-RPC 2.0 specification,
//! as a test vector: what the request decodes to (or the error a server must
//! answer it with), and what the specification's response texts decode to.

use pybridge_protocol::{Error, ErrorObject, Message, Response, Rule};

use crate::support::{Decoded, NULL, decode, failure, invalid, notification, request, success};

/// Checks what `input` decodes to.
fn check(input: &str, expected: Decoded) {
    assert_eq!(decode(input), expected, "decoding {input}");
}

/// Checks that the error a server answers `input` with is the
/// specification's `response`: the code, its standard message, and the id
/// (null whenever it could not be read).
fn check_answer(input: &str, response: &str) {
    let answers: Vec<Vec<u8>> = match Message::from_slice(input.as_bytes()) {
        Err(err) => vec![answer(&err)],
        Ok(Message::Batch(entries)) => entries
            .iter()
            .filter_map(|e| e.as_ref().err())
            .map(answer)
            .collect(),
        Ok(other) => panic!("{input} decoded to {other:?}, not an error"),
    };
    let expected: serde_json::Value = serde_json::from_str(response).expect("spec text is JSON");
    let got: serde_json::Value = if expected.is_array() {
        let values: Vec<serde_json::Value> = answers.iter().map(|a| parse_json(a)).collect();
        serde_json::Value::Array(values)
    } else {
        assert_eq!(answers.len(), 1);
        parse_json(&answers[0])
    };
    assert_eq!(got, expected, "answer to {input}");
}

fn answer(err: &Error) -> Vec<u8> {
    let response = Response::error(err.id().clone(), ErrorObject::standard(err.code()));
    Message::Response(response).to_vec()
}

fn parse_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("an encoded answer is JSON")
}

#[test]
fn rpc_call_with_positional_parameters() {
    check(
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
        request(1, "subtract", Some("[42, 23]")),
    );
    check(
        r#"{"jsonrpc": "2.0", "result": 19, "id": 1}"#,
        success(1, "19"),
    );
    check(
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#,
        request(2, "subtract", Some("[23, 42]")),
    );
    check(
        r#"{"jsonrpc": "2.0", "result": -19, "id": 2}"#,
        success(2, "-19"),
    );
}

#[test]
fn rpc_call_with_named_parameters() {
    check(
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
        request(3, "subtract", Some(r#"{"subtrahend": 23, "minuend": 42}"#)),
    );
    check(
        r#"{"jsonrpc": "2.0", "result": 19, "id": 3}"#,
        success(3, "19"),
    );
    check(
        r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}"#,
        request(4, "subtract", Some(r#"{"minuend": 42, "subtrahend": 23}"#)),
    );
    check(
        r#"{"jsonrpc": "2.0", "result": 19, "id": 4}"#,
        success(4, "19"),
    );
}

#[test]
fn notifications() {
    check(
        r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#,
        notification("update", Some("[1,2,3,4,5]")),
    );
    check(
        r#"{"jsonrpc": "2.0", "method": "foobar"}"#,
        notification("foobar", None),
    );
}

#[test]
fn rpc_call_of_non_existent_method() {
    check(
        r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
        request("1", "foobar", None),
    );
    check(
        r#"{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}"#,
        failure("1", -32601, "Method not found", None),
    );
}

#[test]
fn rpc_call_with_invalid_json() {
    let input = r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#;
    let response =
        r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#;
    check(input, Decoded::Parse);
    check_answer(input, response);
    check(response, failure(NULL, -32700, "Parse error", None));
}

#[test]
fn rpc_call_with_invalid_request_object() {
    let input = r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#;
    let response = r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#;
    check(input, invalid(Rule::MethodType, NULL));
    check_answer(input, response);
    check(response, failure(NULL, -32600, "Invalid Request", None));
}

#[test]
fn rpc_call_batch_with_invalid_json() {
    let input = r#"[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]"#;
    let response =
        r#"{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}"#;
    check(input, Decoded::Parse);
    check_answer(input, response);
}

#[test]
fn rpc_call_with_an_empty_array() {
    let response = r#"{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}"#;
    check("[]", invalid(Rule::EmptyBatch, NULL));
    check_answer("[]", response);
}

#[test]
fn rpc_call_with_an_invalid_batch_but_not_empty() {
    let response = r#"[
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
]"#;
    check(
        "[1]",
        Decoded::Batch(vec![invalid(Rule::NotAnObject, NULL)]),
    );
    check_answer("[1]", response);
    check(
        response,
        Decoded::Batch(vec![failure(NULL, -32600, "Invalid Request", None)]),
    );
}

#[test]
fn rpc_call_with_invalid_batch() {
    let response = r#"[
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
]"#;
    check(
        "[1,2,3]",
        Decoded::Batch(vec![invalid(Rule::NotAnObject, NULL); 3]),
    );
    check_answer("[1,2,3]", response);
    check(
        response,
        Decoded::Batch(vec![failure(NULL, -32600, "Invalid Request", None); 3]),
    );
}

#[test]
fn rpc_call_batch() {
    let input = r#"[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"} 
    ]"#;
    check(
        input,
        Decoded::Batch(vec![
            request("1", "sum", Some("[1,2,4]")),
            notification("notify_hello", Some("[7]")),
            request("2", "subtract", Some("[42,23]")),
            invalid(Rule::Version, NULL),
            request("5", "foo.get", Some(r#"{"name": "myself"}"#)),
            request("9", "get_data", None),
        ]),
    );
    // Only the invalid entry is answered by the decoder; the others by the server.
    check_answer(
        input,
        r#"[{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}]"#,
    );
    let response = r#"[
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    ]"#;
    check(
        response,
        Decoded::Batch(vec![
            success("1", "7"),
            success("2", "19"),
            failure(NULL, -32600, "Invalid Request", None),
            failure("5", -32601, "Method not found", None),
            success("9", r#"["hello", 5]"#),
        ]),
    );
}

#[test]
fn rpc_call_batch_all_notifications() {
    let input = r#"[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]"#;
    check(
        input,
        Decoded::Batch(vec![
            notification("notify_sum", Some("[1,2,4]")),
            notification("notify_hello", Some("[7]")),
        ]),
    );
    // Nothing is returned for an all-notification batch: no entry needs an answer.
    let Ok(Message::Batch(entries)) = Message::from_slice(input.as_bytes()) else {
        panic!("a batch of notifications decodes as a batch");
    };
    assert!(
        entries
            .iter()
            .all(|e| matches!(e, Ok(Message::Notification(_))))
    );
}
