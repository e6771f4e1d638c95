//! The options of `a-chat bench`, and the checked [`Plan`] they make.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;

use crate::common::parse_secs;
use crate::stream::TlsTarget;
use crate::tls_client::{TlsClientArgs, client_config, server_name};

use super::wire;

/// `a-chat bench [OPTIONS]`: the load generator's options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The server's address (HOST:PORT); only loopback addresses unless --allow-remote.
    /// Repeatable: the nodes of a cluster, connection i going to the (i mod n)-th.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub addr: Vec<String>,
    /// Accept an --addr that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Logged-in connections to hold.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub conns: usize,
    /// How many of the connections send (the first S) [default: all N].
    #[arg(long, value_name = "S")]
    pub senders: Option<usize>,
    /// Messages each sender sends.
    #[arg(long, value_name = "M", default_value_t = 100)]
    pub messages: u64,
    /// Size of each message's TEXT in bytes (at least what its header of numbers needs).
    #[arg(long, value_name = "B", default_value_t = 64)]
    pub bytes: usize,
    /// Distinct random receivers of each message, never its sender.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub fanout: usize,
    /// Closed loop: at most W undelivered messages per sender (delivered: all K copies arrived).
    #[arg(long, value_name = "W", conflicts_with = "rate")]
    pub window: Option<u64>,
    /// Open loop: R messages per second in total across the senders; latency counts from each
    /// message's scheduled send time, so queueing in the generator is not hidden.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Most connects and logins in flight at once (keep it below the server's listen backlog).
    #[arg(long, value_name = "R", default_value_t = 64)]
    pub ramp: usize,
    /// Bound on the whole run, connecting included, in seconds.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Grace period: seconds with nothing arriving (once sending is over, or stalled) before
    /// the deliveries still missing are declared lost. (Not --quiet: that is the log level.)
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_secs)]
    pub grace: Duration,
    /// Seed of the random choice of receivers (same seed, same choices).
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// The server's process id: report its memory (VmRSS, VmHWM) and CPU time from /proc.
    /// Repeatable: the figures are then summed (the nodes of a cluster, and Redis).
    #[arg(long, value_name = "PID")]
    pub server_pid: Vec<u32>,
    /// With several --addr: each message's receivers are on other nodes than its sender's
    /// (every delivery crosses nodes). --conns must be a multiple of the nodes.
    #[arg(long)]
    pub cross_node: bool,
    /// Only connect and log in the N connections, measure memory, hold them for --hold, exit.
    #[arg(long, conflicts_with_all = ["window", "rate"])]
    pub idle: bool,
    /// With --idle: seconds to hold the connections before the last memory sample.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs, requires = "idle")]
    pub hold: Duration,
    /// Name prefix: connection i logs in as PREFIXi (change it to run two generators at once).
    #[arg(long, value_name = "PREFIX", default_value = "b")]
    pub prefix: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show live progress on standard error even with --json (it is on otherwise, for runs
    /// longer than two seconds).
    #[arg(long)]
    pub progress: bool,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    #[command(flatten)]
    pub sweep: SweepArgs,
}

/// The options of `a-chat bench --sweep` and of its outputs.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Sweep offered rates in the open loop, on the same connections, until the server
    /// saturates: from --rate (default 1000), doubling, or the rates of --rates.
    #[arg(long, conflicts_with_all = ["window", "idle"])]
    pub sweep: bool,
    /// With --sweep: these offered rates (messages per second, comma-separated) instead of
    /// doubling.
    #[arg(
        long,
        value_name = "R,R,...",
        value_delimiter = ',',
        requires = "sweep"
    )]
    pub rates: Vec<f64>,
    /// With --sweep: the highest rate tried.
    #[arg(long, value_name = "R", default_value_t = 10_000_000.0)]
    pub max_rate: f64,
    /// With --sweep: seconds each rate is measured, after its warm-up.
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = parse_secs)]
    pub step_secs: Duration,
    /// With --sweep: seconds each rate runs before it is measured.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    pub warmup_secs: Duration,
    /// With --sweep: a rate whose p99 latency passes this many milliseconds is saturated (so is
    /// one whose delivered rate falls below 90% of the offered one).
    #[arg(long, value_name = "MS", default_value_t = 25.0)]
    pub p99_limit_ms: f64,
    /// With --sweep and doubling rates: how many times the span between the last rate kept up
    /// with and the first that was not is halved.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub refine: usize,
    /// Draw the sweep (and those of --from) as an SVG: latency percentiles and delivered rate
    /// against offered rate.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// With --sweep: write each step's latency distribution in HdrHistogram's .hgrm text
    /// format, to PREFIX-RATE.hgrm.
    #[arg(long, value_name = "PREFIX", requires = "sweep")]
    pub hgrm: Option<String>,
    /// The name of this run in the JSON and the plot's legend.
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// With --plot: also draw the sweep saved in FILE (`--sweep --json` output); repeatable.
    /// Without --sweep, nothing is run: the saved sweeps are drawn.
    #[arg(long, value_name = "FILE", requires = "plot")]
    pub from: Vec<std::path::PathBuf>,
}

