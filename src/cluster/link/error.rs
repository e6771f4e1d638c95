//! Why the link to Redis is broken ([`LinkError`]): each is a dropped connection and a new
//! one, and its `Display` is the sentence the log and the tests read.

use std::fmt;
use std::time::Duration;

use crate::cluster::resp::{Frame, Reply, ReplyError};

/// Why the connection to Redis must be dropped (and made again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// A reply the scanner or the decoder refused.
    Reply(ReplyError),
    /// A reply came with no request waiting for it.
    Unawaited(Shape),
    /// A reply of the wrong shape for the request it answers (described by `request`).
    Unexpected { request: String, reply: Shape },
    /// Redis wants a password before HELLO, and the node has none.
    NoAuth,
    /// Redis refused the handshake's user and password (or the user may not run `HELLO`):
    /// its `error`, which never holds the password.
    Refused { user: String, error: String },
    /// Redis refused the handshake's `request` with `error`: it is older than 6.
    TooOld { request: String, error: String },
    /// `ROLE` did not say `master` (what it said, or the error it was refused with): the
    /// sentinel's answer was stale (a demoted master, a replica).
    NotMaster(String),
    /// `ROLE` was refused with this error (an ACL user without `+role`).
    RoleRefused(String),
    /// The connection was not made within the deadline.
    NotConnected(Duration),
    /// Redis did not answer `request` (if one waited) within the deadline.
    Overdue {
        request: Option<String>,
        deadline: Duration,
    },
}

impl From<ReplyError> for LinkError {
    fn from(error: ReplyError) -> Self {
        LinkError::Reply(error)
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Reply(error) => write!(f, "{error}"),
            LinkError::Unawaited(shape) => write!(f, "a reply no request waits for ({shape})"),
            LinkError::Unexpected { request, reply } => {
                write!(f, "an unexpected reply to {request} ({reply})")
            }
            LinkError::NoAuth => write!(
                f,
                "Redis requires a password (NOAUTH): give it in the cluster URL or in {}",
                crate::cluster::PASSWORD_ENV
            ),
            LinkError::Refused { user, error } => {
                write!(f, "redis refused the password for user {user} ({error})")
            }
            LinkError::TooOld { request, error } => write!(
                f,
                "Redis refused {request} ({error}): Redis 6 or later is needed"
            ),
            LinkError::NotMaster(role) => write!(
                f,
                "Redis at the address the sentinels gave is not the master (ROLE: {role}): \
                 asking the sentinels again"
            ),
            LinkError::RoleRefused(error) => write!(
                f,
                "Redis refused ROLE ({error}): with redis-sentinel:// the node checks that it \
                 reached the master, and its ACL user needs +role"
            ),
            LinkError::NotConnected(deadline) => write!(
                f,
                "the connection to Redis was not made within {deadline:?}"
            ),
            LinkError::Overdue {
                request: Some(request),
                deadline,
            } => write!(f, "Redis did not answer {request} within {deadline:?}"),
            LinkError::Overdue {
                request: None,
                deadline,
            } => write!(f, "Redis did not answer within {deadline:?}"),
        }
    }
}

/// What a log line says about a reply: its kind and size, not its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Push,
    Error,
    Integer,
    Integers(usize),
    Bytes(usize),
    Strings(usize),
    Other,
}

impl Shape {
    pub(super) fn of_frame(frame: &Frame) -> Shape {
        match frame {
            Frame::Push(_) => Shape::Push,
            Frame::Error(_) => Shape::Error,
            Frame::Reply(reply) => Shape::of(Some(reply)),
        }
    }

    /// The shape of a reply; `None` is a push taken as a reply.
    pub(super) fn of(reply: Option<&Reply>) -> Shape {
        match reply {
            None => Shape::Push,
            Some(Reply::Integer(_)) => Shape::Integer,
            Some(Reply::Integers(all)) => Shape::Integers(all.len()),
            Some(Reply::Bytes(range)) => Shape::Bytes(range.len()),
            Some(Reply::Strings(all)) => Shape::Strings(all.len()),
            Some(Reply::Other) => Shape::Other,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Push => write!(f, "a push message"),
            Shape::Error => write!(f, "an error"),
            Shape::Integer => write!(f, "an integer"),
            Shape::Integers(1) => write!(f, "an array of 1 integer"),
            Shape::Integers(n) => write!(f, "an array of {n} integers"),
            Shape::Bytes(1) => write!(f, "a string of 1 byte"),
            Shape::Bytes(n) => write!(f, "a string of {n} bytes"),
            Shape::Strings(n) => write!(f, "an array of {n} elements"),
            Shape::Other => write!(f, "a reply of another kind"),
        }
    }
}
