//! `pybridge conform` against the SDK's demo worker, the fault workers and
//! the Node.js example worker.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// The SDK's demo worker: the command and the environment it needs. The one
/// place that knows where the SDK lives: the package under
/// `python/pybridge-worker` (`python -m pybridge_worker`) once it is there,
/// the single-file SDK run as a script before.
fn demo_worker() -> (Vec<String>, Vec<(&'static str, String)>) {
    let package =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python/pybridge-worker/src");
    if package.join("pybridge_worker").is_dir() {
        let command = vec![python(), "-m".into(), "pybridge_worker".into()];
        return (command, vec![("PYTHONPATH", package.display().to_string())]);
    }
    (sdk_worker(), Vec::new())
}

fn fault_worker(mode: &str, marker: &str) -> Vec<String> {
    vec![
        python(),
        fixtures()
            .join("faults/fault_worker.py")
            .display()
            .to_string(),
        "--mode".into(),
        mode.into(),
        // A unique safety-net value, also the marker the orphan check looks for.
        "--max-life".into(),
        marker.into(),
    ]
}

fn node_worker() -> Vec<String> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-worker/worker.js");
    vec!["node".into(), script.display().to_string()]
}

const SLOW_SDK: [&str; 4] = [
    "--slow-method",
    "test.sleep",
    "--slow-params",
    r#"{"seconds": 60}"#,
];

struct Conform {
    status: i32,
    reports: Vec<Value>,
    stderr: String,
}

impl Conform {
    fn status_of(&self, check: &str) -> &str {
        self.report(check)["status"].as_str().unwrap()
    }

    fn report(&self, check: &str) -> &Value {
        self.reports
            .iter()
            .find(|r| r["check"] == check)
            .unwrap_or_else(|| panic!("no check {check} in {:#?}", self.reports))
    }

