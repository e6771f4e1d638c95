//! `a-chat server`: the standalone server, a `Poll` of its own with signals as one more source.

use std::io::{self, Write};
use std::process::ExitCode;

use a_chat::process::raise_open_file_limit;
use a_chat::{Config, Server, Tokens};
use log::{info, warn};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::cli::ServerArgs;

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
    let mut stdout = io::stdout().lock();
    for addr in server.local_addrs() {
        writeln!(stdout, "listening on {addr}")?;
    }
    stdout.flush()?;
    info!(
        "serving: max-line {} B, max-queue {} B, max-conns {}, open-file limit {nofile}",
        config.max_line, config.max_queue, config.max_conns
    );

    server.register(poll.registry())?;

    let mut events = Events::with_capacity(1024);
    while !server.is_finished() {
        if let Err(e) = poll.poll(&mut events, server.timeout()) {
            if e.kind() == io::ErrorKind::Interrupted {
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
