//! Helper for `bench/dht.sh`: a KRPC (BEP 5) load generator for one DHT node on loopback.
//!
//! ```text
//! dht-load run ADDR [--kind K] [--seconds S] [--warmup S] [--inflight N] [--ips N] [--sockets-per-ip N]
//!                   [--hashes N] [--timeout-ms MS] [--seed N] [--token-cache N] [--announce-port random|own]
//!                   [--watch-pid PID] [--clk-tck HZ]
//! dht-load ping ADDR [MAX_SECONDS]     # exit 0 once ADDR answers a KRPC ping
//! ```
//!
//! `run` sends queries to the node at ADDR from `--ips` source addresses (127.77.0.1, 127.77.0.2, ...: so a
//! per-IP limit would see several sources) with `--sockets-per-ip` UDP sockets each, every socket a node
//! of its own (an id derived from `--seed`, the same in every run). It keeps `--inflight` queries
//! outstanding (a new one goes out as soon as one is answered or times out after `--timeout-ms`) for
//! `--warmup` seconds, then measures for `--seconds`. `--kind` is `ping`, `find_node` (random targets),
//! `get_peers` (random info-hashes of a fixed pool of `--hashes`), `announce_peer`, or `mix` (the four in
//! equal parts; `mix:P,F,G,A` for other weights).
//!
//! `announce_peer` carries the token of an earlier `get_peers` reply to the same socket for the same
//! info-hash (BEP 5: "the token received from an earlier get_peers query"; some nodes tie it to the
//! info-hash): each socket keeps the tokens of its last `--token-cache` get_peers replies and announces one
//! of those hashes. With no token for a hash yet, or during the warm-up of an `announce_peer` run while
//! its cache is not full, the socket sends that `get_peers` first (counted as a get_peers). The announced
//! port is random (`--announce-port random`: almost every announce is a new peer, so swarms fill to the
//! node's cap) or the socket's own (`own`: one peer per socket and hash, then refreshes).
//!
//! Queries the node sends us (it pings the nodes that query it before adding them to its table) are
//! answered with a bare response carrying the socket's id, and counted.
//!
//! It prints one JSON object: the window's length, queries sent, responses per second, and per kind the
//! queries sent, responses, KRPC errors and timeouts; latency percentiles over the answered queries (from
//! send to reply, microseconds); the average `values` and `nodes` per reply. It writes
//! `dht-load: measuring` to stderr when the measured window starts and `dht-load: done` when it ends.
//! With `--watch-pid`, it also reads that process's CPU time (utime + stime of all its threads, from
//! `/proc/PID/stat`, in ticks of `--clk-tck`, 100 by default: `getconf CLK_TCK`) and its own at both ends of
//! the window, and the process's VmRSS at the end: `server_cpu_pct`, `loader_cpu_pct`, `server_rss_kib`.
//! (Sampling from the loader, not from a script: on this machine a script that starts a process every
//! 100 ms, even pinned elsewhere, cut a pinned server's throughput by up to half.) Only loopback targets
//! are accepted.
//!
//! KRPC is encoded and read here with the workspace's `bencode` crate only (not the `dht` crate's codec),
//! so the loader does not share the code it measures.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bencode::{DecodeOptions, Encoder};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ping = 0,
    FindNode = 1,
    GetPeers = 2,
    Announce = 3,
}

const KINDS: [Kind; 4] = [Kind::Ping, Kind::FindNode, Kind::GetPeers, Kind::Announce];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::FindNode => "find_node",
            Kind::GetPeers => "get_peers",
            Kind::Announce => "announce_peer",
        }
    }
}

/// SplitMix64: a small seeded generator (no dependency; quality is ample for picking ids and hashes).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn id(&mut self) -> [u8; 20] {
        let mut id = [0u8; 20];
        for chunk in id.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        id
    }
}

struct Opts {
    target: SocketAddr,
    weights: [u32; 4],
    kind_name: String,
    seconds: f64,
    warmup: f64,
    inflight: usize,
    ips: usize,
    sockets_per_ip: usize,
    hashes: usize,
    timeout: Duration,
    seed: u64,
    token_cache: usize,
    random_port: bool,
    watch_pid: Option<u32>,
    clk_tck: f64,
}

