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
