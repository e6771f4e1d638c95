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
//! only the tokens the host lends it. After every poll the host hands it the whole batch of
//! events ([`Server::handle_events`], which also runs its timers, so it is called after a
//! timeout too), sleeps no longer than [`Server::timeout`], and decides when to shut down
//! (signals are the host's business). The library has no CLI dependencies:
//! `a-chat = { version = "0.1", default-features = false }` builds it on `mio`, `slab`, `log`,
//! `rustix` and `unicode-properties` alone.
//!
//! ```
//! use std::io::{BufRead, BufReader, Read, Write};
//! use std::net::TcpStream;
//! use std::sync::Arc;
//!
//! use a_chat::{Config, Server, Tokens};
//! use mio::{Events, Poll, Token, Waker};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut poll = Poll::new()?;
//! // Token 0 stays the host's (a Waker, here); the chat server gets 100..1100.
//! const STOP: Token = Token(0);
//! let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
//! let tokens = Tokens { first: Token(100), count: 1000 };
//! let config = Config { max_conns: 900, ..Config::default() };
//! let mut chat = Server::bind(config, &["127.0.0.1:0".parse().unwrap()], tokens)?;
//! chat.register(poll.registry())?;
//!
//! // A client, for the example: alice logs in, messages herself, then asks the host to stop
//! // and reads until the server closes.
//! let addr = chat.local_addrs()[0];
//! let alice = std::thread::spawn(move || -> std::io::Result<String> {
//!     let mut stream = TcpStream::connect(addr)?;
//!     stream.write_all(b"alice\nalice: hello\n")?;
//!     let mut reader = BufReader::new(stream);
//!     let mut line = String::new();
//!     reader.read_line(&mut line)?;
//!     waker.wake()?;
//!     reader.read_to_string(&mut line)?; // end of stream: the server shut its side
//!     Ok(line)
//! });
//!
//! let mut events = Events::with_capacity(256);
//! while !chat.is_finished() {
//!     // Sleep until an event or the server's next timer; no polling every few milliseconds.
//!     poll.poll(&mut events, chat.timeout())?;
//!     chat.handle_events(poll.registry(), &events); // after every poll, events or not
//!     for event in events.iter().filter(|e| !tokens.contains(e.token())) {
//!         if event.token() == STOP {
//!             // The host decides to stop: what is queued is delivered, then each
//!             // connection is closed once its peer closes.
//!             chat.begin_shutdown(poll.registry());
//!         }
//!     }
//! }
//! assert_eq!(alice.join().unwrap()?, "from alice: hello\n");
//! assert_eq!(chat.stats().messages_routed, 1);
//! assert_eq!(chat.timeout(), None); // finished: inert, the host may poll on without it
//! # Ok(())
//! # }
//! ```
//!
//! `examples/embedded.rs` is a complete host: a UDP echo service and a timer of its own beside
//! the chat server, with Ctrl-C handled by the host.
//!
//! # Layout: one face per kind of user
//! - **The crate root is the embedder's.** [`Server`] (`src/net/`): the thin `mio` driver
//!   around the core, on a `Poll` the caller owns; [`bind_listener`] makes its listening
//!   sockets ([`LISTEN_BACKLOG`]). [`Config`] and [`Tokens`] go in; [`Stats`] (with
//!   [`ClusterStats`], and lines refused per [`LineError`]) comes out. [`METRICS_CONNECTIONS`]
//!   bounds the metrics endpoint's connections; `HANDSHAKE_STEPS_PER_TURN` (feature `tls`)
//!   the TLS handshakes stepped per turn. The modules an embedder may use:
//!   - [`metrics`]: the counters in the Prometheus text format, and the HTTP exchange of the
//!     server's own metrics endpoint.
//!   - [`process`]: the open-file limit, physical memory, resident memory and CPU time.
//!   - [`io_errors`]: `would_block` and `interrupted`, the errors a non-blocking loop handles
//!     by name.
//!   - `tls` (feature `tls`): TLS sessions with rustls as a [`core::Transport`], and PEM
//!     loading.
//!   - cluster mode (feature `cluster`, `src/cluster/`): its one public item is
//!     `ClusterConfig` (the Redis address, the names' TTL, [`Server::with_cluster`]'s
//!     argument); its counters are [`ClusterStats`].
//! - **[`core`] is for writers of another driver**: [`core::Chat`] (`src/chat/`), the IO-free
//!   core (every connection's state machine, the directory of names, routing, timers and the
//!   shutdown sequence, driven through the [`core::Transport`] trait; its docs give the
//!   driver's call order), [`core::CloseReason`], [`core::DEFAULT_READ_BUDGET`], and the
//!   IO-free pieces [`core::framer`] (bytes in, complete lines out, with a bound on the
//!   unfinished line) and [`core::parse`] (login names and `DESTS: TEXT` lines, borrowed from
//!   the input).
//! - **[`sim`] is for tests, fuzzers and simulations**: the core driven in memory
//!   ([`sim::MemoryServer`] over [`sim::MemoryTransport`]) and the deterministic random stream
//!   [`sim::XorShift`].
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

mod chat;
#[cfg(feature = "cluster")]
mod cluster;
mod config;
pub mod core;
#[cfg(any(feature = "metrics", feature = "ws"))]
mod http_head;
pub mod io_errors;
pub mod metrics;
mod net;
pub mod process;
mod rand;
pub mod sim;
mod stats;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "ws")]
pub mod ws;

pub use crate::core::parse::LineError;
#[cfg(feature = "cluster")]
pub use cluster::ClusterConfig;
pub use config::Config;
#[cfg(feature = "tls")]
pub use net::HANDSHAKE_STEPS_PER_TURN;
pub use net::{LISTEN_BACKLOG, METRICS_CONNECTIONS, Server, Tokens, bind_listener};
pub use stats::{ClusterStats, Stats};

// Inside the crate the core's IO-free pieces keep their short paths (`crate::framer`,
// `crate::parse`); outside it they are `a_chat::core::framer` and `a_chat::core::parse`.
use crate::core::{framer, parse};
