//! An in-memory model of the part of Redis the nodes use: `HELLO`, `SCRIPT LOAD`, `EVALSHA` of
//! the four a-chat scripts (their logic written again here in Rust, from the Lua in
//! `src/cluster/scripts.rs`; the real scripts run against a real Redis in `tests/cluster.rs`),
//! `SUBSCRIBE`, `PUBLISH` and `DEL`, with keys that expire on the simulation's clock.
//!
//! Commands run when their bytes arrive, as in Redis; what they answer (and what they publish
//! to subscribers) waits in each connection's outgoing bytes until the simulation hands some or
//! all of it to the node: replies can be delayed and cut anywhere. A connection dropped with
//! bytes still waiting loses them, and the messages published in them are reported lost (the
//! at-most-once caveat of publish/subscribe).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use redis_protocol::resp3::decode::complete::decode;
use redis_protocol::resp3::encode::complete::encode;
use redis_protocol::resp3::types::{FrameMap, OwnedFrame, Resp3Frame};

const NODE_KEY: &str = "a-chat:node:";
const NAME_KEY: &str = "a-chat:name:";
const NODE_CHANNEL: &str = "a-chat:to:";
const RECOVERING: &str = "a-chat:recovering";
const MARKER: &str = "a-chat:cluster";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    Hold,
    Claim,
    Release,
    Route,
}

/// One node's connection.
#[derive(Debug, Default)]
struct Conn {
    /// Bytes from the node not yet decoded.
    input: Vec<u8>,
    /// Bytes for the node not yet handed over.
    output: Vec<u8>,
    /// Published payloads in `output`: where each ends in it, and the payload.
    published: VecDeque<(usize, Vec<u8>)>,
    channel: Option<String>,
}

#[derive(Debug)]
pub struct FakeRedis {
    pub now: Instant,
    values: HashMap<String, (String, Option<Instant>)>,
    scripts: HashMap<String, Script>,
    /// By node index.
    conns: HashMap<usize, Conn>,
    /// Payloads published to a node and lost with its connection.
    pub lost: Vec<Vec<u8>>,
    /// Every payload published, with the node it went to.
    pub published: Vec<(usize, Vec<u8>)>,
}

impl FakeRedis {
    pub fn new(now: Instant) -> Self {
        FakeRedis {
            now,
            values: HashMap::new(),
            scripts: HashMap::new(),
            conns: HashMap::new(),
            lost: Vec::new(),
            published: Vec::new(),
        }
    }

    /// Node `node` connects (a connection it had is gone).
    pub fn connect(&mut self, node: usize) {
        self.drop_conn(node);
        self.conns.insert(node, Conn::default());
    }

    pub fn is_connected(&self, node: usize) -> bool {
        self.conns.contains_key(&node)
    }

    /// The connection of `node` breaks: what waited for it is lost.
    pub fn drop_conn(&mut self, node: usize) {
        if let Some(conn) = self.conns.remove(&node) {
            self.lost
                .extend(conn.published.into_iter().map(|(_, payload)| payload));
        }
    }

    /// A restart that lost the data: every connection breaks, every key and script is gone.
    pub fn restart_empty(&mut self) {
        let nodes: Vec<usize> = self.conns.keys().copied().collect();
        for node in nodes {
            self.drop_conn(node);
        }
        self.values.clear();
        self.scripts.clear();
    }

    /// `FLUSHALL` by someone else: every key is gone, the connections stay.
    pub fn flush_all(&mut self) {
        self.values.clear();
    }

