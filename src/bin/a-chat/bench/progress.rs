//! Live progress on standard error, once a second from the run's second second on: the phase,
//! connections logged in, copies delivered per second, copies in flight, and those lost so far.
//! On a terminal it is one line that `indicatif` redraws in place; otherwise (a pipe, a log
//! file) it is a plain line per second. Off with `--json` unless `--progress` asks for it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Nothing is shown during a run's first seconds: a short run stays quiet.
const QUIET_FOR: Duration = Duration::from_secs(2);
const EVERY: Duration = Duration::from_secs(1);

/// The figures of one progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot<'a> {
    /// `connecting`, `sending`, `draining`, `holding`, or a sweep step's own words.
    pub phase: &'a str,
    pub logged_in: usize,
    pub conns: usize,
    /// Copies delivered since the phase began (the rate is taken between two lines).
    pub delivered: u64,
    /// Copies sent and not arrived yet.
    pub in_flight: u64,
    /// Copies given up as lost in the run so far.
    pub lost: u64,
}

#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    /// The redrawn line, on a terminal.
    bar: Option<ProgressBar>,
    next: Instant,
    /// The previous line's delivered count and time, for the rate.
    last: Option<(u64, Instant)>,
}

impl Progress {
    /// Progress for a run that starts now; `enabled` false shows nothing.
    pub fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            bar: None,
            next: Instant::now() + QUIET_FOR,
            last: Some((0, Instant::now())),
        }
    }

    /// Whether a line is due at `now` (a cheap check for the caller's loop).
    pub fn is_due(&self, now: Instant) -> bool {
        self.enabled && now >= self.next
    }

    /// Shows a line if one is due; `snapshot` is only called then.
    pub fn update<'a>(&mut self, now: Instant, snapshot: impl FnOnce() -> Snapshot<'a>) {
        if !self.is_due(now) {
            return;
        }
        self.next = now + EVERY;
        let s = snapshot();
        let rate = match self.last {
            Some((delivered, at)) if s.delivered >= delivered && now > at => {
                (s.delivered - delivered) as f64 / (now - at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last = Some((s.delivered, now));
        let line = format!(
            "{}: {}/{} logged in, {:.0} delivered/s, {} in flight, {} lost",
            s.phase, s.logged_in, s.conns, rate, s.in_flight, s.lost
        );
        if std::io::stderr().is_terminal() {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                        .expect("a valid template"),
                );
                bar
            });
            bar.set_message(line);
            bar.tick();
        } else {
            eprintln!("bench: {line}");
        }
    }

    /// A new phase whose delivered count starts from 0 now (a sweep's step).
    pub fn restart_rate(&mut self) {
        self.last = Some((0, Instant::now()));
    }

    /// Clears the redrawn line, if any, before the report is printed.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_shown_before_the_quiet_period_or_when_off() {
        let mut progress = Progress::new(true);
        progress.update(Instant::now(), || unreachable!());
        let mut off = Progress::new(false);
        off.update(Instant::now() + QUIET_FOR * 2, || unreachable!());
    }
}
