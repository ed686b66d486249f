//! `pybridge call`, `config` and `bench` as a user runs them.

use serde_json::Value;

use crate::support::*;

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_reaches_every_family_of_the_embedded_framework() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        &home,
        &[
            "call",
            "pattern_learning.get_recommendations",
            r#"{"domain":"finance","description":"portfolio value at risk"}"#,
        ],
    )
    .await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let result = json(&out.stdout);
    let first = &result["recommendations"][0];
    assert_eq!(first["domain"], "finance", "{result}");
    assert!(
        first["pattern_name"].as_str().unwrap().contains("var"),
        "{result}"
    );

    let out = run(
        &home,
        &[
            "call",
            "extension_generator.analyze_requirements",
            r#"{"description":"fast geospatial distance between latitude/longitude points"}"#,
        ],
    )
    .await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(
        json(&out.stdout)["requirements"]["domain"],
        "geospatial",
        "{}",
        out.stdout
    );

    let out = run(
        &home,
        &[
            "call",
            "agent_amplification.record_decision",
            r#"{"decision":"use FTS5 for search","outcome":"success","confidence":0.8}"#,
        ],
    )
    .await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(json(&out.stdout).is_object(), "{}", out.stdout);

    // The camelCase alias of the original service reaches the same method.
    let out = run(
        &home,
        &[
            "call",
            "getAgentCapabilities",
            r#"{"agentType":"claude_code"}"#,
            "--pretty",
        ],
    )
    .await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("\n  "),
        "pretty-printed: {}",
        out.stdout
    );
    assert!(json(&out.stdout).is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_1_with_the_error_as_json_and_usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        &home,
        &[
            "call",
            "pattern_learning.find_similar",
            r#"{"threshold":2}"#,
        ],
    )
    .await;
    assert_eq!(out.status, 1);
    assert!(out.stdout.is_empty());
    let error = out.error();
    assert_eq!(error["code"], -32602);
    assert_eq!(error["data"]["code"], "invalid_params");
    let paths: Vec<&str> = error["data"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["instance_path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"") && paths.contains(&"/threshold"),
        "missing description and bad threshold: {error}"
    );

    let out = run(&home, &["call", "research.design_experiment", "{}"]).await;
    assert_eq!(
        out.status, 1,
        "the reference framework does not implement research methods"
    );
    assert_eq!(out.error()["code"], -32601);

    assert_eq!(
        run(&home, &["call"]).await.status,
        2,
        "a missing method is a usage error"
    );
    assert_eq!(
        run(&home, &["call", "test.echo", "{not json"]).await.status,
        2
    );
    assert_eq!(
        run(&home, &["call", "test.echo", "{}", "--timeout", "soon"])
            .await
            .status,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_with_an_unknown_key_fails_with_its_name() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, "[pool]\nmin_workers = 1\nmax_workerz = 3\n").unwrap();
    let out = run(
        &home,
        &[
            "--config",
            file.to_str().unwrap(),
            "call",
            "test.echo",
            "{}",
        ],
    )
    .await;
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("pool.max_workerz"), "{}", out.stderr);
    assert!(
        out.stderr.contains(file.to_str().unwrap()),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("unknown key"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_worker_runs_after_a_double_dash_without_a_shell() {
    let home = tempfile::tempdir().unwrap();
    let worker = spec_worker();
    let mut args = vec!["call", "subtract", "[42, 23]", "--"];
    args.extend(worker.iter().map(String::as_str));
    let out = run(&home, &args).await;
    assert_eq!((out.status, out.stdout.trim()), (0, "19"), "{}", out.stderr);

    let out = run(
        &home,
        &["call", "test.echo", "{}", "--", "echo hello; rm -rf /"],
    )
    .await;
    assert_eq!(
        out.status, 2,
        "a program name with spaces is not run through a shell"
    );
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_prints_every_value_with_its_source() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, "[call]\ntimeout = \"12s\"\n").unwrap();
    let out = pybridge(&home)
        .args([
            "--config",
            file.to_str().unwrap(),
            "--workers",
            "3",
            "config",
        ])
        .env("PYBRIDGE_RETRY__MAX_RETRIES", "4")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("no {key}: {stdout}"))
            .to_string()
    };
    assert!(
        line("pool.min_workers").contains("= 3")
            && line("pool.min_workers").contains("flag --workers")
    );
    assert!(line("call.timeout").contains("\"12s\"") && line("call.timeout").contains("file "));
    assert!(line("retry.max_retries").contains("env PYBRIDGE_RETRY__MAX_RETRIES"));
    assert!(line("pool.max_in_flight").ends_with("# default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_throughput_latency_and_errors_as_json() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec![
        "bench",
        "--requests",
        "2000",
        "--concurrency",
        "16",
        "--json",
        "--",
    ];
    let worker = sdk_worker();
    args.extend(worker.iter().map(String::as_str));
    let out = run(&home, &args).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let report = json(&out.stdout);
    assert_eq!(report["requests"], 2000);
    assert_eq!(report["ok"], 2000);
    assert_eq!(report["errors"], 0);
    assert!(report["rps"].as_f64().unwrap() > 0.0);
    let p50 = report["p50_us"].as_u64().unwrap();
    let p99 = report["p99_us"].as_u64().unwrap();
    assert!(p50 > 0 && p50 <= p99, "{report}");
    // test.echo is not cacheable: every call went to the worker.
    assert_eq!(report["cache_hits"], 0, "{report}");
    assert_eq!(report["cache_hit_ratio"], 0.0, "{report}");
}

