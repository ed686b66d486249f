//! Running the binary in isolation, and a minimal HTTP/1.1 client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub(crate) fn python() -> String {
    std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into())
}

pub(crate) fn spec_worker() -> Vec<String> {
    vec![
        python(),
        fixtures()
            .join("worker/spec_worker.py")
            .display()
            .to_string(),
    ]
}

/// The SDK's demo worker: `python3 -m pybridge_worker`.
pub(crate) fn sdk_worker() -> Vec<String> {
    vec![python(), "-m".into(), "pybridge_worker".into()]
}

/// The `PYTHONPATH` under which the worker SDK (`python/pybridge-worker`)
/// imports without being installed; the binary's workers inherit it.
pub(crate) fn python_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python/pybridge-worker/src")
}

/// The binary with its caches and data in `home`, and no settings inherited
/// from the environment.
pub(crate) fn pybridge(home: &tempfile::TempDir) -> Command {
    isolated(Command::new(env!("CARGO_BIN_EXE_pybridge")), home)
}

fn isolated(mut cmd: Command, home: &tempfile::TempDir) -> Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("PYBRIDGE_") && key != "PYBRIDGE_PYTHON" || key.starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("PYBRIDGE_DATA_DIR", home.path().join("data"))
        .env("HOME", home.path())
        .env("PYTHONPATH", python_path())
        // Bytecode cached under target/ even where the environment turns
        // caching off: recompiling the SDK at every worker start is slow.
        .env("PYTHONDONTWRITEBYTECODE", "")
        .env(
            "PYTHONPYCACHEPREFIX",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/pycache"),
        )
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    cmd
}

pub(crate) struct Output {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// The error `call` printed: the one JSON line on stderr, wherever the
    /// logs of the shutdown that follows it put it.
    pub(crate) fn error(&self) -> serde_json::Value {
        let mut errors = self
            .stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(serde_json::Value::is_object);
        let error = errors
            .next()
            .unwrap_or_else(|| panic!("no JSON error on stderr: {}", self.stderr));
        assert!(errors.next().is_none(), "one error only: {}", self.stderr);
        error
    }
}

pub(crate) async fn run(home: &tempfile::TempDir, args: &[&str]) -> Output {
    let out = tokio::time::timeout(Duration::from_secs(60), pybridge(home).args(args).output())
        .await
        .expect("the command finishes")
        .expect("the command runs");
    Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `pybridge serve`.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) stderr: tokio::task::JoinHandle<String>,
}

impl Server {
    pub(crate) async fn start(
        home: &tempfile::TempDir,
        args: &[&str],
        worker: &[String],
    ) -> Server {
        Server::start_limited(home, args, worker, None).await
    }

    /// Starts the server, with at most `max_files` open descriptors when given
    /// (through the shell's `ulimit`, as an operator would).
    pub(crate) async fn start_limited(
        home: &tempfile::TempDir,
        args: &[&str],
        worker: &[String],
        max_files: Option<u32>,
    ) -> Server {
        let mut cmd = match max_files {
            None => pybridge(home),
            Some(n) => {
                let mut sh = Command::new("/bin/sh");
                sh.args(["-c", "ulimit -n \"$0\" && exec \"$@\""])
                    .arg(n.to_string())
                    .arg(env!("CARGO_BIN_EXE_pybridge"));
                isolated(sh, home)
            }
        };
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        if !worker.is_empty() {
            cmd.arg("--").args(worker);
        }
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("serve prints its address");
                if let Some(rest) = line.strip_prefix("pybridge: listening on http://") {
                    return rest.parse::<SocketAddr>().unwrap();
                }
            }
        })
        .await
        .expect("serve listens in time");
        // Keep draining stderr so the server never blocks on a full pipe.
        let stderr = tokio::spawn(async move {
            let mut rest = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        });
        Server {
            child,
            addr,
            stderr,
        }
    }

    pub(crate) async fn post(&self, path: &str, body: &str) -> Response {
        http(self.addr, "POST", path, &[], body).await
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        http(self.addr, "GET", path, &[], "").await
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) async fn terminate(mut self) -> (i32, String) {
        let pid = rustix::process::Pid::from_raw(self.child.id().unwrap() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .unwrap();
        let stderr = self.stderr.await.unwrap_or_default();
        (status.code().unwrap_or(-1), stderr)
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    raw(addr, &request).await
}

/// Sends `request` as it is on a fresh connection and reads the response
/// until the server closes the connection.
pub(crate) async fn raw(addr: SocketAddr, request: &str) -> Response {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut raw))
        .await
        .expect("the response arrives")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !matches!(
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next()),
                Some("Z" | "X")
            )
        })
        .unwrap_or(false)
}
