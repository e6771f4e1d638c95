//! Cluster mode's protocol logic, without IO: several nodes share one chat through Redis
//! (contract section 6). Names are claimed in Redis, each node subscribes to a channel of its
//! own, and a message for a name held elsewhere goes, batched per turn, through a script that
//! finds the holder and publishes to its node's channel. The chat core drives the link
//! (`src/chat/cluster.rs`); the `mio` driver owns the socket (`src/net/redis.rs`).
//!
//! | file | owns |
//! | --- | --- |
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

mod events;
mod link;
pub(crate) mod records;
mod resp;
mod route_batch;
mod scripts;
pub(crate) mod sentinel;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub(crate) use events::{Claimed, Event, Undelivered, Who};
pub(crate) use link::ClusterLink;

/// How a server joins a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The Redis server's address.
    pub redis: SocketAddr,
    /// How long a node's names outlive it (`--cluster-ttl`): a node that cannot renew its
    /// hold for this long closes its peers, and a node that died has its names freed after it.
    pub ttl: Duration,
}

impl ClusterConfig {
    /// The default `--cluster-ttl`.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

    /// A configuration for the Redis of `url` (`redis://HOST:PORT`, the port 6379 if left out)
    /// with the default TTL.
    pub fn from_url(url: &str) -> Result<ClusterConfig, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("{url}: a cluster URL is redis://HOST:PORT"))?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('@') || rest.contains('/') {
            return Err(format!(
                "{url}: a user, password or database in the URL is not supported"
            ));
        }
        let with_port = if rest
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'))
        {
            rest.to_string()
        } else {
            format!("{rest}:6379")
        };
        let redis = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: resolves to no address"))?;
        Ok(ClusterConfig {
            redis,
            ttl: Self::DEFAULT_TTL,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let config = ClusterConfig::from_url("redis://127.0.0.1:7000").unwrap();
        assert_eq!(config.redis, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(config.ttl, Duration::from_secs(10));
        let config = ClusterConfig::from_url("redis://127.0.0.1").unwrap();
        assert_eq!(config.redis.port(), 6379);
        let config = ClusterConfig::from_url("redis://[::1]:7001/").unwrap();
        assert_eq!(config.redis, "[::1]:7001".parse().unwrap());
        assert!(ClusterConfig::from_url("http://127.0.0.1:1").is_err());
        assert!(ClusterConfig::from_url("redis://user:pw@127.0.0.1:1").is_err());
    }
}
