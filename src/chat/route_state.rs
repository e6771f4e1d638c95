//! The line being routed: its stamp, the receivers that got it and were closed since, and the
//! buffer its message is formatted in.

use std::rc::Rc;

/// What the core remembers about the `DESTS: TEXT` line it is routing (see `Chat::route`), so
/// that a receiver named twice in one line gets it once, even if it was closed in between.
#[derive(Debug, Default)]
pub(super) struct RouteState {
    /// Numbers routed lines; a receiver's `last_route` equal to it got the current line.
    /// Invariant: only grows, so a stamp names one line.
    count: u64,
    /// Invariant: set exactly between `begin_line` and `end_line`.
    routing: bool,
    /// The names of receivers that got the line being routed and were closed since (to make
    /// room for later receivers): a name named again in the same line is not unknown.
    /// Invariant: empty unless `routing`.
    gone_mid_line: Vec<Rc<str>>,
    /// Where routed messages are formatted before being copied into their shared buffer.
    /// Invariant: holds no meaning between calls of `format` (only its capacity is kept).
    format_buf: Vec<u8>,
}

impl RouteState {
    /// A line starts being routed: its stamp.
    #[inline]
    pub(super) fn begin_line(&mut self) -> u64 {
        debug_assert!(!self.routing && self.gone_mid_line.is_empty());
        self.count += 1;
        self.routing = true;
        self.count
    }

    /// The line is routed.
    #[inline]
    pub(super) fn end_line(&mut self) {
        self.routing = false;
        self.gone_mid_line.clear();
    }

    /// The receiver `name`, whose last line has stamp `last_route`, is closed: if it got the
    /// line being routed, a later mention of it in the line is not an unknown name.
    pub(super) fn receiver_gone(&mut self, last_route: u64, name: &str) {
        if self.routing && last_route == self.count {
            self.gone_mid_line.push(Rc::from(name));
        }
    }

    /// Whether `dest` got the line being routed and was closed since.
    #[inline]
    pub(super) fn was_gone(&self, dest: &str) -> bool {
        self.gone_mid_line.iter().any(|gone| **gone == *dest)
    }

    /// `from NAME: TEXT\n`, assembled in a reused buffer and copied once into its shared
    /// allocation.
    pub(super) fn format(&mut self, name: &str, text: &str) -> Rc<[u8]> {
        let buf = &mut self.format_buf;
        buf.clear();
        for part in [b"from ", name.as_bytes(), b": ", text.as_bytes(), b"\n"] {
            buf.extend_from_slice(part);
        }
        Rc::from(&buf[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_format() {
        let mut route = RouteState::default();
        let hi = route.format("alice", "hi there");
        assert_eq!(&*hi, b"from alice: hi there\n");
        assert_eq!(&*route.format("bob", ""), b"from bob: \n");
        // The buffer is reused, the message keeps its own bytes.
        assert_eq!(&*hi, b"from alice: hi there\n");
    }

    #[test]
    fn a_receiver_gone_mid_line_is_remembered_for_that_line_only() {
        let mut route = RouteState::default();
        let alice = "alice";
        // Closed outside routing: nothing to remember.
        route.receiver_gone(0, alice);
        let first = route.begin_line();
        // One that did not get this line is not remembered either.
        route.receiver_gone(first - 1, "bob");
        route.receiver_gone(first, alice);
        assert!(route.was_gone("alice") && !route.was_gone("bob"));
        route.end_line();
        let second = route.begin_line();
        assert!(second > first);
        assert!(!route.was_gone("alice"));
        route.end_line();
    }
}
