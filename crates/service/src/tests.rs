//! Unit tests of the service crate's internals: the limits parser against
//! serde_json, rename trees, coercion details, envelopes and camelCase.

use std::num::NonZeroUsize;

use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::coerce::{apply_defaults, coerce, has_defaults};
use crate::envelope::split;
use crate::limits::{self, Limits};
use crate::rename::RenameTree;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("valid JSON")
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// With limits that cannot bite, the limits parser builds exactly what
    /// serde_json builds, and the scan-only mode agrees.
    #[test]
    fn limited_parse_equals_serde_json(value in arbitrary_json()) {
        let structured = match value {
            Value::Array(_) | Value::Object(_) => value,
            other => Value::Array(vec![other]),
        };
        let text = serde_json::to_string(&structured).expect("serializable");
        let limits = Limits { proto_keys: crate::ProtoKeys::Allow, ..Limits::default() };
        let parsed = limits::parse::<true>(&raw(&text), &limits).expect("within limits");
        prop_assert_eq!(&parsed, &structured);
        prop_assert!(limits::parse::<false>(&raw(&text), &limits).is_ok());
    }

    /// Both modes find the same violation, whatever the limits.
    #[test]
    fn build_and_scan_agree(value in arbitrary_json(), depth in 1usize..6, string in 1usize..10, array in 1usize..6) {
        let text = serde_json::to_string(&Value::Array(vec![value])).expect("serializable");
        let limits = Limits {
            max_params_bytes: NonZeroUsize::MAX,
            max_depth: NonZeroUsize::new(depth).expect("non-zero"),
            max_string_bytes: NonZeroUsize::new(string).expect("non-zero"),
            max_array_len: NonZeroUsize::new(array).expect("non-zero"),
            proto_keys: crate::ProtoKeys::Reject,
        };
        let built = limits::parse::<true>(&raw(&text), &limits).err();
        let scanned = limits::parse::<false>(&raw(&text), &limits).err();
        prop_assert_eq!(built, scanned);
    }

    /// Renaming to the wire names and back gives the original, when the wire
    /// names are not already used.
    #[test]
    fn renames_round_trip(a in any::<i32>(), b in any::<i32>(), items in proptest::collection::vec(any::<i32>(), 0..4)) {
        let mut tree = RenameTree::default();
        tree.insert("/alpha", vec!["a_wire".into()]).expect("valid");
        tree.insert("/nested/beta", vec!["b_wire".into()]).expect("valid");
        tree.insert("/list/*/gamma", vec!["g_wire".into()]).expect("valid");
        let original = json!({
            "alpha": a,
            "nested": {"beta": b, "untouched": 1},
            "list": items.iter().map(|i| json!({"gamma": i})).collect::<Vec<_>>(),
        });
        let mut value = original.clone();
        prop_assert!(tree.to_other(&mut value));
        prop_assert_eq!(&value["a_wire"], &json!(a));
        prop_assert_eq!(&value["nested"]["b_wire"], &json!(b));
        prop_assert_eq!(tree.to_public(&mut value), Ok(true));
        prop_assert_eq!(value, original);
    }
}

#[test]
fn rename_declarations_are_checked() {
    let mut tree = RenameTree::default();
    assert!(tree.insert("", vec!["x".into()]).is_err());
    assert!(tree.insert("/", vec!["x".into()]).is_err());
    assert!(tree.insert("/a/*", vec!["x".into()]).is_err());
    assert!(tree.insert("a", vec!["x".into()]).is_err());
    assert!(tree.insert("/a", vec![]).is_err());
    tree.insert("/a~1b/c~0d", vec!["x".into()])
        .expect("escaped pointer");
    assert!(
        tree.insert("/a~1b/c~0d", vec!["y".into()]).is_err(),
        "declared twice"
    );
    let paths = tree.paths();
    assert_eq!(paths, vec![vec![Some("a/b"), Some("c~d")]]);
    let mut value = json!({"a/b": {"c~d": 1}});
    assert!(tree.to_other(&mut value));
    assert_eq!(value, json!({"a/b": {"x": 1}}));
}

#[test]
fn renames_leave_other_shapes_alone() {
    let mut tree = RenameTree::default();
    tree.insert("/a/b", vec!["wire_b".into()]).expect("valid");
    for value in [
        json!([1]),
        json!({"a": 5}),
        json!({"a": [{"b": 1}]}),
        json!("text"),
    ] {
        let mut changed = value.clone();
        assert!(!tree.to_other(&mut changed));
        assert_eq!(changed, value);
    }
}

