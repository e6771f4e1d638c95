//! The second phase: send the messages (flat out, in a window, or on a timetable), collect the
//! copies, and wait for the last ones until everything arrived or nothing has for `--grace`.

use std::io;
use std::time::{Duration, Instant};

use super::args::Shape;
use super::conn::Phase;
use super::driver::{Driver, Outcome};
use super::pick::ReceiverPicker;
use super::schedule::Schedule;
use super::timer::Timer;
use super::wire::{self, Stamp};
use a_chat::sim::XorShift;

/// Bytes of messages one sender appends per loop turn at most: enough for a full socket write,
/// small enough that a thousand senders and their receivers take turns.
const BURST_BYTES: usize = 16 * 1024;

/// How the load phase ended.
#[derive(Debug, Clone, Copy)]
pub struct LoadEnd {
    /// From the start of the load to the last copy that arrived (or to the end, if none did).
    pub duration: Duration,
    /// The deadline ended it.
    pub timed_out: bool,
}

/// The sending side while the load runs.
struct Load {
    schedule: Schedule,
    rng: XorShift,
    picker: ReceiverPicker,
    /// Scratch for one message's receivers.
    receivers: Vec<u32>,
    /// Messages a sender appends per turn at most.
    burst: u64,
    /// Senders that may send now (flat out and closed loop), each listed once.
    ready: Vec<u32>,
    listed: Vec<bool>,
    /// Scratch: connections that an event drained, senders whose message completed.
    woken: Vec<u32>,
    /// Open loop: senders given messages this turn.
    touched: Vec<u32>,
    start: Instant,
    /// The load's start in nanoseconds since the run's start (the timetable's origin).
    start_ns: u64,
    /// When a message was last appended or bytes last written.
    last_send: Instant,
    /// Open loop: wakes the poll when the next message is due.
    timer: Option<Timer>,
}

impl Driver {
    /// Runs the load; returns how it ended.
    pub fn run_load(&mut self) -> io::Result<LoadEnd> {
        let start = Instant::now();
        let plan = &self.plan;
        let closed_or_flat = matches!(plan.shape, Shape::Flat | Shape::Window(_));
        let line_len = plan.bytes + plan.fanout * (plan.prefix.len() + 8) + 2;
        let mut load = Load {
            schedule: Schedule::new(plan.shape, plan.senders, plan.messages),
            rng: XorShift::new(plan.seed),
            picker: ReceiverPicker::new(plan.conns, plan.cross_nodes.then_some(plan.addrs.len())),
            receivers: Vec::with_capacity(plan.fanout),
            burst: (BURST_BYTES / line_len).max(1) as u64,
            // The open loop lists no one: its timetable says who sends.
            ready: if closed_or_flat {
                (0..plan.senders as u32).collect()
            } else {
                Vec::new()
            },
            listed: vec![closed_or_flat; plan.senders],
            woken: Vec::new(),
            touched: Vec::new(),
            start,
            start_ns: self.ns_since_start(start),
            last_send: start,
            timer: match plan.shape {
                Shape::Rate(_) => Some(Timer::new(self.poll.registry(), self.timer_token())?),
                _ => None,
            },
        };
        let grace = plan.grace;
        let mut sending_ended = false;
        let timed_out = loop {
            let now = Instant::now();
            if now >= self.deadline {
                break true;
            }
            if closed_or_flat {
                load.send_ready(self);
            } else {
                load.send_due(self, now);
            }
            if !sending_ended && load.sending_over(self) {
                sending_ended = true;
                log::info!(
                    "sending over after {:.3} s: {} messages sent",
                    start.elapsed().as_secs_f64(),
                    self.books.counts.sent
                );
            }
            if sending_ended && self.books.all_delivered() {
                break false;
            }
            self.show_progress(if sending_ended { "draining" } else { "sending" });
            // Nothing arrived and nothing could be sent for `--grace`: what is missing is lost.
            let active = self
                .last_arrival
                .map_or(load.last_send, |t| t.max(load.last_send));
            if now >= active + grace {
                log::info!("nothing for {grace:?}: counting what is missing as lost");
                break false;
            }
            let until = if load.ready.is_empty() {
                // At least once a second, for the progress line.
                (active + grace).min(now + Duration::from_secs(1))
            } else {
                now
            };
            // The open loop's next message wakes the poll through the timer.
            if let (Some(timer), Some(due)) = (&mut load.timer, load.schedule.next_due_ns()) {
                timer.arm(start + Duration::from_nanos(due))?;
            }
            let Load { woken, .. } = &mut load;
            let mut wrote = false;
            self.turn(Some(until), |index, outcome: Outcome| {
                wrote |= outcome.written > 0;
                if outcome.drained {
                    woken.push(index as u32);
                }
            })?;
            if wrote {
                load.last_send = Instant::now();
            }
            // A sender may send more once its socket drained or (closed loop) a message of its
            // was delivered.
            self.books.take_completed(&mut load.woken);
            load.wake(self);
        };
        if timed_out {
            log::warn!("timed out in the load phase");
        }
        let end = match self.last_arrival {
            Some(last) if self.books.all_delivered() => last,
            _ => Instant::now(),
        };
        Ok(LoadEnd {
            duration: end.saturating_duration_since(start),
            timed_out,
        })
    }
}

