//! The registry: catalog < manifest < overrides, with a source per field;
//! validation, policy and availability from whichever layer declared them.

use std::time::Duration;

use pybridge_protocol::ErrorCode;
use pybridge_service::{
    Catalog, CatalogBuilder, Error, FieldSource, Manifest, MethodOverride, Service, ServiceConfig,
};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// A curated catalog: one method with a strict schema and a rename, served
/// under another wire name, and one the worker below does not serve.
const CATALOG: &str = r#"{"family":"calc","methods":[
  {"name":"calc.add","wire_name":"calc_add","idempotent":false,
   "description":"Curated add.",
   "params_schema":{"type":"object","properties":{"a":{"type":"integer","maximum":100},"b":{"type":"integer"}},
                    "required":["a","b"],"additionalProperties":false}},
  {"name":"calc.legacy","wire_name":"calc_legacy","idempotent":true}
]}"#;

fn manifest(value: Value) -> Manifest {
    Manifest::from_value(&value).expect("valid manifest")
}

/// The worker of these tests: serves the curated `calc_add` with a looser
/// schema and its own policy, plus `calc.slow` and `calc.mul` of its own.
fn worker_manifest() -> Manifest {
    manifest(json!({
        "pid": 42,
        "name": "calc-worker",
        "version": "1.0.0",
        "methods": [
            {"name": "calc_add", "description": "Worker add.",
             "params_schema": {"type": "object"},
             "idempotent": true, "cache_ttl_ms": 60000, "timeout_ms": 5000},
            {"name": "calc.mul", "description": "Multiply.",
             "params_schema": {"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number","default":1}},
                               "required":["x"],"additionalProperties":false},
             "positional": ["x", "y"], "idempotent": true},
            "calc.slow"
        ]
    }))
}

fn builder() -> CatalogBuilder {
    Catalog::builder()
        .source("calc.json", CATALOG)
        .manifest(worker_manifest())
}

fn service(catalog: Catalog) -> Service {
    Service::new(catalog, ServiceConfig::default())
}

fn prepare(service: &Service, method: &str, params: &str) -> Result<Option<String>, Error> {
    let raw = RawValue::from_string(params.to_owned()).expect("test JSON");
    service
        .prepare(method, Some(&raw))
        .map(|p| p.params().map(|p| p.get().to_owned()))
}

#[test]
fn a_manifest_is_read_with_every_field_and_without_its_pid() {
    let m = worker_manifest();
    assert_eq!(m.name.as_deref(), Some("calc-worker"));
    assert_eq!(m.protocol_version, "1.0");
    assert_eq!(m.methods.len(), 3);
    assert_eq!(m.methods[0].cache_ttl, Some(Duration::from_secs(60)));
    assert_eq!(
        m.methods[1].positional.as_deref(),
        Some(&["x".to_owned(), "y".to_owned()][..])
    );
    assert_eq!(m.methods[2].name, "calc.slow");
    assert!(!m.canonical().contains("pid"));
    // Key order does not change the canonical text; the pid does not either.
    let reordered =
        manifest(json!({"version": "1.0.0", "name": "calc-worker", "pid": 7, "methods": []}));
    let same = manifest(json!({"name": "calc-worker", "methods": [], "version": "1.0.0"}));
    assert_eq!(reordered.canonical(), same.canonical());
    // The identity leaves out the concurrency knob; the canonical text keeps it.
    let busier = manifest(
        json!({"name": "calc-worker", "methods": [], "version": "1.0.0", "max_concurrency": 64}),
    );
    assert_eq!(busier.identity(), same.identity());
    assert_ne!(busier.canonical(), same.canonical());
    let newer = manifest(json!({"name": "calc-worker", "methods": [], "version": "1.0.1"}));
    assert_ne!(newer.identity(), same.identity());
}

#[test]
fn a_malformed_manifest_names_the_key() {
    for (value, key) in [
        (
            json!({"methods": [{"name": "a.b", "timeout_ms": "5s"}]}),
            "methods[0].timeout_ms",
        ),
        (
            json!({"methods": [{"description": "x"}]}),
            "methods[0].name",
        ),
        (json!({"methods": [1]}), "methods[0]"),
        (json!({"max_concurrency": 0}), "max_concurrency"),
        (
            json!({"methods": [{"name": "a.b", "positional": "x"}]}),
            "methods[0].positional",
        ),
    ] {
        match Manifest::from_value(&value) {
            Err(Error::Manifest { key: found, .. }) => assert_eq!(found, key, "{value}"),
            other => panic!("{value}: {other:?}"),
        }
    }
}

