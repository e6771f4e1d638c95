//! Shared helpers for the integration tests: the real server as a child process, and line
//! clients over loopback TCP. Every wait is bounded so that a bug fails a test, not CI.
#![allow(dead_code)]

pub mod browser;
pub mod install;
pub mod redis;
pub mod sentinel;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use a_chat::process::{Memory, ProcProbe};
pub use rustix::process::Signal;

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The `a-chat` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_a-chat")
}

/// A running `a-chat server`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// The plain listeners' addresses, in the order of their `listening on` lines.
    pub addrs: Vec<SocketAddr>,
    /// The TLS listeners' addresses.
    pub tls_addrs: Vec<SocketAddr>,
    /// The WebSocket listeners' addresses (`ws`, then `wss`).
    pub ws_addrs: Vec<SocketAddr>,
    pub wss_addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    /// How [`ServerProcess::connect`] and [`ServerProcess::login`] reach it.
    pub net: Net,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `a-chat server --listen 127.0.0.1:0` with `args`.
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::spawn(Command::new(binary()), args)
    }

    /// Starts `a-chat server --listen 127.0.0.1:0` with `args` and these environment
    /// variables set.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(binary());
        command.envs(env.iter().copied());
        Self::spawn(command, args)
    }

    /// Starts the server with `args`, plus a TLS listener with the test certificates when
    /// `net` is TLS.
    pub fn start_over(net: Net, args: &[&str]) -> ServerProcess {
        let mut server = match net {
            Net::Plain => ServerProcess::start(args),
            Net::Tls => ServerProcess::start_with_tls(args),
            Net::Ws => {
                let mut all = args.to_vec();
                all.extend(["--listen-ws", "127.0.0.1:0"]);
                ServerProcess::start(&all)
            }
        };
        server.net = net;
        server
    }

    /// A client connected over the server's `net`.
    pub fn connect(&self) -> Client {
        Client::connect_over(self.net, self.addr_over(self.net))
    }

    /// A client logged in as `name` over the server's `net`.
    pub fn login(&self, name: &str) -> Client {
        Client::login_over(self.net, self.addr_over(self.net), name)
    }

    /// Starts the server with `args` and a TLS listener with the test certificates.
    pub fn start_with_tls(args: &[&str]) -> ServerProcess {
        let files = tls::files();
        Self::start_with_tls_files(args, &files.cert, &files.key)
    }

    /// Starts the server with `args` and a TLS listener serving the PEM files `cert` and `key`.
    pub fn start_with_tls_files(args: &[&str], cert: &Path, key: &Path) -> ServerProcess {
        let mut all = args.to_vec();
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        all.extend([
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ]);
        ServerProcess::start(&all)
    }

    /// The address clients over `net` use.
    pub fn addr_over(&self, net: Net) -> SocketAddr {
        match net {
            Net::Plain => self.addrs[0],
            Net::Tls => self.tls_addrs[0],
            Net::Ws => self.ws_addrs[0],
        }
    }

    /// Starts the server with `args` under a soft and hard open-file limit of `limit`
    /// (through the shell's `ulimit`, which then `exec`s the server: same pid).
    pub fn start_with_nofile(args: &[&str], limit: u64) -> ServerProcess {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
            binary(),
        ]);
        Self::spawn(command, args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> ServerProcess {
        command.arg("server");
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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
        // One line per listener (the plain one added above included), then `metrics on`.
        let count = |flag: &str| args.iter().filter(|a| **a == flag).count();
        let expected = count("--listen").max(1)
            + count("--listen-tls")
            + count("--listen-ws")
            + count("--listen-wss")
            + count("--metrics");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for _ in 0..expected {
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
        let mut server = ServerProcess {
            child,
            addrs: Vec::new(),
            tls_addrs: Vec::new(),
            ws_addrs: Vec::new(),
            wss_addrs: Vec::new(),
            metrics_addr: None,
            net: Net::Plain,
            stderr,
        };
        for _ in 0..expected {
            let line = rx
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no `listening on` line; stderr: {}", server.stderr()));
            let parse = |addr: &str| -> SocketAddr {
                addr.parse()
                    .unwrap_or_else(|_| panic!("not an address in {line:?}"))
            };
            if let Some(addr) = line.strip_prefix("metrics on ") {
                server.metrics_addr = Some(parse(addr));
            } else if let Some(rest) = line.strip_prefix("listening on ") {
                if let Some(addr) = rest.strip_suffix(" (tls)") {
                    server.tls_addrs.push(parse(addr));
                } else if let Some(addr) = rest.strip_suffix(" (ws)") {
                    server.ws_addrs.push(parse(addr));
                } else if let Some(addr) = rest.strip_suffix(" (wss)") {
                    server.wss_addrs.push(parse(addr));
                } else {
                    server.addrs.push(parse(rest));
                }
            } else {
                panic!("unexpected line {line:?} on standard output");
            }
        }
        server
    }

    /// The metrics endpoint's address (the server was started with `--metrics`).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr.expect("started with --metrics")
    }

    /// Scrapes `GET /metrics` of a server started with `--metrics`.
    pub fn scrape(&self) -> Metrics {
        scrape(self.metrics_addr())
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. `Signal::TERM`) to the server.
    pub fn signal(&self, signal: Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("a child's pid");
        rustix::process::kill_process(pid, signal).expect("kill");
    }

    /// Stops the server (SIGSTOP) and waits until it is stopped: what comes to it meanwhile
    /// waits in its sockets (and its listener's backlog), and it reads it, in the order it
    /// came, once continued (`signal(Signal::CONT)`).
    #[allow(dead_code)]
    pub fn pause(&self) {
        self.signal(Signal::STOP);
        eventually("the server is stopped", || {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
            // The state follows the command's name, which ends with `) `.
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            (state == 'T').then_some(())
        });
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

    /// The server's resident memory now, and its peak.
    pub fn memory(&self) -> Memory {
        ProcProbe::process(self.child.id())
            .memory()
            .expect("/proc status of the server")
    }

    /// User plus system CPU time of the server so far.
    pub fn cpu_time(&self) -> Duration {
        ProcProbe::process(self.child.id())
            .cpu_time()
            .expect("/proc stat of the server")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plain TCP, TLS, or a WebSocket (`ws://`): how a test's clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Plain,
    Tls,
    Ws,
}

/// A line client over loopback TCP, plain, TLS or WebSocket.
pub struct Client {
    /// The socket (a plain-only test may write to it, shut it or reset it itself).
    pub stream: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    /// Over a WebSocket: tungstenite's client over a clone of `stream`; each line sent is one
    /// text message, each text message received one line.
    pub ws: Option<Box<tungstenite::WebSocket<TcpStream>>>,
    /// Over a WebSocket: bytes sent after the last `\n`, waiting for the rest of their line.
    ws_unsent: Vec<u8>,
    /// Over a WebSocket: the close code the server's close frame carried.
    pub ws_close: Option<u16>,
    /// Bytes read and not yet handed out as lines.
    pending: Vec<u8>,
    /// Over TLS, the end of stream came after `close_notify`.
    clean_close: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect_timeout(&addr, WAIT).expect("connect"))
    }

    /// Connects with TLS, trusting the test CA; the handshake happens with the first IO.
    pub fn connect_tls(addr: SocketAddr) -> Client {
        Client::connect_tls_trusting(addr, tls::client_config(false))
    }

    /// Connects with TLS, trusting what `config` trusts.
    pub fn connect_tls_trusting(
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> Client {
        let mut client = Client::connect(addr);
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        client.tls = Some(Box::new(
            rustls::ClientConnection::new(config, name).expect("a TLS session"),
        ));
        client
    }

    /// Connects over `net`.
    pub fn connect_over(net: Net, addr: SocketAddr) -> Client {
        match net {
            Net::Plain => Client::connect(addr),
            Net::Tls => Client::connect_tls(addr),
            Net::Ws => Client::connect_ws(addr),
        }
    }

    /// Connects and upgrades to a WebSocket at `ws://ADDR/chat`.
    pub fn connect_ws(addr: SocketAddr) -> Client {
        Client::connect_ws_with(addr, |request| request)
    }

    /// [`Client::connect_ws`], with the request changed by `edit` (an `Origin` header added).
    pub fn connect_ws_with(
        addr: SocketAddr,
        edit: impl FnOnce(
            tungstenite::handshake::client::Request,
        ) -> tungstenite::handshake::client::Request,
    ) -> Client {
        Client::connect(addr)
            .upgrade_ws(edit)
            .expect("a WebSocket upgrade")
    }

    /// Upgrades this plain client to a WebSocket at `/chat`, with the request changed by
    /// `edit`; the server's refusal as an error.
    pub fn upgrade_ws(
        mut self,
        edit: impl FnOnce(
            tungstenite::handshake::client::Request,
        ) -> tungstenite::handshake::client::Request,
    ) -> Result<Client, String> {
        let addr = self.stream.peer_addr().unwrap();
        let request = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/chat"
        ))
        .unwrap();
        let socket = self.stream.try_clone().unwrap();
        match tungstenite::client::client(edit(request), socket) {
            Ok((ws, _)) => {
                self.ws = Some(Box::new(ws));
                Ok(self)
            }
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                Err(format!("HTTP {}", response.status().as_u16()))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Over a WebSocket, the next message of any kind (pongs and closes included).
    pub fn ws_message(&mut self) -> tungstenite::Message {
        self.ws
            .as_mut()
            .expect("a WebSocket client")
            .read()
            .expect("a WebSocket message in time")
    }

    /// Connects with a receive buffer of about `bytes` (set before the connect, so that the
    /// window the server sees is small): a peer that does not read holds little in the kernel.
    pub fn connect_with_receive_buffer(addr: SocketAddr, bytes: usize) -> Client {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with, sockopt};
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        // Close-on-exec, as std's sockets are: a server spawned meanwhile by another test must
        // not inherit it (one started under a small open-file limit would run out).
        let fd =
            socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None).expect("socket");
        sockopt::set_socket_recv_buffer_size(&fd, bytes).expect("SO_RCVBUF");
        connect(&fd, &addr).expect("connect");
        Client::over(TcpStream::from(fd))
    }

    /// A plain client over a connected stream.
    pub fn over(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            tls: None,
            ws: None,
            ws_unsent: Vec::new(),
            ws_close: None,
            pending: Vec::new(),
            clean_close: false,
        }
    }

    /// Connects, sends `name`, and confirms the login by messaging itself.
    pub fn login(addr: SocketAddr, name: &str) -> Client {
        Client::login_over(Net::Plain, addr, name)
    }

    /// [`Client::login`] over `net`.
    pub fn login_over(net: Net, addr: SocketAddr, name: &str) -> Client {
        let mut client = Client::connect_over(net, addr);
        client.send(&format!("{name}\n"));
        client.send(&format!("{name}: logged in?\n"));
        client.expect(&format!("from {name}: logged in?"));
        client
    }

    pub fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        if let Some(ws) = &mut self.ws {
            // Each whole line one text message without its `\n`, as a browser sends them;
            // the rest waits for its `\n`.
            self.ws_unsent.extend_from_slice(bytes);
            while let Some(end) = self.ws_unsent.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.ws_unsent.drain(..=end).collect();
                line.pop();
                let message = match String::from_utf8(line) {
                    Ok(text) => tungstenite::Message::text(text),
                    // Not UTF-8: a text frame all the same, as the contract's rule 2.4 is tested.
                    Err(e) => {
                        tungstenite::Message::Frame(tungstenite::protocol::frame::Frame::message(
                            e.into_bytes(),
                            tungstenite::protocol::frame::coding::OpCode::Data(
                                tungstenite::protocol::frame::coding::Data::Text,
                            ),
                            true,
                        ))
                    }
                };
                ws.write(message).expect("send over a WebSocket");
            }
            ws.flush().expect("send over a WebSocket");
            return;
        }
        match &mut self.tls {
            None => self.stream.write_all(bytes).expect("send"),
            Some(tls) => {
                let mut stream = rustls::Stream::new(tls.as_mut(), &mut self.stream);
                stream.write_all(bytes).expect("send over TLS");
                stream.flush().expect("send over TLS");
            }
        }
    }

    /// Reads what arrives next into `pending`; `Ok(0)` at end of stream.
    fn read_more(&mut self) -> std::io::Result<usize> {
        if let Some(ws) = &mut self.ws {
            use tungstenite::{Error, Message};
            loop {
                return match ws.read() {
                    Ok(Message::Text(text)) => {
                        self.pending.extend_from_slice(text.as_bytes());
                        self.pending.push(b'\n');
                        Ok(text.len() + 1)
                    }
                    Ok(Message::Close(frame)) => {
                        self.ws_close = frame.map(|frame| u16::from(frame.code));
                        continue;
                    }
                    Ok(_) => continue,
                    Err(Error::ConnectionClosed | Error::AlreadyClosed) => Ok(0),
                    Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                    Err(Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    )) => Ok(0),
                    Err(Error::Io(e)) => Err(e),
                    Err(e) => Err(std::io::Error::other(e)),
                };
            }
        }
        let mut buf = [0; 8192];
        let n = match &mut self.tls {
            None => self.stream.read(&mut buf)?,
            Some(tls) => match rustls::Stream::new(tls.as_mut(), &mut self.stream).read(&mut buf) {
                // Closed without close_notify: the end all the same.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Ok(0) => {
                    self.clean_close = true;
                    0
                }
                other => other?,
            },
        };
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// The next line, without its `\n`; panics on timeout or end of stream.
    pub fn line(&mut self) -> String {
        self.try_line()
            .unwrap_or_else(|| panic!("connection closed while a line was expected"))
    }

    /// The next line, or `None` at end of stream.
    pub fn try_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                return Some(String::from_utf8(line).expect("server sent UTF-8"));
            }
            if self.read_more().expect("read a line in time") == 0 {
                assert!(
                    self.pending.is_empty(),
                    "server line without newline: {:?}",
                    self.pending
                );
                return None;
            }
        }
    }

    /// The next line if one comes within `timeout`; `None` if none does, or at end of stream
    /// (plain TCP only: a TLS record cut by the timeout would be lost).
    pub fn line_within(&mut self, timeout: Duration) -> Option<String> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let line = loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                break Some(String::from_utf8(line).expect("server sent UTF-8"));
            }
            match self.read_more() {
                Ok(0) => break None,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break None;
                }
                Err(e) => panic!("read: {e}"),
            }
        };
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
        line
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

    /// The TLS session, for a test that drives it by hand.
    pub fn tls_session(&mut self) -> Option<&mut rustls::ClientConnection> {
        self.tls.as_deref_mut()
    }

    /// The TLS session over the socket, as a blocking stream (a TLS client only).
    pub fn tls_stream(&mut self) -> rustls::Stream<'_, rustls::ClientConnection, TcpStream> {
        let tls = self.tls.as_deref_mut().expect("a TLS client");
        rustls::Stream::new(tls, &mut self.stream)
    }

    /// Over TLS, whether the server's end came with `close_notify` (after end of stream).
    pub fn closed_with_close_notify(&self) -> bool {
        self.clean_close
    }

    /// Shuts the write side (after `close_notify` over TLS).
    pub fn shutdown_write(&mut self) {
        if let Some(ws) = &mut self.ws {
            // The close handshake's first half: the server's input ends.
            ws.close(None).expect("a close frame");
            let _ = ws.flush();
            return;
        }
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            while tls.wants_write() {
                tls.write_tls(&mut self.stream).expect("close_notify");
            }
        }
        self.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Closes with a reset (`SO_LINGER` 0) instead of a FIN.
    pub fn reset(self) {
        reset_on_close(&self.stream);
    }
}

