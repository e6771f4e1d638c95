//! Section 7 of the contract against the real server: `GET /metrics` scraped over TCP while
//! the chat runs, checked with a real parser of the Prometheus text format; bad requests;
//! slow and flooding metrics clients beside the chat; the summary line; an idle loop.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use util::{Client, ServerProcess, WAIT, eventually, http_get};

fn metrics_server(extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--metrics", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

#[test]
fn metrics_line_comes_after_the_listening_lines() {
    let server = metrics_server(&[]);
    assert_eq!(server.addrs.len(), 1);
    assert_ne!(server.metrics_addr().port(), server.addr().port());
    server.scrape();
}

#[test]
fn counters_match_what_the_clients_did() {
    let server = metrics_server(&["--max-memory", "64M"]);
    let addr = server.addr();
    let mut alice = Client::login(addr, "alice");
    let mut bob = Client::login(addr, "bob");
    for i in 0..10 {
        alice.send(&format!("bob: {i}\n"));
    }
    for i in 0..10 {
        bob.expect(&format!("from alice: {i}"));
    }
    alice.send("ghost, spook: boo\nghost: again\nno colon\n");
    alice.expect("error: no such peer: ghost");
    alice.expect("error: no such peer: spook");
    alice.expect("error: no such peer: ghost");
    alice.expect("error: expected 'dest: message'");
    let mut bad = Client::connect(addr);
    bad.send("bad:name\n");
    bad.expect_closed_after("error: invalid name");
    let mut taken = Client::connect(addr);
    taken.send("bob\n");
    taken.expect_closed_after("error: name taken");
    drop((bad, taken));
    // The refused connections close once their peers have (they linger until then).
    let metrics = eventually("the refused connections are gone", || {
        let metrics = server.scrape();
        (metrics.value("a_chat_connections_open", &[]) == 2.0).then_some(metrics)
    });
    let value = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);
    assert_eq!(value("a_chat_peers_logged_in", &[]), 2.0);
    assert_eq!(value("a_chat_connections_accepted_total", &[]), 4.0);
    assert_eq!(value("a_chat_logins_total", &[]), 2.0);
    // Ten to bob, plus each login's message to itself.
    assert_eq!(value("a_chat_messages_routed_total", &[]), 12.0);
    assert_eq!(value("a_chat_unknown_destinations_total", &[]), 3.0);
    let refused = |reason| value("a_chat_logins_refused_total", &[("reason", reason)]);
    assert_eq!(refused("invalid_name"), 1.0);
    assert_eq!(refused("name_taken"), 1.0);
    assert_eq!(refused("server_full"), 0.0);
    assert_eq!(refused("login_timeout"), 0.0);
    let rejected = |reason| value("a_chat_lines_rejected_total", &[("reason", reason)]);
    assert_eq!(rejected("expected_dest_message"), 1.0);
    assert_eq!(rejected("invalid_utf8"), 0.0);
    assert_eq!(value("a_chat_queued_bytes", &[]), 0.0);
    assert_eq!(value("a_chat_queue_memory_bytes", &[]), 0.0);
    assert_eq!(value("a_chat_max_memory_bytes", &[]), (64 << 20) as f64);
    let evicted = |limit| value("a_chat_slow_consumers_evicted_total", &[("limit", limit)]);
    assert_eq!((evicted("max_queue"), evicted("max_memory")), (0.0, 0.0));
    assert_eq!(value("a_chat_accept_pauses_total", &[]), 0.0);
    assert!(value("a_chat_loop_turns_total", &[]) > 0.0);
    assert!(value("a_chat_events_handled_total", &[]) > 0.0);
    assert!(value("a_chat_metrics_requests_total", &[]) >= 1.0);
    assert!(value("process_resident_memory_bytes", &[]) > 1e5);
    assert!(value("process_cpu_seconds_total", &[]) >= 0.0);
    // Every family is documented and typed; counters end in _total.
    for sample in &metrics.scrape.samples {
        assert!(
            metrics.scrape.docs.contains_key(&sample.metric),
            "{}",
            sample.metric
        );
        let typed = format!("# TYPE {} ", sample.metric);
        let kind = metrics.text.lines().find_map(|l| l.strip_prefix(&typed));
        match kind {
            Some("counter") => assert!(sample.metric.ends_with("_total"), "{}", sample.metric),
            Some("gauge") => assert!(!sample.metric.ends_with("_total"), "{}", sample.metric),
            other => panic!("{} has type {other:?}", sample.metric),
        }
    }
    // No cluster metrics on a single node.
    assert!(
        metrics
            .find("a_chat_cluster_redis_connected", &[])
            .is_none()
    );
}

#[test]
fn scrapes_during_traffic_see_counters_only_grow() {
    let server = metrics_server(&[]);
    let addr = server.addr();
    let mut bob = Client::login(addr, "bob");
    let mut alice = Client::login(addr, "alice");
    let reader = thread::spawn(move || {
        for i in 0..20_000 {
            bob.expect(&format!("from alice: {i}"));
        }
    });
    let writer = thread::spawn(move || {
        for i in 0..20_000 {
            alice.send(&format!("bob: {i}\n"));
        }
        alice
    });
    let mut last = 0.0;
    for _ in 0..20 {
        let routed = server.scrape().value("a_chat_messages_routed_total", &[]);
        assert!(routed >= last, "{routed} after {last}");
        last = routed;
    }
    reader.join().unwrap();
    drop(writer.join().unwrap());
    let routed = server.scrape().value("a_chat_messages_routed_total", &[]);
    assert_eq!(routed, 20_002.0);
}

