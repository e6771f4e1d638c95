//! Two floods that test `--max-memory` against what the server really holds: receivers that
//! never read, each line naming all of them with an empty text (`fanout`), and connections that
//! never read, each sending lines that earn a notice before any login (`notices`). Prints the
//! server's resident memory before and its peak after when given its pid.
//!
//! ```text
//! cargo run --release --example flood -- fanout ADDR PEERS LINES [SERVER_PID]
//! cargo run --release --example flood -- notices ADDR CONNS LINES [SERVER_PID]
//! ```
//!
//! `tests/limits.rs` runs these same floods against a server process.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use a_chat::io_errors::would_block;
use a_chat::process::ProcProbe;

/// The receive buffer of a connection that never reads: the kernel holds little for it.
const RECEIVE_BUFFER: usize = 4096;
/// How long any read may wait.
const WAIT: Duration = Duration::from_secs(60);

/// The largest segment a connection that never reads announces to the server.
const SEGMENT: u32 = 536;

/// A connection that holds little in the kernel when it does not read: a small receive buffer
/// (the window the server sees), and small segments. The server's kernel sizes the socket's
/// send buffer by its segments (twice ten of them, as many as it sends at once): at loopback's
/// 64 KiB segments it takes about 4 MiB for a peer that never reads (a quarter of a million
/// empty messages, which would take a flood minutes to get past), at 536 bytes some 50 KiB.
/// Both are set before the connect, where they go into the handshake.
pub fn connect_small(addr: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    // Close-on-exec, as std's sockets are: a server spawned meanwhile must not inherit it.
    let fd = socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_recv_buffer_size(&fd, RECEIVE_BUFFER)?;
    set_max_segment(&fd, SEGMENT)?;
    connect(&fd, &addr)?;
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(WAIT))?;
    Ok(stream)
}

/// `TCP_MAXSEG`, which neither std nor rustix sets.
fn set_max_segment(fd: &impl std::os::fd::AsRawFd, bytes: u32) -> io::Result<()> {
    use std::ffi::{c_int, c_void};
    const IPPROTO_TCP: c_int = 6;
    const TCP_MAXSEG: c_int = 2;
    unsafe extern "C" {
        fn setsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            value: *const c_void,
            len: u32,
        ) -> c_int;
    }
    let value = c_int::try_from(bytes).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `fd` is an open socket; the value is a c_int that lives across the call, and its
    // size is given.
    let status = unsafe {
        setsockopt(
            fd.as_raw_fd(),
            IPPROTO_TCP,
            TCP_MAXSEG,
            (&raw const value).cast(),
            u32::try_from(size_of::<c_int>()).expect("4 bytes"),
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads from `stream` until what it read ends with `marker`; returns the bytes read.
fn read_until_end(stream: &mut TcpStream, marker: &[u8]) -> io::Result<u64> {
    let mut buf = vec![0; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the server closed the connection after {total} bytes"),
            ));
        }
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        if tail.ends_with(marker) {
            return Ok(total);
        }
        let keep = tail.len().saturating_sub(marker.len());
        tail.drain(..keep);
    }
}

