//! [`Tokens`]: the share of a host's `Poll` tokens a server may use.

use mio::Token;

/// The share of a `Poll`'s tokens the server may use: `count` tokens from `first` on.
///
/// The listeners take the first tokens, in the order given (those of `Server::new` or
/// `Server::bind`, then each added by `Server::with_tls_listener`); then the
/// metrics endpoint, when it has one (1 + [`crate::METRICS_CONNECTIONS`] = 17 tokens); then the
/// cluster's connection to Redis, when it is a node of a cluster (1 token, and 1 more for its
/// connection to a sentinel with `redis-sentinel://`); the rest are for
/// connections, one per slab key. The server never registers, matches or reuses a token
/// outside its share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens {
    /// The first token of the share.
    pub first: Token,
    /// How many tokens the share holds.
    pub count: usize,
}

impl Tokens {
    /// Whether `token` is in the share.
    pub fn contains(&self, token: Token) -> bool {
        token
            .0
            .checked_sub(self.first.0)
            .is_some_and(|index| index < self.count)
    }
}