/// How messages are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// As fast as the sockets take them.
    Flat,
    /// At most this many undelivered messages per sender.
    Window(u64),
    /// This many messages per second in total, on a fixed timetable.
    Rate(f64),
    /// No messages: connect, log in, hold.
    Idle,
}

impl Shape {
    /// The `mode` of the report.
    pub fn describe(self) -> String {
        match self {
            Shape::Flat => "flat".to_string(),
            Shape::Window(w) => format!("window={w}"),
            Shape::Rate(r) => format!("rate={r}"),
            Shape::Idle => "idle".to_string(),
        }
    }
}

/// The options, checked and resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The nodes, connection `i` going to `addrs[i % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    pub conns: usize,
    pub senders: usize,
    pub messages: u64,
    pub bytes: usize,
    pub fanout: usize,
    pub shape: Shape,
    pub ramp: usize,
    pub timeout: Duration,
    pub grace: Duration,
    pub seed: u64,
    pub hold: Duration,
    pub prefix: String,
    /// Speak TLS: per node, the server name to check and the configuration.
    pub tls: Option<Vec<TlsTarget>>,
    /// Receivers only on other nodes than their sender's.
    pub cross_nodes: bool,
    /// Show live progress on standard error.
    pub progress: bool,
}

/// A sweep's rates and bounds, checked.
#[derive(Debug, Clone)]
pub struct SweepPlan {
    /// The first rate (doubling) or all of them.
    pub rates: Vec<f64>,
    pub doubling: bool,
    pub max_rate: f64,
    pub step: Duration,
    pub warmup: Duration,
    pub p99_limit: Duration,
    pub refine: usize,
    pub label: String,
}

impl SweepPlan {
    /// Checks the sweep's options.
    pub fn from_args(args: &BenchArgs) -> Result<SweepPlan, String> {
        let sweep = &args.sweep;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let (rates, doubling) = if sweep.rates.is_empty() {
            (vec![args.rate.unwrap_or(1000.0)], true)
        } else {
            let mut rates = sweep.rates.clone();
            rates.sort_by(f64::total_cmp);
            (rates, false)
        };
        if !rates.iter().copied().all(positive) || !positive(sweep.max_rate) {
            return Err("sweep rates must be positive numbers of messages per second".into());
        }
        if sweep.step_secs.is_zero() {
            return Err("--step-secs must be above 0".into());
        }
        if !positive(sweep.p99_limit_ms) {
            return Err("--p99-limit-ms must be above 0".into());
        }
        Ok(SweepPlan {
            rates,
            doubling,
            max_rate: sweep.max_rate,
            step: sweep.step_secs,
            warmup: sweep.warmup_secs,
            p99_limit: Duration::from_secs_f64(sweep.p99_limit_ms / 1000.0),
            refine: sweep.refine,
            label: sweep.label.clone().unwrap_or_default(),
        })
    }
}

impl Plan {
    /// The node connection `index` goes to, and its number.
    pub fn node_of(&self, index: usize) -> (usize, SocketAddr) {
        let node = index % self.addrs.len();
        (node, self.addrs[node])
    }
}

/// At most this many messages in one run: the bookkeeping keeps 4 bytes per message.
const MAX_TOTAL_MESSAGES: u64 = 1 << 28;

