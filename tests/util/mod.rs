//! Shared helpers for the integration tests: the real server as a child process, and line
//! clients over loopback TCP. Every wait is bounded so that a bug fails a test, not CI.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The `a-chat` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_a-chat")
}

/// A running `a-chat server`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addrs: Vec<SocketAddr>,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `a-chat server --listen 127.0.0.1:0` with `args`.
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_with(args, |_| {})
    }

    /// Starts the server with `args`, letting `setup` change the command first.
    pub fn start_with(args: &[&str], setup: impl FnOnce(&mut Command)) -> ServerProcess {
        let mut command = Command::new(binary());
        command.arg("server");
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        setup(&mut command);
        let mut child = command.spawn().expect("start a-chat server");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err_pipe = child.stderr.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let listeners = args.iter().filter(|a| **a == "--listen").count().max(1);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for _ in 0..listeners {
                match lines.next() {
                    Some(Ok(line)) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
            // Keep reading so that the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut addrs = Vec::new();
        for _ in 0..listeners {
            let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
                panic!("no `listening on` line; stderr: {}", stderr.lock().unwrap())
            });
            let addr = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
            addrs.push(addr.parse().expect("an address"));
        }
        ServerProcess {
            child,
            addrs,
            stderr,
        }
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the server to exit, failing the test after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "server did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the server logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the server's log holds `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < WAIT,
                "log never showed {needle:?}:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A field of `/proc/PID/status` in kB, e.g. `VmRSS` or `VmHWM`.
    pub fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .map(|kb| kb.trim().parse().unwrap())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// User plus system CPU time of the server so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` with a soft and hard open-file limit of `limit`.
pub fn with_nofile_limit(command: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        command.pre_exec(move || {
            let rlim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A line client over loopback TCP.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    /// Connects, sends `name`, and confirms the login by messaging itself.
    pub fn login(addr: SocketAddr, name: &str) -> Client {
        let mut client = Client::connect(addr);
        client.send(&format!("{name}\n"));
        client.send(&format!("{name}: logged in?\n"));
        client.expect(&format!("from {name}: logged in?"));
        client
    }

    pub fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next line, without its `\n`; panics on timeout or end of stream.
    pub fn line(&mut self) -> String {
        self.try_line()
            .unwrap_or_else(|| panic!("connection closed while a line was expected"))
    }

    /// The next line, or `None` at end of stream.
    pub fn try_line(&mut self) -> Option<String> {
        let mut line = Vec::new();
        let n = self
            .reader
            .read_until(b'\n', &mut line)
            .expect("read a line in time");
        if n == 0 {
            return None;
        }
        assert_eq!(
            line.pop(),
            Some(b'\n'),
            "server line without newline: {line:?}"
        );
        Some(String::from_utf8(line).expect("server sent UTF-8"))
    }

    /// Reads the next line and checks it.
    pub fn expect(&mut self, expected: &str) {
        assert_eq!(self.line(), expected);
    }

    /// Checks that the server closes the connection next, with no line before.
    pub fn expect_eof(&mut self) {
        if let Some(line) = self.try_line() {
            panic!("expected end of stream, got {line:?}");
        }
    }

    /// Checks that the next line is `expected` and that the connection then closes.
    pub fn expect_closed_after(&mut self, expected: &str) {
        self.expect(expected);
        self.expect_eof();
    }

    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Closes with a reset (`SO_LINGER` 0) instead of a FIN.
    pub fn reset(self) {
        reset_on_close(&self.stream);
    }
}

/// Makes closing `stream` send a reset instead of a FIN (`SO_LINGER` 0).
pub fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized `linger`.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

/// Retries `attempt` until it returns `Some`, failing after [`WAIT`].
pub fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(start.elapsed() < WAIT, "never happened: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