#[test]
fn a_curated_schema_wins_over_the_manifest_and_the_manifest_sets_the_policy() {
    let catalog = builder().build().expect("builds");
    let add = catalog.get("calc.add").expect("calc.add");
    // Matched by the catalog's wire name.
    assert_eq!(add.wire_name(), "calc_add");
    assert_eq!(add.description(), Some("Curated add."));
    assert_eq!(add.sources().params_schema, FieldSource::CatalogFile);
    // The worker says idempotent; the catalog says no, and no wins.
    assert!(!add.idempotent());
    assert_eq!(add.sources().idempotent, FieldSource::CatalogFile);
    assert_eq!(add.cache().l1_ttl, Some(Duration::from_secs(60)));
    assert_eq!(add.timeout(), Some(Duration::from_secs(5)));
    assert_eq!(add.sources().timeout, FieldSource::Manifest);
    // The worker's `{"type":"object"}` would accept this; the curated schema does not.
    let service = service(catalog);
    let err = prepare(&service, "calc.add", r#"{"a":101,"b":1,"c":0}"#).unwrap_err();
    assert_eq!(err.violations().len(), 2, "{err}");
}

#[test]
fn a_worker_may_withdraw_idempotence_and_every_method_with_its_wire_name_is_matched() {
    let catalog = Catalog::builder()
        .source("calc.json", CATALOG)
        .source(
            "mine.json",
            r#"{"family":"mine","methods":[{"name":"mine.legacy","wire_name":"calc_legacy","idempotent":true}]}"#,
        )
        .manifest(manifest(json!({"methods": [{"name": "calc_legacy", "idempotent": false, "timeout_ms": 700}]})))
        .build()
        .expect("builds");
    for name in ["calc.legacy", "mine.legacy"] {
        let spec = catalog.get(name).expect(name);
        assert!(spec.available(), "{name}");
        assert!(!spec.idempotent(), "{name}");
        assert_eq!(spec.sources().idempotent, FieldSource::Manifest);
        assert_eq!(spec.timeout(), Some(Duration::from_millis(700)));
    }
    assert!(!catalog.get("calc.add").expect("listed").available());
}

#[test]
fn methods_only_the_worker_declares_are_typed_and_validated() {
    let catalog = builder().build().expect("builds");
    let mul = catalog.get("calc.mul").expect("calc.mul");
    assert_eq!(mul.source(), "manifest:calc-worker");
    assert_eq!(mul.sources().method, FieldSource::Manifest);
    assert_eq!(mul.metric_label(), "calc.mul");
    assert!(mul.in_catalog());
    let service = service(catalog);
    assert!(prepare(&service, "calc.mul", r#"{"x":2}"#).is_ok());
    let err = prepare(&service, "calc.mul", r#"{"x":"two"}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::INVALID_PARAMS);
    // By position: mapped onto the names, validated, sent as the array.
    assert_eq!(
        prepare(&service, "calc.mul", "[2, 3]")
            .expect("valid")
            .as_deref(),
        Some("[2, 3]")
    );
    let err = prepare(&service, "calc.mul", r#"["two"]"#).unwrap_err();
    assert_eq!(err.violations()[0].instance_path, "/x");
    let err = prepare(&service, "calc.mul", "[1, 2, 3]").unwrap_err();
    assert!(err.to_string().contains("at most 2"), "{err}");
    // Names only (legacy entries): known, unvalidated, not idempotent.
    let slow = service.catalog().get("calc.slow").expect("calc.slow");
    assert!(slow.params_schema().is_none() && !slow.idempotent());
}

#[test]
fn catalog_methods_the_worker_does_not_declare_are_unavailable_by_public_name() {
    let service = service(builder().build().expect("builds"));
    let legacy = service.catalog().get("calc.legacy").expect("listed");
    assert!(!legacy.available());
    match prepare(&service, "calc.legacy", "{}") {
        Err(
            error @ Error::UnknownMethod {
                unavailable: true, ..
            },
        ) => {
            let text = error.to_string();
            assert!(
                text.contains("calc.legacy") && !text.contains("calc_legacy"),
                "{text}"
            );
            let data = error.to_error_object();
            assert_eq!(data.code, ErrorCode::METHOD_NOT_FOUND);
        }
        other => panic!("{other:?}"),
    }
    // Without a manifest, every catalog method stays available.
    let plain = Catalog::builder()
        .source("calc.json", CATALOG)
        .build()
        .expect("builds");
    assert!(plain.methods().all(|m| m.available()));
}

#[test]
fn overrides_apply_to_worker_methods_and_name_close_names_for_unknown_ones() {
    let catalog = builder()
        .override_method(
            "calc.slow",
            MethodOverride::new().timeout(Duration::from_secs(1)),
        )
        .build()
        .expect("an override of a worker method");
    let slow = catalog.get("calc.slow").expect("calc.slow");
    assert_eq!(slow.timeout(), Some(Duration::from_secs(1)));
    assert_eq!(slow.sources().timeout, FieldSource::Config);

    match builder()
        .override_method("calc.slwo", MethodOverride::new().idempotent(true))
        .build()
    {
        Err(Error::Config { key, reason }) => {
            assert_eq!(key, "methods.calc.slwo");
            assert!(reason.contains("did you mean calc.slow?"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_methods_in_strict_mode_come_with_the_closest_names() {
    let config = ServiceConfig::builder()
        .mode(pybridge_service::Mode::Strict)
        .build()
        .expect("config");
    let service = Service::new(builder().build().expect("builds"), config);
    match prepare(&service, "calc.mull", "{}") {
        Err(error @ Error::UnknownMethod { .. }) => {
            assert!(
                error.to_string().ends_with("did you mean calc.mul?"),
                "{error}"
            );
            let object = error.to_error_object();
            let data: Value =
                serde_json::from_str(object.data.as_deref().map_or("null", |d| d.get()))
                    .expect("data");
            assert_eq!(data["suggestions"], json!(["calc.mul"]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        service.catalog().suggest("mul"),
        vec!["calc.mul".to_owned()]
    );
}

#[test]
fn a_worker_serving_a_catalog_alias_refines_that_method() {
    let catalog = Catalog::builder()
        .source(
            "calc.json",
            r#"{"family":"calc","methods":[{"name":"calc.sum","aliases":["sumAll"],"wire_name":"old_sum","idempotent":true}]}"#,
        )
        .manifest(manifest(json!({"methods": [{"name": "sumAll", "timeout_ms": 900}]})))
        .build()
        .expect("an alias is a match, not a duplicate");
    let sum = catalog.get("calc.sum").expect("calc.sum");
    assert_eq!(sum.wire_name(), "sumAll");
    assert_eq!(sum.sources().wire_name, FieldSource::Manifest);
    assert_eq!(sum.timeout(), Some(Duration::from_millis(900)));
    assert!(sum.available());
}
