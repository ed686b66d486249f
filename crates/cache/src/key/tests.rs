//! Unit tests of the canonical form and key construction.

use super::*;
use crate::ParamsProblem;

#[track_caller]
fn check(input: &str, canonical: &str) {
    let got = canonical_for_test(input).expect("valid JSON");
    assert_eq!(
        String::from_utf8_lossy(&got),
        canonical,
        "canonical form of {input}"
    );
}

#[track_caller]
fn check_err(input: &str, problem: ParamsProblem) {
    assert_eq!(
        canonical_for_test(input),
        Err(problem),
        "error for {input:?}"
    );
}

#[track_caller]
fn same(a: &str, b: &str) {
    let ka = CacheKey::new("ns", "m", a).expect("a is JSON");
    let kb = CacheKey::new("ns", "m", b).expect("b is JSON");
    assert_eq!(ka.digest(), kb.digest(), "{a} and {b} should be one key");
}

#[track_caller]
fn differ(a: &str, b: &str) {
    let ka = CacheKey::new("ns", "m", a).expect("a is JSON");
    let kb = CacheKey::new("ns", "m", b).expect("b is JSON");
    assert_ne!(ka.digest(), kb.digest(), "{a} and {b} should be two keys");
}

#[test]
fn scalars() {
    check("true", "t");
    check("false", "f");
    check(" null ", "n");
    check(r#""a b""#, r#""a b""#);
}

#[test]
fn numbers_have_one_form_per_value() {
    check("1", "1");
    check("1.0", "1");
    check("1e0", "1");
    check("10e-1", "1");
    check("0.1", "1e-1");
    check("100", "1e2");
    check("1.50", "15e-1");
    check("-2.5E+3", "-25e2");
    check("0", "0");
    check("-0", "0");
    check("0.000", "0");
    check("0e10", "0");
    check("12345678901234567890123", "12345678901234567890123");
    check("1e-400", "1e-400");
    same("1", "1.0");
    same("1", "1e0");
    same("[0.5]", "[5e-1]");
    differ("1", "-1");
    differ("0.1", "0.10000000000000001");
}

#[test]
fn strings_are_decoded_then_reencoded() {
    check(r#""\u0061\/""#, r#""a/""#);
    check(r#""\n\t\"\\""#, r#""\u000a\u0009\"\\""#);
    check(r#""\ud83d\ude00""#, "\"\u{1F600}\"");
    check("\"é\"", "\"é\"");
    same(r#""é""#, r#""\u00e9""#);
    differ(r#""a""#, r#""A""#);
}

#[test]
fn objects_are_sorted_at_every_depth() {
    check(r#"{"b":1,"a":2}"#, r#"{"a"2"b"1}"#);
    check(
        r#"{"a":{"d":[1,{"z":0,"y":1}],"c":null}}"#,
        r#"{"a"{"c"n"d"[1,{"y"1"z"0}]}}"#,
    );
    check("{}", "{}");
    check("[]", "[]");
    check(" [ 1 , 2 ] ", "[1,2]");
    same(r#"{"a":1,"b":2}"#, r#"{"b":2,"a":1}"#);
    same(
        r#"{"x":{"a":1,"b":[true,{"d":1,"c":2}]}}"#,
        r#"{ "x" : { "b" : [ true , { "c" : 2 , "d" : 1 } ] , "a" : 1 } }"#,
    );
    differ("[1,2]", "[2,1]");
    differ(r#"{"a":[1]}"#, r#"{"a":1}"#);
}

#[test]
fn a_duplicated_key_keeps_its_last_value() {
    check(r#"{"a":1,"a":2}"#, r#"{"a"2}"#);
    check(r#"{"b":0,"a":1,"b":3,"a":2}"#, r#"{"a"2"b"3}"#);
    same(r#"{"a":1,"a":2}"#, r#"{"a":2}"#);
}

#[test]
fn the_canonical_form_is_unambiguous() {
    differ(r#"["a","b"]"#, r#"["a,b"]"#);
    differ("[1,2]", "[12]");
    differ(r#"{"a":"b"}"#, r#"{"ab":""}"#);
    differ(r#""\"""#, r#""\\""#);
    differ("null", r#""n""#);
}

#[test]
fn invalid_json_is_refused() {
    check_err("", ParamsProblem::UnexpectedEnd);
    check_err("{", ParamsProblem::UnexpectedEnd);
    check_err(r#"{"a":1,}"#, ParamsProblem::Syntax);
    check_err("[1,]", ParamsProblem::Syntax);
    check_err("01", ParamsProblem::Syntax);
    check_err("1.", ParamsProblem::UnexpectedEnd);
    check_err("1.e3", ParamsProblem::Syntax);
    check_err("tru", ParamsProblem::UnexpectedEnd);
    check_err("nul1", ParamsProblem::Syntax);
    check_err("1 2", ParamsProblem::TrailingCharacters);
    check_err("\"a\u{1}\"", ParamsProblem::InvalidString);
    check_err(r#""\x""#, ParamsProblem::InvalidString);
    check_err(r#""\ud800""#, ParamsProblem::LoneSurrogate);
    check_err(r#""\udc00""#, ParamsProblem::LoneSurrogate);
    check_err("1e99999999999999999999", ParamsProblem::NumberOutOfRange);
    check_err(&"[".repeat(129), ParamsProblem::TooDeep);
    assert!(canonical_for_test(&format!("{}{}", "[".repeat(128), "]".repeat(128))).is_ok());
    let err = CacheKey::new("ns", "m", &b"\"\xff\""[..]).expect_err("not UTF-8");
    assert!(matches!(
        err,
        Error::InvalidParams {
            offset: 1,
            problem: ParamsProblem::InvalidUtf8
        }
    ));
}

#[test]
fn namespace_and_method_are_part_of_the_key() {
    let base = CacheKey::new("v1", "m", "{}").expect("valid");
    assert_ne!(base, CacheKey::new("v2", "m", "{}").expect("valid"));
    assert_ne!(base, CacheKey::new("v1", "n", "{}").expect("valid"));
    // Each namespace hashes with a key of its own, and the method is
    // length-prefixed: the boundary between them is kept.
    assert_ne!(
        CacheKey::new("ab", "c", "{}").expect("valid"),
        CacheKey::new("a", "bc", "{}").expect("valid")
    );
    assert_eq!(base.method(), "m");
}

#[test]
fn every_params_type_hashes_the_same_text() {
    let text = r#"{"b":1,"a":2}"#;
    let raw = RawValue::from_string(text.to_owned()).expect("valid");
    let expected = CacheKey::new("ns", "m", text).expect("valid");
    assert_eq!(CacheKey::new("ns", "m", &*raw).expect("valid"), expected);
    assert_eq!(CacheKey::new("ns", "m", &raw).expect("valid"), expected);
    assert_eq!(
        CacheKey::new("ns", "m", text.as_bytes()).expect("valid"),
        expected
    );
    assert_eq!(
        CacheKey::new("ns", "m", &text.as_bytes().to_vec()).expect("valid"),
        expected
    );
    assert_eq!(
        CacheKey::new("ns", "m", &bytes::Bytes::from(text)).expect("valid"),
        expected
    );
}

#[test]
fn digest_hex_round_trips() {
    let key = CacheKey::new("ns", "m", "[1]").expect("valid");
    let hex = key.digest().to_hex();
    assert_eq!(hex.len(), 64);
    assert_eq!(KeyDigest::from_hex(&hex), Some(*key.digest()));
    assert_eq!(KeyDigest::from_hex(&hex[1..]), None);
    assert_eq!(KeyDigest::from_hex(&hex.to_uppercase()), None);
}

#[test]
fn producers_are_told_apart_and_stable() {
    use crate::ProducerId;
    let manifest = ProducerId::from_manifest(r#"{"methods":["a.b"],"name":"w"}"#);
    assert_eq!(
        manifest,
        ProducerId::from_manifest(r#"{"methods":["a.b"],"name":"w"}"#)
    );
    assert_ne!(
        manifest,
        ProducerId::from_manifest(r#"{"methods":["a.c"],"name":"w"}"#)
    );
    let command = ProducerId::from_command(&["python3", "w.py"]);
    assert_eq!(command, ProducerId::from_command(&["python3", "w.py"]));
    assert_ne!(command, ProducerId::from_command(&["python3 w.py"]));
    assert_ne!(command, ProducerId::from_command(&["python3", "other.py"]));
    // A manifest text never collides with a one-word command of the same bytes.
    assert_ne!(
        ProducerId::from_manifest("x"),
        ProducerId::from_command(&["x"])
    );
    // Different producers give different keys for the same call.
    let key =
        |producer: ProducerId| CacheKey::new(&producer.namespace("ns"), "m", "{}").expect("key");
    assert_ne!(key(manifest), key(command));
    assert_eq!(
        key(command),
        key(ProducerId::from_command(&["python3", "w.py"]))
    );
}

#[test]
fn strings_end_escape_and_fail_at_any_offset() {
    // Plain bytes are skipped a vector at a time (up to 128 bytes a step):
    // put each special byte on either side of every vector boundary.
    for at in 0..140 {
        let plain = "x".repeat(at);
        check(&format!("\"{plain}\""), &format!("\"{plain}\""));
        check(
            &format!("\"{plain}é{plain}\""),
            &format!("\"{plain}é{plain}\""),
        );
        check(
            &format!(r#""{plain}\u0041\"{plain}""#),
            &format!(r#""{plain}A\"{plain}""#),
        );
        check(&format!(r#""{plain}\\""#), &format!(r#""{plain}\\""#));
        check_err(&format!("\"{plain}\u{1f}x\""), ParamsProblem::InvalidString);
        check_err(&format!("\"{plain}\nx\""), ParamsProblem::InvalidString);
        check_err(&format!("\"{plain}"), ParamsProblem::UnexpectedEnd);
        // The error names the control character's offset, also when a
        // quote or a backslash follows it.
        for tail in ["x\"", "\\n\"", "\""] {
            let input = format!("\"{plain}\u{1}{tail}");
            let mut scratch = Scratch::default();
            assert_eq!(
                canonical::canonicalize(input.as_bytes(), &mut scratch),
                Err((1 + at, ParamsProblem::InvalidString)),
                "{input:?}"
            );
        }
    }
}
