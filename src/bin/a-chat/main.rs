//! `a-chat`: the chat server and its line client.

mod cli;
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
    };
    result.unwrap_or_else(|error| {
        log::error!("{error}");
        ExitCode::from(2)
    })
}