    /// Bytes from `node`: every complete command runs now. `Err` if they are not RESP.
    pub fn feed(&mut self, node: usize, bytes: &[u8]) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(&node) else {
            return Ok(());
        };
        conn.input.extend_from_slice(bytes);
        loop {
            let conn = self.conns.get_mut(&node).expect("connected");
            let Some((frame, used)) = decode(&conn.input).map_err(|e| e.to_string())? else {
                return Ok(());
            };
            conn.input.drain(..used);
            let args = command_args(frame)?;
            let reply = self.run(node, &args);
            if std::env::var_os("CLUSTER_SIM_TRACE").is_some() {
                let shown: Vec<String> = args
                    .iter()
                    .map(|arg| String::from_utf8_lossy(arg).chars().take(60).collect())
                    .collect();
                eprintln!("  redis <- node{node}: {shown:?} -> {reply:?}");
            }
            self.send(node, &reply, None);
        }
    }

    /// Up to `max` of the bytes waiting for `node`, taken.
    pub fn take(&mut self, node: usize, max: usize) -> Vec<u8> {
        let Some(conn) = self.conns.get_mut(&node) else {
            return Vec::new();
        };
        let n = max.min(conn.output.len());
        let taken: Vec<u8> = conn.output.drain(..n).collect();
        while conn.published.front().is_some_and(|&(end, _)| end <= n) {
            conn.published.pop_front();
        }
        for (end, _) in &mut conn.published {
            *end -= n;
        }
        taken
    }

    fn send(&mut self, node: usize, frame: &OwnedFrame, published: Option<Vec<u8>>) {
        let Some(conn) = self.conns.get_mut(&node) else {
            return;
        };
        let start = conn.output.len();
        conn.output.resize(start + frame.encode_len(false), 0);
        let written = encode(&mut conn.output[start..], frame, false).expect("sized");
        conn.output.truncate(start + written);
        if let Some(payload) = published {
            conn.published.push_back((conn.output.len(), payload));
        }
    }

    fn run(&mut self, node: usize, args: &[Vec<u8>]) -> OwnedFrame {
        let text = |i: usize| String::from_utf8_lossy(&args[i]).into_owned();
        let name = text(0).to_ascii_uppercase();
        match (name.as_str(), args.len()) {
            ("HELLO", 2) if args[1] == b"3" => {
                let mut map = FrameMap::default();
                map.insert(blob(b"server"), blob(b"fake"));
                map.insert(blob(b"proto"), number(3));
                OwnedFrame::Map {
                    data: map,
                    attributes: None,
                }
            }
            ("SCRIPT", 3) if text(1).eq_ignore_ascii_case("LOAD") => {
                let script = text(2);
                let kind = match script.lines().next() {
                    Some("-- a-chat hold") => Script::Hold,
                    Some("-- a-chat claim") => Script::Claim,
                    Some("-- a-chat release") => Script::Release,
                    Some("-- a-chat route") => Script::Route,
                    _ => return error("ERR the fake knows only a-chat's scripts"),
                };
                let sha = sha1_smol::Sha1::from(&script).hexdigest();
                self.scripts.insert(sha.clone(), kind);
                blob(sha.as_bytes())
            }
            ("SUBSCRIBE", 2) => {
                let channel = text(1);
                self.conns.get_mut(&node).expect("connected").channel = Some(channel);
                OwnedFrame::Push {
                    data: vec![blob(b"subscribe"), blob(&args[1]), number(1)],
                    attributes: None,
                }
            }
            ("PUBLISH", 3) => number(self.publish(&text(1), &args[2])),
            ("DEL", n) if n >= 2 => {
                let deleted = (1..n).filter(|&i| self.del(&text(i))).count();
                number(deleted as i64)
            }
            ("EVALSHA", n) if n >= 3 => {
                let Some(&script) = self.scripts.get(&text(1)) else {
                    return error("NOSCRIPT No matching script.");
                };
                let Ok(count) = text(2).parse::<usize>() else {
                    return error("ERR bad key count");
                };
                if 3 + count > n {
                    return error("ERR bad key count");
                }
                let keys: Vec<String> = (3..3 + count).map(text).collect();
                let argv: Vec<Vec<u8>> = args[3 + count..].to_vec();
                match script {
                    Script::Hold => self.hold(&keys, &argv),
                    Script::Claim => self.claim(&keys, &argv),
                    Script::Release => self.release(&keys, &argv),
                    Script::Route => self.route(&keys, &argv),
                }
            }
            _ => error(&format!("ERR the fake does not know {name}")),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        match self.values.get(key) {
            Some((value, expiry)) if expiry.is_none_or(|at| at > self.now) => Some(value),
            _ => None,
        }
    }

    fn exists(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn set(&mut self, key: &str, value: &str, ttl: Option<Duration>) {
        let expiry = ttl.map(|ttl| self.now + ttl);
        self.values
            .insert(key.to_string(), (value.to_string(), expiry));
    }

    /// `SET key 1 NX`: whether it was set.
    fn set_nx(&mut self, key: &str, ttl: Option<Duration>) -> bool {
        if self.exists(key) {
            return false;
        }
        self.set(key, "1", ttl);
        true
    }

    fn del(&mut self, key: &str) -> bool {
        let existed = self.exists(key);
        self.values.remove(key);
        existed
    }

    fn publish(&mut self, channel: &str, payload: &[u8]) -> i64 {
        let subscribers: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.channel.as_deref() == Some(channel))
            .map(|(&node, _)| node)
            .collect();
        for &node in &subscribers {
            let push = OwnedFrame::Push {
                data: vec![blob(b"message"), blob(channel.as_bytes()), blob(payload)],
                attributes: None,
            };
            self.send(node, &push, Some(payload.to_vec()));
            self.published.push((node, payload.to_vec()));
        }
        subscribers.len() as i64
    }

    /// Publishes `payload` to node `node`'s channel, as another node's script would.
    pub fn publish_to(&mut self, node: usize, payload: &[u8]) {
        self.publish(&format!("{NODE_CHANNEL}node{node}"), payload);
    }

    fn hold(&mut self, keys: &[String], argv: &[Vec<u8>]) -> OwnedFrame {
        let ttl = Duration::from_millis(arg_number(&argv[0]));
        let existed = self.exists(&keys[0]);
        let new_redis = self.set_nx(MARKER, None);
        self.set(&keys[0], "1", Some(ttl));
        if (!existed && argv[1] == b"1") || (new_redis && argv[2] == b"1") {
            self.set_nx(RECOVERING, Some(ttl));
        }
        integers(vec![i64::from(existed), self.pttl(RECOVERING)])
    }

    /// `PTTL key`: its milliseconds left, -1 without an expiry, -2 if missing.
    fn pttl(&self, key: &str) -> i64 {
        match self.values.get(key) {
            Some((_, None)) if self.exists(key) => -1,
            Some((_, Some(at))) if *at > self.now => {
                i64::try_from(at.duration_since(self.now).as_millis()).unwrap_or(i64::MAX)
            }
            _ => -2,
        }
    }

    fn claim(&mut self, keys: &[String], argv: &[Vec<u8>]) -> OwnedFrame {
        let node = String::from_utf8_lossy(&argv[0]).into_owned();
        let conn = |i: usize| String::from_utf8_lossy(&argv[3 + i]).into_owned();
        if self.set_nx(MARKER, None) {
            let ttl = Duration::from_millis(arg_number(&argv[2]));
            self.set_nx(RECOVERING, Some(ttl));
        }
        let recovering = argv[1] == b"new" && self.exists(RECOVERING);
        let mut out = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let holder = self.get(key).map(|holder| holder_node(holder).to_string());
            let status = match holder {
                Some(holder) if holder == node => {
                    self.set(key, &format!("{node}/{}", conn(i)), None);
                    1
                }
                Some(holder) if self.exists(&format!("{NODE_KEY}{holder}")) => 0,
                _ if recovering => 2,
                _ => {
                    self.set(key, &format!("{node}/{}", conn(i)), None);
                    1
                }
            };
            out.push(number(status));
        }
        OwnedFrame::Array {
            data: out,
            attributes: None,
        }
    }

    fn release(&mut self, keys: &[String], argv: &[Vec<u8>]) -> OwnedFrame {
        let node = String::from_utf8_lossy(&argv[0]).into_owned();
        for (i, key) in keys.iter().enumerate() {
            let value = format!("{node}/{}", String::from_utf8_lossy(&argv[1 + i]));
            if self.get(key) == Some(value.as_str()) {
                self.del(key);
            }
        }
        number(keys.len() as i64)
    }

    fn route(&mut self, keys: &[String], argv: &[Vec<u8>]) -> OwnedFrame {
        // Per destination, its holder's node and connection.
        let held: Vec<Option<(String, String)>> = keys
            .iter()
            .map(|key| {
                self.get(key).map(|value| match value.split_once('/') {
                    Some((node, conn)) => (node.to_string(), conn.to_string()),
                    None => (value.to_string(), String::new()),
                })
            })
            .collect();
        let holders: Vec<Option<String>> = held
            .iter()
            .map(|held| held.as_ref().map(|(node, _)| node.clone()))
            .collect();
        let live = |redis: &Self, holder: &str| redis.exists(&format!("{NODE_KEY}{holder}"));
        // The route line (the connections, in order), then the records.
        let publish = |redis: &mut Self, holder: &str, conns: &[&str], payload: &[u8]| {
            let mut routed = format!("R,{}\n", conns.join(":")).into_bytes();
            routed.extend_from_slice(payload);
            if redis.publish(&format!("{NODE_CHANNEL}{holder}"), &routed) > 0 {
                1
            } else {
                2
            }
        };
        let conn_of = |i: usize| held[i].as_ref().map_or("", |(_, conn)| conn.as_str());
        if let Some(Some(first)) = holders.first()
            && holders.iter().all(|holder| holder.as_ref() == Some(first))
            && live(self, first)
        {
            let conns: Vec<&str> = (0..keys.len()).map(conn_of).collect();
            let status = publish(self, &first.clone(), &conns, &argv[0]);
            return integers(vec![status]);
        }
        let numbers: Vec<usize> = String::from_utf8_lossy(&argv[1])
            .split(',')
            .map(|n| n.parse().expect("a number"))
            .collect();
        let records = &argv[0];
        let mut out = vec![0; keys.len()];
        // Per holder, in order of first appearance: the indexes of its keys, and its records.
        let mut batches: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let (mut start, mut k) = (0, 0);
        for pair in numbers.chunks(2) {
            let (end, count) = (pair[0], pair[1]);
            let record = &records[start..end];
            start = end;
            let commas: Vec<usize> = record
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b',')
                .map(|(i, _)| i)
                .take(5)
                .collect();
            let (head, tail) = (&record[..=commas[3]], &record[commas[4]..]);
            let mut names: Vec<(String, Vec<usize>)> = Vec::new();
            for _ in 0..count {
                if let Some(holder) = &holders[k] {
                    if live(self, holder) {
                        match names.iter_mut().find(|(h, _)| h == holder) {
                            Some((_, list)) => list.push(k),
                            None => names.push((holder.clone(), vec![k])),
                        }
                    } else {
                        self.del(&keys[k]);
                    }
                }
                k += 1;
            }
            for (holder, list) in names {
                let index = match batches.iter().position(|(h, _, _)| *h == holder) {
                    Some(index) => index,
                    None => {
                        batches.push((holder.clone(), Vec::new(), Vec::new()));
                        batches.len() - 1
                    }
                };
                let dests: Vec<&str> = list.iter().map(|&i| &keys[i][NAME_KEY.len()..]).collect();
                let batch = &mut batches[index];
                batch.1.extend(&list);
                batch.2.extend_from_slice(head);
                batch.2.extend_from_slice(dests.join(":").as_bytes());
                batch.2.extend_from_slice(tail);
            }
        }
        for (holder, idx, payload) in batches {
            let conns: Vec<&str> = idx.iter().map(|&i| conn_of(i)).collect();
            let status = publish(self, &holder, &conns, &payload);
            for i in idx {
                out[i] = status;
            }
        }
        integers(out)
    }
}

