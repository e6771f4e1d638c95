//! A host program that owns a `mio::Poll` and runs an a-chat server beside services of its own:
//! a UDP echo and a periodic timer. Ctrl-C or SIGTERM starts the chat server's graceful
//! shutdown (signals are the host's business, not the library's); a second one forces it.
//!
//! ```text
//! cargo run --example embedded -- [CHAT_ADDR] [UDP_ADDR]
//! ```
//!
//! `tests/embedded.rs` runs this same `Host`, stopped through a `mio::Waker` instead of a signal.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use a_chat::io_errors::{interrupted, would_block};
use a_chat::{Config, Server, Tokens};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

/// The host's own tokens: everything below the chat server's share.
pub const UDP: Token = Token(0);
/// The token of the host's stop source (a `Signals`, or a `Waker` in tests).
pub const STOP: Token = Token(1);
/// The share lent to the chat server.
pub const CHAT: Tokens = Tokens {
    first: Token(1000),
    count: 100_000,
};

/// One `Poll`, three services: the chat server, a UDP echo and a timer.
pub struct Host {
    pub poll: Poll,
    pub chat: Server,
    udp: UdpSocket,
    tick: Duration,
    next_tick: Instant,
    /// How many times the timer fired (shared, so that another thread may watch it).
    pub ticks: Arc<AtomicU64>,
    /// How many datagrams were echoed.
    pub echoed: u64,
}

impl Host {
    /// Binds the chat server and the UDP echo and registers them; the timer fires every `tick`.
    pub fn new(chat_addr: SocketAddr, udp_addr: SocketAddr, tick: Duration) -> io::Result<Host> {
        let poll = Poll::new()?;
        let config = Config {
            max_conns: 90_000,
            ..Config::default()
        };
        let mut chat = Server::bind(config, &[chat_addr], CHAT)?;
        chat.register(poll.registry())?;
        let mut udp = UdpSocket::bind(udp_addr)?;
        poll.registry()
            .register(&mut udp, UDP, Interest::READABLE)?;
        Ok(Host {
            poll,
            chat,
            udp,
            tick,
            next_tick: Instant::now() + tick,
            ticks: Arc::default(),
            echoed: 0,
        })
    }

    pub fn chat_addr(&self) -> SocketAddr {
        self.chat.local_addrs()[0]
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp.local_addr().expect("bound")
    }

    /// Runs until the chat server's shutdown is over. For each event on [`STOP`], `stops` says
    /// how many stop requests it brought: the first begins the graceful shutdown, the next
    /// forces it.
    pub fn run(&mut self, mut stops: impl FnMut() -> usize) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        while !self.chat.is_finished() {
            // Sleep until the next event, the host's tick or the chat server's next timer.
            let until_tick = self.next_tick.saturating_duration_since(Instant::now());
            let timeout = self
                .chat
                .timeout()
                .map_or(until_tick, |t| t.min(until_tick));
            match self.poll.poll(&mut events, Some(timeout)) {
                Err(e) if interrupted(&e) => continue,
                other => other?,
            }
            let registry = self.poll.registry();
            // After every poll, events or not: the chat server takes its own events and runs
            // its timers.
            self.chat.handle_events(registry, &events);
            for event in events.iter().filter(|e| !CHAT.contains(e.token())) {
                match event.token() {
                    UDP => self.echoed += echo(&self.udp)?,
                    STOP => {
                        for _ in 0..stops() {
                            if self.chat.is_shutting_down() {
                                self.chat.force_shutdown(registry);
                            } else {
                                self.chat.begin_shutdown(registry);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if Instant::now() >= self.next_tick {
                self.ticks.fetch_add(1, Ordering::Relaxed);
                self.next_tick += self.tick;
            }
        }
        Ok(())
    }
}

/// Sends every waiting datagram back to where it came from; returns how many.
fn echo(udp: &UdpSocket) -> io::Result<u64> {
    let mut buf = [0; 2048];
    let mut echoed = 0;
    loop {
        match udp.recv_from(&mut buf) {
            Ok((n, from)) => {
                // A datagram that cannot be sent now is dropped, as UDP allows.
                if udp.send_to(&buf[..n], from).is_ok() {
                    echoed += 1;
                }
            }
            Err(e) if would_block(&e) => return Ok(echoed),
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

fn main() -> io::Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let parse = |arg: Option<String>, default: &str| {
        arg.as_deref()
            .unwrap_or(default)
            .parse::<SocketAddr>()
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))
    };
    let chat_addr = parse(args.next(), "127.0.0.1:8080")?;
    let udp_addr = parse(args.next(), "127.0.0.1:8081")?;
    let mut host = Host::new(chat_addr, udp_addr, Duration::from_secs(1))?;

    let mut signals = signal_hook_mio::v1_0::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    host.poll
        .registry()
        .register(&mut signals, STOP, Interest::READABLE)?;
    println!(
        "chat on {}, UDP echo on {}",
        host.chat_addr(),
        host.udp_addr()
    );

    host.run(|| signals.pending().count())?;
    let stats = host.chat.stats();
    println!(
        "done: {} messages routed, {} datagrams echoed, {} ticks, {} bytes unsent",
        stats.messages_routed,
        host.echoed,
        host.ticks.load(Ordering::Relaxed),
        stats.bytes_unsent_at_shutdown
    );
    Ok(if stats.bytes_unsent_at_shutdown == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
