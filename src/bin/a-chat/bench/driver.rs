//! The generator's event loop: one `mio::Poll` over every connection (token `i` for connection
//! `i`, then the open loop's timer), and what a readiness event does to a connection in any
//! phase. The phases' own loops are in `connect.rs` and `load.rs`.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::event::Event;
use mio::{Events, Poll, Token};

use super::args::Plan;
use super::conn::{Conn, Phase};
use super::deliveries::{Deliveries, latency_histogram};
use super::progress::{Progress, Snapshot};
use super::wire::{self, Received};
use a_chat::io_errors::interrupted;

/// Bytes read from a socket at a time, into the one scratch buffer of the loop.
const SCRATCH: usize = 64 * 1024;

/// The loop and every connection; connection `i` has token `i`.
#[derive(Debug)]
pub struct Driver {
    pub plan: Plan,
    pub poll: Poll,
    events: Events,
    pub conns: Vec<Conn>,
    scratch: Vec<u8>,
    /// The run's start: message timestamps count from it.
    pub start: Instant,
    /// The run's end at the latest (`--timeout`).
    pub deadline: Instant,
    pub books: Deliveries,
    /// Connections connecting or logging in.
    pub in_flight: usize,
    pub logged_in: usize,
    pub failed: usize,
    /// Per connection, connect to login, in microseconds.
    pub connect_login_us: Histogram<u64>,
    /// When a copy of a message last arrived.
    pub last_arrival: Option<Instant>,
    pub progress: Progress,
    /// Words before the phase in progress lines (a sweep's step).
    pub step_label: String,
    /// Copies lost in earlier sweep steps.
    pub lost_before: u64,
}

/// What one event changed, for the phase loops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The connection's outbound buffer became empty (a sender may send more).
    pub drained: bool,
    /// Bytes written to the socket.
    pub written: usize,
}

