//! The line client: standard input to the server, the server's lines to standard output.

use std::io::{self, BufRead, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::thread;

/// Connects to `addr`, sends each line of standard input, and prints every line the server
/// sends. At the end of its input it half-closes and keeps printing; it returns `Ok` once the
/// server closes the connection.
pub fn run(addr: impl ToSocketAddrs) -> io::Result<()> {
    let stream = TcpStream::connect(addr)?;
    let mut to_server = stream.try_clone()?;
    // A plain thread for the blocking standard input; it is not joined, so a server that
    // closes first ends the client even while standard input stays open.
    thread::spawn(move || {
        let stdin = io::stdin();
        for line in stdin.lock().split(b'\n') {
            let Ok(mut line) = line else { break };
            line.push(b'\n');
            if to_server.write_all(&line).is_err() {
                return;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    copy_lines(stream, io::stdout().lock())
}

/// Copies `from` to `to` until end of stream, flushing after every read so that each line
/// shows as soon as it arrives.
fn copy_lines(mut from: impl io::Read, mut to: impl Write) -> io::Result<()> {
    let mut buf = [0; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return to.flush(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}