impl Plan {
    /// Checks the options; the error says which one is wrong.
    pub fn from_args(args: &BenchArgs) -> Result<Plan, String> {
        let addrs = args
            .addr
            .iter()
            .map(|addr| resolve(addr))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(addr) = addrs.iter().find(|addr| !addr.ip().is_loopback())
            && !args.allow_remote
        {
            return Err(format!(
                "--addr {addr} is not a loopback address (add --allow-remote to load a server elsewhere)"
            ));
        }
        // A sweep sets each step's rate itself; --rate is where it starts.
        let rate = if args.sweep.sweep { None } else { args.rate };
        let shape = match (args.idle, args.window, rate) {
            (true, _, _) => Shape::Idle,
            (false, Some(0), _) => return Err("--window must be at least 1".into()),
            (false, Some(w), _) => Shape::Window(w),
            (false, None, Some(r)) if !(r.is_finite() && r > 0.0) => {
                return Err("--rate must be a positive number of messages per second".into());
            }
            (false, None, Some(r)) => Shape::Rate(r),
            (false, None, None) => Shape::Flat,
        };
        if args.conns == 0 {
            return Err("--conns must be at least 1".into());
        }
        if args.ramp == 0 {
            return Err("--ramp must be at least 1".into());
        }
        let longest = wire::name(&args.prefix, args.conns - 1);
        if !a_chat::core::parse::is_valid_name(&args.prefix)
            || !a_chat::core::parse::is_valid_name(&longest)
        {
            return Err(format!(
                "--prefix {:?} does not make valid names (such as {longest:?}: 1 to 32 bytes, no ',', ':', control or invisible character)",
                args.prefix
            ));
        }
        let senders = args.senders.unwrap_or(args.conns);
        let mut plan = Plan {
            addrs,
            conns: args.conns,
            senders,
            messages: args.messages,
            bytes: args.bytes,
            fanout: args.fanout,
            shape,
            ramp: args.ramp,
            timeout: args.timeout,
            grace: args.grace,
            seed: args.seed,
            hold: args.hold,
            prefix: args.prefix.clone(),
            tls: None,
            cross_nodes: args.cross_node,
            progress: args.progress || !args.json,
        };
        if args.tls.tls {
            let config = client_config(args.tls.ca.as_deref()).map_err(|e| e.to_string())?;
            let targets = args
                .addr
                .iter()
                .map(|addr| {
                    let name = server_name(addr).map_err(|e| e.to_string())?;
                    Ok(TlsTarget {
                        config: config.clone(),
                        name,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            plan.tls = Some(targets);
        }
        if shape == Shape::Idle {
            plan.senders = 0;
            plan.messages = 0;
            plan.fanout = 0;
            return Ok(plan);
        }
        if senders == 0 || senders > args.conns {
            return Err(format!("--senders must be 1 to --conns ({})", args.conns));
        }
        let nodes = plan.addrs.len();
        if args.cross_node && (nodes < 2 || !args.conns.is_multiple_of(nodes)) {
            return Err(format!(
                "--cross-node needs several --addr and --conns a multiple of them ({nodes})"
            ));
        }
        let candidates = if args.cross_node {
            args.conns - args.conns / nodes
        } else {
            args.conns.saturating_sub(1)
        };
        if args.fanout == 0 || args.fanout > candidates {
            return Err(format!(
                "--fanout must be 1 to {candidates}: a message never goes to its sender{}",
                if args.cross_node { "'s node" } else { "" }
            ));
        }
        if args.messages == 0 {
            return Err("--messages must be at least 1".into());
        }
        if (senders as u64).saturating_mul(args.messages) > MAX_TOTAL_MESSAGES {
            return Err(format!(
                "--senders x --messages must be at most {MAX_TOTAL_MESSAGES}"
            ));
        }
        let header = wire::max_header_len(senders, args.messages);
        if args.bytes < header {
            return Err(format!(
                "--bytes must be at least {header}: the TEXT carries sender, sequence number and send time"
            ));
        }
        Ok(plan)
    }
}

/// The first address `text` resolves to (`127.0.0.1:8080`, `localhost:8080`, `[::1]:8080`).
fn resolve(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("--addr {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("--addr {text} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn plan(line: &str) -> Result<Plan, String> {
        let args = Cli::try_parse_from(std::iter::once("bench").chain(line.split_whitespace()))
            .map_err(|e| e.to_string())?
            .args;
        Plan::from_args(&args)
    }

    #[test]
    fn defaults_make_a_flat_run_on_loopback() {
        let plan = plan("").unwrap();
        assert_eq!(plan.addrs, ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!((plan.conns, plan.senders, plan.messages), (1000, 1000, 100));
        assert_eq!((plan.bytes, plan.fanout, plan.ramp), (64, 1, 64));
        assert_eq!(plan.shape, Shape::Flat);
    }

    #[test]
    fn shapes() {
        assert_eq!(plan("--window 4").unwrap().shape, Shape::Window(4));
        assert_eq!(plan("--rate 2000").unwrap().shape, Shape::Rate(2000.0));
        assert_eq!(plan("--idle --hold 1").unwrap().shape, Shape::Idle);
        assert!(plan("--window 1 --rate 5").is_err());
        assert!(plan("--window 0").is_err());
        assert!(plan("--rate 0").is_err());
        assert!(plan("--hold 3").is_err(), "--hold needs --idle");
    }

    #[test]
    fn several_nodes_take_turns() {
        let three = plan("--addr 127.0.0.1:1 --addr 127.0.0.1:2 --addr 127.0.0.1:3").unwrap();
        assert_eq!(three.addrs.len(), 3);
        assert_eq!(three.node_of(4), (1, "127.0.0.1:2".parse().unwrap()));
        assert!(plan("--addr 127.0.0.1:1 --addr 10.0.0.1:2").is_err());
    }

    #[test]
    fn refuses_what_cannot_run() {
        assert!(plan("--addr 10.0.0.1:80").unwrap_err().contains("loopback"));
        assert!(plan("--addr 10.0.0.1:80 --allow-remote").is_ok());
        assert!(plan("--conns 5 --fanout 5").is_err());
        assert!(plan("--conns 5 --senders 6").is_err());
        assert!(plan("--bytes 10").unwrap_err().contains("at least"));
        assert!(plan("--prefix a,b").is_err());
        assert!(plan(&format!("--prefix {}", "p".repeat(30))).is_err());
        assert!(plan("--conns 1 --idle").is_ok());
    }
}
