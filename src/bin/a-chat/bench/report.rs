//! The figures of a run, as an aligned table or one flat JSON object (written by hand: a flat
//! object of numbers and strings needs no serde).

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Percentiles of a histogram, in its unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `histogram`; `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        (!histogram.is_empty()).then(|| Percentiles {
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        })
    }
}

/// What is known of the server, when a probe was given (`--server-pid`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerFigures {
    /// VmRSS before connecting, after all connections logged in, after the load (KiB).
    pub rss_kb_zero: Option<u64>,
    pub rss_kb_idle: Option<u64>,
    pub rss_kb_after: Option<u64>,
    /// VmHWM at the end (KiB).
    pub hwm_kb: Option<u64>,
    /// (RSS idle - RSS zero) / logged-in connections.
    pub rss_bytes_per_idle_conn: Option<f64>,
    /// CPU time used during the load, in seconds.
    pub cpu_secs: Option<f64>,
    /// CPU time during the load over copies delivered, in microseconds.
    pub cpu_us_per_delivery: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub conns: usize,
    pub senders: usize,
    pub messages: u64,
    pub bytes: usize,
    pub fanout: usize,
    pub mode: String,
    /// The connections spoke TLS.
    pub tls: bool,
    /// Connections that logged in.
    pub logged_in: usize,
    /// Connections that failed to connect or log in, or that the server closed.
    pub failed_conns: usize,
    /// From the first connect to the last login.
    pub connect_login_secs: f64,
    /// Per connection, from its connect to its login, in microseconds.
    pub connect_login_us: Option<Percentiles>,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    /// The servers loaded (nodes of a cluster), and the copies delivered between two of them.
    pub nodes: usize,
    pub cross_node_delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub malformed: u64,
    pub notices: u64,
    /// From the start of the load to the last copy delivered.
    pub duration_secs: f64,
    pub delivered_per_sec: f64,
    pub latency_us: Option<Percentiles>,
    pub server: ServerFigures,
    /// The run hit `--timeout`.
    pub timed_out: bool,
}

/// A value of the report.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(u64),
    Float(f64),
    Text(String),
    Missing,
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Int(n)
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Int(n as u64)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        if x.is_finite() {
            Value::Float(x)
        } else {
            Value::Missing
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Missing, Into::into)
    }
}

impl Report {
    /// Nothing lost, duplicated, reordered or garbled, every connection held, within the time.
    pub fn passed(&self) -> bool {
        self.logged_in == self.conns
            && self.failed_conns == 0
            && self.lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.malformed == 0
            && !self.timed_out
    }

    /// Every figure, named, in print order.
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let latency = self.latency_us;
        let per_conn = self.connect_login_us;
        let s = &self.server;
        vec![
            ("result", if self.passed() { "pass" } else { "fail" }.into()),
            ("mode", self.mode.as_str().into()),
            ("tls", u64::from(self.tls).into()),
            ("conns", self.conns.into()),
            ("senders", self.senders.into()),
            ("messages", self.messages.into()),
            ("bytes", self.bytes.into()),
            ("fanout", self.fanout.into()),
            ("logged_in", self.logged_in.into()),
            ("failed_conns", self.failed_conns.into()),
            ("connect_login_secs", self.connect_login_secs.into()),
            ("connect_login_us_p50", per_conn.map(|p| p.p50).into()),
            ("connect_login_us_p99", per_conn.map(|p| p.p99).into()),
            ("connect_login_us_max", per_conn.map(|p| p.max).into()),
            ("sent", self.sent.into()),
            ("expected", self.expected.into()),
            ("delivered", self.delivered.into()),
            ("nodes", self.nodes.into()),
            ("cross_node_delivered", self.cross_node_delivered.into()),
            ("lost", self.lost.into()),
            ("duplicates", self.duplicates.into()),
            ("out_of_order", self.out_of_order.into()),
            ("malformed", self.malformed.into()),
            ("notices", self.notices.into()),
            ("timed_out", u64::from(self.timed_out).into()),
            ("duration_secs", self.duration_secs.into()),
            ("delivered_per_sec", self.delivered_per_sec.into()),
            ("latency_us_p50", latency.map(|p| p.p50).into()),
            ("latency_us_p90", latency.map(|p| p.p90).into()),
            ("latency_us_p99", latency.map(|p| p.p99).into()),
            ("latency_us_p999", latency.map(|p| p.p999).into()),
            ("latency_us_max", latency.map(|p| p.max).into()),
            ("server_rss_kb_zero", s.rss_kb_zero.into()),
            ("server_rss_kb_idle", s.rss_kb_idle.into()),
            ("server_rss_kb_after", s.rss_kb_after.into()),
            ("server_hwm_kb", s.hwm_kb.into()),
            (
                "server_rss_bytes_per_idle_conn",
                s.rss_bytes_per_idle_conn.into(),
            ),
            ("server_cpu_secs", s.cpu_secs.into()),
            ("server_cpu_us_per_delivery", s.cpu_us_per_delivery.into()),
        ]
    }

    /// One JSON object on one line; unknown figures are `null`.
    pub fn to_json(&self) -> String {
        let mut json = String::from("{");
        for (i, (name, value)) in self.fields().into_iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(json, "{sep}\"{name}\":");
            match value {
                Value::Int(n) => {
                    let _ = write!(json, "{n}");
                }
                Value::Float(x) => {
                    let _ = write!(json, "{}", round3(x));
                }
                Value::Text(text) => json_string(&mut json, &text),
                Value::Missing => json.push_str("null"),
            }
        }
        json.push('}');
        json
    }

    /// Two aligned columns, name and value; unknown figures are left out.
    pub fn to_table(&self) -> String {
        let fields: Vec<(&str, String)> = self
            .fields()
            .into_iter()
            .filter_map(|(name, value)| {
                let text = match value {
                    Value::Int(n) => n.to_string(),
                    Value::Float(x) => round3(x).to_string(),
                    Value::Text(text) => text,
                    Value::Missing => return None,
                };
                Some((name, text))
            })
            .collect();
        let name_width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let value_width = fields.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let mut table = String::new();
        for (name, value) in fields {
            let _ = writeln!(table, "{name:<name_width$}  {value:>value_width$}");
        }
        table
    }
}

/// `x` with at most 3 decimals (and none for whole numbers), as JSON and the table show it.
pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            conns: 2,
            senders: 1,
            messages: 3,
            bytes: 64,
            fanout: 1,
            mode: "flat".into(),
            logged_in: 2,
            connect_login_secs: 0.0125,
            sent: 3,
            expected: 3,
            delivered: 3,
            duration_secs: 1.5,
            delivered_per_sec: 2.0,
            latency_us: Some(Percentiles {
                p50: 10,
                p90: 20,
                p99: 30,
                p999: 40,
                max: 50,
            }),
            ..Report::default()
        }
    }

    #[test]
    fn percentiles_of_a_histogram() {
        let mut histogram = super::super::deliveries::latency_histogram(1_000_000);
        assert_eq!(Percentiles::of(&histogram), None);
        for us in 1..=1000 {
            histogram.record(us).unwrap();
        }
        let p = Percentiles::of(&histogram).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (500, 900, 990, 1000));
        assert!(p.p999 >= 999);
    }

    #[test]
    fn json_is_one_flat_object_with_nulls_for_the_unknown() {
        let json = sample().to_json();
        assert!(json.starts_with("{\"result\":\"pass\",\"mode\":\"flat\",\"tls\":0,\"conns\":2,"));
        assert!(json.contains("\"connect_login_secs\":0.013,"));
        assert!(json.contains("\"duration_secs\":1.5,"));
        assert!(json.contains("\"latency_us_p999\":40,"));
        assert!(json.contains("\"server_rss_kb_idle\":null,"));
        assert!(json.ends_with("\"server_cpu_us_per_delivery\":null}"));
        assert!(!json.contains('\n'));
        // Flat: braces only around the whole, every key quoted once.
        assert_eq!(json.matches('{').count(), 1);
        assert_eq!(json.matches(':').count(), sample().fields().len());
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\n");
        assert_eq!(out, r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn any_loss_or_disorder_fails() {
        assert!(sample().passed());
        for broken in [
            Report {
                lost: 1,
                ..sample()
            },
            Report {
                duplicates: 1,
                ..sample()
            },
            Report {
                out_of_order: 1,
                ..sample()
            },
            Report {
                malformed: 1,
                ..sample()
            },
            Report {
                failed_conns: 1,
                ..sample()
            },
            Report {
                logged_in: 1,
                ..sample()
            },
            Report {
                timed_out: true,
                ..sample()
            },
        ] {
            assert!(!broken.passed());
            assert!(broken.to_json().starts_with("{\"result\":\"fail\""));
        }
    }

    #[test]
    fn table_aligns_and_skips_the_unknown() {
        let table = sample().to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{table}");
        assert!(table.contains("delivered_per_sec"));
        assert!(!table.contains("server_rss_kb_idle"));
    }
}