fn parse_kind(s: &str) -> Result<[u32; 4], String> {
    Ok(match s {
        "ping" => [1, 0, 0, 0],
        "find_node" => [0, 1, 0, 0],
        "get_peers" => [0, 0, 1, 0],
        "announce_peer" => [0, 0, 0, 1],
        "mix" => [1, 1, 1, 1],
        _ => {
            let Some(w) = s.strip_prefix("mix:") else {
                return Err(format!("unknown --kind {s}"));
            };
            let v: Vec<u32> = w
                .split(',')
                .map(|x| x.parse().map_err(|_| format!("bad weight {x}")))
                .collect::<Result<_, _>>()?;
            let [p, f, g, a] = v[..] else {
                return Err("mix:P,F,G,A needs four weights".into());
            };
            if p + f + g + a == 0 {
                return Err("the weights add up to 0".into());
            }
            [p, f, g, a]
        }
    })
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let target: SocketAddr = args
        .first()
        .ok_or("run needs ADDR")?
        .parse()
        .map_err(|e| format!("ADDR: {e}"))?;
    if !target.ip().is_loopback() {
        return Err("only loopback targets (127.0.0.0/8, ::1) are accepted".into());
    }
    let mut o = Opts {
        target,
        weights: [1, 1, 1, 1],
        kind_name: "mix".into(),
        seconds: 20.0,
        warmup: 5.0,
        inflight: 64,
        ips: 8,
        sockets_per_ip: 4,
        hashes: 1000,
        timeout: Duration::from_millis(1000),
        seed: 1,
        token_cache: 64,
        random_port: true,
        watch_pid: None,
        clk_tck: 100.0,
    };
    let mut it = args.iter().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: not a number: {v}"));
        let int = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not an integer: {v}"))
        };
        match flag.as_str() {
            "--kind" => {
                o.weights = parse_kind(v)?;
                o.kind_name = v.clone();
            }
            "--seconds" => o.seconds = num(v)?,
            "--warmup" => o.warmup = num(v)?,
            "--inflight" => o.inflight = int(v)?,
            "--ips" => o.ips = int(v)?,
            "--sockets-per-ip" => o.sockets_per_ip = int(v)?,
            "--hashes" => o.hashes = int(v)?,
            "--timeout-ms" => o.timeout = Duration::from_millis(int(v)? as u64),
            "--seed" => o.seed = int(v)? as u64,
            "--token-cache" => o.token_cache = int(v)?,
            "--watch-pid" => o.watch_pid = Some(int(v)? as u32),
            "--clk-tck" => o.clk_tck = num(v)?,
            "--announce-port" => {
                o.random_port = match v.as_str() {
                    "random" => true,
                    "own" => false,
                    _ => return Err("--announce-port is random or own".into()),
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if !(o.seconds > 0.0 && o.seconds <= 3600.0 && o.warmup >= 0.0 && o.warmup <= 3600.0) {
        return Err("--seconds must be in (0, 3600], --warmup in [0, 3600]".into());
    }
    if o.inflight == 0 || o.inflight > 60_000 {
        return Err("--inflight must be 1..60000".into());
    }
    if o.ips == 0 || o.ips > 250 || o.sockets_per_ip == 0 || o.ips * o.sockets_per_ip > 4096 {
        return Err("--ips 1..250, --sockets-per-ip >= 1, at most 4096 sockets".into());
    }
    if o.clk_tck <= 0.0 {
        return Err("--clk-tck must be positive".into());
    }
    if o.hashes == 0 || o.token_cache == 0 || o.timeout.is_zero() {
        return Err("--hashes, --token-cache and --timeout-ms must be positive".into());
    }
    Ok(o)
}

/// One source socket: a node of its own.
struct Source {
    sock: UdpSocket,
    id: [u8; 20],
    /// (info-hash, token) from this socket's last get_peers replies.
    tokens: Vec<([u8; 20], Vec<u8>)>,
}

#[derive(Clone, Copy)]
struct Slot {
    gen: u16,
    busy: bool,
    source: u32,
    kind: Kind,
    sent: Instant,
    hash: [u8; 20],
}

#[derive(Default)]
struct Counts {
    sent: [u64; 4],
    responses: [u64; 4],
    errors: [u64; 4],
    timeouts: [u64; 4],
    /// Replies that were not KRPC, or lacked what their kind needs.
    malformed: u64,
    /// Replies to a query already timed out (or of an unknown transaction).
    late: u64,
    send_errors: u64,
    recv_errors: u64,
    /// Queries the node sent us (answered).
    server_queries: u64,
    /// `values` entries in get_peers replies, and the replies counted.
    values: u64,
    values_replies: u64,
    nodes: u64,
    nodes_replies: u64,
    bytes_out: u64,
    bytes_in: u64,
    latencies_us: Vec<u32>,
}

fn encode_query(
    kind: Kind,
    tid: &[u8; 4],
    id: &[u8; 20],
    hash: &[u8; 20],
    token: &[u8],
    port: u16,
) -> Vec<u8> {
    let mut e = Encoder::new();
    e.dict(|d| {
        d.entry(b"a", |e| {
            e.dict(|a| {
                a.entry(b"id", |e| e.bytes(id));
                match kind {
                    Kind::Ping => {}
                    Kind::FindNode => a.entry(b"target", |e| e.bytes(hash)),
                    Kind::GetPeers => a.entry(b"info_hash", |e| e.bytes(hash)),
                    Kind::Announce => {
                        a.entry(b"implied_port", |e| e.int(0));
                        a.entry(b"info_hash", |e| e.bytes(hash));
                        a.entry(b"port", |e| e.int(i64::from(port)));
                        a.entry(b"token", |e| e.bytes(token));
                    }
                }
            })
        });
        d.entry(b"q", |e| e.bytes(kind.name().as_bytes()));
        d.entry(b"t", |e| e.bytes(tid));
        d.entry(b"y", |e| e.bytes(b"q"));
    });
    e.finish()
}

fn encode_bare_response(t: &[u8], id: &[u8; 20]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.dict(|d| {
        d.entry(b"r", |e| e.dict(|r| r.entry(b"id", |e| e.bytes(id))));
        d.entry(b"t", |e| e.bytes(t));
        d.entry(b"y", |e| e.bytes(b"r"));
    });
    e.finish()
}

struct Loader {
    o: Opts,
    rng: Rng,
    sources: Vec<Source>,
    hashes: Vec<[u8; 20]>,
    slots: Vec<Slot>,
    free: Vec<u16>,
    /// (slot, generation, deadline), in send order (one timeout for all, so deadlines are ordered).
    expiry: VecDeque<(u16, u16, Instant)>,
    next_source: usize,
    cumulative_weights: [u32; 4],
    measuring: bool,
    c: Counts,
}

impl Loader {
    fn pick_kind(&mut self) -> Kind {
        let total = self.cumulative_weights[3];
        let r = self.rng.below(total as usize) as u32;
        KINDS
            .iter()
            .zip(self.cumulative_weights.iter())
            .find(|(_, &w)| r < w)
            .map_or(Kind::Ping, |(k, _)| *k)
    }

    /// Send one query from the next socket; false if the socket would block.
    fn send_one(&mut self, now: Instant) -> bool {
        let Some(slot_i) = self.free.pop() else {
            return false;
        };
        let si = self.next_source;
        self.next_source = (self.next_source + 1) % self.sources.len();
        let mut kind = self.pick_kind();
        let mut hash = [0u8; 20];
        let mut token: Vec<u8> = Vec::new();
        let priming = !self.measuring && self.o.weights == [0, 0, 0, 1];
        let src = &self.sources[si];
        if kind == Kind::Announce
            && (src.tokens.is_empty() || (priming && src.tokens.len() < self.o.token_cache))
        {
            kind = Kind::GetPeers;
        }
        match kind {
            Kind::Ping => {}
            Kind::FindNode => hash = self.rng.id(),
            Kind::GetPeers => hash = self.hashes[self.rng.below(self.hashes.len())],
            Kind::Announce => {
                let (h, t) = &src.tokens[self.rng.below(src.tokens.len())];
                hash = *h;
                token.clone_from(t);
            }
        }
        let port = if self.o.random_port {
            1024 + self.rng.below(64_511) as u16
        } else {
            src.sock.local_addr().map_or(6881, |a| a.port())
        };
        let slot = &mut self.slots[slot_i as usize];
        slot.gen = slot.gen.wrapping_add(1);
        let mut tid = [0u8; 4];
        tid[..2].copy_from_slice(&slot_i.to_be_bytes());
        tid[2..].copy_from_slice(&slot.gen.to_be_bytes());
        let packet = encode_query(kind, &tid, &src.id, &hash, &token, port);
        match src.sock.send_to(&packet, self.o.target) {
            Ok(_) => {
                *slot = Slot {
                    gen: slot.gen,
                    busy: true,
                    source: si as u32,
                    kind,
                    sent: now,
                    hash,
                };
                self.expiry.push_back((slot_i, slot.gen, now + self.o.timeout));
                self.c.sent[kind as usize] += 1;
                self.c.bytes_out += packet.len() as u64;
                true
            }
            Err(e) => {
                self.free.push(slot_i);
                if e.kind() != ErrorKind::WouldBlock {
                    self.c.send_errors += 1;
                }
                false
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(slot_i, gen, deadline)) = self.expiry.front() {
            if deadline > now {
                break;
            }
            self.expiry.pop_front();
            let slot = &mut self.slots[slot_i as usize];
            if slot.busy && slot.gen == gen {
                slot.busy = false;
                self.c.timeouts[slot.kind as usize] += 1;
                self.free.push(slot_i);
            }
        }
    }

    fn handle(&mut self, si: usize, packet: &[u8], from: SocketAddr, now: Instant) {
        self.c.bytes_in += packet.len() as u64;
        let Ok(v) = bencode::decode_with(packet, DecodeOptions::lenient()) else {
            self.c.malformed += 1;
            return;
        };
        let Some(d) = v.as_dict() else {
            self.c.malformed += 1;
            return;
        };
        let (Some(t), Some(y)) = (
            d.get(b"t").and_then(|x| x.as_bytes()),
            d.get(b"y").and_then(|x| x.as_bytes()),
        ) else {
            self.c.malformed += 1;
            return;
        };
        if y == b"q" {
            // The node checks on us before adding us to its table: answer like a node would.
            self.c.server_queries += 1;
            let reply = encode_bare_response(t, &self.sources[si].id);
            if self.sources[si].sock.send_to(&reply, from).is_err() {
                self.c.send_errors += 1;
            }
            return;
        }
        let Ok(tid) = <[u8; 4]>::try_from(t) else {
            self.c.late += 1;
            return;
        };
        let slot_i = u16::from_be_bytes([tid[0], tid[1]]);
        let gen = u16::from_be_bytes([tid[2], tid[3]]);
        let Some(slot) = self.slots.get_mut(slot_i as usize) else {
            self.c.late += 1;
            return;
        };
        if !slot.busy || slot.gen != gen || slot.source as usize != si {
            self.c.late += 1;
            return;
        }
        slot.busy = false;
        let slot = *slot;
        self.free.push(slot_i);
        let k = slot.kind as usize;
        let us = now
            .duration_since(slot.sent)
            .as_micros()
            .min(u128::from(u32::MAX)) as u32;
        match y {
            b"r" => {
                let Some(r) = d.get(b"r").and_then(|x| x.as_dict()) else {
                    self.c.malformed += 1;
                    return;
                };
                if r.get(b"id").and_then(|x| x.as_bytes()).map(<[u8]>::len) != Some(20) {
                    self.c.malformed += 1;
                    return;
                }
                self.c.responses[k] += 1;
                if self.measuring {
                    self.c.latencies_us.push(us);
                }
                if let Some(n) = r.get(b"nodes").and_then(|x| x.as_bytes()) {
                    self.c.nodes += (n.len() / 26) as u64;
                    self.c.nodes_replies += 1;
                }
                if slot.kind == Kind::GetPeers {
                    if let Some(vals) = r.get(b"values").and_then(|x| x.as_list()) {
                        self.c.values += vals.len() as u64;
                    }
                    self.c.values_replies += 1;
                    if let Some(tok) = r.get(b"token").and_then(|x| x.as_bytes()) {
                        let cap = self.o.token_cache;
                        let i = self.rng.below(cap);
                        let src = &mut self.sources[si];
                        if let Some(e) = src.tokens.iter_mut().find(|(h, _)| *h == slot.hash) {
                            e.1 = tok.to_vec();
                        } else if src.tokens.len() < cap {
                            src.tokens.push((slot.hash, tok.to_vec()));
                        } else if let Some(e) = src.tokens.get_mut(i) {
                            *e = (slot.hash, tok.to_vec());
                        }
                    }
                }
            }
            b"e" => {
                self.c.errors[k] += 1;
                if slot.kind == Kind::Announce {
                    // Most likely a stale or refused token: forget it.
                    self.sources[si].tokens.retain(|(h, _)| *h != slot.hash);
                }
            }
            _ => self.c.malformed += 1,
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// utime + stime of a process (all its threads), in clock ticks, from `/proc/PID/stat` (`self` for us).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(") ")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run(o: Opts) -> Result<String, String> {
    let mut rng = Rng(o.seed);
    let mut poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
    let mut sources = Vec::new();
    for ip_i in 0..o.ips {
        let ip = match o.target.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(127, 77, 0, ip_i as u8 + 1)),
            IpAddr::V6(v6) => IpAddr::V6(v6), // ::1 is the only IPv6 loopback address
        };
        for _ in 0..o.sockets_per_ip {
            let mut sock = UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
            poll.registry()
                .register(&mut sock, Token(sources.len()), Interest::READABLE)
                .map_err(|e| format!("register: {e}"))?;
            sources.push(Source {
                sock,
                id: rng.id(),
                tokens: Vec::new(),
            });
        }
    }
    let hashes: Vec<[u8; 20]> = (0..o.hashes).map(|_| rng.id()).collect();
    let mut cumulative = [0u32; 4];
    let mut acc = 0;
    for (c, w) in cumulative.iter_mut().zip(o.weights) {
        acc += w;
        *c = acc;
    }
    let slots = vec![
        Slot {
            gen: 0,
            busy: false,
            source: 0,
            kind: Kind::Ping,
            sent: Instant::now(),
            hash: [0; 20],
        };
        o.inflight
    ];
    let free: Vec<u16> = (0..o.inflight as u16).rev().collect();
    let mut l = Loader {
        rng: Rng(o.seed ^ 0x5eed_1a0d ^ std::process::id() as u64),
        sources,
        hashes,
        slots,
        free,
        expiry: VecDeque::new(),
        next_source: 0,
        cumulative_weights: cumulative,
        measuring: false,
        c: Counts::default(),
        o,
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 4096];
    let started = Instant::now();
    let warm_end = started + Duration::from_secs_f64(l.o.warmup);
    let end = warm_end + Duration::from_secs_f64(l.o.seconds);
    let mut window_start = warm_end;
    let watched = l.o.watch_pid.map(|p| p.to_string());
    let sample = |w: &Option<String>| (w.as_deref().and_then(cpu_ticks), cpu_ticks("self"));
    let mut ticks_start = (None, None);
    if l.o.warmup == 0.0 {
        l.measuring = true;
        window_start = Instant::now();
        ticks_start = sample(&watched);
        eprintln!("dht-load: measuring");
    }
    loop {
        let now = Instant::now();
        if !l.measuring && now >= warm_end {
            l.c = Counts::default();
            l.measuring = true;
            window_start = now;
            ticks_start = sample(&watched);
            eprintln!("dht-load: measuring");
        }
        if now >= end {
            break;
        }
        l.expire(now);
        while !l.free.is_empty() {
            if !l.send_one(now) {
                break;
            }
        }
        let mut wait = end.saturating_duration_since(now).min(Duration::from_millis(20));
        if let Some(&(_, _, d)) = l.expiry.front() {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        for ev in events.iter() {
            let si = ev.token().0;
            // Edge-triggered: read until the socket is empty (a later poll reports it only if more arrives).
            while let Some(s) = l.sources.get(si) {
                match s.sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let now = Instant::now();
                        l.handle(si, &buf[..n], from, now);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => l.c.recv_errors += 1, // e.g. ICMP port unreachable: the node is gone
                }
                if l.c.recv_errors > 1_000_000 {
                    return Err("the node does not answer (port unreachable)".into());
                }
            }
        }
    }
    let ticks_end = sample(&watched);
    let window = Instant::now().duration_since(window_start).as_secs_f64();
    eprintln!("dht-load: done");
    let pct = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1}", b.saturating_sub(a) as f64 / l.o.clk_tck / window * 100.0),
        _ => "null".to_string(),
    };
    let server_cpu = pct(ticks_start.0, ticks_end.0);
    let loader_cpu = pct(ticks_start.1, ticks_end.1);
    let server_rss = watched
        .as_deref()
        .and_then(rss_kib)
        .map_or("null".to_string(), |k| k.to_string());
    let c = &mut l.c;
    c.latencies_us.sort_unstable();
    let sent: u64 = c.sent.iter().sum();
    let responses: u64 = c.responses.iter().sum();
    let errors: u64 = c.errors.iter().sum();
    let timeouts: u64 = c.timeouts.iter().sum();
    let mut by_kind = Vec::new();
    for k in KINDS {
        let i = k as usize;
        by_kind.push(format!(
            "\"{}\": {{\"sent\": {}, \"responses\": {}, \"errors\": {}, \"timeouts\": {}, \"responses_per_sec\": {:.1}}}",
            k.name(),
            c.sent[i],
            c.responses[i],
            c.errors[i],
            c.timeouts[i],
            c.responses[i] as f64 / window
        ));
    }
    let avg = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    Ok(format!(
        "{{\"target\": \"{}\", \"kind\": \"{}\", \"seconds\": {:.3}, \"warmup\": {}, \"inflight\": {}, \"sources\": {}, \
\"source_ips\": {}, \"hashes\": {}, \"queries_sent\": {}, \"responses\": {}, \"responses_per_sec\": {:.1}, \
\"errors\": {}, \"timeouts\": {}, \"late\": {}, \"malformed\": {}, \"send_errors\": {}, \"recv_errors\": {}, \
\"server_queries\": {}, \"latency_us\": {{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"max\": {}}}, \
\"values_per_get_peers\": {:.2}, \"nodes_per_reply\": {:.2}, \"bytes_out\": {}, \"bytes_in\": {}, \
\"server_cpu_pct\": {}, \"loader_cpu_pct\": {}, \"server_rss_kib\": {}, \"by_kind\": {{{}}}}}",
        l.o.target,
        l.o.kind_name,
        window,
        l.o.warmup,
        l.o.inflight,
        l.sources.len(),
        l.o.ips,
        l.o.hashes,
        sent,
        responses,
        responses as f64 / window,
        errors,
        timeouts,
        c.late,
        c.malformed,
        c.send_errors,
        c.recv_errors,
        c.server_queries,
        percentile(&c.latencies_us, 0.5),
        percentile(&c.latencies_us, 0.9),
        percentile(&c.latencies_us, 0.99),
        c.latencies_us.last().copied().unwrap_or(0),
        avg(c.values, c.values_replies),
        avg(c.nodes, c.nodes_replies),
        c.bytes_out,
        c.bytes_in,
        server_cpu,
        loader_cpu,
        server_rss,
        by_kind.join(", ")
    ))
}

/// Exit 0 once `addr` answers a KRPC ping (tried every 200 ms for `max_seconds`).
fn ping(addr: SocketAddr, max_seconds: u64) -> Result<(), String> {
    if !addr.ip().is_loopback() {
        return Err("only loopback targets are accepted".into());
    }
    let bind: SocketAddr = if addr.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }
        .parse()
        .map_err(|e| format!("{e}"))?;
    let sock = std::net::UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let id = Rng(7).id();
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    let mut buf = [0u8; 2048];
    let mut n = 0u16;
    while Instant::now() < deadline {
        n = n.wrapping_add(1);
        let tid = [0xee, 0xee, (n >> 8) as u8, n as u8];
        let q = encode_query(Kind::Ping, &tid, &id, &[0; 20], &[], 0);
        let _ = sock.send_to(&q, addr);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(200) {
            match sock.recv_from(&mut buf) {
                Ok((len, from)) if from == addr => {
                    let Ok(v) = bencode::decode_with(&buf[..len], DecodeOptions::lenient()) else {
                        continue;
                    };
                    let d = v.as_dict();
                    let t = d.and_then(|d| d.get(b"t")).and_then(|x| x.as_bytes());
                    let y = d.and_then(|d| d.get(b"y")).and_then(|x| x.as_bytes());
                    if t == Some(&tid[..]) && y == Some(b"r") {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    Err(format!("no answer to ping from {addr} in {max_seconds} s"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => parse_opts(&args[1..])
            .and_then(run)
            .map(|json| println!("{json}")),
        Some("ping") => {
            let addr = args.get(1).and_then(|a| a.parse().ok());
            let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
            match addr {
                Some(a) => ping(a, secs),
                None => Err("ping needs ADDR".into()),
            }
        }
        _ => Err(
            "usage: dht-load run ADDR [options] | dht-load ping ADDR [MAX_SECONDS] (see the source's header)"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dht-load: {e}");
            ExitCode::FAILURE
        }
    }
}
