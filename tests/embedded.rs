//! The embedding API as a host uses it: the example's host (chat server, UDP echo and timer on
//! one `Poll`), several chat servers on one `Poll`, a host that outlives its chat servers, and
//! a host that forgets to call `handle_events` after a timeout.

mod util;

#[path = "../examples/embedded.rs"]
#[allow(dead_code)]
mod embedded;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use a_chat::{Config, Server, Stats, Tokens};
use log::{Log, Metadata, Record};
use mio::net::UdpSocket as MioUdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use util::{Client, WAIT, eventually};

// ---------------------------------------------------------------------------------------------
// A logger that keeps every record with the thread that logged it, so that a test can count
// what its own host thread logged while the other tests run beside it.

static LOGGED: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

struct KeepingLogger;

impl Log for KeepingLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        LOGGED.lock().unwrap().push((thread::current().id(), line));
    }

    fn flush(&self) {}
}

fn keep_logs() {
    static LOGGER: KeepingLogger = KeepingLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

fn logged_by(thread: ThreadId) -> Vec<String> {
    let logged = LOGGED.lock().unwrap();
    logged
        .iter()
        .filter(|(id, _)| *id == thread)
        .map(|(_, line)| line.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A host of several chat servers and a UDP echo on one `Poll`, run by commands from the test.

const STOP: Token = Token(0);
const UDP: Token = Token(1);

#[derive(Debug)]
enum Command {
    BeginShutdown(usize),
    ForceShutdown(usize),
    Exit,
}

struct TestHost {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
    /// Loop turns so far: one per poll.
    turns: Arc<AtomicU64>,
    /// Per server, whether it is finished, and its counters, as of the last turn.
    seen: Arc<Mutex<Vec<(bool, Stats)>>>,
    chat_addrs: Vec<SocketAddr>,
    udp_addr: SocketAddr,
    thread: thread::JoinHandle<Vec<Stats>>,
}

impl TestHost {
    /// `servers` chat servers, each with 100 tokens from 100 on, and a UDP echo. The host
    /// sleeps for as long as its servers let it: it has no timer of its own.
    fn start(servers: usize) -> TestHost {
        let (ready, started) = mpsc::channel();
        let (commands, inbox) = mpsc::channel();
        let turns = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (turns_seen, host_seen) = (turns.clone(), seen.clone());
        let thread = thread::spawn(move || {
            let mut poll = Poll::new().unwrap();
            let waker = Arc::new(Waker::new(poll.registry(), STOP).unwrap());
            let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let mut udp = MioUdpSocket::bind(any).unwrap();
            poll.registry()
                .register(&mut udp, UDP, Interest::READABLE)
                .unwrap();
            let config = Config {
                max_conns: 50,
                // Room for everything a test queues: nobody is evicted as a slow consumer.
                max_queue: 64 << 20,
                ..Config::default()
            };
            let mut chats: Vec<Server> = (0..servers)
                .map(|i| {
                    let tokens = Tokens {
                        first: Token(100 * (i + 1)),
                        count: 100,
                    };
                    Server::bind(config.clone(), &[any], tokens).unwrap()
                })
                .collect();
            for chat in &mut chats {
                chat.register(poll.registry()).unwrap();
            }
            let addrs = chats.iter().map(|chat| chat.local_addrs()[0]).collect();
            ready
                .send((addrs, udp.local_addr().unwrap(), waker))
                .unwrap();
            let mut events = Events::with_capacity(64);
            loop {
                let timeout = chats.iter().filter_map(Server::timeout).min();
                poll.poll(&mut events, timeout).unwrap();
                turns_seen.fetch_add(1, Ordering::Relaxed);
                for chat in &mut chats {
                    chat.handle_events(poll.registry(), &events);
                }
                for event in events.iter() {
                    let owners = chats
                        .iter()
                        .filter(|chat| chat.tokens().contains(event.token()))
                        .count();
                    let host = usize::from(event.token() == STOP || event.token() == UDP);
                    assert_eq!(owners + host, 1, "one owner for {:?}", event.token());
                }
                if events.iter().any(|event| event.token() == UDP) {
                    echo(&udp);
                }
                if events.iter().any(|event| event.token() == STOP) {
                    for command in inbox.try_iter() {
                        match command {
                            Command::BeginShutdown(i) => chats[i].begin_shutdown(poll.registry()),
                            Command::ForceShutdown(i) => chats[i].force_shutdown(poll.registry()),
                            Command::Exit => return chats.iter().map(Server::stats).collect(),
                        }
                    }
                }
                *host_seen.lock().unwrap() = chats
                    .iter()
                    .map(|chat| (chat.is_finished(), chat.stats()))
                    .collect();
            }
        });
        let (chat_addrs, udp_addr, waker) = started.recv_timeout(WAIT).unwrap();
        TestHost {
            commands,
            waker,
            turns,
            seen,
            chat_addrs,
            udp_addr,
            thread,
        }
    }

    fn send(&self, command: Command) {
        self.commands.send(command).unwrap();
        self.waker.wake().unwrap();
    }

    fn wait_finished(&self, server: usize) {
        self.wait_for(server, "finished", |finished, _| finished);
    }

    /// Waits until the host's last turn left `server` in a state that `check` accepts.
    fn wait_for(&self, server: usize, what: &str, check: impl Fn(bool, &Stats) -> bool) {
        eventually(what, || {
            let seen = self.seen.lock().unwrap();
            let (finished, stats) = seen.get(server)?;
            check(*finished, stats).then_some(())
        });
    }

    /// Loop turns over one idle second (nothing sent to the host meanwhile).
    fn turns_over_an_idle_second(&self) -> u64 {
        let before = self.turns.load(Ordering::Relaxed);
        thread::sleep(Duration::from_secs(1));
        self.turns.load(Ordering::Relaxed) - before
    }

    fn exit(self) -> Vec<Stats> {
        self.send(Command::Exit);
        self.thread.join().unwrap()
    }
}

fn echo(udp: &MioUdpSocket) {
    let mut buf = [0; 2048];
    while let Ok((n, from)) = udp.recv_from(&mut buf) {
        let _ = udp.send_to(&buf[..n], from);
    }
}

fn udp_echo_works(addr: SocketAddr, text: &str) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // UDP may drop: a few tries, each bounded.
    for _ in 0..50 {
        socket.send_to(text.as_bytes(), addr).unwrap();
        let mut buf = [0; 100];
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            assert_eq!(&buf[..n], text.as_bytes());
            return;
        }
    }
    panic!("no UDP echo from {addr}");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn example_host_runs_chat_udp_and_timer_on_one_poll_and_shutdown_delivers() {
    let (ready, started) = mpsc::channel();
    let host_thread = thread::spawn(move || {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut host = embedded::Host::new(any, any, Duration::from_millis(10)).unwrap();
        let waker = Arc::new(Waker::new(host.poll.registry(), embedded::STOP).unwrap());
        ready
            .send((host.chat_addr(), host.udp_addr(), waker, host.ticks.clone()))
            .unwrap();
        host.run(|| 1).unwrap();
        (host.chat.stats(), host.echoed)
    });
    let (chat_addr, udp_addr, waker, ticks) = started.recv_timeout(WAIT).unwrap();

    udp_echo_works(udp_addr, "before");
    let mut reader = Client::login(chat_addr, "reader");
    let mut sender = Client::login(chat_addr, "sender");
    let mut script = String::new();
    for i in 0..20_000 {
        script.push_str(&format!("reader: {i}\n"));
    }
    script.push_str("sender: queued\n");
    sender.send(&script);
    sender.expect("from sender: queued");
    // All three at once: the echo answers and the timer ticks while 20,000 messages wait.
    udp_echo_works(udp_addr, "during");
    eventually("the host's timer ticks", || {
        (ticks.load(Ordering::Relaxed) >= 1).then_some(())
    });

    waker.wake().unwrap();
    for i in 0..20_000 {
        reader.expect(&format!("from sender: {i}"));
    }
    reader.expect_eof();
    sender.expect_eof();
    drop((reader, sender));
    let (stats, echoed): (Stats, u64) = host_thread.join().unwrap();
    assert_eq!(stats.bytes_unsent_at_shutdown, 0);
    assert_eq!(stats.messages_routed, 20_003);
    assert!(echoed >= 2);
}

#[test]
fn two_servers_share_a_poll_and_one_keeps_serving_after_the_other_is_shut_down() {
    let host = TestHost::start(2);
    // The same name on both servers: they are separate chats.
    let mut one = Client::login(host.chat_addrs[0], "alice");
    let mut two = Client::login(host.chat_addrs[1], "alice");
    let mut bob = Client::login(host.chat_addrs[1], "bob");
    one.send("bob: only on server two\n");
    one.expect("error: no such peer: bob");
    two.send("bob: from server two\n");
    bob.expect("from alice: from server two");

    host.send(Command::BeginShutdown(0));
    one.expect_eof();
    drop(one);
    host.wait_finished(0);
    // The other server serves on, and the loop sleeps while nobody talks.
    two.send("bob: still here\n");
    bob.expect("from alice: still here");
    let turns = host.turns_over_an_idle_second();
    assert!(turns <= 3, "{turns} loop turns in an idle second");
    bob.send("alice: and now?\n");
    two.expect("from bob: and now?");

    drop((two, bob));
    let stats = host.exit();
    assert_eq!(stats[0].messages_routed, 1);
    assert_eq!(stats[1].messages_routed, 5);
}

#[test]
fn a_finished_server_is_inert_after_a_graceful_and_after_a_forced_shutdown() {
    keep_logs();
    let host = TestHost::start(2);
    let host_thread = host.thread.thread().id();

    // Server 0: graceful. Its peer reads everything and closes.
    let mut alice = Client::login(host.chat_addrs[0], "alice");
    host.send(Command::BeginShutdown(0));
    alice.expect_eof();
    drop(alice);
    host.wait_finished(0);

    // Server 1: forced, with a peer that reads nothing and a message stuck for it.
    let mut stuck = Client::login(host.chat_addrs[1], "stuck");
    stuck.send(&format!("stuck: {}\n", "x".repeat(4000)).repeat(2000));
    host.wait_for(
        1,
        "bytes queued for a peer that reads nothing",
        |_, stats| stats.messages_routed > 1000 && stats.bytes_queued > 0,
    );
    host.send(Command::ForceShutdown(1));
    host.wait_finished(1);

    // Both finished: the host polls on for its UDP echo alone, with the timeout it computes
    // (none: it has no timer), and the servers cost it no turn and no log line.
    let logged_before = logged_by(host_thread).len();
    let turns = host.turns_over_an_idle_second();
    assert!(turns <= 1, "{turns} loop turns in an idle second");
    udp_echo_works(host.udp_addr, "host lives on");
    let turns = host.turns_over_an_idle_second();
    assert!(turns <= 1, "{turns} loop turns in an idle second");
    let logged = logged_by(host_thread);
    assert_eq!(
        logged[logged_before..],
        [] as [String; 0],
        "logged after finishing"
    );
    // The shutdowns themselves were logged, the forced one with what it dropped.
    assert!(logged.iter().any(|line| line.contains("shutting down")));
    assert!(logged.iter().any(|line| line.contains("forced shutdown")));

    let stats = host.exit();
    assert_eq!(stats[0].bytes_unsent_at_shutdown, 0);
    assert!(stats[1].bytes_unsent_at_shutdown > 0);
    assert_eq!(
        (stats[0].connections_open, stats[1].connections_open),
        (0, 0)
    );
    drop(stuck);
}

/// A server with `config` on a poll of its own, on tokens 10 to 29, registered.
fn small_server(config: Config) -> (Poll, Server) {
    let poll = Poll::new().unwrap();
    let tokens = Tokens {
        first: Token(10),
        count: 20,
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut chat = Server::bind(config, &[any], tokens).unwrap();
    chat.register(poll.registry()).unwrap();
    (poll, chat)
}

#[test]
fn a_host_that_skips_handle_events_after_timeouts_is_warned_once() {
    keep_logs();
    let (ready, started) = mpsc::channel();
    let host = thread::spawn(move || {
        let (mut poll, mut chat) = small_server(Config {
            max_conns: 10,
            login_timeout: Duration::from_millis(100),
            ..Config::default()
        });
        ready.send(chat.local_addrs()[0]).unwrap();
        let mut events = Events::with_capacity(16);
        // Wrong: only when events came, so the login timeout is not handled on time.
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            poll.poll(&mut events, chat.timeout()).unwrap();
            if !events.is_empty() {
                chat.handle_events(poll.registry(), &events);
            }
            if chat.stats().connections_open == 0 && chat.stats().lines_rejected[0] == 1 {
                break;
            }
        }
    });
    let addr = started.recv_timeout(WAIT).unwrap();
    let host_thread = host.thread().id();
    let mut silent = Client::connect(addr);
    // The login timeout (100 ms) passes unseen; the next event comes 1.2 s later.
    thread::sleep(Duration::from_millis(1200));
    silent.send_bytes(b"\xff\n");
    silent.expect("error: invalid utf-8");
    silent.expect_eof();
    drop(silent);
    host.join().unwrap();
    let warnings: Vec<String> = logged_by(host_thread)
        .into_iter()
        .filter(|line| line.contains("late: call Server::handle_events after every poll"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn a_host_that_sleeps_through_the_shutdown_deadline_is_warned() {
    keep_logs();
    let (ready, started) = mpsc::channel();
    let (logged_in, go) = mpsc::channel::<()>();
    let host = thread::spawn(move || {
        let (mut poll, mut chat) = small_server(Config {
            max_conns: 10,
            shutdown_timeout: Duration::from_millis(300),
            ..Config::default()
        });
        ready.send(chat.local_addrs()[0]).unwrap();
        let mut events = Events::with_capacity(16);
        // Right until the peer has logged in.
        let deadline = Instant::now() + WAIT;
        while go.try_recv().is_err() && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(10)))
                .unwrap();
            chat.handle_events(poll.registry(), &events);
        }
        // The peer never closes, so the shutdown waits for its 300 ms deadline; the host
        // comes back only 1.6 s later (the host being late is what is tested, not a wait).
        chat.begin_shutdown(poll.registry());
        thread::sleep(Duration::from_millis(1600));
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        chat.handle_events(poll.registry(), &events);
        assert!(chat.is_finished());
    });
    let addr = started.recv_timeout(WAIT).unwrap();
    let host_thread = host.thread().id();
    let mut alice = Client::login(addr, "alice");
    logged_in.send(()).unwrap();
    host.join().unwrap();
    alice.expect_eof();
    let warnings: Vec<String> = logged_by(host_thread)
        .into_iter()
        .filter(|line| line.contains("late: call Server::handle_events after every poll"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn token_share_too_small_for_max_conns_is_an_error_that_says_why() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let share = Tokens {
        first: Token(5),
        count: 1000,
    };
    // The default config's 1024 connections do not fit in 1000 tokens.
    let error = Server::bind(Config::default(), &[any], share).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let text = error.to_string();
    assert!(
        text.contains("1 listener and max_conns = 1024 connections"),
        "{text}"
    );
    let fits = Config {
        max_conns: 999,
        ..Config::default()
    };
    assert!(Server::bind(fits, &[any], share).is_ok());
    let overflow = Tokens {
        first: Token(usize::MAX - 10),
        count: 2000,
    };
    assert!(Server::bind(Config::default(), &[any], overflow).is_err());
}

#[test]
fn addresses_stay_known_after_the_shutdown() {
    let poll = Poll::new().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let tokens = Tokens {
        first: Token(0),
        count: 2000,
    };
    let mut chat = Server::bind(Config::default(), &[any, any], tokens).unwrap();
    chat.register(poll.registry()).unwrap();
    let addrs = chat.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert!(addrs.iter().all(|addr| addr.port() != 0));
    chat.begin_shutdown(poll.registry());
    assert!(chat.is_finished(), "no connections: finished at once");
    assert_eq!(chat.local_addrs(), addrs);
    assert_eq!(chat.timeout(), None);
    assert_ne!(addrs[0].port(), addrs[1].port());
}
