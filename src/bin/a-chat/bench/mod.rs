//! `a-chat bench`: the load generator. One thread, one `mio::Poll`: N connections log in (at
//! most `--ramp` at a time), S of them send M messages each to K random peers (flat out, in a
//! window, or at a fixed rate), and every copy is checked for loss, duplication and per-sender
//! order, and timed end to end. With a probe (`--server-pid`), the server's memory and CPU time
//! are read too.
//!
//! It speaks only the wire protocol of PROTOCOL.md, so it can load any a-chat server.
//!
//! | file | owns |
//! | --- | --- |
//! | `args.rs` | the options and the checked [`Plan`] |
//! | `driver.rs` | the poll loop and what an event does to a connection |
//! | `connect.rs`, `load.rs` | the two phases: ramped connect and login; sending and draining |
//! | `conn.rs` | one connection's socket and buffers |
//! | `schedule.rs`, `pick.rs`, `timer.rs` | when to send and to whom; the open loop's timer |
//! | `wire.rs` | names, the login, the TEXT format, received lines |
//! | `deliveries.rs` | the books: sent, arrived, order, latency |
//! | `report.rs` | the figures as a table or JSON |
//! | `sweep.rs`, `plot.rs`, `hgrm.rs` | `--sweep`: steps of offered rates, the SVG, `.hgrm` files |
//! | `progress.rs` | live progress on standard error |

mod args;
mod conn;
mod connect;
mod deliveries;
mod driver;
mod hgrm;
mod load;
mod pick;
mod plot;
mod progress;
mod report;
mod schedule;
mod sweep;
mod timer;
mod wire;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Instant;

pub use args::{BenchArgs, Plan, Shape, SweepPlan};
pub use report::{Percentiles, Report};

use a_chat::process::{Memory, ProcProbe};

use driver::Driver;

/// Descriptors the generator needs besides its connections (the poll, standard streams, /proc).
const FD_RESERVE: u64 = 16;

/// `a-chat bench`: runs the plan (or the sweep), prints the report, exits 0 when the run
/// passed, 1 when not.
pub fn main(args: &BenchArgs) -> io::Result<ExitCode> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    if args.sweep.sweep || !args.sweep.from.is_empty() {
        return sweep_main(args);
    }
    if args.sweep.plot.is_some() {
        return Err(invalid(
            "--plot draws sweeps: add --sweep, or --from FILE".into(),
        ));
    }
    let plan = Plan::from_args(args).map_err(invalid)?;
    let probes = probes(args);
    let show_progress = plan.progress;
    let report = run(plan, &probes, show_progress)?;
    let mut stdout = io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", report.to_json())?;
    } else {
        write!(stdout, "{}", report.to_table())?;
    }
    stdout.flush()?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A probe of each `--server-pid`.
fn probes(args: &BenchArgs) -> Vec<ProcProbe> {
    args.server_pid
        .iter()
        .copied()
        .map(ProcProbe::process)
        .collect()
}

