//! Load scenarios against an in-process server: `cargo bench --bench load`.
//!
//! The server runs on its own `Poll` in a second thread of this process (the embedding API,
//! stopped through a `Waker`), so that a counting global allocator can tell its live heap bytes
//! apart. The load comes from the real generator, `a-chat bench`, as a child process: both ends
//! of 10,000 connections in one process would need 20,000 descriptors plus a few, past the
//! machine's hard limit of 20,000, and the generator's own allocations stay out of the count.
//!
//! Scenarios: 10,000 idle connections (server heap and RSS per connection), flat out with 1,000
//! senders and fan-out 1 and 8, and a low load (10 senders, window 1, fan-out 1 and 8).
//! The figures are the generator's JSON, plus what only this process can see: the server
//! thread's heap, and its CPU time from `/proc/self/task/TID/stat`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use a_chat::process::{ProcProbe, raise_open_file_limit};
use a_chat::{Config, Server, Stats, Tokens};
use mio::{Events, Poll, Token, Waker};

// ---------------------------------------------------------------------------------------------
// The counting allocator: live bytes allocated by the server thread.

/// Heap bytes live that the server thread allocated (less what it freed).
static SERVER_HEAP: AtomicI64 = AtomicI64::new(0);

thread_local! {
    /// Set in the server thread only. Const-initialized and without a destructor, so the
    /// allocator may read it at any time, thread teardown included.
    static IN_SERVER: Cell<bool> = const { Cell::new(false) };
}

fn count(delta: i64) {
    if IN_SERVER.with(Cell::get) {
        SERVER_HEAP.fetch_add(delta, Ordering::Relaxed);
    }
}

/// The system allocator, counting the server thread's bytes. Memory allocated by one thread
/// and freed by the other would be miscounted: the server keeps what it allocates.
struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// The server, in a thread of its own.

const STOP: Token = Token(0);

/// What the server thread shows the main thread.
struct Shared {
    logged_in: AtomicUsize,
}

struct ServerThread {
    addr: SocketAddr,
    waker: Arc<Waker>,
    shared: Arc<Shared>,
    /// `/proc/self/task/TID/stat` of the server thread.
    stat: PathBuf,
    handle: thread::JoinHandle<Stats>,
}

fn start_server() -> ServerThread {
    let (ready, started) = mpsc::channel();
    let shared = Arc::new(Shared {
        logged_in: AtomicUsize::new(0),
    });
    let seen = shared.clone();
    let handle = thread::spawn(move || {
        IN_SERVER.with(|flag| flag.set(true));
        // "PID/task/TID": the thread's own /proc directory, for its CPU time.
        let task = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), STOP).unwrap());
        let config = Config {
            max_conns: 15_000,
            ..Config::default()
        };
        let tokens = Tokens {
            first: Token(1),
            count: 20_000,
        };
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(config, &[any], tokens).unwrap();
        server.register(poll.registry()).unwrap();
        ready.send((server.local_addrs()[0], waker, task)).unwrap();
        let mut events = Events::with_capacity(1024);
        while !server.is_finished() {
            poll.poll(&mut events, server.timeout()).unwrap();
            server.handle_events(poll.registry(), &events);
            if events.iter().any(|event| event.token() == STOP) {
                server.begin_shutdown(poll.registry());
            }
            seen.logged_in
                .store(server.stats().peers_logged_in, Ordering::Relaxed);
        }
        server.stats()
    });
    let (addr, waker, task) = started
        .recv_timeout(Duration::from_secs(10))
        .expect("the server thread started");
    ServerThread {
        addr,
        waker,
        shared,
        stat: PathBuf::from("/proc").join(task).join("stat"),
        handle,
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

struct Scenario {
    name: &'static str,
    conns: usize,
    args: &'static [&'static str],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "idle 10k",
        conns: 10_000,
        args: &["--idle", "--hold", "1"],
    },
    Scenario {
        name: "flat S=1000 K=1",
        conns: 1000,
        args: &["--messages", "100", "--fanout", "1"],
    },
    Scenario {
        name: "flat S=1000 K=8",
        conns: 1000,
        args: &["--messages", "100", "--fanout", "8"],
    },
    Scenario {
        name: "low S=10 W=1 K=1",
        conns: 1000,
        args: &[
            "--senders",
            "10",
            "--window",
            "1",
            "--messages",
            "1000",
            "--fanout",
            "1",
        ],
    },
    Scenario {
        name: "low S=10 W=1 K=8",
        conns: 1000,
        args: &[
            "--senders",
            "10",
            "--window",
            "1",
            "--messages",
            "1000",
            "--fanout",
            "8",
        ],
    },
];

/// The generator's bound on one scenario; this process waits a little longer.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// What this process measured beside the generator.
#[derive(Default)]
struct Extra {
    heap_zero: i64,
    heap_idle: i64,
    heap_after: i64,
    /// Server thread CPU from all logged in to the generator's exit, in microseconds.
    cpu_us: Option<u64>,
}

