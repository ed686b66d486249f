//! Built-in schemas are compiled on their method's first use; schemas from
//! outside (catalog files, manifests) at load. Either way a schema that does
//! not compile is an `Error::Catalog` naming its file and key.

use pybridge_service::{
    BuiltinCatalog, Catalog, CatalogProblem, Error, ResultValidation, Service, ServiceConfig,
};
use serde_json::value::RawValue;

/// A built-in catalog with one good method and one whose params schema
/// names a type that does not exist, as a broken build would ship it.
const BUILTIN: BuiltinCatalog = BuiltinCatalog {
    files: &[(
        "builtin:lazy.json",
        r#"{"family":"lazy","methods":[
            {"name":"lazy.good","wire_name":"good","idempotent":true,
             "params_schema":"lazy/good.params.json",
             "result_schema":{"type":"object","required":["ok"]}},
            {"name":"lazy.broken","wire_name":"broken","idempotent":true,
             "params_schema":{"type":"strng"}}
        ]}"#,
    )],
    schemas: &[(
        "lazy/good.params.json",
        r#"{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}"#,
    )],
    unavailable_families: &[],
};

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("test JSON")
}

fn check_broken(err: &Error) {
    match err {
        Error::Catalog {
            file,
            key,
            problem: CatalogProblem::InvalidSchema { .. },
        } => {
            assert_eq!(file, "builtin:lazy.json");
            assert_eq!(key, "methods[1].params_schema");
        }
        other => panic!("expected an invalid schema, got {other}"),
    }
}

#[test]
fn a_builtin_catalog_loads_without_compiling_and_validates_on_first_call() {
    let catalog = Catalog::builder()
        .builtin(BUILTIN)
        .build()
        .expect("built-in schemas are compiled on first use, not at load");
    let service = Service::new(catalog.clone(), ServiceConfig::default());

    let params = raw(r#"{"n":1}"#);
    let prepared = service
        .prepare("lazy.good", Some(&params))
        .expect("valid params");
    assert_eq!(prepared.wire_name(), "good");
    let bad = raw(r#"{"n":"one"}"#);
    match service.prepare("lazy.good", Some(&bad)) {
        Err(Error::InvalidParams { violations, .. }) => {
            assert_eq!(violations[0].instance_path, "/n");
        }
        other => panic!("expected invalid params, got {other:?}"),
    }

    // The broken schema is a typed error naming file and key, at the call
    // and when every schema is compiled at once.
    let err = service
        .prepare("lazy.broken", Some(&params))
        .expect_err("a schema that does not compile");
    check_broken(&err);
    check_broken(&catalog.compile_schemas().expect_err("one schema is broken"));
    let spec = catalog.get("lazy.broken").expect("listed");
    check_broken(&spec.compile_schemas().expect_err("broken"));
    catalog
        .get("lazy.good")
        .expect("listed")
        .compile_schemas()
        .expect("good schemas compile");
}

#[test]
fn a_builtin_result_schema_is_enforced_on_first_result() {
    let catalog = Catalog::builder().builtin(BUILTIN).build().expect("loads");
    let config = ServiceConfig::builder()
        .result_validation(ResultValidation::Enforce)
        .build()
        .expect("valid");
    let service = Service::new(catalog.clone(), config);
    let spec = catalog.get("lazy.good").expect("listed");
    service
        .adapt_result(spec, raw(r#"{"ok":true}"#))
        .expect("matches its schema");
    match service.adapt_result(spec, raw(r#"{"no":1}"#)) {
        Err(Error::InvalidResult { violations, .. }) => {
            assert_eq!(violations[0].keyword, "required");
        }
        other => panic!("expected an invalid result, got {other:?}"),
    }
}

#[test]
fn the_same_schema_in_a_user_catalog_fails_at_load() {
    let err = Catalog::builder()
        .source(
            "user.json",
            r#"{"family":"lazy","methods":[{"name":"lazy.broken","wire_name":"broken",
                "idempotent":true,"params_schema":{"type":"strng"}}]}"#,
        )
        .build()
        .expect_err("schemas from outside are compiled at load");
    match err {
        Error::Catalog {
            file,
            key,
            problem: CatalogProblem::InvalidSchema { .. },
        } => assert_eq!(
            (file.as_str(), key.as_str()),
            ("user.json", "methods[0].params_schema")
        ),
        other => panic!("expected an invalid schema, got {other}"),
    }
}

#[test]
fn a_manifest_schema_is_compiled_on_first_call_and_a_broken_one_fails_only_its_method() {
    let manifest = pybridge_service::Manifest::from_value(&serde_json::json!({
        "name": "typed",
        "methods": [
            {"name": "typed.good", "params_schema": {"type": "object", "required": ["n"]}},
            {"name": "typed.broken", "params_schema": {"type": "strng"}}
        ]
    }))
    .expect("a valid manifest");
    let catalog = Catalog::builder()
        .manifest(manifest)
        .build()
        .expect("manifest schemas are compiled on first use");
    let service = Service::new(catalog, ServiceConfig::default());
    let empty = raw("{}");
    match service.prepare("typed.good", Some(&empty)) {
        Err(Error::InvalidParams { violations, .. }) => {
            assert_eq!(violations[0].keyword, "required");
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
    match service.prepare("typed.broken", Some(&empty)) {
        Err(Error::Catalog {
            file,
            key,
            problem: CatalogProblem::InvalidSchema { .. },
        }) => assert_eq!(
            (file.as_str(), key.as_str()),
            ("manifest:typed", "methods[1].params_schema")
        ),
        other => panic!("expected an invalid schema, got {other:?}"),
    }
}
