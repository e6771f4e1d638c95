//! a-chat: a line-based chat server that holds tens of thousands of connections on one
//! `mio` thread, never loses a message it accepted, and shuts down cleanly.
//!
//! A client sends its name as its first line, then lines such as `alice, bob: hello`; each
//! named peer receives `from NAME: hello`. The wire protocol and the server's behaviour are
//! described in `PROTOCOL.md` at the root of the repository.
//!
//! # Embedding
//!
//! [`Server`] runs on a `mio::Poll` that the host owns, beside the host's own sources, using
//! only the tokens the host lends it. The host forwards events, calls [`Server::process`]
//! after each batch, folds [`Server::timeout`] into its poll timeout, and decides when to shut
//! down (signals are the host's business):
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//!
//! use a_chat::{Config, Server, Tokens};
//! use mio::{Events, Poll, Token};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut poll = Poll::new()?;
//! // Tokens 0..100 stay the host's; the chat server gets 100..1100.
//! let tokens = Tokens { first: Token(100), count: 1000 };
//! let config = Config { max_conns: 900, ..Config::default() };
//! let mut chat = Server::bind(config, &["127.0.0.1:0".parse().unwrap()], tokens)?;
//! chat.register(poll.registry())?;
//!
//! // A client, for the example: it logs in as alice and messages herself.
//! let mut alice = TcpStream::connect(chat.local_addrs()?[0])?;
//! alice.write_all(b"alice\nalice: hello\n")?;
//! alice.set_nonblocking(true)?;
//! let mut reply = BufReader::new(alice.try_clone()?);
//! let mut line = String::new();
//!
//! let mut events = Events::with_capacity(256);
//! while !chat.is_finished() {
//!     let timeout = chat.timeout().unwrap_or(Duration::from_millis(10)).min(Duration::from_millis(10));
//!     poll.poll(&mut events, Some(timeout))?;
//!     for event in events.iter() {
//!         if !chat.handle_event(poll.registry(), event) {
//!             // The host's own event.
//!         }
//!     }
//!     chat.process(poll.registry());
//!     if !chat.is_shutting_down() && reply.read_line(&mut line).is_ok() {
//!         assert_eq!(line, "from alice: hello\n");
//!         // The host decides to stop: queued messages are delivered, then it finishes
//!         // once alice has closed.
//!         chat.begin_shutdown(poll.registry());
//!         alice.shutdown(std::net::Shutdown::Both)?;
//!     }
//! }
//! assert_eq!(chat.stats().messages_routed, 1);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/embedded.rs` is a complete host: a UDP echo service and a timer of its own beside
//! the chat server, with Ctrl-C handled by the host.
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