#[test]
fn bad_requests_get_short_errors_and_are_closed() {
    let server = metrics_server(&[]);
    let addr = server.metrics_addr();
    let cases = [
        ("GET / HTTP/1.1\r\n\r\n", "404"),
        ("GET /other HTTP/1.1\r\n\r\n", "404"),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405"),
        ("HEAD /metrics HTTP/1.1\r\n\r\n", "405"),
        ("\x16\x03\x01 not http at all\r\n\r\n", "400"),
    ];
    for (request, status) in cases {
        let (head, _) = http_get(addr, request);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?}: {head}"
        );
        assert!(head.contains("Connection: close"));
    }
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(10_000)
    );
    let (head, _) = http_get(addr, &huge);
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    // The endpoint still serves after all that.
    server.scrape();
}

#[test]
fn slow_and_flooding_metrics_clients_do_not_touch_the_chat() {
    // Two chat connections at most: metrics connections must not take chat slots.
    let server = metrics_server(&["--max-conns", "2"]);
    let metrics_addr = server.metrics_addr();
    // Slowloris: every metrics slot taken by a request that never ends.
    let slow: Vec<TcpStream> = (0..a_chat::METRICS_CONNECTIONS)
        .map(|_| {
            let mut stream = TcpStream::connect(metrics_addr).unwrap();
            stream.write_all(b"GET /metr").unwrap();
            stream
        })
        .collect();
    // A flood of connections beside them, kept open by a thread while the chat runs.
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = stop.clone();
    let flood = thread::spawn(move || {
        let mut held = Vec::new();
        while !flooding.load(Ordering::Relaxed) {
            if let Ok(stream) = TcpStream::connect(metrics_addr) {
                held.push(stream);
            }
            if held.len() > 200 {
                held.clear();
            }
        }
    });
    let addr = server.addr();
    let mut alice = Client::login(addr, "alice");
    let mut bob = Client::login(addr, "bob");
    let mut third = Client::connect(addr);
    third.send("carol\n");
    third.expect_closed_after("error: server full");
    for i in 0..2000 {
        alice.send(&format!("bob: {i}\n"));
    }
    for i in 0..2000 {
        bob.expect(&format!("from alice: {i}"));
    }
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    // The slow requests are cut off (at their deadline, or for a newcomer of the flood): they
    // read end of stream, no response.
    for mut stream in slow {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).expect("closed by the server");
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
    // The refused third connection is gone once its close is over.
    drop(third);
    let metrics = eventually("the refused connection's close is over", || {
        let metrics = server.scrape();
        (metrics.value("a_chat_connections_open", &[]) == 2.0).then_some(metrics)
    });
    assert_eq!(metrics.value("a_chat_messages_routed_total", &[]), 2002.0);
}

#[test]
fn stalled_connections_in_every_slot_do_not_keep_a_scraper_out() {
    let server = metrics_server(&[]);
    let metrics_addr = server.metrics_addr();
    // More stallers than slots: each sends one byte, waits until it is cut, and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stallers: Vec<_> = (0..a_chat::METRICS_CONNECTIONS + 4)
        .map(|_| {
            let (stop, connected) = (stop.clone(), connected.clone());
            thread::spawn(move || {
                let mut first = true;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(metrics_addr) else {
                        continue;
                    };
                    let _ = stream.write_all(b"G");
                    if std::mem::take(&mut first) {
                        connected.fetch_add(1, Ordering::Relaxed);
                    }
                    stream
                        .set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    // Until the server cuts it (or the test ends).
                    while !stop.load(Ordering::Relaxed) {
                        match stream.read(&mut [0; 64]) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(_) => break,
                        }
                    }
                }
            })
        })
        .collect();
    eventually("every staller connected", || {
        (connected.load(Ordering::Relaxed) == a_chat::METRICS_CONNECTIONS + 4).then_some(())
    });
    // Each scrape is answered within the endpoint's own cut-off (5 s), every time.
    for attempt in 0..10 {
        let mut stream = TcpStream::connect_timeout(&metrics_addr, WAIT).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 200 OK\r\n"),
            "scrape {attempt} got {response:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for staller in stallers {
        staller.join().unwrap();
    }
    let evicted = server
        .scrape()
        .value("a_chat_metrics_connections_evicted_total", &[]);
    assert!(evicted >= 10.0, "{evicted} evictions");
}

#[test]
fn an_idle_server_does_not_turn_its_loop() {
    let server = metrics_server(&[]);
    let _alice = Client::login(server.addr(), "alice");
    let before = server.scrape().value("a_chat_loop_turns_total", &[]);
    thread::sleep(Duration::from_secs(1));
    let after = server.scrape().value("a_chat_loop_turns_total", &[]);
    // The scrape itself takes a few turns (accept, request, response, close); idling none.
    assert!(
        after - before <= 8.0,
        "{} turns in an idle second",
        after - before
    );
}

#[test]
fn stats_interval_logs_a_summary_line_per_period() {
    let server = ServerProcess::start(&["--stats-interval", "0.2"]);
    let mut alice = Client::login(server.addr(), "alice");
    alice.send("alice: once more\n");
    alice.expect("from alice: once more");
    server.wait_for_log("messages/s routed");
    eventually("a line that saw the login", || {
        server
            .stderr()
            .lines()
            .any(|line| line.contains("stats: 1 connections, 1 logged in"))
            .then_some(())
    });
    let line = server
        .stderr()
        .lines()
        .find(|line| line.contains("stats: "))
        .unwrap()
        .to_string();
    for part in [
        "bytes queued",
        "held of --max-memory",
        "evictions",
        "logins",
    ] {
        assert!(line.contains(part), "{line}");
    }
}
