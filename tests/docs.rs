//! The docs stay true where a machine can check them: every reason a connection can be closed
//! for, every option of `a-chat server`, and every metric the endpoint serves are documented
//! for operators, and the README stays a page a newcomer reads in five minutes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use a_chat::core::CloseReason;
use a_chat::metrics::{ProcessFigures, render};
use a_chat::{ClusterStats, LineError, Stats};

/// The nodes' ACL rule the cluster tests run under (`tests/util/redis.rs`), read from its
/// source rather than shared as a module, so that this test needs no Redis.
fn node_acl() -> String {
    let source = read("tests/util/redis.rs");
    let head = "pub const NODE_ACL: &str = \"";
    let start = source.find(head).expect("NODE_ACL") + head.len();
    let end = start + source[start..].find('"').unwrap();
    source[start..end]
        .replace("\\\n", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_acl_rule_of_the_docs_is_the_one_the_tests_run_under() {
    let line = format!("ACL SETUSER a-chat on >PASSWORD {}", node_acl());
    assert!(
        line.contains("+evalsha") && line.contains("&a-chat:to:*"),
        "{line}"
    );
    for doc in ["README.md", "docs/cluster.md"] {
        assert!(
            read(doc).contains(&line),
            "{doc} does not give the rule {line}"
        );
    }
}

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every way a connection can end, one of each kind (an i/o error stands for all its kinds).
fn every_close_reason() -> Vec<CloseReason> {
    // A new variant breaks this match, and so reaches the list below.
    let listed = |reason: &CloseReason| match reason {
        CloseReason::PeerClosed
        | CloseReason::Io(_)
        | CloseReason::Rejected(_)
        | CloseReason::LoginTimeout
        | CloseReason::ServerFull
        | CloseReason::SlowConsumer
        | CloseReason::Shutdown
        | CloseReason::TimedOut
        | CloseReason::Forced
        | CloseReason::ClusterUnavailable => true,
    };
    let mut reasons = vec![
        CloseReason::PeerClosed,
        CloseReason::LoginTimeout,
        CloseReason::ServerFull,
        CloseReason::SlowConsumer,
        CloseReason::Shutdown,
        CloseReason::TimedOut,
        CloseReason::Forced,
        CloseReason::ClusterUnavailable,
    ];
    reasons.extend(
        LineError::ALL
            .into_iter()
            .filter(|error| error.closes_connection())
            .map(CloseReason::Rejected),
    );
    assert!(reasons.iter().all(listed));
    reasons
}

#[test]
fn every_close_reason_is_in_the_operators_guide() {
    let guide = read("docs/operating.md");
    for reason in every_close_reason() {
        let text = format!("`{reason}`");
        assert!(guide.contains(&text), "docs/operating.md lacks {text}");
    }
    assert!(guide.contains("`i/o error: KIND`"));
}

#[test]
fn every_server_option_is_in_the_operators_guide() {
    let guide = read("docs/operating.md");
    let output = Command::new(env!("CARGO_BIN_EXE_a-chat"))
        .args(["server", "--help"])
        .output()
        .expect("a-chat server --help runs");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    // Option lines read `  -v, --verbose...  TEXT` or `      --listen <ADDR>  TEXT`.
    let options: Vec<&str> = help
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with("--")))
        .map(|word| word.trim_end_matches(['.', ',']))
        .filter(|option| !["--help", "--version"].contains(option))
        .collect();
    assert!(options.len() >= 10, "too few options found in {help}");
    for option in options {
        assert!(
            guide.contains(&format!("`{option}")),
            "docs/operating.md does not document {option}"
        );
    }
}

#[test]
fn every_metric_is_documented() {
    let docs = read("docs/operating.md") + &read("docs/cluster.md");
    let stats = Stats {
        cluster: ClusterStats {
            enabled: true,
            ..ClusterStats::default()
        },
        ..Stats::default()
    };
    let process = ProcessFigures {
        resident_bytes: 1,
        cpu_time: Duration::from_secs(1),
    };
    let text = render(&stats, Some(process));
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|line| line.split(' ').next().unwrap())
        .collect();
    names.dedup();
    assert!(names.len() >= 15, "too few metrics in {text}");
    for name in names {
        assert!(
            docs.contains(&format!("`{name}")),
            "neither docs/operating.md nor docs/cluster.md lists the metric {name}"
        );
    }
}

#[test]
fn the_readme_is_a_page() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 150, "README.md has {lines} lines (at most 150)");
    for link in ["docs/operating.md", "docs/cluster.md", "docs/embedding.md"] {
        assert!(readme.contains(link), "README.md does not link {link}");
        read(link);
    }
    for link in ["docs/performance.md", "docs/design.md", "fuzz/README.md"] {
        assert!(readme.contains(link), "README.md does not link {link}");
        read(link);
    }
}
