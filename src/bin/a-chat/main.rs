//! `a-chat`: the chat server, its line client and its load generator.

mod bench;
mod cli;
mod client;
mod cluster;
mod common;
mod logger;
mod serve;
mod stream;
mod tls_client;
mod ws_client;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return cli::usage_error(&error),
    };
    logger::init(cli.verbose, cli.quiet);
    let result = match cli.command {
        cli::Command::Server(args) => serve::run(args),
        cli::Command::Client(args) => client::run(&args),
        cli::Command::Bench(args) => bench::main(&args),
    };
    result.unwrap_or_else(|error| {
        // Straight to standard error, whatever the log level: `-qqq` or `RUST_LOG=off` silence
        // the log, not the reason the program stops.
        let _ = writeln!(std::io::stderr().lock(), "a-chat: error: {error}");
        ExitCode::from(2)
    })
}