/// The node of a name's holder, `NODE/CONN` (or `NODE` alone, from an earlier version).
fn holder_node(value: &str) -> &str {
    value.split_once('/').map_or(value, |(node, _)| node)
}

fn command_args(frame: OwnedFrame) -> Result<Vec<Vec<u8>>, String> {
    let OwnedFrame::Array { data, .. } = frame else {
        return Err(format!("a command that is not an array: {frame:?}"));
    };
    data.into_iter()
        .map(|part| match part {
            OwnedFrame::BlobString { data, .. } => Ok(data),
            other => Err(format!("an argument that is not a bulk string: {other:?}")),
        })
        .collect()
}

fn arg_number(arg: &[u8]) -> u64 {
    String::from_utf8_lossy(arg).parse().expect("a number")
}

fn blob(bytes: &[u8]) -> OwnedFrame {
    OwnedFrame::BlobString {
        data: bytes.to_vec(),
        attributes: None,
    }
}

fn number(n: i64) -> OwnedFrame {
    OwnedFrame::Number {
        data: n,
        attributes: None,
    }
}

fn integers(numbers: Vec<i64>) -> OwnedFrame {
    OwnedFrame::Array {
        data: numbers.into_iter().map(number).collect(),
        attributes: None,
    }
}

fn error(text: &str) -> OwnedFrame {
    OwnedFrame::SimpleError {
        data: text.into(),
        attributes: None,
    }
}
