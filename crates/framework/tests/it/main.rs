//! Integration tests of pybridge-framework and of the service over its catalog,
//! through the public APIs only.

mod adapters;
mod catalog;
mod coercion;
mod fixiplug;
mod limits;
mod samples;
mod telemetry;
mod typed_api;
mod validation;

use std::sync::OnceLock;

use pybridge_service::{Catalog, Error, Prepared, Service, ServiceConfig, ServiceConfigBuilder};
use serde_json::Value;
use serde_json::value::RawValue;

/// Raw JSON from text (panics on invalid JSON: tests write valid JSON).
fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("test JSON is valid")
}

/// The built-in catalog, compiled once for the whole test binary (a catalog
/// is immutable and cheap to clone).
fn builtin() -> Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG
        .get_or_init(|| pybridge_framework::catalog().expect("built-in catalog"))
        .clone()
}

fn service() -> Service {
    Service::new(builtin(), ServiceConfig::default())
}

fn service_with(configure: impl FnOnce(ServiceConfigBuilder) -> ServiceConfigBuilder) -> Service {
    let config = configure(ServiceConfig::builder())
        .build()
        .expect("valid config");
    Service::new(builtin(), config)
}

/// Prepares a call that must succeed; returns the wire name and wire params.
fn wire(service: &Service, method: &str, params: &str) -> (String, Option<Value>) {
    let params = raw(params);
    let prepared: Prepared<'_> = service
        .prepare(method, Some(&params))
        .unwrap_or_else(|e| panic!("{method} {params}: {e}"));
    let value = prepared
        .params()
        .map(|p| serde_json::from_str(p.get()).expect("wire params are JSON"));
    (prepared.wire_name().to_owned(), value)
}

/// Prepares a call that must fail with invalid params; returns the
/// violations as (instance path, keyword), sorted.
fn violations(service: &Service, method: &str, params: &str) -> Vec<(String, String)> {
    let params = raw(params);
    match service.prepare(method, Some(&params)) {
        Err(Error::InvalidParams { violations, .. }) => {
            let mut found: Vec<_> = violations
                .into_iter()
                .map(|v| (v.instance_path, v.keyword))
                .collect();
            found.sort();
            found
        }
        Err(other) => panic!("{method} {params}: expected invalid params, got {other}"),
        Ok(prepared) => panic!(
            "{method} {params}: expected invalid params, got wire params {:?}",
            prepared.params()
        ),
    }
}

/// `(path, keyword)` pairs for assertions.
fn v(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = pairs
        .iter()
        .map(|(p, k)| ((*p).to_owned(), (*k).to_owned()))
        .collect();
    out.sort();
    out
}
