//! A real Redis Sentinel setup per test: one master, one replica (`--replicaof`) and three
//! sentinels (`redis-server SENTINEL.conf --sentinel`, their config files written into a
//! directory of the test's own), each on a free loopback port with persistence off, and short
//! timeouts so that failovers are quick. Failovers are forced both ways: `SENTINEL FAILOVER`,
//! and SIGKILL of the master. [`SentinelSetup::start_tls`] makes the same setup speak TLS only
//! (`--port 0 --tls-port P`, the test PKI of `tls.rs`): clients, replication and the sentinels'
//! own links.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::redis::{
    ADMIN_PASSWORD, ADMIN_USER, NODE_PASSWORD, NODE_USER, RedisServer, free_port,
    redis_server_binary,
};
use super::{WAIT, eventually};

/// The name the sentinels monitor the master under.
pub const MASTER: &str = "chat";

/// How long a master may not answer before a sentinel thinks it down.
const DOWN_AFTER_MS: u32 = 1000;

/// The sentinels' failover timeout (a new failover of the same master waits twice this).
const FAILOVER_TIMEOUT_MS: u32 = 3000;

/// The master, its replica and three sentinels; every process killed, and the directory
/// removed, when dropped.
pub struct SentinelSetup {
    /// The two Redis servers; which one is the master changes with each failover.
    pub servers: [RedisServer; 2],
    pub sentinels: Vec<Sentinel>,
    dir: PathBuf,
    /// Everything speaks TLS only.
    tls: bool,
}

/// One `redis-server --sentinel`.
pub struct Sentinel {
    child: Child,
    pub addr: SocketAddr,
    /// It listens on a TLS port only.
    tls: bool,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SentinelSetup {
    /// Starts the five processes and waits (bounded) until every sentinel sees the master, the
    /// replica in sync, and the two other sentinels.
    pub fn start() -> SentinelSetup {
        SentinelSetup::start_mode(false)
    }

    /// [`SentinelSetup::start`] over TLS only: the servers and the sentinels on TLS ports,
    /// replication and the sentinels' links over TLS, their certificate the test PKI's (for
    /// `localhost` and 127.0.0.1, signed by its CA); no client certificate asked for.
    pub fn start_tls() -> SentinelSetup {
        SentinelSetup::start_mode(true)
    }

    fn start_mode(tls: bool) -> SentinelSetup {
        static SETUPS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "a-chat-sentinel-{}-{}",
            std::process::id(),
            SETUPS.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the sentinels' config files");
        // A replica syncs at once (the master does not wait 5 s for more replicas to come),
        // and loads what it is sent without writing it to disk (a dump.rdb in the working
        // directory would be loaded by every later redis-server of the tests); any file goes
        // to the test's directory all the same.
        let dir_arg = dir.display().to_string();
        let quick = [
            "--repl-diskless-sync-delay",
            "0",
            "--repl-diskless-load",
            "swapdb",
            "--dir",
            &dir_arg,
        ];
        // Redis as it is deployed (`redis.rs`): the default user off, the nodes under the
        // README's rule; the replica and the sentinels log in as the tests' admin.
        let admin = [
            &quick[..],
            &["--masteruser", ADMIN_USER, "--masterauth", ADMIN_PASSWORD],
        ]
        .concat();
        let start = |args: &[&str]| {
            if tls {
                RedisServer::start_tls_with(false, &[args, &["--tls-replication", "yes"]].concat())
            } else {
                RedisServer::start_with(args)
            }
        };
        let master = start(&admin);
        let port = master.addr.port().to_string();
        let replica = start(&[&admin[..], &["--replicaof", "127.0.0.1", &port]].concat());
        let sentinels = (0..3)
            .map(|i| Sentinel::start(&dir, i, master.addr, tls))
            .collect();
        let setup = SentinelSetup {
            servers: [master, replica],
            sentinels,
            dir,
            tls,
        };
        setup.wait_ready();
        setup
    }

    /// `redis-sentinel://USER:PASSWORD@H:P,H:P,H:P/MASTER` (`rediss-sentinel://` over TLS),
    /// the nodes' user and password.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self.sentinels.iter().map(|s| s.addr.to_string()).collect();
        let scheme = if self.tls {
            "rediss-sentinel"
        } else {
            "redis-sentinel"
        };
        format!(
            "{scheme}://{NODE_USER}:{NODE_PASSWORD}@{}/{MASTER}",
            addrs.join(",")
        )
    }

    /// The master the first sentinel that answers names now.
    pub fn master_addr(&self) -> SocketAddr {
        eventually("a sentinel names the master", || {
            self.sentinels.iter().find_map(Sentinel::master_addr)
        })
    }

    /// The server that is the master now (as the sentinels say).
    pub fn master(&mut self) -> &mut RedisServer {
        let addr = self.master_addr();
        self.servers
            .iter_mut()
            .find(|server| server.addr == addr)
            .expect("the master is one of the two servers")
    }

    /// Waits until every sentinel sees the master of [`SentinelSetup::master_addr`] up, a
    /// replica of it in sync, and the two other sentinels, so that a failover can happen.
    pub fn wait_ready(&self) {
        let master = self.master_addr();
        eventually(
            "the sentinels see the master, its replica and each other",
            || {
                let replica = self.servers.iter().find(|server| server.addr != master)?;
                // The replica's own word (the sentinels ask it only every 10 s).
                let info = replica.command(&["INFO", "replication"])?;
                let synced = info.contains("master_link_status:up")
                    && info.contains(&format!("master_port:{}", master.port()));
                (synced
                    && self
                        .sentinels
                        .iter()
                        .all(|sentinel| sentinel.is_ready(master)))
                .then_some(())
            },
        );
    }

