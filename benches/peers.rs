//! A million peers in memory: the IO-free core (`Chat`) driven directly, in its documented
//! call order, over a transport that holds one pending input and throws output away, with
//! 1,000, 100,000 and 1,000,000 logged-in peers. At each size: the heap bytes per idle peer (a
//! counting allocator: the core's own memory, the transport holds none), and the time to route
//! a K=1 and a K=8 message to random peers (among all, and among 1,000 of them while the rest
//! idle), and to log a peer in and out. Plus the slowest single login while the peers were
//! logging in (where the name directory would grow, if it were not sized up front).
//!
//! ```sh
//! cargo bench --bench peers                          # 1k, 100k, 1M
//! A_CHAT_PEERS=1000,20000 cargo bench --bench peers  # other sizes
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use a_chat::Config;
use a_chat::core::{Chat, Transport};
use a_chat::sim::XorShift;

/// Heap bytes live.
static HEAP: AtomicI64 = AtomicI64::new(0);

struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            HEAP.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            HEAP.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        HEAP.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            HEAP.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap() -> i64 {
    HEAP.load(Ordering::Relaxed)
}

/// A connection whose peer sends one line at a time and reads everything at once.
#[derive(Default)]
struct Wire {
    /// The next bytes to read (the driver puts a line here, then says it is readable).
    input: Option<Box<[u8]>>,
    /// The peer closed: end of stream once `input` is read.
    closed: bool,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.input.take() {
            Some(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
            None if self.closed => Ok(0),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(bufs.iter().map(|buf| buf.len()).sum())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Wire {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn is_closed_by_peer(&mut self) -> bool {
        self.closed && self.input.is_none()
    }
}

fn line(text: String) -> Option<Box<[u8]>> {
    Some(text.into_bytes().into_boxed_slice())
}

/// The end of a loop turn, as a driver makes it (nothing to register: output is taken at once).
fn end_turn(chat: &mut Chat<Wire>, now: Instant) {
    chat.end_turn(now, |_, _, _| Ok(()), |_, _, _| {});
}

/// Messages routed per loop turn in the routing runs: a busy loop's batch.
const PER_TURN: usize = 64;

/// Peers that talk in the hot-set runs.
const HOT: usize = 1_000;

struct Figures {
    peers: usize,
    heap_per_peer: f64,
    route_k1_ns: f64,
    route_k8_ns: f64,
    hot_k1_ns: f64,
    hot_k8_ns: f64,
    login_logout_ns: f64,
    slowest_login: Duration,
}

fn run(peers: usize, rng: &mut XorShift) -> Figures {
    let config = Config {
        max_conns: peers + 1024,
        max_memory: 1 << 40,
        ..Config::default()
    };
    let mut now = Instant::now();
    let before = heap();
    let mut chat: Chat<Wire> = Chat::new(config);
    // Log every peer in: accept reads the name at once.
    let mut slowest_login = Duration::ZERO;
    for i in 0..peers {
        let started = Instant::now();
        let key = chat.vacant_key();
        let accepted = chat.accept(
            Wire {
                input: line(format!("p{i}\n")),
                closed: false,
            },
            now,
        );
        assert_eq!(key, accepted);
        slowest_login = slowest_login.max(started.elapsed());

        if i % 1024 == 1023 {
            end_turn(&mut chat, now);
        }
    }
    // Past the login timeout: the login timers, stale since, are gone from the timer heap.
    now += Duration::from_secs(11);
    end_turn(&mut chat, now);
    assert_eq!(chat.stats().peers_logged_in, peers);
    let heap_per_peer = (heap() - before) as f64 / peers as f64;

    // Routing: lines prepared first, then fed one per readable event, a turn every 64. The
    // senders and receivers are drawn from the first `among` peers.
    let route =
        |chat: &mut Chat<Wire>, rng: &mut XorShift, fanout: usize, count: usize, among: usize| {
            let lines: Vec<(usize, Option<Box<[u8]>>)> = (0..count)
                .map(|_| {
                    let sender = rng.index(among);
                    let mut dests = Vec::with_capacity(fanout);
                    while dests.len() < fanout {
                        let receiver = rng.index(among);
                        if receiver != sender && !dests.contains(&receiver) {
                            dests.push(receiver);
                        }
                    }
                    let names: Vec<String> = dests.iter().map(|d| format!("p{d}")).collect();
                    (
                        sender,
                        line(format!("{}: hello, world\n", names.join(", "))),
                    )
                })
                .collect();
            let routed_before = chat.stats().messages_routed;
            let started = Instant::now();
            for (i, (sender, bytes)) in lines.into_iter().enumerate() {
                chat.transport_mut(sender).expect("a peer").input = bytes;
                chat.on_readable(sender, now);
                if i % PER_TURN == PER_TURN - 1 {
                    end_turn(chat, now);
                }
            }
            end_turn(chat, now);
            let elapsed = started.elapsed();
            assert_eq!(
                chat.stats().messages_routed - routed_before,
                (count * fanout) as u64
            );
            elapsed.as_nanos() as f64 / count as f64
        };
    let count = 200_000;
    route(&mut chat, rng, 1, count / 10, peers); // warm the outboxes' deques
    let route_k1_ns = route(&mut chat, rng, 1, count, peers);
    let route_k8_ns = route(&mut chat, rng, 8, count / 4, peers);
    // The same among 1,000 of them (the others idle): what the core's own work costs when
    // the peers that talk stay in the CPU's caches.
    let hot = peers.min(HOT);
    let hot_k1_ns = route(&mut chat, rng, 1, count, hot);
    let hot_k8_ns = route(&mut chat, rng, 8, count / 4, hot);

    // A login and a logout, the peer count staying put.
    let pairs = 100_000;
    let started = Instant::now();
    for j in 0..pairs {
        let key = chat.accept(
            Wire {
                input: line(format!("q{j}\n")),
                closed: false,
            },
            now,
        );
        chat.transport_mut(key).expect("logged in").closed = true;
        chat.on_readable(key, now);
        end_turn(&mut chat, now);
    }
    let login_logout_ns = started.elapsed().as_nanos() as f64 / pairs as f64;
    assert_eq!(chat.stats().peers_logged_in, peers);
    Figures {
        peers,
        heap_per_peer,
        route_k1_ns,
        route_k8_ns,
        hot_k1_ns,
        hot_k8_ns,
        login_logout_ns,
        slowest_login,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("A_CHAT_PEERS")
        .ok()
        .map(|list| {
            list.split(',')
                .map(|n| n.trim().parse().expect("A_CHAT_PEERS: numbers"))
                .collect()
        })
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000]);
    let mut rng = XorShift::new(1);
    let results: Vec<Figures> = sizes.iter().map(|&n| run(n, &mut rng)).collect();
    println!("ns per message routed to random peers among all, and among {HOT} of them:");
    println!(
        "{:>10} {:>12} {:>10} {:>10} {:>10} {:>10} {:>16} {:>14}",
        "peers",
        "heap B/peer",
        "K=1 all",
        "K=8 all",
        "K=1 hot",
        "K=8 hot",
        "login+logout ns",
        "slowest login"
    );
    for f in &results {
        println!(
            "{:>10} {:>12.1} {:>10.0} {:>10.0} {:>10.0} {:>10.0} {:>16.0} {:>14.2?}",
            f.peers,
            f.heap_per_peer,
            f.route_k1_ns,
            f.route_k8_ns,
            f.hot_k1_ns,
            f.hot_k8_ns,
            f.login_logout_ns,
            f.slowest_login
        );
    }
    if let (Some(small), Some(large)) = (results.first(), results.last()) {
        let ratio = |f: fn(&Figures) -> f64| f(large) / f(small);
        println!(
            "{} against {} peers: K=1 {:.2}x all, {:.2}x hot; K=8 {:.2}x all, {:.2}x hot; login+logout {:.2}x",
            large.peers,
            small.peers,
            ratio(|f| f.route_k1_ns),
            ratio(|f| f.hot_k1_ns),
            ratio(|f| f.route_k8_ns),
            ratio(|f| f.hot_k8_ns),
            ratio(|f| f.login_logout_ns)
        );
    }
}
