//! Cluster mode's protocol logic, without IO: several nodes share one chat through Redis
//! (contract section 6). Names are claimed in Redis, each node subscribes to a channel of its
//! own, and a message for a name held elsewhere goes, batched per turn, through a script that
//! finds the holder and publishes to its node's channel. The chat core drives the link
//! (`src/chat/cluster.rs`); the `mio` driver owns the socket (`src/net/redis.rs`).
//!
//! | file | owns |
//! | --- | --- |
//! | `config.rs` | how a server joins: `ClusterConfig`, where Redis is, the credentials, TLS |
//! | `url.rs` | the cluster URL's forms parsed into a `ClusterConfig` |
//! | `link.rs` | the link to Redis: its lifecycle driven, the bytes from Redis framed, the deadline on its answers |
//! | `link/state.rs` | the link's lifecycles: the connection's `State`, the node's `Hold`, a recovery window |
//! | `link/requests.rs` | the requests waiting for their replies, and how a log line names them |
//! | `link/replies.rs` | each kind of reply matched to its request and turned into events |
//! | `link/hold.rs` | the hold's renewals and their answers, its lapse, the recovery windows |
//! | `link/batches.rs` | the turn's releases, claims, routes and bounces, encoded into one write |
//! | `link/error.rs` | why a link breaks (`LinkError`), in the sentences the log prints |
//! | `events.rs` | what the link and the core say to each other: `Who`, the answers, the events |
//! | `scripts.rs` | the Lua scripts, and the keys and channels in Redis |
//! | `records.rs` | the records nodes send each other |
//! | `route_batch.rs` | the records of one route batch, and their destinations |
//! | `sentinel.rs` | finding the master through Redis Sentinel: the sentinels asked in turn, `+switch-master` followed |
//! | `resp/` | RESP3 encoding and decoding through `redis-protocol` (`mod.rs`), each reply framed first by a bounded, resumable scanner (`scanner.rs`) |

mod config;
mod events;
mod link;
pub(crate) mod records;
mod resp;
mod route_batch;
mod scripts;
pub(crate) mod sentinel;
mod url;

pub use config::{ClusterConfig, PASSWORD_ENV, RedisAddr, RedisPassword, RedisTarget};
pub(crate) use events::{Claimed, Event, Undelivered, Who};
pub(crate) use link::{ClusterLink, LinkError};
