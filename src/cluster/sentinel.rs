//! Finding the master through Redis Sentinel, without IO (contract section 9): the node keeps
//! one connection to a sentinel at a time, subscribed to `+switch-master`, and asks it
//! `SENTINEL get-master-addr-by-name MASTER` whenever the link to Redis needs the master's
//! address (at start, and each time that link broke). A sentinel that cannot be reached, does
//! not answer within the deadline, does not know the master, or answers out of shape is left for
//! the next one, in turn; a round in which none answered is a failed attempt for the link
//! (rule 6.5, with the link's back-off). Replies are framed by the same bounded
//! [`resp::RespInput`] as Redis's. The driver (`src/net/redis.rs`) owns the socket.
//!
//! The call order: [`Sentinels::wants_connection`] → [`Sentinels::on_connecting`] →
//! [`Sentinels::on_connected`] (or [`Sentinels::on_disconnected`]); [`Sentinels::ask`] when the
//! link needs the master; [`Sentinels::on_input`] with what was read; [`Sentinels::take_news`]
//! after each call; [`Sentinels::output`]/[`Sentinels::consumed`] to write.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::resp::{self, Frame, Reply, ReplyError, RespInput};

/// The first wait before a new round of asking, after a round in which no sentinel answered;
/// it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the sentinels told, for the driver to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum News {
    /// The master, as a sentinel answered when asked.
    Master(SocketAddr),
    /// A sentinel announced `+switch-master` to this address.
    Switched(SocketAddr),
    /// A whole round of sentinels gave no master: the link's attempt failed.
    NoMaster,
}

/// Why a sentinel was left for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SentinelError {
    /// A reply the scanner or the decoder refused.
    Reply(ReplyError),
    /// The sentinel does not know a master of that name.
    UnknownMaster(String),
    /// A reply of the wrong shape (or an address that does not parse) to `request`.
    Unexpected { request: &'static str },
    /// The sentinel answered `request` with an error.
    Refused {
        request: &'static str,
        error: String,
    },
    /// The connection was not made within the deadline.
    NotConnected(Duration),
    /// A request was not answered within the deadline.
    Overdue {
        request: &'static str,
        deadline: Duration,
    },
}

impl From<ReplyError> for SentinelError {
    fn from(error: ReplyError) -> Self {
        SentinelError::Reply(error)
    }
}

impl fmt::Display for SentinelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SentinelError::Reply(error) => write!(f, "{error}"),
            SentinelError::UnknownMaster(name) => {
                write!(f, "the sentinel knows no master named {name}")
            }
            SentinelError::Unexpected { request } => {
                write!(f, "an unexpected reply to {request}")
            }
            SentinelError::Refused { request, error } => {
                write!(f, "the sentinel refused {request} ({error})")
            }
            SentinelError::NotConnected(deadline) => {
                write!(f, "the connection was not made within {deadline:?}")
            }
            SentinelError::Overdue { request, deadline } => {
                write!(
                    f,
                    "the sentinel did not answer {request} within {deadline:?}"
                )
            }
        }
    }
}

/// A request sent to the sentinel, waiting for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Hello,
    Subscribe,
    Ask,
}

impl Request {
    fn name(self) -> &'static str {
        match self {
            Request::Hello => "HELLO",
            Request::Subscribe => "SUBSCRIBE +switch-master",
            Request::Ask => "SENTINEL get-master-addr-by-name",
        }
    }
}

/// The connection to the current sentinel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// None; the next attempt at `retry_at`.
    Down {
        retry_at: Instant,
    },
    Connecting {
        since: Instant,
    },
    Connected,
    /// The node left its cluster: no more connections.
    Closed,
}

/// The sentinels of one master, and the node's connection to one of them.
#[derive(Debug)]
pub(crate) struct Sentinels {
    addrs: Vec<SocketAddr>,
    master: String,
    /// How long a sentinel may take to accept the connection or answer a request.
    deadline: Duration,
    /// The sentinel connected to, or tried next. Invariant: below `addrs.len()`.
    current: usize,
    /// Sentinels left in this round without an answer since the last one answered.
    failed_in_round: usize,
    backoff: Duration,
    state: State,
    /// Whether the link waits for the master's address: an ask is sent, or will be once
    /// connected.
    asking: bool,
    /// Invariant: empty unless connected.
    pending: VecDeque<Request>,
    /// Since when the sentinel owes an answer (the oldest request's send, or the last answer).
    /// Invariant: `Some` exactly while connected with requests waiting.
    waiting_since: Option<Instant>,
    out: Vec<u8>,
    /// Bytes read not decoded yet.
    input: RespInput,
    news: Vec<News>,
}