/// `--sweep`, and `--plot` of saved sweeps: runs the sweep (unless only `--from` files are
/// drawn), prints it, writes the plot and the `.hgrm` files.
fn sweep_main(args: &BenchArgs) -> io::Result<ExitCode> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
    let mut curves = Vec::new();
    for path in &args.sweep.from {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        curves.push(plot::Curve::from_json(&json, &name).map_err(invalid)?);
    }
    let mut passed = true;
    if args.sweep.sweep {
        let plan = Plan::from_args(args).map_err(invalid)?;
        let sweep_plan = SweepPlan::from_args(args).map_err(invalid)?;
        let sweep = sweep::run(plan, &sweep_plan, &probes(args))?;
        passed = sweep.passed();
        let mut stdout = io::stdout().lock();
        if args.json {
            writeln!(stdout, "{}", sweep.to_json())?;
        } else {
            write!(stdout, "{}", sweep.to_table())?;
        }
        stdout.flush()?;
        if let Some(prefix) = &args.sweep.hgrm {
            for step in &sweep.steps {
                let path = format!("{prefix}-{:.0}.hgrm", step.offered);
                std::fs::write(&path, hgrm::percentile_distribution(&step.histogram))
                    .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
            }
        }
        curves.insert(0, plot::Curve::from_sweep(&sweep));
    }
    if let Some(path) = &args.sweep.plot {
        plot::draw(&curves, path).map_err(io::Error::other)?;
        log::info!("plot written to {}", path.display());
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs `plan` against its servers; `probes`, when given, measure them (summed); progress is
/// shown on standard error if `show_progress`.
pub fn run(plan: Plan, probe: &[ProcProbe], show_progress: bool) -> io::Result<Report> {
    let nofile = a_chat::process::raise_open_file_limit();
    if (plan.conns as u64).saturating_add(FD_RESERVE) > nofile {
        return Err(io::Error::other(format!(
            "{} connections need about {} open files, and the limit is {nofile} (ulimit -n)",
            plan.conns,
            plan.conns as u64 + FD_RESERVE
        )));
    }
    let mut report = Report {
        conns: plan.conns,
        senders: plan.senders,
        messages: plan.messages,
        bytes: plan.bytes,
        fanout: plan.fanout,
        mode: plan.shape.describe(),
        tls: plan.tls.is_some(),
        ..Report::default()
    };
    let zero = sample_memory(probe);
    log::info!(
        "connecting {} connections to {}, {} at a time",
        plan.conns,
        plan.addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        plan.ramp
    );
    let mut driver = Driver::new(plan)?;
    driver.progress = progress::Progress::new(show_progress);
    let connect = driver.connect_all()?;
    report.connect_login_secs = connect.as_secs_f64();
    report.connect_login_us = Percentiles::of(&driver.connect_login_us);
    report.logged_in = driver.logged_in;
    report.timed_out = driver.logged_in + driver.failed < driver.plan.conns;
    log::info!(
        "{} logged in after {:.3} s ({} failed)",
        driver.logged_in,
        connect.as_secs_f64(),
        driver.failed
    );
    let idle = sample_memory(probe);

    let mut cpu_us = None;
    if driver.plan.shape == Shape::Idle {
        hold(&mut driver, &mut report)?;
    } else if !report.timed_out {
        let cpu_start = sample_cpu(probe);
        let end = driver.run_load()?;
        let cpu_end = sample_cpu(probe);
        cpu_us = cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a));
        report.timed_out = end.timed_out;
        report.duration_secs = end.duration.as_secs_f64();
    }
    let after = sample_memory(probe);
    driver.progress.finish();

    let books = &driver.books;
    report.sent = books.counts.sent;
    report.expected = books.expected();
    report.delivered = books.counts.delivered;
    report.nodes = driver.plan.addrs.len();
    report.cross_node_delivered = books.counts.cross_node;
    report.lost = report.expected - report.delivered;
    report.duplicates = books.counts.duplicates;
    report.out_of_order = books.counts.out_of_order;
    report.malformed = books.counts.malformed;
    report.notices = books.counts.notices;
    report.failed_conns = driver.failed;
    if report.duration_secs > 0.0 {
        report.delivered_per_sec = report.delivered as f64 / report.duration_secs;
    }
    report.latency_us = Percentiles::of(&books.latency_us);

    let server = &mut report.server;
    let kb = |memory: Option<Memory>, field: fn(&Memory) -> u64| memory.map(|m| field(&m) / 1024);
    server.rss_kb_zero = kb(zero, |m| m.rss_bytes);
    server.rss_kb_idle = kb(idle, |m| m.rss_bytes);
    server.rss_kb_after = kb(after, |m| m.rss_bytes);
    server.hwm_kb = kb(after, |m| m.hwm_bytes);
    server.rss_bytes_per_idle_conn = zero
        .zip(idle)
        .filter(|_| report.logged_in > 0)
        .map(|(z, i)| (i.rss_bytes as f64 - z.rss_bytes as f64) / report.logged_in as f64);
    server.cpu_secs = cpu_us.map(|us| us as f64 / 1e6);
    server.cpu_us_per_delivery = cpu_us
        .filter(|_| report.delivered > 0)
        .map(|us| us as f64 / report.delivered as f64);
    Ok(report)
}

/// `--idle`: keeps the connections open for `--hold` (within the deadline), watching for any
/// the server closes.
fn hold(driver: &mut Driver, report: &mut Report) -> io::Result<()> {
    let until = Instant::now() + driver.plan.hold;
    if until > driver.deadline {
        report.timed_out = true;
    }
    let until = until.min(driver.deadline);
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        driver.wait((until - now).min(std::time::Duration::from_secs(1)))?;
        driver.show_progress("holding");
    }
}

/// The memory of the probed processes, summed; `None` without probes or if one fails.
pub(super) fn sample_memory(probes: &[ProcProbe]) -> Option<Memory> {
    if probes.is_empty() {
        return None;
    }
    let mut total = Memory {
        rss_bytes: 0,
        hwm_bytes: 0,
    };
    for probe in probes {
        let memory = probe
            .memory()
            .map_err(|e| log::warn!("cannot read a server's memory: {e}"))
            .ok()?;
        total.rss_bytes += memory.rss_bytes;
        total.hwm_bytes += memory.hwm_bytes;
    }
    Some(total)
}

/// The probed processes' CPU time so far, summed, in microseconds.
pub(super) fn sample_cpu(probes: &[ProcProbe]) -> Option<u64> {
    if probes.is_empty() {
        return None;
    }
    let mut total = 0;
    for probe in probes {
        let cpu = probe
            .cpu_time()
            .map_err(|e| log::warn!("cannot read a server's CPU time: {e}"))
            .ok()?;
        total += cpu.as_micros() as u64;
    }
    Some(total)
}
