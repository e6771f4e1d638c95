//! `a-chat bench --sweep`: the latency-throughput curve. The same connections are loaded in
//! the open loop at a series of offered rates (given with `--rates`, or doubling from `--rate`),
//! each held for `--step-secs` after `--warmup-secs`, until the server saturates or
//! `--max-rate` is passed; with doubling rates, the span between the last rate it kept up with
//! and the first it did not is then bisected `--refine` times.
//!
//! A step is saturated when the copies delivered per second during its measured seconds fall
//! below 90% of what was offered, or when its p99 latency passes `--p99-limit-ms`. Latency
//! counts from each message's scheduled send time (no coordinated omission) and covers the
//! messages scheduled within the measured seconds; the warm-up's are delivered and checked but
//! not timed. A step that loses, duplicates or reorders a copy ends the sweep, which then fails.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use a_chat::process::ProcProbe;

use super::args::{Plan, Shape, SweepPlan};
use super::deliveries::Deliveries;
use super::driver::Driver;
use super::progress::Progress;
use super::report::{Percentiles, round3 as round};
use super::wire;
use super::{sample_cpu, sample_memory};

/// A step is saturated when it delivers less than this share of the offered rate.
const KEPT_UP: f64 = 0.9;

/// One offered rate's figures.
#[derive(Debug, Clone)]
pub struct Step {
    /// Messages per second offered (each to K receivers).
    pub offered: f64,
    /// Messages per second delivered during the measured seconds (copies / K).
    pub delivered: f64,
    /// Of the messages scheduled within the measured seconds, in microseconds.
    pub latency: Option<Percentiles>,
    pub histogram: Histogram<u64>,
    pub sent: u64,
    pub lost: u64,
    /// Duplicated, reordered or malformed copies.
    pub errors: u64,
    /// The servers' CPU time over the step's copies delivered (with `--server-pid`).
    pub cpu_us_per_delivery: Option<f64>,
    /// The servers' resident memory after the step, KiB.
    pub rss_kb: Option<u64>,
    /// Why the step is saturated, if it is.
    pub saturated: Option<&'static str>,
}

/// A whole sweep: the run's parameters and its steps, in the order of offered rate.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub label: String,
    pub conns: usize,
    pub senders: usize,
    pub fanout: usize,
    pub bytes: usize,
    pub nodes: usize,
    pub tls: bool,
    pub step_secs: f64,
    pub warmup_secs: f64,
    pub p99_limit_ms: f64,
    pub logged_in: usize,
    pub steps: Vec<Step>,
}

impl Sweep {
    /// The highest offered rate the server kept up with.
    pub fn sustained(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter(|step| step.saturated.is_none())
            .map(|step| step.offered)
            .reduce(f64::max)
    }

    /// The lowest offered rate it did not keep up with.
    pub fn saturated_at(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter(|step| step.saturated.is_some())
            .map(|step| step.offered)
            .reduce(f64::min)
    }

    /// Every connection logged in and no step lost, duplicated or reordered a copy.
    pub fn passed(&self) -> bool {
        self.logged_in == self.conns
            && !self.steps.is_empty()
            && self
                .steps
                .iter()
                .all(|step| step.lost == 0 && step.errors == 0)
    }

    /// One line of the run's parameters (the plot's title says the same).
    pub fn describe(&self) -> String {
        describe(&self.to_json())
    }