fn run(
    server: &ServerThread,
    index: usize,
    scenario: &Scenario,
) -> (HashMap<String, String>, Extra) {
    let thread_probe = ProcProbe::new(PathBuf::from("/proc/self/status"), server.stat.clone());
    let mut extra = Extra {
        heap_zero: SERVER_HEAP.load(Ordering::Relaxed),
        ..Extra::default()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_a-chat"))
        .args(["bench", "-q", "--json", "--addr", &server.addr.to_string()])
        .args(["--server-pid", &std::process::id().to_string()])
        .args(["--prefix", &format!("s{index}x")])
        .args(["--conns", &scenario.conns.to_string()])
        .args(["--timeout", &SCENARIO_TIMEOUT.as_secs().to_string()])
        .args(scenario.args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a-chat bench");
    // The load begins once every connection is logged in: sample then. Sleeping between
    // looks keeps this thread's share of the process's CPU time negligible.
    let give_up = Instant::now() + SCENARIO_TIMEOUT + Duration::from_secs(10);
    let mut cpu_start = None;
    while Instant::now() < give_up {
        if server.shared.logged_in.load(Ordering::Relaxed) >= scenario.conns {
            extra.heap_idle = SERVER_HEAP.load(Ordering::Relaxed);
            cpu_start = thread_probe.cpu_time().ok();
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let output = child.wait_with_output().expect("a-chat bench ran");
    extra.heap_after = SERVER_HEAP.load(Ordering::Relaxed);
    extra.cpu_us = cpu_start
        .zip(thread_probe.cpu_time().ok())
        .map(|(start, end)| end.saturating_sub(start).as_micros() as u64);
    let json = String::from_utf8_lossy(&output.stdout);
    println!("{}: {}", scenario.name, json.trim());
    if !output.status.success() {
        println!(
            "  (the generator exited {}: the run did not pass)",
            output.status
        );
    }
    (parse_flat_json(&json), extra)
}

/// The generator's one flat JSON object as name -> raw value (numbers, `null`, bare strings).
fn parse_flat_json(json: &str) -> HashMap<String, String> {
    let body = json.trim().trim_start_matches('{').trim_end_matches('}');
    body.split(',')
        .filter_map(|field| {
            let (name, value) = field.split_once(':')?;
            Some((
                name.trim_matches('"').to_string(),
                value.trim_matches('"').to_string(),
            ))
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench` (and any filter); the scenarios run regardless.
    let nofile = raise_open_file_limit();
    println!(
        "open-file limit {nofile}; server on a thread of pid {}",
        std::process::id()
    );
    let server = start_server();
    let mut rows = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let (figures, extra) = run(&server, index, scenario);
        // Let the server see every close before the next scenario.
        let settle = Instant::now() + Duration::from_secs(10);
        while server.shared.logged_in.load(Ordering::Relaxed) > 0 && Instant::now() < settle {
            thread::sleep(Duration::from_millis(10));
        }
        rows.push((scenario, figures, extra));
    }
    server.waker.wake().unwrap();
    let stats = server.handle.join().expect("the server thread");

    println!();
    println!(
        "{:<18} {:>6} {:>9} {:>10} {:>11} {:>8} {:>8} {:>8} {:>8} {:>11} {:>11}",
        "scenario",
        "result",
        "login s",
        "deliv/s",
        "lost",
        "p50 us",
        "p99 us",
        "max us",
        "cpu us/d",
        "heap B/conn",
        "rss B/conn"
    );
    for (scenario, figures, extra) in &rows {
        let get = |name: &str| match figures.get(name).map(String::as_str) {
            None | Some("null") => "-".to_string(),
            Some(value) => value.to_string(),
        };
        let idle = scenario.args.contains(&"--idle");
        let cpu_per_delivery = match (extra.cpu_us, get("delivered").parse::<f64>()) {
            (Some(us), Ok(delivered)) if delivered > 0.0 => format!("{:.2}", us as f64 / delivered),
            _ => "-".into(),
        };
        // Per idle connection: only meaningful where the run starts from an empty server.
        let heap_per_conn = if idle {
            format!(
                "{:.0}",
                (extra.heap_idle - extra.heap_zero) as f64 / scenario.conns as f64
            )
        } else {
            "-".into()
        };
        println!(
            "{:<18} {:>6} {:>9} {:>10} {:>11} {:>8} {:>8} {:>8} {:>8} {:>11} {:>11}",
            scenario.name,
            get("result"),
            get("connect_login_secs"),
            get("delivered_per_sec")
                .parse::<f64>()
                .map_or("-".into(), |rate| format!("{rate:.0}")),
            get("lost"),
            get("latency_us_p50"),
            get("latency_us_p99"),
            get("latency_us_max"),
            cpu_per_delivery,
            heap_per_conn,
            if idle {
                get("server_rss_bytes_per_idle_conn")
            } else {
                "-".into()
            },
        );
    }
    for (scenario, _, extra) in &rows {
        println!(
            "{}: server heap {} B before, {} B with all logged in, {} B after",
            scenario.name, extra.heap_zero, extra.heap_idle, extra.heap_after
        );
    }
    println!(
        "server: {} messages routed, {} slow consumers",
        stats.messages_routed, stats.slow_consumers_evicted
    );
}
