//! The HTTP gateway on async runtimes of different sizes: `pybridge serve`
//! with two SDK demo workers, once per `--threads` count, each driven in
//! turn by keep-alive connections on 127.0.0.1 that each send one 100 B
//! `test.echo` request to `/rpc` at a time.
//!
//! Rounds are interleaved: every round drives each server for `--seconds`,
//! in an order that alternates from round to round. A server's figures are
//! the medians over rounds of its requests per second and of its own CPU
//! time per request (the gateway process, from /proc, workers excluded);
//! the ratio to the first `--threads` count is the median of the rounds'
//! ratios. The load comes from this process, on one thread: on a machine
//! of two cores it takes one of them, as a client on the same host would.
//!
//! It answers how `pybridge serve` should size its runtime: the HTTP work
//! of each request runs on the runtime's threads, unlike the bridge's
//! calls alone (the `throughput_ab` example). Given `--cli` more than once,
//! it compares builds the same way: every build on every runtime size, in
//! the same rounds.
//!
//! ```text
//! cargo build --release -p pybridge-cli
//! cargo run --release -p pybridge-benches --example gateway_threads [-- --json --threads 2,1 --rounds 7 --seconds 2 --connections 64 --cli target/release/pybridge]
//! ```

// A benchmark's report is its output.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use pybridge_benches::{SDK_WORKER_ARGS, args, median, python, python_path};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

struct Options {
    json: bool,
    threads: Vec<usize>,
    rounds: usize,
    seconds: f64,
    connections: usize,
    clis: Vec<PathBuf>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        json: false,
        threads: vec![2, 1],
        rounds: 7,
        seconds: 2.0,
        connections: 64,
        clis: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<String> {
            args.next().with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--json" => options.json = true,
            "--threads" => options.threads = args::counts("--threads", &value("--threads")?)?,
            "--rounds" => options.rounds = args::whole("--rounds", &value("--rounds")?)?,
            "--seconds" => options.seconds = args::seconds("--seconds", &value("--seconds")?)?,
            "--connections" => {
                options.connections = args::whole("--connections", &value("--connections")?)?;
            }
            "--cli" => options.clis.push(PathBuf::from(value("--cli")?)),
            "--bench" => {} // cargo passes it to examples run as benches
            other => bail!("unknown argument {other:?}"),
        }
    }
    if options.clis.is_empty() {
        options
            .clis
            .push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/pybridge"));
    }
    Ok(options)
}

/// One `pybridge serve`, its address, and what it has said on stderr.
struct Gateway {
    cli: PathBuf,
    threads: usize,
    child: Child,
    addr: SocketAddr,
    stderr: tokio::task::JoinHandle<String>,
}

impl Gateway {
    async fn start(cli: &Path, threads: usize) -> Result<Gateway> {
        let mut child = Command::new(cli)
            .arg("--runtime-threads")
            .arg(threads.to_string())
            .args(["--workers", "2", "serve", "--listen", "127.0.0.1:0", "--"])
            .arg(python())
            .args(SDK_WORKER_ARGS)
            .env("PYTHONPATH", python_path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (build it with cargo build --release -p pybridge-cli)",
                    cli.display()
                )
            })?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("pybridge: listening on http://") {
                    return Ok(rest.parse::<SocketAddr>()?);
                }
            }
            bail!("serve exited before it listened")
        })
        .await
        .context("serve did not listen within 30 s")??;
        // Drained, so the server never blocks on a full pipe.
        let stderr = tokio::spawn(async move {
            let mut rest = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        });
        Ok(Gateway {
            cli: cli.to_path_buf(),
            threads,
            child,
            addr,
            stderr,
        })
    }

    /// The gateway process's CPU time so far (user and system, all its
    /// threads; its workers are processes of their own).
    fn cpu(&self) -> Result<Duration> {
        let pid = self.child.id().context("the gateway has exited")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The fields after the command's closing parenthesis; utime and
        // stime are the 14th and 15th of the whole line.
        let rest = stat.rsplit_once(')').context("no command in /proc stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<u64> {
            Ok(fields.get(i).context("short /proc stat")?.parse::<u64>()?)
        };
        let per_second = rustix::param::clock_ticks_per_second();
        let total = ticks(11)? + ticks(12)?;
        Ok(Duration::from_secs_f64(total as f64 / per_second as f64))
    }

    async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().context("the gateway has exited")?;
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid)?).context("pid 0")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("serve did not exit within 30 s of SIGTERM")??;
        let stderr = self.stderr.await.unwrap_or_default();
        ensure!(status.success(), "serve exited with {status}: {stderr}");
        Ok(())
    }
}

