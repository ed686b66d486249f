//! What a worker writes to its stderr reaches the operator by default.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_print_in_a_method_is_shown_with_the_worker_id_at_the_default_level() {
    let home = tempfile::tempdir().unwrap();
    let worker = sdk_worker();
    let mut args = vec![
        "call",
        "test.print",
        r#"{"text": "hello from a method"}"#,
        "--",
    ];
    args.extend(worker.iter().map(String::as_str));
    let out = run(&home, &args).await;
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("hello from a method"),
        "the result: {}",
        out.stdout
    );
    let shown = out
        .stderr
        .lines()
        .find(|l| l.ends_with("hello from a method"))
        .unwrap_or_else(|| panic!("the printed line is on stderr: {}", out.stderr));
    assert!(
        shown.starts_with("[worker ") && shown.contains("] "),
        "prefixed with the worker id: {shown}"
    );
    assert!(
        !out.stdout.contains("[worker"),
        "worker output never reaches stdout: {}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_can_hide_worker_lines() {
    let home = tempfile::tempdir().unwrap();
    let worker = sdk_worker();
    let mut args = vec!["call", "test.print", r#"{"text": "quiet please"}"#, "--"];
    args.extend(worker.iter().map(String::as_str));
    let out = pybridge(&home)
        .args(&args)
        .env("RUST_LOG", "warn,pybridge_pool::worker_stderr=off")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("quiet please"), "{stderr}");
}