impl Sentinels {
    /// The sentinels at `addrs` (at least one) of the master named `master`; `deadline` for
    /// each connection and each answer.
    pub(crate) fn new(
        addrs: Vec<SocketAddr>,
        master: String,
        deadline: Duration,
        now: Instant,
    ) -> Self {
        assert!(!addrs.is_empty(), "at least one sentinel");
        Sentinels {
            addrs,
            master,
            deadline,
            current: 0,
            failed_in_round: 0,
            backoff: MIN_BACKOFF,
            state: State::Down { retry_at: now },
            asking: false,
            pending: VecDeque::new(),
            waiting_since: None,
            out: Vec::new(),
            input: RespInput::default(),

            news: Vec::new(),
        }
    }

    /// The master's name.
    pub(crate) fn master(&self) -> &str {
        &self.master
    }

    /// The sentinel to connect to now, if a connection is due.
    pub(crate) fn wants_connection(&self, now: Instant) -> Option<SocketAddr> {
        match self.state {
            State::Down { retry_at } if retry_at <= now => Some(self.addrs[self.current]),
            _ => None,
        }
    }

    /// The sentinel connected to, or being connected to.
    pub(crate) fn current(&self) -> SocketAddr {
        self.addrs[self.current]
    }

    /// Its place in the list given to [`Sentinels::new`].
    pub(crate) fn current_index(&self) -> usize {
        self.current
    }

    /// The driver started connecting to [`Sentinels::current`].
    pub(crate) fn on_connecting(&mut self, now: Instant) {
        if self.state != State::Closed {
            self.state = State::Connecting { since: now };
        }
    }

    /// The connection is up: RESP3, the subscription, and the ask if the link waits for it.
    /// The subscription goes first, so that no switch can fall between an answer and it.
    pub(crate) fn on_connected(&mut self, now: Instant) {
        self.state = State::Connected;
        self.out.clear();
        self.input.reset();
        resp::encode_command(&mut self.out, &[b"HELLO", b"3"]);
        self.pending.push_back(Request::Hello);
        resp::encode_command(&mut self.out, &[b"SUBSCRIBE", b"+switch-master"]);
        self.pending.push_back(Request::Subscribe);
        self.waiting_since = Some(now);
        if self.asking {
            self.send_ask(now);
        }
    }

    /// The link needs the master's address: asked now if connected, else once connected (at
    /// once if the connection waits only for the back-off after a round without an answer).
    /// Asking again while an answer is awaited does nothing.
    pub(crate) fn ask(&mut self, now: Instant) {
        if self.asking {
            return;
        }
        self.asking = true;
        match self.state {
            State::Connected => self.send_ask(now),
            State::Down { ref mut retry_at } => *retry_at = (*retry_at).min(now),
            State::Connecting { .. } | State::Closed => {}
        }
    }

    fn send_ask(&mut self, now: Instant) {
        resp::encode_command(
            &mut self.out,
            &[
                b"SENTINEL",
                b"get-master-addr-by-name",
                self.master.as_bytes(),
            ],
        );
        if self.pending.is_empty() {
            self.waiting_since = Some(now);
        }
        self.pending.push_back(Request::Ask);
    }

    /// The connection to [`Sentinels::current`] broke (or was not made, or was dropped for an
    /// error): the next sentinel is tried, at once within a round, after the back-off once
    /// every one failed (then, if the link waited, [`News::NoMaster`]).
    pub(crate) fn on_disconnected(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.pending.clear();
        self.waiting_since = None;
        self.out.clear();
        self.input.reset();
        self.current = (self.current + 1) % self.addrs.len();
        self.failed_in_round += 1;
        let mut retry_at = now;
        if self.failed_in_round >= self.addrs.len() {
            self.failed_in_round = 0;
            retry_at = now + self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            if std::mem::take(&mut self.asking) {
                self.news.push(News::NoMaster);
            }
        }
        self.state = State::Down { retry_at };
    }

    /// The node left its cluster: the driver closes the connection, and none is made again.
    pub(crate) fn close(&mut self) {
        self.state = State::Closed;
        self.pending.clear();
        self.waiting_since = None;
        self.out.clear();
        self.asking = false;
    }

