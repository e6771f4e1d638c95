//! a-chat: a line-based chat server that holds tens of thousands of connections on one
//! `mio` thread, never loses a message it accepted, and shuts down cleanly.
//!
//! A client sends its name as its first line, then lines such as `alice, bob: hello`; each
//! named peer receives `from NAME: hello`. The wire protocol and the server's behaviour are
//! described in `PROTOCOL.md` at the root of the repository.
//!
//! # Layout
//! - [`framer`]: bytes in, complete lines out, with a bound on the unfinished line.
//! - [`parse`]: login names and `DESTS: TEXT` lines, borrowed from the input.
//! - [`Chat`] (`chat`, `broker`, `peer`, `outbox`): the IO-free core. Every connection's
//!   state machine, the directory of names, routing, timers and the shutdown sequence, driven
//!   through the [`Transport`] trait so that tests and fuzzers run it in memory.
//! - [`Server`] (`server`, `listener`): the thin `mio` driver around the core, on a `Poll` the
//!   caller owns.
//! - [`memory`]: the core driven in memory, for tests, fuzzers and simulations.
//! - [`client`]: the line client of `a-chat client`.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

mod broker;
mod chat;
pub mod client;
mod config;
pub mod framer;
mod listener;
pub mod memory;
mod outbox;
pub mod parse;
mod peer;
mod server;
mod stats;

pub use chat::{Chat, ReadOutcome, Transport};
pub use config::Config;
pub use listener::{LISTEN_BACKLOG, bind_listener};
pub use parse::LineError;
pub use peer::CloseReason;
pub use server::{Server, Tokens};
pub use stats::Stats;
