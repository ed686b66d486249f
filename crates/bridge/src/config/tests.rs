//! Layering, sources, validation and presets of the configuration.

use std::io::Write;
use std::time::Duration;

use super::{Config, ConfigError, LoadOptions, Preset, Source};

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load(options: LoadOptions) -> Config {
    Config::load(&options)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

fn error(options: LoadOptions) -> ConfigError {
    Config::load(&options).expect_err("the configuration is invalid")
}

fn source_of(options: &LoadOptions, key: &str) -> Source {
    let settings = Config::effective(options).unwrap();
    settings
        .into_iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .source
}

#[test]
fn defaults_load_and_validate() {
    let config = load(LoadOptions::new());
    assert_eq!(config, Config::default());
    assert_eq!(config.max_workers(), 2);
    assert!(config.validate().is_ok());
}

#[test]
fn each_layer_overrides_the_one_before_and_is_named_as_the_source() {
    let f = file("[pool]\nmin_workers = 3\nqueue_capacity = 100\n[call]\ntimeout = \"7s\"\n");
    let options = LoadOptions::new()
        .file(f.path())
        .env_vars([("PYBRIDGE_POOL__MIN_WORKERS", "5"), ("UNRELATED", "x")])
        .flag("call.timeout", "9s", "--timeout");
    let config = load(options.clone());
    assert_eq!(config.pool.min_workers, 5, "env beats the file");
    assert_eq!(
        config.pool.queue_capacity, 100,
        "the file beats the default"
    );
    assert_eq!(
        config.call.timeout,
        Duration::from_secs(9),
        "a flag beats everything"
    );
    assert_eq!(config.pool.max_in_flight, 64, "the default stays");
    assert_eq!(
        source_of(&options, "pool.min_workers"),
        Source::Env("PYBRIDGE_POOL__MIN_WORKERS".into())
    );
    assert_eq!(
        source_of(&options, "pool.queue_capacity"),
        Source::File(f.path().to_path_buf())
    );
    assert_eq!(
        source_of(&options, "call.timeout"),
        Source::Flag("--timeout".into())
    );
    assert_eq!(source_of(&options, "pool.max_in_flight"), Source::Default);
}

#[test]
fn an_unknown_key_is_named_with_its_file() {
    let f = file("[pool]\nworkerz = 3\n");
    let err = error(LoadOptions::new().file(f.path()));
    assert_eq!(err.key.as_deref(), Some("pool.workerz"));
    assert_eq!(err.origin, Some(Source::File(f.path().to_path_buf())));
    let text = err.to_string();
    assert!(
        text.contains("pool.workerz") && text.contains("unknown key"),
        "{text}"
    );
    assert!(text.contains(&f.path().display().to_string()), "{text}");

    // Variables without a section are not settings (workers read some of them).
    let config =
        load(LoadOptions::new().env_vars([("PYBRIDGE_DATA_DIR", "/x"), ("PYBRIDGE_PYTHON", "3")]));
    assert_eq!(config, Config::default());
    let err = error(LoadOptions::new().env_vars([("PYBRIDGE_CACHE__SIZE", "1")]));
    assert_eq!(err.key.as_deref(), Some("cache.size"));
    assert_eq!(err.origin, Some(Source::Env("PYBRIDGE_CACHE__SIZE".into())));
}

#[test]
fn a_value_of_the_wrong_type_is_named_with_its_source() {
    let err = error(LoadOptions::new().env_vars([("PYBRIDGE_POOL__MIN_WORKERS", "many")]));
    assert_eq!(err.key.as_deref(), Some("pool.min_workers"));
    assert_eq!(
        err.origin,
        Some(Source::Env("PYBRIDGE_POOL__MIN_WORKERS".into()))
    );
    let err = error(LoadOptions::new().flag("call.timeout", "soon", "--timeout"));
    assert_eq!(err.key.as_deref(), Some("call.timeout"));
    assert_eq!(err.origin, Some(Source::Flag("--timeout".into())));
    assert!(err.to_string().contains("--timeout"), "{err}");
}

#[test]
fn impossible_values_fail_validation_with_their_source() {
    let check = |options: LoadOptions, key: &str, origin: Source| {
        let err = error(options);
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert_eq!(err.origin, Some(origin), "{err}");
    };
    let f = file("[pool]\nmin_workers = 0\n");
    check(
        LoadOptions::new().file(f.path()),
        "pool.min_workers",
        Source::File(f.path().to_path_buf()),
    );
    check(
        LoadOptions::new().env_vars([
            ("PYBRIDGE_POOL__MIN_WORKERS", "4"),
            ("PYBRIDGE_POOL__MAX_WORKERS", "2"),
        ]),
        "pool.min_workers",
        Source::Env("PYBRIDGE_POOL__MIN_WORKERS".into()),
    );
    check(
        LoadOptions::new().flag("call.timeout", "0s", "--timeout"),
        "call.timeout",
        Source::Flag("--timeout".into()),
    );
    check(
        LoadOptions::new().env_vars([("PYBRIDGE_RETRY__BUDGET_RATIO", "nan")]),
        "retry.budget_ratio",
        Source::Env("PYBRIDGE_RETRY__BUDGET_RATIO".into()),
    );
    check(
        LoadOptions::new()
            .flag("retry.initial_delay", "10s", "--x")
            .flag("retry.max_delay", "1s", "--y"),
        "retry.initial_delay",
        Source::Flag("--x".into()),
    );
    let f = file("[gateway]\nlisten = \"nowhere\"\n");
    check(
        LoadOptions::new().file(f.path()),
        "gateway.listen",
        Source::File(f.path().to_path_buf()),
    );
}

#[test]
fn a_text_value_that_reads_as_a_number_still_fits_a_string_key() {
    let config = load(LoadOptions::new().env_vars([("PYBRIDGE_GATEWAY__TOKEN", "12345")]));
    assert_eq!(config.gateway.token.as_deref(), Some("12345"));
    let config = load(LoadOptions::new().env_vars([("PYBRIDGE_CACHE__NAMESPACE", "3")]));
    assert_eq!(config.cache.namespace, "3");
}

#[test]
fn presets_sit_under_the_file_and_over_the_defaults() {
    let f = file("preset = \"production\"\n[pool]\nmin_workers = 3\n");
    let options = LoadOptions::new().file(f.path());
    let config = load(options.clone());
    assert_eq!(config.preset, Some(Preset::Production));
    assert_eq!(
        config.pool.min_workers, 3,
        "the file's own value wins over the preset"
    );
    assert_eq!(
        config.call.timeout,
        Duration::from_secs(60),
        "the preset's value"
    );
    assert_eq!(
        source_of(&options, "call.timeout"),
        Source::Preset(Preset::Production)
    );

    let config = load(LoadOptions::new().env_vars([("PYBRIDGE_PRESET", "low-latency")]));
    assert!(!config.breaker.enabled);
    assert_eq!(config.call.timeout, Duration::from_secs(5));
    let config = load(LoadOptions::new().flag("preset", "development", "--preset"));
    assert_eq!(config.log.level, "debug");

    let err = error(LoadOptions::new().env_vars([("PYBRIDGE_PRESET", "turbo")]));
    assert_eq!(err.key.as_deref(), Some("preset"));
}

#[test]
fn every_preset_is_valid_on_its_own() {
    for preset in [Preset::Development, Preset::Production, Preset::LowLatency] {
        let config = load(LoadOptions::new().flag("preset", preset.as_str(), "--preset"));
        assert_eq!(config.preset, Some(preset));
    }
}

#[test]
fn tables_and_method_overrides_load_from_a_file() {
    let f = file(
        r#"
        [worker]
        command = ["python3", "my worker.py", "--flag"]
        env = { API_KEY = "k", MODE = "test" }
        [methods."pattern_learning.get_recommendations"]
        timeout = "3s"
        cache = false
        "#,
    );
    let config = load(LoadOptions::new().file(f.path()));
    assert_eq!(config.worker.command, ["python3", "my worker.py", "--flag"]);
    assert_eq!(
        config.worker.env.get("MODE").map(String::as_str),
        Some("test")
    );
    let m = &config.methods["pattern_learning.get_recommendations"];
    assert_eq!(
        (m.timeout, m.cache),
        (Some(Duration::from_secs(3)), Some(false))
    );
    let settings = Config::effective(&LoadOptions::new().file(f.path())).unwrap();
    let keys: Vec<&str> = settings.iter().map(|s| s.key.as_str()).collect();
    assert!(
        keys.contains(&"methods.\"pattern_learning.get_recommendations\".timeout"),
        "{keys:?}"
    );
}

#[test]
fn a_broken_file_is_named() {
    let f = file("[pool\nmin_workers = 3\n");
    let err = error(LoadOptions::new().file(f.path()));
    assert_eq!(err.origin, Some(Source::File(f.path().to_path_buf())));
    assert!(err.problem.contains("TOML"), "{err}");
    let err = error(LoadOptions::new().file("/nonexistent/pybridge.toml"));
    assert!(err.problem.contains("cannot read"), "{err}");
}

#[test]
fn the_gateway_limits_load_from_a_file_and_impossible_ones_are_named() {
    let f = file(
        "[gateway]\nheader_read_timeout = \"2s\"\nidle_timeout = \"1s\"\nmax_connections = 64\n\
         max_batch = 10\nbatch_concurrency = 4\nmax_response = \"1MiB\"\nexpose_error_details = true\n\
         allowed_hosts = [\"api.test\", \"*\"]\nallowed_origins = [\"https://app.test\"]\n",
    );
    let g = load(LoadOptions::new().file(f.path())).gateway;
    assert_eq!(
        (g.header_read_timeout, g.idle_timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!(
        (g.max_connections, g.max_batch, g.batch_concurrency),
        (64, 10, 4)
    );
    assert_eq!(g.max_response.as_u64(), 1024 * 1024);
    assert!(g.expose_error_details);
    assert_eq!(g.allowed_hosts, ["api.test", "*"]);
    assert_eq!(g.allowed_origins, ["https://app.test"]);
    for (line, key) in [
        ("max_batch = 0", "gateway.max_batch"),
        ("max_connections = 0", "gateway.max_connections"),
        ("batch_concurrency = 0", "gateway.batch_concurrency"),
        ("idle_timeout = \"0s\"", "gateway.idle_timeout"),
        (
            "header_read_timeout = \"0s\"",
            "gateway.header_read_timeout",
        ),
        ("max_response = \"10B\"", "gateway.max_response"),
        ("allowed_hosts = [\"\"]", "gateway.allowed_hosts"),
        (
            "allowed_origins = [\"app.test\"]",
            "gateway.allowed_origins",
        ),
    ] {
        let f = file(&format!("[gateway]\n{line}\n"));
        let err = error(LoadOptions::new().file(f.path()));
        assert_eq!(err.key.as_deref(), Some(key), "{line}: {err}");
    }
}

#[test]
fn the_mcp_lists_load_from_a_file_and_an_empty_pattern_is_named() {
    let f = file("[mcp]\nallow = [\"pattern_learning.*\"]\ndeny = [\"*.record_*\"]\n");
    let m = load(LoadOptions::new().file(f.path())).mcp;
    assert_eq!(m.allow, ["pattern_learning.*"]);
    assert_eq!(m.deny, ["*.record_*"]);
    for (line, key) in [
        ("allow = [\" \"]", "mcp.allow"),
        ("deny = [\"\"]", "mcp.deny"),
    ] {
        let f = file(&format!("[mcp]\n{line}\n"));
        let err = error(LoadOptions::new().file(f.path()));
        assert_eq!(err.key.as_deref(), Some(key), "{line}: {err}");
    }
    let f = file("[mcp]\nexpose = true\n");
    let err = error(LoadOptions::new().file(f.path()));
    assert!(err.to_string().contains("expose"), "{err}");
}

#[test]
fn the_telemetry_section_loads_from_a_file_and_impossible_values_are_named() {
    let f = file(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nservice_name = \"api\"\n\
         sample_ratio = 0.01\nheaders = { x-api-key = \"k\" }\nexport_timeout = \"2s\"\n\
         shutdown_timeout = \"1s\"\nmax_queue = 64\n",
    );
    let t = load(LoadOptions::new().file(f.path())).telemetry;
    assert_eq!(t.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
    assert_eq!(t.service_name.as_deref(), Some("api"));
    assert_eq!(t.sample_ratio, Some(0.01));
    assert_eq!(t.headers.get("x-api-key").map(String::as_str), Some("k"));
    assert_eq!(
        (t.export_timeout, t.shutdown_timeout, t.max_queue),
        (Duration::from_secs(2), Duration::from_secs(1), 64)
    );
    let default = Config::default().telemetry;
    assert_eq!(
        default.otlp_endpoint, None,
        "export is off unless asked for"
    );
    for (line, key) in [
        (
            "otlp_endpoint = \"127.0.0.1:4318\"",
            "telemetry.otlp_endpoint",
        ),
        ("sample_ratio = 1.5", "telemetry.sample_ratio"),
        ("sample_ratio = -0.1", "telemetry.sample_ratio"),
        ("service_name = \"\"", "telemetry.service_name"),
        ("export_timeout = \"0s\"", "telemetry.export_timeout"),
        ("shutdown_timeout = \"0s\"", "telemetry.shutdown_timeout"),
        ("max_queue = 0", "telemetry.max_queue"),
        ("collector = \"x\"", "telemetry.collector"),
    ] {
        let f = file(&format!("[telemetry]\n{line}\n"));
        let err = error(LoadOptions::new().file(f.path()));
        assert_eq!(err.key.as_deref(), Some(key), "{line}: {err}");
    }
}

#[test]
fn remote_workers_come_from_a_list_or_one_string_and_allow_no_local_worker() {
    let config = load(LoadOptions::new().env_vars([
        ("PYBRIDGE_WORKER__CONNECT", "tcp://127.0.0.1:7001"),
        ("PYBRIDGE_POOL__MIN_WORKERS", "0"),
    ]));
    assert_eq!(config.worker.connect, ["tcp://127.0.0.1:7001"]);
    assert_eq!(config.max_workers(), 0, "remote workers only");
    let f = file(
        "[worker]\nconnect = [\"tcp://127.0.0.1:7001\", \"unix:/run/w.sock\"]\nsecret_file = \"/run/secret\"\n",
    );
    let config = load(LoadOptions::new().file(f.path()));
    assert_eq!(config.worker.connect.len(), 2);
    assert_eq!(
        config.worker.secret_file.as_deref(),
        Some(std::path::Path::new("/run/secret"))
    );
    let err = error(LoadOptions::new().env_vars([("PYBRIDGE_WORKER__CONNECT", "127.0.0.1:7001")]));
    assert_eq!(err.key.as_deref(), Some("worker.connect"), "{err}");
    let err = error(LoadOptions::new().env_vars([("PYBRIDGE_POOL__MIN_WORKERS", "0")]));
    assert!(err.to_string().contains("worker.connect"), "{err}");
}

#[test]
fn the_listing_of_settings_hides_the_token_and_the_redis_password() {
    let check = |toml: &str, key: &str, expected: &str| {
        let f = file(toml);
        let options = LoadOptions::new().file(f.path());
        // The configuration itself keeps the real value...
        assert!(Config::load(&options).is_ok());
        // ...and the listing shows only what is safe to print.
        let shown = Config::effective(&options)
            .unwrap()
            .into_iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no {key}"))
            .value;
        assert_eq!(shown.as_str(), Some(expected), "{key} in {toml}");
    };
    check(
        "[gateway]\ntoken = \"s3cret\"\n",
        "gateway.token",
        "<redacted>",
    );
    check(
        "[cache]\nredis_url = \"redis://app:hunter2@127.0.0.1:6379/0\"\n",
        "cache.redis_url",
        "redis://app:<redacted>@127.0.0.1:6379/0",
    );
    check(
        "[cache]\nredis_url = \"redis://:hunter2@127.0.0.1:6379\"\n",
        "cache.redis_url",
        "redis://:<redacted>@127.0.0.1:6379",
    );
    check(
        "[cache]\nredis_url = \"redis://127.0.0.1:6379/0\"\n",
        "cache.redis_url",
        "redis://127.0.0.1:6379/0",
    );
}