    fn failed(&self) -> BTreeSet<String> {
        self.reports
            .iter()
            .filter(|r| r["status"] == "fail")
            .map(|r| r["check"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Runs `pybridge conform --json ARGS -- WORKER` and parses its report.
async fn conform(args: &[&str], worker: &[String], env: &[(&str, String)]) -> Conform {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = pybridge(&home);
    cmd.args(["conform", "--json"])
        .args(args)
        .arg("--")
        .args(worker);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("conform finishes")
        .expect("conform runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let reports: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {stdout:?}, stderr {stderr:?}"));
    Conform {
        status: out.status.code().unwrap_or(-1),
        reports,
        stderr,
    }
}

const ALL_CHECKS: [&str; 13] = [
    "handshake",
    "manifest",
    "authentication",
    "wrong-secret",
    "ping",
    "unknown-method",
    "invalid-params",
    "malformed-frame",
    "oversized-frame",
    "cancellation",
    "shutdown",
    "stdin-eof",
    "stdout-isolation",
];

/// Runs conform against a fault worker and checks that exactly `failing`
/// fail, each with `seen` containing the given text; returns the report.
async fn check_fault(mode: &str, extra: &[&str], failing: &[(&str, &str)]) -> Conform {
    // 300 s and a bit: the safety net stays as it was, the digits mark this run.
    let marker = format!("300.{}", std::process::id());
    let mut args = SLOW_SDK.to_vec();
    args.extend_from_slice(&["--timeout", "4s"]);
    args.extend_from_slice(extra);
    let report = conform(&args, &fault_worker(mode, &marker), &[]).await;
    let expected: BTreeSet<String> = failing.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(
        report.failed(),
        expected,
        "mode {mode}: {:#?}",
        report.reports
    );
    for (check, text) in failing {
        let seen = report.report(check)["seen"].as_str().unwrap();
        assert!(
            seen.contains(text),
            "mode {mode}, {check}: {seen:?} lacks {text:?}"
        );
    }
    assert_eq!(report.status, 1, "mode {mode}: {}", report.stderr);
    assert_no_process_with(&marker, mode).await;
    report
}

/// No process whose command line holds `marker` is left: every worker's
/// process group was killed.
async fn assert_no_process_with(marker: &str, mode: &str) {
    // A process SIGKILLed just before conform exited may take a moment to go.
    let mut left = processes_with(marker, mode);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = processes_with(marker, mode);
    }
    assert!(
        left.is_empty(),
        "mode {mode}: processes left behind: {left:?}"
    );
}

fn processes_with(marker: &str, mode: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let mine = args
            .windows(2)
            .any(|w| w[0] == b"--max-life" && w[1] == marker.as_bytes())
            && args.iter().any(|a| a == &mode.as_bytes());
        if mine && pid != me && alive(pid) {
            left.push(pid);
        }
    }
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_demo_worker_passes_every_check() {
    let (worker, env) = demo_worker();
    let report = conform(&SLOW_SDK, &worker, &env).await;
    assert_eq!(report.status, 0, "{:#?} {}", report.reports, report.stderr);
    let names: Vec<&str> = report
        .reports
        .iter()
        .map(|r| r["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, ALL_CHECKS);
    for r in &report.reports {
        assert!(r["status"] == "pass" || r["status"] == "n/a", "{r}");
        assert!(!r["seen"].as_str().unwrap().is_empty(), "{r}");
    }
    // What needs no manifest really ran.
    for check in [
        "handshake",
        "ping",
        "unknown-method",
        "malformed-frame",
        "oversized-frame",
        "cancellation",
        "shutdown",
        "stdin-eof",
        "stdout-isolation",
    ] {
        assert_eq!(
            report.status_of(check),
            "pass",
            "{check}: {:#?}",
            report.reports
        );
    }
    assert!(
        report.report("cancellation")["seen"]
            .as_str()
            .unwrap()
            .contains("-32800"),
        "{:#?}",
        report.reports
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_names_each_check_and_the_exit_status_says_all_passed() {
    let (worker, env) = demo_worker();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = pybridge(&home);
    cmd.arg("conform").arg("--").args(&worker);
    for (key, value) in &env {
        cmd.env(key, value);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("check") && first.contains("result"),
        "{text}"
    );
    for check in ALL_CHECKS {
        assert!(
            text.lines().any(|l| l.starts_with(check)),
            "{check} missing: {text}"
        );
    }
    // Without --slow-method there is nothing to cancel: n/a, not a pass.
    assert!(
        text.lines()
            .any(|l| l.starts_with("cancellation") && l.contains("n/a")),
        "{text}"
    );
    assert!(text.contains("all 13 checks passed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_announces_fails_the_handshake_and_nothing_else_runs() {
    let report = check_fault(
        "never-ready",
        &["--startup-timeout", "2s"],
        &[
            ("handshake", "nothing within 2s"),
            ("manifest", "no handshake"),
            ("ping", "not run"),
            ("unknown-method", "not run"),
            ("invalid-params", "not run"),
            ("malformed-frame", "not run"),
            ("oversized-frame", "not run"),
            ("cancellation", "not run"),
            ("shutdown", "not run"),
            ("stdin-eof", "not run"),
        ],
    )
    .await;
    assert_eq!(report.status_of("stdout-isolation"), "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_exits_before_ready_is_reported_with_its_status_and_stderr() {
    check_fault(
        "exit-before-ready",
        &[],
        &[
            ("handshake", "exit status: 3"),
            ("manifest", "no handshake"),
            ("ping", "not run"),
            ("unknown-method", "not run"),
            ("invalid-params", "not run"),
            ("malformed-frame", "not run"),
            ("oversized-frame", "not run"),
            ("cancellation", "not run"),
            ("shutdown", "not run"),
            ("stdin-eof", "not run"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_outlives_shutdown_and_eof_fails_those_two_and_is_killed() {
    check_fault(
        "ignore-sigterm",
        &[],
        &[
            ("shutdown", "still running"),
            ("stdin-eof", "still running"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_stdout_fails_stdout_isolation_with_the_offending_bytes() {
    check_fault("garbage", &[], &[("stdout-isolation", "this is not json")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_nobody_asked_for_fail_stdout_isolation() {
    check_fault(
        "unknown-ids",
        &[],
        &[("stdout-isolation", "which no request carried")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_crashes_in_a_call_fails_cancellation_and_eof_with_its_status() {
    check_fault(
        "crash",
        &[],
        &[
            ("cancellation", "exit status: 3"),
            ("stdin-eof", "exit status: 3"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_hangs_in_a_call_fails_cancellation_and_eof() {
    check_fault(
        "hang",
        &[],
        &[
            ("cancellation", "nothing within 4s"),
            ("stdin-eof", "still running"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_fails_stdout_isolation_and_its_call() {
    check_fault(
        "oversized",
        &[],
        &[
            ("stdout-isolation", "above the 16777216-byte frame limit"),
            ("cancellation", "after $/cancelRequest"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_example_worker_passes_every_check() {
    let version = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await;
    if !matches!(&version, Ok(out) if out.status.success()) {
        // Straight to fd 2: the test harness captures eprintln!, and this
        // must be seen even when the test passes.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
              !!! node is not installed: the Node.js example worker was NOT checked.\n\
              !!! Install Node.js 18+ to run this test; PYBRIDGE_ALLOW_NO_NODE=1\n\
              !!! lets it pass without node.\n\
              !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
        );
        assert_eq!(
            std::env::var("PYBRIDGE_ALLOW_NO_NODE").as_deref(),
            Ok("1"),
            "node is missing and PYBRIDGE_ALLOW_NO_NODE=1 is not set"
        );
        return;
    }

    // As a user runs it: no options, every check passes or is n/a.
    let plain = conform(&[], &node_worker(), &[]).await;
    assert_eq!(plain.status, 0, "{:#?} {}", plain.reports, plain.stderr);

    // With its slow method named, nothing is n/a: the worker has a manifest
    // with schemas, and a cancellable method.
    let full = conform(
        &[
            "--slow-method",
            "sleep",
            "--slow-params",
            r#"{"ms": 60000}"#,
        ],
        &node_worker(),
        &[],
    )
    .await;
    assert_eq!(full.status, 0, "{:#?} {}", full.reports, full.stderr);
    // The authentication checks are for workers on sockets (`--connect`).
    for check in ALL_CHECKS
        .into_iter()
        .filter(|c| !["authentication", "wrong-secret"].contains(c))
    {
        assert_eq!(
            full.status_of(check),
            "pass",
            "{check}: {:#?}",
            full.reports
        );
    }
    assert!(
        full.report("invalid-params")["seen"]
            .as_str()
            .unwrap()
            .contains("-32602"),
        "{:#?}",
        full.reports
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_a_missing_program_fails_the_handshake() {
    let home = tempfile::tempdir().unwrap();
    let out = run(&home, &["conform"]).await;
    assert_eq!(out.status, 2, "{}", out.stderr);

    let (worker, _) = demo_worker();
    let mut args = vec![
        "conform",
        "--slow-method",
        "x",
        "--slow-params",
        "{not json",
        "--",
    ];
    args.extend(worker.iter().map(String::as_str));
    let out = run(&home, &args).await;
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--slow-params"), "{}", out.stderr);

    let report = conform(&[], &["/nonexistent/worker-program".to_string()], &[]).await;
    assert_eq!(report.status, 1);
    assert_eq!(report.status_of("handshake"), "fail");
    let seen = report.report("handshake")["seen"].as_str().unwrap();
    assert!(seen.contains("cannot spawn"), "{seen}");
}

/// Starts the SDK's demo worker listening on `url` (`python3 -m pybridge_worker --listen`);
/// returns it with the URL it listens on and its stderr.
async fn listener(url: &str, flags: &[&str], env: &[(&str, &str)]) -> Listener {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(python())
        .args(["-m", "pybridge_worker", "--listen", url])
        .env("PYTHONPATH", python_path())
        .args(flags)
        .env_remove("PYBRIDGE_WORKER_SECRET")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.split("listening on ").nth(1) {
                return url.trim().to_string();
            }
        }
        panic!("the listener ended before listening");
    })
    .await
    .expect("the listener starts");
    // Kept, so that a failed run shows what the listener said (a listener
    // that ended, or refused a connection, says why on stderr).
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&stderr);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    Listener {
        _child: child,
        url,
        stderr,
    }
}

/// A worker listening on a socket, killed on drop.
struct Listener {
    _child: tokio::process::Child,
    url: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    /// What the listener wrote on stderr since it started listening.
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

/// Runs `pybridge conform --json --connect URL ARGS` and parses its report.
async fn conform_connect(url: &str, args: &[&str], env: &[(&str, &str)]) -> Conform {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = pybridge(&home);
    cmd.args(["conform", "--json", "--connect", url]).args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("conform finishes")
        .expect("conform runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let reports: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {stdout:?}, stderr {stderr:?}"));
    Conform {
        status: out.status.code().unwrap_or(-1),
        reports,
        stderr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_connect_checks_a_listening_worker_and_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "conform secret\n").unwrap();
    let secret = secret.display().to_string();
    let worker = listener(
        "tcp://127.0.0.1:0",
        &["--secret-file", &secret, "--handshake", "notification"],
        &[],
    )
    .await;
    let mut args = vec!["--secret-file", secret.as_str()];
    args.extend_from_slice(&SLOW_SDK);
    let report = conform_connect(&worker.url, &args, &[]).await;
    assert_eq!(
        report.status,
        0,
        "{:#?} {}\nthe listener said:\n{}",
        report.reports,
        report.stderr,
        worker.stderr()
    );
    assert_eq!(report.status_of("authentication"), "pass");
    assert_eq!(report.status_of("wrong-secret"), "pass");
    let seen = report.report("wrong-secret")["seen"].as_str().unwrap();
    assert!(seen.contains("wrong secret"), "{seen}");
    for check in [
        "ping",
        "cancellation",
        "shutdown",
        "stdin-eof",
        "stdout-isolation",
    ] {
        assert_eq!(
            report.status_of(check),
            "pass",
            "{check}: {:#?}",
            report.reports
        );
    }

    // The same worker with the wrong secret in the environment: the handshake fails, saying why.
    let report = conform_connect(&worker.url, &[], &[("PYBRIDGE_WORKER_SECRET", "not it")]).await;
    assert_eq!(report.status, 1);
    let seen = report.report("handshake")["seen"].as_str().unwrap();
    assert!(seen.contains("wrong secret"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conform_connect_checks_a_unix_socket_worker_and_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "conform secret\n").unwrap();
    let secret = secret.display().to_string();
    let path = dir.path().join("w.sock");
    let worker = listener(
        &format!("unix:{}", path.display()),
        &["--secret-file", &secret],
        &[],
    )
    .await;
    let report = conform_connect(&worker.url, &["--secret-file", secret.as_str()], &[]).await;
    assert_eq!(
        report.status,
        0,
        "{:#?} {}\nthe listener said:\n{}",
        report.reports,
        report.stderr,
        worker.stderr()
    );
    assert_eq!(report.status_of("authentication"), "pass");
    assert_eq!(report.status_of("wrong-secret"), "pass");
    assert_eq!(report.status_of("cancellation"), "n/a");
}
