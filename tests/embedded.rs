//! The embedding API: the example's host (chat server, UDP echo, timer on one `Poll`) and two
//! chat servers on one `Poll`, stopped by the host through a `Waker`.

mod util;

#[path = "../examples/embedded.rs"]
#[allow(dead_code)]
mod embedded;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use a_chat::{Config, Server, Stats, Tokens};
use mio::{Events, Poll, Token, Waker};

use util::{Client, WAIT};

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

#[test]
fn host_runs_chat_udp_and_timer_on_one_poll_and_shutdown_delivers() {
    let (ready, started) = mpsc::channel();
    let host_thread = thread::spawn(move || {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut host = embedded::Host::new(any, any, Duration::from_millis(10)).unwrap();
        let waker = Arc::new(Waker::new(host.poll.registry(), embedded::STOP).unwrap());
        ready
            .send((host.chat_addr(), host.udp_addr(), waker))
            .unwrap();
        host.run(|| 1).unwrap();
        (host.chat.stats(), host.echoed, host.ticks)
    });
    let (chat_addr, udp_addr, waker) = started.recv_timeout(WAIT).unwrap();

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
    // Both services at once: the echo answers while 20,000 messages wait for the reader.
    udp_echo_works(udp_addr, "during");

    waker.wake().unwrap();
    for i in 0..20_000 {
        reader.expect(&format!("from sender: {i}"));
    }
    reader.expect_eof();
    sender.expect_eof();
    drop((reader, sender));
    let (stats, echoed, ticks): (Stats, u64, u64) = host_thread.join().unwrap();
    assert_eq!(stats.bytes_unsent_at_shutdown, 0);
    assert_eq!(stats.messages_routed, 20_003);
    assert!(echoed >= 2);
    assert!(ticks >= 1);
}

#[test]
fn two_chat_servers_share_one_poll_without_crossing() {
    let (ready, started) = mpsc::channel();
    let loop_thread = thread::spawn(move || {
        let mut poll = Poll::new().unwrap();
        let stop = Token(0);
        let waker = Arc::new(Waker::new(poll.registry(), stop).unwrap());
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = Config {
            max_conns: 50,
            ..Config::default()
        };
        let mut servers = [
            Server::bind(
                config.clone(),
                &[any],
                Tokens {
                    first: Token(1),
                    count: 100,
                },
            )
            .unwrap(),
            Server::bind(
                config,
                &[any],
                Tokens {
                    first: Token(101),
                    count: 100,
                },
            )
            .unwrap(),
        ];
        for server in &mut servers {
            server.register(poll.registry()).unwrap();
        }
        let addrs = [
            servers[0].local_addrs().unwrap()[0],
            servers[1].local_addrs().unwrap()[0],
        ];
        ready.send((addrs, waker)).unwrap();
        let mut events = Events::with_capacity(64);
        while !servers.iter().all(Server::is_finished) {
            let timeout = servers.iter().filter_map(Server::timeout).min();
            poll.poll(&mut events, timeout).unwrap();
            for event in events.iter() {
                if event.token() == stop {
                    for server in &mut servers {
                        server.begin_shutdown(poll.registry());
                    }
                    continue;
                }
                let mut claimed = 0;
                for server in &mut servers {
                    claimed += usize::from(server.handle_event(poll.registry(), event));
                }
                assert_eq!(claimed, 1, "exactly one server owns {:?}", event.token());
            }
            for server in &mut servers {
                server.process(poll.registry());
            }
        }
        servers.map(|server| server.stats())
    });
    let (addrs, waker) = started.recv_timeout(WAIT).unwrap();

    // The same name on both servers: they are separate chats.
    let mut one = Client::login(addrs[0], "alice");
    let mut two = Client::login(addrs[1], "alice");
    let mut bob = Client::login(addrs[1], "bob");
    one.send("bob: only on server one\n");
    one.expect("error: no such peer: bob");
    two.send("bob: from server two\n");
    bob.expect("from alice: from server two");

    waker.wake().unwrap();
    for client in [&mut one, &mut two, &mut bob] {
        client.expect_eof();
    }
    drop((one, two, bob));
    let stats = loop_thread.join().unwrap();
    assert_eq!(stats[0].messages_routed, 1);
    assert_eq!(stats[1].messages_routed, 3);
}

#[test]
fn token_share_too_small_for_max_conns_is_an_error() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = Config {
        max_conns: 100,
        ..Config::default()
    };
    let error = Server::bind(
        config,
        &[any],
        Tokens {
            first: Token(5),
            count: 100,
        },
    )
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("token share"));
    let overflow = Tokens {
        first: Token(usize::MAX - 10),
        count: 1000,
    };
    assert!(Server::bind(Config::default(), &[any], overflow).is_err());
}