/// Drives `addr` with `connections` keep-alive connections for `seconds`;
/// returns the requests answered and the time taken.
async fn drive(addr: SocketAddr, connections: usize, seconds: f64) -> Result<(u64, Duration)> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "test.echo",
        "params": {"data": "x".repeat(89)},
    })
    .to_string();
    let request = Arc::new(format!(
        "POST /rpc HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = started + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (request, answered) = (Arc::clone(&request), Arc::clone(&answered));
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut buf = vec![0u8; 16 * 1024];
            while Instant::now() < stop {
                stream.write_all(request.as_bytes()).await?;
                read_response(&mut stream, &mut buf).await?;
                answered.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a connection task panicked")??;
    }
    Ok((answered.load(Ordering::Relaxed), started.elapsed()))
}

/// Reads one whole `200 OK` response with a `Content-Length`.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> Result<()> {
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..]).await?;
        ensure!(n > 0, "the gateway closed the connection");
        have += n;
        let Some(head_end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
            ensure!(have < buf.len(), "a response head over {} bytes", buf.len());
            continue;
        };
        let head = std::str::from_utf8(&buf[..head_end])?.to_ascii_lowercase();
        ensure!(head.starts_with("http/1.1 200"), "not 200: {head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .context("no content-length")?
            .trim()
            .parse()?;
        let end = head_end + 4 + length;
        ensure!(end <= buf.len(), "a response over {} bytes", buf.len());
        if have >= end {
            ensure!(have == end, "bytes after the response");
            ensure!(
                !buf[head_end + 4..end].windows(7).any(|w| w == b"\"error\""),
                "an error answer: {}",
                String::from_utf8_lossy(&buf[head_end + 4..end])
            );
            return Ok(());
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let options = options()?;
    let mut gateways = Vec::new();
    for cli in &options.clis {
        for &threads in &options.threads {
            gateways.push(Gateway::start(cli, threads).await?);
        }
    }
    // One unmeasured run each: workers started, connections' paths warm.
    for gateway in &gateways {
        drive(gateway.addr, options.connections, 0.5).await?;
    }
    // Per gateway: (requests per second, CPU µs per request) of each round.
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); gateways.len()];
    for round in 0..options.rounds {
        let mut order: Vec<usize> = (0..gateways.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let gateway = &gateways[index];
            let before = gateway.cpu()?;
            let (answered, elapsed) =
                drive(gateway.addr, options.connections, options.seconds).await?;
            let cpu = gateway.cpu()?.saturating_sub(before);
            ensure!(answered > 0, "no request answered");
            runs[index].push((
                answered as f64 / elapsed.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / answered as f64,
            ));
        }
    }
    let first = runs[0].clone();
    let mut rows = Vec::new();
    for (gateway, runs) in gateways.iter().zip(&runs) {
        let mut ratios: Vec<f64> = runs
            .iter()
            .zip(&first)
            .map(|(run, first)| run.0 / first.0)
            .collect();
        rows.push(json!({
            "cli": gateway.cli.display().to_string(),
            "threads": gateway.threads,
            "requests_per_s": median(&mut runs.iter().map(|r| r.0).collect::<Vec<_>>()),
            "cpu_us_per_request": median(&mut runs.iter().map(|r| r.1).collect::<Vec<_>>()),
            "rate_ratio_to_first": median(&mut ratios),
        }));
    }
    for gateway in gateways {
        gateway.stop().await?;
    }
    if options.json {
        println!(
            "{}",
            json!({
                "rounds": options.rounds,
                "seconds": options.seconds,
                "connections": options.connections,
                "rows": rows,
            })
        );
    } else {
        println!(
            "{} interleaved rounds of {} s, {} connections, one request in flight each; medians over rounds",
            options.rounds, options.seconds, options.connections
        );
        for row in &rows {
            println!(
                "{} on {} runtime thread(s): {:>8.0} requests/s ({:.2}× the first), gateway CPU {:.1} µs per request",
                row["cli"].as_str().unwrap_or_default(),
                row["threads"],
                row["requests_per_s"].as_f64().unwrap_or_default(),
                row["rate_ratio_to_first"].as_f64().unwrap_or_default(),
                row["cpu_us_per_request"].as_f64().unwrap_or_default(),
            );
        }
    }
    Ok(())
}
