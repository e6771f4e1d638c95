//! The requests sent on the current connection, each waiting in order for its reply: what
//! each carries to act on its answer, and how a log line names it.

use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use crate::cluster::events::Who;
use crate::cluster::route_batch::RouteBatch;

/// A request sent on the current connection, waiting for its reply.
#[derive(Debug)]
pub(super) enum Request {
    Hello,
    /// `ROLE`, when the address came from a sentinel: it must say `master`.
    Role,
    /// `SCRIPT LOAD` of the script whose SHA1 is this.
    Load(&'static str),
    Subscribe,
    Hold {
        sent_at: Instant,
        /// Sent with the node's peers' names said to exist.
        has_names: bool,
        /// The first of a connection (a reclaim of every name follows it anyway).
        first: bool,
    },
    /// Claims for logins.
    Claim {
        names: Vec<(Who, Rc<str>)>,
    },
    /// Claims of the names of peers already logged in, after a reconnect.
    Reclaim {
        names: Vec<(Who, Rc<str>)>,
    },
    Release,
    Route(RouteBatch),
    Publish,
    Leave,
}

/// What a log line says about a request: its kind and size, not its bytes.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Hello => write!(f, "HELLO"),
            Request::Role => write!(f, "ROLE"),
            Request::Load(sha) => write!(f, "SCRIPT LOAD of {sha}"),
            Request::Subscribe => write!(f, "SUBSCRIBE"),
            Request::Hold { .. } => write!(f, "the hold's renewal"),
            Request::Claim { names } => write!(f, "a claim of {} names", names.len()),
            Request::Reclaim { names } => write!(f, "a reclaim of {} names", names.len()),
            Request::Release => write!(f, "a release"),
            Request::Route(batch) => write!(f, "a route to {} destinations", batch.dest_count()),
            Request::Publish => write!(f, "PUBLISH"),
            Request::Leave => write!(f, "the node's leave"),
        }
    }
}
