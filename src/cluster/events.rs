//! What the cluster link and the chat core say to each other: the link's name for a local
//! connection ([`Who`]), the answers it gives ([`Claimed`], [`Undelivered`]) and the events the
//! core acts on ([`Event`]). Shared by the link and its route batches, importing neither.

use std::rc::Rc;

/// A local connection, as the link names it in its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Who {
    /// Its slab key (reused once it is gone).
    pub(crate) key: usize,
    /// Its number on this node: the core numbers its connections in order and never reuses a
    /// number, so this is also the CONN that names it across the cluster, in Redis's name
    /// records and in the records nodes send each other (`records.rs`, contract rule 6.9).
    pub(crate) generation: u64,
}

/// The answer to a login's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimed {
    Yes,
    /// Another node's peer holds the name.
    Taken,
    /// No answer from Redis (or the cluster recovers from a Redis restart).
    Unavailable,
}

/// What a routed message came to, when it is news for its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undelivered {
    NoSuchPeer,
    Unavailable,
}

/// What the core must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Claim {
        who: Who,
        name: Rc<str>,
        outcome: Claimed,
    },
    /// After a reconnect, another node held the name of `who`, a peer of this node.
    NameLost { who: Who, name: Rc<str> },
    /// A message from `who` to `dest` was not handed to a node.
    Route {
        who: Who,
        dest: Box<str>,
        outcome: Undelivered,
    },
    /// `count` of the destinations `who` routed ([`super::ClusterLink::route`]) have their answer:
    /// handed to a node, or a `Route` event before this one. Every routed destination is
    /// answered exactly once, the connection to Redis lost or not: the core counts its
    /// peers' lookups in flight by it.
    Answered { who: Who, count: usize },
    /// Records from other nodes (messages for peers here, bounces of messages from them): a
    /// channel message as it came, for the core to parse ([`super::records`]).
    Records(Vec<u8>),
    /// The hold on the names lapsed (no renewal for the TTL): every peer must go.
    HoldLost,
    /// Redis lost the node's key while it held names: the core gives them to
    /// [`super::ClusterLink::reclaim`].
    Reclaim,
}
