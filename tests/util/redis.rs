//! A real `redis-server` per test, on a free loopback port with persistence off, installed from
//! Debian's package once per run if it is missing; and a proxy in front of it that can cut the
//! line or inject bytes, for the faults of cluster mode.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::WAIT;

/// `redis-server`, found on the PATH or installed (`apt-get install -y redis-server`) once per
/// test process; a test that cannot have it fails and says how to install it.
fn redis_server_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        super::install::program(
            "redis-server",
            &["redis-server"],
            "the cluster tests (Debian's package, Redis 7)",
        )
    })
}

/// A free loopback port (taken again at once by the caller; a race with another process is
/// possible but rare).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of a test, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// More options of `redis-server` (`--requirepass x`).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts one on a free port with more options (`&["--requirepass", "x"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let extra = extra.iter().map(|arg| arg.to_string()).collect();
        let mut server = RedisServer {
            child: None,
            addr,
            extra,
        };
        server.restart();
        server
    }

    /// `redis://ADDR`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Starts it (again) on its port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new(redis_server_binary())
            .args(["--port", &self.addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let start = Instant::now();
        // Up once it answers, be it that a password is needed.
        while !self
            .command(&["PING"])
            .is_some_and(|answer| answer == "PONG" || answer.starts_with("NOAUTH"))
        {
            assert!(
                start.elapsed() < WAIT,
                "redis-server did not answer on {}",
                self.addr
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs one command with `redis-cli` and returns its output, trimmed; `None` if it fails.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
        (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }

    /// The commands Redis has processed so far (`INFO stats`).
    pub fn commands_processed(&self) -> u64 {
        let info = self.command(&["INFO", "stats"]).expect("INFO");
        info.lines()
            .find_map(|line| line.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_commands_processed")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of Redis: nodes connect to it; a test can blackhole the line (bytes
/// stop moving both ways, connections stay open), inject bytes towards the nodes, or cut every
/// connection.
pub struct RedisProxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
}

struct ProxyState {
    blackhole: AtomicBool,
    /// Connections accepted and set up so far.
    connections: AtomicUsize,
    /// The node-facing side of each connection, to inject into or cut.
    clients: Mutex<Vec<TcpStream>>,
}

impl RedisProxy {
    pub fn start(redis: SocketAddr) -> RedisProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            blackhole: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            clients: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(redis) else {
                    continue;
                };
                shared
                    .clients
                    .lock()
                    .unwrap()
                    .push(client.try_clone().unwrap());
                for (from, to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    let state = shared.clone();
                    thread::spawn(move || pump(from, to, &state));
                }
                shared.connections.fetch_add(1, Ordering::SeqCst);
            }
        });
        RedisProxy { addr, state }
    }

    /// `redis://ADDR` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Waits until the proxy has set up `n` connections in all (a node's log says it connected
    /// as soon as the kernel accepted; the proxy may not have its side yet).
    pub fn wait_for_connections(&self, n: usize) {
        super::eventually("the proxy has the connection", || {
            (self.state.connections.load(Ordering::SeqCst) >= n).then_some(())
        });
    }

    /// Stops (or lets) bytes move, both ways.
    pub fn blackhole(&self, on: bool) {
        self.state.blackhole.store(on, Ordering::SeqCst);
    }

    /// Writes `bytes` to every node connected, as if Redis had sent them.
    pub fn inject(&self, bytes: &[u8]) {
        for client in self.state.clients.lock().unwrap().iter_mut() {
            let _ = client.write_all(bytes);
        }
    }

    /// Closes every connection (the nodes reconnect through the proxy).
    pub fn cut(&self) {
        for client in self.state.clients.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, state: &ProxyState) {
    let mut buf = [0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while state.blackhole.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(10));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