impl Driver {
    /// A loop for `plan`, with no connection started yet.
    pub fn new(plan: Plan) -> io::Result<Driver> {
        let start = Instant::now();
        let max_us = u64::try_from(plan.timeout.as_micros()).unwrap_or(u64::MAX);
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: (0..plan.conns).map(|_| Conn::new()).collect(),
            scratch: vec![0; SCRATCH],
            start,
            deadline: start + plan.timeout,
            books: Deliveries::new(plan.conns, plan.senders, plan.messages, plan.fanout, max_us)
                .with_nodes(plan.addrs.len()),
            in_flight: 0,
            logged_in: 0,
            failed: 0,
            connect_login_us: latency_histogram(max_us),
            last_arrival: None,
            progress: Progress::new(false),
            step_label: String::new(),
            lost_before: 0,
            plan,
        })
    }

    /// Shows a progress line if one is due.
    pub fn show_progress(&mut self, phase: &str) {
        let now = Instant::now();
        if !self.progress.is_due(now) {
            return;
        }
        let Driver {
            progress,
            books,
            step_label,
            ..
        } = self;
        let label = if step_label.is_empty() {
            phase.to_string()
        } else {
            format!("{step_label}, {phase}")
        };
        let (logged_in, conns, lost) = (self.logged_in, self.plan.conns, self.lost_before);
        progress.update(now, || Snapshot {
            phase: &label,
            logged_in,
            conns,
            delivered: books.counts.delivered,
            in_flight: books.expected() - books.counts.delivered,
            lost,
        });
    }

    /// Nanoseconds from the run's start to `now`.
    pub fn ns_since_start(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The token of the open loop's timer, past the connections'.
    pub fn timer_token(&self) -> Token {
        Token(self.conns.len())
    }

    /// Polls once, at most until `until` (and never past the deadline), and handles the events;
    /// `on_outcome` hears what each event changed.
    pub fn turn(
        &mut self,
        until: Option<Instant>,
        mut on_outcome: impl FnMut(usize, Outcome),
    ) -> io::Result<()> {
        let now = Instant::now();
        let until = until.map_or(self.deadline, |until| until.min(self.deadline));
        let timeout = until.saturating_duration_since(now);
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let polled = self.poll.poll(&mut events, Some(timeout));
        let result = match polled {
            Err(e) if interrupted(&e) => Ok(()),
            Err(e) => Err(e),
            Ok(()) => {
                for event in events.iter() {
                    let index = event.token().0;
                    if index >= self.conns.len() {
                        // The timer: waking the poll was all it had to do.
                        continue;
                    }
                    let outcome = self.handle(index, event);
                    on_outcome(index, outcome);
                }
                Ok(())
            }
        };
        self.events = events;
        result
    }

    /// A turn that waits for `duration` at most (the idle hold).
    pub fn wait(&mut self, duration: Duration) -> io::Result<()> {
        self.turn(Some(Instant::now() + duration), |_, _| {})
    }

    fn handle(&mut self, index: usize, event: &Event) -> Outcome {
        let mut outcome = Outcome::default();
        let conn = &mut self.conns[index];
        if conn.phase == Phase::Connecting {
            if !(event.is_writable() || event.is_error() || event.is_write_closed()) {
                return outcome;
            }
            match conn.finish_connect() {
                Ok(false) => return outcome,
                Ok(true) => {
                    conn.phase = Phase::LoggingIn;
                    wire::write_login(conn.out(), &self.plan.prefix, index);
                }
                Err(e) => {
                    self.fail(index, "connect", &e);
                    return outcome;
                }
            }
        }
        if let Err(e) = self.write(index, &mut outcome) {
            self.fail(index, "write", &e);
            return outcome;
        }
        if (event.is_readable() || event.is_read_closed() || event.is_error())
            && let Err(e) = self.read(index)
        {
            self.fail(index, "read", &e);
            return outcome;
        }
        // A read may leave records to write (a TLS handshake's next flight).
        if let Err(e) = self.write(index, &mut outcome) {
            self.fail(index, "write", &e);
        }
        outcome
    }

    /// Flushes connection `index` and asks for writability while bytes wait.
    pub fn write(&mut self, index: usize, outcome: &mut Outcome) -> io::Result<()> {
        let conn = &mut self.conns[index];
        if !conn.has_unsent() {
            return Ok(());
        }
        outcome.written += conn.flush()?;
        outcome.drained = !conn.has_unsent();
        conn.sync_interest(self.poll.registry(), Token(index))
    }

    fn read(&mut self, index: usize) -> io::Result<()> {
        let Driver {
            conns,
            scratch,
            books,
            plan,
            ..
        } = self;
        let conn = &mut conns[index];
        let now = Instant::now();
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        let receiver = index as u32;
        let (mut arrived, mut own_login) = (false, false);
        let closed = conn.read_lines(scratch, |line| {
            match wire::parse_line(line, &plan.prefix, plan.bytes) {
                Received::Message(stamp) => {
                    books.on_message(receiver, stamp, now_ns);
                    arrived = true;
                }
                Received::Login(sender) if sender == receiver => own_login = true,
                Received::Login(_) | Received::Malformed => books.counts.malformed += 1,
                Received::Notice => {
                    books.counts.notices += 1;
                    // The first few say what the server objected to.
                    if books.counts.notices <= 3 {
                        log::warn!("connection {receiver}: {}", String::from_utf8_lossy(line));
                    }
                }
            }
        })?;
        if arrived {
            self.last_arrival = Some(now);
        }
        let conn = &mut self.conns[index];
        if own_login && conn.phase == Phase::LoggingIn {
            conn.phase = Phase::Ready;
            self.in_flight -= 1;
            self.logged_in += 1;
            if let Some(started) = conn.started {
                let us = now.saturating_duration_since(started).as_micros();
                self.connect_login_us
                    .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
            }
        }
        if closed {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }

    /// Takes connection `index` out of the run.
    pub fn fail(&mut self, index: usize, what: &str, error: &io::Error) {
        let conn = &mut self.conns[index];
        match conn.phase {
            Phase::Failed | Phase::Waiting => {}
            Phase::Connecting | Phase::LoggingIn => self.in_flight -= 1,
            Phase::Ready => self.logged_in -= 1,
        }
        if conn.phase != Phase::Failed {
            self.failed += 1;
            // The first few say what went wrong; a thousand identical lines would not.
            if self.failed <= 5 {
                log::warn!("connection {index}: {what} failed: {error}");
            }
        }
        conn.fail(self.poll.registry());
    }
}