    /// Bytes from the sentinel. An error means the driver drops the connection (and calls
    /// [`Sentinels::on_disconnected`]): it says why in a sentence.
    pub(crate) fn on_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), SentinelError> {
        self.input.append(bytes);
        let waiting = self.pending.len();
        let mut at = 0;
        let result = loop {
            match self.input.next_frame(at) {
                Ok(Some((frame, len))) => {
                    let base = at;
                    at += len;
                    if let Err(e) = self.on_frame(frame, base) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        if self.pending.len() < waiting {
            self.waiting_since = (!self.pending.is_empty()).then_some(now);
        }
        self.input.consume(at);
        result
    }

    fn on_frame(&mut self, frame: Frame, base: usize) -> Result<(), SentinelError> {
        let text = |range: &std::ops::Range<usize>| self.input.at(base, range);
        let reply = match frame {
            Frame::Push(parts) => {
                match parts.first().map(text) {
                    Some(b"message") if parts.len() == 3 => {
                        if let Some(addr) = switch_to(text(&parts[2]), &self.master) {
                            self.news.push(News::Switched(addr));
                        }
                        return Ok(());
                    }
                    // SUBSCRIBE's confirmation is its reply.
                    Some(b"subscribe") if self.pending.front() == Some(&Request::Subscribe) => None,
                    _ => return Ok(()),
                }
            }
            Frame::Error(error) => {
                let request = self.pending.pop_front().map_or("no request", Request::name);
                return Err(SentinelError::Refused {
                    request,
                    error: error.chars().take(200).collect(),
                });
            }
            Frame::Reply(reply) => Some(reply),
        };
        let Some(request) = self.pending.pop_front() else {
            return Err(SentinelError::Unexpected {
                request: "no request",
            });
        };
        match (request, &reply) {
            (Request::Hello, Some(_)) => Ok(()),
            (Request::Subscribe, None) => Ok(()),
            (Request::Ask, Some(Reply::Strings(parts))) if parts.len() == 2 => {
                let addr = parse_addr(text(&parts[0]), text(&parts[1])).ok_or(
                    SentinelError::Unexpected {
                        request: "SENTINEL get-master-addr-by-name",
                    },
                )?;
                self.answered();
                self.news.push(News::Master(addr));
                Ok(())
            }
            // A null: the sentinel does not know the master (yet).
            (Request::Ask, Some(Reply::Other)) => {
                Err(SentinelError::UnknownMaster(self.master.clone()))
            }
            (request, _) => Err(SentinelError::Unexpected {
                request: request.name(),
            }),
        }
    }

    /// A sentinel answered: the round and the back-off start over.
    fn answered(&mut self) {
        self.asking = false;
        self.failed_in_round = 0;
        self.backoff = MIN_BACKOFF;
    }

    /// What the sentinels told since the last call.
    pub(crate) fn take_news(&mut self) -> Vec<News> {
        std::mem::take(&mut self.news)
    }

    /// Encoded requests not yet written.
    pub(crate) fn output(&self) -> &[u8] {
        &self.out
    }

    /// The driver wrote `n` bytes of [`Sentinels::output`].
    pub(crate) fn consumed(&mut self, n: usize) {
        self.out.drain(..n);
    }

    /// What the sentinel left unanswered past the deadline, or a connection not made within
    /// it: then the driver drops the connection.
    pub(crate) fn overdue(&self, now: Instant) -> Option<SentinelError> {
        match self.state {
            State::Connecting { since } if since + self.deadline <= now => {
                Some(SentinelError::NotConnected(self.deadline))
            }
            State::Connected => {
                let since = self.waiting_since?;
                (since + self.deadline <= now).then(|| SentinelError::Overdue {
                    request: self.pending.front().map_or("a request", |r| r.name()),
                    deadline: self.deadline,
                })
            }
            _ => None,
        }
    }

    /// The earliest time there is something to do: connect, or find the sentinel overdue.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Down { retry_at } => Some(retry_at),
            State::Connecting { since } => Some(since + self.deadline),
            State::Connected => self.waiting_since.map(|since| since + self.deadline),
            State::Closed => None,
        }
    }
}

/// The new master of a `+switch-master` message (`NAME OLD-IP OLD-PORT NEW-IP NEW-PORT`) if it
/// is about `master`.
fn switch_to(message: &[u8], master: &str) -> Option<SocketAddr> {
    let message = std::str::from_utf8(message).ok()?;
    let parts: Vec<&str> = message.split(' ').collect();
    match parts.as_slice() {
        [name, _, _, ip, port] if *name == master => parse_addr(ip.as_bytes(), port.as_bytes()),
        _ => None,
    }
}

/// An address from a sentinel: an IP address (sentinels announce addresses, not hostnames,
/// unless `announce-hostnames` is on, which this does not follow) and a port.
fn parse_addr(ip: &[u8], port: &[u8]) -> Option<SocketAddr> {
    let ip: IpAddr = std::str::from_utf8(ip).ok()?.parse().ok()?;
    let port: u16 = std::str::from_utf8(port).ok()?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests;
