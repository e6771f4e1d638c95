//! Metrics: the server's counters in the Prometheus text exposition format (version 0.0.4),
//! and, with the `metrics` feature, the HTTP exchange that serves them (IO-free, parsed with
//! `httparse`). The `mio` side of the endpoint is `src/net/metrics.rs`.

#[cfg(feature = "metrics")]
pub(crate) mod http;

use std::fmt::Write;
use std::time::Duration;

use crate::parse::LineError;
use crate::stats::Stats;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the process costs, for the standard `process_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFigures {
    /// Resident memory.
    pub resident_bytes: u64,
    /// CPU time, user and system.
    pub cpu_time: Duration,
}

impl ProcessFigures {
    /// This process now, from `/proc/self` (`None` where it cannot be read).
    pub fn now() -> Option<ProcessFigures> {
        let probe = crate::process::ProcProbe::this_process();
        Some(ProcessFigures {
            resident_bytes: probe.memory().ok()?.rss_bytes,
            cpu_time: probe.cpu_time().ok()?,
        })
    }
}

/// The counters of `stats` (and of the process, when given) as a Prometheus text exposition:
/// what `GET /metrics` answers, for a host that serves it its own way.
///
/// ```
/// let text = a_chat::metrics::render(&a_chat::Stats::default(), None);
/// assert!(text.contains("# TYPE a_chat_messages_routed_total counter\na_chat_messages_routed_total 0\n"));
/// ```
pub fn render(stats: &Stats, process: Option<ProcessFigures>) -> String {
    let mut out = Exposition(String::with_capacity(4096));
    let s = stats;
    out.gauge(
        "a_chat_connections_open",
        "Connections open now, in any state.",
        s.connections_open as u64,
    );
    out.gauge(
        "a_chat_peers_logged_in",
        "Peers logged in now.",
        s.peers_logged_in as u64,
    );
    out.counter(
        "a_chat_connections_accepted_total",
        "Connections accepted, refused ones included.",
        s.connections_accepted,
    );
    out.counter("a_chat_logins_total", "Successful logins.", s.logins);
    out.family(
        "a_chat_logins_refused_total",
        "counter",
        "Logins refused, by reason.",
        &[
            ("reason", "invalid_name", s.rejected(LineError::InvalidName)),
            ("reason", "name_taken", s.rejected(LineError::NameTaken)),
            ("reason", "server_full", s.server_full),
            ("reason", "login_timeout", s.login_timeouts),
            (
                "reason",
                "cluster_unavailable",
                s.cluster.logins_unavailable,
            ),
        ],
    );
    out.counter(
        "a_chat_messages_routed_total",
        "Messages put into receivers' queues, one per receiver.",
        s.messages_routed,
    );
    out.counter(
        "a_chat_unknown_destinations_total",
        "error: no such peer notices sent.",
        s.unknown_destinations,
    );
    let lines: Vec<(&str, &str, u64)> = LineError::ALL
        .iter()
        .map(|&error| ("reason", error.metric_label(), s.rejected(error)))
        .collect();
    out.family(
        "a_chat_lines_rejected_total",
        "counter",
        "Lines refused with an error notice, by reason.",
        &lines,
    );
    out.gauge(
        "a_chat_queued_bytes",
        "Bytes waiting in outbound queues, each queue counted on its own.",
        s.bytes_queued as u64,
    );
    out.gauge(
        "a_chat_queue_memory_bytes",
        "Bytes held by all outbound queues together as allocated, a shared buffer counted once.",
        s.queue_memory as u64,
    );
    out.gauge(
        "a_chat_max_memory_bytes",
        "The bound on a_chat_queue_memory_bytes (--max-memory).",
        s.max_memory as u64,
    );
    out.family(
        "a_chat_slow_consumers_evicted_total",
        "counter",
        "Peers disconnected as slow consumers, by the limit they hit.",
        &[
            (
                "limit",
                "max_queue",
                s.slow_consumers_evicted - s.memory_evictions,
            ),
            ("limit", "max_memory", s.memory_evictions),
        ],
    );
    out.counter(
        "a_chat_bytes_unsent_at_shutdown_total",
        "Routed bytes dropped by a shutdown instead of written.",
        s.bytes_unsent_at_shutdown,
    );
    out.counter(
        "a_chat_accept_pauses_total",
        "Times accepting paused for lack of descriptors or memory.",
        s.accept_pauses,
    );
    out.counter(
        "a_chat_loop_turns_total",
        "Turns of the event loop that reached the server.",
        s.loop_turns,
    );
    out.counter(
        "a_chat_events_handled_total",
        "Readiness events of the server's sources handled.",
        s.events_handled,
    );
    out.counter(
        "a_chat_metrics_requests_total",
        "HTTP requests to the metrics endpoint.",
        s.metrics_requests,
    );
    out.counter(
        "a_chat_metrics_connections_evicted_total",
        "Metrics connections closed to make room for a newcomer while every slot was taken.",
        s.metrics_connections_evicted,
    );
    out.counter(
        "a_chat_tls_handshakes_deferred_total",
        "TLS handshake steps put off to a later turn, the turn's budget being spent.",
        s.tls_handshakes_deferred,
    );
    out.gauge(
        "a_chat_tls_handshake_steps_max_per_turn",
        "The most TLS handshake steps done in one turn of the loop since start.",
        s.tls_handshake_steps_max_per_turn,
    );
    if s.cluster.enabled {
        let c = &s.cluster;
        out.gauge(
            "a_chat_cluster_redis_connected",
            "1 while the connection to Redis is up and subscribed, else 0.",
            u64::from(c.connected),
        );
        out.counter(
            "a_chat_cluster_reconnects_total",
            "Connections to Redis made after the first.",
            c.reconnects,
        );
        out.counter(
            "a_chat_cluster_messages_sent_total",
            "Messages published to other nodes.",
            c.messages_sent,
        );
        out.counter(
            "a_chat_cluster_messages_received_total",
            "Messages received from other nodes and queued here.",
            c.messages_received,
        );
        out.counter(
            "a_chat_cluster_unavailable_total",
            "error: cluster unavailable notices sent for destinations.",
            c.destinations_unavailable,
        );
        out.counter(
            "a_chat_cluster_recovery_windows_total",
            "Recovery windows seen open (Redis had lost its data; new logins refused meanwhile).",
            c.recovery_windows,
        );
        out.counter(
            "a_chat_cluster_failovers_total",
            "Failovers followed: the sentinels named a new master and the node moved to it.",
            c.failovers,
        );
        out.gauge(
            "a_chat_cluster_recovering",
            "1 while a recovery window is open (new logins refused), else 0.",
            u64::from(c.recovering),
        );
    }
    if let Some(p) = process {
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes,
        );
        let _ = write!(
            out.0,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}\n",
            p.cpu_time.as_secs_f64()
        );
    }
    out.0
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help, &[("", "", value)]);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help, &[("", "", value)]);
    }

    /// A metric family: its `HELP` and `TYPE` lines, then one sample per `(label, value,
    /// number)` (no label when the label's name is empty).
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, &str, u64)]) {
        let out = &mut self.0;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (label, value, number) in samples {
            if label.is_empty() {
                let _ = writeln!(out, "{name} {number}");
            } else {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {number}");
            }
        }
    }
}
