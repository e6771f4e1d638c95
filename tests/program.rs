//! The `a-chat` program: its command line, its `listening on` lines, and the client.

mod util;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use util::{Client, ServerProcess, binary};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run a-chat")
}

#[test]
fn help_and_version() {
    let help = run(&["server", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for option in [
        "--listen",
        "--max-line",
        "--max-queue",
        "--max-conns",
        "--login-timeout",
        "--shutdown-timeout",
    ] {
        assert!(text.contains(option), "help lacks {option}");
    }
    let version = run(&["--version"]);
    assert!(
        String::from_utf8(version.stdout)
            .unwrap()
            .contains(env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_flag_is_named_in_the_error() {
    let output = run(&["server", "--max-lines", "5"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("--max-lines")
    );
    let output = run(&["server", "--max-line", "lots"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("--max-line")
    );
}

#[test]
fn bad_options_get_the_program_prefix_the_usage_and_status_2() {
    for (args, start) in [
        (
            &["server", "--bogus"][..],
            "a-chat: error: unexpected argument '--bogus' found\n",
        ),
        (
            &["server", "--max-line", "lots"][..],
            "a-chat: error: invalid value 'lots' for '--max-line <BYTES>'",
        ),
        (
            &["serve"][..],
            "a-chat: error: unrecognized subcommand 'serve'",
        ),
    ] {
        let output = run(args);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with(start), "{args:?}: {stderr}");
        assert!(stderr.contains("try '--help'"), "{stderr}");
        assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn address_in_use_fails_with_status_2_and_says_why_whatever_the_log_level() {
    let server = ServerProcess::start(&[]);
    let addr = server.addr().to_string();
    for quiet in [&["server"][..], &["-qqq", "server"]] {
        let mut args = quiet.to_vec();
        args.extend(["--listen", &addr]);
        let output = Command::new(binary())
            .args(&args)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains("in use") && stderr.contains(&addr),
            "{stderr:?}"
        );
    }
}

#[test]
fn several_listeners_print_their_bound_ports_and_all_serve() {
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut args = vec!["--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"];
    if ipv6 {
        args.extend(["--listen", "[::1]:0"]);
    }
    let server = ServerProcess::start(&args);
    assert_eq!(server.addrs.len(), args.len() / 2);
    let mut peers: Vec<Client> = Vec::new();
    for (i, addr) in server.addrs.iter().enumerate() {
        assert_ne!(addr.port(), 0);
        peers.push(Client::login(*addr, &format!("p{i}")));
    }
    let last = peers.len() - 1;
    peers[0].send(&format!("p{last}: across listeners\n"));
    peers[last].expect("from p0: across listeners");
}

#[test]
fn client_sends_stdin_prints_replies_and_exits_when_the_server_closes() {
    let server = ServerProcess::start(&[]);
    let mut bob = Client::login(server.addr(), "bob");
    let mut client = Command::new(binary())
        .args(["client", &server.addr().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin
        .write_all(b"carol\ncarol: note to self\nnobody: hello?\nbob: hi bob\n")
        .unwrap();
    bob.expect("from carol: hi bob");
    bob.send("carol: hi carol\n");
    let mut stdout = client.stdout.take().unwrap();
    let reading = thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).unwrap();
        out
    });
    // Bob's own message comes back after his reply to carol was routed: her input may end.
    bob.send("bob: sync\n");
    bob.expect("from bob: sync");
    drop(stdin);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < util::WAIT, "client did not exit");
        thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    assert_eq!(
        reading.join().unwrap(),
        "from carol: note to self\nerror: no such peer: nobody\nfrom bob: hi carol\n"
    );
}

#[test]
fn client_fails_when_nothing_listens() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = run(&["client", &format!("127.0.0.1:{port}")]);
    assert!(!output.status.success());
}

/// Runs `a-chat client ADDR` (with `extra` options) with `input` on standard input.
fn client(addr: &str, extra: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(binary())
        .arg("client")
        .args(extra)
        .arg(addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    util::eventually("the client exits", || child.try_wait().unwrap());
    child.wait_with_output().unwrap()
}

#[test]
fn client_exits_1_when_the_server_closes_after_a_refusal() {
    let server = ServerProcess::start(&[]);
    let _bob = Client::login(server.addr(), "bob");
    let addr = server.addr().to_string();
    for (input, notice) in [
        (&b"bob\n"[..], "error: name taken"),
        (b"a,b\n", "error: invalid name"),
    ] {
        let output = client(&addr, &[], input);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{notice}\n")
        );
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&output.stderr).trim_end(),
            format!("a-chat: error: the server closed the connection after `{notice}`")
        );
    }
    // The normal end is still 0.
    let output = client(&addr, &[], b"carol\ncarol: hi\n");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "from carol: hi\n");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn a_plain_client_on_a_tls_port_exits_1_and_says_try_tls() {
    let server = ServerProcess::start_with_tls(&[]);
    let output = client(
        &server.tls_addrs[0].to_string(),
        &[],
        b"alice\nalice: hello?\n",
    );
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("a-chat: error: ") && stderr.contains("try --tls"),
        "{stderr}"
    );
}
