//! The `mio` drivers: the sockets, tokens, readiness and clock around the IO-free core.
//!
//! | file | owns |
//! | --- | --- |
//! | `server.rs` | [`Server`]: listeners, accepting, events, the turn, shutdown |
//! | `connection.rs` | a TCP connection as a [`crate::Transport`] |
//! | `listener.rs` | listening sockets with a large backlog |

mod connection;
mod listener;
mod server;

pub use listener::{LISTEN_BACKLOG, bind_listener};
pub use server::{Server, Tokens};