/// Makes closing `stream` send a reset instead of a FIN (`SO_LINGER` 0).
pub fn reset_on_close(stream: &TcpStream) {
    rustix::net::sockopt::set_socket_linger(stream, Some(Duration::ZERO))
        .expect("setsockopt(SO_LINGER)");
}

/// A scrape of a metrics endpoint, parsed by a real parser of the Prometheus text format.
pub struct Metrics {
    pub scrape: prometheus_parse::Scrape,
    /// The body as sent.
    pub text: String,
}

impl Metrics {
    /// The value of the sample `name` whose labels include `labels`; panics if there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{}", self.text))
    }

    /// The value of the sample `name` whose labels include `labels`, if there is one.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        use prometheus_parse::Value;
        let sample = self.scrape.samples.iter().find(|sample| {
            sample.metric == name
                && labels
                    .iter()
                    .all(|(label, value)| sample.labels.get(label) == Some(*value))
        })?;
        match sample.value {
            Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => Some(x),
            _ => None,
        }
    }
}

/// One `GET /metrics` over a fresh TCP connection; checks the status line and that every line
/// of the body is a comment or a sample the parser took.
pub fn scrape(addr: SocketAddr) -> Metrics {
    let (head, body) = http_get(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let lines = body.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a Prometheus text exposition");
    let samples = body.lines().filter(|line| !line.starts_with('#')).count();
    assert_eq!(scrape.samples.len(), samples, "every sample line parses");
    Metrics { scrape, text: body }
}

/// Sends `request` and reads the whole response until the server closes; returns the head and
/// the body (checked against `Content-Length`).
pub fn http_get(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to metrics");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("a response, then end of stream");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {response:?}"));
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), length, "body length");
    (head.to_string() + "\r\n", body.to_string())
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
