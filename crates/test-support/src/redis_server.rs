//! A real `redis-server` for the shared-tier tests: started on a free
//! loopback port with persistence off, stopped by its process id.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// One `redis-server` process; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> Self {
        loop {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            if let Some(server) = Self::try_start_on(port) {
                return server;
            }
        }
    }

    /// Starts one on `port` (to restart a killed one where clients expect it).
    pub fn start_on(port: u16) -> Self {
        Self::try_start_on(port)
            .unwrap_or_else(|| panic!("redis-server did not start on port {port}"))
    }

    /// Another test may take the same free port at the same moment (it is
    /// free until a server binds it): the server answering must report the
    /// pid of the one started here, or this one gives up.
    fn try_start_on(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        let pid = child.id();
        let mut server = RedisServer {
            child: Some(child),
            port,
        };
        let started = Instant::now();
        loop {
            match server.answering_pid() {
                Some(answering) if answering == pid => return Some(server),
                Some(_) => {
                    server.kill();
                    return None;
                }
                None => {}
            }
            if started.elapsed() > Duration::from_secs(10) {
                server.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("running");
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits")).expect("nonzero pid")
    }

    /// The pid of the server answering on the port, if one answers.
    fn answering_pid(&self) -> Option<u32> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .ok()?;
        stream.write_all(b"INFO server\r\n").ok()?;
        let mut reply = Vec::new();
        let mut chunk = [0_u8; 4096];
        while !reply.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&reply);
        let line = text.lines().find(|l| l.starts_with("process_id:"))?;
        line["process_id:".len()..].trim().parse().ok()
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing.
    pub fn freeze(&self) {
        kill_process(self.pid(), Signal::STOP).expect("SIGSTOP");
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        kill_process(self.pid(), Signal::CONT).expect("SIGCONT");
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill_process(
                Pid::from_raw(i32::try_from(child.id()).expect("pid fits")).expect("nonzero"),
                Signal::KILL,
            );
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen server ignores nothing but SIGKILL; thaw it anyway so
            // that a kill is never queued behind a stop.
            let _ = kill_process(self.pid(), Signal::CONT);
        }
        self.kill();
    }
}
