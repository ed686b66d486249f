//! `pybridge methods`, `describe`, OpenRPC (`--openrpc` and `rpc.discover`,
//! validated against the vendored meta-schemas), did-you-mean, and cache
//! entries that belong to the worker that produced them.

use std::path::PathBuf;

use jsonschema::{Draft, Registry};
use serde_json::{Value, json};

use crate::support::*;

fn calc_worker(extra: &[&str]) -> Vec<String> {
    let mut command = vec![
        python(),
        fixtures()
            .join("registry/calc_worker.py")
            .display()
            .to_string(),
    ];
    command.extend(extra.iter().map(|s| (*s).to_string()));
    command
}

fn with_worker<'a>(args: &[&'a str], worker: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.push("--");
    all.extend(worker.iter().map(String::as_str));
    all
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Validates `document` against the OpenRPC 1.3 meta-schema, offline.
fn check_openrpc(document: &Value) {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/openrpc");
    let read = |name: &str| json(&std::fs::read_to_string(data.join(name)).unwrap());
    let spec = read("open-rpc-spec-1_3-schema.json");
    let meta = read("json-schema-tools-meta-schema-1.8.0.json");
    let registry = Registry::new()
        .add(
            "https://meta.json-schema.tools",
            Draft::Draft7.create_resource(meta.clone()),
        )
        .unwrap()
        .add(
            "https://meta.json-schema.tools/",
            Draft::Draft7.create_resource(meta),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let validator = jsonschema::options()
        .with_draft(Draft::Draft7)
        .with_registry(&registry)
        .build(&spec)
        .unwrap();
    // The validator can fail: a document without `info`, and a params
    // schema the JSON Schema meta-schema rejects (so that one is resolved).
    assert!(!validator.is_valid(&json!({"openrpc": "1.3.2", "methods": []})));
    let bad_schema = json!({"openrpc": "1.3.2", "info": {"title": "t", "version": "1"},
        "methods": [{"name": "m", "params": [{"name": "x", "schema": {"type": 5}}], "result": {"name": "r", "schema": true}}]});
    assert!(!validator.is_valid(&bad_schema));
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(document["openrpc"], "1.3.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_lists_a_user_workers_declared_methods_with_their_policy() {
    let home = tempfile::tempdir().unwrap();
    let worker = calc_worker(&[]);
    let out = run(&home, &with_worker(&["methods", "--json"], &worker)).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let methods = json(&out.stdout);
    let all = methods.as_array().unwrap();
    for method in all {
        for key in [
            "name",
            "description",
            "params_schema",
            "result_schema",
            "idempotent",
            "cache_ttl_ms",
            "timeout_ms",
            "source",
        ] {
            assert!(method.get(key).is_some(), "{key} missing in {method}");
        }
    }
    let find = |name: &str| all.iter().find(|m| m["name"] == name).unwrap().clone();
    let add = find("calc.add");
    assert_eq!(add["source"], "manifest:calc-worker");
    assert_eq!(add["idempotent"], true);
    assert_eq!(add["result_schema"], json!({"type": "integer"}));
    assert_eq!(add["positional"], json!(["a", "b"]));
    assert_eq!(find("calc.counter")["cache_ttl_ms"], 600000);
    assert_eq!(find("calc.sleep")["timeout_ms"], 300);
    // The framework's method this worker serves keeps its curated schema.
    let stats = find("pattern_learning.get_statistics");
    assert_eq!(stats["available"], true);
    assert_eq!(stats["sources"]["params_schema"], "builtin");
    // The others are listed as unavailable.
    assert_eq!(
        find("pattern_learning.get_recommendations")["available"],
        false
    );

    let text = run(&home, &with_worker(&["methods"], &worker)).await;
    assert_eq!(text.status, 0, "{}", text.stderr);
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with("calc.sleep "))
        .unwrap();
    assert!(line.contains("manifest:calc-worker"), "{line}");
    assert!(
        line.contains("idempotent, timeout 300ms, params schema"),
        "{line}"
    );
    assert!(text.stdout.contains("UNAVAILABLE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_schemas_policy_and_valid_example_params() {
    let home = tempfile::tempdir().unwrap();
    let worker = calc_worker(&[]);
    let out = run(&home, &with_worker(&["describe", "calc.add"], &worker)).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let described = json(&out.stdout);
    assert_eq!(described["example_params"], json!({"a": 1}));
    assert_eq!(described["params_schema"]["required"], json!(["a"]));
    // The example is accepted by a call.
    let call = run(
        &home,
        &with_worker(
            &["call", "calc.add", &described["example_params"].to_string()],
            &worker,
        ),
    )
    .await;
    assert_eq!(
        (call.status, call.stdout.trim()),
        (0, "1"),
        "{}",
        call.stderr
    );

    let out = run(&home, &with_worker(&["describe", "calc.adf"], &worker)).await;
    assert_eq!(out.status, 2);
    assert!(
        out.stderr.contains("did you mean calc.add?"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openrpc_document_is_valid_and_rpc_discover_serves_it() {
    let home = tempfile::tempdir().unwrap();
    // The embedded framework's registry.
    let out = run(&home, &["methods", "--openrpc"]).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let document = json(&out.stdout);
    check_openrpc(&document);
    let methods = document["methods"].as_array().unwrap();
    let find = |name: &str| methods.iter().find(|m| m["name"] == name).unwrap().clone();
    let find_similar = find("pattern_learning.find_similar");
    assert!(
        find_similar["params"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "description" && p["required"] == true),
        "{find_similar}"
    );

    // A user worker's registry, through the gateway.
    let worker = calc_worker(&[]);
    let server = Server::start(&home, &["--workers", "1"], &worker).await;
    let answer = server
        .post(
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"rpc.discover","id":1}"#,
        )
        .await
        .json();
    let document = answer["result"].clone();
    check_openrpc(&document);
    assert_eq!(document["info"]["title"], "calc-worker");
    let names: Vec<&str> = document["methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"calc.add"), "{names:?}");
    let add = document["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "calc.add")
        .unwrap();
    assert_eq!(add["paramStructure"], "either");
    assert_eq!(
        add["params"][0],
        json!({"name": "a", "schema": {"type": "integer"}, "required": true})
    );
    let printed = run(&home, &with_worker(&["methods", "--openrpc"], &worker)).await;
    assert_eq!(
        json(&printed.stdout),
        document,
        "the same document both ways"
    );
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_method_comes_back_with_the_closest_name() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        &home,
        &["call", "pattern_learning.get_recomendations", "{}"],
    )
    .await;
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("did you mean pattern_learning.get_recommendations?"),
        "{}",
        out.stderr
    );
    let error = out.error();
    assert_eq!(error["code"], -32601);
    assert_eq!(
        error["data"]["suggestions"],
        json!(["pattern_learning.get_recommendations"])
    );
}

/// The wrong-answer case of a shared cache: the embedded framework's answer
/// must never be served for another worker's call of the same method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_worker_never_gets_the_framework_s_cached_answer() {
    let home = tempfile::tempdir().unwrap();
    let framework = run(&home, &["call", "pattern_learning.get_statistics", "{}"]).await;
    assert_eq!(framework.status, 0, "{}", framework.stderr);
    let framework = json(&framework.stdout);
    assert_ne!(framework["total_patterns"], 7);

    let worker = calc_worker(&["--statistics", "7"]);
    let args = with_worker(&["call", "pattern_learning.get_statistics", "{}"], &worker);
    let mine = run(&home, &args).await;
    assert_eq!(mine.status, 0, "{}", mine.stderr);
    assert_eq!(json(&mine.stdout)["total_patterns"], 7);

    // The framework again, with the same cache: still its own answer.
    let again = run(&home, &["call", "pattern_learning.get_statistics", "{}"]).await;
    assert_eq!(json(&again.stdout), framework);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_sections_apply_to_worker_methods_and_unknown_ones_name_the_file() {
    let home = tempfile::tempdir().unwrap();
    let worker = calc_worker(&[]);
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, "[methods.\"calc.slow\"]\ntimeout = \"200ms\"\n").unwrap();
    let config = file.to_str().unwrap();
    let out = run(
        &home,
        &with_worker(
            &["--config", config, "call", "calc.slow", r#"{"seconds": 2}"#],
            &worker,
        ),
    )
    .await;
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert_eq!(out.error()["data"]["code"], "timeout");

    std::fs::write(&file, "[methods.\"calc.slwo\"]\ntimeout = \"1s\"\n").unwrap();
    let out = run(
        &home,
        &with_worker(
            &["--config", config, "call", "calc.add", r#"{"a": 1}"#],
            &worker,
        ),
    )
    .await;
    assert_eq!(out.status, 2, "{}", out.stderr);
    for part in [config, "methods.\"calc.slwo\"", "did you mean calc.slow"] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
}