#[test]
fn coercion_follows_local_refs_and_never_builds_containers() {
    let schema = json!({
        "$defs": {"count": {"type": "integer"}, "flag": {"type": ["boolean", "null"]}},
        "type": "object",
        "properties": {
            "n": {"$ref": "#/$defs/count"},
            "f": {"$ref": "#/$defs/flag"},
            "s": {"type": ["string", "number"]},
            "o": {"type": "object"},
            "list": {"type": "array", "items": {"type": "number"}}
        }
    });
    let mut value = json!({"n": "12", "f": "false", "s": "3", "o": "x", "list": ["1.5", "x", 2]});
    assert!(coerce(&schema, &schema, &mut value));
    assert_eq!(
        value,
        json!({"n": 12, "f": false, "s": "3", "o": "x", "list": [1.5, "x", 2]})
    );
    let mut unchanged = json!({"n": 12});
    assert!(!coerce(&schema, &schema, &mut unchanged));
}

#[test]
fn defaults_fill_nested_absent_properties_only() {
    let schema = json!({
        "type": "object",
        "properties": {
            "a": {"type": "integer", "default": 1},
            "inner": {"type": "object", "properties": {"b": {"default": "x"}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"c": {"default": true}}}}
        }
    });
    assert!(has_defaults(&schema));
    assert!(!has_defaults(
        &json!({"properties": {"a": {"type": "string"}}})
    ));
    let mut value = json!({"inner": {}, "items": [{}, {"c": false}]});
    assert!(apply_defaults(&schema, &schema, &mut value));
    assert_eq!(
        value,
        json!({"a": 1, "inner": {"b": "x"}, "items": [{"c": true}, {"c": false}]})
    );
    let mut present = json!({"a": null, "inner": {"b": "y"}});
    let before = present.clone();
    // `a` is null, not absent; `inner.b` is present; nothing changes.
    assert!(!apply_defaults(&schema, &schema, &mut present));
    assert_eq!(present, before);
}

#[test]
fn envelope_detection() {
    let check = |text: &str| {
        split(&raw(text)).map(|s| {
            (
                s.data.get().to_owned(),
                s.metadata.map(|m| m.get().to_owned()),
            )
        })
    };
    assert_eq!(
        check(r#"{"data":{"a":1},"metadata":{"m":2}}"#),
        Some((r#"{"a":1}"#.into(), Some(r#"{"m":2}"#.into())))
    );
    assert_eq!(
        check(r#"{"metadata":{"m":2},"data":0}"#),
        Some(("0".into(), Some(r#"{"m":2}"#.into())))
    );
    assert_eq!(
        check(r#"{"data":null,"metadata":null}"#),
        Some(("null".into(), None))
    );
    assert_eq!(
        check(r#"{"d\u0061ta":"escaped key"}"#),
        Some((r#""escaped key""#.into(), None))
    );
    assert_eq!(
        check(r#"{"data":1,"data":2}"#),
        None,
        "a repeated member is not an envelope"
    );
    assert_eq!(check(r#"{"data":1,"x":2}"#), None);
    assert_eq!(check(r#"{"metadata":{}}"#), None);
    assert_eq!(check("{}"), None);
    assert_eq!(check("[1]"), None);
    assert_eq!(check("null"), None);
}

#[test]
fn the_fast_scan_defers_to_the_exact_parse_whenever_in_doubt() {
    let limits = Limits::default();
    let check = |text: &str, broken: Option<&str>| {
        let scanned = limits::parse::<false>(&raw(text), &limits).err();
        let built = limits::parse::<true>(&raw(text), &limits).err();
        assert_eq!(scanned, built, "{text}");
        assert_eq!(
            scanned.map(|v| v.to_string().contains(broken.unwrap_or("?"))),
            broken.map(|_| true),
            "{text}"
        );
    };
    check(r#"{"a":{"__proto__":1}}"#, Some("__proto__"));
    check(r#"{"a":{"\u005f_proto__":1}}"#, Some("__proto__"));
    check(r#"{"a":"__proto__","b":["constructor"]}"#, None);
    check(
        r#"{"s":"a \"quoted\" \\ string with ] and } inside","t":[1,[2,[3]]]}"#,
        None,
    );
    let deep = format!(
        "{}{}",
        "[".repeat(Limits::DEFAULT_MAX_DEPTH + 1),
        "]".repeat(Limits::DEFAULT_MAX_DEPTH + 1)
    );
    check(&deep, Some("nested"));
}

/// The scan follows 32 levels on the stack and leaves deeper params to the
/// exact parse: both still decide by the configured limit.
#[test]
fn nesting_deeper_than_the_scan_follows_is_checked_by_the_limit() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let limits = Limits::default();
    for depth in [31, 32, 33, 40, Limits::DEFAULT_MAX_DEPTH] {
        let text = nested(depth);
        assert!(
            limits::parse::<false>(&raw(&text), &limits).is_ok(),
            "depth {depth}"
        );
        assert!(
            limits::parse::<true>(&raw(&text), &limits).is_ok(),
            "depth {depth}"
        );
    }
    let text = nested(Limits::DEFAULT_MAX_DEPTH + 1);
    let scanned = limits::parse::<false>(&raw(&text), &limits).expect_err("too deep");
    assert_eq!(
        scanned,
        limits::parse::<true>(&raw(&text), &limits).expect_err("too deep")
    );
    assert_eq!(scanned.keyword, "maxDepth");
}
