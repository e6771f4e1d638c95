//! The command line: subcommands, options and their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::BenchArgs;
use crate::common::{parse_bytes, parse_secs};
use crate::tls_client::TlsClientArgs;

/// The heading of the global logging options, after each subcommand's own.
const LOGGING: &str = "Logging (also RUST_LOG, e.g. a_chat::cluster=debug)";

/// A chat server that holds tens of thousands of connections on one thread.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log more (repeatable): -v adds one debug line per routed message, -vv traces more.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = LOGGING)]
    pub verbose: u8,
    /// Log less (repeatable): -q keeps warnings and errors only.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = LOGGING)]
    pub quiet: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the chat server.
    Server(ServerArgs),
    /// Chat from the terminal: standard input to the server, its lines to standard output.
    Client(ClientArgs),
    /// Load-test a chat server: N logged-in connections, messages to random peers; reports
    /// throughput, latency percentiles, losses and the server's memory and CPU time.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server's address (HOST:PORT; with --tls, HOST is the name the certificate must
    /// show).
    #[arg(default_value = "127.0.0.1:8080")]
    pub addr: String,
    #[command(flatten)]
    pub tls: TlsClientArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("tls_listeners").multiple(true)))]
pub struct ServerArgs {
    /// Address to listen on (repeatable; IPv4 or IPv6, e.g. [::1]:8080; port 0 picks one).
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: Vec<SocketAddr>,
    /// Also listen for TLS connections on ADDR (repeatable); needs --tls-cert and --tls-key.
    #[arg(long = "listen-tls", value_name = "ADDR", group = "tls_listeners", requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Vec<SocketAddr>,
    /// Also serve the chat to browsers on ADDR (repeatable): the page at /, a WebSocket at
    /// /chat.
    #[arg(long = "listen-ws", value_name = "ADDR")]
    pub listen_ws: Vec<SocketAddr>,
    /// Also serve browsers over TLS (https://, wss://) on ADDR (repeatable); needs --tls-cert
    /// and --tls-key.
    #[arg(long = "listen-wss", value_name = "ADDR", group = "tls_listeners", requires_all = ["tls_cert", "tls_key"])]
    pub listen_wss: Vec<SocketAddr>,
    /// An Origin a browser's WebSocket upgrade may come from (repeatable; e.g.
    /// http://chat.example:8081); when given, an upgrade from any other gets 403.
    #[arg(long = "ws-origin", value_name = "ORIGIN")]
    pub ws_origin: Vec<String>,
    /// The TLS certificate chain, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_listeners")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_listeners")]
    pub tls_key: Option<PathBuf>,
    /// Longest accepted line in bytes, without its terminator.
    #[arg(long, value_name = "BYTES", default_value_t = 8192)]
    pub max_line: usize,
    /// Most bytes that may wait for one peer before it is disconnected as a slow consumer
    /// (suffixes K, M, G: powers of 1024).
    #[arg(long, value_name = "BYTES", default_value = "1048576", value_parser = parse_bytes)]
    pub max_queue: usize,
    /// Most bytes all outbound queues together may hold (a buffer shared by several queues
    /// counts once); past it the peers with the largest queues are disconnected as slow
    /// consumers [default: a quarter of physical memory] (suffixes K, M, G).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub max_memory: Option<usize>,
    /// Most concurrent connections [default: the open-file limit less a small reserve].
    #[arg(long, value_name = "N")]
    pub max_conns: Option<usize>,
    /// Seconds a new connection has to send a valid name.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub login_timeout: Duration,
    /// Seconds a graceful shutdown waits for slow peers.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub shutdown_timeout: Duration,
    /// Join a cluster through the Redis at URL: peers on every node chat with each other, and
    /// names are unique across the nodes. URL is redis://[USER[:PASSWORD]@]HOST[:PORT],
    /// rediss://... for TLS, redis-sentinel://[USER[:PASSWORD]@]HOST:PORT[,HOST:PORT...]/MASTER
    /// for the master that sentinels name (failovers followed), or rediss-sentinel://... for
    /// TLS to the sentinels and the master (a user without a password: the password is in the
    /// environment variable A_CHAT_REDIS_PASSWORD, which keeps it out of `ps`; it goes to
    /// Redis, not to the sentinels).
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// With --cluster: seconds a node's names outlive it, and that a node cut off from Redis
    /// keeps its peers.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, requires = "cluster")]
    pub cluster_ttl: Duration,
    /// With a rediss:// or rediss-sentinel:// --cluster: trust the certificates of this PEM
    /// file (a private CA) for Redis's (and the sentinels') instead of the system's roots.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub cluster_ca: Option<PathBuf>,
    /// With a rediss:// or rediss-sentinel:// --cluster: present this certificate chain (PEM)
    /// to Redis (and the sentinels), for a Redis with `tls-auth-clients yes`; needs
    /// --cluster-key.
    #[arg(long, value_name = "FILE", requires_all = ["cluster", "cluster_key"])]
    pub cluster_cert: Option<PathBuf>,
    /// With --cluster-cert: its private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cluster", "cluster_cert"])]
    pub cluster_key: Option<PathBuf>,
    /// Serve the counters at http://ADDR/metrics (Prometheus text format), from the same loop.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Log one summary line (connections, logins, messages routed per second, bytes queued,
    /// evictions) every SECS seconds [default: off].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub stats_interval: Option<Duration>,
}

/// Reports a command line that does not parse: `--help` and `--version` (and a missing
/// subcommand's help) go out as clap writes them; an error goes to standard error as
/// `a-chat: error: ...`, like every other error of the program, with clap's usage and tip lines,
/// and clap's exit status (2).
pub fn usage_error(error: &clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    use std::io::Write;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let _ = write!(std::io::stderr().lock(), "{}", prefixed(error));
    std::process::ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
}

/// clap's message for `error`, its own `error: ` replaced by the program's `a-chat: error: `.
fn prefixed(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let rest = text.strip_prefix("error: ").unwrap_or(&text);
    format!("a-chat: error: {rest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parse_errors_carry_the_program_prefix_and_the_usage() {
        let error = Cli::try_parse_from(["a-chat", "server", "--bogus"]).unwrap_err();
        let text = prefixed(&error);
        assert!(
            text.starts_with("a-chat: error: unexpected argument '--bogus'"),
            "{text}"
        );
        assert!(text.contains("Usage: a-chat server"), "{text}");
        assert_eq!(text.matches("error:").count(), 1, "{text}");
    }
}