/// This machine's cores, and the runtime's threads beside `local` workers
/// as `auto` in src/runtime.rs: the cores they leave free, one at least.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn auto_threads(local: usize) -> usize {
    cores().saturating_sub(local).max(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_is_sized_by_the_workers_unless_told() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pybridge.toml");
    std::fs::write(&file, "[pool]\nmin_workers = 1\nmax_workers = 3\n").unwrap();
    let threads_line = |out: &Output| {
        assert_eq!(out.status, 0, "{}", out.stderr);
        out.stdout
            .lines()
            .find(|l| l.starts_with("# runtime threads: "))
            .unwrap_or_else(|| panic!("no runtime line: {}", out.stdout))
            .to_string()
    };
    let sized = |local: usize| {
        format!(
            "# runtime threads: serve {} (every core); bench, mcp {} (the cores the local workers leave free, one at least)",
            cores(),
            auto_threads(local)
        )
    };
    // The most workers the pool may run counts, from the file or the flag.
    let out = run(&home, &["--config", file.to_str().unwrap(), "config"]).await;
    assert_eq!(threads_line(&out), sized(3));
    let out = run(&home, &["--workers", "1", "config"]).await;
    assert_eq!(threads_line(&out), sized(1));
    // The flag and its variable decide alone.
    let out = run(
        &home,
        &["--runtime-threads", "5", "--workers", "1", "config"],
    )
    .await;
    assert_eq!(
        threads_line(&out),
        "# runtime threads: 5 (--runtime-threads)"
    );
    let out = pybridge(&home)
        .arg("config")
        .env("PYBRIDGE_RUNTIME_THREADS", "3")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("# runtime threads: 3 (--runtime-threads)\n"),
        "{stdout}"
    );
    // Zero threads, or not a number, is refused before anything starts.
    for bad in ["0", "two"] {
        let out = run(&home, &["--runtime-threads", bad, "config"]).await;
        assert_eq!(out.status, 2, "{}", out.stdout);
        assert!(
            out.stderr.contains(&format!(
                "invalid value '{bad}' for '--runtime-threads <N>'"
            )),
            "{}",
            out.stderr
        );
    }
    // The benchmark runs on what it says, chosen or told.
    let worker = sdk_worker();
    for (flags, expected) in [
        (vec!["--workers", "1"], auto_threads(1)),
        (vec!["--runtime-threads", "2"], 2),
    ] {
        let mut args = flags.clone();
        args.extend(["bench", "--requests", "200", "--json", "--"]);
        args.extend(worker.iter().map(String::as_str));
        let out = run(&home, &args).await;
        assert_eq!(out.status, 0, "{}", out.stderr);
        assert_eq!(
            json(&out.stdout)["runtime_threads"],
            expected,
            "{flags:?}: {}",
            out.stdout
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_says_how_many_calls_the_cache_answered() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("pybridge.toml");
    // No disk tier: each run starts with an empty cache.
    std::fs::write(
        &file,
        "[cache]\ndisk = false\n[methods.\"test.echo\"]\ncache = true\n",
    )
    .unwrap();
    let worker = sdk_worker();
    let with = |extra: &[&'static str]| {
        let mut all = vec![
            "--config",
            file.to_str().unwrap(),
            "bench",
            "--requests",
            "500",
            "--concurrency",
            "1",
        ];
        all.extend_from_slice(extra);
        all.push("--");
        all.extend(worker.iter().map(String::as_str));
        all
    };
    // The same params every call: the first goes to the worker, the rest
    // are answered by the memory tier.
    let out = run(&home, &with(&["--json"])).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let report = json(&out.stdout);
    assert_eq!(report["cache_hits"], 499, "{report}");
    let ratio = report["cache_hit_ratio"].as_f64().unwrap();
    assert!((ratio - 0.998).abs() < 1e-9, "{report}");
    let out = run(&home, &with(&[])).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("499 of 500 answered by the cache (99.8 %)")
            && out.stdout.contains("this measures the cache"),
        "{}",
        out.stdout
    );
    let out = run(&home, &with(&["--no-cache", "--json"])).await;
    assert_eq!(json(&out.stdout)["cache_hits"], 0, "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_stderr_as_json_and_stdout_holds_only_the_result() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "call",
        "test.echo",
        "[7]",
        "--no-cache",
        "--timeout",
        "5s",
        "--",
    ];
    let worker = sdk_worker();
    args.extend(worker.iter().map(String::as_str));
    let out = run(&home, &args).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "[7]\n", "stdout carries the result alone");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "debug logging wrote something");
    for line in lines {
        let record = json(line);
        assert!(
            record.get("level").is_some() && record.get("fields").is_some(),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_ends_the_output_quietly() {
    use tokio::io::AsyncReadExt;
    let home = tempfile::tempdir().unwrap();
    // Far more than a pipe holds, so the write meets the closed pipe.
    let params = format!(r#"{{"data":"{}"}}"#, "x".repeat(512 * 1024));
    let mut child = pybridge(&home)
        .args(["call", "test.echo", "-", "--"])
        .args(sdk_worker())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(params.as_bytes()).await.unwrap();
    }
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 10];
    stdout.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, br#"{"data":"x"#);
    drop(stdout);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_start_exits_1_with_the_error_as_json() {
    let home = tempfile::tempdir().unwrap();
    let fault = fixtures()
        .join("faults/fault_worker.py")
        .display()
        .to_string();
    let python = python();
    let out = run(
        &home,
        &[
            "call",
            "test.echo",
            "{}",
            "--",
            &python,
            &fault,
            "--mode",
            "exit-before-ready",
        ],
    )
    .await;
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let error = out.error();
    assert_eq!(error["data"]["code"], "start_failed", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("start"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_exits_1_when_calls_fail_unless_errors_are_allowed() {
    let home = tempfile::tempdir().unwrap();
    let worker = sdk_worker();
    let args = vec![
        "bench",
        "--method",
        "test.error",
        "--params",
        "{}",
        "--requests",
        "20",
        "--json",
    ];
    let with = |extra: &[&'static str]| {
        let mut all: Vec<&str> = args.clone();
        all.extend_from_slice(extra);
        all.push("--");
        all.extend(worker.iter().map(String::as_str));
        all
    };
    let out = run(&home, &with(&[])).await;
    assert_eq!(out.status, 1, "{}", out.stderr);
    assert_eq!(json(&out.stdout)["errors"], 20);
    let out = run(&home, &with(&["--allow-errors"])).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(json(&out.stdout)["errors"], 20);
}

/// `call` prints its answer before it shuts the workers down, and still
/// exits only once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_answers_then_exits_without_leaving_its_worker_behind() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["call", "test.pid", "--"];
    let worker = sdk_worker();
    args.extend(worker.iter().map(String::as_str));
    let out = run(&home, &args).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    let pid: u32 = out.stdout.trim().parse().expect("the worker's pid");
    assert!(!alive(pid), "worker {pid} outlived pybridge call");
}
