//! Section 9 of the contract against real processes: Redis as it is deployed, with a password
//! and ACL users, and over TLS (redis-server's own `--tls-port`, with certificates made by the
//! test). Every test's Redis runs the nodes' least-privilege ACL rule (`tests/util/redis.rs`).

mod util;

use std::process::Command;

use util::redis::{NODE_PASSWORD, NODE_USER, RedisServer};
use util::{Client, ServerProcess, tls};

/// The TTL of the tests' nodes, in seconds.
const TTL: &str = "2";

/// A node of `url` (with `extra` options), once it has joined.
fn node(url: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--cluster", url, "--cluster-ttl", TTL];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args);
    server.wait_for_log("cluster: joined as node");
    server
}

/// Two nodes of one cluster chat across.
fn chat_across(a: &ServerProcess, b: &ServerProcess) {
    let mut alice = Client::login(a.addr(), "alice");
    let mut bob = Client::login(b.addr(), "bob");
    alice.send("bob: across\n");
    bob.expect("from alice: across");
    bob.send("alice: and back\n");
    alice.expect("from bob: and back");
}

/// What a node shows of itself: its log and its metrics.
fn shown(node: &ServerProcess) -> String {
    let metrics = util::http_get(
        node.metrics_addr(),
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    format!("{}\n{}\n{}", node.stderr(), metrics.0, metrics.1)
}

#[test]
fn the_password_in_the_url_or_the_environment_lets_nodes_in_and_is_never_shown() {
    let redis = RedisServer::start();
    // The password in the URL.
    let a = node(&redis.url(), &["--metrics", "127.0.0.1:0", "-vv"]);
    // The user alone in the URL, the password from the environment.
    let url = format!("redis://{NODE_USER}@{}", redis.addr);
    let b = ServerProcess::start_with_env(
        &[
            "--cluster",
            &url,
            "--cluster-ttl",
            TTL,
            "--metrics",
            "127.0.0.1:0",
            "-vv",
        ],
        &[("A_CHAT_REDIS_PASSWORD", NODE_PASSWORD)],
    );
    b.wait_for_log("cluster: joined as node");
    chat_across(&a, &b);
    for node in [&a, &b] {
        let shown = shown(node);
        assert!(!shown.contains(NODE_PASSWORD), "{shown}");
        assert!(shown.contains(&format!("redis://{NODE_USER}")), "{shown}");
    }
}

#[test]
fn a_wrong_password_is_said_retried_with_the_back_off_and_a_fix_on_redis_lets_the_node_in() {
    let redis = RedisServer::start();
    let wrong = "not-the-pw-5b21";
    let url = format!("redis://{NODE_USER}:{wrong}@{}", redis.addr);
    let a = ServerProcess::start(&[
        "--cluster",
        &url,
        "--cluster-ttl",
        TTL,
        "--metrics",
        "127.0.0.1:0",
    ]);
    let refused = format!("cluster: redis refused the password for user {NODE_USER}");
    a.wait_for_log(&refused);
    // Redis counts as unreachable: logins are refused.
    let mut client = Client::connect(a.addr());
    client.send("alice\n");
    client.expect_closed_after("error: cluster unavailable");
    // Tried again, with the back-off (100 ms, doubling): a few attempts, not a storm.
    util::eventually("a second refusal", || {
        (a.stderr().matches(&refused).count() >= 2).then_some(())
    });
    // The operator gives the user this password on the Redis side: the node joins by itself.
    let added = format!(">{wrong}");
    redis
        .command(&["ACL", "SETUSER", NODE_USER, &added])
        .expect("ACL SETUSER");
    a.wait_for_log("cluster: joined as node");
    let mut alice = Client::login(a.addr(), "alice");
    alice.send("alice: in\n");
    alice.expect("from alice: in");
    let shown = shown(&a);
    assert!(!shown.contains(wrong), "{shown}");
    // Each attempt is one line; the back-off keeps them few (the wait was short).
    let attempts = shown.matches(&refused).count();
    assert!((1..40).contains(&attempts), "{attempts} attempts: {shown}");
}

#[test]
fn a_bad_url_or_a_user_without_a_password_stops_the_server_without_showing_the_password() {
    let run = |args: &[&str], env: Option<&str>| {
        let mut command = Command::new(util::binary());
        command
            .arg("server")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        command.env_remove("A_CHAT_REDIS_PASSWORD");
        if let Some(password) = env {
            command.env("A_CHAT_REDIS_PASSWORD", password);
        }
        let output = command.output().expect("run a-chat");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!stderr.contains("hunter2"), "{stderr}");
        stderr
    };
    let stderr = run(&["--cluster", "redis://u:hunter2@127.0.0.1:0"], None);
    assert!(
        stderr.contains("a-chat: error: --cluster redis://u:***@127.0.0.1:0: "),
        "{stderr}"
    );
    let stderr = run(&["--cluster", "redis://node@127.0.0.1:6379"], None);
    assert!(
        stderr.contains(
            "the Redis user node has no password: give it in the URL or in A_CHAT_REDIS_PASSWORD"
        ),
        "{stderr}"
    );
    let stderr = run(
        &["--cluster", "redis://node:hunter2@127.0.0.1:6379"],
        Some("other"),
    );
    assert!(stderr.contains("given twice"), "{stderr}");
}

