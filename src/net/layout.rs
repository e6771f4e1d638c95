//! How a server lays out the token share a host lent it: its listeners first, in the order
//! given, then the metrics endpoint (its listener and a fixed number of connection slots),
//! then the cluster's Redis connection (and its sentinel connection, with `redis-sentinel://`),
//! then the chat connections, one per slab key.

use std::io;

use mio::Token;

use super::tokens::Tokens;

/// Connections the metrics endpoint serves at once; more are closed as they are accepted.
/// They do not count against `max_conns`.
pub const METRICS_CONNECTIONS: usize = 16;

/// What a token of the share stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Listener(usize),
    MetricsListener,
    MetricsConnection(usize),
    Redis,
    /// The connection to a sentinel (`redis-sentinel://`).
    Sentinel,
    Connection(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) tokens: Tokens,
    pub(super) listeners: usize,
    pub(super) metrics: bool,
    pub(super) redis: bool,
    /// Whether a sentinel connection follows Redis's token. Invariant: only with `redis`.
    pub(super) sentinel: bool,
}

impl Layout {
    fn metrics_tokens(&self) -> usize {
        if self.metrics {
            1 + METRICS_CONNECTIONS
        } else {
            0
        }
    }

    fn redis_index(&self) -> usize {
        self.listeners + self.metrics_tokens()
    }

    /// Tokens taken before the first connection's.
    pub(super) fn reserved(&self) -> usize {
        self.redis_index() + usize::from(self.redis) + usize::from(self.sentinel)
    }

    pub(super) fn source(&self, token: Token) -> Option<Source> {
        let index = token
            .0
            .checked_sub(self.tokens.first.0)
            .filter(|&index| index < self.tokens.count)?;
        let metrics = self.listeners;
        Some(if index < self.listeners {
            Source::Listener(index)
        } else if index < self.redis_index() {
            match index - metrics {
                0 => Source::MetricsListener,
                slot => Source::MetricsConnection(slot - 1),
            }
        } else if index == self.redis_index() && self.redis {
            Source::Redis
        } else if index < self.reserved() {
            Source::Sentinel
        } else {
            Source::Connection(index - self.reserved())
        })
    }

    /// Fails with `InvalidInput` when the share cannot hold what the layout reserves plus
    /// `max_conns` connections, or runs past `usize::MAX`.
    pub(super) fn check_share(&self, max_conns: usize) -> io::Result<()> {
        let tokens = self.tokens;
        let needed = self.reserved().saturating_add(max_conns.max(1));
        if tokens.count >= needed && tokens.first.0.checked_add(tokens.count).is_some() {
            return Ok(());
        }
        let plural = if self.listeners == 1 { "" } else { "s" };
        let extra = self.reserved() - self.listeners;
        let extra = if extra > 0 {
            format!(", {extra} tokens of the metrics endpoint and the cluster")
        } else {
            String::new()
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a token share of {} from token {} cannot hold {} listener{plural}{extra} and \
                 max_conns = {max_conns} connections (lower Config::max_conns, or lend more tokens)",
                tokens.count, tokens.first.0, self.listeners,
            ),
        ))
    }

    /// The token of `source`, if the share holds it.
    pub(super) fn token(&self, source: Source) -> Option<Token> {
        let index = match source {
            Source::Listener(i) => i,
            Source::MetricsListener => self.listeners,
            Source::MetricsConnection(slot) => self.listeners + 1 + slot,
            Source::Redis => self.redis_index(),
            Source::Sentinel => self.redis_index() + 1,
            Source::Connection(key) => key.checked_add(self.reserved())?,
        };
        (index < self.tokens.count).then(|| Token(self.tokens.first.0 + index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_round_trips_through_its_token() {
        let layout = Layout {
            tokens: Tokens {
                first: Token(10),
                count: 100,
            },
            listeners: 2,
            metrics: true,
            redis: true,
            sentinel: true,
        };
        let sources = [
            Source::Listener(0),
            Source::Listener(1),
            Source::MetricsListener,
            Source::MetricsConnection(0),
            Source::MetricsConnection(METRICS_CONNECTIONS - 1),
            Source::Redis,
            Source::Sentinel,
            Source::Connection(0),
            // 2 listeners, the metrics listener and its slots, Redis, a sentinel: the rest is
            // 78 keys.
            Source::Connection(100 - (2 + 1 + METRICS_CONNECTIONS + 2) - 1),
        ];
        for source in sources {
            let token = layout.token(source).unwrap();
            assert_eq!(layout.source(token), Some(source));
        }
        assert_eq!(layout.token(Source::Connection(100)), None);
        assert_eq!(layout.source(Token(9)), None);
        assert_eq!(layout.source(Token(110)), None);
        assert_eq!(layout.token(Source::Listener(0)), Some(Token(10)));
        assert_eq!(layout.token(Source::Connection(0)), Some(Token(10 + 21)));
    }
}