    /// Forces a failover with `SENTINEL FAILOVER` (after waiting until one can happen) and
    /// waits until every sentinel names the new master. Returns it and when the first sentinel
    /// was seen naming it (the switch, to within a poll).
    pub fn failover(&self) -> (SocketAddr, Instant) {
        self.wait_ready();
        let old = self.master_addr();
        eventually("a sentinel accepts SENTINEL FAILOVER", || {
            // `INPROG` or `NOGOODSLAVE` while the last failover's timeout has not passed.
            let answer = self.sentinels[0].cli(&["SENTINEL", "FAILOVER", MASTER])?;
            (answer == "OK").then_some(())
        });
        self.wait_switch(old)
    }

    /// SIGKILLs the master and waits until every sentinel names the new one. Returns it and
    /// when the first sentinel was seen naming it.
    pub fn kill_master(&mut self) -> (SocketAddr, Instant) {
        self.wait_ready();
        let old = self.master_addr();
        self.master().kill();
        self.wait_switch(old)
    }

    /// Waits until a sentinel names another master than `old`, then until all do; returns
    /// the new master and when the first sentinel was seen naming it.
    fn wait_switch(&self, old: SocketAddr) -> (SocketAddr, Instant) {
        let start = Instant::now();
        let (new, at) = loop {
            if let Some(new) = self
                .sentinels
                .iter()
                .filter_map(Sentinel::master_addr)
                .find(|&addr| addr != old)
            {
                break (new, Instant::now());
            }
            assert!(
                start.elapsed() < WAIT,
                "the sentinels never switched from {old}"
            );
            thread::sleep(Duration::from_millis(5));
        };
        eventually("every sentinel names the new master", || {
            self.sentinels
                .iter()
                .all(|s| s.master_addr() == Some(new))
                .then_some(())
        });
        (new, at)
    }

    /// Starts the killed server again, empty (it comes back as a master on its own, and the
    /// sentinels turn it into a replica of the new master), and waits until a failover can
    /// happen again.
    pub fn restart_killed(&mut self) {
        let master = self.master_addr();
        let killed = self
            .servers
            .iter_mut()
            .find(|server| server.addr != master)
            .expect("the other server");
        killed.restart();
        self.wait_ready();
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        self.sentinels.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sentinel {
    /// Starts sentinel `index` on a free port, its config file in `dir`, monitoring `master`
    /// (over TLS only with `tls`: its port a TLS port, its links to the servers and the other
    /// sentinels TLS).
    fn start(dir: &std::path::Path, index: usize, master: SocketAddr, tls: bool) -> Sentinel {
        let port = free_port();
        let config = dir.join(format!("sentinel-{index}.conf"));
        let ports = if tls {
            let files = super::tls::files();
            format!(
                "port 0\n\
                 tls-port {port}\n\
                 tls-cert-file {}\n\
                 tls-key-file {}\n\
                 tls-ca-cert-file {}\n\
                 tls-auth-clients no\n\
                 tls-replication yes\n",
                files.cert.display(),
                files.key.display(),
                files.ca.display()
            )
        } else {
            format!("port {port}\n")
        };
        std::fs::write(
            &config,
            format!(
                "{ports}\
                 bind 127.0.0.1\n\
                 daemonize no\n\
                 dir {dir}\n\
                 loglevel warning\n\
                 sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
                 sentinel auth-user {MASTER} {ADMIN_USER}\n\
                 sentinel auth-pass {MASTER} {ADMIN_PASSWORD}\n\
                 sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir = dir.display(),
                master_port = master.port(),
            ),
        )
        .expect("write a sentinel's config file");
        let child = Command::new(redis_server_binary())
            .arg(&config)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let sentinel = Sentinel {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tls,
        };
        eventually("the sentinel answers", || {
            (sentinel.cli(&["PING"])? == "PONG").then_some(())
        });
        sentinel
    }

    /// The master this sentinel names now (`SENTINEL get-master-addr-by-name`).
    pub fn master_addr(&self) -> Option<SocketAddr> {
        let answer = self.cli(&["SENTINEL", "get-master-addr-by-name", MASTER])?;
        let mut lines = answer.lines();
        let host = lines.next()?;
        let port = lines.next()?;
        format!("{host}:{port}").parse().ok()
    }

    /// Whether this sentinel sees `master` up, a replica of it up, and two other sentinels:
    /// quorum and authorization can be reached.
    fn is_ready(&self, master: SocketAddr) -> bool {
        let quorum = self.cli(&["SENTINEL", "CKQUORUM", MASTER]);
        if !quorum.is_some_and(|answer| answer.starts_with("OK 3 usable")) {
            return false;
        }
        if self.master_addr() != Some(master) {
            return false;
        }
        let Some(replicas) = self.cli(&["SENTINEL", "REPLICAS", MASTER]) else {
            return false;
        };
        // redis-cli prints each replica's fields as name and value lines.
        let fields: Vec<&str> = replicas.lines().collect();
        let value = |name: &str| {
            fields
                .windows(2)
                .find(|pair| pair[0] == name)
                .map(|pair| pair[1])
        };
        value("flags") == Some("slave")
    }

    /// Runs one command with `redis-cli` against this sentinel and returns its output, trimmed;
    /// `None` if it fails or cannot connect.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        cli(self.addr, self.tls, args)
    }
}

/// Runs one command with `redis-cli` against `addr` (over TLS, trusting the test CA, with
/// `tls`) and returns its output, trimmed; `None` if it fails or cannot connect.
fn cli(addr: SocketAddr, tls: bool, args: &[&str]) -> Option<String> {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &addr.port().to_string()]);
    if tls {
        command.args(["--tls", "--cacert"]);
        command.arg(&super::tls::files().ca);
    }
    let output = command.args(args).stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
}
