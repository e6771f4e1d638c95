//! A one-shot timer on the poll, a timerfd: the open loop's timetable needs a wake-up finer
//! than epoll's timeout, which is rounded up to whole milliseconds. At 2,000 messages a second
//! that rounding alone would add up to a millisecond to every latency measured.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};

/// A timerfd registered for readability; it becomes readable once when it expires.
#[derive(Debug)]
pub struct Timer {
    fd: OwnedFd,
    /// When it was last set to expire.
    armed_for: Option<Instant>,
}

impl Timer {
    /// A disarmed timer, registered with `token`.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Timer {
            fd,
            armed_for: None,
        })
    }

    /// Sets it to expire at `at` (unless it already is). Setting a timerfd clears its count of
    /// expirations, so the edge-triggered poll sees the next expiry without a read.
    pub fn arm(&mut self, at: Instant) -> io::Result<()> {
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // A zero value would disarm it: a time already past fires after a nanosecond.
        let after = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: after.subsec_nanos().into(),
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)?;
        self.armed_for = Some(at);
        Ok(())
    }
}
