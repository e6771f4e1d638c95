//! `a-chat`: the chat server, its line client and its load generator.

mod bench;
mod cli;
mod common;
mod logger;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logger::init(cli.verbose, cli.quiet);
    let result = match cli.command {
        cli::Command::Server(args) => serve::run(args),
        cli::Command::Client { addr } => {
            a_chat::client::run(addr.as_str()).map(|()| ExitCode::SUCCESS)
        }
        cli::Command::Bench(args) => bench::main(&args),
    };
    result.unwrap_or_else(|error| {
        log::error!("{error}");
        ExitCode::from(2)
    })
}
