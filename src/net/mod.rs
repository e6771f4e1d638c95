//! The `mio` drivers: the sockets, tokens, readiness and clock around the IO-free core.
//!
//! | file | owns |
//! | --- | --- |
//! | `server.rs` | [`Server`]: the loop: events, the turn, timers, shutdown |
//! | `server/setup.rs` | making a server, its optional sources, registering it |
//! | `server/accept.rs` | accepting: admitting connections, the accept back-off |
//! | `connection.rs` | a TCP connection as a [`crate::core::Transport`], plain, TLS or WebSocket |
//! | `handshakes.rs` | TLS handshakes queued, a bounded number of steps per turn |
//! | `layout.rs` | what each token of the server's share stands for |
//! | `metrics.rs` | the `GET /metrics` endpoint: its listener and HTTP connections |
//! | `redis.rs` | cluster mode's socket to Redis |
//! | `sources.rs` | the optional sources (TLS handshakes, metrics, Redis) or their stand-ins when their feature is off |
//! | `listener.rs` | listening sockets: binding them with a large backlog, and each one's TLS configuration |
//! | `tokens.rs` | [`Tokens`]: the share of the host's tokens |

mod connection;
#[cfg(feature = "tls")]
mod handshakes;
mod layout;
mod listener;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "cluster")]
mod redis;
#[cfg(feature = "cluster")]
mod sentinel;
mod server;
mod sources;
mod tokens;

#[cfg(feature = "tls")]
pub use handshakes::HANDSHAKE_STEPS_PER_TURN;
pub use layout::METRICS_CONNECTIONS;
pub use listener::{LISTEN_BACKLOG, bind_listener};
pub use server::Server;
pub use tokens::Tokens;