    pub fn to_table(&self) -> String {
        let mut out = format!("sweep: {}\n", self.describe());
        out.push_str(
            "   offered/s  delivered/s   p50 ms   p90 ms   p99 ms p99.9 ms   max ms   lost  CPU us/deliv  RSS MiB  \n",
        );
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        for step in &self.steps {
            let p = step.latency.unwrap_or_default();
            out.push_str(&format!(
                "{:>12.0} {:>12.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>13} {:>8}  {}\n",
                step.offered,
                step.delivered,
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.p999),
                ms(p.max),
                step.lost + step.errors,
                step.cpu_us_per_delivery
                    .map_or("-".into(), |us| format!("{us:.2}")),
                step.rss_kb
                    .map_or("-".into(), |kb| format!("{:.1}", kb as f64 / 1024.0)),
                step.saturated.unwrap_or(""),
            ));
        }
        match (self.sustained(), self.saturated_at()) {
            (Some(kept), Some(over)) => out.push_str(&format!(
                "saturation: kept up with {kept:.0}/s, not with {over:.0}/s\n"
            )),
            (Some(kept), None) => out.push_str(&format!(
                "saturation: not reached; kept up with {kept:.0}/s\n"
            )),
            (None, Some(over)) => out.push_str(&format!(
                "saturation: already at the first rate, {over:.0}/s\n"
            )),
            (None, None) => {}
        }
        out.push_str(if self.passed() {
            "result: pass\n"
        } else {
            "result: fail (connections missing, or copies lost, duplicated or reordered)\n"
        });
        out
    }

    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|step| {
                let p = step.latency;
                json!({
                    "offered_per_sec": round(step.offered),
                    "delivered_per_sec": round(step.delivered),
                    "latency_us_p50": p.map(|p| p.p50),
                    "latency_us_p90": p.map(|p| p.p90),
                    "latency_us_p99": p.map(|p| p.p99),
                    "latency_us_p999": p.map(|p| p.p999),
                    "latency_us_max": p.map(|p| p.max),
                    "sent": step.sent,
                    "lost": step.lost,
                    "errors": step.errors,
                    "server_cpu_us_per_delivery": step.cpu_us_per_delivery.map(round),
                    "server_rss_kb": step.rss_kb,
                    "saturated": step.saturated,
                })
            })
            .collect();
        json!({
            "result": if self.passed() { "pass" } else { "fail" },
            "mode": "sweep",
            "label": self.label,
            "conns": self.conns,
            "senders": self.senders,
            "fanout": self.fanout,
            "bytes": self.bytes,
            "nodes": self.nodes,
            "tls": self.tls,
            "step_secs": self.step_secs,
            "warmup_secs": self.warmup_secs,
            "p99_limit_ms": self.p99_limit_ms,
            "logged_in": self.logged_in,
            "sustained_per_sec": self.sustained(),
            "saturated_per_sec": self.saturated_at(),
            "steps": steps,
        })
    }
}

/// One line of a sweep's parameters, from its JSON (this run's, or a saved one).
pub fn describe(json: &Value) -> String {
    let n = |key: &str| json.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let nodes = n("nodes");
    format!(
        "{} conns ({} sending), K={}, {} B, {}{} node{}, steps of {} s after {} s warm-up",
        n("conns"),
        n("senders"),
        n("fanout"),
        n("bytes"),
        if json.get("tls").and_then(Value::as_bool) == Some(true) {
            "TLS, "
        } else {
            ""
        },
        nodes,
        if nodes == 1.0 { "" } else { "s" },
        n("step_secs"),
        n("warmup_secs")
    )
}

/// Connects, then runs the steps of `sweep`; `probes` measure the servers.
pub fn run(plan: Plan, sweep: &SweepPlan, probes: &[ProcProbe]) -> io::Result<Sweep> {
    let mut report = Sweep {
        label: sweep.label.clone(),
        conns: plan.conns,
        senders: plan.senders,
        fanout: plan.fanout,
        bytes: plan.bytes,
        nodes: plan.addrs.len(),
        tls: plan.tls.is_some(),
        step_secs: sweep.step.as_secs_f64(),
        warmup_secs: sweep.warmup.as_secs_f64(),
        p99_limit_ms: sweep.p99_limit.as_secs_f64() * 1000.0,
        logged_in: 0,
        steps: Vec::new(),
    };
    let show_progress = plan.progress;
    let mut driver = Driver::new(plan)?;
    driver.progress = Progress::new(show_progress);
    driver.connect_all()?;
    report.logged_in = driver.logged_in;
    if driver.logged_in < driver.plan.conns {
        log::warn!(
            "only {} of {} connections logged in: no sweep",
            driver.logged_in,
            driver.plan.conns
        );
        driver.progress.finish();
        return Ok(report);
    }
    let mut rates = sweep.rates.clone().into_iter();
    let mut rate = rates.next();
    let (mut kept, mut missed) = (None::<f64>, None::<f64>);
    while let Some(offered) = rate.filter(|&r| r <= sweep.max_rate) {
        let step = run_step(&mut driver, sweep, offered, probes)?;
        let (failed, saturated) = (step.lost + step.errors > 0, step.saturated.is_some());
        report.steps.push(step);
        if failed {
            driver.progress.finish();
            return Ok(report);
        }
        if saturated {
            missed = Some(offered);
            break;
        }
        kept = Some(offered);
        rate = if sweep.doubling {
            Some(offered * 2.0)
        } else {
            rates.next()
        };
    }
    if let (true, Some(mut low), Some(mut high)) = (sweep.doubling, kept, missed) {
        for _ in 0..sweep.refine {
            let offered = ((low + high) / 2.0).round();
            let step = run_step(&mut driver, sweep, offered, probes)?;
            let (failed, saturated) = (step.lost + step.errors > 0, step.saturated.is_some());
            report.steps.push(step);
            if failed {
                break;
            }
            if saturated {
                high = offered;
            } else {
                low = offered;
            }
        }
    }
    driver.progress.finish();
    report.steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    Ok(report)
}

