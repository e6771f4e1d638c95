//! The two `io::Error`s a non-blocking loop handles by name, as mio's examples do: a socket
//! that has nothing more now, and a call a signal interrupted.

use std::io;

/// The operation would block: nothing more until the next readiness event.
pub fn would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

/// A signal interrupted the call: retry it.
pub fn interrupted(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Interrupted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_names_its_kind_only() {
        let block = io::Error::from(io::ErrorKind::WouldBlock);
        let signal = io::Error::from(io::ErrorKind::Interrupted);
        let other = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(would_block(&block) && !would_block(&signal) && !would_block(&other));
        assert!(interrupted(&signal) && !interrupted(&block) && !interrupted(&other));
    }
}
