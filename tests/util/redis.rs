//! A real `redis-server` per test, on a free loopback port with persistence off, installed from
//! Debian's package once per run if it is missing; and a proxy in front of it that can cut the
//! line or inject bytes, for the faults of cluster mode.
//!
//! Redis runs as it is deployed (contract section 9): the `default` user disabled, the nodes
//! authenticated as [`NODE_USER`] under exactly the least-privilege rule the README gives
//! ([`NODE_ACL`]), and an [`ADMIN_USER`] for the tests' own commands. When a test's Redis is
//! dropped, its `ACL LOG` must hold no command, key or channel the rule refused: a node that
//! needs more than the rule fails the test.

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
pub fn redis_server_binary() -> &'static PathBuf {
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
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The ACL user the nodes of the tests authenticate as.
pub const NODE_USER: &str = "a-chat";

/// Its password.
pub const NODE_PASSWORD: &str = "node-pw-7f3a";

/// The rule of [`NODE_USER`], after its name and `on >PASSWORD`: word for word the README's
/// `ACL SETUSER` line (`tests/docs.rs` checks it).
pub const NODE_ACL: &str = "resetkeys ~a-chat:node:* ~a-chat:name:* ~a-chat:cluster \
    ~a-chat:recovering resetchannels &a-chat:to:* -@all +hello +script|load +evalsha +subscribe \
    +publish +del +exists +set +get +mget +pttl +role";

/// The user of the tests' own commands (`redis-cli`), allowed everything.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-pw-93c1";

/// `redis-server`'s options for its users: `default` off, the node's, the admin's.
fn user_options() -> Vec<String> {
    let mut args: Vec<String> = ["--user", "default", "off", "--user", NODE_USER, "on"]
        .map(String::from)
        .to_vec();
    args.push(format!(">{NODE_PASSWORD}"));
    args.extend(NODE_ACL.split_whitespace().map(String::from));
    args.extend(["--user", ADMIN_USER, "on"].map(String::from));
    args.push(format!(">{ADMIN_PASSWORD}"));
    args.extend(["~*", "&*", "+@all"].map(String::from));
    args
}

/// A `redis-server` of a test, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Its options: the users', then the test's own (`--requirepass x`).
    extra: Vec<String>,
    /// Started with the users (not open).
    users: bool,
    /// How `redis-cli` connects: `-p PORT`, or the TLS options.
    cli_args: Vec<String>,
}

impl RedisServer {
    /// Starts one on a free port, with the users.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts one on a free port with the users and more options.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut args = user_options();
        args.extend(extra.iter().map(|arg| arg.to_string()));
        RedisServer::start_raw(args, true)
    }

    /// Starts one on a free port with the `default` user open to all and no other: for the
    /// tests that are about Redis's own password (`&["--requirepass", "x"]`).
    pub fn start_open(extra: &[&str]) -> RedisServer {
        RedisServer::start_raw(extra.iter().map(|arg| arg.to_string()).collect(), false)
    }

    /// Starts one with TLS only (`--port 0 --tls-port PORT`), with the users, presenting the
    /// test PKI's server certificate; `auth_clients` asks the nodes for a client certificate
    /// signed by the test CA (`--tls-auth-clients yes`).
    pub fn start_tls(auth_clients: bool) -> RedisServer {
        RedisServer::start_tls_with(auth_clients, &[])
    }

    /// [`RedisServer::start_tls`] with more options (`--tls-replication yes`, `--replicaof`).
    pub fn start_tls_with(auth_clients: bool, extra: &[&str]) -> RedisServer {
        let files = super::tls::files();
        let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
        let mut args = user_options();
        args.extend([
            "--tls-cert-file".to_string(),
            path(&files.cert),
            "--tls-key-file".to_string(),
            path(&files.key),
            "--tls-ca-cert-file".to_string(),
            path(&files.ca),
            "--tls-auth-clients".to_string(),
            if auth_clients { "yes" } else { "no" }.to_string(),
        ]);
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cli_args = vec!["--tls".to_string(), "--cacert".to_string(), path(&files.ca)];
        cli_args.extend(["--cert".to_string(), path(&files.client_cert)]);
        cli_args.extend(["--key".to_string(), path(&files.client_key)]);
        cli_args.extend(["-p".to_string(), port.to_string()]);
        let mut server = RedisServer {
            child: None,
            addr,
            extra: args,
            users: true,
            cli_args,
        };
        server.restart();
        server
    }

    fn start_raw(extra: Vec<String>, users: bool) -> RedisServer {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut server = RedisServer {
            child: None,
            addr,
            extra,
            users,
            cli_args: vec!["-p".to_string(), addr.port().to_string()],
        };
        server.restart();
        server
    }

    /// Whether it speaks TLS only.
    fn is_tls(&self) -> bool {
        self.cli_args.first().is_some_and(|arg| arg == "--tls")
    }

    /// The nodes' URL: `redis://a-chat:PASSWORD@ADDR` (`rediss://` for TLS), or
    /// `redis://ADDR` for an open one.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "rediss" } else { "redis" };
        if self.users {
            format!("{scheme}://{NODE_USER}:{NODE_PASSWORD}@{}", self.addr)
        } else {
            format!("{scheme}://{}", self.addr)
        }
    }

    /// Starts it (again) on its port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        let port = self.addr.port().to_string();
        let ports: [&str; 4] = if self.is_tls() {
            ["--port", "0", "--tls-port", &port]
        } else {
            ["--port", &port, "--tls-port", "0"]
        };
        let child = Command::new(redis_server_binary())
            .args(ports)
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
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1"]).args(&self.cli_args);
        if self.users {
            command.args([
                "--user",
                ADMIN_USER,
                "--pass",
                ADMIN_PASSWORD,
                "--no-auth-warning",
            ]);
        }
        let output = command.args(args).stdin(Stdio::null()).output().ok()?;
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

    /// What the ACL refused the nodes' user (commands, keys, channels; not passwords): one
    /// line per entry of `ACL LOG`, empty when the rule was enough.
    pub fn acl_refusals(&self) -> Vec<String> {
        let Some(log) = self.command(&["ACL", "LOG"]) else {
            return Vec::new();
        };
        // redis-cli prints each entry's fields as lines: `count`, N, `reason`, R, ...
        let lines: Vec<&str> = log.lines().map(str::trim).collect();
        let mut refusals = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if *line == "reason" && lines.get(i + 1).is_some_and(|r| *r != "auth") {
                let object = lines[i..]
                    .iter()
                    .position(|l| *l == "object")
                    .and_then(|at| lines.get(i + at + 1))
                    .unwrap_or(&"?");
                refusals.push(format!("{} refused: {object}", lines[i + 1]));
            }
        }
        refusals
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // The rule must be enough for everything a node did (unless the test failed already).
        let refusals = if self.users && self.child.is_some() && !thread::panicking() {
            self.acl_refusals()
        } else {
            Vec::new()
        };
        self.kill();
        assert!(
            refusals.is_empty(),
            "the nodes' ACL rule refused them: {refusals:?} (widen NODE_ACL, the README's rule, \
             only if the node really needs it)"
        );
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

    /// The nodes' URL through the proxy (to a Redis with the users).
    pub fn url(&self) -> String {
        format!("redis://{NODE_USER}:{NODE_PASSWORD}@{}", self.addr)
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
