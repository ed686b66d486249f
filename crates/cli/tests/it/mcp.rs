//! `pybridge mcp` (stdio) and `/mcp` (streamable HTTP) driven by the
//! official Python MCP client (`fixtures/mcp/mcp_client.py`, PyPI `mcp`
//! 2.3 in the virtual environment `cargo xtask setup` creates), in both
//! protocol versions: 2025-11-25 (`initialize`) and 2026-07-28 (stateless).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

const MODES: [&str; 2] = ["legacy", "2026-07-28"];

/// The interpreter of the MCP client's virtual environment:
/// `PYBRIDGE_MCP_PYTHON`, else `target/python/mcp-venv`.
fn mcp_python() -> PathBuf {
    if let Some(path) = std::env::var_os("PYBRIDGE_MCP_PYTHON") {
        return path.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let python = target.join("python/mcp-venv/bin/python");
    assert!(
        python.exists(),
        "the MCP tests need the Python MCP client: run `cargo xtask setup` (or `cargo xtask test`), \
         which creates {}",
        python.display()
    );
    python
}

/// `-- WORKER...`, or nothing for the embedded framework.
fn worker_args(worker: &[String]) -> Vec<String> {
    if worker.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["--".to_owned()];
    args.extend(worker.iter().cloned());
    args
}

fn tools_worker() -> Vec<String> {
    vec![
        python(),
        fixtures().join("mcp/tools_worker.py").display().to_string(),
    ]
}

/// Where the client connects.
enum Target<'a> {
    /// `pybridge mcp ARGS...` over stdio.
    Stdio(&'a [String]),
    /// A running `pybridge serve`, with its token.
    Http(&'a Server, &'a str),
}

/// Runs the client and returns what it printed.
async fn client(home: &tempfile::TempDir, target: &Target<'_>, mode: &str, args: &[&str]) -> Value {
    let mut cmd = tokio::process::Command::new(mcp_python());
    cmd.arg(fixtures().join("mcp/mcp_client.py"))
        .args(["--mode", mode])
        .args(args)
        .env("PYTHONPATH", python_path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("PYBRIDGE_DATA_DIR", home.path().join("data"))
        .env("HOME", home.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    match target {
        Target::Stdio(after) => {
            let mut command = vec![env!("CARGO_BIN_EXE_pybridge").to_owned(), "mcp".into()];
            command.extend(after.iter().cloned());
            cmd.args(["--stdio", &serde_json::to_string(&command).unwrap()]);
        }
        Target::Http(server, token) => {
            cmd.args(["--url", &format!("http://{}/mcp", server.addr)])
                .args(["--token", token]);
        }
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the MCP client finishes")
        .expect("the MCP client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the MCP client failed ({mode}): {}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout:?}\nstderr: {stderr}"))
}

/// The registry's available methods for `worker`, from `pybridge methods --json`.
async fn available_methods(home: &tempfile::TempDir, worker: &[String]) -> Vec<String> {
    let mut args = vec!["methods", "--json"];
    if !worker.is_empty() {
        args.push("--");
        args.extend(worker.iter().map(String::as_str));
    }
    let out = run(home, &args).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let methods: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    methods
        .iter()
        .filter(|m| m["available"] == true)
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

fn tool_names(seen: &Value) -> Vec<String> {
    seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn tool<'a>(seen: &'a Value, name: &str) -> &'a Value {
    seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool {name}: {:?}", tool_names(seen)))
}

const TOUR_OWN: [&str; 8] = [
    "--scenario",
    "tour",
    "--tool",
    "geo.scale",
    "--arguments",
    r#"{"x": 2.5}"#,
    "--invalid-tool",
    "geo.scale",
];

/// The tour of a worker of one's own, checked the same way over stdio and HTTP.
fn check_own_tour(seen: &Value, mode: &str, methods: &[String]) {
    let expected_version = if mode == "legacy" { "2025-11-25" } else { mode };
    assert_eq!(seen["protocol_version"], expected_version);
    // One tool per available method, each name valid for MCP.
    let names = tool_names(seen);
    assert_eq!(names.len(), methods.len(), "{names:?} vs {methods:?}");
    for name in &names {
        assert!(
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{name}"
        );
    }
    // `text/shout` is not a valid tool name: it is mapped, and says so.
    let shout = names
        .iter()
        .find(|n| n.starts_with("text_shout-"))
        .unwrap_or_else(|| panic!("{names:?}"));
    assert!(
        tool(seen, shout)["description"]
            .as_str()
            .unwrap()
            .contains("`text/shout`")
    );
    let scale = tool(seen, "geo.scale");
    assert_eq!(scale["input_schema"]["type"], "object");
    assert_eq!(scale["input_schema"]["required"], json!(["x"]));
    assert_eq!(scale["read_only"], true);
    assert_eq!(scale["idempotent"], true);
    assert_eq!(tool(seen, "notes.wait")["idempotent"], false);
    // A scalar result: wrapped in an object, as the output schema says.
    assert_eq!(
        scale["output_schema"]["properties"]["result"]["type"],
        "number"
    );
    assert_eq!(seen["call"]["is_error"], false);
    assert_eq!(seen["call"]["structured"], json!({"result": 5.0}));
    assert_eq!(seen["call"]["text"], json!(["5.0"]));
    // Invalid params: a tool error the model can read, naming the problem.
    assert_eq!(seen["invalid"]["is_error"], true, "{}", seen["invalid"]);
    assert_eq!(
        seen["invalid"]["structured"]["error"]["code"],
        "invalid_params"
    );
    let message = seen["invalid"]["text"][0].as_str().unwrap();
    assert!(message.contains("/x"), "{message}");
    // No framework methods, so no framework prompts; the catalog is a resource.
    assert_eq!(seen["prompts"], json!([]));
    assert!(
        seen["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("pybridge://methods"))
    );
    assert!(
        seen["catalog"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "text/shout")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_serves_a_workers_methods_as_tools_in_both_protocol_versions() {
    let home = tempfile::tempdir().unwrap();
    let worker = tools_worker();
    let methods = available_methods(&home, &worker).await;
    assert!(methods.contains(&"geo.scale".to_owned()), "{methods:?}");
    for mode in MODES {
        let mut args = TOUR_OWN.to_vec();
        args.extend(["--invalid-arguments", r#"{"x": "far"}"#]);
        let seen = client(&home, &Target::Stdio(&worker_args(&worker)), mode, &args).await;
        check_own_tour(&seen, mode, &methods);
        // The client closes stdin, waits 30 s, then sends SIGTERM: the server
        // exits on its own, its workers drained, well before that.
        let close = seen["close_seconds"].as_f64().unwrap();
        assert!(close < 10.0, "leaving took {close} s ({mode})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_serves_the_framework_with_its_prompts_and_calls_a_framework_method() {
    let home = tempfile::tempdir().unwrap();
    let methods = available_methods(&home, &[]).await;
    for mode in MODES {
        let args = [
            "--scenario",
            "tour",
            "--tool",
            "agent_context.detect_type",
            "--arguments",
            r#"{"hints": {"user_agent": "claude-code"}}"#,
            "--invalid-tool",
            "pattern_learning.find_similar",
            "--invalid-arguments",
            r#"{"threshold": 2}"#,
        ];
        let seen = client(&home, &Target::Stdio(&[]), mode, &args).await;
        let names = tool_names(&seen);
        assert_eq!(names.len(), methods.len(), "{names:?} vs {methods:?}");
        // The catalog's unavailable families are not tools.
        assert!(
            !names.iter().any(|n| n.starts_with("research.")),
            "{names:?}"
        );
        let call = &seen["call"];
        assert_eq!(call["is_error"], false, "{call}");
        assert!(call["structured"]["agent_type"].is_string(), "{call}");
        assert_eq!(seen["invalid"]["is_error"], true);
        let message = seen["invalid"]["text"][0].as_str().unwrap();
        assert!(message.contains("description"), "{message}");
        assert_eq!(
            seen["prompts"],
            json!([
                "pattern_learning",
                "extension_generator",
                "agent_amplification",
                "agent_context"
            ])
        );
        let text = seen["prompt_text"].as_str().unwrap();
        assert!(text.contains("a portfolio risk report"), "{text}");
        assert!(
            text.contains("pattern_learning.get_recommendations"),
            "{text}"
        );
        let close = seen["close_seconds"].as_f64().unwrap();
        assert!(close < 10.0, "leaving took {close} s ({mode})");
    }
}

/// A cancelled call: the client gives up once the Python method has
/// started, and the method sees `$/cancelRequest` (its marker file says so).
fn check_cancel(seen: &Value, mode: &str) {
    assert_eq!(seen["timed_out"], false, "{seen}");
    assert!(seen.get("call_finished").is_none(), "{seen}");
    assert_eq!(seen["marker"], "cancelled", "{mode}: {seen}");
    assert_eq!(seen["after"]["structured"], json!({"result": 3.0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_stops_its_python_method_over_stdio() {
    let home = tempfile::tempdir().unwrap();
    let worker = tools_worker();
    for mode in MODES {
        let marker = home.path().join(format!("marker-{mode}"));
        let args = ["--scenario", "cancel", "--marker", marker.to_str().unwrap()];
        let seen = client(&home, &Target::Stdio(&worker_args(&worker)), mode, &args).await;
        check_cancel(&seen, mode);
    }
}

/// A method's `$/log` line at info reaches the client that asked for info
/// (`logging/setLevel`, or the 2026-07-28 per-request opt-in); its debug
/// line, under that level, does not.
fn check_log(seen: &Value, mode: &str) {
    assert_eq!(seen["call"]["structured"], json!({"result": "logged"}));
    assert_eq!(
        seen["messages"],
        json!([{
            "level": "info",
            "logger": "worker",
            "data": {"message": "hello from python", "fields": {"request_id": seen["messages"][0]["data"]["fields"]["request_id"], "step": 1}}
        }]),
        "{mode}"
    );
    assert!(seen["messages"][0]["data"]["fields"]["request_id"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_methods_log_lines_reach_the_client_that_asked_for_them() {
    let home = tempfile::tempdir().unwrap();
    let worker = tools_worker();
    for mode in MODES {
        let seen = client(
            &home,
            &Target::Stdio(&worker_args(&worker)),
            mode,
            &["--scenario", "log"],
        )
        .await;
        check_log(&seen, mode);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_serves_the_same_tools_behind_the_token_and_cancels_calls() {
    let home = tempfile::tempdir().unwrap();
    let worker = tools_worker();
    let methods = available_methods(&home, &worker).await;
    let token = "mcp-test-token";
    let server = Server::start(&home, &["--token", token], &worker).await;
    // The gateway's guard comes first: no token, no MCP.
    let refused = http(
        server.addr,
        "POST",
        "/mcp",
        &[("content-type", "application/json")],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(refused.status, 401, "{refused:?}");
    for mode in MODES {
        let mut args = TOUR_OWN.to_vec();
        args.extend(["--invalid-arguments", r#"{"x": "far"}"#]);
        let seen = client(&home, &Target::Http(&server, token), mode, &args).await;
        check_own_tour(&seen, mode, &methods);
        let marker = home.path().join(format!("marker-http-{mode}"));
        let args = ["--scenario", "cancel", "--marker", marker.to_str().unwrap()];
        let seen = client(&home, &Target::Http(&server, token), mode, &args).await;
        check_cancel(&seen, mode);
        let seen = client(
            &home,
            &Target::Http(&server, token),
            mode,
            &["--scenario", "log"],
        )
        .await;
        check_log(&seen, mode);
    }
    let (status, stderr) = server.terminate().await;
    assert_eq!(status, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_allow_and_deny_lists_choose_the_tools() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("pybridge.toml");
    std::fs::write(
        &config,
        "[mcp]\nallow = [\"geo.*\", \"notes.*\"]\ndeny = [\"notes.fail\", \"*.log\"]\n",
    )
    .unwrap();
    let mut args = vec!["--config".to_owned(), config.display().to_string()];
    args.extend(worker_args(&tools_worker()));
    let seen = client(
        &home,
        &Target::Stdio(&args),
        "2026-07-28",
        &["--scenario", "tour"],
    )
    .await;
    assert_eq!(tool_names(&seen), ["geo.scale", "notes.wait"]);
}