/// `count` peers `p0`, `p1`, … logged in (each saw its own message come back), that will not
/// read again.
pub fn receivers(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpStream>> {
    (0..count)
        .map(|i| {
            let mut stream = connect_small(addr)?;
            stream.write_all(format!("p{i}\np{i}: in\n").as_bytes())?;
            read_until_end(&mut stream, format!("from p{i}: in\n").as_bytes())?;
            Ok(stream)
        })
        .collect()
}

/// What a flood's sender saw.
#[derive(Debug)]
pub struct FanOut {
    /// Lines written before the flood ended.
    pub lines: usize,
    /// Bytes of notices it read (`error: no such peer` for receivers disconnected meanwhile).
    pub notice_bytes: u64,
    /// Whether the server disconnected the sender (a slow consumer, as it may be), which ends
    /// the flood early.
    pub sender_evicted: bool,
}

/// Logs in `flood` and sends `lines` lines naming all of `p0`..`p{receivers - 1}` with an
/// empty text, as fast as the server takes them, reading its notices meanwhile; then a
/// message to itself, and waits for it: the server has handled every line.
pub fn fan_out(addr: SocketAddr, receivers: usize, lines: usize) -> io::Result<FanOut> {
    let mut sender = TcpStream::connect(addr)?;
    sender.set_read_timeout(Some(WAIT))?;
    sender.write_all(b"flood\nflood: in\n")?;
    read_until_end(&mut sender, b"from flood: in\n")?;
    let mut reader = sender.try_clone()?;
    let reading = thread::spawn(move || read_until_end(&mut reader, b"from flood: done\n"));
    let names: Vec<String> = (0..receivers).map(|i| format!("p{i}")).collect();
    let line = format!("{}: \n", names.join(","));
    let per_batch = (64 * 1024 / line.len()).max(1);
    let mut sent = 0;
    let mut written = Ok(());
    while sent < lines && written.is_ok() {
        let batch = per_batch.min(lines - sent);
        written = sender.write_all(line.repeat(batch).as_bytes());
        sent += batch;
    }
    let written = written.and_then(|()| sender.write_all(b"flood: done\n"));
    let read = reading.join().expect("the sender's reader");
    match (written, read) {
        (Ok(()), Ok(notice_bytes)) => Ok(FanOut {
            lines: sent,
            notice_bytes,
            sender_evicted: false,
        }),
        // Cut off: the server disconnected the sender.
        (_, Err(e)) if !would_block(&e) => Ok(FanOut {
            lines: sent,
            notice_bytes: 0,
            sender_evicted: true,
        }),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// `conns` connections that never read, each sending `lines` lines that are not UTF-8 (each
/// earns `error: invalid utf-8` before a login), then its name `nI`. Returns them open.
pub fn notices(addr: SocketAddr, conns: usize, lines: usize) -> io::Result<Vec<TcpStream>> {
    let flood = b"\xff\n".repeat(lines);
    (0..conns)
        .map(|i| {
            let mut stream = connect_small(addr)?;
            stream.set_write_timeout(Some(WAIT))?;
            // A connection disconnected meanwhile (for memory) refuses the rest: fine.
            let _ = stream
                .write_all(&flood)
                .and_then(|()| stream.write_all(format!("n{i}\n").as_bytes()));
            Ok(stream)
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: flood fanout|notices ADDR COUNT LINES [SERVER_PID]";
    let (Some(mode), Some(addr), Some(count), Some(lines)) =
        (args.first(), args.get(1), args.get(2), args.get(3))
    else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let (Ok(addr), Ok(count), Ok(lines)) = (
        addr.parse::<SocketAddr>(),
        count.parse::<usize>(),
        lines.parse::<usize>(),
    ) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let probe = args
        .get(4)
        .and_then(|pid| pid.parse().ok())
        .map(ProcProbe::process);
    let memory = || probe.as_ref().and_then(|p| p.memory().ok());
    let result = match mode.as_str() {
        "fanout" => receivers(addr, count).and_then(|held| {
            let before = memory();
            let start = Instant::now();
            let outcome = fan_out(addr, count, lines)?;
            println!("{outcome:?} in {:.2?}", start.elapsed());
            Ok((before, held))
        }),
        "notices" => {
            let before = memory();
            let start = Instant::now();
            notices(addr, count, lines).map(|held| {
                println!("{count} x {lines} lines sent in {:.2?}", start.elapsed());
                // The server reads what the kernel holds for it a moment later.
                thread::sleep(Duration::from_secs(2));
                (before, held)
            })
        }
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok((before, held)) => {
            if let (Some(before), Some(after)) = (before, memory()) {
                let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
                println!(
                    "server RSS before {:.1} MiB, peak (VmHWM) {:.1} MiB: {:.1} MiB over",
                    mib(before.rss_bytes),
                    mib(after.hwm_bytes),
                    mib(after.hwm_bytes.saturating_sub(before.rss_bytes)),
                );
            }
            drop(held);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flood: {e}");
            ExitCode::FAILURE
        }
    }
}