#[test]
fn a_cluster_over_tls_with_a_private_ca_chats_across_nodes() {
    let redis = RedisServer::start_tls(false);
    let files = tls::files();
    let ca = files.ca.to_str().unwrap();
    assert!(redis.url().starts_with("rediss://"));
    let a = node(&redis.url(), &["--cluster-ca", ca]);
    let b = node(&redis.url(), &["--cluster-ca", ca]);
    chat_across(&a, &b);
}

#[test]
fn a_redis_certificate_from_another_ca_is_refused_in_a_sentence_and_counts_as_unreachable() {
    let redis = RedisServer::start_tls(false);
    let other = tls::files().other_ca.to_str().unwrap();
    let a = ServerProcess::start(&[
        "--cluster",
        &redis.url(),
        "--cluster-ttl",
        TTL,
        "--cluster-ca",
        other,
    ]);
    a.wait_for_log("cluster: TLS with Redis at 127.0.0.1:");
    a.wait_for_log("failed: the server's certificate has an unknown issuer");
    a.wait_for_log("(for Redis, that file is --cluster-ca FILE)");
    let mut client = Client::connect(a.addr());
    client.send("alice\n");
    client.expect_closed_after("error: cluster unavailable");
    assert!(!a.stderr().contains("joined"), "{}", a.stderr());
}

#[test]
fn a_redis_that_asks_for_client_certificates_gets_one() {
    let redis = RedisServer::start_tls(true);
    let files = tls::files();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ca, cert, key) = (
        path(&files.ca),
        path(&files.client_cert),
        path(&files.client_key),
    );
    let with_cert = [
        "--cluster-ca",
        &ca,
        "--cluster-cert",
        &cert,
        "--cluster-key",
        &key,
    ];
    let a = node(&redis.url(), &with_cert);
    let b = node(&redis.url(), &with_cert);
    chat_across(&a, &b);
    // Without one, Redis ends the handshake: said, and never joined.
    let c = ServerProcess::start(&[
        "--cluster",
        &redis.url(),
        "--cluster-ttl",
        TTL,
        "--cluster-ca",
        &ca,
    ]);
    c.wait_for_log(
        "failed: the server asks for a client certificate and was given none (alert: \
         certificate required): give the node one with --cluster-cert FILE --cluster-key FILE",
    );
    assert!(!c.stderr().contains("joined"), "{}", c.stderr());
}

#[test]
fn bad_tls_files_stop_the_server_at_start_with_a_sentence() {
    let redis = RedisServer::start_tls(false);
    let run = |args: &[&str]| {
        let output = Command::new(util::binary())
            .arg("server")
            .args(["--listen", "127.0.0.1:0", "--cluster", &redis.url()])
            .args(args)
            .output()
            .expect("run a-chat");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&["--cluster-ca", "/nonexistent/ca.pem"]);
    assert!(
        stderr.contains("a-chat: error: /nonexistent/ca.pem: "),
        "{stderr}"
    );
    let files = tls::files();
    // A key as the CA file: no certificate in it.
    let key = files.key.to_str().unwrap();
    let stderr = run(&["--cluster-ca", key]);
    assert!(
        stderr.contains(&format!("{key}: no certificate in it")),
        "{stderr}"
    );
    // A client key that does not fit the client certificate.
    let (ca, cert) = (
        files.ca.to_str().unwrap(),
        files.client_cert.to_str().unwrap(),
    );
    let stderr = run(&[
        "--cluster-ca",
        ca,
        "--cluster-cert",
        cert,
        "--cluster-key",
        key,
    ]);
    assert!(
        stderr.contains("the key does not fit the certificate chain"),
        "{stderr}"
    );
    // TLS options with a plain URL.
    let output = Command::new(util::binary())
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            "redis://127.0.0.1:1",
        ])
        .args(["--cluster-ca", ca])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the --cluster URL must then be rediss://"),
        "{stderr}"
    );
}

#[test]
fn tls_to_a_plain_port_is_said_so() {
    let redis = RedisServer::start();
    let url = redis.url().replacen("redis://", "rediss://", 1);
    let ca = tls::files().ca.to_str().unwrap().to_string();
    let a = ServerProcess::start(&["--cluster", &url, "--cluster-ttl", TTL, "--cluster-ca", &ca]);
    // Redis waits for a line the ClientHello never ends: the handshake is overdue.
    a.wait_for_log("cluster: the TLS handshake with Redis at 127.0.0.1:");
    a.wait_for_log("was not over in time (is its port a TLS port? redis:// speaks plain TCP)");
    assert!(!a.stderr().contains(NODE_PASSWORD), "{}", a.stderr());
}

#[test]
fn requirepass_is_the_default_users_password_from_the_url_or_the_environment() {
    let redis = RedisServer::start_open(&["--requirepass", "rp-4d2e"]);
    let a = node(&format!("redis://:rp-4d2e@{}", redis.addr), &[]);
    let b = ServerProcess::start_with_env(
        &["--cluster", &redis.url(), "--cluster-ttl", TTL],
        &[("A_CHAT_REDIS_PASSWORD", "rp-4d2e")],
    );
    b.wait_for_log("cluster: joined as node");
    chat_across(&a, &b);
    for node in [&a, &b] {
        assert!(!node.stderr().contains("rp-4d2e"), "{}", node.stderr());
    }
}
