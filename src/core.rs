//! For writers of another driver (another event loop, another transport): the IO-free core.
//! [`Chat`] holds every connection's state machine, the directory of names, routing, timers and
//! the shutdown sequence, and is driven through the [`Transport`] trait; its docs give the
//! driver's call order. [`framer`] and [`parse`] are the IO-free pieces it is built from: bytes
//! in, complete lines out; login names and `DESTS: TEXT` lines. The `mio` driver at the crate
//! root ([`crate::Server`]) and the in-memory one ([`crate::sim`]) are two such drivers.

pub mod framer;
pub mod parse;

pub use crate::chat::{Chat, CloseReason, DEFAULT_READ_BUDGET, Transport};
