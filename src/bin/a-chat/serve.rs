//! `a-chat server`: the standalone server, a `Poll` of its own with signals as one more source.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use a_chat::process::raise_open_file_limit;
use a_chat::{Config, Server, Stats, Tokens, bind_listener};
use log::{info, warn};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::cli::ServerArgs;
use a_chat::io_errors::interrupted;

const SIGNALS: Token = Token(0);
/// Everything after the signal token belongs to the chat server.
const SERVER_TOKENS: Tokens = Tokens {
    first: Token(1),
    count: usize::MAX - 1,
};

/// Runs the server until a signal's graceful shutdown is over. Exit status 0 when every routed
/// byte was written, 1 when some were dropped by a forced shutdown or a peer that went away.
pub fn run(args: ServerArgs) -> io::Result<ExitCode> {
    let nofile = raise_open_file_limit();
    let config = Config {
        max_line: args.max_line,
        max_queue: args.max_queue,
        max_conns: args
            .max_conns
            .unwrap_or_else(|| Config::max_conns_for_nofile(nofile)),
        max_memory: args.max_memory.unwrap_or_else(Config::default_max_memory),
        login_timeout: args.login_timeout,
        shutdown_timeout: args.shutdown_timeout,
        ..Config::default()
    };
    let mut poll = Poll::new()?;
    // Signals are caught before `listening on` is printed: a script that signals as soon as it
    // reads that line gets the graceful shutdown, not the default action.
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let mut server = Server::bind(config.clone(), &args.listen, SERVER_TOKENS)?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        // A bad file stops the server here, before it listens, naming the file.
        let tls = a_chat::tls::server_config_from_pem(cert, key)?;
        for &addr in &args.listen_tls {
            server = server.with_tls_listener(bind_listener(addr)?, tls.clone())?;
        }
        let ws = std::sync::Arc::new(a_chat::ws::WsConfig {
            allowed_origins: args.ws_origin.clone(),
        });
        for &addr in &args.listen_wss {
            server = server.with_wss_listener(bind_listener(addr)?, ws.clone(), tls.clone())?;
        }
    }
    // The browsers' listeners come after the plain and TLS ones (in the share and on stdout);
    // `ws://` before `wss://` on stdout, whatever the order of their tokens.
    let ws = std::sync::Arc::new(a_chat::ws::WsConfig {
        allowed_origins: args.ws_origin.clone(),
    });
    for &addr in &args.listen_ws {
        server = server.with_ws_listener(bind_listener(addr)?, ws.clone())?;
    }
    if let Some(addr) = args.metrics {
        server = server.with_metrics(bind_listener(addr)?)?;
    }
    if let Some(cluster) = args.cluster.clone() {
        let ttl = args.cluster_ttl;
        if ttl.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--cluster-ttl must be above 0",
            ));
        }
        server = server.with_cluster(a_chat::ClusterConfig { ttl, ..cluster })?;
        info!(
            "cluster: node {} joins through redis://{} (ttl {ttl:?})",
            server.cluster_node().unwrap_or("?"),
            args.cluster
                .as_ref()
                .map_or(String::new(), |c| c.redis.to_string())
        );
    }
    let mut stdout = io::stdout().lock();
    for addr in server.local_addrs() {
        writeln!(stdout, "listening on {addr}")?;
    }
    for addr in server.tls_addrs() {
        writeln!(stdout, "listening on {addr} (tls)")?;
    }
    for addr in server.ws_addrs() {
        writeln!(stdout, "listening on {addr} (ws)")?;
    }
    for addr in server.wss_addrs() {
        writeln!(stdout, "listening on {addr} (wss)")?;
    }
    if let Some(addr) = server.metrics_addr() {
        writeln!(stdout, "metrics on {addr}")?;
    }
    stdout.flush()?;
    info!(
        "serving: max-line {} B, max-queue {} B, max-memory {} B, max-conns {}, open-file limit {nofile}",
        config.max_line, config.max_queue, config.max_memory, config.max_conns
    );

    server.register(poll.registry())?;

    let mut summary = args.stats_interval.map(Summary::new);
    let mut events = Events::with_capacity(1024);
    while !server.is_finished() {
        let timeout = match &summary {
            Some(summary) => Some(
                summary
                    .until_due()
                    .min(server.timeout().unwrap_or(Duration::MAX)),
            ),
            None => server.timeout(),
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if interrupted(&e) {
                continue;
            }
            return Err(e);
        }
        server.handle_events(poll.registry(), &events);
        if events.iter().any(|event| event.token() == SIGNALS) {
            for signal in signals.pending() {
                if server.is_shutting_down() {
                    warn!("signal {signal} again: closing the remaining connections now");
                    server.force_shutdown(poll.registry());
                } else {
                    info!("signal {signal}: shutting down gracefully");
                    server.begin_shutdown(poll.registry());
                }
            }
        }
        if let Some(summary) = &mut summary {
            summary.log_if_due(&server.stats());
        }
    }

    let stats = server.stats();
    if stats.bytes_unsent_at_shutdown > 0 {
        warn!(
            "shut down with {} routed bytes unsent",
            stats.bytes_unsent_at_shutdown
        );
        return Ok(ExitCode::FAILURE);
    }
    info!(
        "shut down cleanly: {} messages routed, every byte written",
        stats.messages_routed
    );
    Ok(ExitCode::SUCCESS)
}

/// `--stats-interval`: one `info` line per period, with rates since the last line.
struct Summary {
    every: Duration,
    due: Instant,
    last: Stats,
    last_at: Instant,
}

impl Summary {
    fn new(every: Duration) -> Summary {
        let every = every.max(Duration::from_millis(1));
        let now = Instant::now();
        Summary {
            every,
            due: now + every,
            last: Stats::default(),
            last_at: now,
        }
    }

    fn until_due(&self) -> Duration {
        self.due.saturating_duration_since(Instant::now())
    }

    fn log_if_due(&mut self, stats: &Stats) {
        let now = Instant::now();
        if now < self.due {
            return;
        }
        let secs = now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let routed = stats.messages_routed - self.last.messages_routed;
        info!(
            "stats: {} connections, {} logged in, {} logins, {:.1} messages/s routed, \
             {} bytes queued ({} held of --max-memory {}), {} evictions",
            stats.connections_open,
            stats.peers_logged_in,
            stats.logins - self.last.logins,
            routed as f64 / secs,
            stats.bytes_queued,
            stats.queue_memory,
            stats.max_memory,
            stats.slow_consumers_evicted - self.last.slow_consumers_evicted,
        );
        self.last = *stats;
        self.last_at = now;
        // The next line a period after this one was due, not after it was written: no drift.
        while self.due <= now {
            self.due += self.every;
        }
    }
}
