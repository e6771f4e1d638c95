//! The server's memory and CPU time, from /proc: of a server process (`--server-pid`), or of a
//! server thread inside this process (benches/load.rs).

use std::io;
use std::path::PathBuf;

/// The server's memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySample {
    /// Resident set size (VmRSS), in KiB.
    pub rss_kb: u64,
    /// Peak resident set size (VmHWM), in KiB.
    pub hwm_kb: u64,
    /// Live heap bytes, when the probe can count them (an in-process server).
    pub heap_bytes: Option<u64>,
}

/// What the generator asks about the server it loads.
pub trait ServerProbe {
    /// The memory now.
    fn memory(&mut self) -> io::Result<MemorySample>;
    /// CPU time used so far (user + system), in microseconds.
    fn cpu_us(&mut self) -> io::Result<u64>;
}

/// A probe that reads a `status` file (memory) and a `stat` file (CPU ticks) under /proc.
#[derive(Debug, Clone)]
pub struct ProcProbe {
    status: PathBuf,
    stat: PathBuf,
    ticks_per_sec: u64,
}

impl ProcProbe {
    /// The process `pid`.
    pub fn process(pid: u32) -> Self {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        ProcProbe::new(dir.join("status"), dir.join("stat"))
    }

    /// Memory from `status`, CPU time from `stat` (say, this process's memory and one of its
    /// threads' CPU time: `/proc/self/status` and `/proc/self/task/TID/stat`).
    pub fn new(status: PathBuf, stat: PathBuf) -> Self {
        ProcProbe {
            status,
            stat,
            ticks_per_sec: rustix::param::clock_ticks_per_second().max(1),
        }
    }
}

impl ServerProbe for ProcProbe {
    fn memory(&mut self) -> io::Result<MemorySample> {
        let text = std::fs::read_to_string(&self.status)?;
        let field = |name| {
            status_kb(&text, name).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("no {name} in {}", self.status.display()),
                )
            })
        };
        Ok(MemorySample {
            rss_kb: field("VmRSS")?,
            hwm_kb: field("VmHWM")?,
            heap_bytes: None,
        })
    }

    fn cpu_us(&mut self) -> io::Result<u64> {
        let text = std::fs::read_to_string(&self.stat)?;
        let ticks = stat_cpu_ticks(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot read the CPU times in {}", self.stat.display()),
            )
        })?;
        Ok(ticks * 1_000_000 / self.ticks_per_sec)
    }
}

/// The value of a `NAME:   123 kB` line of a /proc status file.
pub fn status_kb(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// utime + stime (fields 14 and 15) of a /proc stat line, in clock ticks. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: utime is the 12th of those, stime the 13th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let status = "Name:\ta-chat\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\nThreads:\t1\n";
        assert_eq!(status_kb(status, "VmRSS"), Some(6789));
        assert_eq!(status_kb(status, "VmHWM"), Some(12345));
        assert_eq!(status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn stat_times_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (a (chat) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 \
                    123 456 789";
        assert_eq!(stat_cpu_ticks(stat), Some(325));
        assert_eq!(stat_cpu_ticks("4242 (a-chat) S 1"), None);
    }

    #[test]
    fn this_process_can_be_probed() {
        let mut probe = ProcProbe::process(std::process::id());
        let memory = probe.memory().unwrap();
        assert!(memory.rss_kb > 0 && memory.hwm_kb >= memory.rss_kb);
        probe.cpu_us().unwrap();
    }
}
