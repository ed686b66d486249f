//! Limits checked before validation: size, depth, string and array lengths,
//! forbidden keys, and structured params.

use std::num::NonZeroUsize;

use pybridge_service::{Error, Limits, ProtoKeys, ServiceConfig};

use crate::{raw, service, service_with, v, violations, wire};

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("non-zero")
}

#[test]
fn defaults_are_documented() {
    let limits = Limits::default();
    assert_eq!(limits.max_params_bytes.get(), 4 << 20);
    assert_eq!(limits.max_depth.get(), 64);
    assert_eq!(limits.max_string_bytes.get(), 1 << 20);
    assert_eq!(limits.max_array_len.get(), 100_000);
    assert_eq!(limits.proto_keys, ProtoKeys::Reject);
}

#[test]
fn params_size() {
    let service = service_with(|b| b.max_params_bytes(nz(40)).max_string_bytes(nz(40)));
    let fits = r#"{"message":"0123456789012345678901"}"#;
    assert_eq!(fits.len(), 36);
    wire(&service, "test.echo", fits);
    let params = raw(r#"{"message":"0123456789012345678901234567"}"#);
    match service.prepare("test.echo", Some(&params)) {
        Err(Error::InvalidParams { violations, .. }) => {
            assert_eq!(
                (
                    violations[0].instance_path.as_str(),
                    violations[0].keyword.as_str()
                ),
                ("", "maxParamsBytes")
            );
            assert_eq!(
                violations[0].message,
                "params are 42 bytes long, more than the limit of 40 bytes"
            );
        }
        other => panic!("expected too large, got {other:?}"),
    }
}

#[test]
fn nesting_depth() {
    let service = service_with(|b| b.max_depth(nz(3)));
    wire(&service, "test.echo", r#"{"a":{"b":[]}}"#);
    assert_eq!(
        violations(&service, "test.echo", r#"{"a":{"b":[{}]}}"#),
        v(&[("/a/b/0", "maxDepth")])
    );
    assert_eq!(
        violations(
            &service,
            "pattern_learning.get_recommendations",
            r#"{"a":{"b":{"c":{}}}}"#
        ),
        v(&[("/a/b/c", "maxDepth")])
    );
    // Deeper than the JSON parser's own recursion limit: still the depth limit.
    let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
    let found = violations(&crate::service(), "test.echo", &deep);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, "maxDepth");
}

#[test]
fn string_and_key_lengths_in_bytes() {
    let service = service_with(|b| b.max_string_bytes(nz(8)));
    wire(&service, "test.echo", r#"{"a":["12345678"]}"#);
    assert_eq!(
        violations(&service, "test.echo", r#"{"a":["ok","123456789"]}"#),
        v(&[("/a/1", "maxStringBytes")])
    );
    // Four two-byte characters fit in eight bytes; five do not.
    wire(&service, "test.echo", r#"{"a":"éééé"}"#);
    assert_eq!(
        violations(&service, "test.echo", r#"{"a":"ééééé"}"#),
        v(&[("/a", "maxStringBytes")])
    );
    // Escapes count after decoding.
    wire(
        &service,
        "test.echo",
        r#"{"a":"\u0041\u0042\u0043\u0044\u0045\u0046\u0047\u0048"}"#,
    );
    assert_eq!(
        violations(&service, "test.echo", r#"{"a_very_long_key":1}"#),
        v(&[("/a_very_long_key", "maxStringBytes")])
    );
}

#[test]
fn array_length() {
    let service = service_with(|b| b.max_array_len(nz(3)));
    wire(&service, "test.echo", r#"{"a":[1,2,3]}"#);
    assert_eq!(
        violations(&service, "test.echo", r#"{"a":[1,2,3,4]}"#),
        v(&[("/a", "maxArrayLength")])
    );
    assert_eq!(
        violations(&service, "test.echo", r#"[[1,2,[1,2,3,4]]]"#),
        v(&[("/0/2", "maxArrayLength")])
    );
}

#[test]
fn forbidden_keys_are_rejected_anywhere_by_default() {
    let service = service();
    for (params, path) in [
        (r#"{"__proto__":{"admin":true}}"#, "/__proto__"),
        (r#"{"a":{"constructor":1}}"#, "/a/constructor"),
        (r#"{"a":[{"ok":1},{"prototype":{}}]}"#, "/a/1/prototype"),
        // Nested arrays are checked too (the original turned them into objects).
        (r#"[[{"constructor":1}]]"#, "/0/0/constructor"),
        // An escaped spelling is the same key.
        (r#"{"\u005f_proto__":1}"#, "/__proto__"),
    ] {
        assert_eq!(
            violations(&service, "test.echo", params),
            v(&[(path, "forbiddenKey")]),
            "{params}"
        );
    }
    // Also for methods with a schema, before the schema sees them.
    assert_eq!(
        violations(
            &service,
            "pattern_learning.get_recommendations",
            r#"{"constructor":1}"#
        ),
        v(&[("/constructor", "forbiddenKey")])
    );
    // As values they are fine.
    wire(&service, "test.echo", r#"{"name":"constructor"}"#);

    let allow = service_with(|b| b.proto_keys(ProtoKeys::Allow));
    let (_, params) = wire(&allow, "test.echo", r#"{"a":{"constructor":1}}"#);
    assert_eq!(params, Some(serde_json::json!({"a": {"constructor": 1}})));
}

#[test]
fn json_pointers_escape_slash_and_tilde() {
    assert_eq!(
        violations(
            &service(),
            "test.echo",
            r#"{"a/b":{"c~d":{"__proto__":1}}}"#
        ),
        v(&[("/a~1b/c~0d/__proto__", "forbiddenKey")])
    );
}

#[test]
fn params_must_be_structured() {
    let service = service();
    for params in ["5", "\"text\"", "true"] {
        assert_eq!(
            violations(&service, "test.echo", params),
            v(&[("", "structured")]),
            "{params}"
        );
    }
    wire(&service, "test.echo", "[1,2]");
}

#[test]
fn limits_that_cannot_work_are_configuration_errors() {
    match ServiceConfig::builder().max_depth(nz(101)).build() {
        Err(Error::Config { key, .. }) => assert_eq!(key, "max_depth"),
        other => panic!("expected a config error, got {other:?}"),
    }
    match ServiceConfig::builder().max_params_bytes(nz(10)).build() {
        Err(Error::Config { key, .. }) => assert_eq!(key, "max_string_bytes"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(ServiceConfig::builder().max_depth(nz(100)).build().is_ok());
}