impl Load {
    /// Flat out and closed loop: each listed sender appends what it may (up to a burst) and
    /// writes it; one that can go on stays listed.
    fn send_ready(&mut self, driver: &mut Driver) {
        let ready = std::mem::take(&mut self.ready);
        for &sender in &ready {
            self.listed[sender as usize] = false;
            let allowed = self
                .schedule
                .allowance(sender, driver.books.undelivered(sender))
                .min(self.burst);
            if allowed == 0 || driver.conns[sender as usize].phase != Phase::Ready {
                continue;
            }
            let now_ns = driver.ns_since_start(Instant::now());
            for _ in 0..allowed {
                let seq = self.schedule.take_seq(sender);
                self.append(driver, sender, seq, now_ns);
            }
            self.write(driver, sender);
            self.list_if_able(driver, sender);
        }
        // Reuse the allocation.
        let mut ready = ready;
        ready.clear();
        ready.append(&mut self.ready);
        self.ready = ready;
    }

    /// Open loop: appends every message that is due, stamped with its *scheduled* time, then
    /// writes. A sender whose socket is full still gets its messages appended: the queueing
    /// that follows is part of the latency (no coordinated omission).
    fn send_due(&mut self, driver: &mut Driver, now: Instant) {
        let elapsed =
            u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        let mut due = Vec::new();
        self.schedule.take_due(elapsed, |sender, seq, due_ns| {
            due.push((sender, seq, due_ns))
        });
        for (sender, seq, due_ns) in due {
            if driver.conns[sender as usize].phase != Phase::Ready {
                continue;
            }
            self.append(driver, sender, seq, self.start_ns + due_ns);
            if !self.listed[sender as usize] {
                self.listed[sender as usize] = true;
                self.touched.push(sender);
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for &sender in &touched {
            self.listed[sender as usize] = false;
            self.write(driver, sender);
        }
        self.touched = touched;
        self.touched.clear();
    }

    fn append(&mut self, driver: &mut Driver, sender: u32, seq: u64, sent_ns: u64) {
        let plan = &driver.plan;
        self.picker
            .pick(&mut self.rng, sender, plan.fanout, &mut self.receivers);
        driver.books.on_sent(sender, seq);
        let stamp = Stamp {
            sender,
            seq,
            sent_ns,
        };
        let out = driver.conns[sender as usize].out();
        wire::write_message(out, &plan.prefix, &self.receivers, stamp, plan.bytes);
        self.last_send = Instant::now();
    }

    fn write(&mut self, driver: &mut Driver, sender: u32) {
        let mut outcome = Outcome::default();
        if let Err(e) = driver.write(sender as usize, &mut outcome) {
            driver.fail(sender as usize, "write", &e);
        }
    }

    /// Lists `sender` if it may send now: logged in, nothing waiting in its buffer (otherwise
    /// its writable event lists it), and an allowance left.
    fn list_if_able(&mut self, driver: &Driver, sender: u32) {
        let s = sender as usize;
        if s >= self.listed.len() || self.listed[s] {
            return;
        }
        let conn = &driver.conns[s];
        if conn.phase == Phase::Ready
            && !conn.has_unsent()
            && self
                .schedule
                .allowance(sender, driver.books.undelivered(sender))
                > 0
        {
            self.listed[s] = true;
            self.ready.push(sender);
        }
    }

    /// Lists the senders in `woken` that may send now.
    fn wake(&mut self, driver: &Driver) {
        let woken = std::mem::take(&mut self.woken);
        for &sender in &woken {
            self.list_if_able(driver, sender);
        }
        self.woken = woken;
        self.woken.clear();
    }

    /// Whether every message that will be sent was, and every byte was written: each sender is
    /// done or out of the run.
    fn sending_over(&self, driver: &Driver) -> bool {
        if !self.ready.is_empty() {
            return false;
        }
        let senders = &driver.conns[..self.listed.len()];
        // The timetable first: it is one comparison, the scans are one step per sender.
        let handed_out = match driver.plan.shape {
            Shape::Rate(_) => self.schedule.next_due_ns().is_none(),
            _ => senders
                .iter()
                .enumerate()
                .all(|(s, conn)| conn.phase != Phase::Ready || self.schedule.left(s as u32) == 0),
        };
        handed_out && senders.iter().all(|conn| !conn.has_unsent())
    }
}
