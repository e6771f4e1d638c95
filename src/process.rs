//! The process's resources as Linux shows them: the open-file limit, physical memory, and a
//! process's (or thread's) resident memory and CPU time from `/proc`. The metrics, the
//! binary, the load generator's probe, the tests and the benchmarks all read them here.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Raises the soft open-file limit to the hard limit; returns the soft limit in force.
///
/// A server needs it to hold its connections and a load generator to open as many. It changes
/// the whole process, so the library never calls it: a host (or the binary) does.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            log::warn!("cannot raise the open-file limit: {e}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The machine's physical memory in bytes (`MemTotal` of `/proc/meminfo`), if it can be read.
pub fn physical_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    status_kb(&meminfo, "MemTotal").map(|kb| kb * 1024)
}

/// Resident memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size (`VmRSS`), in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`), in bytes.
    pub hwm_bytes: u64,
}

/// A process, or a thread of one, as `/proc` shows it: a `status` file for memory and a
/// `stat` file for CPU time.
#[derive(Debug, Clone)]
pub struct ProcProbe {
    status: PathBuf,
    stat: PathBuf,
    ticks_per_sec: u64,
}

impl ProcProbe {
    /// This process.
    pub fn this_process() -> Self {
        ProcProbe::new(
            PathBuf::from("/proc/self/status"),
            PathBuf::from("/proc/self/stat"),
        )
    }

    /// The process `pid`.
    pub fn process(pid: u32) -> Self {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        ProcProbe::new(dir.join("status"), dir.join("stat"))
    }

    /// Memory from `status`, CPU time from `stat`: say, this process's memory and one of its
    /// threads' CPU time (`/proc/self/status` and `/proc/self/task/TID/stat`).
    pub fn new(status: PathBuf, stat: PathBuf) -> Self {
        ProcProbe {
            status,
            stat,
            ticks_per_sec: rustix::param::clock_ticks_per_second().max(1),
        }
    }

    /// Resident memory now.
    pub fn memory(&self) -> io::Result<Memory> {
        let text = std::fs::read_to_string(&self.status)?;
        let field = |name| {
            status_kb(&text, name).map(|kb| kb * 1024).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("no {name} in {}", self.status.display()),
                )
            })
        };
        Ok(Memory {
            rss_bytes: field("VmRSS")?,
            hwm_bytes: field("VmHWM")?,
        })
    }

    /// CPU time used so far, user and system, at the kernel's clock tick resolution.
    pub fn cpu_time(&self) -> io::Result<Duration> {
        let text = std::fs::read_to_string(&self.stat)?;
        let ticks = stat_cpu_ticks(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot read the CPU times in {}", self.stat.display()),
            )
        })?;
        Ok(Duration::from_micros(
            ticks.saturating_mul(1_000_000) / self.ticks_per_sec,
        ))
    }
}

/// The value of a `NAME:   123 kB` line of a /proc status or meminfo file.
fn status_kb(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// utime + stime (fields 14 and 15) of a /proc stat line, in clock ticks. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its last `)`.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
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
        let probe = ProcProbe::process(std::process::id());
        let memory = probe.memory().unwrap();
        assert!(memory.rss_bytes > 0 && memory.hwm_bytes >= memory.rss_bytes);
        probe.cpu_time().unwrap();
        assert!(physical_memory().unwrap() >= memory.rss_bytes);
    }
}
