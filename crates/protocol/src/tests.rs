//! Unit tests of the crate's private helpers: decoding, encoding and errors.

use serde_json::value::RawValue;

use crate::decode::{decode_general, first_byte, is_version, parse_id, plain_response};
use crate::{Error, Id, Message, Rule};

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("valid JSON")
}

#[test]
fn first_byte_skips_json_whitespace_only() {
    assert_eq!(first_byte(b" \t\r\n[1]"), Some(b'['));
    assert_eq!(first_byte(b"{}"), Some(b'{'));
    assert_eq!(
        first_byte(b" \x0c["),
        Some(0x0c),
        "form feed is not JSON whitespace"
    );
    assert_eq!(first_byte(b"  "), None);
    assert_eq!(first_byte(b""), None);
}

#[test]
fn version_is_compared_as_a_string() {
    assert!(is_version(&raw(r#""2.0""#)));
    assert!(is_version(&raw(r#""\u0032.0""#)));
    assert!(is_version(&raw(r#""2\u002E0""#)));
    for bad in [
        r#""2.0 ""#,
        r#""2.00""#,
        "2.0",
        r#""\u0032""#,
        "null",
        r#""2\\.0""#,
    ] {
        assert!(!is_version(&raw(bad)), "{bad}");
    }
}

#[test]
fn ids_are_parsed_from_raw_text() {
    assert_eq!(parse_id(&raw("-0")).ok(), Some(Id::Number(0)));
    assert_eq!(parse_id(&raw("0")).ok(), Some(Id::Number(0)));
    assert_eq!(parse_id(&raw("-12")).ok(), Some(Id::Number(-12)));
    assert_eq!(parse_id(&raw(r#""\n""#)).ok(), Some(Id::from("\n")));
    assert_eq!(parse_id(&raw("null")).ok(), Some(Id::Null));
    for bad in [
        "-0.0",
        "0e0",
        "1.5",
        "true",
        "[]",
        "{}",
        "9223372036854775808",
    ] {
        assert!(parse_id(&raw(bad)).is_err(), "{bad}");
    }
}

#[test]
fn rejected_ids_say_what_an_id_must_be() {
    let err = serde_json::from_str::<Id>("1.5").expect_err("fractional");
    assert!(
        err.to_string().contains("an integer, a string or null"),
        "{err}"
    );
}

#[test]
fn parse_errors_keep_the_position_in_fields_only() {
    let json = serde_json::from_str::<serde_json::Value>("[1,\n 2,]").expect_err("bad");
    let Error::Parse {
        line,
        column,
        message,
    } = Error::parse(&json)
    else {
        panic!("a parse error");
    };
    assert_eq!((line, column), (json.line(), json.column()));
    assert_eq!(message, "trailing comma");
}

#[test]
fn structural_errors_split_bad_json_from_bad_shapes() {
    // Valid JSON of the wrong type is an invalid message, not a parse error.
    assert!(matches!(
        Message::from_slice(b"42"),
        Err(Error::Invalid {
            rule: Rule::NotAnObject,
            ..
        })
    ));
    // A syntax error inside an object is a parse error.
    assert!(matches!(
        Message::from_slice(br#"{"id":}"#),
        Err(Error::Parse { .. })
    ));
    // Running out of input is a parse error too.
    assert!(matches!(
        Message::from_slice(br#"{"id":1"#),
        Err(Error::Parse { .. })
    ));
}

#[test]
fn write_str_escapes_exactly_like_serde_json() {
    let mut all: Vec<String> = (0u32..0x80)
        .filter_map(char::from_u32)
        .map(|c| format!("a{c}b"))
        .collect();
    all.extend(["", "plain", "é\u{2028}\u{1f600}", "\"\\", "\u{7f}"].map(String::from));
    for s in all {
        let mut out = Vec::new();
        crate::encode::write_str(&mut out, &s);
        let expected = serde_json::to_string(&s).expect("a str serializes");
        assert_eq!(String::from_utf8(out).expect("UTF-8"), expected, "{s:?}");
    }
}

#[test]
fn to_error_object_carries_the_description_as_data() {
    let err = Error::invalid(Rule::EmptyBatch, Id::Null);
    let object = err.to_error_object();
    assert_eq!(
        object.data.as_deref().map(RawValue::get),
        Some(r#""invalid message: a batch must not be empty""#)
    );
}

#[test]
fn the_plain_answer_path_decodes_exactly_as_the_general_one() {
    let cases: &[&[u8]] = &[
        br#"{"jsonrpc":"2.0","id":7,"result":{"data":"xx"}}"#,
        br#"{"jsonrpc":"2.0","id":0,"result":null}"#,
        br#"{"jsonrpc":"2.0","id":-0,"result":1}"#,
        br#"{"jsonrpc":"2.0","id":-42,"result":[1,2,{"a":"\u00e9"}]}"#,
        br#"{"jsonrpc":"2.0","id":123456789012345678,"result":"s"}"#,
        br#"{"jsonrpc":"2.0","id":9223372036854775807,"result":1}"#,
        br#"{"jsonrpc":"2.0","id":99999999999999999999,"result":1}"#,
        br#"{"jsonrpc":"2.0","id":1,"result": {"a" : 1} }  "#,
        br#"{"jsonrpc":"2.0","id":1,"result":{"a":1}}"#,
        br#"{"jsonrpc":"2.0","id":01,"result":1}"#,
        br#"{"jsonrpc":"2.0","id":-,"result":1}"#,
        br#"{"jsonrpc":"2.0","id":1.5,"result":1}"#,
        br#"{"jsonrpc":"2.0","id":1e3,"result":1}"#,
        br#"{"jsonrpc":"2.0","id":"7","result":1}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":1,"result":2}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":1,"id":2}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{}} x"#,
        br#"{"jsonrpc":"2.0","id":1,"result":}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":[1,}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":"\x"}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":1"#,
        br#"{"jsonrpc":"2.0","id":1,"result"#,
        br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"m"}"#,
        br#" {"jsonrpc":"2.0","id":1,"result":1}"#,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xff\"}",
        // Form feed and vertical tab are ASCII whitespace but not JSON's.
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}\x0c",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1\x0c}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}\x0b",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}\r\n\t ",
        // Not UTF-8: in the result, a key in it, the id, after the answer,
        // a sequence cut short.
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\xff\":1}}",
        b"{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"result\":1}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}\xff",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xc3\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xc3\xa9\"}",
    ];
    let mut plain = 0;
    for bytes in cases {
        let text = String::from_utf8_lossy(bytes);
        let general = format!("{:?}", decode_general(bytes));
        assert_eq!(
            format!("{:?}", Message::from_slice(bytes)),
            general,
            "{text}"
        );
        // The decode for frames the codec did not check: the same, and
        // `InvalidUtf8` for a frame that is not UTF-8, as the codec says.
        let unchecked = match std::str::from_utf8(bytes) {
            Ok(_) => general.clone(),
            Err(err) => format!(
                "{:?}",
                Err::<Message, _>(Error::InvalidUtf8 {
                    valid_up_to: err.valid_up_to()
                })
            ),
        };
        assert_eq!(
            format!("{:?}", Message::from_frame(bytes)),
            unchecked,
            "{text}"
        );
        if let Some(response) = plain_response(bytes) {
            plain += 1;
            assert_eq!(
                format!("{:?}", Ok::<_, Error>(Message::Response(response))),
                general,
                "{text}"
            );
        }
    }
    // The cases the plain path reads itself, so the comparison above tests it.
    assert_eq!(plain, 9);
}
