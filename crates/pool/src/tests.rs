//! Unit tests for the pool internals.

use crate::process::id_in_head;

fn check(head: &str, expected: Option<i64>) {
    assert_eq!(id_in_head(head.as_bytes()), expected, "{head}");
}

#[test]
fn the_id_of_a_truncated_response_is_read_from_its_head() {
    check(r#"{"jsonrpc":"2.0","id":42,"result":"xxxx"#, Some(42));
    check(r#"{ "id" : -7 , "result": 1"#, Some(-7));
    check(r#"{"jsonrpc":"2.0","result":{"id":5,"data":"xx"#, None);
    check(
        r#"{"result":"an \"id\":3 inside a string","id":9,"#,
        Some(9),
    );
    check(r#"{"result":["id",{"id":1}],"id":2,"#, Some(2));
    check(r#"{"jsonrpc":"2.0","id":"abc","result":1"#, None);
    check(r#"{"jsonrpc":"2.0","result":"xxxxxxxxxx"#, None);
    // Digits that run to the end of the head may be cut short: no guess.
    check(r#"{"id":12"#, None);
    check("", None);
}

#[test]
fn recycling_thresholds_spread_within_the_jitter() {
    for _ in 0..1000 {
        let n = crate::process::jittered(1000, 0.1);
        assert!((900..=1100).contains(&n), "{n}");
    }
    assert_eq!(crate::process::jittered(1000, 0.0), 1000);
    assert!(crate::process::jittered(1, 0.5) >= 1);
}

#[test]
fn programs_resolve_against_path_once() {
    use std::ffi::OsStr;
    use std::path::Path;
    let dir = tempfile_dir();
    let program = dir.join("my-worker");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let resolve =
        |p: &str, path: &str| crate::config::resolve_program(Path::new(p), Some(OsStr::new(path)));
    assert!(
        resolve("my-worker", dir.to_str().unwrap()).is_err(),
        "not executable yet"
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        resolve("my-worker", &format!("/nonexistent:{}", dir.display())).unwrap(),
        program
    );
    assert_eq!(resolve(program.to_str().unwrap(), "").unwrap(), program);
    assert!(resolve("", dir.to_str().unwrap()).is_err());
    assert!(resolve("./nope", dir.to_str().unwrap()).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pybridge-pool-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