/// One step: `offered` messages per second for the warm-up and the measured seconds, then
/// the copies still on their way, until all arrived or nothing did for `--grace`.
fn run_step(
    driver: &mut Driver,
    sweep: &SweepPlan,
    offered: f64,
    probes: &[ProcProbe],
) -> io::Result<Step> {
    let plan = &mut driver.plan;
    let span = sweep.warmup + sweep.step;
    let total = (offered * span.as_secs_f64()).ceil().max(1.0) as u64;
    let messages = total.div_ceil(plan.senders as u64);
    let header = wire::max_header_len(plan.senders, messages);
    if plan.bytes < header {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "--bytes must be at least {header} for a step of {offered}/s: the TEXT carries sender, sequence number and send time"
            ),
        ));
    }
    plan.shape = Shape::Rate(offered);
    plan.messages = messages;
    let (conns, senders, fanout, nodes) = (plan.conns, plan.senders, plan.fanout, plan.addrs.len());
    let max_us = u64::try_from(plan.timeout.as_micros()).unwrap_or(u64::MAX);
    let now = Instant::now();
    let start_ns = driver.ns_since_start(now);
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    driver.books = Deliveries::new(conns, senders, messages, fanout, max_us)
        .with_nodes(nodes)
        .with_window(start_ns + ns(sweep.warmup), start_ns + ns(span));
    driver.last_arrival = None;
    // A saturated step's backlog drains after its sending: give it time, bounded.
    driver.deadline = now + span * 10 + Duration::from_secs(30) + driver.plan.grace;
    driver.step_label = format!("{offered:.0}/s");
    driver.progress.restart_rate();
    log::info!("step: {offered:.0} messages/s for {span:?} ({messages} per sender)");
    let cpu_start = sample_cpu(probes);
    let end = driver.run_load()?;
    let cpu_end = sample_cpu(probes);
    let memory = sample_memory(probes);
    let books = &driver.books;
    let lost = books.expected() - books.counts.delivered;
    driver.lost_before += lost;
    let delivered = books.window_arrivals as f64 / sweep.step.as_secs_f64() / fanout as f64;
    let latency = Percentiles::of(&books.latency_us);
    let saturated = if delivered < offered * KEPT_UP {
        Some("delivered fell behind")
    } else if latency.is_some_and(|p| p.p99 as f64 > sweep.p99_limit.as_secs_f64() * 1e6) {
        Some("p99 over the limit")
    } else {
        None
    };
    if end.timed_out {
        log::warn!("the step at {offered:.0}/s did not drain within its deadline");
    }
    let cpu_us = cpu_start.zip(cpu_end).map(|(a, b)| b.saturating_sub(a));
    Ok(Step {
        offered,
        delivered,
        latency,
        histogram: books.latency_us.clone(),
        sent: books.counts.sent,
        lost,
        errors: books.counts.duplicates + books.counts.out_of_order + books.counts.malformed,
        cpu_us_per_delivery: cpu_us
            .filter(|_| books.counts.delivered > 0)
            .map(|us| us as f64 / books.counts.delivered as f64),
        rss_kb: memory.map(|m| m.rss_bytes / 1024),
        saturated,
    })
}
